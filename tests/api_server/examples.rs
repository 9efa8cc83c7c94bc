//! Every manifest in `examples/` applies cleanly with the real kubectl.

use crate::support::{kubectl_ok, repo};

#[tokio::test]
async fn every_example_applies_with_kubectl() {
    test_world::control_plane();
    let dir = repo().join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "examples/ holds too few manifests: {files:?}");
    for file in &files {
        let out = kubectl_ok(&["apply", "--validate=strict", "-f", file.to_str().unwrap()]);
        assert!(
            out.contains("created") || out.contains("configured") || out.contains("unchanged"),
            "{out}"
        );
    }
    // What was applied is what is stored: spot-check one field of each kind.
    let node = kubectl_ok(&["get", "pvenode", "pve1", "-o", "jsonpath={.spec.vmidRange.min}"]);
    assert_eq!(node, "1000");
    let tpl = kubectl_ok(&[
        "get",
        "lxct",
        "debian-12-web",
        "-o",
        "jsonpath={.spec.packages.apt[0]}",
    ]);
    assert_eq!(tpl, "nginx");
    let ct = kubectl_ok(&[
        "get",
        "lxc",
        "db-1",
        "-n",
        "default",
        "-o",
        "jsonpath={.spec.network[0].ipv4.gateway}",
    ]);
    assert_eq!(ct, "192.168.20.1");
    // Defaults from the schema are filled in by the API server.
    let policy = kubectl_ok(&[
        "get",
        "lxc",
        "web-1",
        "-n",
        "default",
        "-o",
        "jsonpath={.spec.updateStrategy.shutdownTimeoutSeconds}",
    ]);
    assert_eq!(policy, "60");
}
