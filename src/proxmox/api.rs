//! The typed endpoints the operator calls. Each names its operation (for errors and metrics),
//! says what kind of call it is (read, idempotent write, task start) and returns typed data.

use reqwest::Method;

use super::auth::Secret;
use super::client::{CallKind, Params, ProxmoxClient};
use super::error::Error;
use super::mutation::Mutation;
use super::property::{Features, Net, Startup, Volume};
use super::types::*;
use super::upid::Upid;

/// Parameters of `POST /nodes/{node}/lxc`, built from the spec side.
#[derive(Debug, Clone, Default)]
pub struct CreateLxc {
    pub vmid: u32,
    pub ostemplate: String,
    pub hostname: Option<String>,
    pub cores: Option<u32>,
    pub cpulimit: Option<f64>,
    pub cpuunits: Option<u32>,
    pub memory: Option<u64>,
    pub swap: Option<u64>,
    pub rootfs: Option<Volume>,
    pub mount_points: Vec<Volume>,
    pub nets: Vec<Net>,
    pub features: Option<Features>,
    /// Always sent: PVE 8 defaults to privileged containers.
    pub unprivileged: bool,
    pub onboot: Option<bool>,
    pub startup: Option<Startup>,
    pub nameserver: Option<String>,
    pub searchdomain: Option<String>,
    pub password: Option<Secret>,
    pub ssh_public_keys: Option<String>,
    pub tags: Option<String>,
    pub description: Option<String>,
    pub pool: Option<String>,
}

fn b(v: bool) -> String {
    u8::from(v).to_string()
}

impl CreateLxc {
    /// The form parameters, in Proxmox's names.
    pub fn params(&self) -> Params {
        let mut p: Params = vec![
            ("vmid".into(), self.vmid.to_string()),
            ("ostemplate".into(), self.ostemplate.clone()),
            ("unprivileged".into(), b(self.unprivileged)),
        ];
        let mut opt = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                p.push((k.to_string(), v));
            }
        };
        opt("hostname", self.hostname.clone());
        opt("cores", self.cores.map(|v| v.to_string()));
        opt("cpulimit", self.cpulimit.map(|v| v.to_string()));
        opt("cpuunits", self.cpuunits.map(|v| v.to_string()));
        opt("memory", self.memory.map(|v| v.to_string()));
        opt("swap", self.swap.map(|v| v.to_string()));
        opt("rootfs", self.rootfs.as_ref().map(Volume::to_string));
        opt("features", self.features.as_ref().map(Features::to_string));
        opt("onboot", self.onboot.map(b));
        opt("startup", self.startup.as_ref().map(Startup::to_string));
        opt("nameserver", self.nameserver.clone());
        opt("searchdomain", self.searchdomain.clone());
        opt("password", self.password.as_ref().map(|s| s.expose().to_string()));
        opt("ssh-public-keys", self.ssh_public_keys.clone());
        opt("tags", self.tags.clone());
        opt("description", self.description.clone());
        opt("pool", self.pool.clone());
        for (i, net) in self.nets.iter().enumerate() {
            p.push((format!("net{i}"), net.to_string()));
        }
        for (i, mp) in self.mount_points.iter().enumerate() {
            p.push((format!("mp{i}"), mp.to_string()));
        }
        p
    }
}

pub(super) fn enc(segment: &str) -> String {
    segment
        .bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (c as char).to_string(),
            _ => format!("%{c:02X}"),
        })
        .collect()
}

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

/// A power action on a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Start,
    Stop,
    Reboot,
    Shutdown { timeout_secs: u32 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_parameters_use_proxmox_names_and_property_strings() {
        let create = CreateLxc {
            vmid: 1000,
            ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into(),
            hostname: Some("web-1".into()),
            memory: Some(1024),
            rootfs: Some(Volume {
                volume: "local-lvm:8".into(),
                ..Default::default()
            }),
            nets: vec![Net {
                name: "eth0".into(),
                bridge: Some("vmbr0".into()),
                ip: Some("dhcp".into()),
                ..Default::default()
            }],
            unprivileged: true,
            onboot: Some(false),
            password: Some(Secret::new("pw")),
            ..Default::default()
        };
        let p = create.params();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("vmid"), Some("1000"));
        assert_eq!(get("unprivileged"), Some("1"));
        assert_eq!(get("onboot"), Some("0"));
        assert_eq!(get("rootfs"), Some("local-lvm:8"));
        assert_eq!(get("net0"), Some("name=eth0,bridge=vmbr0,ip=dhcp"));
        assert_eq!(get("password"), Some("pw"));
        assert_eq!(get("cores"), None, "unset fields are not sent");
        assert!(
            !format!("{create:?}").contains("\"pw\""),
            "the password stays out of Debug"
        );
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(enc("pve1"), "pve1");
        assert_eq!(
            enc("UPID:pve:1:2:3:vzcreate:100:root@pam!op:"),
            "UPID%3Apve%3A1%3A2%3A3%3Avzcreate%3A100%3Aroot%40pam%21op%3A"
        );
    }
}
