//! Snapshots: list (with the `current` pseudo-entry), create, delete, rollback.

use super::ct_on;
use crate::error::{ApiError, ApiResult};
use crate::handler::{Ctx, Reply};
use crate::state::Ct;
use crate::tasks::Action;
use serde_json::{Value, json};

pub fn list(ctx: &Ctx) -> ApiResult<Reply> {
    let mut st = ctx.sim.state();
    let ct = ct_on(&mut st, ctx.node(), ctx.vmid())?;
    let mut out: Vec<Value> = ct
        .snapshots
        .iter()
        .map(|s| {
            let mut e = json!({"name": s.name, "description": s.description, "snaptime": s.snaptime});
            if let Some(p) = &s.parent {
                e["parent"] = json!(p);
            }
            e
        })
        .collect();
    let mut current =
        json!({"name": "current", "description": "You are here!", "running": u8::from(ct.running)});
    if let Some(p) = ct.conf.get("parent") {
        current["parent"] = json!(p);
    }
    out.push(current);
    Ok(Value::Array(out).into())
}

/// Only storages with snapshots (LVM-thin, ZFS, Ceph) can hold a snapshotted rootfs.
fn check_snapshot_feature(ctx: &Ctx, ct: &Ct) -> ApiResult<()> {
    let storage = ct
        .conf
        .get("rootfs")
        .and_then(|r| r.split(':').next())
        .unwrap_or_default();
    let kind = ctx
        .sim
        .cfg
        .storages
        .iter()
        .find(|s| s.id == storage)
        .map_or("dir", |s| s.kind.as_str());
    if matches!(kind, "lvmthin" | "zfspool" | "rbd" | "btrfs") {
        Ok(())
    } else {
        Err(ApiError::server("snapshot feature is not available"))
    }
}

fn snapname(ctx: &Ctx) -> String {
    ctx.str("snapname").unwrap_or_default().to_string()
}

fn exists(ct: &Ct, name: &str) -> ApiResult<()> {
    if ct.snapshots.iter().any(|s| s.name == name) {
        Ok(())
    } else {
        Err(ApiError::server(format!("snapshot '{name}' does not exist")))
    }
}

pub fn create(ctx: &Ctx) -> ApiResult<Reply> {
    let (vmid, name) = (ctx.vmid(), snapname(ctx));
    let mut st = ctx.sim.state();
    let ct = ct_on(&mut st, ctx.node(), vmid)?;
    if name == "current" {
        return Err(ApiError::server(
            "unable to use snapshot name 'current' (reserved name)",
        ));
    }
    ct.check_lock()?;
    if ct.snapshots.iter().any(|s| s.name == name) {
        return Err(ApiError::server(format!("snapshot name '{name}' already used")));
    }
    check_snapshot_feature(ctx, ct)?;
    let description = ctx.str("description").unwrap_or_default().to_string();
    let action = Action::Snapshot {
        vmid,
        name: name.clone(),
        description,
    };
    Ok(ctx.task(
        &mut st,
        "vzsnapshot",
        &vmid.to_string(),
        Some("snapshot"),
        action,
        None,
    ))
}

pub fn delete(ctx: &Ctx) -> ApiResult<Reply> {
    let (vmid, name) = (ctx.vmid(), snapname(ctx));
    let mut st = ctx.sim.state();
    let ct = ct_on(&mut st, ctx.node(), vmid)?;
    if !ctx.flag("force") {
        ct.check_lock()?;
    }
    exists(ct, &name)?;
    let action = Action::DeleteSnapshot { vmid, name };
    Ok(ctx.task(
        &mut st,
        "vzdelsnapshot",
        &vmid.to_string(),
        Some("snapshot-delete"),
        action,
        None,
    ))
}

pub fn rollback(ctx: &Ctx) -> ApiResult<Reply> {
    let (vmid, name) = (ctx.vmid(), snapname(ctx));
    let mut st = ctx.sim.state();
    let ct = ct_on(&mut st, ctx.node(), vmid)?;
    ct.check_lock()?;
    exists(ct, &name)?;
    let action = Action::Rollback {
        vmid,
        name,
        start: ctx.flag("start"),
    };
    Ok(ctx.task(
        &mut st,
        "vzrollback",
        &vmid.to_string(),
        Some("rollback"),
        action,
        None,
    ))
}
