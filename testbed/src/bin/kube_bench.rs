//! Benchmark of the kube emulator (not a test): LIST and WATCH throughput with 10,000
//! objects and 50 concurrent watchers over the loopback HTTP server, plus the process RSS.
//! Run: `cargo run -p testbed --bin kube_bench [-- OBJECTS WATCHERS UPDATES]`.
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use testbed::kube::KubeEmulator;

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
    let kc = kube::config::Kubeconfig::from_yaml(&server.kubeconfig_yaml(None))?;
    let http_client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?,
    )?;
    let inproc = emu.client();
    println!(
        "kube_bench: {objects} objects, {watchers} watchers, {updates} updates (debug builds are much slower than release)"
    );
    println!("rss at start: {:.1} MiB", rss_mib());

    // Create.
    let api: Api<ConfigMap> = Api::default_namespaced(inproc.clone());
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
        "create: {objects} objects in {:.2}s = {:.0} objects/s (in-process client)",
        dt.as_secs_f64(),
        objects as f64 / dt.as_secs_f64()
    );
    println!("rss after create: {:.1} MiB", rss_mib());

    // LIST over HTTP.
    let http_api: Api<ConfigMap> = Api::default_namespaced(http_client.clone());
    let rounds = 3;
    let t = Instant::now();
    for _ in 0..rounds {
        let l = http_api.list(&ListParams::default()).await?;
        assert_eq!(l.items.len(), objects);
    }
    let dt = t.elapsed();
    println!(
        "list (full, HTTP): {rounds} x {objects} in {:.2}s = {:.0} objects/s, {:.0} ms per list",
        dt.as_secs_f64(),
        (rounds * objects) as f64 / dt.as_secs_f64(),
        dt.as_millis() as f64 / rounds as f64
    );
    let t = Instant::now();
    let mut token: Option<String> = None;
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().limit(500);
        if let Some(c) = &token {
            lp = lp.continue_token(c);
        }
        let l = http_api.list(&lp).await?;
        seen += l.items.len();
        pages += 1;
        token = l.metadata.continue_.filter(|c| !c.is_empty());
        if token.is_none() {
            break;
        }
    }
    let dt = t.elapsed();
    println!(
        "list (limit=500, {pages} pages, HTTP): {seen} objects in {:.2}s = {:.0} objects/s",
        dt.as_secs_f64(),
        seen as f64 / dt.as_secs_f64()
    );
    let t = Instant::now();
    let l = http_api
        .list(&ListParams::default().labels("shard=s3"))
        .await?;
    println!(
        "list (label selector, {} matches, HTTP): {:.0} ms",
        l.items.len(),
        t.elapsed().as_millis()
    );

    // WATCH: N watchers over HTTP, then `updates` writes; every watcher must see every one.
    let rv = emu.resource_version().to_string();
    let mut handles = vec![];
    let t_ready = Instant::now();
    for _ in 0..watchers {
        let api = http_api.clone();
        let rv = rv.clone();
        handles.push(tokio::spawn(async move {
            let mut s = api
                .watch(
                    &WatchParams::default().disable_bookmarks().timeout(600),
                    &rv,
                )
                .await?
                .boxed();
            let mut n = 0usize;
            while n < updates {
                match tokio::time::timeout(Duration::from_secs(120), s.try_next()).await {
                    Ok(Ok(Some(WatchEvent::Modified(_)))) => n += 1,
                    Ok(Ok(Some(_))) => {}
                    other => anyhow::bail!(
                        "watch ended early after {n}: {:?}",
                        other.map(|r| r.map(|o| o.is_some()))
                    ),
                }
            }
            Ok::<_, anyhow::Error>((n, Instant::now()))
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = t_ready;
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
        "watch: {updates} updates to {watchers} watchers = {delivered} events delivered in {:.2}s = {:.0} events/s (writes took {:.2}s = {:.0} writes/s)",
        dt.as_secs_f64(),
        delivered as f64 / dt.as_secs_f64(),
        writes.as_secs_f64(),
        updates as f64 / writes.as_secs_f64()
    );
    println!(
        "rss at end: {:.1} MiB (server and clients share this process)",
        rss_mib()
    );
    drop(server);
    Ok(())
}
