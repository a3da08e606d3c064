//! Building etcd, kube-apiserver and kube-controller-manager with `go build`, once: the binaries
//! are cached in `target/controlplane/<release>/bin/` with a stamp (hash of the modules' go.mod
//! and go.sum, the link flags and the Go version). A build whose stamp matches is a no-op that
//! runs no `go` at all; a file lock serialises concurrent builds from parallel test processes.
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::Digest;

use super::go::Go;
use super::release::{self, Module, Release};

/// Bump when the way binaries are built changes (flags, layout): old caches are rebuilt.
const RECIPE: &str = "recipe 1: go build -trimpath -ldflags '-s -w -X version vars'";

/// The three binaries of one release.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub dir: PathBuf,
    pub release: Release,
}

impl Binaries {
    pub fn etcd(&self) -> PathBuf {
        self.dir.join("etcd")
    }
    pub fn kube_apiserver(&self) -> PathBuf {
        self.dir.join("kube-apiserver")
    }
    pub fn kube_controller_manager(&self) -> PathBuf {
        self.dir.join("kube-controller-manager")
    }
    fn all(&self) -> [PathBuf; 3] {
        [
            self.etcd(),
            self.kube_apiserver(),
            self.kube_controller_manager(),
        ]
    }
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace root) or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testbed lives in the workspace")
        .to_path_buf();
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => workspace.join(d),
        None => workspace.join("target"),
    }
}

/// Build (or find in the cache) the binaries of the selected release (the pinned one, or
/// `TESTBED_KUBERNETES_VERSION`).
pub fn build() -> Result<Binaries> {
    build_release(&Release::selected()?)
}

pub fn build_release(release: &Release) -> Result<Binaries> {
    let root = target_dir().join("controlplane");
    let out = root.join(release.key());
    let bins = Binaries {
        dir: out.join("bin"),
        release: release.clone(),
    };
    let go = Go::find()?;
    let modules = [
        release::kubernetes_module(&go, release, &root.join("modules"))?,
        release::etcd_module(),
    ];
    let wanted = stamp(&go, release, &modules)?;
    let stamp_file = out.join("stamp");
    let current = || {
        std::fs::read_to_string(&stamp_file).is_ok_and(|s| s == wanted)
            && bins.all().iter().all(|b| b.is_file())
    };
    if current() {
        return Ok(bins);
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let lock = File::create(out.join("build.lock"))?;
    if lock.try_lock().is_err() {
        eprintln!(
            "testbed: another process is building the control plane in {}: waiting for it",
            out.display()
        );
        lock.lock()?;
    }
    if current() {
        return Ok(bins);
    }
    release::check_etcd_module(&go, release)?;
    let tmp = out.join("bin.partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    eprintln!(
        "testbed: building etcd {}, kube-apiserver and kube-controller-manager {} with {} into {} \
         (the first build downloads the modules and takes about 10 minutes on 2 cores; later runs reuse it)",
        release.etcd,
        release.kubernetes,
        go.version()?,
        bins.dir.display()
    );
    let started = Instant::now();
    for module in &modules {
        build_module(&go, module, &tmp)?;
    }
    std::fs::rename(tmp.join("server"), tmp.join("etcd"))
        .context("go build of go.etcd.io/etcd/server/v3 left no `server` binary")?;
    let _ = std::fs::remove_dir_all(&bins.dir);
    std::fs::rename(&tmp, &bins.dir)?;
    let mut f = File::create(&stamp_file)?;
    f.write_all(wanted.as_bytes())?;
    eprintln!(
        "testbed: control plane built in {:.0}s: {}",
        started.elapsed().as_secs_f64(),
        bins.dir.display()
    );
    drop(lock);
    Ok(bins)
}

fn build_module(go: &Go, module: &Module, out: &Path) -> Result<()> {
    let mut ldflags = vec!["-s".to_string(), "-w".to_string()];
    if let Some(k) = &module.kubernetes {
        let time = go.module_time("k8s.io/kubernetes", k, &module.dir)?;
        for flag in release::kubernetes_version_flags(k, &time)? {
            ldflags.push(format!("-X={flag}"));
        }
    }
    let names: Vec<&str> = module
        .commands
        .iter()
        .map(|c| match c.rsplit('/').next().unwrap_or(c) {
            "v3" => "etcd",
            name => name,
        })
        .collect();
    eprintln!("testbed: go build {} ...", module.commands.join(" "));
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let heartbeat = {
        let done = done.clone();
        let what = names.join(", ");
        std::thread::spawn(move || {
            let mut last = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                if last.elapsed() >= Duration::from_secs(30) {
                    last = Instant::now();
                    eprintln!(
                        "testbed: still building {what} ({:.0}s so far)",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        })
    };
    let status = go
        .command(&module.dir)
        .env("GOFLAGS", "-mod=readonly")
        .arg("build")
        .arg("-trimpath")
        .arg(format!("-ldflags={}", ldflags.join(" ")))
        .arg("-o")
        .arg(format!("{}/", out.display()))
        .args(&module.commands)
        .status()
        .context("running go build");
    done.store(true, Ordering::Relaxed);
    let _ = heartbeat.join();
    let status = status?;
    if !status.success() {
        bail!(
            "go build of {} in {} failed ({status}): see the errors above",
            module.commands.join(" "),
            module.dir.display()
        );
    }
    eprintln!(
        "testbed: built {} in {:.0}s",
        names.join(", "),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What the cached binaries were built from: the release, the recipe, the Go version and the
/// exact content of each module's go.mod and go.sum.
fn stamp(go: &Go, release: &Release, modules: &[Module]) -> Result<String> {
    let mut text = format!(
        "release {}\n{RECIPE}\ngo {}\n",
        release.key(),
        go.version()?
    );
    for m in modules {
        for file in ["go.mod", "go.sum"] {
            let path = m.dir.join(file);
            let bytes = std::fs::read(&path).with_context(|| {
                format!(
                    "reading {} (the control plane's Go module is incomplete)",
                    path.display()
                )
            })?;
            let digest = sha2::Sha256::digest(&bytes);
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            text.push_str(&format!("{} {hex}\n", path.display()));
        }
    }
    Ok(text)
}
