//! The typed endpoints the operator calls. Each names its operation (for errors and metrics),
//! says what kind of call it is (read, idempotent write, task start) and returns typed data.

use reqwest::Method;

use super::client::{CallKind, Params, ProxmoxClient, enc};
use super::error::Error;
pub use super::mutation::{CreateLxc, Mutation, PowerAction};
use super::types::*;
use super::upid::Upid;

impl ProxmoxClient {
    /// `GET /version`.
    pub async fn version(&self) -> Result<Version, Error> {
        self.call("get version", Method::GET, "/version", vec![], CallKind::Read)
            .await
    }

    /// `GET /nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeEntry>, Error> {
        self.call("list nodes", Method::GET, "/nodes", vec![], CallKind::Read)
            .await
    }

    /// `GET /nodes/{node}/status`.
    pub async fn node_status(&self, node: &str) -> Result<NodeStatus, Error> {
        let path = format!("/nodes/{}/status", enc(node));
        self.call("get node status", Method::GET, &path, vec![], CallKind::Read)
            .await
    }

    /// `GET /cluster/status`: the cluster and its nodes.
    pub async fn cluster_status(&self) -> Result<Vec<ClusterStatusEntry>, Error> {
        self.call(
            "get cluster status",
            Method::GET,
            "/cluster/status",
            Vec::new(),
            CallKind::Read,
        )
        .await
    }

    /// `GET /cluster/resources?type=...` (`vm`, `storage`, `node`).
    pub async fn cluster_resources(&self, kind: Option<&str>) -> Result<Vec<ClusterResource>, Error> {
        let params = kind
            .map(|k| vec![("type".to_string(), k.to_string())])
            .unwrap_or_default();
        self.call(
            "list cluster resources",
            Method::GET,
            "/cluster/resources",
            params,
            CallKind::Read,
        )
        .await
    }

    /// `GET /cluster/nextid[?vmid=N]`: the next free VMID, or `vmid` itself when it is free
    /// (a taken one answers [`crate::proxmox::ErrorClass::AlreadyExists`]).
    pub async fn next_id(&self, vmid: Option<u32>) -> Result<u32, Error> {
        let params = vmid
            .map(|v| vec![("vmid".to_string(), v.to_string())])
            .unwrap_or_default();
        let text: serde_json::Value = self
            .call(
                "get next VMID",
                Method::GET,
                "/cluster/nextid",
                params,
                CallKind::Read,
            )
            .await?;
        let parsed = match &text {
            serde_json::Value::String(s) => s.parse().ok(),
            serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            _ => None,
        };
        parsed.ok_or_else(|| Error::Decode {
            operation: "get next VMID".into(),
            message: format!("not a VMID: {text}"),
        })
    }

    /// `GET /nodes/{node}/storage[?content=...]`.
    pub async fn storages(&self, node: &str, content: Option<&str>) -> Result<Vec<StorageEntry>, Error> {
        let path = format!("/nodes/{}/storage", enc(node));
        let params = content
            .map(|c| vec![("content".to_string(), c.to_string())])
            .unwrap_or_default();
        self.call("list storages", Method::GET, &path, params, CallKind::Read)
            .await
    }

    /// `GET /nodes/{node}/network`: the node's interfaces (bridges among them).
    pub async fn networks(&self, node: &str) -> Result<Vec<NetworkEntry>, Error> {
        let path = format!("/nodes/{}/network", enc(node));
        self.call("list networks", Method::GET, &path, Vec::new(), CallKind::Read)
            .await
    }

    /// `GET /nodes/{node}/storage/{storage}/content[?content=...]`.
    pub async fn storage_content(
        &self,
        node: &str,
        storage: &str,
        content: Option<&str>,
    ) -> Result<Vec<StorageContent>, Error> {
        let path = format!("/nodes/{}/storage/{}/content", enc(node), enc(storage));
        let params = content
            .map(|c| vec![("content".to_string(), c.to_string())])
            .unwrap_or_default();
        self.call("list storage content", Method::GET, &path, params, CallKind::Read)
            .await
    }

    /// `GET /nodes/{node}/aplinfo`.
    pub async fn appliances(&self, node: &str) -> Result<Vec<Appliance>, Error> {
        let path = format!("/nodes/{}/aplinfo", enc(node));
        self.call("list appliances", Method::GET, &path, vec![], CallKind::Read)
            .await
    }

    /// `GET /nodes/{node}/lxc`.
    pub async fn containers(&self, node: &str) -> Result<Vec<LxcStatus>, Error> {
        let path = format!("/nodes/{}/lxc", enc(node));
        self.call("list containers", Method::GET, &path, vec![], CallKind::Read)
            .await
    }

    /// `GET /nodes/{node}/lxc/{vmid}/config`.
    pub async fn container_config(&self, node: &str, vmid: u32) -> Result<LxcConfig, Error> {
        let path = format!("/nodes/{}/lxc/{vmid}/config", enc(node));
        self.call("get container config", Method::GET, &path, vec![], CallKind::Read)
            .await
    }

    /// `GET /nodes/{node}/lxc/{vmid}/status/current`.
    pub async fn container_status(&self, node: &str, vmid: u32) -> Result<LxcStatus, Error> {
        let path = format!("/nodes/{}/lxc/{vmid}/status/current", enc(node));
        self.call("get container status", Method::GET, &path, vec![], CallKind::Read)
            .await
    }

    /// `GET /nodes/{node}/lxc/{vmid}/interfaces` (`None` while the container is stopped).
    pub async fn container_interfaces(&self, node: &str, vmid: u32) -> Result<Option<Vec<Interface>>, Error> {
        let path = format!("/nodes/{}/lxc/{vmid}/interfaces", enc(node));
        self.call(
            "get container interfaces",
            Method::GET,
            &path,
            vec![],
            CallKind::Read,
        )
        .await
    }

    /// `GET /nodes/{node}/tasks/{upid}/status`.
    pub async fn task_status(&self, upid: &Upid) -> Result<TaskStatus, Error> {
        let path = format!("/nodes/{}/tasks/{}/status", enc(&upid.node), enc(upid.as_str()));
        self.call("get task status", Method::GET, &path, vec![], CallKind::Read)
            .await
    }

    /// The last `lines` lines of a task's log.
    pub async fn task_log_tail(&self, upid: &Upid, lines: usize) -> Result<Vec<String>, Error> {
        let path = format!("/nodes/{}/tasks/{}/log", enc(&upid.node), enc(upid.as_str()));
        let params = vec![
            ("start".to_string(), "0".to_string()),
            ("limit".to_string(), "0".to_string()),
        ];
        let log: Vec<TaskLogLine> = self
            .call("get task log", Method::GET, &path, params, CallKind::Read)
            .await?;
        let skip = log.len().saturating_sub(lines);
        Ok(log.into_iter().skip(skip).map(|l| l.t).collect())
    }
    // The typed mutations: each is one [`Mutation`] sent. Outside `controllers::act` they are
    // for tests that act behind the operator's back (`clippy.toml` forbids them elsewhere).

    fn task(mutation: &Mutation, upid: Option<Upid>) -> Result<Upid, Error> {
        upid.ok_or_else(|| Error::Decode {
            operation: mutation.operation(),
            message: "no UPID in the answer".into(),
        })
    }

    #[allow(clippy::disallowed_methods)] // the wrappers are themselves disallowed outside tests
    async fn start(&self, mutation: Mutation) -> Result<Upid, Error> {
        let upid = self.mutate(&mutation).await?;
        Self::task(&mutation, upid)
    }

    /// Downloads an appliance template into `storage`.
    pub async fn download_appliance(&self, node: &str, storage: &str, template: &str) -> Result<Upid, Error> {
        self.start(Mutation::DownloadAppliance {
            node: node.into(),
            storage: storage.into(),
            template: template.into(),
        })
        .await
    }

    /// Downloads a container template from a URL into `storage`.
    pub async fn download_template_url(
        &self,
        node: &str,
        storage: &str,
        url: &str,
        filename: &str,
        checksum: &str,
        algorithm: &str,
    ) -> Result<Upid, Error> {
        self.start(Mutation::DownloadUrl {
            node: node.into(),
            storage: storage.into(),
            url: url.into(),
            filename: filename.into(),
            checksum: checksum.into(),
            algorithm: algorithm.into(),
        })
        .await
    }

    /// Creates a container (a `vzcreate` task).
    pub async fn create_container(&self, node: &str, create: &CreateLxc) -> Result<Upid, Error> {
        self.start(Mutation::CreateContainer {
            node: node.into(),
            create: Box::new(create.clone()),
        })
        .await
    }

    /// Updates a container's config with the digest the change was computed from.
    pub async fn update_container_config(
        &self,
        node: &str,
        vmid: u32,
        digest: &str,
        set: Params,
        delete: &[String],
    ) -> Result<(), Error> {
        #[allow(clippy::disallowed_methods)] // the wrappers are themselves disallowed outside tests
        self.mutate(&Mutation::UpdateConfig {
            node: node.into(),
            vmid,
            digest: digest.into(),
            set,
            delete: delete.to_vec(),
        })
        .await
        .map(|_| ())
    }

    /// Starts, stops, reboots or shuts down a container.
    pub async fn container_power(&self, node: &str, vmid: u32, action: PowerAction) -> Result<Upid, Error> {
        self.start(Mutation::Power {
            node: node.into(),
            vmid,
            action,
        })
        .await
    }

    /// Destroys a container with its disks.
    pub async fn destroy_container(&self, node: &str, vmid: u32) -> Result<Upid, Error> {
        self.start(Mutation::Destroy {
            node: node.into(),
            vmid,
        })
        .await
    }

    /// Grows a disk to an absolute size in GiB.
    pub async fn resize_disk(&self, node: &str, vmid: u32, disk: &str, size_gib: u64) -> Result<Upid, Error> {
        self.start(Mutation::Resize {
            node: node.into(),
            vmid,
            disk: disk.into(),
            size_gib,
        })
        .await
    }

    /// Migrates a container to `target`, restarting a running one.
    pub async fn migrate_container(
        &self,
        node: &str,
        vmid: u32,
        target: &str,
        restart: bool,
    ) -> Result<Upid, Error> {
        self.start(Mutation::Migrate {
            node: node.into(),
            vmid,
            target: target.into(),
            restart,
        })
        .await
    }
}
