//! Test helper (not a product): the test bed with RBAC enforcement switched on, for
//! tests/python/test_chart_rbac.py. Like `testbed up --dir DIR` (DIR/kubeconfig for the admin, DIR/azure.env,
//! DIR/ca.pem), plus, for each `--token NAMESPACE/NAME`, the bearer token of that ServiceAccount in
//! DIR/token-NAMESPACE-NAME (what kubelet would mount in its pod) and a kubeconfig using it,
//! DIR/kubeconfig-NAMESPACE-NAME. Prints a line containing `ready`, runs
//! until SIGTERM/SIGINT.
use std::path::PathBuf;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut dir: Option<PathBuf> = None;
    let mut tokens: Vec<(String, String)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => dir = args.next().map(PathBuf::from),
            "--token" => {
                let value = args.next().unwrap_or_default();
                let (ns, name) = value
                    .split_once('/')
                    .ok_or_else(|| anyhow::anyhow!("--token NAMESPACE/NAME"))?;
                tokens.push((ns.to_string(), name.to_string()));
            }
            other => {
                anyhow::bail!("unknown argument {other}: use --dir DIR [--token NAMESPACE/NAME]...")
            }
        }
    }
    let dir = dir.ok_or_else(|| anyhow::anyhow!("--dir DIR is required"))?;
    std::fs::create_dir_all(&dir)?;
    let kube = testbed::kube::KubeEmulator::new();
    kube.set_rbac_enforced(true);
    let server = kube.serve("127.0.0.1:0".parse()?).await?;
    server.write_kubeconfig(&dir.join("kubeconfig"))?;
    for (ns, name) in &tokens {
        let token = kube.service_account_token(ns, name);
        std::fs::write(dir.join(format!("token-{ns}-{name}")), &token)?;
        // The emulator's kubeconfig for that token (kube-rs sends the token; client-go, which sends no
        // credentials over plain HTTP, names the same identity with `as:`).
        std::fs::write(
            dir.join(format!("kubeconfig-{ns}-{name}")),
            server.kubeconfig_yaml(Some(&token)),
        )?;
    }
    let _azure = testbed::azure::serve_to_dir(&dir).await?;
    println!(
        "rbac testbed ready dir={} kube={}",
        dir.display(),
        server.url()
    );
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    Ok(())
}
