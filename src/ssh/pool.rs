//! One [`SshHost`] per Proxmox node, shared by every reconcile that provisions on it, and
//! rebuilt when what identifies the connection changes (address, user, pinned host key,
//! session cap, or the client key from the Secret).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::client::SshHost;
use super::connect::SshConfig;
use super::key::ClientKey;

/// What a pooled connection was made for; any change means a new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    config: SshConfig,
    client_key: String,
}

/// Hosts by node name.
#[derive(Debug, Default)]
pub struct SshPool {
    hosts: Mutex<HashMap<String, (Identity, Arc<SshHost>)>>,
}

impl SshPool {
    pub fn new() -> Self {
        Self::default()
    }

    /// The host for `node`: the pooled one while `config` and `key` are unchanged, else a new
    /// one (the old connection closes when its last user drops it).
    /// Each new host reports its sessions to `observer`.
    pub fn host(
        &self,
        node: &str,
        config: SshConfig,
        key: ClientKey,
        observer: crate::observe::Observed,
    ) -> Arc<SshHost> {
        let identity = Identity {
            config: config.clone(),
            client_key: key.public_fingerprint(),
        };
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((known, host)) = hosts.get(node)
            && *known == identity
        {
            return host.clone();
        }
        let host = Arc::new(SshHost::new(config, key).observed(observer));
        hosts.insert(node.to_string(), (identity, host.clone()));
        host
    }

    /// Drops the host of a node that is gone.
    pub fn remove(&self, node: &str) {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner()).remove(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ssh::key::fixtures::{KEY, KEY_FINGERPRINT as FP};

    #[test]
    fn one_host_per_node_until_its_identity_changes() {
        let pool = SshPool::new();
        let key = ClientKey::from_text(KEY.as_bytes()).unwrap();
        let config = SshConfig::new("pve1.lan", 22, "root", FP, 4).unwrap();
        let a = pool.host("pve1", config.clone(), key.clone(), None);
        assert!(Arc::ptr_eq(
            &a,
            &pool.host("pve1", config.clone(), key.clone(), None)
        ));
        assert!(!Arc::ptr_eq(
            &a,
            &pool.host("pve2", config.clone(), key.clone(), None)
        ));
        let mut more_sessions = config.clone();
        more_sessions.max_sessions = 8;
        let b = pool.host("pve1", more_sessions.clone(), key.clone(), None);
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(
            &b,
            &pool.host("pve1", more_sessions, key.clone(), None)
        ));
        pool.remove("pve1");
        assert!(!Arc::ptr_eq(&b, &pool.host("pve1", config, key, None)));
    }
}
