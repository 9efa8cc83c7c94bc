//! The cluster-wide reads of a probe (version, cluster status, guests), made once per endpoint
//! and identity per poll round however many ProxmoxNodes reach the cluster through it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::proxmox::types::{ClusterResource, Version, cluster_name};
use crate::proxmox::{Error, ErrorClass, ProxmoxClient};

/// What the cluster-wide reads said, and when.
#[derive(Debug)]
pub struct ClusterView {
    at: Instant,
    pub version: Version,
    pub cluster: Option<String>,
    pub guests: Vec<ClusterResource>,
}

/// The last cluster-wide reads per endpoint and identity (an identity sees the guests its
/// privileges allow, so two identities never share). Probes of one endpoint at once wait for
/// one read.
#[derive(Clone, Default)]
pub struct ClusterReads(Arc<Mutex<HashMap<String, LastView>>>);

/// One endpoint's last view; its lock is held while a probe reads it anew.
type LastView = Arc<tokio::sync::Mutex<Option<Arc<ClusterView>>>>;

impl ClusterReads {
    fn slot(&self, key: String) -> LastView {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key).or_default().clone()
    }

    /// The cluster-wide view through `client`, read now unless another probe read it less than
    /// `fresh` ago.
    pub async fn view(&self, client: &ProxmoxClient, fresh: Duration) -> Result<Arc<ClusterView>, Error> {
        let slot = self.slot(format!("{} {}", client.endpoint(), client.identity()));
        let mut last = slot.lock().await;
        if let Some(view) = last.as_ref().filter(|v| v.at.elapsed() < fresh) {
            return Ok(view.clone());
        }
        let version = client.version().await?;
        let cluster = match client.cluster_status().await {
            Ok(entries) => cluster_name(&entries),
            // Sys.Audit on `/` missing: the endpoint stands for the cluster.
            Err(e) if e.class() == ErrorClass::Forbidden => None,
            Err(e) => return Err(e),
        };
        let guests = client.cluster_resources(Some("vm")).await?;
        let view = Arc::new(ClusterView {
            at: Instant::now(),
            version,
            cluster,
            guests,
        });
        *last = Some(view.clone());
        Ok(view)
    }
}
