//! How two spellings of one Proxmox config value compare: Proxmox normalises what it stores
//! (numbers as text, tags lower-cased and re-ordered, property strings re-ordered), so a value
//! read back is equal to the one sent when these say so. Pure; used by the field table in
//! [`super::desired`] and by the configure plan.

use std::collections::BTreeSet;

use crate::proxmox::property::{Features, Net, Startup};

use super::ownership::parse_tags;

pub fn text_eq(a: &str, b: &str) -> bool {
    a.trim_end() == b.trim_end()
}

pub fn num_eq(a: &str, b: &str) -> bool {
    match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() < 1e-9,
        _ => a == b,
    }
}

pub fn words_eq(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

pub fn tags_eq(a: &str, b: &str) -> bool {
    let set = |s: &str| parse_tags(s).into_iter().collect::<BTreeSet<_>>();
    set(a) == set(b)
}

pub fn startup_eq(a: &str, b: &str) -> bool {
    matches!((Startup::parse(a), Startup::parse(b)), (Ok(x), Ok(y)) if x == y)
}

pub fn features_eq(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        Features::parse(s).ok().map(|f| {
            let mut mount = f.mount.clone();
            mount.sort();
            let flag = |v: Option<bool>| v.unwrap_or(false);
            (
                flag(f.force_rw_sys),
                flag(f.fuse),
                flag(f.keyctl),
                flag(f.mknod),
                flag(f.nesting),
                mount,
            )
        })
    };
    matches!((norm(a), norm(b)), (Some(x), Some(y)) if x == y)
}

pub fn net_eq(a: &Net, b: &Net) -> bool {
    let norm = |n: &Net| {
        let mut n = n.clone();
        n.firewall = Some(n.firewall.unwrap_or(false));
        n.link_down = Some(n.link_down.unwrap_or(false));
        n.kind = Some(n.kind.clone().unwrap_or_else(|| "veth".into()));
        n.hwaddr = n.hwaddr.map(|h| h.to_ascii_uppercase());
        n.to_string()
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_spellings_compare_equal_and_different_values_do_not() {
        assert!(num_eq("2", "2.0") && !num_eq("2", "3"));
        assert!(tags_eq("LXC-Operator web", "web;lxc-operator") && !tags_eq("web", "db"));
        assert!(text_eq("a\n", "a") && !text_eq("a", "b"));
        assert!(words_eq("1.1.1.1  8.8.8.8", "1.1.1.1 8.8.8.8") && !words_eq("1.1.1.1", "8.8.8.8"));
        assert!(features_eq(
            "mount=nfs;cifs,nesting=1",
            "nesting=1,mount=cifs;nfs"
        ));
        assert!(!features_eq("nesting=1", "nesting=0"));
        assert!(startup_eq("order=1,up=5", "up=5,order=1") && !startup_eq("order=1", "order=2"));
    }
}
