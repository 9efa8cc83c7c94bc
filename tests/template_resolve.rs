//! Provisioning content resolved from real ConfigMaps and Secrets, and the digests it yields.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use lxc_operator::crd::provisioning::Provisioning;
use lxc_operator::provision::content::resolve::{Scope, resolve};
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

    let resolved = resolve(&client, &provisioning(&ns), "spec", Scope::Cluster)
        .await
        .unwrap();
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
    let after = resolve(&client, &provisioning(&ns), "spec", Scope::Cluster)
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
    let err = resolve(&client, &provisioning(&ns), "spec", Scope::Cluster)
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
    let err = resolve(&client, &provisioning(&ns), "spec", Scope::Cluster)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("spec.files[1].contentFrom.configMapKeyRef: ConfigMap {ns}/app has no key \"app.conf\"")
    );
    // A template (cluster-scoped) must name the namespace; a container reads its own.
    let no_ns: Provisioning = serde_json::from_value(json!({
        "files": [{"path": "/x", "contentFrom": {"configMapKeyRef": {"name": "app", "key": "other"}}}]
    }))
    .unwrap();
    let err = resolve(&client, &no_ns, "spec", Scope::Cluster)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("namespace is required"), "{err}");
    let ok = resolve(&client, &no_ns, "spec.provisioning", Scope::Namespace(&ns))
        .await
        .unwrap();
    assert_eq!(ok.files[0].content, b"x");
}

/// A container's provisioning that first reads a (missing) ConfigMap of its own namespace, then
/// a script from a Secret in `other`.
fn reaching_into(other: &str) -> Provisioning {
    serde_json::from_value(json!({
        "files": [{"path": "/etc/app.conf", "contentFrom": {"configMapKeyRef": {"name": "missing", "key": "k"}}}],
        "scripts": [{"name": "steal", "contentFrom": {"secretKeyRef": {"name": "stolen", "namespace": other, "key": "token"}}}]
    }))
    .unwrap()
}

#[tokio::test]
async fn a_container_naming_another_namespace_is_refused_before_anything_is_read() {
    let cp = test_world::control_plane();
    let client = cp.client().await;
    let ns = cp.namespace("tenant").await;
    let value = format!("KUBE-SYSTEM-SECRET-{}", std::process::id());
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "stolen"}, "stringData": {"token": value}
    }))
    .unwrap();
    let kube_system: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    let _ = kube_system.delete("stolen", &Default::default()).await;
    kube_system.create(&PostParams::default(), &secret).await.unwrap();

    let spec = reaching_into("kube-system");
    let err = resolve(&client, &spec, "spec.provisioning", Scope::Namespace(&ns))
        .await
        .unwrap_err();
    assert!(err.is_invalid(), "{err}");
    // The refusal names the field; files[0] (a missing ConfigMap, read first in list order)
    // was not read, or the error would be its "not found".
    assert_eq!(
        err.to_string(),
        format!(
            "spec.provisioning.scripts[0].contentFrom.secretKeyRef.namespace: namespace \"kube-system\" \
             is not allowed: an object in namespace \"{ns}\" reads content only from its own namespace \
             (leave namespace out)"
        )
    );
    assert!(
        !format!("{err} {err:?}").contains(&value),
        "the Secret's value leaks nowhere"
    );

    // The same against a client that cannot reach any API server: the same refusal, not a
    // connection error, so no request was even attempted.
    let nowhere = kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
    let err = resolve(&nowhere, &spec, "spec.provisioning", Scope::Namespace(&ns))
        .await
        .unwrap_err();
    assert!(
        err.is_invalid() && err.to_string().contains("secretKeyRef.namespace"),
        "{err}"
    );

    // Naming its own namespace reads it (the CRD refuses that spelling; the code allows it);
    // a template, cluster-scoped, reads kube-system as it says.
    let own: Provisioning = serde_json::from_value(json!({
        "scripts": [{"name": "own", "content": "true\n"}],
        "files": [{"path": "/x", "contentFrom": {"configMapKeyRef": {"name": "missing", "namespace": ns, "key": "k"}}}]
    }))
    .unwrap();
    let err = resolve(&client, &own, "spec.provisioning", Scope::Namespace(&ns))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not found"),
        "own namespace is read: {err}"
    );
    let template = resolve(&client, &spec_without_local(&spec), "spec", Scope::Cluster)
        .await
        .unwrap();
    assert_eq!(template.scripts[0].content, value.as_bytes());
    kube_system.delete("stolen", &Default::default()).await.unwrap();
}

/// `spec` with its local file dropped (a template must name namespaces).
fn spec_without_local(spec: &Provisioning) -> Provisioning {
    Provisioning {
        files: Vec::new(),
        ..spec.clone()
    }
}
