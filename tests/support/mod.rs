//! Shared by the end-to-end container tests: the operator's controllers running in-process on a
//! thread of their own (real API server, Postgres audit, Redis coordination), and a world per
//! test — a namespace, a pve-sim, ProxmoxNodes and an LxcTemplate of its own.
#![allow(dead_code)]

pub mod chart;
pub mod end_checks;
pub mod suite;

use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use lxc_operator::audit::AuditStore;
use lxc_operator::coordination::Coordinator;
use lxc_operator::crd::{LxcContainer, LxcTemplate, ProxmoxNode};
use lxc_operator::proxmox::tls::parse_fingerprint;
use lxc_operator::proxmox::types::LxcConfig;
use lxc_operator::proxmox::{ClientConfig, Credentials, ProxmoxClient, Secret as PveSecret, TlsTrust};
use lxc_operator::runtime::controllers::ControllerSet;
use pve_sim::{Config, PveSim};
use serde_json::{Value, json};

static OPERATOR: OnceLock<()> = OnceLock::new();
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// Everything the in-process operator logged so far.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

/// Keeps log lines for [`logs`]; with `E2E_LOG` set they also go to stderr.
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        if std::env::var("E2E_LOG").is_ok() {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The in-process operator's `--drift-check-interval`: each container's config is read at
/// least this often for drift the node poll cannot see.
pub const DRIFT_CHECK_INTERVAL: Duration = Duration::from_secs(40);
/// Every test node's `pollIntervalSeconds`.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Starts the controller set once per test binary, on a runtime that outlives every test, with
/// the binary's Postgres and Redis.
pub fn operator() {
    operator_with(test_world::postgres().url(), test_world::redis().url());
}

/// Starts the controller set once per test binary with this audit database and Redis.
pub fn operator_with(database_url: String, redis_url: String) {
    OPERATOR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        // The operator's log lines (debug and up; `E2E_LOG` is another env filter) are kept for
        // the tests to read.
        let filter = std::env::var("E2E_LOG").unwrap_or_else(|_| "lxc_operator=debug".into());
        if let Err(e) = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .try_init()
        {
            eprintln!("operator logs not captured: {e}");
        }
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("operator runtime");
            rt.block_on(async move {
                let kube = counting_client().await;
                let audit = AuditStore::connect(Some(&database_url), std::path::Path::new("/nonexistent"))
                    .await
                    .expect("audit store");
                let coordinator = Coordinator::connect(Some(&redis_url), Duration::from_secs(10))
                    .await
                    .expect("coordinator");
                let mut set = ControllerSet::new(kube, audit, coordinator);
                set.identity = Some("e2e".into());
                // Short, so a test can tell a wait counted from this start from one counted
                // from an old transition (no simulator delays an address unless told to).
                set.address_timeout = Duration::from_secs(5);
                set.drift_sweep = lxc_operator::cluster::sweep::SweepSettings {
                    interval: DRIFT_CHECK_INTERVAL,
                    reads_per_second: 2.0,
                };
                set.reconcile_metrics = Some(std::sync::Arc::new(CountReconciles));
                set.metrics = Some(metrics());
                let _ = tx.send(());
                set.run(std::future::pending()).await;
            });
        });
        rx.recv().expect("operator started");
    });
}

/// What the in-process operator asked of the API server: (verb, resource) → requests. Verbs are
/// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`; resources are plural names
/// with a subresource after a slash (`lxccontainers/status`).
pub static API_REQUESTS: std::sync::Mutex<std::collections::BTreeMap<(String, String), u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Reconciles the in-process operator finished, per controller.
pub static RECONCILES: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// `LxcContainer` reconciles by the reason they halted with (`""`: went through).
pub static CONTAINER_RECONCILES_BY_REASON: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// The in-process operator's metrics registry (Proxmox calls and, beside [`RECONCILES`],
/// reconciles), e.g. for the status page's latency pictures.
pub fn metrics() -> std::sync::Arc<lxc_operator::runtime::metrics::Metrics> {
    static METRICS: OnceLock<std::sync::Arc<lxc_operator::runtime::metrics::Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(lxc_operator::runtime::metrics::Metrics::new)
        .clone()
}

struct CountReconciles;

impl lxc_operator::cluster::ReconcileMetrics for CountReconciles {
    fn reconciled(
        &self,
        controller: &'static str,
        result: &'static str,
        halt: &'static str,
        reason: &str,
        s: f64,
    ) {
        *RECONCILES.lock().unwrap().entry(controller).or_default() += 1;
        if controller == "LxcContainer" {
            *CONTAINER_RECONCILES_BY_REASON
                .lock()
                .unwrap()
                .entry(reason.to_string())
                .or_default() += 1;
        }
        lxc_operator::cluster::ReconcileMetrics::reconciled(&*metrics(), controller, result, halt, reason, s);
    }

    fn active(&self, _: &'static str, _: i64) {}

    fn queued(&self, _: &'static str, _: i64) {}
}

/// The verb and resource of an API-server request.
pub fn classify(method: &http::Method, uri: &http::Uri) -> (String, String) {
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    // /api/v1/... or /apis/<group>/<version>/...; then [namespaces/<ns>/]<resource>[/<name>[/<sub>]]
    let mut rest: &[&str] = match parts.first() {
        Some(&"api") => parts.get(2..).unwrap_or_default(),
        _ => parts.get(3..).unwrap_or_default(),
    };
    if rest.len() >= 3 && rest[0] == "namespaces" {
        rest = &rest[2..];
    }
    let resource = match rest {
        [r] | [r, _] => r.to_string(),
        [r, _, sub, ..] => format!("{r}/{sub}"),
        [] => "namespaces".to_string(),
    };
    let watch = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match (method.as_str(), rest.len()) {
        ("GET", _) if watch => "watch",
        ("GET", 1) => "list",
        ("GET", _) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        (other, _) => other,
    };
    (verb.to_string(), resource)
}

/// The operator's client: every request is counted in [`API_REQUESTS`].
async fn counting_client() -> Client {
    let config = test_world::control_plane().config().await;
    let count = tower::util::MapRequestLayer::new(|req: http::Request<kube::client::Body>| {
        let key = classify(req.method(), req.uri());
        *API_REQUESTS.lock().unwrap().entry(key).or_default() += 1;
        req
    });
    kube::client::ClientBuilder::try_from(config)
        .expect("client builder")
        .with_layer(&count)
        .build()
}

/// Requests of `verb` on `resource` so far.
pub fn api_requests(verb: &str, resource: &str) -> u64 {
    API_REQUESTS
        .lock()
        .unwrap()
        .get(&(verb.to_string(), resource.to_string()))
        .copied()
        .unwrap_or_default()
}

/// An audit store reading the trail the operator writes.
pub async fn audit() -> AuditStore {
    AuditStore::connect(
        Some(&test_world::postgres().url()),
        std::path::Path::new("/nonexistent"),
    )
    .await
    .unwrap()
}

/// One test's world.
pub struct World {
    pub ns: String,
    pub sim: PveSim,
    pub kube: Client,
    /// ProxmoxNode names, one per simulated node (`<ns>-pve1`, ...).
    pub nodes: Vec<String>,
    /// The LxcTemplate (no provisioning steps).
    pub template: String,
}

impl World {
    /// A namespace, a simulator with `pve_nodes`, ProxmoxNodes labelled `site=<ns>`, and a template.
    pub async fn new(prefix: &str, pve_nodes: &[&str], cfg: impl FnOnce(Config) -> Config) -> World {
        operator();
        Self::without_operator(prefix, pve_nodes, cfg).await
    }

    /// The same world, for tests that run the operator as a process of their own.
    pub async fn without_operator(
        prefix: &str,
        pve_nodes: &[&str],
        cfg: impl FnOnce(Config) -> Config,
    ) -> World {
        Self::on(test_world::control_plane(), prefix, pve_nodes, cfg).await
    }

    /// The same world on a control plane of the test's own (e.g. one whose API server it restarts).
    pub async fn on(
        cp: &test_world::ControlPlane,
        prefix: &str,
        pve_nodes: &[&str],
        cfg: impl FnOnce(Config) -> Config,
    ) -> World {
        let kube = cp.client().await;
        let ns = cp.namespace(prefix).await;
        let sim = PveSim::start(cfg(
            Config::default_with_nodes(pve_nodes).with_task_duration_ms(30)
        ))
        .await
        .unwrap();
        apply(
            &kube,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": ns},
                   "stringData": {"tokenId": sim.token_id(), "tokenSecret": sim.token_secret()}}),
        )
        .await;
        let mut nodes = Vec::new();
        for pve in pve_nodes {
            let name = format!("{ns}-{pve}");
            apply(
                &kube,
                json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "ProxmoxNode",
                    "metadata": {"name": name, "labels": {"site": ns}},
                    "spec": {"endpoint": sim.url(), "nodeName": pve, "pollIntervalSeconds": 5,
                             "credentialsSecretRef": {"name": "token", "namespace": ns},
                             "tls": {"fingerprintSha256": sim.fingerprint_sha256()},
                             "vmidRange": {"min": 200, "max": 299}}}),
            )
            .await;
            nodes.push(name);
        }
        let template = format!("{ns}-debian");
        apply(
            &kube,
            json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate",
                "metadata": {"name": template},
                "spec": {"osTemplate": {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
                         "defaults": {"cores": 1, "memoryMiB": 512, "rootfsSizeGiB": 4, "tags": ["base"]}}}),
        )
        .await;
        World {
            ns,
            sim,
            kube,
            nodes,
            template,
        }
    }

    /// A world whose simulator keeps container roots (returned) and whose node has `spec.ssh`
    /// reaching the simulator's `pct` through the test world's sshd; `pin` overrides the
    /// host-key fingerprint.
    pub async fn with_ssh(prefix: &str, pin: Option<&str>) -> (World, std::path::PathBuf) {
        operator();
        Self::with_ssh_without_operator(prefix, pin).await
    }

    /// [`World::with_ssh`] for tests that run the operator as a process of their own.
    pub async fn with_ssh_without_operator(prefix: &str, pin: Option<&str>) -> (World, std::path::PathBuf) {
        let roots = scratch(prefix);
        let root_dir = roots.clone();
        let w = World::without_operator(prefix, &["pve1"], move |mut c| {
            c.ct_root_dir = Some(root_dir);
            c
        })
        .await;
        let (key, mut ssh) = ssh_host_for(&w.sim, "pve1", &roots);
        apply(
            &w.kube,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ssh", "namespace": w.ns},
                   "stringData": {"key": key}}),
        )
        .await;
        if let Some(pin) = pin {
            ssh["hostKeyFingerprint"] = json!(pin);
        }
        ssh["privateKeySecretRef"] = json!({"name": "ssh", "namespace": w.ns, "key": "key"});
        Api::<ProxmoxNode>::all(w.kube.clone())
            .patch(
                &w.nodes[0],
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"ssh": ssh}})),
            )
            .await
            .unwrap();
        (w, roots)
    }

    pub fn api(&self) -> Api<LxcContainer> {
        Api::namespaced(self.kube.clone(), &self.ns)
    }

    /// Applies an `LxcContainer` named `name` with `spec` (templateRef filled in if absent).
    pub async fn container(&self, name: &str, mut spec: Value) -> LxcContainer {
        if spec.get("templateRef").is_none() {
            spec["templateRef"] = json!(self.template);
        }
        let obj = json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcContainer",
            "metadata": {"name": name, "namespace": self.ns}, "spec": spec});
        self.api()
            .patch(name, &PatchParams::apply("e2e-test").force(), &Patch::Apply(&obj))
            .await
            .unwrap()
    }

    /// Merges `patch` into the container's spec.
    pub async fn patch_spec(&self, name: &str, patch: Value) {
        self.api()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": patch})),
            )
            .await
            .unwrap();
    }

    /// Waits until `check` holds for the container (fails with the last status seen).
    pub async fn wait(
        &self,
        name: &str,
        what: &str,
        secs: u64,
        check: impl Fn(&LxcContainer) -> bool,
    ) -> LxcContainer {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        let mut last = None;
        while tokio::time::Instant::now() < deadline {
            if let Some(ct) = self.api().get_opt(name).await.unwrap() {
                if check(&ct) {
                    return ct;
                }
                last = Some(ct);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "{name}: never {what} within {secs}s; last status: {}",
            serde_json::to_string_pretty(&last.and_then(|c| c.status)).unwrap()
        )
    }

    /// Waits for `Ready=True` at the current generation.
    pub async fn ready(&self, name: &str) -> LxcContainer {
        self.wait(name, "Ready", 90, |ct| {
            ct.status.as_ref().is_some_and(|s| {
                s.observed_generation == ct.metadata.generation
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .await
    }

    /// Deletes the container and waits until the object is gone.
    pub async fn delete(&self, name: &str) {
        self.api().delete(name, &DeleteParams::default()).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            if self.api().get_opt(name).await.unwrap().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let ct = self.api().get(name).await.unwrap();
        panic!("{name} was never deleted; status: {:?}", ct.status);
    }

    /// A root@pam ticket client for looking at (and tampering with) the simulator.
    pub fn root(&self) -> ProxmoxClient {
        let creds = Credentials::Password {
            username: self.sim.username().into(),
            password: PveSecret::new(self.sim.password()),
        };
        let tls = TlsTrust::PinnedSha256(parse_fingerprint(self.sim.fingerprint_sha256()).unwrap());
        ProxmoxClient::new(ClientConfig::new(self.sim.url(), creds, tls)).unwrap()
    }

    /// A container made by hand (root, the GUI), not by the operator, on `vmid` of pve1.
    #[allow(clippy::disallowed_methods, dead_code)] // a test's own container, not the operator's
    pub async fn hand_made(&self, vmid: u32) {
        let root = self.root();
        let create = lxc_operator::pipeline::desired::DesiredContainer {
            vmid,
            ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into(),
            hostname: Some("hand-made".into()),
            rootfs: Some(lxc_operator::proxmox::property::Volume::parse("local-lvm:4").unwrap()),
            unprivileged: true,
            ..Default::default()
        };
        let upid = root
            .create_container("pve1", &create.create_request())
            .await
            .unwrap();
        root.wait_task(&upid, Duration::from_secs(10)).await.unwrap();
    }

    /// The container's Proxmox config.
    pub async fn config(&self, pve: &str, vmid: u32) -> LxcConfig {
        self.root().container_config(pve, vmid).await.unwrap()
    }

    /// Changes the container's config behind the operator's back, as root (a GUI edit).
    #[allow(clippy::disallowed_methods)] // a test's own edit, not the operator's
    pub async fn behind_the_back(&self, pve: &str, vmid: u32, set: &[(&str, &str)], delete: &[&str]) {
        let root = self.root();
        let cfg = root.container_config(pve, vmid).await.unwrap();
        let set = set.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let delete: Vec<String> = delete.iter().map(|k| k.to_string()).collect();
        root.update_container_config(pve, vmid, &cfg.digest, set, &delete)
            .await
            .unwrap_or_else(|e| panic!("could not change VMID {vmid} behind the operator's back: {e}"));
    }

    /// Waits until the container's config satisfies `check`; returns how long that took
    /// (fails after `within`).
    pub async fn config_until(
        &self,
        pve: &str,
        vmid: u32,
        what: &str,
        within: Duration,
        check: impl Fn(&LxcConfig) -> bool,
    ) -> Duration {
        let started = tokio::time::Instant::now();
        loop {
            let cfg = self.config(pve, vmid).await;
            if check(&cfg) {
                return started.elapsed();
            }
            if started.elapsed() > within {
                panic!("VMID {vmid}: {what} not within {within:?}; config now {cfg:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The Events about `name` (reasons).
    pub async fn events(&self, name: &str) -> Vec<(String, String)> {
        let events: Api<Event> = Api::namespaced(self.kube.clone(), &self.ns);
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }

    /// Create calls (`POST /nodes/<pve>/lxc`) the simulator received, whatever their answer.
    pub fn creates(&self, pve: &str) -> usize {
        let path = format!("/nodes/{pve}/lxc");
        self.sim
            .admin()
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .count()
    }

    /// Mutating requests the operator (the API token) sent about `vmid`.
    pub fn operator_writes(&self, vmid: u32) -> Vec<String> {
        self.sim
            .admin()
            .requests()
            .into_iter()
            .filter(|r| r.vmid == Some(vmid) && r.method != "GET")
            .filter(|r| r.identity.as_deref() == Some(self.sim.token_id()))
            .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
            .collect()
    }

    pub async fn template(&self) -> LxcTemplate {
        Api::<LxcTemplate>::all(self.kube.clone())
            .get(&self.template)
            .await
            .unwrap()
    }

    pub async fn node(&self, i: usize) -> ProxmoxNode {
        Api::<ProxmoxNode>::all(self.kube.clone())
            .get(&self.nodes[i])
            .await
            .unwrap()
    }
}

/// Authorizes a fresh client key on the test world's sshd whose sessions reach `sim`'s `pct`
/// stand-in as the Proxmox host `pve_node` (see tests/ssh_provision/world.rs); returns the
/// private key's text and the ProxmoxNode `spec.ssh` for it (minus the key reference).
pub fn ssh_host_for(sim: &PveSim, pve_node: &str, scratch: &std::path::Path) -> (String, Value) {
    ssh_host_in_mode(sim, pve_node, scratch, false)
}

/// [`ssh_host_for`] with the key restricted to the host command (`command="<repo>/infra/host/
/// lxc-operator-host",restrict`) and `spec.ssh.mode: HostCommand`.
pub fn ssh_host_command_for(sim: &PveSim, pve_node: &str, scratch: &std::path::Path) -> (String, Value) {
    ssh_host_in_mode(sim, pve_node, scratch, true)
}

fn ssh_host_in_mode(
    sim: &PveSim,
    pve_node: &str,
    scratch: &std::path::Path,
    host_command: bool,
) -> (String, Value) {
    test_world::authorize_pve_host(sim.admin_url(), pve_node, &scratch.join("ssh-home"), host_command)
        .expect("authorize the simulated Proxmox host's key")
}

/// A scratch directory for container roots.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lxc-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Server-side applies any object.
pub async fn apply(kube: &Client, obj: Value) {
    let kind = obj["kind"].as_str().unwrap().to_string();
    let name = obj["metadata"]["name"].as_str().unwrap().to_string();
    let pp = PatchParams::apply("e2e-test").force();
    match kind.as_str() {
        "Secret" => {
            let ns = obj["metadata"]["namespace"].as_str().unwrap();
            let s: Secret = serde_json::from_value(obj.clone()).unwrap();
            Api::<Secret>::namespaced(kube.clone(), ns)
                .patch(&name, &pp, &Patch::Apply(&s))
                .await
                .unwrap();
        }
        "ProxmoxNode" => {
            Api::<ProxmoxNode>::all(kube.clone())
                .patch(&name, &pp, &Patch::Apply(&obj))
                .await
                .unwrap();
        }
        "LxcTemplate" => {
            Api::<LxcTemplate>::all(kube.clone())
                .patch(&name, &pp, &Patch::Apply(&obj))
                .await
                .unwrap();
        }
        other => panic!("apply: unsupported kind {other}"),
    }
}

/// The value of a condition's reason.
pub fn reason(ct: &LxcContainer, type_: &str) -> Option<String> {
    ct.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.reason.clone())
}

pub fn vmid(ct: &LxcContainer) -> u32 {
    ct.status.as_ref().and_then(|s| s.vmid).expect("vmid in status") as u32
}

pub fn name_of(ct: &LxcContainer) -> String {
    ct.name_any()
}
