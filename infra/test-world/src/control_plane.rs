//! etcd + kube-apiserver with RBAC and service-account signing, an admin kubeconfig, and the
//! project's CRDs installed and Established. One per test binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::binaries::{Binaries, repo_root};
use crate::process::{free_port, port_open, scratch_dir, spawn_watched, wait_until};
use crate::{block_on_fresh, pki};

/// A running control plane.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    /// Admin kubeconfig (client certificate in `system:masters`).
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// PEM of the CA that signed the API server's certificate.
    pub ca_pem: String,
    /// The programs in use.
    pub binaries: Binaries,
}

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
static NAMESPACE_SEQ: AtomicU32 = AtomicU32::new(0);

/// The test binary's control plane, started on first use with the CRDs of `crds/` installed.
pub fn control_plane() -> &'static ControlPlane {
    CONTROL_PLANE
        .get_or_init(|| block_on_fresh(start()).map_err(|e| format!("{e:#}")))
        .as_ref()
        .unwrap_or_else(|e| panic!("test world: control plane failed to start: {e}"))
}

async fn start() -> anyhow::Result<ControlPlane> {
    // The API server's process is left to its watchdog: the shared one runs until the end.
    Ok(launch().await?.control_plane)
}

/// A control plane just started, with what it takes to start its API server again.
pub(crate) struct Launched {
    pub control_plane: ControlPlane,
    pub dir: PathBuf,
    pub etcd_port: u16,
    pub api_port: u16,
    pub api_server: Child,
}

/// Starts etcd and kube-apiserver in a fresh directory, writes the admin kubeconfig and installs
/// the CRDs of `crds/`.
pub(crate) async fn launch() -> anyhow::Result<Launched> {
    let binaries = Binaries::find()?;
    let dir = scratch_dir("kube")?;

    let (client_port, peer_port) = (free_port(), free_port());
    let mut etcd = Command::new(&binaries.etcd);
    etcd.arg("--data-dir")
        .arg(dir.join("etcd"))
        .arg(format!("--listen-client-urls=http://127.0.0.1:{client_port}"))
        .arg(format!("--advertise-client-urls=http://127.0.0.1:{client_port}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
        ))
        .arg(format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"))
        .args(["--unsafe-no-fsync", "--log-level=warn"]);
    let mut etcd = spawn_watched("etcd", etcd, &dir)?;
    wait_until(
        "etcd",
        &dir.join("etcd.log"),
        Duration::from_secs(30),
        &mut etcd,
        || port_open(client_port),
    )?;

    let pki = pki::write(&dir)?;
    let port = free_port();
    let mut api = spawn_api_server(&binaries, &dir, client_port, port, "kube-apiserver")?;

    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(dir.join("admin.crt"), &pki.admin_cert_pem)?;
    std::fs::write(dir.join("admin.key"), &pki.admin_key_pem)?;
    let url = format!("https://127.0.0.1:{port}");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n    certificate-authority: {ca}\n\
             users:\n- name: admin\n  user:\n    client-certificate: {crt}\n    client-key: {key}\n\
             contexts:\n- name: test\n  context:\n    cluster: test\n    user: admin\ncurrent-context: test\n",
            ca = dir.join("ca.crt").display(),
            crt = dir.join("admin.crt").display(),
            key = dir.join("admin.key").display(),
        ),
    )?;
    let cp = ControlPlane {
        kubeconfig,
        url,
        ca_pem: pki.ca_pem,
        binaries,
    };
    wait_api_server_ready(&cp, &mut api, &dir.join("kube-apiserver.log"), port).await?;
    install_crds(&cp.client().await).await?;
    Ok(Launched {
        control_plane: cp,
        dir,
        etcd_port: client_port,
        api_port: port,
        api_server: api,
    })
}

/// Starts kube-apiserver on `port` against the etcd on `etcd_port`, with the certificates and
/// keys in `dir`; its output goes to `dir/<log_name>.log`.
pub(crate) fn spawn_api_server(
    binaries: &Binaries,
    dir: &Path,
    etcd_port: u16,
    port: u16,
    log_name: &str,
) -> anyhow::Result<Child> {
    let mut api = Command::new(&binaries.kube_apiserver);
    api.arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
        .arg(format!("--secure-port={port}"))
        .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
        .args([
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
        ])
        .args([
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
        ])
        .arg(format!("--client-ca-file={}", dir.join("ca.crt").display()))
        .arg(format!("--tls-cert-file={}", dir.join("server.crt").display()))
        .arg(format!(
            "--tls-private-key-file={}",
            dir.join("server.key").display()
        ))
        .arg(format!("--cert-dir={}", dir.join("certs").display()))
        .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
        .arg(format!(
            "--service-account-key-file={}",
            dir.join("sa.pub").display()
        ))
        .arg(format!(
            "--service-account-signing-key-file={}",
            dir.join("sa.key").display()
        ))
        .args(["--enable-priority-and-fairness=false", "--v=1"]);
    spawn_watched(log_name, api, dir)
}

/// Waits until the API server listens on `port` and its `/readyz` says `ok`.
pub(crate) async fn wait_api_server_ready(
    cp: &ControlPlane,
    api: &mut Child,
    log: &Path,
    port: u16,
) -> anyhow::Result<()> {
    wait_until("kube-apiserver", log, Duration::from_secs(90), api, || {
        port_open(port)
    })?;
    let client = cp.client().await;
    let mut last = String::new();
    for _ in 0..600 {
        match client
            .request_text(http::Request::get("/readyz").body(Vec::new())?)
            .await
        {
            Ok(body) if body.trim() == "ok" => return Ok(()),
            Ok(body) => last = body,
            Err(e) => last = e.to_string(),
        }
        if let Some(status) = api.try_wait()? {
            bail!("kube-apiserver exited ({status}):\n{}", crate::process::tail(log));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("kube-apiserver /readyz never became ok: {last}")
}

async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("crds"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in files {
        let crd: CustomResourceDefinition = serde_yaml_ng::from_str(&std::fs::read_to_string(&file)?)
            .with_context(|| format!("parse {}", file.display()))?;
        let name = crd.metadata.name.clone().context("CRD without a name")?;
        api.patch(
            &name,
            &PatchParams::apply("test-world").force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("install {}", file.display()))?;
        names.push(name);
    }
    for name in names {
        wait_established(&api, &name).await?;
    }
    wait_openapi_published(client).await
}

/// Waits until the OpenAPI v3 document of the group lists the kinds: `kubectl explain` reads it,
/// and the API server publishes it a little after the CRDs are Established.
async fn wait_openapi_published(client: &Client) -> anyhow::Result<()> {
    let path = "/openapi/v3/apis/lxc.infrahaus.dev/v1alpha1";
    for _ in 0..300 {
        let request = http::Request::get(path).body(Vec::new())?;
        if let Ok(body) = client.request_text(request).await
            && ["LxcContainer", "LxcTemplate", "ProxmoxNode"]
                .iter()
                .all(|k| body.contains(k))
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the OpenAPI document of lxc.infrahaus.dev was never published")
}

/// Waits until the CRD's `Established` condition is `True`.
pub async fn wait_established(api: &Api<CustomResourceDefinition>, name: &str) -> anyhow::Result<()> {
    for _ in 0..300 {
        let crd = api.get(name).await?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("CRD {name} never became Established")
}

impl ControlPlane {
    /// An admin client, bound to the calling test's runtime.
    pub async fn client(&self) -> Client {
        Client::try_from(self.config().await).expect("build kube client")
    }

    /// The admin client's configuration (for a client built with layers of its own).
    pub async fn config(&self) -> Config {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("read test kubeconfig");
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("load test kubeconfig")
    }

    /// A client that authenticates with a bearer token only (e.g. a minted service-account
    /// token), trusting the control plane's CA.
    pub async fn client_with_token(&self, token: &str) -> Client {
        let mut config = Config::new(self.url.parse().expect("control plane URL"));
        config.root_cert = Some(vec![pem_der(&self.ca_pem)]);
        config.auth_info.token = Some(token.to_string().into());
        Client::try_from(config).expect("build token client")
    }

    /// `kubectl` pointed at this control plane.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(&self.binaries.kubectl);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }

    /// Creates a namespace with a unique name starting with `prefix` and returns the name.
    pub async fn namespace(&self, prefix: &str) -> String {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NAMESPACE_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
            .expect("namespace object");
        Api::<Namespace>::all(self.client().await)
            .create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        name
    }
}

/// The DER bytes of a PEM certificate.
fn pem_der(text: &str) -> Vec<u8> {
    pem::parse(text).expect("control plane CA is PEM").into_contents()
}
