//! The Helm chart's identity in a control plane without a kubelet: its CRDs, ServiceAccount and
//! RBAC applied from real `helm template`, and a kubeconfig holding a token of that
//! ServiceAccount, so a process run with it proves the chart's RBAC. Used by `make demo` and the
//! scale benchmark (tests/chart.rs checks the chart itself).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde_json::Value;

use crate::ControlPlane;

/// The chart, from the repository root.
pub const CHART: &str = "charts/lxc-operator";

/// What the API server can hold without a kubelet: the CRDs, the identity and its RBAC.
const KEPT: [&str; 6] = [
    "CustomResourceDefinition",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// Runs kubectl with the admin kubeconfig, feeding `stdin`; fails with its error output.
pub fn kubectl(cp: &ControlPlane, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = cp
        .kubectl()
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Renders the chart into `namespace` with `helm template`, applies its CRDs and RBAC, and
/// writes `dir/operator.kubeconfig` (context `context`) holding a day-long token of its
/// ServiceAccount. Returns the kubeconfig's path and the ServiceAccount's name.
pub async fn chart_identity(
    cp: &ControlPlane,
    admin: &kube::Client,
    namespace: &str,
    context: &str,
    dir: &Path,
) -> anyhow::Result<(PathBuf, String)> {
    let chart = crate::repo_root().join(CHART);
    let out = std::process::Command::new(&cp.binaries.helm)
        .args(["template", "lxc-operator"])
        .arg(&chart)
        .args(["--namespace", namespace])
        .output()
        .context("helm template")?;
    if !out.status.success() {
        bail!("helm template: {}", String::from_utf8_lossy(&out.stderr));
    }
    let rendered = String::from_utf8(out.stdout)?;
    let mut keep = Vec::new();
    let mut account = None;
    for doc in serde_yaml_ng::Deserializer::from_str(&rendered) {
        let v: Value = serde::Deserialize::deserialize(doc)?;
        let kind = v["kind"].as_str().unwrap_or_default();
        if KEPT.contains(&kind) {
            if kind == "ServiceAccount" {
                account = v["metadata"]["name"].as_str().map(str::to_string);
            }
            keep.push(serde_yaml_ng::to_string(&v)?);
        }
    }
    let account = account.context("the chart renders no ServiceAccount")?;
    kubectl(
        cp,
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(&keep.join("---\n")),
    )?;
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(24 * 3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create_token_request(&account, &PostParams::default(), &request)
        .await?
        .status
        .context("no token in the TokenRequest's answer")?
        .token;
    let path = dir.join("operator.kubeconfig");
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, &cp.ca_pem)?;
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: {}\n    certificate-authority: {}\n\
             users:\n- name: operator\n  user:\n    token: {token}\n\
             contexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: operator\n    namespace: {namespace}\ncurrent-context: {context}\n",
            cp.url,
            ca.display()
        ),
    )?;
    Ok((path, account))
}
