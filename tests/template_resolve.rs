//! Provisioning content resolved from real ConfigMaps and Secrets, and the digests it yields.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use lxc_operator::crd::provisioning::Provisioning;
use lxc_operator::provision::content::resolve::resolve;
use serde_json::json;

fn provisioning(ns: &str) -> Provisioning {
    serde_json::from_value(json!({
        "files": [
            {"path": "/etc/motd", "content": "inline\n"},
            {"path": "/etc/app.conf", "contentFrom": {"configMapKeyRef": {"name": "app", "namespace": ns, "key": "app.conf"}}},
            {"path": "/etc/app.key", "mode": "0600", "contentFrom": {"secretKeyRef": {"name": "app-secret", "namespace": ns, "key": "key"}}}
        ],
        "packages": {"apt": ["nginx"], "pip": ["requests"]},
        "scripts": [{"name": "setup", "contentFrom": {"configMapKeyRef": {"name": "app", "namespace": ns, "key": "setup.sh"}}}]
    }))
    .unwrap()
}

#[tokio::test]
async fn content_comes_from_configmaps_and_secrets_and_changes_the_right_digests() {
    let cp = test_world::control_plane();
    let client = cp.client().await;
    let ns = cp.namespace("resolve").await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let map = |conf: &str| -> ConfigMap {
        serde_json::from_value(
            json!({"metadata": {"name": "app"}, "data": {"app.conf": conf, "setup.sh": "echo setup\n"}}),
        )
        .unwrap()
    };
    maps.create(&PostParams::default(), &map("port=80\n"))
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "app-secret"}, "stringData": {"key": "TOP-SECRET-VALUE"}
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();

    let resolved = resolve(&client, &provisioning(&ns), "spec", None).await.unwrap();
    assert_eq!(resolved.files[1].content, b"port=80\n");
    assert_eq!(resolved.files[2].content, b"TOP-SECRET-VALUE");
    assert_eq!(resolved.scripts[0].content, b"echo setup\n");
    let names: Vec<String> = resolved.step_digests().into_iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "file:/etc/motd",
            "file:/etc/app.conf",
            "file:/etc/app.key",
            "packages:apt",
            "packages:pip",
            "script:setup"
        ]
    );
    let before = resolved.step_digests();
    let digest_text = format!("{before:?} {}", resolved.digest());
    assert!(
        !digest_text.contains("TOP-SECRET-VALUE"),
        "secret values never appear in digests"
    );

    // Changing the ConfigMap changes exactly the step that reads that key.
    maps.patch(
        "app",
        &PatchParams::apply("test").force(),
        &Patch::Apply(map("port=8080\n")),
    )
    .await
    .unwrap();
    let after = resolve(&client, &provisioning(&ns), "spec", None)
        .await
        .unwrap()
        .step_digests();
    let changed: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.name.as_str())
        .collect();
    assert_eq!(changed, ["file:/etc/app.conf"]);
}

#[tokio::test]
async fn missing_objects_and_keys_name_the_field() {
    let cp = test_world::control_plane();
    let client = cp.client().await;
    let ns = cp.namespace("resolve-missing").await;
    let err = resolve(&client, &provisioning(&ns), "spec", None)
        .await
        .unwrap_err();
    assert!(err.is_invalid());
    assert_eq!(
        err.to_string(),
        format!("spec.files[1].contentFrom.configMapKeyRef: ConfigMap {ns}/app not found")
    );
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let wrong: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "app"}, "data": {"other": "x"}})).unwrap();
    maps.create(&PostParams::default(), &wrong).await.unwrap();
    let err = resolve(&client, &provisioning(&ns), "spec", None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("spec.files[1].contentFrom.configMapKeyRef: ConfigMap {ns}/app has no key \"app.conf\"")
    );
    // A template (cluster-scoped) must name the namespace; a container defaults to its own.
    let no_ns: Provisioning = serde_json::from_value(json!({
        "files": [{"path": "/x", "contentFrom": {"configMapKeyRef": {"name": "app", "key": "other"}}}]
    }))
    .unwrap();
    let err = resolve(&client, &no_ns, "spec", None).await.unwrap_err();
    assert!(err.to_string().contains("namespace is required"), "{err}");
    let ok = resolve(&client, &no_ns, "spec.provisioning", Some(&ns))
        .await
        .unwrap();
    assert_eq!(ok.files[0].content, b"x");
}
