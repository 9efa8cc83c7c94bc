//! What runs in a container after provisioning: the state of the declared systemd units (one
//! batched `systemctl show`), the TCP ports listening (`ss -ltnH`, when the container has
//! `ss`), and the credentials services leave in `/etc/infrahaus/credentials/<service>.env`.
//! Credential values are secrets: they are never logged and `Debug` shows only their keys.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::crd::provisioning::ServiceSpec;
use crate::ssh::check_env_name;

use super::error::ProvisionError;
use super::target::Target;

/// Where services leave credentials for the operator.
pub const CREDENTIALS_DIR: &str = "/etc/infrahaus/credentials";

/// What was found in the container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// One entry per declared service, in spec order.
    pub services: Vec<ServiceStatus>,
    /// Every TCP port listening in the container; `None` when it could not be listed.
    pub listening_ports: Option<BTreeSet<u16>>,
    /// Credentials by service (the unit name without its type suffix), for services that
    /// left a file.
    pub credentials: BTreeMap<String, Credentials>,
}

/// The state of one declared unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceStatus {
    pub unit: String,
    /// `active`, `inactive`, `failed`, `activating`... (`unknown` when systemd did not say).
    pub active_state: String,
    /// `running`, `exited`, `dead`... when systemd reported it.
    pub sub_state: Option<String>,
    /// `loaded`, `not-found`... when systemd reported it.
    pub load_state: Option<String>,
    /// The ports the spec expects, and whether each is listening (`None`: unknown).
    pub ports: Vec<PortStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortStatus {
    pub port: u16,
    pub listening: Option<bool>,
}

/// `KEY=VALUE` pairs from a credentials file. `Debug` shows the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials(BTreeMap<String, String>);

impl Credentials {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The values, for the one place that writes them into a Secret.
    pub fn expose(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

/// Reads the state of `services` in `target`.
pub async fn discover(
    target: &dyn Target,
    services: &[ServiceSpec],
    timeout: Duration,
) -> Result<Discovery, ProvisionError> {
    let mut discovery = Discovery::default();
    if services.is_empty() {
        return Ok(discovery);
    }
    for s in services {
        if s.name.is_empty() || s.name.contains(['/', '\0']) || s.name.chars().any(char::is_control) {
            return Err(ProvisionError::Invalid {
                step: "discover".into(),
                reason: format!("unit name {:?} is not a unit name", s.name),
            });
        }
    }
    let units: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    let states = unit_states(target, &units, timeout).await?;
    discovery.listening_ports = listening_ports(target, timeout).await?;
    for (spec, state) in services.iter().zip(states) {
        let ports = spec
            .ports
            .iter()
            .filter_map(|p| u16::try_from(*p).ok())
            .map(|port| PortStatus {
                port,
                listening: discovery.listening_ports.as_ref().map(|l| l.contains(&port)),
            })
            .collect();
        discovery.services.push(ServiceStatus { ports, ..state });
        let service = service_name(&spec.name);
        let path = format!("{CREDENTIALS_DIR}/{service}.env");
        if let Some(text) = target
            .read(&path, timeout)
            .await
            .map_err(ProvisionError::ssh("discover"))?
        {
            discovery.credentials.insert(
                service.to_string(),
                parse_env_file(&String::from_utf8_lossy(&text)),
            );
        }
    }
    Ok(discovery)
}

/// `nginx` for `nginx.service`.
pub fn service_name(unit: &str) -> &str {
    unit.rsplit_once('.').map_or(unit, |(name, _)| name)
}

/// One `systemctl show` for all units; `systemctl is-active` when `show` fails (minimal
/// systemctl implementations, such as pve-sim's stand-in, have no `show`).
async fn unit_states(
    target: &dyn Target,
    units: &[&str],
    timeout: Duration,
) -> Result<Vec<ServiceStatus>, ProvisionError> {
    let step = ProvisionError::ssh("discover");
    let mut argv = vec![
        "systemctl",
        "show",
        "-p",
        "Id,LoadState,ActiveState,SubState",
        "--",
    ];
    argv.extend(units);
    let out = target.exec(&argv, None, &[], timeout).await.map_err(step)?;
    let records = parse_systemctl_show(&out.stdout_text());
    if out.success() && records.len() == units.len() {
        return Ok(units
            .iter()
            .zip(records)
            .map(|(unit, mut r)| ServiceStatus {
                unit: unit.to_string(),
                active_state: r.remove("ActiveState").unwrap_or_else(|| "unknown".into()),
                sub_state: r.remove("SubState"),
                load_state: r.remove("LoadState"),
                ports: Vec::new(),
            })
            .collect());
    }
    let mut argv = vec!["systemctl", "is-active", "--"];
    argv.extend(units);
    let out = target
        .exec(&argv, None, &[], timeout)
        .await
        .map_err(ProvisionError::ssh("discover"))?;
    // `is-active` exits non-zero when any unit is inactive; its lines still say each state.
    let text = out.stdout_text();
    let mut lines = text.lines().map(str::trim);
    Ok(units
        .iter()
        .map(|unit| ServiceStatus {
            unit: unit.to_string(),
            active_state: lines
                .next()
                .filter(|l| !l.is_empty())
                .unwrap_or("unknown")
                .to_string(),
            ..ServiceStatus::default()
        })
        .collect())
}

/// `ss -ltnH`; `None` when the container has no `ss` or it fails.
async fn listening_ports(
    target: &dyn Target,
    timeout: Duration,
) -> Result<Option<BTreeSet<u16>>, ProvisionError> {
    let out = target
        .exec(&["ss", "-ltnH"], None, &[], timeout)
        .await
        .map_err(ProvisionError::ssh("discover"))?;
    if !out.success() {
        tracing::debug!(target = %target.name(), code = out.code, "no listening ports: ss unavailable");
        return Ok(None);
    }
    Ok(Some(parse_listening_ports(&out.stdout_text())))
}

/// The records of `systemctl show` (blank-line separated `Key=Value` blocks), in order.
pub fn parse_systemctl_show(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut records = Vec::new();
    let mut current = BTreeMap::new();
    for line in text.lines() {
        match line.split_once('=') {
            Some((k, v)) => {
                current.insert(k.trim().to_string(), v.trim().to_string());
            }
            None if line.trim().is_empty() && !current.is_empty() => {
                records.push(std::mem::take(&mut current));
            }
            None => {}
        }
    }
    if !current.is_empty() {
        records.push(current);
    }
    records
}

/// Local ports of `ss -ltn` lines (`LISTEN 0 128 0.0.0.0:22 0.0.0.0:*`, `[::]:80`,
/// `127.0.0.53%lo:53`, `*:8080`); a header line or anything unparsable is skipped.
pub fn parse_listening_ports(text: &str) -> BTreeSet<u16> {
    text.lines()
        .filter_map(|line| line.split_whitespace().nth(3))
        .filter_map(|local| local.rsplit_once(':'))
        .filter_map(|(_, port)| port.parse().ok())
        .collect()
}

/// `KEY=VALUE` lines: blank lines and `#` comments skipped, `export ` allowed, one pair of
/// matching surrounding quotes removed; lines without a valid key are ignored.
pub fn parse_env_file(text: &str) -> Credentials {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if check_env_name(key).is_err() {
            continue;
        }
        let value = value.trim();
        let unquoted = [('"', '"'), ('\'', '\'')]
            .iter()
            .find_map(|(open, close)| value.strip_prefix(*open).and_then(|v| v.strip_suffix(*close)))
            .filter(|_| value.len() >= 2)
            .unwrap_or(value);
        map.insert(key.to_string(), unquoted.to_string());
    }
    Credentials(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemctl_show_records_in_order() {
        let text = "Id=nginx.service\nLoadState=loaded\nActiveState=active\nSubState=running\n\n\
                    LoadState=not-found\nActiveState=inactive\nSubState=dead\nId=nope.service\n";
        let records = parse_systemctl_show(text);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0]["Id"], "nginx.service");
        assert_eq!(records[0]["SubState"], "running");
        assert_eq!(records[1]["LoadState"], "not-found");
        assert!(parse_systemctl_show("").is_empty());
    }

    #[test]
    fn listening_ports_from_ss() {
        let text = "State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n\
                    LISTEN 0      4096       127.0.0.53%lo:53        0.0.0.0:*\n\
                    LISTEN 0      128              0.0.0.0:22        0.0.0.0:*\n\
                    LISTEN 0      511                 [::]:80           [::]:*\n\
                    LISTEN 0      511                    *:8080            *:*\n\
                    garbage\n";
        assert_eq!(
            parse_listening_ports(text).into_iter().collect::<Vec<_>>(),
            [22, 53, 80, 8080]
        );
    }

    #[test]
    fn env_files_parse_and_hide_values() {
        let creds = parse_env_file(
            "# generated\nDB_USER=app\nexport DB_PASSWORD=\"s3cr=t value\"\nTOKEN='x'\n\
             bad key=1\n=nokey\nEMPTY=\nQUOTE=\"\n",
        );
        assert_eq!(creds.get("DB_USER"), Some("app"));
        assert_eq!(creds.get("DB_PASSWORD"), Some("s3cr=t value"));
        assert_eq!(creds.get("TOKEN"), Some("x"));
        assert_eq!(creds.get("EMPTY"), Some(""));
        assert_eq!(creds.get("QUOTE"), Some("\""));
        assert_eq!(creds.len(), 5);
        let debug = format!("{creds:?}");
        assert!(
            debug.contains("DB_PASSWORD") && !debug.contains("s3cr"),
            "{debug}"
        );
    }

    #[test]
    fn service_names_drop_the_unit_type() {
        assert_eq!(service_name("postgresql.service"), "postgresql");
        assert_eq!(service_name("app@1.service"), "app@1");
        assert_eq!(service_name("plain"), "plain");
    }
}
