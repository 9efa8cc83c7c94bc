//! Builds the Proxmox client of a `ProxmoxNode` from its spec and its credentials Secret.

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::{Api, Client};

use std::sync::Arc;

use crate::crd::node::ProxmoxNodeSpec;
use crate::proxmox::client::ClientConfig;
use crate::proxmox::client::Metrics;
use crate::proxmox::tls::parse_fingerprint;
use crate::proxmox::{Credentials, ProxmoxClient, Secret, TlsTrust};

/// Why a node's client could not be built; each maps to a condition reason.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("Secret {0} not found")]
    SecretNotFound(String),
    #[error("Secret {secret} holds neither tokenId+tokenSecret nor username+password")]
    CredentialsIncomplete { secret: String },
    #[error("spec.tls: {0}")]
    Tls(String),
    #[error("reading Secret {secret}: {source}")]
    Kube {
        secret: String,
        #[source]
        source: kube::Error,
    },
}

impl ConnectError {
    /// The condition reason for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::SecretNotFound(_) | Self::CredentialsIncomplete { .. } => "CredentialsNotFound",
            Self::Tls(_) => "InvalidTLSSettings",
            Self::Kube { .. } => "KubernetesError",
        }
    }
}

/// Reads the credentials from the Secret's data (`tokenId`/`tokenSecret` or `username`/`password`).
pub fn credentials_from(secret: &KubeSecret, name: &str) -> Result<Credentials, ConnectError> {
    let data = secret.data.clone().unwrap_or_default();
    let get = |k: &str| {
        data.get(k)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    match (
        get("tokenId"),
        get("tokenSecret"),
        get("username"),
        get("password"),
    ) {
        (Some(id), Some(secret), _, _) => Ok(Credentials::Token {
            id,
            secret: Secret::new(secret),
        }),
        (_, _, Some(username), Some(password)) => Ok(Credentials::Password {
            username,
            password: Secret::new(password),
        }),
        _ => Err(ConnectError::CredentialsIncomplete {
            secret: name.to_string(),
        }),
    }
}

/// The TLS trust the spec asks for.
pub fn trust_from(spec: &ProxmoxNodeSpec) -> Result<TlsTrust, ConnectError> {
    let tls = &spec.tls;
    Ok(
        match (&tls.ca_bundle, &tls.fingerprint_sha256, tls.insecure_skip_verify) {
            (_, _, true) => TlsTrust::InsecureSkipVerify,
            (_, Some(fp), _) => {
                TlsTrust::PinnedSha256(parse_fingerprint(fp).map_err(|e| ConnectError::Tls(e.to_string()))?)
            }
            (Some(pem), None, _) => TlsTrust::CaBundle(pem.clone()),
            (None, None, false) => TlsTrust::SystemRoots,
        },
    )
}

/// Reads the Secret and builds the client.
pub async fn connect(
    kube: &Client,
    spec: &ProxmoxNodeSpec,
    metrics: Option<Arc<dyn Metrics>>,
    slots: Option<crate::proxmox::slots::TaskSlots>,
) -> Result<ProxmoxClient, ConnectError> {
    let r = &spec.credentials_secret_ref;
    let full = format!("{}/{}", r.namespace, r.name);
    let secrets: Api<KubeSecret> = Api::namespaced(kube.clone(), &r.namespace);
    let secret = secrets
        .get_opt(&r.name)
        .await
        .map_err(|source| ConnectError::Kube {
            secret: full.clone(),
            source,
        })?
        .ok_or_else(|| ConnectError::SecretNotFound(full.clone()))?;
    let credentials = credentials_from(&secret, &full)?;
    let mut config = ClientConfig::new(spec.endpoint.clone(), credentials, trust_from(spec)?);
    config.max_concurrent_tasks = spec.max_concurrent_tasks.max(1) as usize;
    if let Some(slots) = &slots {
        slots.set_limit(config.max_concurrent_tasks);
    }
    config.task_slots = slots;
    config.metrics = metrics;
    ProxmoxClient::new(config).map_err(|e| ConnectError::Tls(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(pairs: &[(&str, &str)]) -> KubeSecret {
        KubeSecret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn tokens_win_then_passwords_and_incomplete_is_refused() {
        let token = credentials_from(
            &secret(&[("tokenId", "root@pam!op"), ("tokenSecret", "s")]),
            "ns/a",
        )
        .unwrap();
        assert_eq!(token.identity(), "root@pam!op");
        let pw = credentials_from(&secret(&[("username", "root@pam"), ("password", "p")]), "ns/a").unwrap();
        assert!(pw.is_root_ticket());
        let err = credentials_from(&secret(&[("tokenId", "root@pam!op")]), "ns/a").unwrap_err();
        assert_eq!(err.reason(), "CredentialsNotFound");
        assert!(
            !err.to_string().contains("root@pam!op"),
            "no credential material in the message"
        );
    }
}

/// The Proxmox clients of the nodes, shared by every controller: rebuilt only when the node's
/// spec (generation) or its credentials Secret (resourceVersion) changed, so tickets and TLS
/// setup are reused across polls.
#[derive(Clone, Default)]
pub struct ClientCache(
    Arc<std::sync::Mutex<std::collections::HashMap<String, (String, ProxmoxClient)>>>,
    /// Each node's task slots, kept across client rebuilds: `maxConcurrentTasks` counts the
    /// node's tasks, whichever client started them.
    Arc<std::sync::Mutex<std::collections::HashMap<String, crate::proxmox::slots::TaskSlots>>>,
);

impl ClientCache {
    /// What a client of `node` is built from: the spec's generation and the credentials
    /// Secret's resourceVersion.
    pub async fn version(
        &self,
        kube: &Client,
        node: &crate::crd::ProxmoxNode,
    ) -> Result<String, ConnectError> {
        let r = &node.spec.credentials_secret_ref;
        let secret_version = Api::<KubeSecret>::namespaced(kube.clone(), &r.namespace)
            .get_metadata_opt(&r.name)
            .await
            .map_err(|source| ConnectError::Kube {
                secret: format!("{}/{}", r.namespace, r.name),
                source,
            })?
            .and_then(|m| m.metadata.resource_version)
            .unwrap_or_default();
        Ok(Self::key(node, &secret_version))
    }

    /// The key of a client built from `node`'s spec and its credentials Secret at
    /// `secret_version` (empty: the Secret is absent).
    pub fn key(node: &crate::crd::ProxmoxNode, secret_version: &str) -> String {
        format!(
            "{}/{secret_version}",
            node.metadata.generation.unwrap_or_default()
        )
    }

    /// The client of `node`, built on first use or after a change.
    pub async fn get(
        &self,
        kube: &Client,
        node: &crate::crd::ProxmoxNode,
        metrics: Option<Arc<dyn Metrics>>,
    ) -> Result<ProxmoxClient, ConnectError> {
        let key = self.version(kube, node).await?;
        self.get_at(kube, node, metrics, key).await
    }

    /// The client of `node` as last built for its current spec, without reading its Secret
    /// again: the node's poll notices a changed Secret and rebuilds the client, so the
    /// reconciles of other kinds need not each ask the API server. Built on first use.
    pub async fn current(
        &self,
        kube: &Client,
        node: &crate::crd::ProxmoxNode,
        metrics: Option<Arc<dyn Metrics>>,
    ) -> Result<ProxmoxClient, ConnectError> {
        use kube::ResourceExt;
        let generation = format!("{}/", node.metadata.generation.unwrap_or_default());
        if let Some((k, c)) = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&node.name_any())
            && k.starts_with(&generation)
        {
            return Ok(c.clone());
        }
        self.get(kube, node, metrics).await
    }

    /// The client of `node` built from `key` (what [`version`](Self::version) returned).
    pub async fn get_at(
        &self,
        kube: &Client,
        node: &crate::crd::ProxmoxNode,
        metrics: Option<Arc<dyn Metrics>>,
        key: String,
    ) -> Result<ProxmoxClient, ConnectError> {
        use kube::ResourceExt;
        let name = node.name_any();
        if let Some((k, c)) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&name)
            && *k == key
        {
            return Ok(c.clone());
        }
        let slots = self
            .1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.clone())
            .or_insert_with(|| {
                crate::proxmox::slots::TaskSlots::new(node.spec.max_concurrent_tasks.max(1) as usize)
            })
            .clone();
        let client = connect(kube, &node.spec, metrics, Some(slots)).await?;
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, (key, client.clone()));
        Ok(client)
    }
}
