//! The real `kubectl` (on PATH) against the emulator's loopback server, with a fresh
//! discovery cache: CRD apply + wait Established, client-side apply and re-apply,
//! server-side apply with a conflicting second manager, printer columns, -o yaml,
//! explain, wait for a Ready condition honouring observedGeneration, delete held by a
//! finalizer, a CEL rule violation as kube-apiserver prints it, auth can-i from RBAC,
//! strict field validation and wait --for=delete.
mod kube_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube_common::*;
use serde_json::json;
use testbed::kube::KubeEmulator;

struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
    dir: PathBuf,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args);
        c.current_dir(&self.dir);
        c.kill_on_drop(true);
        c
    }
    async fn run(&self, args: &[&str]) -> Out {
        let out = tokio::time::timeout(Duration::from_secs(60), self.cmd(args).output())
            .await
            .expect("kubectl timed out")
            .expect("kubectl runs");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    async fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert_eq!(
            o.code, 0,
            "kubectl {args:?} failed:\n{}\n{}",
            o.stdout, o.stderr
        );
        o.stdout
    }
    fn write(&self, name: &str, content: &str) -> String {
        std::fs::write(self.dir.join(name), content).unwrap();
        name.to_string()
    }
}

fn widget_yaml(name: &str, size: i64, extra: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\nspec:\n  size: {size}\n{extra}"
    )
}

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

async fn setup(tmp: &Path) -> (testbed::kube::KubeServer, Kubectl) {
    let server = KubeEmulator::new()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let kubeconfig = tmp.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let k = Kubectl {
        kubeconfig,
        cache: tmp.join("cache"),
        dir: tmp.to_path_buf(),
    };
    (server, k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_end_to_end() {
    let tmp = dir();
    let (server, k) = setup(tmp.path()).await;
    let client = server.emulator().client();
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());

    // CRD: apply, then wait for Established.
    let crd = k.write("crd.yaml", WIDGET_CRD_YAML);
    k.ok(&["apply", "-f", &crd]).await;
    let out = k
        .ok(&[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.com",
            "--timeout=20s",
        ])
        .await;
    assert!(out.contains("condition met"), "{out}");
    // Moving the same file to server-side apply: same values, so no conflict with the
    // client-side manager (numbers compare by value: the CRD's `maximum: 10`).
    assert!(
        k.ok(&["apply", "--server-side", "-f", &crd])
            .await
            .contains("serverside-applied")
    );

    // Client-side apply, then re-apply of a changed file (merge patch).
    let f = k.write("w1.yaml", &widget_yaml("w1", 3, "  tags: [a, b]\n"));
    assert!(
        k.ok(&["apply", "-f", &f])
            .await
            .contains("widget.example.com/w1 created")
    );
    k.write("w1.yaml", &widget_yaml("w1", 4, ""));
    assert!(
        k.ok(&["apply", "-f", &f])
            .await
            .contains("widget.example.com/w1 configured")
    );
    let w1 = widgets.get("w1").await.unwrap();
    assert_eq!(w1.spec.size, 4);
    assert_eq!(w1.metadata.generation, Some(2));
    let raw: serde_json::Value = serde_json::to_value(widgets.get("w1").await.unwrap()).unwrap();
    assert!(
        raw["spec"].get("tags").is_none(),
        "field dropped from the file is removed by the 3-way merge"
    );

    // Strict field validation (kubectl's default) rejects unknown fields.
    let bad = k.write("bad.yaml", &widget_yaml("bad", 1, "  bogus: 1\n"));
    let o = k.run(&["apply", "-f", &bad]).await;
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("strict decoding error: unknown field \"spec.bogus\""),
        "{}",
        o.stderr
    );

    // Server-side apply, and a conflicting second manager.
    let s = k.write("s1.yaml", &widget_yaml("s1", 2, ""));
    assert!(
        k.ok(&["apply", "--server-side", "-f", &s])
            .await
            .contains("serverside-applied")
    );
    let s2 = k.write("s2.yaml", &widget_yaml("s1", 5, ""));
    let o = k
        .run(&["apply", "--server-side", "--field-manager=other", "-f", &s2])
        .await;
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("Apply failed with 1 conflict: conflict with \"kubectl\""),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains(".spec.size"), "{}", o.stderr);
    k.ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        &s2,
    ])
    .await;
    assert_eq!(widgets.get("s1").await.unwrap().spec.size, 5);

    // get with the CRD's printer columns; -o yaml.
    let table = k.ok(&["get", "widgets"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "SIZE", "READY", "AGE"], "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().take(2).collect::<Vec<_>>() == vec!["s1", "5"]),
        "{table}"
    );
    let y: serde_json::Value =
        serde_yaml::from_str(&k.ok(&["get", "wd", "w1", "-o", "yaml"]).await).unwrap();
    assert_eq!(y["spec"]["size"], 4);
    assert_eq!(y["spec"]["color"], "red", "defaulted");
    assert_eq!(y["metadata"]["generation"], 2);

    // explain from the OpenAPI v3 document.
    let ex = k.ok(&["explain", "widgets.spec"]).await;
    assert!(ex.contains("Desired state of the widget."), "{ex}");
    assert!(ex.contains("size\t<integer> -required-"), "{ex}");
    assert!(ex.contains("How big."), "{ex}");

    // wait --for=condition=Ready honours observedGeneration.
    let cond = |observed: i64| {
        json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Done", "message": "ok",
            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": observed}]}})
    };
    widgets
        .patch_status("w1", &PatchParams::default(), &Patch::Merge(cond(1)))
        .await
        .unwrap();
    let o = k
        .run(&["wait", "--for=condition=Ready", "widget/w1", "--timeout=2s"])
        .await;
    assert_ne!(o.code, 0, "stale observedGeneration must not satisfy wait");
    widgets
        .patch_status("w1", &PatchParams::default(), &Patch::Merge(cond(2)))
        .await
        .unwrap();
    assert!(
        k.ok(&[
            "wait",
            "--for=condition=Ready",
            "widget/w1",
            "--timeout=10s"
        ])
        .await
        .contains("condition met")
    );
    let table = k.ok(&["get", "widget", "w1"]).await;
    assert!(
        table.lines().nth(1).unwrap().split_whitespace().nth(2) == Some("True"),
        "{table}"
    );

    // A CEL rule violation, printed as kube-apiserver's error.
    let o = k
        .run(&[
            "patch",
            "widget",
            "w1",
            "--type=merge",
            "-p",
            r#"{"spec":{"color":"blue"}}"#,
        ])
        .await;
    assert_ne!(o.code, 0);
    assert_eq!(
        o.stderr.trim(),
        r#"The Widget "w1" is invalid: spec: Invalid value: "object": color is immutable"#
    );
    let o = k
        .run(&[
            "patch",
            "widget",
            "w1",
            "--type=merge",
            "-p",
            r#"{"spec":{"size":50}}"#,
        ])
        .await;
    assert_eq!(
        o.stderr.trim(),
        r#"The Widget "w1" is invalid: spec.size: Invalid value: 50: spec.size in body should be less than or equal to 10"#
    );

    // delete of an object with a finalizer completes only once the finalizer is removed.
    widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold"]}})),
        )
        .await
        .unwrap();
    let mut del = k
        .cmd(&["delete", "widget", "w1", "--timeout=30s"])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        del.try_wait().unwrap().is_none(),
        "delete must wait for the finalizer"
    );
    let held = widgets.get("w1").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::<()>::Json(
                serde_json::from_value(json!([{"op": "remove", "path": "/metadata/finalizers"}]))
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), del.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert!(widgets.get_opt("w1").await.unwrap().is_none());

    // wait --for=delete.
    let mut waiter = k
        .cmd(&["wait", "--for=delete", "widget/s1", "--timeout=30s"])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    k.ok(&["delete", "widget", "s1", "--wait=false"]).await;
    let status = tokio::time::timeout(Duration::from_secs(30), waiter.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_answers_from_rbac() {
    let tmp = dir();
    let (server, k) = setup(tmp.path()).await;
    let rbac = k.write(
        "rbac.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r}\nrules:\n- apiGroups: ['']\n  resources: [configmaps]\n  verbs: [get, list]\n- apiGroups: ['']\n  resources: [secrets]\n  resourceNames: [only-this]\n  verbs: [get]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: rb}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\nsubjects:\n- {kind: ServiceAccount, name: bot, namespace: default}\n",
    );
    k.ok(&["apply", "-f", &rbac]).await;
    let sa = "--as=system:serviceaccount:default:bot";
    let ask = |args: Vec<&'static str>| {
        let k = &k;
        async move {
            let mut a = vec!["auth", "can-i"];
            a.extend(args);
            a.push(sa);
            k.run(&a).await.stdout.trim().to_string()
        }
    };
    assert_eq!(ask(vec!["list", "configmaps"]).await, "yes");
    assert_eq!(ask(vec!["delete", "configmaps"]).await, "no");
    assert_eq!(
        ask(vec!["list", "configmaps", "-n", "kube-system"]).await,
        "no"
    );
    assert_eq!(ask(vec!["get", "secrets/only-this"]).await, "yes");
    assert_eq!(ask(vec!["get", "secrets/other"]).await, "no");
    // The admin can do anything.
    assert_eq!(
        k.ok(&["auth", "can-i", "delete", "nodes"]).await.trim(),
        "yes"
    );
    // With enforcement on, the service account is denied with kube-apiserver's message.
    server.emulator().set_rbac_enforced(true);
    let o = k.run(&["get", "secrets", sa]).await;
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains(
            r#"secrets is forbidden: User "system:serviceaccount:default:bot" cannot list resource "secrets" in API group "" in the namespace "default""#
        ),
        "{}",
        o.stderr
    );
    k.ok(&["get", "configmaps", sa]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_builtin_uses_strategic_merge() {
    let tmp = dir();
    let (server, k) = setup(tmp.path()).await;
    let dep = |containers: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n{containers}"
        )
    };
    let f = k.write(
        "dep.yaml",
        &dep("      - {name: a, image: 'a:1'}\n      - {name: b, image: 'b:1'}\n"),
    );
    k.ok(&["apply", "-f", &f]).await;
    // Another writer adds an env var to container a; the re-apply must keep it (merge by
    // name) while removing container b that left the file.
    let deps: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::default_namespaced(server.emulator().client());
    deps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}]}}}})),
    )
    .await
    .unwrap();
    k.write("dep.yaml", &dep("      - {name: a, image: 'a:2'}\n"));
    k.ok(&["apply", "-f", &f]).await;
    let d = deps.get("web").await.unwrap();
    let cs = d.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(cs.len(), 1, "{cs:?}");
    assert_eq!(cs[0].image.as_deref(), Some("a:2"));
    assert_eq!(cs[0].env.as_ref().unwrap()[0].name, "X");
    // kubectl's typed generators send protobuf bodies for a few kinds.
    k.ok(&["create", "secret", "generic", "s1", "--from-literal=a=b"])
        .await;
    k.ok(&["create", "configmap", "c1", "--from-literal=x=y"])
        .await;
    k.ok(&["create", "namespace", "extra"]).await;
    k.ok(&["create", "serviceaccount", "bot"]).await;
    assert_eq!(
        k.ok(&["get", "secret", "s1", "-o", "jsonpath={.data.a}"])
            .await,
        "Yg=="
    );
    assert_eq!(
        k.ok(&["get", "configmap", "c1", "-o", "jsonpath={.data.x}"])
            .await,
        "y"
    );
    k.ok(&["delete", "namespace", "extra"]).await;
}
