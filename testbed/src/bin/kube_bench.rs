//! Benchmark of the kube emulator (not a test): LIST and WATCH throughput with 10,000
//! objects and 50 concurrent watchers over the loopback HTTP server (raw HTTP clients, so
//! client-side decoding is not measured), plus the process RSS.
//! Run: `cargo run -p testbed --bin kube_bench [-- OBJECTS WATCHERS UPDATES]`.
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use testbed::kube::KubeEmulator;

type HyperClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
>;

async fn get(http: &HyperClient, uri: &str) -> anyhow::Result<bytes::Bytes> {
    let resp = http.get(uri.parse()?).await?;
    anyhow::ensure!(resp.status().is_success(), "GET {uri}: {}", resp.status());
    Ok(resp.into_body().collect().await?.to_bytes())
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn cm(i: usize) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("cm-{i:05}"), "labels": {"bench": "yes", "shard": format!("s{}", i % 10)}},
        "data": {"payload": "x".repeat(200), "index": i.to_string()}
    }))
    .unwrap()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let objects = args.first().copied().unwrap_or(10_000);
    let watchers = args.get(1).copied().unwrap_or(50);
    let updates = args.get(2).copied().unwrap_or(1_000);
    let emu = KubeEmulator::new();
    let server = emu.serve("127.0.0.1:0".parse()?).await?;
    let base = server.url();
    let http: HyperClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    println!(
        "kube_bench: {objects} objects, {watchers} watchers, {updates} updates (debug builds are much slower than release)"
    );
    println!("rss at start: {:.1} MiB", rss_mib());

    // Create through the in-process kube::Client.
    let api: Api<ConfigMap> = Api::default_namespaced(emu.client());
    let t = Instant::now();
    futures::stream::iter(0..objects)
        .map(|i| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &cm(i)).await.map(|_| ()) }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    let dt = t.elapsed();
    println!(
        "create: {objects} objects in {:.2}s = {:.0} objects/s (in-process kube::Client)",
        dt.as_secs_f64(),
        objects as f64 / dt.as_secs_f64()
    );
    println!("rss after create: {:.1} MiB", rss_mib());

    // LIST over HTTP.
    let rounds = 3;
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..rounds {
        bytes += get(
            &http,
            &format!("{base}/api/v1/namespaces/default/configmaps"),
        )
        .await?
        .len();
    }
    let dt = t.elapsed();
    println!(
        "list (full, HTTP): {rounds} x {objects} objects in {:.2}s = {:.0} objects/s ({:.0} ms, {:.1} MiB per list)",
        dt.as_secs_f64(),
        (rounds * objects) as f64 / dt.as_secs_f64(),
        dt.as_millis() as f64 / rounds as f64,
        bytes as f64 / rounds as f64 / 1_048_576.0
    );
    let t = Instant::now();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut uri = format!("{base}/api/v1/namespaces/default/configmaps?limit=500");
        if let Some(c) = &token {
            uri.push_str(&format!("&continue={c}"));
        }
        let v: serde_json::Value = serde_json::from_slice(&get(&http, &uri).await?)?;
        pages += 1;
        token = v["metadata"]["continue"]
            .as_str()
            .filter(|c| !c.is_empty())
            .map(String::from);
        if token.is_none() {
            break;
        }
    }
    let dt = t.elapsed();
    println!(
        "list (limit=500, {pages} pages, HTTP): {objects} objects in {:.2}s = {:.0} objects/s",
        dt.as_secs_f64(),
        objects as f64 / dt.as_secs_f64()
    );
    let t = Instant::now();
    let v: serde_json::Value = serde_json::from_slice(
        &get(
            &http,
            &format!("{base}/api/v1/namespaces/default/configmaps?labelSelector=shard%3Ds3"),
        )
        .await?,
    )?;
    println!(
        "list (label selector, {} matches, HTTP): {} ms",
        v["items"].as_array().map(|a| a.len()).unwrap_or(0),
        t.elapsed().as_millis()
    );

    // WATCH: N raw HTTP watchers, then `updates` writes; every watcher must see every one.
    let rv = emu.resource_version();
    let mut handles = vec![];
    for _ in 0..watchers {
        let http = http.clone();
        let uri = format!(
            "{base}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=600"
        );
        handles.push(tokio::spawn(async move {
            let resp = http.get(uri.parse()?).await?;
            let mut body = resp.into_body();
            let mut n = 0usize;
            while n < updates {
                match tokio::time::timeout(Duration::from_secs(300), body.frame()).await {
                    Ok(Some(Ok(f))) => {
                        if let Some(d) = f.data_ref() {
                            n += d.iter().filter(|b| **b == b'\n').count();
                        }
                    }
                    _ => anyhow::bail!("watch ended early after {n} events"),
                }
            }
            Ok::<_, anyhow::Error>((n, Instant::now()))
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    for i in 0..updates {
        let name = format!("cm-{:05}", i % objects);
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"rev": i.to_string()}})),
        )
        .await?;
    }
    let writes = t.elapsed();
    let mut delivered = 0;
    let mut last = t;
    for h in handles {
        let (n, done) = h.await??;
        delivered += n;
        last = last.max(done);
    }
    let dt = last - t;
    println!(
        "watch: {updates} updates x {watchers} watchers = {delivered} events delivered in {:.2}s = {:.0} events/s (writes: {:.0}/s)",
        dt.as_secs_f64(),
        delivered as f64 / dt.as_secs_f64(),
        updates as f64 / writes.as_secs_f64()
    );
    println!(
        "rss at end: {:.1} MiB (server and benchmark clients share this process)",
        rss_mib()
    );
    drop(server);
    Ok(())
}
