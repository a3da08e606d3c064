//! The loopback HTTP server: `serve()` on 127.0.0.1:0, `serve_to_dir()` writing an admin
//! kubeconfig that kube-rs accepts, service-account kubeconfigs, shutdown, and the
//! `testbed kube --dir DIR` binary printing `ready`.
mod kube_common;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams};
use testbed::kube::KubeEmulator;

async fn client_from(kubeconfig: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

#[tokio::test]
async fn serve_to_dir_writes_a_working_admin_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let server = testbed::kube::serve_to_dir(dir.path()).await.unwrap();
    assert!(server.url().starts_with("http://127.0.0.1:"));
    let yaml = std::fs::read_to_string(dir.path().join("kubeconfig")).unwrap();
    assert_eq!(yaml, server.kubeconfig_yaml(None));
    let client = client_from(&yaml).await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.contains(&"default".to_string()) && names.contains(&"kube-system".to_string()));
    // The same store is visible in-process.
    let cms: Api<ConfigMap> = Api::default_namespaced(server.emulator().client());
    let cm: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "shared"}})).unwrap();
    cms.create(&Default::default(), &cm).await.unwrap();
    let over_http: Api<ConfigMap> = Api::default_namespaced(client);
    over_http.get("shared").await.unwrap();
    let url = server.url();
    server.shutdown().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
            .await
            .is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn service_account_kubeconfig_is_that_identity() {
    let emu = KubeEmulator::new();
    let server = emu.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    emu.set_rbac_enforced(true);
    let token = emu.service_account_token("default", "bot");
    let yaml = server.kubeconfig_yaml(Some(&token));
    assert!(
        yaml.contains("as: system:serviceaccount:default:bot"),
        "{yaml}"
    );
    let client = client_from(&yaml).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    match cms.list(&ListParams::default()).await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert_eq!(
                s.message,
                r#"configmaps is forbidden: User "system:serviceaccount:default:bot" cannot list resource "configmaps" in API group "" in the namespace "default""#
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(serve_refuses_non_loopback(&emu).await);
}

async fn serve_refuses_non_loopback(emu: &KubeEmulator) -> bool {
    emu.serve("0.0.0.0:0".parse().unwrap()).await.is_err()
}

#[test]
fn binary_prints_ready_and_writes_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["kube", "--dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("ready line");
    assert!(line.contains("ready"), "{line}");
    let kc = std::fs::read_to_string(dir.path().join("kubeconfig")).unwrap();
    assert!(kc.contains("server: http://127.0.0.1:"));
    unsafe { libc_kill(child.id() as i32) };
    let status = child.wait().unwrap();
    assert!(status.success() || status.code().is_none(), "{status:?}");
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill_raw(pid: i32, sig: i32) -> i32;
}

unsafe fn libc_kill(pid: i32) {
    unsafe {
        libc_kill_raw(pid, 15);
    }
}
