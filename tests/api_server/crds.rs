//! The CRDs are Established, listed by category, and explained from the doc comments.

use crate::support::kubectl_ok;

#[tokio::test]
async fn crds_are_established_and_served() {
    let cp = test_world::control_plane();
    let client = cp.client().await;
    let api: kube::Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = kube::Api::all(client);
    for name in [
        "proxmoxnodes.lxc.infrahaus.dev",
        "lxctemplates.lxc.infrahaus.dev",
        "lxccontainers.lxc.infrahaus.dev",
    ] {
        let crd = api.get(name).await.expect("CRD installed");
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"),
            "{name} not Established: {conditions:?}"
        );
    }
    let resources = kubectl_ok(&["api-resources", "--api-group=lxc.infrahaus.dev", "-o", "wide"]);
    for (plural, short, namespaced) in [
        ("proxmoxnodes", "pvenode", "false"),
        ("lxctemplates", "lxct", "false"),
        ("lxccontainers", "lxc", "true"),
    ] {
        let line = resources
            .lines()
            .find(|l| l.starts_with(plural))
            .unwrap_or_else(|| panic!("{plural} missing from api-resources:\n{resources}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[1], short, "short name of {plural}: {line}");
        assert_eq!(words[3], namespaced, "scope of {plural}: {line}");
        assert!(line.contains("infrahaus"), "category of {plural}: {line}");
    }
}

#[tokio::test]
async fn kubectl_get_infrahaus_lists_every_kind() {
    let cp = test_world::control_plane();
    let ns = cp.namespace("category").await;
    let node = r#"{"apiVersion":"lxc.infrahaus.dev/v1alpha1","kind":"ProxmoxNode","metadata":{"name":"cat-node"},
        "spec":{"endpoint":"https://pve.example.org:8006","nodeName":"pve1",
                "credentialsSecretRef":{"name":"c","namespace":"default"}}}"#;
    let tpl = r#"{"apiVersion":"lxc.infrahaus.dev/v1alpha1","kind":"LxcTemplate","metadata":{"name":"cat-tpl"},
        "spec":{"osTemplate":{"volid":"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}}}"#;
    let ct = r#"{"apiVersion":"lxc.infrahaus.dev/v1alpha1","kind":"LxcContainer","metadata":{"name":"cat-ct"},
        "spec":{"nodeRef":"cat-node","templateRef":"cat-tpl"}}"#;
    for manifest in [node, tpl, ct] {
        let file = std::env::temp_dir().join(format!("lxc-cat-{}.json", std::process::id()));
        std::fs::write(&file, manifest).unwrap();
        kubectl_ok(&["apply", "-n", &ns, "-f", file.to_str().unwrap()]);
    }
    let listed = kubectl_ok(&["get", "infrahaus", "-A", "-o", "name"]);
    for name in [
        "proxmoxnode.lxc.infrahaus.dev/cat-node",
        "lxctemplate.lxc.infrahaus.dev/cat-tpl",
        "lxccontainer.lxc.infrahaus.dev/cat-ct",
    ] {
        assert!(
            listed.lines().any(|l| l == name),
            "{name} not in `kubectl get infrahaus`:\n{listed}"
        );
    }
    // The printer columns are the ones people look at first.
    let table = kubectl_ok(&["get", "lxc", "-n", &ns]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "PHASE", "NODE", "VMID", "IP", "AGE"]);
    let table = kubectl_ok(&["get", "pvenode", "cat-node"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "VERSION", "CONTAINERS", "AGE"]);
    let table = kubectl_ok(&["get", "lxct", "cat-tpl"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "DIGEST", "AGE"]);
    kubectl_ok(&["delete", "lxc", "cat-ct", "-n", &ns]);
    kubectl_ok(&["delete", "lxct", "cat-tpl"]);
    kubectl_ok(&["delete", "pvenode", "cat-node"]);
}

#[tokio::test]
async fn kubectl_explain_prints_the_doc_comments() {
    test_world::control_plane();
    let resources = kubectl_ok(&["explain", "lxccontainer.spec.resources"]);
    assert!(resources.contains("CPU and memory."), "{resources}");
    assert!(resources.contains("memoryMiB"), "{resources}");
    assert!(resources.contains("Memory in MiB (at least 16)."), "{resources}");
    let policy = kubectl_ok(&["explain", "lxccontainer.spec.deletionPolicy"]);
    assert!(policy.contains("Retain"), "{policy}");
    let tls = kubectl_ok(&["explain", "proxmoxnode.spec.tls.fingerprintSha256"]);
    assert!(tls.contains("pvenode cert info"), "{tls}");
    let files = kubectl_ok(&["explain", "lxctemplate.spec.files.policy"]);
    assert!(
        files.contains("already exists") && files.contains("Backup"),
        "{files}"
    );
}
