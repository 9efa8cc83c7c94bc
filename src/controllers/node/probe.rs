//! One probe of a node: connect with its credentials (the client is cached), then version,
//! node status, storages, the cluster's name and the cluster's guests in one bulk read. The
//! cluster-wide three (version, cluster status, guests) are read once per endpoint and
//! identity per poll, however many ProxmoxNodes reach the cluster through it.

use std::time::Duration;

use super::cluster_reads::ClusterReads;
use super::context::NodeCtx;
use crate::cluster::clients::ConnectError;
use crate::crd::node::ProxmoxNode;
use crate::proxmox::types::{ClusterResource, NodeStatus, StorageEntry, Version};
use crate::proxmox::{Error, ErrorClass, ProxmoxClient};

/// What a successful probe saw.
#[derive(Debug, Clone)]
pub struct Probe {
    pub version: Version,
    pub status: NodeStatus,
    pub storages: Vec<StorageEntry>,
    /// Every guest of the cluster (`/cluster/resources?type=vm`).
    pub guests: Vec<ClusterResource>,
    /// The VMID space: the cluster's name, or the node's when it stands alone (`None` when the
    /// credentials may not read `/cluster/status`).
    pub cluster: Option<String>,
}

impl Probe {
    /// The LXC containers on `node`.
    pub fn containers_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a ClusterResource> + 'a {
        self.guests
            .iter()
            .filter(move |g| g.kind == "lxc" && g.node.as_deref() == Some(node))
    }
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Proxmox(#[from] Error),
    /// The API answered but the node itself is offline (Proxmox cannot proxy to it).
    #[error("node is offline: {0}")]
    NodeOffline(Error),
}

/// Reads everything the node's status needs: 5 GETs, whatever the number of containers (2 when
/// another node's probe read the cluster-wide 3 through the same endpoint within `fresh`).
pub async fn probe(
    client: &ProxmoxClient,
    node: &str,
    reads: &ClusterReads,
    fresh: Duration,
) -> Result<Probe, ProbeError> {
    let view = reads.view(client, fresh).await?;
    let status = client.node_status(node).await.map_err(|e| match e.class() {
        ErrorClass::Connect => ProbeError::NodeOffline(e),
        _ => ProbeError::Proxmox(e),
    })?;
    let storages = client.storages(node, None).await?;
    Ok(Probe {
        version: view.version.clone(),
        status,
        storages,
        guests: view.guests.clone(),
        cluster: view.cluster.clone(),
    })
}

/// Connects (the client is built from `version`, what the credentials Secret read said) and
/// probes.
pub async fn connect_and_probe(
    ctx: &NodeCtx,
    node: &ProxmoxNode,
    version: String,
    poll: Duration,
) -> Result<Probe, ProbeError> {
    let client = ctx
        .clients
        .get_at(&ctx.kube, node, ctx.proxmox_metrics.clone(), version)
        .await?;
    // Fresh for a little less than a poll: each round of polls reads the cluster once.
    let fresh = poll.saturating_sub(Duration::from_millis(500));
    probe(&client, &node.spec.node_name, &ctx.cluster_reads, fresh).await
}
