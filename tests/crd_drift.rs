//! `crds/` is exactly what the Rust types generate, and the Helm chart's copies
//! (`charts/lxc-operator/files/crds/`) are exactly `crds/` (`make crds` regenerates both).

use lxc_operator::crd::generate;

fn assert_same(dir: &std::path::Path, shown: &str) {
    for (file, crd) in generate::all() {
        let generated = generate::to_yaml(&crd).unwrap();
        let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(
            generated == committed,
            "{shown}/{file} differs from the types: run `make crds` and commit the result"
        );
    }
    let files = std::fs::read_dir(dir).unwrap().count();
    assert_eq!(
        files,
        generate::all().len(),
        "{shown}/ holds files the types do not generate: run `make crds`"
    );
}

#[test]
fn committed_crds_match_the_types() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_same(&root.join("crds"), "crds");
}

#[test]
fn the_charts_crds_match_the_types() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_same(
        &root.join("charts/lxc-operator/files/crds"),
        "charts/lxc-operator/files/crds",
    );
}
