//! Property strings (`net[n]`, `rootfs`, `mp[n]`, `features`, `dev[n]`, `unused[n]`): parsing,
//! sub-key validation with PVE's messages, and rendering back to `k=v,k=v`.

use crate::formats;

/// The type of one sub-key.
#[derive(Debug, Clone, Copy)]
enum Sub {
    Str,
    Bool,
    Int(i64, i64),
    Num,
    Check(fn(&str) -> bool, &'static str),
}

/// `(key, type, required, default_key)`
type SubKey = (&'static str, Sub, bool, bool);

const MOUNTOPT: Sub = Sub::Check(is_mountoptions, "value does not match the regex pattern");
const SIZE: Sub = Sub::Check(formats::is_disk_size, "value does not match the regex pattern");

fn is_mountoptions(v: &str) -> bool {
    v.split(';').all(|o| {
        matches!(
            o,
            "discard" | "lazytime" | "noatime" | "nodev" | "noexec" | "nosuid"
        )
    })
}
fn is_bridge(v: &str) -> bool {
    !v.is_empty() && v.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c))
}
fn is_ip(v: &str) -> bool {
    matches!(v, "dhcp" | "manual") || formats::is_ipv4_cidr(v)
}
fn is_ip6(v: &str) -> bool {
    matches!(v, "auto" | "dhcp" | "manual") || formats::is_ipv6_cidr(v)
}
fn is_v4(v: &str) -> bool {
    v.parse::<std::net::Ipv4Addr>().is_ok()
}
fn is_v6(v: &str) -> bool {
    v.parse::<std::net::Ipv6Addr>().is_ok()
}
fn is_trunks(v: &str) -> bool {
    v.split(';')
        .all(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
}
fn is_veth(v: &str) -> bool {
    v == "veth"
}

const NET: &[SubKey] = &[
    ("name", Sub::Str, true, false),
    (
        "bridge",
        Sub::Check(is_bridge, "value does not match the regex pattern"),
        false,
        false,
    ),
    ("firewall", Sub::Bool, false, false),
    (
        "gw",
        Sub::Check(
            is_v4,
            "invalid format - value does not look like a valid IPv4 address",
        ),
        false,
        false,
    ),
    (
        "gw6",
        Sub::Check(
            is_v6,
            "invalid format - value does not look like a valid IPv6 address",
        ),
        false,
        false,
    ),
    ("host-managed", Sub::Bool, false, false),
    (
        "hwaddr",
        Sub::Check(
            formats::is_unicast_mac,
            "invalid format - value does not look like a valid unicast MAC address",
        ),
        false,
        false,
    ),
    (
        "ip",
        Sub::Check(
            is_ip,
            "invalid format - value does not look like a valid IPv4 network configuration",
        ),
        false,
        false,
    ),
    (
        "ip6",
        Sub::Check(
            is_ip6,
            "invalid format - value does not look like a valid IPv6 network configuration",
        ),
        false,
        false,
    ),
    ("link_down", Sub::Bool, false, false),
    ("mtu", Sub::Int(64, 65535), false, false),
    ("rate", Sub::Num, false, false),
    ("tag", Sub::Int(1, 4094), false, false),
    (
        "trunks",
        Sub::Check(is_trunks, "value does not match the regex pattern"),
        false,
        false,
    ),
    (
        "type",
        Sub::Check(is_veth, "value does not have a value in the enumeration 'veth'"),
        false,
        false,
    ),
];

const ROOTFS: &[SubKey] = &[
    ("volume", Sub::Str, true, true),
    ("acl", Sub::Bool, false, false),
    ("mountoptions", MOUNTOPT, false, false),
    ("quota", Sub::Bool, false, false),
    ("replicate", Sub::Bool, false, false),
    ("ro", Sub::Bool, false, false),
    ("shared", Sub::Bool, false, false),
    ("size", SIZE, false, false),
];

const MP: &[SubKey] = &[
    ("volume", Sub::Str, true, true),
    ("mp", Sub::Str, true, false),
    ("acl", Sub::Bool, false, false),
    ("backup", Sub::Bool, false, false),
    ("keepattrs", Sub::Bool, false, false),
    ("mountoptions", MOUNTOPT, false, false),
    ("quota", Sub::Bool, false, false),
    ("replicate", Sub::Bool, false, false),
    ("ro", Sub::Bool, false, false),
    ("shared", Sub::Bool, false, false),
    ("size", SIZE, false, false),
];

const FEATURES: &[SubKey] = &[
    ("force_rw_sys", Sub::Bool, false, false),
    ("fuse", Sub::Bool, false, false),
    ("keyctl", Sub::Bool, false, false),
    ("mknod", Sub::Bool, false, false),
    ("mount", Sub::Str, false, false),
    ("nesting", Sub::Bool, false, false),
];

const DEV: &[SubKey] = &[
    ("path", Sub::Str, false, true),
    ("deny-write", Sub::Bool, false, false),
    ("gid", Sub::Int(0, i64::MAX), false, false),
    ("mode", Sub::Str, false, false),
    ("uid", Sub::Int(0, i64::MAX), false, false),
];

const UNUSED: &[SubKey] = &[("volume", Sub::Str, true, true)];

fn format_of(name: &str) -> &'static [SubKey] {
    match name {
        "net" => NET,
        "rootfs" => ROOTFS,
        "mp" => MP,
        "features" => FEATURES,
        "dev" => DEV,
        "unused" => UNUSED,
        other => panic!("unknown property-string format {other:?}"),
    }
}

/// A parsed property string, keys in the order given.
pub type PropMap = Vec<(String, String)>;

/// Looks up a sub-key in a parsed property string.
pub fn get<'a>(map: &'a PropMap, key: &str) -> Option<&'a str> {
    map.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Parses and validates `value` as the property-string format `fmt`; the error text is the full
/// message for parameter `param` (`invalid format - format error\n<param>.<key>: <msg>`).
pub fn parse(fmt: &str, param: &str, value: &str) -> Result<PropMap, String> {
    let keys = format_of(fmt);
    let mut out: PropMap = Vec::new();
    let mut errors: Vec<(String, String)> = Vec::new();
    for part in value.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = match part.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match keys.iter().find(|s| s.3) {
                Some(dk) => (dk.0.to_string(), part.to_string()),
                None => {
                    return Err(
                        "invalid format - value without key, but schema does not define a default key\n"
                            .into(),
                    );
                }
            },
        };
        if out.iter().any(|(ek, _)| *ek == k) {
            return Err(format!(
                "invalid format - duplicate key in comma-separated list property: {k}\n"
            ));
        }
        out.push((k, v));
    }
    for (k, v) in &out {
        match keys.iter().find(|s| s.0 == k) {
            None => errors.push((
                k.clone(),
                "property is not defined in schema and the schema does not allow additional properties"
                    .into(),
            )),
            Some(sub) => {
                if let Err(e) = check_sub(sub.1, v) {
                    errors.push((k.clone(), e));
                }
            }
        }
    }
    for sub in keys.iter().filter(|s| s.2) {
        if !out.iter().any(|(k, _)| k == sub.0) {
            errors.push((
                sub.0.to_string(),
                "property is missing and it is not optional".into(),
            ));
        }
    }
    if errors.is_empty() {
        return Ok(out);
    }
    let detail: String = errors
        .iter()
        .map(|(k, e)| format!("{param}.{k}: {e}\n"))
        .collect();
    Err(format!("invalid format - format error\n{detail}"))
}

fn check_sub(ty: Sub, v: &str) -> Result<(), String> {
    match ty {
        Sub::Str => Ok(()),
        Sub::Bool => match v {
            "0" | "1" => Ok(()),
            _ => Err(format!("type check ('boolean') failed - got '{v}'")),
        },
        Sub::Int(min, max) => {
            let n: i64 = v
                .parse()
                .map_err(|_| format!("type check ('integer') failed - got '{v}'"))?;
            if n < min {
                Err(format!("value must have a minimum value of {min}"))
            } else if n > max {
                Err(format!("value must have a maximum value of {max}"))
            } else {
                Ok(())
            }
        }
        Sub::Num => v
            .parse::<f64>()
            .map(|_| ())
            .map_err(|_| format!("type check ('number') failed - got '{v}'")),
        Sub::Check(f, msg) => {
            if f(v) {
                Ok(())
            } else {
                Err(msg.to_string())
            }
        }
    }
}

/// Renders a property string back, the default key positional, the rest sorted (as PVE prints).
pub fn render(fmt: &str, map: &PropMap) -> String {
    let keys = format_of(fmt);
    let default_key = keys.iter().find(|s| s.3).map(|s| s.0);
    let mut parts: Vec<String> = Vec::new();
    if let Some(dk) = default_key.and_then(|dk| get(map, dk)) {
        parts.push(dk.to_string());
    }
    let mut rest: Vec<&(String, String)> = map
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != default_key)
        .collect();
    rest.sort();
    parts.extend(rest.iter().map(|(k, v)| format!("{k}={v}")));
    parts.join(",")
}

/// Replaces or adds one sub-key.
pub fn set(map: &mut PropMap, key: &str, value: String) {
    match map.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value,
        None => map.push((key.to_string(), value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_parses_and_reports() {
        let m = parse(
            "net",
            "net0",
            "name=eth0,bridge=vmbr0,ip=10.0.0.5/24,gw=10.0.0.1,tag=10",
        )
        .unwrap();
        assert_eq!(get(&m, "bridge"), Some("vmbr0"));
        let e = parse("net", "net0", "bridge=vmbr0,ip=10.0.0.5").unwrap_err();
        assert!(e.starts_with("invalid format - format error\n"), "{e}");
        assert!(
            e.contains("net0.name: property is missing and it is not optional"),
            "{e}"
        );
        assert!(e.contains("net0.ip: invalid format"), "{e}");
        let e = parse("net", "net0", "name=eth0,bogus=1").unwrap_err();
        assert!(e.contains("net0.bogus: property is not defined in schema"), "{e}");
        assert!(parse("net", "net0", "name=eth0,firewall=true").is_err());
        assert!(parse("net", "net0", "name=eth0,tag=5000").is_err());
    }

    #[test]
    fn rootfs_default_key_and_render() {
        let m = parse("rootfs", "rootfs", "local-lvm:8,mountoptions=noatime;nodev").unwrap();
        assert_eq!(get(&m, "volume"), Some("local-lvm:8"));
        assert_eq!(render("rootfs", &m), "local-lvm:8,mountoptions=noatime;nodev");
        assert!(parse("rootfs", "rootfs", "local-lvm:8,mountoptions=sync").is_err());
        assert!(
            parse("mp", "mp0", "local-lvm:8")
                .unwrap_err()
                .contains("mp0.mp: property is missing")
        );
    }
}
