//! The control plane's Go modules and build cache: the committed Kubernetes module is exactly
//! what the generator makes from the pinned release's own go.mod (then `go mod tidy`), the etcd
//! module pins ETCD_VERSION, and a second build is a no-op that runs no `go` at all.
//! One test: it points PATH at a logging `go` for a while.
use std::path::Path;

use testbed::controlplane::go::Go;
use testbed::controlplane::release::{self, Release};

#[test]
fn modules_are_generated_and_a_cached_build_runs_no_go() {
    let release = Release::selected().unwrap();
    // 1. Build (or find) the binaries, then again through a `go` that logs every invocation.
    let bins = testbed::controlplane::build().expect("build the control plane");
    let real = Go::find().unwrap();
    let root = std::fs::canonicalize(&real.path).unwrap();
    let goroot = root.parent().unwrap().parent().unwrap();
    let fake = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(fake.path().join("bin")).unwrap();
    std::fs::copy(goroot.join("VERSION"), fake.path().join("VERSION")).unwrap();
    let log = fake.path().join("invocations");
    let script = format!(
        "#!/bin/sh\necho \"$@\" >> {}\nexec {} \"$@\"\n",
        log.display(),
        root.display()
    );
    let go = fake.path().join("bin/go");
    std::fs::write(&go, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&go, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![fake.path().join("bin")];
    paths.extend(std::env::split_paths(&path));
    // SAFETY: the only test of this binary; nothing else reads the environment meanwhile.
    unsafe { std::env::set_var("PATH", std::env::join_paths(paths).unwrap()) };
    let again = testbed::controlplane::build();
    unsafe { std::env::set_var("PATH", &path) };
    assert_eq!(again.unwrap().dir, bins.dir);
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(calls.is_empty(), "a cached build ran go: {calls}");

    // 2. The committed module is the generator's output after `go mod tidy`.
    if !release.is_pinned() {
        eprintln!(
            "{} is set: the committed module is for the pinned release; skipping its check",
            release::KUBERNETES_VERSION_ENV
        );
        return;
    }
    let committed = release::committed_modules_dir().join("kubernetes");
    let scratch = testbed::controlplane::target_dir().join("controlplane/module-check");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    // tidy keeps go.sum lines it can verify; start from the committed one so nothing is fetched twice.
    std::fs::copy(committed.join("go.sum"), scratch.join("go.sum")).unwrap();
    release::write_kubernetes_module(&real, &release.kubernetes, &scratch)
        .expect("generate the module");
    for file in ["go.mod", "go.sum", "tools.go"] {
        let read = |dir: &Path| std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(
            read(&committed) == read(&scratch),
            "testbed/controlplane/kubernetes/{file} is not what the generator makes for {}: \
             run `cargo run -p testbed -- build --update-module` (diff against {})",
            release.kubernetes,
            scratch.display()
        );
    }
    release::check_etcd_module(&real, &release).expect("etcd module pins ETCD_VERSION");
}
