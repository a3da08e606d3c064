//! The Go toolchain as the control-plane build uses it: always `GOTOOLCHAIN=local` (the
//! machine's Go, never a downloaded one), errors that say which command failed and how.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::release::GoModJson;

/// The `go` command found on PATH (or in `$GOROOT/bin`).
#[derive(Clone, Debug)]
pub struct Go {
    pub path: PathBuf,
}

impl Go {
    pub fn find() -> Result<Go> {
        let from_root = std::env::var_os("GOROOT").map(|r| PathBuf::from(r).join("bin/go"));
        let on_path = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("go"))
                .find(|c| c.is_file())
        });
        match on_path.or(from_root.filter(|p| p.is_file())) {
            Some(path) => Ok(Go { path }),
            None => bail!(
                "the Go toolchain (go 1.26 or newer) is not on PATH: the test bed builds etcd, kube-apiserver \
                 and kube-controller-manager from Go modules; install Go and put `go` on PATH"
            ),
        }
    }

    /// The toolchain's version read from `$GOROOT/VERSION` without running `go` (so that a cached
    /// build needs no Go invocation); falls back to `go env GOVERSION`.
    pub fn version(&self) -> Result<String> {
        let real = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        if let Some(root) = real.parent().and_then(Path::parent)
            && let Ok(text) = std::fs::read_to_string(root.join("VERSION"))
            && let Some(first) = text.lines().next().filter(|l| l.starts_with("go"))
        {
            return Ok(first.trim().to_string());
        }
        Ok(self
            .output(&["env", "GOVERSION"], Path::new("."))?
            .trim()
            .to_string())
    }

    pub fn command(&self, dir: &Path) -> Command {
        let mut cmd = Command::new(&self.path);
        cmd.current_dir(dir).env("GOTOOLCHAIN", "local");
        cmd
    }

    /// Run `go ARGS` in `dir`, returning stdout; stderr is passed through.
    pub fn output(&self, args: &[&str], dir: &Path) -> Result<String> {
        let out = self
            .command(dir)
            .args(args)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running {} {}", self.path.display(), args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "`go {}` in {} failed ({}); its error is printed above",
                args.join(" "),
                dir.display(),
                out.status
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn run(&self, args: &[&str], dir: &Path) -> Result<()> {
        let status = self
            .command(dir)
            .args(args)
            .status()
            .with_context(|| format!("running {} {}", self.path.display(), args.join(" ")))?;
        if !status.success() {
            bail!(
                "`go {}` in {} failed ({status}); its error is printed above",
                args.join(" "),
                dir.display()
            );
        }
        Ok(())
    }

    /// `go mod edit -json FILE`: the Go tool's own reading of a go.mod file.
    pub fn edit_json(&self, go_mod: &Path) -> Result<GoModJson> {
        let dir = go_mod.parent().unwrap_or(Path::new("."));
        let text = self.output(
            &["mod", "edit", "-json", &go_mod.display().to_string()],
            dir,
        )?;
        serde_json::from_str(&text)
            .with_context(|| format!("parsing `go mod edit -json {}`", go_mod.display()))
    }

    fn download(&self, module: &str, version: &str, dir: &Path) -> Result<Download> {
        let text = self.output(
            &["mod", "download", "-json", &format!("{module}@{version}")],
            dir,
        )?;
        let d: Download = serde_json::from_str(&text)
            .with_context(|| format!("parsing `go mod download -json {module}@{version}`"))?;
        if let Some(e) = d.error {
            bail!("the Go module proxy has no {module}@{version}: {e}");
        }
        Ok(d)
    }

    /// The go.mod of a released module (from the module cache / proxy), as `go mod edit -json` reads it.
    pub fn release_go_mod(&self, module: &str, version: &str, dir: &Path) -> Result<GoModJson> {
        let d = self.download(module, version, dir)?;
        let go_mod = d
            .go_mod
            .with_context(|| format!("`go mod download` gave no go.mod for {module}@{version}"))?;
        self.edit_json(Path::new(&go_mod))
    }

    /// The publication time of a module version (`.info` of the module proxy), RFC 3339.
    pub fn module_time(&self, module: &str, version: &str, dir: &Path) -> Result<String> {
        let d = self.download(module, version, dir)?;
        let info = d
            .info
            .with_context(|| format!("`go mod download` gave no .info for {module}@{version}"))?;
        let info: Info = serde_json::from_str(&std::fs::read_to_string(&info)?)?;
        Ok(info.time)
    }

    pub fn tidy(&self, dir: &Path) -> Result<()> {
        self.run(&["mod", "tidy"], dir)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Download {
    info: Option<String>,
    go_mod: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Info {
    time: String,
}
