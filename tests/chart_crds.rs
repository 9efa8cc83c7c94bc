//! The chart on a real API server through real `helm`: `install --dry-run=server` passes, the
//! API server accepts every optional part (`kubectl apply --dry-run=server`),
//! `install` creates them, `upgrade` upgrades a changed one, `uninstall` keeps them and every
//! object in them (the bundled Redis keeps its password across the upgrade), and installing the
//! release again adopts them. A test binary of its own: it
//! deletes and re-creates the CRDs the test world installed.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams};
use lxc_operator::crd::{LxcContainer, LxcTemplate};
use serde_json::json;
use support::apply;
use support::chart::{CHART, helm};

const CRDS: [&str; 3] = [
    "lxccontainers.lxc.infrahaus.dev",
    "lxctemplates.lxc.infrahaus.dev",
    "proxmoxnodes.lxc.infrahaus.dev",
];

/// `helm <args>` against the test control plane; panics with helm's output when it fails.
fn helm_ok(args: &[&str]) -> String {
    let cp = test_world::control_plane();
    let out = helm()
        .args(args)
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The description of the LxcTemplate schema's top level, as the API server holds it.
async fn template_description(crds: &Api<CustomResourceDefinition>) -> String {
    let crd = crds.get("lxctemplates.lxc.infrahaus.dev").await.unwrap();
    let schema = crd.spec.versions[0]
        .schema
        .clone()
        .unwrap()
        .open_api_v3_schema
        .unwrap();
    schema.description.unwrap_or_default()
}

/// A copy of the chart whose LxcTemplate CRD has another top-level description.
fn chart_with_changed_crd(dir: &std::path::Path, from: &str, to: &str) -> std::path::PathBuf {
    let copy = dir.join("lxc-operator");
    let status = std::process::Command::new("cp")
        .args(["-a", CHART])
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let file = copy.join("files/crds/lxctemplates.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let needle = format!("description: {from}\n");
    assert_eq!(text.matches(&needle).count(), 1, "one {needle:?} in the CRD");
    std::fs::write(&file, text.replace(&needle, &format!("description: {to}\n"))).unwrap();
    copy
}

async fn established(crds: &Api<CustomResourceDefinition>, name: &str) {
    for _ in 0..300 {
        let crd = crds.get(name).await.unwrap();
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never Established");
}

#[tokio::test]
async fn helm_installs_upgrades_and_keeps_the_crds_and_their_objects() {
    let cp = test_world::control_plane();
    let kube = cp.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(kube.clone());
    // A cluster without the CRDs, as before a first install.
    for name in CRDS {
        crds.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for name in CRDS {
        // The API server's own cleanup of a deleted CRD can take a while on a loaded machine.
        for _ in 0..1200 {
            if crds.get_opt(name).await.unwrap().is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(crds.get_opt(name).await.unwrap().is_none(), "{name} deleted");
    }
    let ns = cp.namespace("helm").await;
    let release = ["crd-life", CHART, "--namespace", &ns];

    helm_ok(&[&["install"][..], &release, &["--dry-run=server"]].concat());
    assert!(
        crds.get_opt(CRDS[0]).await.unwrap().is_none(),
        "a dry run creates nothing"
    );

    // With the bundled Redis: its generated password must survive the upgrade.
    let installed = helm_ok(&[&["install"][..], &release, &["--set=bundled.redis.enabled=true"]].concat());
    // NOTES.txt: how to reach the status page, the examples, and the bundled server's warning.
    for line in [
        "port-forward svc/crd-life-lxc-operator 8081 8080",
        "kubectl apply -f examples/",
        "NOT FOR\nPRODUCTION",
        "lost\nwith the pod",
    ] {
        assert!(installed.contains(line), "NOTES say {line:?}:\n{installed}");
    }
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), &ns);
    let password = |s: Secret| s.data.unwrap()["password"].0.clone();
    let redis_password = password(secrets.get("crd-life-lxc-operator-redis").await.unwrap());
    for name in CRDS {
        established(&crds, name).await;
    }
    // Every optional part the API server can validate (not the ServiceMonitor: no Prometheus
    // Operator CRDs here) passes its validation: `helm --dry-run=server` sends no object to be
    // validated, so the rendering goes through `kubectl apply --dry-run=server`.
    let everything = support::chart::template_text(
        "all",
        &ns,
        &[
            "crds.install=false",
            "replicaCount=2",
            "bundled.postgres.enabled=true",
            "bundled.redis.enabled=true",
            "ingress.enabled=true",
        ],
    )
    .unwrap();
    let file = support::scratch("chart-all").join("all.yaml");
    std::fs::write(&file, everything).unwrap();
    let checked = cp
        .kubectl()
        .args(["apply", "--dry-run=server", "--namespace", &ns, "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "the API server refuses the rendering: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let original = template_description(&crds).await;
    assert!(!original.is_empty());

    // Objects in the CRDs, as a user makes them.
    let template = format!("{ns}-debian");
    apply(
        &kube,
        json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate", "metadata": {"name": template},
               "spec": {"osTemplate": {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}}}),
    )
    .await;
    let containers: Api<LxcContainer> = Api::namespaced(kube.clone(), &ns);
    let container: LxcContainer = serde_json::from_value(json!({
        "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcContainer", "metadata": {"name": "kept"},
        "spec": {"nodeRef": "pve1", "templateRef": template}}))
    .unwrap();
    containers.create(&Default::default(), &container).await.unwrap();

    // The upgrade carries a changed CRD to the API server.
    let scratch = support::scratch("chart-crds");
    let changed = "Changed by the upgrade test.";
    let copy = chart_with_changed_crd(&scratch, &original, changed);
    helm_ok(&[
        "upgrade",
        "crd-life",
        copy.to_str().unwrap(),
        "--namespace",
        &ns,
        "--set=bundled.redis.enabled=true",
    ]);
    assert_eq!(
        password(secrets.get("crd-life-lxc-operator-redis").await.unwrap()),
        redis_password,
        "the bundled Redis keeps its password across an upgrade"
    );
    assert_eq!(
        template_description(&crds).await,
        changed,
        "helm upgrade upgraded the CRD"
    );

    helm_ok(&["uninstall", "crd-life", "--namespace", &ns, "--wait"]);
    let roles: Api<ClusterRole> = Api::all(kube.clone());
    assert!(
        roles.get_opt("crd-life-lxc-operator").await.unwrap().is_none(),
        "uninstall removed the release's other objects"
    );
    for name in CRDS {
        let crd = crds.get(name).await.unwrap();
        assert!(crd.metadata.deletion_timestamp.is_none(), "{name} kept");
    }
    assert_eq!(template_description(&crds).await, changed);
    assert!(
        containers.get_opt("kept").await.unwrap().is_some(),
        "the container object is kept"
    );
    assert!(
        Api::<LxcTemplate>::all(kube.clone())
            .get_opt(&template)
            .await
            .unwrap()
            .is_some(),
        "the template object is kept"
    );

    // Installing the release again adopts the kept CRDs and gives them back their description.
    helm_ok(&[&["install"][..], &release].concat());
    assert_eq!(template_description(&crds).await, original);
    assert!(containers.get_opt("kept").await.unwrap().is_some());
}
