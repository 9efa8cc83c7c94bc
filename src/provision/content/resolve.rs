//! Resolves provisioning from the spec into bytes: inline content as is, `contentFrom` from
//! ConfigMaps and Secrets. Errors name the spec field so a condition can point at it.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use super::digest::{ResolvedFile, ResolvedProvisioning, ResolvedScript};
use crate::crd::common::{ContentKeyRef, ContentSource};
use crate::crd::provisioning::Provisioning;

/// Content that could not be resolved, with the field it came from.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{field}: reading {what}: {source}")]
    Kube {
        field: String,
        what: String,
        #[source]
        source: kube::Error,
    },
}

impl ResolveError {
    /// Whether the problem is in the spec (or a missing object) rather than the API server.
    pub fn is_invalid(&self) -> bool {
        matches!(self, Self::Invalid { .. })
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ResolveError {
    ResolveError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Fetches one key of a ConfigMap or Secret.
async fn fetch(
    client: &Client,
    source: &ContentSource,
    default_namespace: Option<&str>,
    field: &str,
) -> Result<Vec<u8>, ResolveError> {
    let (r, secret, sub): (&ContentKeyRef, bool, &str) =
        match (&source.config_map_key_ref, &source.secret_key_ref) {
            (Some(r), None) => (r, false, "configMapKeyRef"),
            (None, Some(r)) => (r, true, "secretKeyRef"),
            _ => {
                return Err(invalid(
                    field,
                    "exactly one of configMapKeyRef and secretKeyRef must be set",
                ));
            }
        };
    let field = format!("{field}.{sub}");
    let ns = r
        .namespace
        .as_deref()
        .or(default_namespace)
        .ok_or_else(|| invalid(&field, "namespace is required here"))?;
    let kind = if secret { "Secret" } else { "ConfigMap" };
    let what = format!("{kind} {ns}/{}", r.name);
    let kube_err = |source| ResolveError::Kube {
        field: field.clone(),
        what: what.clone(),
        source,
    };
    let value = if secret {
        let s = Api::<Secret>::namespaced(client.clone(), ns)
            .get_opt(&r.name)
            .await
            .map_err(kube_err)?;
        let s = s.ok_or_else(|| invalid(&field, format!("{what} not found")))?;
        s.data.and_then(|mut d| d.remove(&r.key)).map(|b| b.0)
    } else {
        let c = Api::<ConfigMap>::namespaced(client.clone(), ns)
            .get_opt(&r.name)
            .await
            .map_err(kube_err)?;
        let c = c.ok_or_else(|| invalid(&field, format!("{what} not found")))?;
        let text = c
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|s| s.as_bytes().to_vec());
        text.or_else(|| c.binary_data.and_then(|mut d| d.remove(&r.key)).map(|b| b.0))
    };
    value.ok_or_else(|| invalid(&field, format!("{what} has no key {:?}", r.key)))
}

async fn content(
    client: &Client,
    inline: &Option<String>,
    from: &Option<ContentSource>,
    default_namespace: Option<&str>,
    field: &str,
) -> Result<Vec<u8>, ResolveError> {
    match (inline, from) {
        (Some(text), None) => Ok(text.as_bytes().to_vec()),
        (None, Some(source)) => {
            fetch(client, source, default_namespace, &format!("{field}.contentFrom")).await
        }
        _ => Err(invalid(
            field,
            "exactly one of content and contentFrom must be set",
        )),
    }
}

/// Resolves `provisioning` found at `prefix` in the spec (e.g. `spec` for a template,
/// `spec.provisioning` for a container). `default_namespace` is the container's namespace;
/// templates pass `None` and must name namespaces.
pub async fn resolve(
    client: &Client,
    provisioning: &Provisioning,
    prefix: &str,
    default_namespace: Option<&str>,
) -> Result<ResolvedProvisioning, ResolveError> {
    let mut out = ResolvedProvisioning::default();
    for (i, f) in provisioning.files.iter().enumerate() {
        let field = format!("{prefix}.files[{i}]");
        out.files.push(ResolvedFile {
            path: f.path.clone(),
            mode: f.mode.clone(),
            owner: f.owner.clone(),
            policy: f.policy,
            content: content(client, &f.content, &f.content_from, default_namespace, &field).await?,
        });
    }
    if let Some(p) = &provisioning.packages {
        for (manager, list) in [
            ("apt", &p.apt),
            ("apk", &p.apk),
            ("dnf", &p.dnf),
            ("pip", &p.pip),
            ("npm", &p.npm),
        ] {
            if !list.is_empty() {
                out.packages.push((manager.to_string(), list.clone()));
            }
        }
    }
    for (i, s) in provisioning.scripts.iter().enumerate() {
        let field = format!("{prefix}.scripts[{i}]");
        out.scripts.push(ResolvedScript {
            name: s.name.clone(),
            interpreter: s.interpreter.clone(),
            timeout_seconds: s.timeout_seconds,
            env: s.env.clone(),
            content: content(client, &s.content, &s.content_from, default_namespace, &field).await?,
        });
    }
    Ok(out)
}
