//! `cargo xtask crds`: regenerate `crds/` and `charts/aoai-operator/crds/` from the operator's
//! Rust types (`aoai-operator crd` prints every CRD as multi-document YAML).
//!
//! Each document is written verbatim (without its `---` separator) to `<group>_<plural>.yaml`,
//! named from the CRD's `metadata.name` (`<plural>.<group>`).
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

use crate::util::{self, step};

/// Split multi-document YAML into documents, keeping each document's text as printed.
pub fn split_documents(text: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim_end() == "---" {
            if !current.trim().is_empty() {
                docs.push(std::mem::take(&mut current));
            }
            current.clear();
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    if !current.trim().is_empty() {
        docs.push(current);
    }
    docs
}

/// (file name, contents) for each CRD the operator prints.
pub fn generate() -> Result<Vec<(String, String)>> {
    step("cargo build --package aoai-operator --bin aoai-operator");
    let status = util::cargo()
        .args([
            "build",
            "--quiet",
            "--package",
            "aoai-operator",
            "--bin",
            "aoai-operator",
        ])
        .status()?;
    if !status.success() {
        bail!("building aoai-operator failed");
    }
    let binary = util::debug_bin("aoai-operator");
    let output = Command::new(&binary)
        .arg("crd")
        .output()
        .with_context(|| format!("running {} crd", binary.display()))?;
    if !output.status.success() {
        bail!(
            "`aoai-operator crd` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8(output.stdout)?;
    let mut files = Vec::new();
    for doc in split_documents(&text) {
        let value: serde_yaml::Value =
            serde_yaml::from_str(&doc).context("parsing a CRD document")?;
        if value.get("kind").and_then(|k| k.as_str()) != Some("CustomResourceDefinition") {
            bail!("`aoai-operator crd` printed a document that is not a CustomResourceDefinition");
        }
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .context("CRD without metadata.name")?;
        let (plural, group) = name
            .split_once('.')
            .context("CRD name is not <plural>.<group>")?;
        files.push((format!("{group}_{plural}.yaml"), doc));
    }
    if files.is_empty() {
        bail!("`aoai-operator crd` printed no CRDs");
    }
    Ok(files)
}

pub fn run(check: bool) -> Result<ExitCode> {
    let root = util::root();
    let files = generate()?;
    let targets: Vec<PathBuf> = vec![root.join("crds"), root.join("charts/aoai-operator/crds")];
    let mut stale = Vec::new();
    for dir in &targets {
        if !check {
            std::fs::create_dir_all(dir)?;
        }
        // Remove CRD files that the operator no longer prints.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.ends_with(".yaml") && !files.iter().any(|(file, _)| *file == name) {
                    stale.push(entry.path());
                    if !check {
                        std::fs::remove_file(entry.path())?;
                    }
                }
            }
        }
        for (name, contents) in &files {
            let path = dir.join(name);
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if current != *contents {
                stale.push(path.clone());
                if !check {
                    std::fs::write(&path, contents)?;
                }
            }
        }
    }
    if check {
        if stale.is_empty() {
            println!("CRDs are up to date");
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("stale CRD files (run `cargo xtask crds`):");
        for path in stale {
            eprintln!("  {}", path.display());
        }
        return Ok(ExitCode::FAILURE);
    }
    for (name, _) in &files {
        println!("wrote crds/{name} and charts/aoai-operator/crds/{name}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_documents() {
        let docs = super::split_documents("---\na: 1\n---\nb: 2\n...\n---\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0], "a: 1\n");
    }
}
