//! `GET/PUT /nodes/{node}/lxc/{vmid}/config`: the config with its digest, and synchronous
//! updates with digest check, lock check, per-option privileges and the root-only feature rule.
//!
//! Simplification: PVE keeps some changes to a running container in `[pending]` until restart;
//! the simulator applies every change at once and never reports pending values.

use super::ct_options::{allocate, apply_options, check_digest, check_feature_perms, option_rules};
use super::{check_flock, ct_on};
use crate::error::{ApiError, ApiResult};
use crate::handler::{Ctx, Reply};
use crate::rules::Ty;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The privilege PVE requires to change one option.
fn option_priv(key: &str) -> &'static str {
    match key.trim_end_matches(|c: char| c.is_ascii_digit()) {
        "cores" | "cpulimit" | "cpuunits" => "VM.Config.CPU",
        "memory" | "swap" => "VM.Config.Memory",
        "net" => "VM.Config.Network",
        "rootfs" | "mp" | "unused" => "VM.Config.Disk",
        _ => "VM.Config.Options",
    }
}

/// Renders the config with JSON types from the rule table (integers and booleans as numbers).
fn render(conf: &BTreeMap<String, String>) -> Map<String, Value> {
    let rules = option_rules();
    conf.iter()
        .map(|(k, v)| {
            let numeric = rules
                .iter()
                .find(|r| r.matches(k))
                .is_some_and(|r| matches!(r.ty, Ty::Int { .. } | Ty::Num { .. } | Ty::Bool));
            let value = match v.parse::<f64>() {
                Ok(n) if numeric => json!(n),
                _ => json!(v),
            };
            let value = match value.as_f64() {
                Some(n) if n.fract() == 0.0 && numeric => json!(n as i64),
                _ => value,
            };
            (k.clone(), value)
        })
        .collect()
}

pub fn get(ctx: &Ctx) -> ApiResult<Reply> {
    let mut st = ctx.sim.state();
    let ct = ct_on(&mut st, ctx.node(), ctx.vmid())?;
    let conf = match ctx.str("snapshot") {
        Some(name) => {
            let snap = ct.snapshots.iter().find(|s| s.name == name);
            &snap
                .ok_or_else(|| ApiError::server(format!("snapshot '{name}' does not exist")))?
                .conf
        }
        None => &ct.conf,
    };
    // While `vzcreate` runs, PVE's config file holds only the lock
    // (`AbstractConfig::create_and_lock_config`); the real one is written when it ends.
    let creating: BTreeMap<String, String>;
    let conf =
        if ct.lock() == Some("create") && ct.conf.contains_key("ostemplate") && ctx.str("snapshot").is_none()
        {
            creating = BTreeMap::from([("lock".to_string(), "create".to_string())]);
            &creating
        } else {
            conf
        };
    let mut out = render(conf);
    out.insert("digest".into(), json!(crate::state::config_digest(conf)));
    Ok(Value::Object(out).into())
}

pub fn update(ctx: &Ctx) -> ApiResult<Reply> {
    let (vmid, node) = (ctx.vmid(), ctx.node());
    let changes: BTreeMap<String, String> = ctx
        .params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "node" | "vmid" | "digest" | "delete" | "revert"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let deletes: Vec<String> = ctx
        .str("delete")
        .map(|d| crate::formats::split_list(d).map(String::from).collect())
        .unwrap_or_default();
    if changes.is_empty() && deletes.is_empty() && ctx.str("revert").is_none() {
        return Err(ApiError::server("no options specified"));
    }
    for d in &deletes {
        if !option_rules().iter().any(|r| r.matches(d)) {
            return Err(ApiError::param("delete", format!("unknown option '{d}'")));
        }
    }
    let mut st = ctx.sim.state();
    let ct = ct_on(&mut st, node, vmid)?;
    check_digest(ct, ctx.str("digest"))?;
    if !(changes.len() == 1 && changes.contains_key("lock")) {
        ct.check_lock()?;
    }
    if changes.contains_key("unprivileged") || deletes.iter().any(|d| d == "unprivileged") {
        return Err(ApiError::server(
            "unable to modify read-only option: 'unprivileged'",
        ));
    }
    let unprivileged = ct.conf.get("unprivileged").is_some_and(|u| u == "1");
    let old_features = ct.conf.get("features").cloned();
    for key in changes.keys().chain(deletes.iter()) {
        if key == "features" {
            let new = changes.get("features").map_or("", String::as_str);
            check_feature_perms(ctx, vmid, old_features.as_deref(), new, unprivileged)?;
        } else {
            crate::perms::check_all(
                &ctx.sim.cfg,
                ctx.ident(),
                &format!("/vms/{vmid}"),
                &[option_priv(key)],
            )?;
        }
    }
    check_flock(&st, &ctx.sim.cfg, vmid)?;
    let mut disk_no = st
        .volumes
        .values()
        .flatten()
        .filter(|v| v.vmid == Some(vmid))
        .count() as u32;
    let mut changes = changes;
    for (k, v) in changes.iter_mut().filter(|(k, _)| k.starts_with("mp")) {
        *v = allocate(ctx, &mut st, vmid, k, v, "mp", &mut disk_no)?;
    }
    let st = &mut *st;
    let ct = st.cts.get_mut(&vmid).expect("checked above");
    for d in &deletes {
        ct.conf.remove(d);
    }
    apply_options(&mut ct.conf, changes.iter(), &mut st.rng);
    Ok(Value::Null.into())
}
