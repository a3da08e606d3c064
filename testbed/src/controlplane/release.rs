//! Which releases the control plane is built from, and the Go modules that pin them.
//!
//! The pinned Kubernetes release is one constant ([`KUBERNETES_VERSION`]); its Go module is
//! committed in `testbed/controlplane/kubernetes/` and was written by [`kubernetes_go_mod`] from
//! the release's own go.mod (every `k8s.io/<staging> v0.0.0` requirement replaced by the matching
//! `v0.<minor>.<patch>` release), then `go mod tidy`. `TESTBED_KUBERNETES_VERSION=v1.37.2` builds
//! another release: its module is generated the same way into a scratch directory under `target/`.
//! etcd comes from its own module (`testbed/controlplane/etcd/`) so that Go's minimal version
//! selection does not move the apiserver's etcd client libraries.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::go::Go;

/// The Kubernetes release the test bed runs (matches k8s-openapi's `v1_33` feature).
pub const KUBERNETES_VERSION: &str = "v1.33.13";
/// The etcd release (`go.etcd.io/etcd/server/v3`).
pub const ETCD_VERSION: &str = "v3.6.16";
/// Environment variable that selects another Kubernetes release (e.g. `v1.37.2`).
pub const KUBERNETES_VERSION_ENV: &str = "TESTBED_KUBERNETES_VERSION";

const KUBERNETES_MODULE: &str = "aoai.dev/testbed/controlplane/kubernetes";
const KUBERNETES_COMMANDS: [&str; 2] = [
    "k8s.io/kubernetes/cmd/kube-apiserver",
    "k8s.io/kubernetes/cmd/kube-controller-manager",
];
const ETCD_COMMAND: &str = "go.etcd.io/etcd/server/v3";

/// The committed Go modules (`testbed/controlplane/`).
pub fn committed_modules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("controlplane")
}

/// One Go module to build, and the commands (main packages) it builds.
#[derive(Clone, Debug)]
pub struct Module {
    pub dir: PathBuf,
    pub commands: Vec<String>,
    /// The Kubernetes release whose version variables the link sets (None: etcd).
    pub kubernetes: Option<String>,
}

/// A Kubernetes release plus an etcd release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    pub kubernetes: String,
    pub etcd: String,
}

impl Release {
    /// The pinned release, or `TESTBED_KUBERNETES_VERSION` when set.
    pub fn selected() -> Result<Release> {
        let kubernetes = match std::env::var(KUBERNETES_VERSION_ENV) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
            _ => KUBERNETES_VERSION.to_string(),
        };
        staging_version(&kubernetes)?;
        Ok(Release {
            kubernetes,
            etcd: ETCD_VERSION.to_string(),
        })
    }

    pub fn is_pinned(&self) -> bool {
        self.kubernetes == KUBERNETES_VERSION
    }

    /// Directory name of this release's binaries: `<kubernetes>-<etcd>`.
    pub fn key(&self) -> String {
        format!("{}-etcd{}", self.kubernetes, self.etcd)
    }
}

/// `v1.33.13` → `v0.33.13` (the version of the staging modules, k8s.io/api and friends).
pub fn staging_version(kubernetes: &str) -> Result<String> {
    let parts: Vec<&str> = kubernetes
        .strip_prefix("v1.")
        .map(|rest| rest.split('.').collect())
        .unwrap_or_default();
    match parts.as_slice() {
        [minor, patch] if minor.parse::<u32>().is_ok() && !patch.is_empty() => {
            Ok(format!("v0.{minor}.{patch}"))
        }
        _ => bail!(
            "Kubernetes release {kubernetes:?} is not of the form v1.MINOR.PATCH (set {KUBERNETES_VERSION_ENV} to e.g. v1.37.2)"
        ),
    }
}

/// What `go mod edit -json` says about a go.mod file (the fields used here).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GoModJson {
    pub go: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub require: Vec<GoModRequire>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub replace: Vec<GoModReplace>,
    #[serde(default, rename = "GoDebug", deserialize_with = "null_as_empty")]
    pub godebug: Vec<GoModGodebug>,
}

/// `go mod edit -json` writes `null` for an absent list.
fn null_as_empty<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GoModRequire {
    pub path: String,
    pub version: String,
    #[serde(default)]
    pub indirect: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GoModReplace {
    pub old: GoModVersion,
    pub new: GoModVersion,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GoModVersion {
    pub path: String,
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GoModGodebug {
    pub key: String,
    pub value: String,
}

/// The go.mod of our Kubernetes module for `kubernetes` (before `go mod tidy`), generated from
/// the release's own go.mod as parsed by `go mod edit -json`.
pub fn kubernetes_go_mod(kubernetes: &str, release_mod: &GoModJson) -> Result<String> {
    let staging = staging_version(kubernetes)?;
    let mut replaced: Vec<&str> = release_mod
        .require
        .iter()
        .filter(|r| r.path.starts_with("k8s.io/") && r.version == "v0.0.0")
        .map(|r| r.path.as_str())
        .collect();
    replaced.sort_unstable();
    replaced.dedup();
    if replaced.is_empty() {
        bail!(
            "the go.mod of k8s.io/kubernetes {kubernetes} requires no k8s.io module at v0.0.0: is it a real release?"
        );
    }
    let go = release_mod.go.as_deref().unwrap_or("1.24.0");
    let mut text = format!(
        "// Generated by the testbed crate (testbed/src/controlplane/release.rs) from the go.mod of\n\
         // k8s.io/kubernetes {kubernetes}, then `go mod tidy`. Do not edit: change KUBERNETES_VERSION and\n\
         // run `cargo run -p testbed -- build --update-module`.\n\
         module {KUBERNETES_MODULE}\n\ngo {go}\n"
    );
    for d in &release_mod.godebug {
        text.push_str(&format!("\ngodebug {}={}\n", d.key, d.value));
    }
    text.push_str(&format!(
        "\nrequire k8s.io/kubernetes {kubernetes}\n\nreplace (\n"
    ));
    for path in replaced {
        text.push_str(&format!("\t{path} => {path} {staging}\n"));
    }
    text.push_str(")\n");
    Ok(text)
}

/// `tools.go` of a module: blank imports of its commands so `go mod tidy` keeps their dependencies.
pub fn tools_go(package: &str, commands: &[&str]) -> String {
    let mut text = format!(
        "//go:build tools\n\n// Package {package} only pins the commands the test bed builds (see go.mod).\npackage {package}\n\nimport (\n"
    );
    for c in commands {
        text.push_str(&format!("\t_ \"{c}\"\n"));
    }
    text.push_str(")\n");
    text
}

/// The module (directory and commands) that builds kube-apiserver and kube-controller-manager
/// for `release`: the committed one for the pinned release, else a generated one under `scratch`.
pub fn kubernetes_module(go: &Go, release: &Release, scratch: &Path) -> Result<Module> {
    let dir = if release.is_pinned() {
        committed_modules_dir().join("kubernetes")
    } else {
        let dir = scratch.join(format!("kubernetes-{}", release.kubernetes));
        if !dir.join("go.sum").is_file() {
            eprintln!(
                "testbed: generating the Go module for k8s.io/kubernetes {} in {}",
                release.kubernetes,
                dir.display()
            );
            write_kubernetes_module(go, &release.kubernetes, &dir)?;
        }
        dir
    };
    Ok(Module {
        dir,
        commands: KUBERNETES_COMMANDS.iter().map(|s| s.to_string()).collect(),
        kubernetes: Some(release.kubernetes.clone()),
    })
}

/// Generate (go.mod, tools.go) and `go mod tidy` the Kubernetes module for `kubernetes` in `dir`.
pub fn write_kubernetes_module(go: &Go, kubernetes: &str, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let release_mod = go.release_go_mod("k8s.io/kubernetes", kubernetes, dir)?;
    let text = kubernetes_go_mod(kubernetes, &release_mod)?;
    std::fs::write(dir.join("go.mod"), text)?;
    std::fs::write(
        dir.join("tools.go"),
        tools_go("kubernetes", &KUBERNETES_COMMANDS),
    )?;
    go.tidy(dir)
}

/// The module that builds etcd (committed; `etcd_module_pins` checks it requires ETCD_VERSION).
pub fn etcd_module() -> Module {
    Module {
        dir: committed_modules_dir().join("etcd"),
        commands: vec![ETCD_COMMAND.to_string()],
        kubernetes: None,
    }
}

/// Does the committed etcd module require `go.etcd.io/etcd/server/v3` at `release.etcd`?
pub fn check_etcd_module(go: &Go, release: &Release) -> Result<()> {
    let dir = committed_modules_dir().join("etcd");
    let pinned = go.edit_json(&dir.join("go.mod"))?;
    let found = pinned
        .require
        .iter()
        .find(|r| r.path == ETCD_COMMAND)
        .map(|r| r.version.clone());
    if found.as_deref() != Some(release.etcd.as_str()) {
        bail!(
            "{} requires {ETCD_COMMAND} {found:?}, but ETCD_VERSION is {}: update the module (go get {ETCD_COMMAND}@{} && go mod tidy)",
            dir.display(),
            release.etcd,
            release.etcd
        );
    }
    Ok(())
}

/// `-X` flags so `/version` and `kubectl version` report the release (both version packages:
/// component-base for the servers, client-go for their clients).
pub fn kubernetes_version_flags(kubernetes: &str, release_time: &str) -> Result<Vec<String>> {
    let staging = staging_version(kubernetes)?;
    let minor = staging.split('.').nth(1).unwrap_or_default().to_string();
    let mut flags = Vec::new();
    for package in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        for (var, value) in [
            ("gitVersion", kubernetes.to_string()),
            ("gitMajor", "1".to_string()),
            ("gitMinor", minor.clone()),
            ("gitTreeState", "clean".to_string()),
            ("buildDate", release_time.to_string()),
        ] {
            flags.push(format!("{package}.{var}={value}"));
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_versions() {
        assert_eq!(staging_version("v1.33.13").unwrap(), "v0.33.13");
        assert_eq!(staging_version("v1.37.2").unwrap(), "v0.37.2");
        assert!(staging_version("1.33.13").is_err());
        assert!(staging_version("v2.0.1").is_err());
    }

    #[test]
    fn replaces_exactly_the_v0_0_0_staging_requirements() {
        let release: GoModJson = serde_json::from_str(
            r#"{"Go":"1.24.0","GoDebug":[{"Key":"default","Value":"go1.24"}],"Require":[
                {"Path":"k8s.io/api","Version":"v0.0.0"},
                {"Path":"k8s.io/klog/v2","Version":"v2.130.1"},
                {"Path":"github.com/x/y","Version":"v0.0.0"},
                {"Path":"k8s.io/apimachinery","Version":"v0.0.0","Indirect":true}]}"#,
        )
        .unwrap();
        let text = kubernetes_go_mod("v1.33.13", &release).unwrap();
        assert!(text.contains("\ngo 1.24.0\n"), "{text}");
        assert!(text.contains("\ngodebug default=go1.24\n"), "{text}");
        assert!(
            text.contains("\nrequire k8s.io/kubernetes v1.33.13\n"),
            "{text}"
        );
        assert!(
            text.contains("replace (\n\tk8s.io/api => k8s.io/api v0.33.13\n\tk8s.io/apimachinery => k8s.io/apimachinery v0.33.13\n)\n"),
            "{text}"
        );
        assert!(!text.contains("klog"), "{text}");
    }

    #[test]
    fn version_flags_name_the_release() {
        let flags = kubernetes_version_flags("v1.33.13", "2026-06-11T16:59:07Z").unwrap();
        assert!(flags.contains(&"k8s.io/component-base/version.gitVersion=v1.33.13".to_string()));
        assert!(flags.contains(&"k8s.io/client-go/pkg/version.gitMinor=33".to_string()));
        assert!(
            flags.contains(
                &"k8s.io/component-base/version.buildDate=2026-06-11T16:59:07Z".to_string()
            )
        );
    }
}
