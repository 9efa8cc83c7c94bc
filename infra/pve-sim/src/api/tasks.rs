//! `GET /nodes/{node}/tasks/{upid}/status|log`.

use crate::error::{ApiError, ApiResult};
use crate::handler::{Ctx, Reply};
use crate::perms;
use crate::tasks::{Task, parse_upid};
use serde_json::{Value, json};

fn find(ctx: &Ctx) -> ApiResult<Task> {
    let upid = ctx.str("upid").unwrap_or_default();
    if parse_upid(upid).is_none() {
        return Err(ApiError::param("upid", "unable to parse worker upid"));
    }
    let st = ctx.sim.state();
    let task = st.tasks.get(upid).filter(|t| t.node == ctx.node()).cloned();
    let task = task.ok_or_else(|| ApiError::param("upid", "no such task"))?;
    // Own tasks are readable; others need Sys.Audit on the node.
    let id = ctx.ident();
    if task.authid != id.authid() {
        perms::check_all(
            &ctx.sim.cfg,
            id,
            &format!("/nodes/{}", ctx.node()),
            &["Sys.Audit"],
        )?;
    }
    Ok(task)
}

pub fn status(ctx: &Ctx) -> ApiResult<Reply> {
    let t = find(ctx)?;
    let (user, tokenid) = match t.authid.split_once('!') {
        Some((u, tok)) => (u.to_string(), Some(tok.to_string())),
        None => (t.authid.clone(), None),
    };
    let mut v = json!({
        "upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.starttime,
        "type": t.kind, "id": t.id, "user": user,
        "status": if t.running { "running" } else { "stopped" },
    });
    if let Some(tok) = tokenid {
        v["tokenid"] = json!(tok);
    }
    if let Some(e) = t.exitstatus {
        v["exitstatus"] = json!(e);
    }
    Ok(v.into())
}

pub fn log(ctx: &Ctx) -> ApiResult<Reply> {
    let t = find(ctx)?;
    if ctx.flag("download") && (ctx.str("start").is_some() || ctx.str("limit").is_some()) {
        return Err(ApiError::param(
            "download",
            "option conflicts with option 'start'/'limit'",
        ));
    }
    let start: usize = ctx.str("start").and_then(|s| s.parse().ok()).unwrap_or(0);
    let limit: usize = ctx.str("limit").and_then(|s| s.parse().ok()).unwrap_or(50);
    let lines: Vec<String> = if t.log.is_empty() {
        vec!["no content".into()]
    } else {
        t.log
    };
    let total = lines.len();
    let take = if limit == 0 { usize::MAX } else { limit };
    let data: Vec<Value> = lines
        .iter()
        .enumerate()
        .skip(start)
        .take(take)
        .map(|(i, l)| json!({"n": i + 1, "t": l}))
        .collect();
    Ok(Reply {
        data: Value::Array(data),
        total: Some(total),
    })
}
