//! Observe: the OS template on one node — is its download task (if any) still running, did it
//! fail, or is the volume in the storage?

use super::plan::Observed;
use crate::crd::template::TemplateNodeStatus;
use crate::proxmox::tasks::TaskState;
use crate::proxmox::{ErrorClass, ProxmoxClient, Upid};

/// The storage and file name of a volid (`local`, `debian-12-...tar.zst`).
pub fn split_volid(volid: &str) -> (&str, &str) {
    let (storage, rest) = volid.split_once(':').unwrap_or(("local", volid));
    (storage, rest.trim_start_matches("vztmpl/"))
}

/// What the node holds of `volid`, asking about the download in `previous` first.
pub async fn observe(
    client: &ProxmoxClient,
    node: &str,
    volid: &str,
    previous: Option<&TemplateNodeStatus>,
) -> Observed {
    if let Some(upid) = previous
        .and_then(|p| p.download_task.as_deref())
        .and_then(Upid::parse)
    {
        let upid_text = upid.to_string();
        match client.check_task(&upid).await {
            Ok(TaskState::Running) => return Observed::Downloading { upid: upid_text },
            Ok(TaskState::Succeeded) => {}
            Err(e) if e.class() == ErrorClass::TaskFailed => {
                return Observed::DownloadFailed {
                    upid: upid_text,
                    error: e.to_string(),
                };
            }
            // Not an answer about the task: it may still run, so keep waiting on it.
            Err(_) => return Observed::Downloading { upid: upid_text },
        }
    }
    let (storage, _) = split_volid(volid);
    match client.storage_content(node, storage, Some("vztmpl")).await {
        Ok(content) if content.iter().any(|c| c.volid == volid) => Observed::Present,
        Ok(_) => Observed::Missing,
        Err(e) => Observed::Unknown { error: e.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volid_names_its_storage_and_file() {
        assert_eq!(
            split_volid("local:vztmpl/debian-12.tar.zst"),
            ("local", "debian-12.tar.zst")
        );
        assert_eq!(split_volid("debian.tar.zst"), ("local", "debian.tar.zst"));
    }
}
