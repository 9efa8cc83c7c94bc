//! The Helm chart from the tests' side: real `helm` (from the test world's bootstrap) rendering
//! `charts/lxc-operator/`, and the rendered objects as JSON.

use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;

/// The chart's folder.
pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/lxc-operator");

/// `helm`, with its caches and configuration in a scratch folder (nothing of the user's).
pub fn helm() -> Command {
    let binaries = test_world::Binaries::find().expect("test world binaries (run make bootstrap)");
    let home = std::env::temp_dir().join(format!("lxc-helm-{}", std::process::id()));
    let mut cmd = Command::new(binaries.helm);
    cmd.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG");
    cmd
}

/// Runs a command to its end.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run helm")
}

/// `helm template <release> <chart> --namespace <ns> --set ...`: the manifest text, or helm's
/// error message.
pub fn template_text(release: &str, ns: &str, sets: &[&str]) -> Result<String, String> {
    let mut cmd = helm();
    cmd.args(["template", release, CHART, "--namespace", ns]);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = run(&mut cmd);
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("helm prints UTF-8"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The objects of a multi-document manifest.
pub fn objects(manifest: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(manifest)
        .map(|doc| Value::deserialize(doc).expect("helm renders YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// `helm template` with these values, as objects; panics with helm's message when it fails.
pub fn render(release: &str, ns: &str, sets: &[&str]) -> Vec<Value> {
    objects(&template_text(release, ns, sets).unwrap_or_else(|e| panic!("helm template {sets:?}: {e}")))
}

/// The one object of `kind` (panics when there is not exactly one).
pub fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} rendered, found {}", found.len());
    found[0]
}

/// The operator's Deployment (not a bundled server's).
pub fn operator_deployment(objects: &[Value]) -> &Value {
    objects
        .iter()
        .find(|o| {
            o["kind"] == "Deployment" && o["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
        })
        .expect("the operator's Deployment")
}

/// The operator's container in the rendered Deployment.
pub fn operator_container(objects: &[Value]) -> &Value {
    &operator_deployment(objects)["spec"]["template"]["spec"]["containers"][0]
}

/// The container's environment variable `name` (its entry).
pub fn env<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"].as_array()?.iter().find(|e| e["name"] == name)
}
