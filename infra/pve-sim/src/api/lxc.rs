//! Container lifecycle: list, create, destroy, resize, interfaces, migrate.

use super::ct_options::{allocate, apply_options, check_digest, check_feature_perms};
use super::{ct_on, ct_status};
use crate::error::{ApiError, ApiResult};
use crate::handler::{Ctx, Reply};
use crate::perms;
use crate::propstr;
use crate::state::{Ct, State, parse_size};
use crate::tasks::Action;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub fn list(ctx: &Ctx) -> ApiResult<Reply> {
    let st = ctx.sim.state();
    let cpus = st.nodes[ctx.node()].maxcpu;
    let id = ctx.ident();
    let out: Vec<Value> = st
        .cts
        .values()
        .filter(|c| {
            c.node == ctx.node() && perms::has(&ctx.sim.cfg, id, &format!("/vms/{}", c.vmid), "VM.Audit")
        })
        .map(|c| Value::Object(ct_status(c, cpus)))
        .collect();
    Ok(Value::Array(out).into())
}

/// Parameters of create that are not container options.
const CREATE_ONLY: &[&str] = &[
    "node",
    "vmid",
    "ostemplate",
    "password",
    "ssh-public-keys",
    "start",
    "storage",
    "force",
    "restore",
    "unique",
    "pool",
    "ha-managed",
    "ignore-unpack-errors",
    "bwlimit",
];

fn ostype_of(template: &str) -> &'static str {
    let name = template.rsplit('/').next().unwrap_or(template);
    [
        "debian",
        "ubuntu",
        "alpine",
        "centos",
        "fedora",
        "archlinux",
        "opensuse",
        "gentoo",
        "devuan",
        "nixos",
    ]
    .into_iter()
    .find(|os| name.starts_with(os))
    .unwrap_or("unmanaged")
}

pub fn create(ctx: &Ctx) -> ApiResult<Reply> {
    let (sim, node, vmid) = (ctx.sim, ctx.node(), ctx.vmid());
    let id = ctx.ident();
    let unprivileged = ctx.str("unprivileged").unwrap_or("1") == "1";
    if !unprivileged {
        perms::check_all(&sim.cfg, id, "/", &["Sys.Modify"])?;
    }
    if let Some(f) = ctx.str("features") {
        check_feature_perms(ctx, vmid, None, f, unprivileged)?;
    }
    let mut st = sim.state();
    if let Some(other) = st.cts.get(&vmid) {
        return Err(ApiError::server(format!(
            "CT {vmid} already exists on node '{}'",
            other.node
        )));
    }
    let ostemplate = ctx.str("ostemplate").unwrap_or_default();
    let (tstore, _) = ostemplate
        .split_once(':')
        .ok_or_else(|| ApiError::server(format!("unable to parse volume ID '{ostemplate}'")))?;
    let present = st
        .volumes
        .get(&(node.to_string(), tstore.to_string()))
        .is_some_and(|v| v.iter().any(|v| v.volid == ostemplate));
    if !present {
        return Err(ApiError::server(format!("can't find file '{ostemplate}'")));
    }
    // `create_and_lock_config` waits 5 s for the config lock file, in the API call.
    if !st.flock_free(vmid) {
        return Err(ApiError::LockBusy {
            vmid,
            timeout_ms: sim.cfg.create_lock_timeout_ms,
            message: format!("unable to create CT {vmid} - {}", ApiError::flock_timeout(vmid)),
        });
    }
    let mut conf: BTreeMap<String, String> = BTreeMap::new();
    conf.insert("arch".into(), "amd64".into());
    conf.insert("hostname".into(), format!("CT{vmid}"));
    conf.insert("memory".into(), "512".into());
    conf.insert("swap".into(), "512".into());
    conf.insert("ostype".into(), ostype_of(ostemplate).into());
    let options: BTreeMap<String, String> = ctx
        .params
        .iter()
        .filter(|(k, _)| !CREATE_ONLY.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut disk_no = 0;
    let rootfs = ctx.str("rootfs").map_or_else(
        || format!("{}:4", ctx.str("storage").unwrap_or("local")),
        str::to_string,
    );
    let rootfs = allocate(ctx, &mut st, vmid, "rootfs", &rootfs, "rootfs", &mut disk_no);
    let rootfs = rootfs.inspect_err(|_| rollback_volumes(&mut st, vmid))?;
    for (k, v) in options.iter().filter(|(k, _)| k.starts_with("mp")) {
        let mp = allocate(ctx, &mut st, vmid, k, v, "mp", &mut disk_no)
            .inspect_err(|_| rollback_volumes(&mut st, vmid))?;
        conf.insert(k.clone(), mp);
    }
    apply_options(
        &mut conf,
        options
            .iter()
            .filter(|(k, _)| !k.starts_with("mp") && *k != "rootfs"),
        &mut st.rng,
    );
    conf.insert("rootfs".into(), rootfs);
    if !unprivileged {
        conf.remove("unprivileged");
    } else {
        conf.insert("unprivileged".into(), "1".into());
    }
    conf.insert("ostemplate".into(), ostemplate.into());
    st.cts
        .insert(vmid, Ct::new(vmid, node, conf, sim.cfg.stats_delay()));
    Ok(ctx.task(
        &mut st,
        "vzcreate",
        &vmid.to_string(),
        Some("create"),
        Action::Create {
            vmid,
            start: ctx.flag("start"),
        },
        None,
    ))
}

fn rollback_volumes(st: &mut State, vmid: u32) {
    for vols in st.volumes.values_mut() {
        vols.retain(|v| v.vmid != Some(vmid));
    }
}

pub fn destroy(ctx: &Ctx) -> ApiResult<Reply> {
    let vmid = ctx.vmid();
    let mut st = ctx.sim.state();
    let ct = ct_on(&mut st, ctx.node(), vmid)?;
    ct.check_lock()?;
    if ct.conf.get("protection").is_some_and(|p| p == "1") {
        return Err(ApiError::server(format!(
            "can't remove CT {vmid} - protection mode enabled"
        )));
    }
    if ct.running && !ctx.flag("force") {
        return Err(ApiError::server(format!(
            "unable to destroy CT {vmid} - container is running"
        )));
    }
    Ok(ctx.task(
        &mut st,
        "vzdestroy",
        &vmid.to_string(),
        Some("destroyed"),
        Action::Destroy {
            vmid,
            force: ctx.flag("force"),
        },
        None,
    ))
}

pub fn resize(ctx: &Ctx) -> ApiResult<Reply> {
    let vmid = ctx.vmid();
    let disk = ctx.str("disk").unwrap_or_default().to_string();
    let size = ctx.str("size").unwrap_or_default();
    let mut st = ctx.sim.state();
    let ct = ct_on(&mut st, ctx.node(), vmid)?;
    ct.check_lock()?;
    check_digest(ct, ctx.str("digest"))?;
    let current = ct
        .conf
        .get(&disk)
        .ok_or_else(|| ApiError::server(format!("disk '{disk}' does not exist")))?;
    let old = current
        .split(',')
        .find_map(|p| p.strip_prefix("size="))
        .and_then(parse_size)
        .unwrap_or(0);
    let delta = parse_size(size.trim_start_matches('+')).unwrap_or(0);
    let new = if size.starts_with('+') { old + delta } else { delta };
    if new < old {
        return Err(ApiError::server("unable to shrink disk size"));
    }
    Ok(ctx.task(
        &mut st,
        "resize",
        &vmid.to_string(),
        None,
        Action::Resize {
            vmid,
            disk,
            bytes: new,
        },
        None,
    ))
}

fn addr(ip: &str, prefix: u8, family: &str) -> Value {
    json!({"ip-address": ip, "ip-address-type": family, "prefix": prefix})
}

/// IPv6 link-local address from a MAC (EUI-64).
fn link_local(mac: &str) -> String {
    let b: Vec<u8> = mac
        .split(':')
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect();
    if b.len() != 6 {
        return "fe80::1".into();
    }
    format!(
        "fe80::{:x}:{:x}:{:x}:{:x}",
        u16::from(b[0] ^ 2) << 8 | u16::from(b[1]),
        u16::from(b[2]) << 8 | 0xff,
        0xfe00 | u16::from(b[3]),
        u16::from(b[4]) << 8 | u16::from(b[5])
    )
}

/// The interface list `ip --json a` would give inside a running container; null when stopped.
pub fn interfaces(ctx: &Ctx) -> ApiResult<Reply> {
    let dhcp_delay = crate::sync::lock(&ctx.sim.faults).cfg.dhcp_delay_secs;
    let st = ctx.sim.state();
    let Some(ct) = st
        .cts
        .get(&ctx.vmid())
        .filter(|c| c.node == ctx.node() && c.running)
    else {
        return Ok(Value::Null.into());
    };
    let mut out = vec![json!({
        "name": "lo", "hwaddr": "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00",
        "inet": "127.0.0.1/8", "inet6": "::1/128",
        "ip-addresses": [addr("127.0.0.1", 8, "inet"), addr("::1", 128, "inet6")],
    })];
    for (key, value) in ct.conf.iter().filter(|(k, _)| k.starts_with("net")) {
        let Ok(net) = propstr::parse("net", key, value) else {
            continue;
        };
        let mac = propstr::get(&net, "hwaddr")
            .unwrap_or("BC:24:11:00:00:00")
            .to_lowercase();
        let mut addrs = Vec::new();
        let mut inet = None;
        match propstr::get(&net, "ip") {
            // No lease yet: the DHCP client is still asking.
            Some("dhcp") if crate::state::now().saturating_sub(ct.started_at) < dhcp_delay => {}
            Some("dhcp") => {
                let b: Vec<u8> = mac
                    .split(':')
                    .filter_map(|h| u8::from_str_radix(h, 16).ok())
                    .collect();
                let ip = format!(
                    "10.99.{}.{}",
                    b.get(4).copied().unwrap_or(0),
                    b.get(5).copied().unwrap_or(0).max(2)
                );
                addrs.push(addr(&ip, 16, "inet"));
                inet = Some(format!("{ip}/16"));
            }
            Some(cidr) if cidr.contains('/') => {
                let (ip, prefix) = cidr.split_once('/').unwrap_or((cidr, "24"));
                addrs.push(addr(ip, prefix.parse().unwrap_or(24), "inet"));
                inet = Some(cidr.to_string());
            }
            _ => {}
        }
        // The legacy `inet6` key holds the last IPv6 address, the link-local one.
        if let Some(cidr) = propstr::get(&net, "ip6").filter(|v| v.contains('/')) {
            let (ip, prefix) = cidr.split_once('/').unwrap_or((cidr, "64"));
            addrs.push(addr(ip, prefix.parse().unwrap_or(64), "inet6"));
        }
        let ll = link_local(&mac);
        addrs.push(addr(&ll, 64, "inet6"));
        let inet6 = format!("{ll}/64");
        let mut e = json!({"name": propstr::get(&net, "name").unwrap_or("eth0"), "hwaddr": mac, "hardware-address": mac, "inet6": inet6, "ip-addresses": addrs});
        if let Some(i) = inet {
            e["inet"] = json!(i);
        }
        out.push(e);
    }
    Ok(Value::Array(out).into())
}

pub fn migrate(ctx: &Ctx) -> ApiResult<Reply> {
    let (vmid, node) = (ctx.vmid(), ctx.node());
    let target = ctx.str("target").unwrap_or_default().to_string();
    let mut st = ctx.sim.state();
    if target == node {
        return Err(ApiError::param("target", "target is local node."));
    }
    match st.nodes.get(&target) {
        None => return Err(ApiError::server(format!("no such cluster node '{target}'"))),
        Some(n) if !n.online => {
            return Err(ApiError::server(format!("target node '{target}' is not online")));
        }
        Some(_) => {}
    }
    let ct = ct_on(&mut st, node, vmid)?;
    ct.check_lock()?;
    if ct.running {
        if ctx.flag("online") {
            return Err(ApiError::server(
                "lxc live migration is currently not implemented",
            ));
        }
        if !ctx.flag("restart") {
            return Err(ApiError::server(
                "can't migrate running container without --online or --restart",
            ));
        }
    }
    let action = Action::Migrate {
        vmid,
        target,
        restart: ctx.flag("restart"),
    };
    Ok(ctx.task(
        &mut st,
        "vzmigrate",
        &vmid.to_string(),
        Some("migrate"),
        action,
        None,
    ))
}
