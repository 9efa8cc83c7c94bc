//! Named string formats (`fmt=` in the rule table) and the checks behind them, with the
//! messages PVE's JSONSchema.pm gives (wrapped by the caller as `invalid format - <msg>`).

use regex::Regex;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("static regex"))
}

macro_rules! regex {
    ($p:expr) => {{
        static CELL: OnceLock<Regex> = OnceLock::new();
        re(&CELL, $p)
    }};
}

/// Splits a PVE list (`,`, `;` or whitespace separated), dropping empties.
pub fn split_list(v: &str) -> impl Iterator<Item = &str> {
    v.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

pub fn is_node_name(v: &str) -> bool {
    regex!(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$").is_match(v)
}

pub fn is_dns_name(v: &str) -> bool {
    regex!(r"^(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?)$")
        .is_match(v)
}

pub fn is_storage_id(v: &str) -> bool {
    regex!(r"^[a-zA-Z][a-zA-Z0-9\-_.]*[a-zA-Z0-9]$").is_match(v)
}

pub fn is_tag(v: &str) -> bool {
    regex!(r"^(?i)[a-z0-9_][a-z0-9_\-+.]*$").is_match(v)
}

pub fn is_config_id(v: &str) -> bool {
    regex!(r"^(?i)[a-z][a-z0-9_]+$").is_match(v)
}

pub fn is_volume_id(v: &str) -> bool {
    regex!(r"^(?i)[a-z][a-z0-9\-_.]*[a-z0-9]:.+$").is_match(v)
}

pub fn is_mac(v: &str) -> bool {
    regex!(r"^(?i)[0-9a-f]{2}(:[0-9a-f]{2}){5}$").is_match(v)
}

pub fn is_unicast_mac(v: &str) -> bool {
    is_mac(v) && u8::from_str_radix(&v[..2], 16).is_ok_and(|b| b & 1 == 0)
}

pub fn is_disk_size(v: &str) -> bool {
    regex!(r"^\d+(\.\d+)?[KMGT]?$").is_match(v)
}

/// `/` followed by a prefix length within `max`.
fn cidr_ok<T: std::str::FromStr>(v: &str, max: u8) -> bool {
    v.split_once('/')
        .is_some_and(|(a, p)| a.parse::<T>().is_ok() && p.parse::<u8>().is_ok_and(|p| p <= max))
}

pub fn is_ipv4_cidr(v: &str) -> bool {
    cidr_ok::<Ipv4Addr>(v, 32)
}

pub fn is_ipv6_cidr(v: &str) -> bool {
    cidr_ok::<Ipv6Addr>(v, 128)
}

/// `[[order=]N][,up=N][,down=N]`.
pub fn is_startup_order(v: &str) -> bool {
    v.split(',').all(|part| {
        let (k, n) = part.split_once('=').unwrap_or(("order", part));
        matches!(k, "order" | "up" | "down") && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// `Ok` when `ok`, else `Err(msg)`.
fn want(ok: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(msg()) }
}

/// Checks a value against a named string format; `Err` carries the message after `invalid format - `.
pub fn check_format(fmt: &str, v: &str) -> Result<(), String> {
    let generic = || format!("value '{v}' does not match format '{fmt}'");
    let first_bad = |ok: fn(&str) -> bool| split_list(v).find(|t| !ok(t)).map(str::to_string);
    match fmt {
        "pve-node" => want(is_node_name(v), || {
            "value does not look like a valid node name".into()
        }),
        "pve-vmid" => Ok(()),
        "dns-name" => want(is_dns_name(v), || {
            "value does not look like a valid DNS name".into()
        }),
        "dns-name-list" => want(split_list(v).all(is_dns_name), generic),
        "pve-storage-id" => want(is_storage_id(v), || {
            format!("storage ID '{v}' contains illegal characters")
        }),
        "pve-tag-list" => match first_bad(is_tag) {
            Some(bad) => Err(format!("invalid tag '{bad}'")),
            None => Ok(()),
        },
        "pve-startup-order" => want(is_startup_order(v), || "unable to parse startup options".into()),
        "pve-configid" => want(is_config_id(v), || format!("invalid configuration ID '{v}'")),
        "pve-configid-list" => match first_bad(is_config_id) {
            Some(bad) => Err(format!("invalid configuration ID '{bad}'")),
            None => Ok(()),
        },
        "pve-volume-id" => want(is_volume_id(v), || format!("unable to parse volume ID '{v}'")),
        "pve-poolid" => want(regex!(r"^[A-Za-z0-9_\-]+$").is_match(v), generic),
        "lxc-ip-with-ll-iface-list" => want(
            split_list(v).all(|ip| {
                ip.split_once('%')
                    .map_or(ip, |(a, _)| a)
                    .parse::<std::net::IpAddr>()
                    .is_ok()
            }),
            generic,
        ),
        "pve-ct-timezone" => want(
            v == "host" || regex!(r"^[A-Za-z][A-Za-z0-9/_+\-]*$").is_match(v),
            generic,
        ),
        "pve-storage-content" => want(is_content(v), generic),
        "pve-storage-content-list" => want(split_list(v).all(is_content), generic),
        "pve-realm" => want(regex!(r"^[A-Za-z][A-Za-z\d.\-_]+$").is_match(v), generic),
        "pve-priv-list" => want(
            split_list(v).all(|p| regex!(r"^[A-Za-z][A-Za-z0-9.]*$").is_match(p)),
            generic,
        ),
        "storage-pair-list" => want(
            split_list(v).all(|p| p.split(':').all(|s| s == "1" || is_storage_id(s))),
            generic,
        ),
        "disk-size-delta" => want(regex!(r"^\+?\d+(\.\d+)?[KMGT]?$").is_match(v), generic),
        "http-url" => want(regex!(r"^https?://.*").is_match(v), generic),
        "no-ctrl" => want(regex!(r"^[^\x00-\x08\x10-\x1F\x7F]+$").is_match(v), generic),
        "env-list" => want(
            regex!(r"^\w+=[^\x00-\x08\x10-\x1F\x7F]*(\x00\w+=[^\x00-\x08\x10-\x1F\x7F]*)*$").is_match(v),
            generic,
        ),
        other => panic!("rule table names an unknown format {other:?}"),
    }
}

fn is_content(v: &str) -> bool {
    matches!(
        v,
        "images" | "rootdir" | "vztmpl" | "iso" | "backup" | "snippets" | "import"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_accept_and_refuse() {
        assert!(check_format("pve-node", "pve1").is_ok());
        assert!(check_format("pve-node", "-bad").is_err());
        assert!(check_format("dns-name", "web-1.example.org").is_ok());
        assert!(check_format("dns-name", "bad_name").is_err());
        assert!(check_format("pve-tag-list", "a;B,c d").is_ok());
        assert!(check_format("pve-tag-list", "ok;!bad").is_err());
        assert!(check_format("pve-startup-order", "order=1,up=30").is_ok());
        assert!(check_format("pve-startup-order", "2,down=5").is_ok());
        assert!(check_format("pve-startup-order", "first").is_err());
        assert!(is_unicast_mac("BC:24:11:00:00:01") && !is_unicast_mac("01:24:11:00:00:01"));
        assert!(is_ipv4_cidr("10.0.0.5/24") && !is_ipv4_cidr("10.0.0.5/33") && !is_ipv4_cidr("10.0.0.5"));
        assert!(
            check_format("disk-size-delta", "+2G").is_ok() && check_format("disk-size-delta", "2X").is_err()
        );
    }
}
