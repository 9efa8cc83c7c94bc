//! Cluster-wide endpoints: `/version`, `/nodes`, `/nodes/{node}/status`, `/cluster/resources`,
//! `/cluster/status`, `/cluster/nextid`.

use super::ct_status;
use crate::error::{ApiError, ApiResult};
use crate::handler::{Ctx, Reply};
use crate::perms;
use crate::state::{NodeState, State, now};
use serde_json::{Value, json};

pub fn version(ctx: &Ctx) -> ApiResult<Reply> {
    let v = &ctx.sim.cfg.version;
    let release = v.rsplit_once('.').map_or(v.as_str(), |(r, _)| r);
    Ok(json!({"version": v, "release": release, "repoid": "5f6a0e6b1c2d3e4f", "console": "html5"}).into())
}

fn node_mem(st: &State, name: &str) -> u64 {
    let used: u64 = st
        .cts
        .values()
        .filter(|c| c.node == name && c.running)
        .map(|c| (c.memory_mib() << 20) / 4)
        .sum();
    (2u64 << 30) + used
}

fn node_entry(st: &State, name: &str, n: &NodeState, fingerprint: &str) -> Value {
    let online = n.online;
    json!({
        "node": name, "id": format!("node/{name}"), "type": "node",
        "status": if online { "online" } else { "offline" },
        "cpu": if online { 0.031 } else { 0.0 }, "maxcpu": n.maxcpu,
        "mem": if online { node_mem(st, name) } else { 0 }, "maxmem": n.maxmem,
        "disk": 12u64 << 30, "maxdisk": 100u64 << 30,
        "uptime": if online { now().saturating_sub(n.boot) } else { 0 },
        "level": "", "ssl_fingerprint": fingerprint,
    })
}

pub fn nodes(ctx: &Ctx) -> ApiResult<Reply> {
    let st = ctx.sim.state();
    let list: Vec<Value> = st
        .nodes
        .iter()
        .map(|(name, n)| node_entry(&st, name, n, &ctx.sim.fingerprint))
        .collect();
    Ok(Value::Array(list).into())
}

pub fn node_status(ctx: &Ctx) -> ApiResult<Reply> {
    let st = ctx.sim.state();
    let node = ctx.node();
    let n = &st.nodes[node];
    let used = node_mem(&st, node);
    let v = &ctx.sim.cfg.version;
    Ok(json!({
        "cpu": 0.031,
        "memory": {"total": n.maxmem, "used": used, "free": n.maxmem.saturating_sub(used), "available": n.maxmem.saturating_sub(used)},
        "swap": {"total": 8u64 << 30, "used": 0, "free": 8u64 << 30},
        "loadavg": ["0.12", "0.08", "0.05"],
        "pveversion": format!("pve-manager/{v}/5f6a0e6b1c2d3e4f"),
        "kversion": "Linux 6.14.11-4-pve #1 SMP PREEMPT_DYNAMIC PMX 6.14.11-4",
        "cpuinfo": {"cpus": n.maxcpu, "cores": n.maxcpu, "sockets": 1, "model": "pve-sim virtual CPU", "mhz": "2400.000", "hvm": "1", "flags": "", "user_hz": 100},
        "rootfs": {"total": 100u64 << 30, "used": 12u64 << 30, "free": 88u64 << 30, "avail": 88u64 << 30},
        "boot-info": {"mode": "efi", "secureboot": 0},
        "current-kernel": {"sysname": "Linux", "release": "6.14.11-4-pve", "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.14.11-4", "machine": "x86_64"},
        "uptime": now().saturating_sub(n.boot),
        "idle": 0, "wait": 0.0,
    })
    .into())
}

/// `GET /nodes/{node}/network`: the configured bridges (each on the port `eno1`), with the
/// host's IPv4 address when `Config::bridge_cidrs` gives one, and the port itself.
pub fn network(ctx: &Ctx) -> ApiResult<Reply> {
    let cfg = &ctx.sim.cfg;
    let wanted = ctx.str("type");
    let bridges =
        wanted.is_none_or(|t| matches!(t, "bridge" | "any_bridge" | "any_local_bridge" | "include_sdn"));
    let mut out = Vec::new();
    if bridges {
        for (i, b) in cfg.bridges.iter().enumerate() {
            let mut iface = json!({
                "iface": b, "type": "bridge", "active": 1, "autostart": 1, "exists": 1,
                "families": ["inet"], "method": "manual", "method6": "manual",
                "priority": 3 + i,
            });
            if i == 0 {
                iface["bridge_ports"] = json!("eno1");
            }
            if let Some(cidr) = cfg.bridge_cidrs.get(b) {
                let (address, bits) = cidr.split_once('/').unwrap_or((cidr, "32"));
                let bits: u32 = bits.parse().unwrap_or(32).min(32);
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                iface["method"] = json!("static");
                iface["cidr"] = json!(cidr);
                iface["address"] = json!(address);
                iface["netmask"] = json!(std::net::Ipv4Addr::from(mask).to_string());
            }
            out.push(iface);
        }
    }
    if wanted.is_none_or(|t| t == "eth") {
        out.push(json!({
            "iface": "eno1", "type": "eth", "active": 1, "autostart": 0, "exists": 1,
            "families": ["inet"], "method": "manual", "method6": "manual", "priority": 2,
        }));
    }
    Ok(Value::Array(out).into())
}

pub fn resources(ctx: &Ctx) -> ApiResult<Reply> {
    let sim = ctx.sim;
    let id = ctx.ident();
    let want = |t: &str| ctx.str("type").is_none_or(|w| w == t);
    let mut st = sim.state();
    let st = &mut *st;
    let mut out = Vec::new();
    if want("vm") {
        for ct in st
            .cts
            .values_mut()
            .filter(|c| perms::has(&sim.cfg, id, &format!("/vms/{}", c.vmid), "VM.Audit"))
        {
            let cpus = st.nodes.get(&ct.node).map_or(1, |n| n.maxcpu);
            // Status and name come from pvestatd's last broadcast (`extract_vm_stats`).
            let published = ct.published();
            let mut seen = ct.clone();
            seen.running = published.as_ref().is_some_and(|(running, _)| *running);
            let mut m = ct_status(&seen, cpus);
            match published {
                Some((_, name)) => {
                    m.insert("name".into(), json!(name));
                }
                None => {
                    m.insert("status".into(), json!("unknown"));
                    m.remove("name");
                }
            }
            let maxcpu = m.remove("cpus").unwrap_or(json!(cpus));
            m.remove("pid");
            m.insert("id".into(), json!(format!("lxc/{}", ct.vmid)));
            m.insert("node".into(), json!(ct.node));
            m.insert("maxcpu".into(), maxcpu);
            m.insert("template".into(), json!(u8::from(m.contains_key("template"))));
            out.push(Value::Object(m));
        }
    }
    if want("node") {
        for (name, n) in &st.nodes {
            out.push(node_entry(st, name, n, &sim.fingerprint));
        }
    }
    if want("storage") {
        for name in st.nodes.keys() {
            for s in &sim.cfg.storages {
                if !perms::has(&sim.cfg, id, &format!("/storage/{}", s.id), "Datastore.Audit") {
                    continue;
                }
                let used = super::storage::used_bytes(st, name, &s.id);
                out.push(json!({
                    "id": format!("storage/{name}/{}", s.id), "type": "storage", "storage": s.id, "node": name,
                    "status": if st.nodes[name].online { "available" } else { "unknown" },
                    "plugintype": s.kind, "content": s.content.join(","), "shared": u8::from(s.shared),
                    "disk": used, "maxdisk": s.total,
                }));
            }
        }
    }
    if want("sdn") {
        for name in st.nodes.keys() {
            out.push(json!({"id": format!("sdn/{name}/localnetwork"), "type": "sdn", "sdn": "localnetwork", "node": name, "status": "ok"}));
        }
    }
    Ok(Value::Array(out).into())
}

/// `GET /cluster/status`: a `cluster` entry when the nodes form one (PVE's `Cluster.pm`:
/// name, node count, quorate, config version), then one `node` entry each; the first node is
/// the one answering (`local`). A standalone node lists only itself.
pub fn status(ctx: &Ctx) -> ApiResult<Reply> {
    let st = ctx.sim.state();
    let mut out = Vec::new();
    if let Some(name) = &ctx.sim.cfg.cluster_name {
        let online = st.nodes.values().filter(|n| n.online).count();
        out.push(json!({
            "type": "cluster", "id": "cluster", "name": name, "nodes": st.nodes.len(),
            "quorate": u8::from(online * 2 > st.nodes.len()), "version": 3,
        }));
    }
    let local = ctx.sim.cfg.nodes.first().map(|n| n.name.as_str());
    for (i, (name, n)) in st.nodes.iter().enumerate() {
        out.push(json!({
            "type": "node", "id": format!("node/{name}"), "name": name, "nodeid": i + 1,
            "ip": format!("192.0.2.{}", i + 10), "online": u8::from(n.online),
            "local": u8::from(Some(name.as_str()) == local), "level": "",
        }));
    }
    Ok(Value::Array(out).into())
}

pub fn nextid(ctx: &Ctx) -> ApiResult<Reply> {
    let st = ctx.sim.state();
    if let Some(v) = ctx.str("vmid") {
        let vmid: u32 = v.parse().unwrap_or_default();
        if st.cts.contains_key(&vmid) {
            return Err(ApiError::param("vmid", format!("VM {vmid} already exists")));
        }
        return Ok(json!(vmid.to_string()).into());
    }
    let free = (100u32..1_000_000).find(|v| !st.cts.contains_key(v));
    match free {
        Some(v) => Ok(json!(v.to_string()).into()),
        None => Err(ApiError::server(
            "unable to get any free VMID in range [100, 999999]",
        )),
    }
}
