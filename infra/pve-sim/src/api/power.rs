//! `status/current` and the power actions (start, stop, shutdown, reboot), each a task.

use super::{ct_on, ct_status};
use crate::error::{ApiError, ApiResult};
use crate::handler::{Ctx, Reply};
use crate::propstr;
use crate::tasks::Action;
use serde_json::{Value, json};

pub fn current(ctx: &Ctx) -> ApiResult<Reply> {
    let mut st = ctx.sim.state();
    let cpus = st.nodes[ctx.node()].maxcpu;
    let ct = ct_on(&mut st, ctx.node(), ctx.vmid())?;
    let mut m = ct_status(ct, cpus);
    m.insert("ha".into(), json!({"managed": 0}));
    Ok(Value::Object(m).into())
}

/// `skiplock` is root's alone; without it a config lock refuses the action.
fn lock_rules(ctx: &Ctx, ct: &crate::state::Ct) -> ApiResult<()> {
    if ctx.flag("skiplock") {
        if !ctx.ident().is_root() {
            return Err(ApiError::param("skiplock", "Only root may use this option."));
        }
        return Ok(());
    }
    ct.check_lock()
}

pub fn start(ctx: &Ctx) -> ApiResult<Reply> {
    let vmid = ctx.vmid();
    let mut st = ctx.sim.state();
    let ct = ct_on(&mut st, ctx.node(), vmid)?;
    lock_rules(ctx, ct)?;
    if ct.running {
        return Err(ApiError::server(format!("CT {vmid} already running")));
    }
    // A NIC on a bridge the node lacks fails inside the start task, as on PVE.
    let bridges = &ctx.sim.cfg.bridges;
    let fail = ct
        .conf
        .iter()
        .filter(|(k, _)| k.starts_with("net"))
        .find_map(|(k, v)| {
            let net = propstr::parse("net", k, v).ok()?;
            let bridge = propstr::get(&net, "bridge")?.to_string();
            (!bridges.contains(&bridge)).then(|| format!("bridge '{bridge}' does not exist"))
        });
    Ok(ctx.task(
        &mut st,
        "vzstart",
        &vmid.to_string(),
        None,
        Action::Start { vmid },
        fail,
    ))
}

pub fn stop(ctx: &Ctx) -> ApiResult<Reply> {
    let vmid = ctx.vmid();
    let mut st = ctx.sim.state();
    let ct = ct_on(&mut st, ctx.node(), vmid)?;
    lock_rules(ctx, ct)?;
    if !ct.running {
        return Err(ApiError::server(format!("CT {vmid} not running")));
    }
    Ok(ctx.task(
        &mut st,
        "vzstop",
        &vmid.to_string(),
        None,
        Action::Stop { vmid },
        None,
    ))
}

pub fn shutdown(ctx: &Ctx) -> ApiResult<Reply> {
    let vmid = ctx.vmid();
    let mut st = ctx.sim.state();
    let ct = ct_on(&mut st, ctx.node(), vmid)?;
    ct.check_lock()?;
    if !ct.running {
        return Err(ApiError::server(format!("CT {vmid} not running")));
    }
    Ok(ctx.task(
        &mut st,
        "vzshutdown",
        &vmid.to_string(),
        None,
        Action::Stop { vmid },
        None,
    ))
}

pub fn reboot(ctx: &Ctx) -> ApiResult<Reply> {
    let vmid = ctx.vmid();
    let mut st = ctx.sim.state();
    let ct = ct_on(&mut st, ctx.node(), vmid)?;
    ct.check_lock()?;
    if !ct.running {
        return Err(ApiError::server(format!("VM {vmid} not running")));
    }
    Ok(ctx.task(
        &mut st,
        "vzreboot",
        &vmid.to_string(),
        None,
        Action::Reboot { vmid },
        None,
    ))
}
