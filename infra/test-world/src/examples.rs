//! The manifests of `examples/`, pointed at a running simulator and SSH host: what the
//! examples test applies and what `make demo` applies.

use serde_json::{Value, json};

use crate::binaries::repo_root;

/// Where the examples' ProxmoxNodes should point.
pub struct ExampleTarget<'a> {
    /// The simulator's API endpoint and certificate fingerprint.
    pub url: &'a str,
    pub fingerprint: &'a str,
    /// The secret of the token the examples' token Secret names, and the user and password
    /// of the ticket-auth node's Secret.
    pub token_secret: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    /// `spec.ssh` (without the key reference) and the private key's text.
    pub ssh: &'a Value,
    pub key: &'a str,
    pub poll_seconds: u64,
}

/// Every document of `examples/*.yaml`, in file order, with the node's endpoint, fingerprint,
/// token secret and SSH filled in.
pub fn examples(target: &ExampleTarget<'_>) -> anyhow::Result<Vec<Value>> {
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("examples"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|f| f.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let mut v: Value = serde::Deserialize::deserialize(doc)?;
            if v.is_null() {
                continue;
            }
            let kind = v["kind"].as_str().unwrap_or_default().to_string();
            let name = v["metadata"]["name"].as_str().unwrap_or_default().to_string();
            match (kind.as_str(), name.as_str()) {
                ("Secret", "pve1-credentials") => v["stringData"]["tokenSecret"] = json!(target.token_secret),
                ("Secret", "pve2-credentials") => {
                    v["stringData"]["username"] = json!(target.username);
                    v["stringData"]["password"] = json!(target.password);
                }
                ("Secret", "pve1-ssh") => v["stringData"]["ssh-privatekey"] = json!(target.key),
                ("ProxmoxNode", _) => {
                    v["spec"]["endpoint"] = json!(target.url);
                    v["spec"]["tls"] = json!({"fingerprintSha256": target.fingerprint});
                    // The SSH stand-in is one simulated host: the nodes that name a key use it.
                    if !v["spec"]["ssh"].is_null() {
                        let key_ref = v["spec"]["ssh"]["privateKeySecretRef"].clone();
                        v["spec"]["ssh"] = target.ssh.clone();
                        v["spec"]["ssh"]["privateKeySecretRef"] = key_ref;
                    }
                    v["spec"]["pollIntervalSeconds"] = json!(target.poll_seconds);
                }
                _ => {}
            }
            docs.push(v);
        }
    }
    Ok(docs)
}
