//! `crds/` is exactly what the Rust types generate (`make crds` regenerates it).

use lxc_operator::crd::generate;

#[test]
fn committed_crds_match_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    for (file, crd) in generate::all() {
        let generated = generate::to_yaml(&crd).unwrap();
        let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(
            generated == committed,
            "crds/{file} differs from the types: run `make crds` and commit the result"
        );
    }
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        files,
        generate::all().len(),
        "crds/ holds files the types do not generate"
    );
}
