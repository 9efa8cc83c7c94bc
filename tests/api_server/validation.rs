//! The API server itself refuses invalid specs (OpenAPI + CEL), naming the offending field:
//! a corpus of invalid manifests under `tests/invalid/`, one mistake each, and the
//! immutability and grow-only rules on update.

use kube::api::{DynamicObject, PostParams};
use serde_json::{Value, json};

use crate::support::{api_for, repo};

/// The field a corpus file says its mistake is in (`# expect: spec.hostname`).
fn expected_field(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("# expect: "))
        .expect("corpus file starts with `# expect: <field>`")
        .trim()
        .to_string()
}

/// Creates the object and returns the API server's refusal (status, message, cause fields).
async fn refusal(client: &kube::Client, ns: &str, mut obj: Value) -> Option<(u16, String, Vec<String>)> {
    let kind = obj["kind"].as_str().unwrap().to_string();
    obj["metadata"]["name"] = json!(format!("bad-{}", rand_suffix()));
    let dynamic: DynamicObject = serde_json::from_value(obj).unwrap();
    match api_for(client.clone(), &kind, ns)
        .create(&PostParams::default(), &dynamic)
        .await
    {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => {
            let fields = status
                .details
                .as_ref()
                .map(|d| {
                    d.causes
                        .iter()
                        // The API server adds this note whenever CEL rules were skipped.
                        .filter(|c| !c.message.contains("some validation rules were not checked"))
                        .map(|c| c.field.clone())
                        .collect()
                })
                .unwrap_or_default();
            Some((status.code, status.message.clone(), fields))
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    format!("{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

#[tokio::test]
async fn every_invalid_manifest_is_refused_naming_its_field() {
    let cp = test_world::control_plane();
    let client = cp.client().await;
    let ns = cp.namespace("invalid").await;
    let mut files: Vec<_> = std::fs::read_dir(repo().join("tests/invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 30,
        "the corpus needs at least 30 manifests, has {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let field = expected_field(&text);
        let obj: Value = serde_yaml_ng::from_str(&text).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        match refusal(&client, &ns, obj).await {
            None => failures.push(format!("{name}: accepted, expected a refusal naming {field}")),
            Some((code, message, fields)) => {
                // One mistake each: every cause is about the expected field, and the message names it.
                let all_on_field = !fields.is_empty() && fields.iter().all(|f| f.starts_with(&field));
                if code != 422 || !message.contains(&field) || !all_on_field {
                    failures.push(format!(
                        "{name}: {code} {message} (causes: {fields:?}), expected {field}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus files misbehaved:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// A valid container used by the update tests.
fn container(name: &str) -> Value {
    json!({
        "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcContainer",
        "metadata": {"name": name},
        "spec": {
            "nodeRef": "pve1", "templateRef": "debian-12-web", "vmid": 4242, "unprivileged": true,
            "rootfs": {"sizeGiB": 8},
            "mountPoints": [{"path": "/srv/data", "sizeGiB": 4}]
        }
    })
}

/// Applies `change` to a freshly created container and returns the refusal, if any.
async fn update_refusal(name: &str, change: impl FnOnce(&mut Value)) -> Option<(u16, String)> {
    let cp = test_world::control_plane();
    let client = cp.client().await;
    let ns = cp.namespace("update").await;
    let api = api_for(client, "LxcContainer", &ns);
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(container(name)).unwrap(),
        )
        .await
        .expect("valid container is accepted");
    let mut updated = serde_json::to_value(&created).unwrap();
    change(&mut updated);
    match api
        .replace(
            name,
            &PostParams::default(),
            &serde_json::from_value(updated).unwrap(),
        )
        .await
    {
        Ok(_) => None,
        Err(kube::Error::Api(s)) => Some((s.code, s.message.clone())),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn assert_refused(refusal: Option<(u16, String)>, field: &str, words: &str) {
    let (code, message) = refusal.unwrap_or_else(|| panic!("update of {field} was accepted"));
    assert_eq!(code, 422, "{message}");
    assert!(message.contains(field) && message.contains(words), "{message}");
}

#[tokio::test]
async fn vmid_cannot_change_or_be_removed() {
    assert_refused(
        update_refusal("vmid-change", |o| o["spec"]["vmid"] = json!(4243)).await,
        "spec.vmid",
        "immutable",
    );
    let removed = update_refusal("vmid-remove", |o| {
        o["spec"].as_object_mut().unwrap().remove("vmid");
    });
    assert_refused(removed.await, "spec.vmid", "immutable");
}

#[tokio::test]
async fn unprivileged_cannot_change() {
    let refusal = update_refusal("unpriv-change", |o| o["spec"]["unprivileged"] = json!(false)).await;
    assert_refused(refusal, "spec.unprivileged", "immutable");
}

#[tokio::test]
async fn rootfs_can_grow_but_not_shrink() {
    assert_eq!(
        update_refusal("rootfs-grow", |o| o["spec"]["rootfs"]["sizeGiB"] = json!(16)).await,
        None
    );
    let refusal = update_refusal("rootfs-shrink", |o| o["spec"]["rootfs"]["sizeGiB"] = json!(4)).await;
    assert_refused(refusal, "spec.rootfs.sizeGiB", "only grow");
}

#[tokio::test]
async fn mount_points_can_grow_but_not_shrink() {
    let grow = update_refusal("mp-grow", |o| o["spec"]["mountPoints"][0]["sizeGiB"] = json!(5)).await;
    assert_eq!(grow, None);
    let refusal = update_refusal("mp-shrink", |o| o["spec"]["mountPoints"][0]["sizeGiB"] = json!(2)).await;
    assert_refused(refusal, "spec.mountPoints[0].sizeGiB", "only grow");
}

#[tokio::test]
async fn other_fields_stay_mutable() {
    let change = |o: &mut Value| {
        o["spec"]["hostname"] = json!("renamed");
        o["spec"]["powerState"] = json!("Stopped");
        o["spec"]["nodeRef"] = json!("pve2");
    };
    assert_eq!(update_refusal("mutable", change).await, None);
}

/// A container whose one file reads `reference` (a `configMapKeyRef` or `secretKeyRef` body).
fn container_reading(name: &str, kind: &str, reference: Value) -> Value {
    let mut ct = container(name);
    ct["spec"]["provisioning"] = json!({
        "files": [{"path": "/etc/app.conf", "contentFrom": {kind: reference}}]
    });
    ct
}

#[tokio::test]
async fn a_container_reads_content_from_its_own_namespace_only_a_template_names_any() {
    let cp = test_world::control_plane();
    let client = cp.client().await;
    let ns = cp.namespace("content-ns").await;
    let containers = api_for(client.clone(), "LxcContainer", &ns);
    let create = |obj: Value| {
        let containers = containers.clone();
        async move {
            let obj: DynamicObject = serde_json::from_value(obj).unwrap();
            containers.create(&PostParams::default(), &obj).await
        }
    };
    // Without a namespace: accepted (the container's own namespace is implied).
    let local = json!({"name": "app", "key": "app.conf"});
    create(container_reading("local", "secretKeyRef", local.clone()))
        .await
        .expect("a reference without namespace is accepted");
    create(container_reading("local-map", "configMapKeyRef", local))
        .await
        .expect("a reference without namespace is accepted");
    // Any namespace, even the container's own, is refused, naming the field.
    for (name, kind, namespace) in [
        ("kube", "secretKeyRef", "kube-system"),
        ("own", "secretKeyRef", ns.as_str()),
        ("map", "configMapKeyRef", "kube-system"),
    ] {
        let reference = json!({"name": "app", "namespace": namespace, "key": "app.conf"});
        let err = create(container_reading(name, kind, reference))
            .await
            .expect_err("a reference naming a namespace is refused");
        let kube::Error::Api(status) = err else {
            panic!("unexpected error: {err}")
        };
        let field = format!("spec.provisioning.files[0].contentFrom.{kind}.namespace");
        assert_eq!(status.code, 422, "{}", status.message);
        assert!(
            status.message.contains(&field) && status.message.contains("own namespace"),
            "{}",
            status.message
        );
    }

    // The cluster-scoped template keeps explicit namespaces: the rule is the container's alone.
    let templates = api_for(client, "LxcTemplate", "");
    let name = format!("content-ns-{}", std::process::id());
    let template: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate",
        "metadata": {"name": name},
        "spec": {
            "osTemplate": {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
            "files": [{"path": "/etc/app.conf", "contentFrom": {"secretKeyRef":
                {"name": "app", "namespace": "lxc-operator", "key": "app.conf"}}}]
        }
    }))
    .unwrap();
    templates
        .create(&PostParams::default(), &template)
        .await
        .expect("a template names the namespace of its references");
    templates
        .delete(&name, &Default::default())
        .await
        .expect("delete the template");
}

#[tokio::test]
async fn the_ownership_marker_cannot_be_written_into_the_description() {
    let ok = update_refusal("desc-plain", |o| {
        o["spec"]["description"] = json!("web server\nowner: team-a\n")
    });
    assert_eq!(ok.await, None, "an ordinary description is accepted");
    for (name, forged) in [
        (
            "desc-marker",
            "x\n\nlxc-operator-uid: 6f1c2d8e-0000-4000-8000-00000000beef\n",
        ),
        (
            "desc-marker-case",
            "LXC-Operator-UID: 6f1c2d8e-0000-4000-8000-00000000beef",
        ),
    ] {
        let refusal = update_refusal(name, |o| o["spec"]["description"] = json!(forged)).await;
        assert_refused(refusal, "spec.description", "ownership marker");
    }
}
