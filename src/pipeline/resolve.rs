//! Resolve: the node and template a container needs exist and are usable — the node Ready,
//! the namespace allowed on it, not cordoned for a new placement, the template Ready and its
//! OS template present on the node. Anything missing is named in the condition.

use kube::ResourceExt;

use crate::crd::node::ProxmoxNode;
use crate::crd::template::LxcTemplate;
use crate::status::conditions::{is_true, types};

/// Why a container cannot go on yet: a condition reason and a message naming what is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub reason: &'static str,
    pub message: String,
}

fn blocked(reason: &'static str, message: String) -> Blocked {
    Blocked { reason, message }
}

/// Whether `node` takes containers of `namespace` (`new_placement`: the container is not on it yet).
pub fn check_node(
    node: Option<&ProxmoxNode>,
    name: &str,
    namespace: &str,
    new_placement: bool,
) -> Result<(), Blocked> {
    let Some(node) = node else {
        return Err(blocked(
            "NodeNotFound",
            format!("ProxmoxNode {name} does not exist"),
        ));
    };
    if node.metadata.deletion_timestamp.is_some() {
        return Err(blocked(
            "NodeDeleting",
            format!(
                "ProxmoxNode {name} is being deleted: it waits for its containers to be deleted \
                 and takes no new work"
            ),
        ));
    }
    let ready = node
        .status
        .as_ref()
        .is_some_and(|s| is_true(&s.conditions, types::READY));
    if !ready {
        let why = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == types::READY))
            .map(|c| format!(": {} {}", c.reason, c.message).trim_end().to_string())
            .unwrap_or_default();
        return Err(blocked(
            "NodeNotReady",
            format!("ProxmoxNode {name} is not Ready{why}"),
        ));
    }
    let allowed = &node.spec.allowed_namespaces;
    if !allowed.is_empty() && !allowed.iter().any(|n| n == namespace) {
        return Err(blocked(
            "NamespaceNotAllowed",
            format!(
                "namespace {namespace} is not in allowedNamespaces of ProxmoxNode {name} ({})",
                allowed.join(", ")
            ),
        ));
    }
    if new_placement && node.spec.cordoned {
        return Err(blocked(
            "NodeCordoned",
            format!("ProxmoxNode {name} is cordoned and takes no new containers"),
        ));
    }
    Ok(())
}

/// Whether `template` is Ready and its OS template is on the ProxmoxNode `node`.
pub fn check_template(template: Option<&LxcTemplate>, name: &str, node: &str) -> Result<(), Blocked> {
    let Some(template) = template else {
        return Err(blocked(
            "TemplateNotFound",
            format!("LxcTemplate {name} does not exist"),
        ));
    };
    let status = template.status.as_ref();
    let present = status.is_some_and(|s| s.nodes.iter().any(|n| n.node == node && n.present));
    if present {
        // Ready may be false only because another node still downloads; content errors block.
        let invalid = status
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == types::READY))
            .filter(|c| c.status != "True" && c.reason == "InvalidContent");
        return match invalid {
            Some(c) => Err(blocked(
                "TemplateNotReady",
                format!("LxcTemplate {} is not Ready: {}", template.name_any(), c.message),
            )),
            None => Ok(()),
        };
    }
    // Missing: say why when the template controller knows (a download refused or failed),
    // not only that it is missing, so the container's own condition names what to fix.
    let why = status
        .and_then(|s| s.nodes.iter().find(|n| n.node == node))
        .filter(|n| n.download_task.is_none())
        .and_then(|n| n.message.clone());
    if let Some(why) = why {
        return Err(blocked(
            "TemplateNotReady",
            format!(
                "LxcTemplate {name} is not Ready on ProxmoxNode {node}: OS template {}: {why}",
                template.spec.os_template.volid
            ),
        ));
    }
    Err(blocked(
        "TemplateNotOnNode",
        format!(
            "OS template {} of LxcTemplate {name} is not (yet) on ProxmoxNode {node}",
            template.spec.os_template.volid
        ),
    ))
}

/// Whether the template's OS template is on the ProxmoxNode `node` (a container created
/// there earlier no longer needs it).
pub fn present_on(template: &LxcTemplate, node: &str) -> bool {
    template
        .status
        .as_ref()
        .is_some_and(|s| s.nodes.iter().any(|n| n.node == node && n.present))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(ready: bool, extra: serde_json::Value) -> ProxmoxNode {
        let mut spec = json!({"endpoint": "https://pve:8006", "nodeName": "pve1",
            "credentialsSecretRef": {"name": "c", "namespace": "n"}});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "ProxmoxNode",
            "metadata": {"name": "pve1"}, "spec": spec,
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                "reason": if ready {"Ready"} else {"Unreachable"}, "message": "connection refused",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap()
    }

    fn template(nodes: serde_json::Value, ready_reason: &str) -> LxcTemplate {
        serde_json::from_value(json!({
            "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate",
            "metadata": {"name": "debian"},
            "spec": {"osTemplate": {"volid": "local:vztmpl/debian.tar.zst"}},
            "status": {"nodes": nodes, "conditions": [{"type": "Ready",
                "status": if ready_reason == "Ready" {"True"} else {"False"}, "reason": ready_reason,
                "message": "bad content", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap()
    }

    #[test]
    fn each_missing_piece_has_its_reason() {
        let r = |n: Option<&ProxmoxNode>, ns, new| check_node(n, "pve1", ns, new).map_err(|b| b.reason);
        assert_eq!(r(None, "a", true), Err("NodeNotFound"));
        let down = node(false, json!({}));
        let e = check_node(Some(&down), "pve1", "a", true).unwrap_err();
        assert_eq!(e.reason, "NodeNotReady");
        assert!(e.message.contains("Unreachable"), "{}", e.message);
        let fenced = node(true, json!({"allowedNamespaces": ["team-a"]}));
        assert_eq!(r(Some(&fenced), "team-b", false), Err("NamespaceNotAllowed"));
        assert_eq!(r(Some(&fenced), "team-a", true), Ok(()));
        let cordoned = node(true, json!({"cordoned": true}));
        assert_eq!(r(Some(&cordoned), "a", true), Err("NodeCordoned"));
        assert_eq!(r(Some(&cordoned), "a", false), Ok(()), "placed containers stay");
    }

    #[test]
    fn the_template_must_be_on_the_node() {
        let t = template(
            json!([{"node": "pve1", "present": true}, {"node": "pve2", "present": false}]),
            "TemplateMissing",
        );
        assert_eq!(check_template(Some(&t), "debian", "pve1"), Ok(()));
        let e = check_template(Some(&t), "debian", "pve2").unwrap_err();
        assert_eq!(e.reason, "TemplateNotOnNode");
        assert!(e.message.contains("local:vztmpl/debian.tar.zst") && e.message.contains("pve2"));
        let bad = template(json!([{"node": "pve1", "present": true}]), "InvalidContent");
        assert_eq!(
            check_template(Some(&bad), "debian", "pve1").unwrap_err().reason,
            "TemplateNotReady"
        );
        assert_eq!(
            check_template(None, "debian", "pve1").unwrap_err().reason,
            "TemplateNotFound"
        );
    }

    #[test]
    fn a_template_that_cannot_reach_the_node_says_why() {
        let why = "download failed: Permission check failed (/, Sys.AccessNetwork)";
        let refused = template(
            json!([{"node": "pve1", "present": false, "message": why}]),
            "TemplateMissing",
        );
        let e = check_template(Some(&refused), "debian", "pve1").unwrap_err();
        assert_eq!(e.reason, "TemplateNotReady");
        assert!(
            e.message.contains("Sys.AccessNetwork") && e.message.contains("pve1"),
            "{}",
            e.message
        );
        // A download in flight is only not there yet.
        let downloading = template(
            json!([{"node": "pve1", "present": false, "downloadTask": "UPID:pve1:1", "message": "old"}]),
            "TemplateMissing",
        );
        let e = check_template(Some(&downloading), "debian", "pve1").unwrap_err();
        assert_eq!(e.reason, "TemplateNotOnNode");
        assert!(
            !present_on(&downloading, "pve1")
                && present_on(
                    &template(json!([{"node": "pve1", "present": true}]), "Ready"),
                    "pve1"
                )
        );
    }

    #[test]
    fn a_node_being_deleted_takes_no_work() {
        let mut n = node(true, json!({}));
        n.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        for new in [true, false] {
            assert_eq!(
                check_node(Some(&n), "pve1", "a", new).unwrap_err().reason,
                "NodeDeleting"
            );
        }
    }
}
