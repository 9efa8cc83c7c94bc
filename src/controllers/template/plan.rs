//! What to do about the OS template on one node: a pure decision from what was observed.

use crate::crd::template::{TemplateNodeStatus, TemplateSource};

/// The observed state of the template on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The volume is in the storage.
    Present,
    /// The volume is missing and no download is in flight.
    Missing,
    /// A download task is still running.
    Downloading { upid: String },
    /// The last download failed.
    DownloadFailed { upid: String, error: String },
    /// The node could not be asked (e.g. its circuit breaker is open): decide nothing.
    Unknown { error: String },
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAction {
    /// Nothing to do: present.
    None,
    /// Keep waiting on the task.
    Wait,
    /// Start a download from the appliance index.
    DownloadAppliance { template: String },
    /// Start a download from a URL.
    DownloadUrl,
    /// Missing and nothing can be done: say why.
    Report { message: String },
}

/// Decides for one node. A failed download is not retried at once: it is reported, and a
/// later poll (or a spec change) tries again.
pub fn decide(observed: &Observed, source: Option<&TemplateSource>, retry_failed: bool) -> NodeAction {
    match (observed, source) {
        (Observed::Present, _) => NodeAction::None,
        (Observed::Downloading { .. }, _) => NodeAction::Wait,
        (Observed::Unknown { error }, _) => NodeAction::Report {
            message: format!("cannot check the node: {error}"),
        },
        (Observed::DownloadFailed { error, .. }, _) if !retry_failed => NodeAction::Report {
            message: format!("download failed: {error}"),
        },
        (_, None) => NodeAction::Report {
            message: "the OS template is missing on this node and spec.osTemplate.source is not set".into(),
        },
        (
            _,
            Some(TemplateSource {
                appliance: Some(t), ..
            }),
        ) => NodeAction::DownloadAppliance { template: t.clone() },
        (_, Some(TemplateSource { url: Some(_), .. })) => NodeAction::DownloadUrl,
        (_, Some(_)) => NodeAction::Report {
            message: "spec.osTemplate.source names no source".into(),
        },
    }
}

/// The status line for one node after the decision.
pub fn node_status(
    node: &str,
    observed: &Observed,
    action: &NodeAction,
    started: Option<String>,
) -> TemplateNodeStatus {
    let (present, download_task, message) = match (observed, action) {
        (Observed::Present, _) => (true, None, None),
        (Observed::Downloading { upid }, _) => (false, Some(upid.clone()), Some("downloading".to_string())),
        (_, NodeAction::Report { message }) => (false, None, Some(message.clone())),
        _ => (
            false,
            started.clone(),
            started.as_ref().map(|_| "downloading".to_string()),
        ),
    };
    TemplateNodeStatus {
        node: node.to_string(),
        present,
        download_task,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unanswered_question_starts_no_download() {
        let source = TemplateSource {
            appliance: Some("debian.tar.zst".into()),
            ..Default::default()
        };
        let unknown = Observed::Unknown {
            error: "circuit open".into(),
        };
        assert!(matches!(
            decide(&unknown, Some(&source), true),
            NodeAction::Report { .. }
        ));
        assert_eq!(
            decide(&Observed::Missing, Some(&source), true),
            NodeAction::DownloadAppliance {
                template: "debian.tar.zst".into()
            }
        );
    }
    use crate::crd::template::{ChecksumAlgorithm, UrlSource};

    fn appliance() -> TemplateSource {
        TemplateSource {
            appliance: Some("debian-12-standard_12.7-1_amd64.tar.zst".into()),
            url: None,
        }
    }

    #[test]
    fn present_needs_nothing_and_a_running_download_is_awaited() {
        assert_eq!(
            decide(&Observed::Present, Some(&appliance()), false),
            NodeAction::None
        );
        let downloading = Observed::Downloading {
            upid: "UPID:x".into(),
        };
        assert_eq!(decide(&downloading, Some(&appliance()), true), NodeAction::Wait);
    }

    #[test]
    fn missing_templates_are_downloaded_from_their_source_or_reported() {
        assert_eq!(
            decide(&Observed::Missing, Some(&appliance()), false),
            NodeAction::DownloadAppliance {
                template: "debian-12-standard_12.7-1_amd64.tar.zst".into()
            }
        );
        let url = TemplateSource {
            appliance: None,
            url: Some(UrlSource {
                url: "https://x/t.tar.zst".into(),
                checksum: "ab".into(),
                checksum_algorithm: ChecksumAlgorithm::Sha256,
            }),
        };
        assert_eq!(
            decide(&Observed::Missing, Some(&url), false),
            NodeAction::DownloadUrl
        );
        assert!(
            matches!(decide(&Observed::Missing, None, false), NodeAction::Report { message } if message.contains("source"))
        );
    }

    #[test]
    fn a_failed_download_is_reported_until_a_retry_is_due() {
        let failed = Observed::DownloadFailed {
            upid: "UPID:x".into(),
            error: "checksum mismatch".into(),
        };
        assert!(
            matches!(decide(&failed, Some(&appliance()), false), NodeAction::Report { message } if message.contains("checksum mismatch"))
        );
        assert!(matches!(
            decide(&failed, Some(&appliance()), true),
            NodeAction::DownloadAppliance { .. }
        ));
        let status = node_status("pve1", &failed, &decide(&failed, Some(&appliance()), false), None);
        assert!(!status.present && status.message.unwrap().contains("checksum mismatch"));
    }
}
