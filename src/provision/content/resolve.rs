//! Resolves provisioning from the spec into bytes: inline content as is, `contentFrom` from
//! ConfigMaps and Secrets. Errors name the spec field so a condition can point at it.
//!
//! Which namespaces a reference may read is decided by the [`Scope`] of the object that holds
//! it, and checked for every reference before anything is read: a namespaced object reads only
//! its own namespace (the CRD's CEL rule refuses the field too; this is the second wall).

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

/// Whose provisioning is resolved, which decides the namespaces its references may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// A namespaced object (an `LxcContainer`) in this namespace: references read from it, and
    /// one that names another namespace is refused before anything is read.
    Namespace(&'a str),
    /// A cluster-scoped object written by administrators (an `LxcTemplate`): every reference
    /// names its namespace explicitly.
    Cluster,
}

fn invalid(field: &str, message: impl Into<String>) -> ResolveError {
    ResolveError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// The one reference of `source`, whether it names a Secret, and its field (`{field}.secretKeyRef`).
fn key_ref<'s>(
    source: &'s ContentSource,
    field: &str,
) -> Result<(&'s ContentKeyRef, bool, String), ResolveError> {
    match (&source.config_map_key_ref, &source.secret_key_ref) {
        (Some(r), None) => Ok((r, false, format!("{field}.configMapKeyRef"))),
        (None, Some(r)) => Ok((r, true, format!("{field}.secretKeyRef"))),
        _ => Err(invalid(
            field,
            "exactly one of configMapKeyRef and secretKeyRef must be set",
        )),
    }
}

/// The namespace `r` (at `field`) reads from in `scope`, or why it may not.
fn namespace_of<'a>(r: &'a ContentKeyRef, scope: Scope<'a>, field: &str) -> Result<&'a str, ResolveError> {
    match (scope, r.namespace.as_deref()) {
        (Scope::Namespace(own), None) => Ok(own),
        (Scope::Namespace(own), Some(ns)) if ns == own => Ok(own),
        (Scope::Namespace(own), Some(ns)) => Err(invalid(
            &format!("{field}.namespace"),
            format!(
                "namespace {ns:?} is not allowed: an object in namespace {own:?} reads content only \
                 from its own namespace (leave namespace out)"
            ),
        )),
        (Scope::Cluster, Some(ns)) => Ok(ns),
        (Scope::Cluster, None) => Err(invalid(field, "namespace is required here")),
    }
}

/// Fetches one key of a ConfigMap or Secret.
async fn fetch(
    client: &Client,
    source: &ContentSource,
    scope: Scope<'_>,
    field: &str,
) -> Result<Vec<u8>, ResolveError> {
    let (r, secret, field) = key_ref(source, field)?;
    let ns = namespace_of(r, scope, &field)?;
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
    scope: Scope<'_>,
    field: &str,
) -> Result<Vec<u8>, ResolveError> {
    match (inline, from) {
        (Some(text), None) => Ok(text.as_bytes().to_vec()),
        (None, Some(source)) => fetch(client, source, scope, &format!("{field}.contentFrom")).await,
        _ => Err(invalid(
            field,
            "exactly one of content and contentFrom must be set",
        )),
    }
}

/// Checks that every reference of `provisioning` may be read in `scope`, reading nothing, so a
/// refused reference late in the list cannot follow reads of earlier ones.
fn check_scope(provisioning: &Provisioning, prefix: &str, scope: Scope<'_>) -> Result<(), ResolveError> {
    let files = provisioning
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("{prefix}.files[{i}].contentFrom"), &f.content_from));
    let scripts = provisioning
        .scripts
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("{prefix}.scripts[{i}].contentFrom"), &s.content_from));
    for (field, source) in files.chain(scripts) {
        if let Some(source) = source {
            let (r, _, field) = key_ref(source, &field)?;
            namespace_of(r, scope, &field)?;
        }
    }
    Ok(())
}

/// Resolves `provisioning` found at `prefix` in the spec (e.g. `spec` for a template,
/// `spec.provisioning` for a container), reading references as `scope` allows. Every
/// reference is checked against the scope before the first read.
pub async fn resolve(
    client: &Client,
    provisioning: &Provisioning,
    prefix: &str,
    scope: Scope<'_>,
) -> Result<ResolvedProvisioning, ResolveError> {
    check_scope(provisioning, prefix, scope)?;
    let mut out = ResolvedProvisioning::default();
    for (i, f) in provisioning.files.iter().enumerate() {
        let field = format!("{prefix}.files[{i}]");
        out.files.push(ResolvedFile {
            path: f.path.clone(),
            mode: f.mode.clone(),
            owner: f.owner.clone(),
            policy: f.policy,
            content: content(client, &f.content, &f.content_from, scope, &field).await?,
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
            content: content(client, &s.content, &s.content_from, scope, &field).await?,
            record_output: s.record_output,
        });
    }
    Ok(out)
}
