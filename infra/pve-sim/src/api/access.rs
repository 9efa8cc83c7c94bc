//! `POST /access/ticket`: login with a password, or renewal with a still-valid ticket.

use crate::error::{ApiError, ApiResult};
use crate::handler::{Ctx, Reply};
use crate::state::now;
use crate::sync::lock;
use serde_json::json;

pub fn create_ticket(ctx: &Ctx) -> ApiResult<Reply> {
    let sim = ctx.sim;
    let mut username = ctx.str("username").unwrap_or_default().to_string();
    if let Some(realm) = ctx.str("realm")
        && !username.contains('@')
    {
        username = format!("{username}@{realm}");
    }
    let password = ctx.str("password").unwrap_or_default();
    let t = now();
    let key = lock(&sim.key).clone();
    let renewal = key.verify_ticket(password, t, sim.cfg.ticket_lifetime_secs);
    let ok = match renewal {
        Some(ticket_user) => ticket_user == username || ticket_user == "root@pam",
        None => sim
            .cfg
            .users
            .iter()
            .any(|u| u.userid == username && u.password == password),
    };
    if !ok {
        return Err(ApiError::LoginFailed);
    }
    let cap = if username == "root@pam" {
        json!({
            "vms": {"VM.Allocate": 1, "VM.Audit": 1, "VM.PowerMgmt": 1, "VM.Migrate": 1, "VM.Snapshot": 1, "VM.Config.Disk": 1},
            "storage": {"Datastore.Allocate": 1, "Datastore.AllocateSpace": 1, "Datastore.AllocateTemplate": 1, "Datastore.Audit": 1},
            "nodes": {"Sys.Audit": 1, "Sys.Modify": 1, "Sys.PowerMgmt": 1},
            "dc": {"Sys.Audit": 1, "SDN.Use": 1},
            "access": {"User.Modify": 1},
            "sdn": {"SDN.Use": 1},
        })
    } else {
        json!({})
    };
    Ok(json!({
        "username": username,
        "ticket": key.ticket(&username, t),
        "CSRFPreventionToken": key.csrf(&username, t),
        "clustername": "pve-sim",
        "cap": cap,
    })
    .into())
}
