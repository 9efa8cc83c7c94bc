//! Deleting a `ProxmoxNode` safely: the node's finalizer keeps it while `LxcContainer`s are
//! placed on it (status `node`), so their own deletion can still reach Proxmox through it; and
//! each Secret a node references (credentials, SSH key) carries a finalizer while any node
//! references it, so deleting the Secrets first strands no container. Which containers block
//! and which Secrets are held is decided here, purely; the patches are the small I/O around it.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::{Resource, ResourceExt};

use crate::crd::LxcContainer;
use crate::crd::node::{ProxmoxNode, ProxmoxNodeSpec};

/// Keeps a `ProxmoxNode` until no `LxcContainer` is placed on it.
pub const NODE_FINALIZER: &str = "lxc.infrahaus.dev/node";
/// Keeps a Secret that a `ProxmoxNode` references until no node references it.
pub const SECRET_FINALIZER: &str = "lxc.infrahaus.dev/node-secret";
/// The node's `Ready` reason while its deletion waits for containers.
pub const DELETION_BLOCKED: &str = "DeletionBlocked";

/// A Secret by namespace and name.
pub type SecretKey = (String, String);

/// The Secrets a node's spec references.
pub fn referenced_secrets(spec: &ProxmoxNodeSpec) -> BTreeSet<SecretKey> {
    let creds = &spec.credentials_secret_ref;
    let mut out = BTreeSet::from([(creds.namespace.clone(), creds.name.clone())]);
    if let Some(ssh) = &spec.ssh {
        let key = &ssh.private_key_secret_ref;
        out.insert((key.namespace.clone(), key.name.clone()));
    }
    out
}

/// The containers (`namespace/name`, sorted) whose status places them on the node `name`.
pub fn placed_on<'a>(containers: impl IntoIterator<Item = &'a LxcContainer>, name: &str) -> Vec<String> {
    let mut placed: Vec<String> = containers
        .into_iter()
        .filter(|c| c.status.as_ref().and_then(|s| s.node.as_deref()) == Some(name))
        .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
        .collect();
    placed.sort();
    placed
}

/// The `DeletionBlocked` message: how many containers, and which (the first ten).
pub fn blocked_message(placed: &[String]) -> String {
    const SHOWN: usize = 10;
    let noun = if placed.len() == 1 {
        "LxcContainer"
    } else {
        "LxcContainers"
    };
    let mut names = placed.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if placed.len() > SHOWN {
        names.push_str(&format!(", and {} more", placed.len() - SHOWN));
    }
    format!(
        "deletion waits for {} {noun} placed on this node: {names}",
        placed.len()
    )
}

/// The Secrets that carry our finalizer but that no node in `nodes` references any more (a
/// node being let go is left out of `nodes` by the caller).
pub fn secrets_to_release<'a>(
    held: impl IntoIterator<Item = SecretKey>,
    nodes: impl IntoIterator<Item = &'a ProxmoxNode>,
) -> Vec<SecretKey> {
    let needed: BTreeSet<SecretKey> = nodes
        .into_iter()
        .flat_map(|n| referenced_secrets(&n.spec))
        .collect();
    held.into_iter().filter(|s| !needed.contains(s)).collect()
}

/// Adds (`hold`) or removes our finalizer `finalizer` on an object, optimistically against
/// the resource version it was read at; an object already gone is fine.
async fn set_finalizer<K>(
    api: &Api<K>,
    meta: &kube::api::ObjectMeta,
    finalizer: &str,
    hold: bool,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let current = meta.finalizers.clone().unwrap_or_default();
    let has = current.iter().any(|f| f == finalizer);
    if has == hold {
        return Ok(());
    }
    let finalizers: Vec<String> = match hold {
        true => current.into_iter().chain([finalizer.to_string()]).collect(),
        false => current.into_iter().filter(|f| f != finalizer).collect(),
    };
    let patch = serde_json::json!({"metadata": {
        "finalizers": finalizers, "resourceVersion": meta.resource_version
    }});
    let name = meta.name.clone().unwrap_or_default();
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Puts the node's finalizer on it.
pub async fn hold_node(kube: &kube::Client, node: &ProxmoxNode) -> Result<(), kube::Error> {
    set_finalizer(
        &Api::<ProxmoxNode>::all(kube.clone()),
        &node.metadata,
        NODE_FINALIZER,
        true,
    )
    .await
}

/// Takes the node's finalizer off (the node then goes).
pub async fn release_node(kube: &kube::Client, node: &ProxmoxNode) -> Result<(), kube::Error> {
    set_finalizer(
        &Api::<ProxmoxNode>::all(kube.clone()),
        &node.metadata,
        NODE_FINALIZER,
        false,
    )
    .await
}

/// A Secret's metadata (never its data), or `None` when it does not exist.
pub async fn secret_meta(
    kube: &kube::Client,
    (ns, name): &SecretKey,
) -> Result<Option<PartialObjectMeta<Secret>>, kube::Error> {
    Api::<Secret>::namespaced(kube.clone(), ns)
        .get_metadata_opt(name)
        .await
}

/// Puts or takes our finalizer on a Secret, known by its metadata only (the operator reads
/// Secrets' metadata, never their data, to decide this).
pub async fn set_secret_finalizer(
    kube: &kube::Client,
    secret: &PartialObjectMeta<Secret>,
    hold: bool,
) -> Result<(), kube::Error> {
    let ns = secret.metadata.namespace.clone().unwrap_or_default();
    // Through the metadata-only API: not even the patch's answer carries the Secret's data.
    let api = Api::<PartialObjectMeta<Secret>>::namespaced(kube.clone(), &ns);
    set_finalizer(&api, &secret.metadata, SECRET_FINALIZER, hold).await
}

/// The Secrets a node's status records as held by it.
pub fn recorded(node: &ProxmoxNode) -> BTreeSet<SecretKey> {
    node.status
        .iter()
        .flat_map(|s| &s.held_secrets)
        .map(|r| (r.namespace.clone(), r.name.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::LxcContainerStatus;
    use serde_json::json;

    fn node(name: &str, creds: &str, ssh: Option<&str>) -> ProxmoxNode {
        let mut spec = json!({"endpoint": "https://pve:8006", "nodeName": "pve1",
            "credentialsSecretRef": {"name": creds, "namespace": "ops"}});
        if let Some(key) = ssh {
            spec["ssh"] = json!({"host": "pve", "privateKeySecretRef":
                {"name": key, "namespace": "ops", "key": "k"}, "hostKeyFingerprint": "SHA256:x"});
        }
        serde_json::from_value(json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1",
            "kind": "ProxmoxNode", "metadata": {"name": name}, "spec": spec}))
        .unwrap()
    }

    fn ct(ns: &str, name: &str, on: Option<&str>) -> LxcContainer {
        let mut c: LxcContainer = serde_json::from_value(json!({
            "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcContainer",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeRef": "pve1", "templateRef": "t"}
        }))
        .unwrap();
        c.status = Some(LxcContainerStatus {
            node: on.map(str::to_string),
            ..Default::default()
        });
        c
    }

    fn key(name: &str) -> SecretKey {
        ("ops".into(), name.into())
    }

    #[test]
    fn a_node_references_its_credentials_and_its_ssh_key() {
        assert_eq!(
            referenced_secrets(&node("a", "token", Some("ssh")).spec),
            BTreeSet::from([key("ssh"), key("token")])
        );
        assert_eq!(
            referenced_secrets(&node("a", "token", None).spec),
            BTreeSet::from([key("token")])
        );
    }

    #[test]
    fn only_containers_placed_on_the_node_block_it() {
        let all = [
            ct("b", "two", Some("pve1")),
            ct("a", "one", Some("pve1")),
            ct("a", "elsewhere", Some("pve2")),
            ct("a", "unplaced", None),
        ];
        let placed = placed_on(&all, "pve1");
        assert_eq!(placed, ["a/one", "b/two"]);
        assert_eq!(
            blocked_message(&placed),
            "deletion waits for 2 LxcContainers placed on this node: a/one, b/two"
        );
        let many: Vec<String> = (0..12).map(|i| format!("a/c{i:02}")).collect();
        assert!(blocked_message(&many).starts_with("deletion waits for 12 LxcContainers"));
        assert!(blocked_message(&many).ends_with("a/c09, and 2 more"));
    }

    #[test]
    fn a_secret_is_released_only_when_no_remaining_node_references_it() {
        let nodes = [node("a", "token", Some("ssh")), node("b", "token", None)];
        let held = || [key("token"), key("ssh"), key("old")];
        // An old reference nobody makes any more goes; shared ones stay.
        assert_eq!(secrets_to_release(held(), &nodes), [key("old")]);
        // Node a leaving: its SSH key goes, the token still serves b.
        assert_eq!(secrets_to_release(held(), &nodes[1..]), [key("ssh"), key("old")]);
        // Both gone: everything goes.
        assert_eq!(
            secrets_to_release(held(), []),
            [key("token"), key("ssh"), key("old")]
        );
    }
}
