//! Fails when the checked-in CRDs in `crds/` differ from what the Rust types generate.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;

#[test]
fn crds_dir_is_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let files = runnel_operator::crdgen::crd_files().expect("CRDs render");
    for file in files {
        let path = dir.join(file.file_name);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == file.yaml,
            "crds/ is stale: {} differs from the generated CRD; run \
             `cargo run -p runnel-operator --bin crdgen -- --out-dir crds` from the repository root \
             and commit the result",
            path.display()
        );
    }
}

#[test]
fn chart_crds_match_crds_dir() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in runnel_operator::crdgen::crd_files().expect("CRDs render") {
        let chart = root.join("charts/runnel/crds").join(file.file_name);
        let on_disk = std::fs::read_to_string(&chart).unwrap_or_default();
        assert!(
            on_disk == file.yaml,
            "charts/runnel/crds/ is stale: {} differs; run \
             `cargo run -p runnel-operator --bin crdgen -- --out-dir charts/runnel/crds`",
            chart.display()
        );
    }
}

#[test]
fn generated_crds_have_no_cel() {
    let yaml = runnel_operator::crdgen::crds_yaml().expect("CRDs render");
    assert!(!yaml.contains("x-kubernetes-validations"));
    assert!(yaml.contains("subresources:\n      status: {}"));
}
