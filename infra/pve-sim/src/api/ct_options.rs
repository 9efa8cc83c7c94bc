//! The container options that create and config update share: their parameter rules, how they
//! are written into a config (disk volumes allocated, NICs given a MAC, tags normalised), and the
//! checks both run (config digest, root-only feature flags).

use crate::error::{ApiError, ApiResult};
use crate::handler::Ctx;
use crate::perms;
use crate::propstr::{self, PropMap};
use crate::rules::{self, Rule};
use crate::state::{Ct, State, Volume, format_size, now, parse_size};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Container options shared by create and config update.
pub const CT_OPTIONS: &[&str] = &[
    "arch:enum(amd64|i386|arm64|armhf|riscv32|riscv64)",
    "cmode:enum(shell|console|tty)",
    "console:bool",
    "cores:int[1,8192]",
    "cpulimit:num[0,8192]",
    "cpuunits:int[0,500000]",
    "debug:bool",
    "description:str max=8192",
    "dev[n]/256:prop(dev)",
    "entrypoint:str fmt=no-ctrl",
    "env:str fmt=env-list",
    "features:prop(features)",
    "hookscript:str fmt=pve-volume-id",
    "hostname:str fmt=dns-name max=255",
    "lock:enum(backup|create|destroyed|disk|fstrim|migrate|mounted|rollback|snapshot|snapshot-delete)",
    "memory:int[16,]",
    "mp[n]/256:prop(mp)",
    "nameserver:str fmt=lxc-ip-with-ll-iface-list",
    "net[n]/32:prop(net)",
    "onboot:bool",
    "ostype:enum(debian|devuan|ubuntu|centos|fedora|opensuse|archlinux|alpine|gentoo|nixos|unmanaged)",
    "protection:bool",
    "rootfs:prop(rootfs)",
    "searchdomain:str fmt=dns-name-list",
    "startup:str fmt=pve-startup-order",
    "swap:int[0,]",
    "tags:str fmt=pve-tag-list",
    "template:bool",
    "timezone:str fmt=pve-ct-timezone",
    "tty:int[0,6]",
    "unprivileged:bool",
    "unused[n]/256:prop(unused)",
];

/// `CT_OPTIONS`, parsed once.
pub fn option_rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| rules::parse_groups(&[CT_OPTIONS]))
}

/// Turns `STORAGE:SIZE_GiB` into an allocated volume; an existing volume name stays as is.
pub fn allocate(
    ctx: &Ctx,
    st: &mut State,
    vmid: u32,
    param: &str,
    value: &str,
    fmt: &str,
    disk_no: &mut u32,
) -> ApiResult<String> {
    let default_storage = ctx.str("storage").unwrap_or("local");
    let mut map: PropMap = propstr::parse(fmt, param, value).map_err(|e| ApiError::param(param, e))?;
    let volume = propstr::get(&map, "volume").unwrap_or_default().to_string();
    let (storage, size) = match volume.split_once(':') {
        Some((s, size)) if size.parse::<f64>().is_ok() => (s.to_string(), size.to_string()),
        None if volume.parse::<f64>().is_ok() => (default_storage.to_string(), volume.clone()),
        _ => return Ok(value.to_string()),
    };
    let scfg = ctx.sim.cfg.storages.iter().find(|s| s.id == storage);
    let scfg = scfg.ok_or_else(|| ApiError::server(format!("storage '{storage}' does not exist")))?;
    if !scfg.content.iter().any(|c| c == "rootdir") {
        return Err(ApiError::param(
            "storage",
            format!("storage '{storage}' does not support container directories"),
        ));
    }
    perms::check_all(
        &ctx.sim.cfg,
        ctx.ident(),
        &format!("/storage/{storage}"),
        &["Datastore.AllocateSpace"],
    )?;
    let bytes = parse_size(&format!("{size}G")).unwrap_or(4 << 30);
    let name = format!("vm-{vmid}-disk-{disk_no}");
    *disk_no += 1;
    let volid = format!("{storage}:{name}");
    let vol = Volume {
        volid: volid.clone(),
        content: "rootdir".into(),
        format: "raw".into(),
        size: bytes,
        ctime: now(),
        vmid: Some(vmid),
    };
    st.volumes
        .entry((ctx.node().to_string(), storage.clone()))
        .or_default()
        .push(vol);
    propstr::set(&mut map, "volume", volid);
    propstr::set(&mut map, "size", format_size(bytes));
    Ok(propstr::render(fmt, &map))
}

/// A generated MAC in Proxmox's OUI (BC:24:11), from the seeded RNG.
pub fn random_mac(rng: &mut impl Rng) -> String {
    let b: [u8; 3] = rng.random();
    format!("BC:24:11:{:02X}:{:02X}:{:02X}", b[0], b[1], b[2])
}

/// Lower-cased, deduplicated, sorted, joined by `;` (PVE's default tag style).
pub fn normalize_tags(v: &str) -> String {
    let mut tags: Vec<String> = crate::formats::split_list(v).map(str::to_lowercase).collect();
    tags.sort();
    tags.dedup();
    tags.join(";")
}

/// Writes options into a config: tags normalized, NICs given a MAC when they lack one.
pub fn apply_options<'a>(
    conf: &mut BTreeMap<String, String>,
    opts: impl Iterator<Item = (&'a String, &'a String)>,
    rng: &mut ChaCha8Rng,
) {
    for (k, v) in opts {
        let value = if k == "tags" {
            normalize_tags(v)
        } else if k.starts_with("net") {
            let mut net = propstr::parse("net", k, v).unwrap_or_default();
            if propstr::get(&net, "hwaddr").is_none() {
                propstr::set(&mut net, "hwaddr", random_mac(rng));
            }
            let mut parts: Vec<String> = net.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.sort();
            parts.join(",")
        } else {
            v.clone()
        };
        conf.insert(k.clone(), value);
    }
}

pub fn check_digest(ct: &Ct, digest: Option<&str>) -> ApiResult<()> {
    match digest {
        Some(d) if d != ct.digest() => Err(ApiError::server(
            "detected modified configuration - file changed by other user? Try again.",
        )),
        _ => Ok(()),
    }
}

fn flags(features: Option<&str>) -> BTreeMap<String, String> {
    features
        .and_then(|f| propstr::parse("features", "features", f).ok())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// PVE-FACTS §4.9: feature flags other than nesting are root@pam's alone (tokens included).
pub fn check_feature_perms(
    ctx: &Ctx,
    vmid: u32,
    old: Option<&str>,
    new: &str,
    unprivileged: bool,
) -> ApiResult<()> {
    let id = ctx.ident();
    if id.is_root() {
        return Ok(());
    }
    let (old, new) = (flags(old), flags(Some(new)));
    let changed: Vec<&String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    if !unprivileged {
        return Err(ApiError::Perm(
            "changing feature flags for privileged container is only allowed for root@pam".into(),
        ));
    }
    if changed.iter().any(|k| *k != "nesting") {
        return Err(ApiError::Perm(
            "changing feature flags (except nesting) is only allowed for root@pam".into(),
        ));
    }
    crate::perms::check_all(&ctx.sim.cfg, id, &format!("/vms/{vmid}"), &["VM.Allocate"])
}
