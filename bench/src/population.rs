//! The bench's ModelDeployments: creating a population (in a burst, or one per second), and
//! watching when each becomes Ready.

use anyhow::{Context, Result, bail};
use aoai_operator::crd::ModelDeployment;
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records when each ModelDeployment is Ready for its current generation.
pub type ReadyTimes = Arc<Mutex<HashMap<String, Instant>>>;

/// The watcher task is returned so that it is stopped before the control plane: a watcher whose
/// apiserver is gone retries (with backoff, never in a tight loop that would keep the runtime
/// from shutting down).
pub fn spawn_ready_watcher(client: kube::Client) -> (ReadyTimes, tokio::task::JoinHandle<()>) {
    let ready: ReadyTimes = Default::default();
    let r = ready.clone();
    let task = tokio::spawn(async move {
        let api: Api<ModelDeployment> = Api::all(client);
        let mut s = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = s.next().await {
            let objs = match ev {
                Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o)) => vec![o],
                _ => continue,
            };
            for o in objs {
                let ok = o.status.as_ref().is_some_and(|st| {
                    st.observed_generation == o.metadata.generation
                        && st
                            .conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                });
                if ok {
                    let key = format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
                    r.lock().unwrap().entry(key).or_insert_with(Instant::now);
                }
            }
        }
    });
    (ready, task)
}

pub fn md(ns: &str, name: &str, account: &str, i: usize) -> ModelDeployment {
    let (model, version, sku) = if i % 2 == 0 {
        ("gpt-4o-mini", "2024-07-18", "GlobalStandard")
    } else {
        ("gpt-4o", "2024-08-06", "Standard")
    };
    serde_json::from_value(json!({
        "apiVersion": "aoai.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"accountRef": {"name": account}, "model": {"format": "OpenAI", "name": model, "version": version}, "sku": {"name": sku, "capacity": 1}},
    }))
    .expect("ModelDeployment")
}

pub struct Population {
    /// key ns/name → (creation start, account index, azure deployment name)
    pub created: HashMap<String, (Instant, usize, String)>,
    pub first_create: Instant,
}

/// Create `range` at once (48 requests in flight), spread over the accounts and namespaces.
pub async fn create_population(
    client: &kube::Client,
    range: std::ops::Range<usize>,
    accounts: usize,
    namespaces: usize,
) -> Result<Population> {
    create(client, range, accounts, namespaces, None).await
}

/// Create `range` one at a time, `every` apart (a trickle, as app teams create them).
pub async fn create_trickle(
    client: &kube::Client,
    range: std::ops::Range<usize>,
    accounts: usize,
    namespaces: usize,
    every: Duration,
) -> Result<Population> {
    create(client, range, accounts, namespaces, Some(every)).await
}

async fn create(
    client: &kube::Client,
    range: std::ops::Range<usize>,
    accounts: usize,
    namespaces: usize,
    every: Option<Duration>,
) -> Result<Population> {
    let items: Vec<(String, String, usize, usize)> = range
        .map(|i| {
            (
                format!("bench-{}", i % namespaces),
                format!("md-{i:05}"),
                i % accounts,
                i,
            )
        })
        .collect();
    let first_create = Instant::now();
    let results: Vec<Result<(String, (Instant, usize, String))>> = futures::stream::iter(items)
        .enumerate()
        .map(|(k, (ns, name, a, i))| {
            let client = client.clone();
            async move {
                if let Some(every) = every {
                    tokio::time::sleep_until((first_create + every * k as u32).into()).await;
                }
                let m = md(&ns, &name, &format!("acct-{a}"), i);
                let t = Instant::now();
                Api::<ModelDeployment>::namespaced(client, &ns)
                    .create(&PostParams::default(), &m)
                    .await
                    .with_context(|| format!("create {ns}/{name}"))?;
                Ok((format!("{ns}/{name}"), (t, a, m.azure_deployment_name())))
            }
        })
        .buffer_unordered(if every.is_some() { 1 } else { 48 })
        .collect()
        .await;
    let mut created = HashMap::new();
    for r in results {
        let (k, v) = r?;
        created.insert(k, v);
    }
    Ok(Population {
        created,
        first_create,
    })
}

/// Wait until every key of `pop` is Ready; returns the instant the last one became Ready.
pub async fn wait_converged(
    ready: &ReadyTimes,
    pop: &Population,
    timeout: Duration,
    child: &mut tokio::process::Child,
) -> Result<Instant> {
    let start = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let (n, last) = {
            let r = ready.lock().unwrap();
            let mut n = 0;
            let mut last = pop.first_create;
            for k in pop.created.keys() {
                if let Some(t) = r.get(k) {
                    n += 1;
                    last = last.max(*t);
                }
            }
            (n, last)
        };
        if n == pop.created.len() {
            return Ok(last);
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the operator exited ({status}) with {n}/{} Ready",
                pop.created.len()
            );
        }
        if start.elapsed() > timeout {
            bail!(
                "not converged after {timeout:?}: {n}/{} Ready",
                pop.created.len()
            );
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  ... {n}/{} Ready after {:.0}s",
                pop.created.len(),
                start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
