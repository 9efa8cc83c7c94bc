//! The template's status from what each node holds, pure: Ready once the content resolved and
//! the OS template is on every Ready node; otherwise which nodes lack it, and why — a download
//! the audit trail refused is `AuditStoreUnavailable`, known by its type, not its wording.

use k8s_openapi::jiff::Timestamp;

use super::download::Refused;
use crate::audit::AUDIT_UNAVAILABLE_REASON;
use crate::crd::template::{LxcTemplate, LxcTemplateStatus, TemplateNodeStatus};
use crate::status::conditions::{Desired, set, types};

/// One node's line of the status, with why a download was not started.
#[derive(Debug, Clone)]
pub struct NodeLine {
    pub status: TemplateNodeStatus,
    pub refused: Option<Refused>,
    /// A download runs (or was just started) there.
    pub downloading: bool,
}

/// The `Ready` condition for a digest (or why the content did not resolve) and the node lines.
pub fn ready(digest: &Result<String, String>, lines: &[NodeLine]) -> Desired<'static> {
    let missing: Vec<&str> = lines
        .iter()
        .filter(|l| !l.status.present)
        .map(|l| l.status.node.as_str())
        .collect();
    let (status, reason, message) = match digest {
        Err(e) => (false, "InvalidContent", e.clone()),
        Ok(_) if missing.is_empty() => (true, "Ready", String::new()),
        Ok(_) => {
            let audit_down = lines
                .iter()
                .any(|l| matches!(l.refused, Some(Refused::AuditUnavailable(_))));
            let reason = if audit_down {
                AUDIT_UNAVAILABLE_REASON
            } else {
                "TemplateMissing"
            };
            (
                false,
                reason,
                format!("OS template not yet on: {}", missing.join(", ")),
            )
        }
    };
    Desired {
        type_: types::READY,
        status,
        reason,
        message,
    }
}

/// The next status of `template`.
pub fn next_status(
    template: &LxcTemplate,
    digest: Result<String, String>,
    mut lines: Vec<NodeLine>,
    now: Timestamp,
) -> LxcTemplateStatus {
    let generation = template.metadata.generation;
    let mut status = template.status.clone().unwrap_or_default();
    lines.sort_by(|a, b| a.status.node.cmp(&b.status.node));
    set(&mut status.conditions, ready(&digest, &lines), generation, now);
    if let Ok(d) = digest {
        status.digest = Some(d);
    }
    status.nodes = lines.into_iter().map(|l| l.status).collect();
    status.observed_generation = generation;
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(node: &str, present: bool, refused: Option<Refused>) -> NodeLine {
        NodeLine {
            status: TemplateNodeStatus {
                node: node.into(),
                present,
                download_task: None,
                message: refused.as_ref().map(Refused::message),
            },
            refused,
            downloading: false,
        }
    }

    #[test]
    fn ready_needs_content_and_every_node() {
        let ok = Ok("sha256:x".to_string());
        assert!(ready(&ok, &[line("a", true, None), line("b", true, None)]).status);
        let missing = ready(&ok, &[line("a", true, None), line("b", false, None)]);
        assert_eq!((missing.status, missing.reason), (false, "TemplateMissing"));
        assert!(missing.message.contains('b') && !missing.message.contains("a,"));
        let invalid = ready(
            &Err("spec.files[0]: no such key".into()),
            &[line("a", true, None)],
        );
        assert_eq!(invalid.reason, "InvalidContent");
    }

    #[test]
    fn a_refused_intent_is_known_by_its_type() {
        let ok = Ok("d".to_string());
        let audit = Refused::AuditUnavailable("connection refused".into());
        assert_eq!(
            ready(&ok, &[line("a", false, Some(audit))]).reason,
            AUDIT_UNAVAILABLE_REASON
        );
        // The same words from Proxmox are not an audit outage.
        let words = Refused::Proxmox("audit store unavailable".into());
        assert_eq!(
            ready(&ok, &[line("a", false, Some(words))]).reason,
            "TemplateMissing"
        );
    }
}
