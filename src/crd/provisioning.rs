//! What goes into a container after it starts: files, packages, scripts and watched services.
//! Shared by `LxcTemplate` (for every container made from it) and `LxcContainer` (its own).
//!
//! Every value here later reaches a command on the Proxmox host or inside the container, so the
//! schema restricts names and paths to safe characters; the provisioner still never splices
//! them into a shell string.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::ContentSource;

/// An absolute path made of safe characters. The CEL rule on each path refuses `..` segments.
pub const FILE_PATH_PATTERN: &str = "^(/[A-Za-z0-9._@+-]+)+$";
/// A package name (with an optional version or extra, e.g. `nginx`, `python3-pip`,
/// `requests==2.32.3`, `@scope/tool@1.2`): no spaces, quotes or shell metacharacters.
pub const PACKAGE_PATTERN: &str = "^[A-Za-z0-9@][A-Za-z0-9._+:@/=<>~^-]*$";
/// An owner `user` or `user:group`, by name or number.
pub const OWNER_PATTERN: &str = "^[a-z_][a-z0-9_-]*[$]?(:[a-z_][a-z0-9_-]*[$]?)?$|^[0-9]+(:[0-9]+)?$";
/// A step name: lower-case words joined by dashes.
pub const STEP_NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// An environment variable name.
pub const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";
/// A systemd unit name.
pub const UNIT_PATTERN: &str = "^[A-Za-z0-9:_.@-]+\\.(service|socket|timer|target|path|mount)$";

/// The CEL rule attached to every file path: no `..` segment anywhere.
pub const NO_DOTDOT_RULE: &str = "!self.matches('(^|/)[.][.](/|$)')";

/// The CEL rule a namespaced object puts on each of its content references: no `namespace`.
pub const NO_REFERENCE_NAMESPACE_RULE: &str = "!has(self.namespace)";

/// A schema transform for the `provisioning` of a namespaced object (an `LxcContainer`): every
/// `configMapKeyRef` and `secretKeyRef` in it gets a CEL rule refusing `namespace`, so a tenant
/// cannot point at another namespace's Secrets. The refusal names the exact field
/// (`spec.provisioning.files[0].contentFrom.secretKeyRef.namespace`). The types are shared with
/// the cluster-scoped `LxcTemplate`, whose references keep their namespaces, hence a transform on
/// the container's field (subschemas are inlined, so the template's schema is untouched).
pub fn refuse_reference_namespaces(schema: &mut schemars::Schema) {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(props) = map.get_mut("properties").and_then(|p| p.as_object_mut())
                    && props.contains_key("configMapKeyRef")
                    && props.contains_key("secretKeyRef")
                {
                    for key in ["configMapKeyRef", "secretKeyRef"] {
                        if let Some(reference) = props.get_mut(key).and_then(|r| r.as_object_mut()) {
                            add_rule(reference);
                        }
                    }
                }
                map.values_mut().for_each(walk);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    fn add_rule(reference: &mut serde_json::Map<String, serde_json::Value>) {
        let rules = reference
            .entry("x-kubernetes-validations")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let Some(rules) = rules.as_array_mut() {
            rules.push(serde_json::json!({
                "rule": NO_REFERENCE_NAMESPACE_RULE,
                "message": "an LxcContainer reads content only from its own namespace: leave namespace out",
                "fieldPath": ".namespace"
            }));
        }
    }
    // The top is `Provisioning` itself; the references sit below it.
    if let Some(top) = schema.as_object_mut() {
        top.values_mut().for_each(walk);
    }
}

/// Packages to install, one list per package manager. The manager present in the container is
/// detected; lists for managers the container does not have are an error on that container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Packages {
    /// Debian/Ubuntu packages, installed with `apt-get install` after one index refresh.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 128), regex(pattern = PACKAGE_PATTERN)))]
    pub apt: Vec<String>,
    /// Alpine packages, installed with `apk add`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 128), regex(pattern = PACKAGE_PATTERN)))]
    pub apk: Vec<String>,
    /// Fedora/RHEL packages, installed with `dnf install`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 128), regex(pattern = PACKAGE_PATTERN)))]
    pub dnf: Vec<String>,
    /// Python packages, installed with `pip install`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 128), regex(pattern = PACKAGE_PATTERN)))]
    pub pip: Vec<String>,
    /// Node.js packages, installed globally with `npm install -g`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 128), regex(pattern = PACKAGE_PATTERN)))]
    pub npm: Vec<String>,
}

/// What to do when a file already exists in the container.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FilePolicy {
    /// Overwrite it (the default).
    #[default]
    Replace,
    /// Leave it alone: write the file only if it is absent.
    Default,
    /// Keep the old file beside the new one as `<path>.bak`, then write.
    Backup,
}

/// One file to place inside the container. Exactly one of `content` and `contentFrom`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.content) != has(self.contentFrom)",
    "message": "exactly one of content and contentFrom must be set"
}]))]
pub struct FileSpec {
    /// Absolute path inside the container; letters, digits and `._@+-` only, no `..`.
    #[schemars(length(min = 2, max = 1024), regex(pattern = FILE_PATH_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": NO_DOTDOT_RULE, "message": "path must not contain a '..' segment"
    }]))]
    pub path: String,
    /// Octal permission bits, e.g. `0644` (the default) or `0600`.
    #[serde(default = "default_file_mode")]
    #[schemars(regex(pattern = "^0?[0-7]{3}$"))]
    pub mode: String,
    /// Owner as `user` or `user:group`, by name or number (default `root:root`).
    #[serde(default = "default_owner")]
    #[schemars(length(min = 1, max = 65), regex(pattern = OWNER_PATTERN))]
    pub owner: String,
    /// Inline content (UTF-8 text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 262144))]
    pub content: Option<String>,
    /// Content from a ConfigMap or Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_from: Option<ContentSource>,
    /// What to do when the file already exists: `Replace`, `Default` (only if absent) or
    /// `Backup` (keep the old one as `<path>.bak`).
    #[serde(default)]
    pub policy: FilePolicy,
}

fn default_file_mode() -> String {
    "0644".into()
}
fn default_owner() -> String {
    "root:root".into()
}

/// An environment variable given to a script.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Variable name.
    #[schemars(length(min = 1, max = 128), regex(pattern = ENV_NAME_PATTERN))]
    pub name: String,
    /// Value; passed to the script as data, never interpreted by a shell. No NUL character,
    /// which no environment variable can carry.
    #[schemars(length(max = 4096), regex(pattern = "^[^\\x00]*$"))]
    pub value: String,
}

/// One script run inside the container, in list order. Exactly one of `content` and
/// `contentFrom`. A script is re-run only when its digest (content, environment, interpreter)
/// changes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.content) != has(self.contentFrom)",
    "message": "exactly one of content and contentFrom must be set"
}]))]
pub struct ScriptSpec {
    /// Name of the step (lower-case letters, digits, dashes); unique within the list.
    #[schemars(length(min = 1, max = 63), regex(pattern = STEP_NAME_PATTERN))]
    pub name: String,
    /// Inline script text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 262144))]
    pub content: Option<String>,
    /// Script text from a ConfigMap or Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_from: Option<ContentSource>,
    /// Interpreter inside the container that reads the script on standard input; an absolute
    /// path with no `..` segment, like a file's.
    #[serde(default = "default_interpreter")]
    #[schemars(length(min = 2, max = 256), regex(pattern = FILE_PATH_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": NO_DOTDOT_RULE, "message": "interpreter must not contain a '..' segment"
    }]))]
    pub interpreter: String,
    /// Seconds the script may run before it is killed and the step fails.
    #[serde(default = "default_script_timeout")]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_seconds: i32,
    /// Environment variables for the script.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Vec<EnvVar>,
    /// Keep the last lines of the script's output when it fails (in the `Provisioned`
    /// condition, the Event and the audit trail), redacted of what looks secret: private key
    /// blocks, `password=…`/`token: …` pairs, and the values of environment variables whose
    /// names say secret. Off by default: a script may print what it generated.
    #[serde(default)]
    pub record_output: bool,
}

fn default_interpreter() -> String {
    "/bin/sh".into()
}
fn default_script_timeout() -> i32 {
    600
}

/// A systemd unit to watch, with the ports it should listen on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// The unit, e.g. `nginx.service`.
    #[schemars(length(min = 3, max = 256), regex(pattern = UNIT_PATTERN))]
    pub name: String,
    /// TCP ports the service is expected to listen on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(range(min = 1, max = 65535)))]
    pub ports: Vec<i32>,
}

/// Everything provisioned inside a container, in order: files, then packages, then scripts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Provisioning {
    /// Files to place, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["path"]))]
    pub files: Vec<FileSpec>,
    /// Packages to install, per package manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<Packages>,
    /// Scripts to run, in order, each by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub scripts: Vec<ScriptSpec>,
}
