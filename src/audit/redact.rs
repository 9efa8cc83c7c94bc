//! Keeps secrets out of the audit trail: parameters whose names say they are secret are masked
//! before they are stored, and their values are scrubbed from error texts.
//!
//! A name is secret when it contains (case-insensitive) `password`, `passwd`, `secret`,
//! `token`, `ticket`, `cookie`, `private`, `credential`, `csrf` or `apikey`/`api-key`/`api_key`.
//! Public keys (`ssh-public-keys`) are not secret and are kept.

use serde_json::{Map, Value};

/// What a secret value is replaced with.
pub const REDACTED: &str = "<redacted>";

const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "ticket",
    "cookie",
    "private",
    "credential",
    "csrf",
    "apikey",
    "api-key",
    "api_key",
];

/// Whether a parameter of this name holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| key.contains(word))
}

/// A copy of `params` with every secret masked: values under secret names at any depth, and
/// secret entries of property strings (`name=eth0,password=…` keeps `name=eth0`).
pub fn redact_params(params: &Value) -> Value {
    match params {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) && !v.is_null() {
                        Value::String(REDACTED.into())
                    } else {
                        redact_params(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_params).collect()),
        Value::String(s) => Value::String(redact_property_string(s)),
        other => other.clone(),
    }
}

/// Masks the secret `key=value` entries of a comma-separated property string.
fn redact_property_string(s: &str) -> String {
    if !s.contains('=') {
        return s.to_string();
    }
    s.split(',')
        .map(|part| match part.split_once('=') {
            Some((k, _)) if is_secret_key(k) => format!("{k}={REDACTED}"),
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The secret strings [`redact_params`] masks, longest first (to scrub them from texts).
pub fn secret_values(params: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect_secrets(params, false, &mut found);
    found.retain(|s| !s.is_empty());
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    found
}

fn collect_secrets(value: &Value, secret: bool, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                collect_secrets(v, secret || is_secret_key(k), found);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_secrets(v, secret, found)),
        Value::String(s) if secret => found.push(s.clone()),
        Value::String(s) => found.extend(
            s.split(',')
                .filter_map(|part| part.split_once('='))
                .filter(|(k, _)| is_secret_key(k))
                .map(|(_, v)| v.to_string()),
        ),
        Value::Number(n) if secret => found.push(n.to_string()),
        _ => {}
    }
}

/// `text` with every occurrence of a secret value replaced by [`REDACTED`].
pub fn scrub(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_string(), |text, secret| {
        text.replace(secret.as_str(), REDACTED)
    })
}

/// Proxmox form parameters (`(name, value)` pairs) as a JSON object, redacted; a name given
/// more than once maps to an array of its values.
pub fn form_params(params: &[(String, String)]) -> Value {
    let mut map = Map::new();
    for (k, v) in params {
        let v = Value::String(v.clone());
        match map.get_mut(k) {
            Some(Value::Array(items)) => items.push(v),
            Some(first) => *first = Value::Array(vec![first.take(), v]),
            None => {
                map.insert(k.clone(), v);
            }
        }
    }
    redact_params(&Value::Object(map))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_names_are_masked_at_any_depth_and_public_keys_kept() {
        let params = json!({
            "vmid": 120,
            "password": "hunter2-root",
            "ssh-public-keys": "ssh-ed25519 AAAAC3Nz operator@example",
            "tokenSecret": "5f0c-secret-uuid",
            "nested": {"PVEAuthCookie": "PVE:root@pam:ABC", "list": [{"API_KEY": "k-1"}, "plain"]},
            "ClientPassword": null,
        });
        assert_eq!(
            redact_params(&params),
            json!({
                "vmid": 120,
                "password": REDACTED,
                "ssh-public-keys": "ssh-ed25519 AAAAC3Nz operator@example",
                "tokenSecret": REDACTED,
                "nested": {"PVEAuthCookie": REDACTED, "list": [{"API_KEY": REDACTED}, "plain"]},
                "ClientPassword": null,
            })
        );
    }

    #[test]
    fn secret_entries_of_property_strings_are_masked() {
        let params = json!({"net0": "name=eth0,bridge=vmbr0", "mp0": "local:8,secret=s3cr3t,backup=1"});
        assert_eq!(
            redact_params(&params),
            json!({"net0": "name=eth0,bridge=vmbr0", "mp0": format!("local:8,secret={REDACTED},backup=1")})
        );
        assert_eq!(secret_values(&params), vec!["s3cr3t".to_string()]);
    }

    #[test]
    fn secret_values_are_scrubbed_from_texts() {
        let params = json!({"password": "hunter2", "token": {"value": "hunter2-long"}, "hostname": "web"});
        let secrets = secret_values(&params);
        assert_eq!(secrets, vec!["hunter2-long".to_string(), "hunter2".to_string()]);
        assert_eq!(
            scrub("bad password hunter2-long (was hunter2) for web", &secrets),
            format!("bad password {REDACTED} (was {REDACTED}) for web")
        );
    }

    #[test]
    fn form_params_become_a_redacted_object() {
        let pairs = [
            ("vmid".to_string(), "120".to_string()),
            ("password".to_string(), "hunter2".to_string()),
            ("delete".to_string(), "mp0".to_string()),
            ("delete".to_string(), "mp1".to_string()),
        ];
        assert_eq!(
            form_params(&pairs),
            json!({"vmid": "120", "password": REDACTED, "delete": ["mp0", "mp1"]})
        );
    }
}
