//! Fails when crds/aoai.dev_*.yaml differ from the Rust types. Regenerate with
//! `cargo xtask crds` (or `UPDATE_CRDS=1 cargo nextest run -p aoai-operator --test crds_current`).

use std::path::Path;

#[test]
fn crds_directory_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let update = std::env::var("UPDATE_CRDS").is_ok_and(|v| v == "1");
    let mut stale = vec![];
    for (name, content) in aoai_operator::crd::crd_files() {
        let path = dir.join(name);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != content {
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &content).unwrap();
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale CRDs: {stale:?} — run `cargo xtask crds` (or UPDATE_CRDS=1 cargo test --test crds_current) and commit the result"
    );
}

#[test]
fn crd_yaml_is_every_crd() {
    let y = aoai_operator::crd::crd_yaml();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&y)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let crds = aoai_operator::crd::crds();
    assert_eq!(docs.len(), crds.len());
    assert!(docs.len() >= 2);
    for (doc, crd) in docs.iter().zip(&crds) {
        assert_eq!(doc["spec"]["names"]["kind"], crd.spec.names.kind.as_str());
    }
    assert_eq!(docs[0]["spec"]["scope"], "Cluster", "AIAccount");
    assert_eq!(docs[1]["spec"]["scope"], "Cluster", "AIWorkspace");
    assert_eq!(docs[2]["spec"]["scope"], "Namespaced", "ModelDeployment");
}
