//! One probe of a node: connect with its credentials (the client is cached), then version,
//! node status, storages, the cluster's name and the cluster's guests in one bulk read.

use crate::cluster::Shared;
use crate::cluster::clients::ConnectError;
use crate::crd::node::ProxmoxNode;
use crate::proxmox::types::{ClusterResource, NodeStatus, StorageEntry, Version, cluster_name};
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

/// Reads everything the node's status needs: 5 GETs, whatever the number of containers.
pub async fn probe(client: &ProxmoxClient, node: &str) -> Result<Probe, ProbeError> {
    let version = client.version().await?;
    let status = client.node_status(node).await.map_err(|e| match e.class() {
        ErrorClass::Connect => ProbeError::NodeOffline(e),
        _ => ProbeError::Proxmox(e),
    })?;
    let storages = client.storages(node, None).await?;
    let cluster = match client.cluster_status().await {
        Ok(entries) => cluster_name(&entries),
        // Sys.Audit on `/` missing: the endpoint stands for the cluster.
        Err(e) if e.class() == ErrorClass::Forbidden => None,
        Err(e) => return Err(e.into()),
    };
    let guests = client.cluster_resources(Some("vm")).await?;
    Ok(Probe {
        version,
        status,
        storages,
        guests,
        cluster,
    })
}

/// Connects (the client is built from `version`, what the credentials Secret read said) and
/// probes.
pub async fn connect_and_probe(
    shared: &Shared,
    node: &ProxmoxNode,
    version: Result<String, ConnectError>,
) -> Result<Probe, ProbeError> {
    let client = shared
        .clients
        .get_at(&shared.kube, node, shared.proxmox_metrics.clone(), version?)
        .await?;
    probe(&client, &node.spec.node_name).await
}
