//! The request pipeline, independent of the HTTP library: faults → route → body rules →
//! authentication (ticket + CSRF, or API token) → node reachability → permission →
//! parameter validation → handler → `{"data": ...}` envelope → request log.

use crate::auth::{Credentials, Identity};
use crate::error::ApiError;
use crate::faults::{ErrorKind, Injected, PaddingRule};
use crate::handler::{Ctx, Reply};
use crate::routes::{Perm, ROUTES};
use crate::state::{Sim, now};
use crate::sync::lock;
use crate::validate::Params;
use crate::{perms, routes, validate};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The parts of an HTTP request the pipeline needs.
#[derive(Debug, Default)]
pub struct ApiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub cookie: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub csrf: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// What to answer.
#[derive(Debug)]
pub enum Outcome {
    Respond {
        status: u16,
        reason: String,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// A 200 JSON answer (`body` is the whole envelope) with the rule's filler streamed into
    /// the envelope as the client reads (see `faults::PaddingRule`).
    Padded { body: Vec<u8>, padding: PaddingRule },
    /// Close the connection without answering.
    Reset,
}

pub const JSON: &str = "application/json;charset=UTF-8";

pub async fn handle(sim: &Arc<Sim>, req: ApiRequest<'_>) -> Outcome {
    let received_ms = crate::reqlog::epoch_ms();
    let Some(rel) = req
        .path
        .strip_prefix("/api2/json")
        .filter(|r| r.is_empty() || r.starts_with('/'))
    else {
        return plain(501, "no such uri", "no such uri");
    };
    // One of the node's API workers handles the call from here on, injected latency and lock
    // waits included; when all are busy the call waits in line (FIFO), as on a busy node.
    let _worker = match sim.workers.get(worker_node(sim, rel)) {
        Some(workers) => workers.clone().acquire_owned().await.ok(),
        None => None,
    };
    let route = routes::find(req.method, rel).ok().map(|(i, _)| ROUTES[i].path);
    let (latency, injected) = lock(&sim.faults).decide(req.method, rel);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    // Injected faults are logged like any other answer, so tests can count every attempt.
    let injected = match injected {
        Some(Injected::Error(ErrorKind::Reset, _)) => Some((0, Outcome::Reset)),
        Some(Injected::Error(ErrorKind::Unavailable, _)) => Some((
            503,
            error_outcome(&ApiError::Status(503, "Service Unavailable".into())),
        )),
        Some(Injected::Error(ErrorKind::Internal, msg)) => Some((500, error_outcome(&ApiError::Server(msg)))),
        None => None,
    };
    if let Some((status, outcome)) = injected {
        sim.log
            .record(received_ms, req.method, rel, route, &Params::new(), status, None);
        return outcome;
    }
    let mut params = Params::new();
    let mut identity = None;
    let mut result = run(sim, &req, rel, &mut params, &mut identity);
    if let Err(ApiError::LockBusy {
        vmid,
        timeout_ms,
        message,
    }) = &result
    {
        result = wait_for_flock(
            sim,
            &req,
            rel,
            (*vmid, *timeout_ms, message.clone()),
            &mut params,
            &mut identity,
        )
        .await;
    }
    let result = match result {
        Err(e @ (ApiError::LoginFailed | ApiError::Unauthorized(_))) if sim.cfg.auth_failure_delay_ms > 0 => {
            tokio::time::sleep(std::time::Duration::from_millis(sim.cfg.auth_failure_delay_ms)).await;
            Err(e)
        }
        other => other,
    };
    let outcome = match &result {
        Ok(reply) => {
            let mut body = json!({"data": reply.data});
            if let Some(total) = reply.total {
                body["total"] = json!(total);
            }
            let body = body.to_string().into_bytes();
            match lock(&sim.faults).padding(req.method, rel) {
                Some(padding) => Outcome::Padded { body, padding },
                None => Outcome::Respond {
                    status: 200,
                    reason: "OK".into(),
                    content_type: JSON,
                    body,
                },
            }
        }
        Err(e) => error_outcome(e),
    };
    let status = match &outcome {
        Outcome::Respond { status, .. } => *status,
        Outcome::Padded { .. } => 200,
        Outcome::Reset => 0,
    };
    sim.log.record(
        received_ms,
        req.method,
        rel,
        route,
        &params,
        status,
        identity.as_ref().map(Identity::authid),
    );
    outcome
}

/// The node whose API workers serve a call: the `{node}` of the path, or else the node the
/// client is connected to (the first one).
fn worker_node<'a>(sim: &'a Sim, rel: &'a str) -> &'a str {
    rel.strip_prefix("/nodes/")
        .and_then(|r| r.split('/').next())
        .filter(|n| !n.is_empty())
        .or_else(|| sim.cfg.nodes.first().map(|n| n.name.as_str()))
        .unwrap_or_default()
}

/// PVE's `lock_config` in the API process: waits for the config lock file and runs the call
/// again, or gives up with `got timeout` when the wait is over.
async fn wait_for_flock(
    sim: &Arc<Sim>,
    req: &ApiRequest<'_>,
    rel: &str,
    (vmid, timeout_ms, message): (u32, u64, String),
    params: &mut Params,
    identity: &mut Option<Identity>,
) -> Result<Reply, ApiError> {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let left_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        if !crate::worker::wait_for(sim, left_ms, |st| st.flock_free(vmid)).await {
            return Err(ApiError::Server(message));
        }
        params.clear();
        *identity = None;
        match run(sim, req, rel, params, identity) {
            Err(ApiError::LockBusy { .. }) => continue,
            other => return other,
        }
    }
}

fn plain(status: u16, reason: &str, body: &str) -> Outcome {
    Outcome::Respond {
        status,
        reason: reason.into(),
        content_type: "text/plain;charset=UTF-8",
        body: body.as_bytes().to_vec(),
    }
}

fn error_outcome(e: &ApiError) -> Outcome {
    if let ApiError::NotImplemented(msg) = e {
        return plain(501, msg, msg);
    }
    let body = e.body().map(|b| b.to_string().into_bytes()).unwrap_or_default();
    Outcome::Respond {
        status: e.status(),
        reason: e.reason(),
        content_type: JSON,
        body,
    }
}

fn run(
    sim: &Arc<Sim>,
    req: &ApiRequest,
    rel: &str,
    params: &mut Params,
    identity: &mut Option<Identity>,
) -> Result<Reply, ApiError> {
    let (index, path_params) = routes::find(req.method, rel).map_err(|_| {
        ApiError::NotImplemented(format!("Method '{} /api2/json{rel}' not implemented", req.method))
    })?;
    let route = &ROUTES[index];
    let bodyless = matches!(req.method, "GET" | "DELETE");
    if bodyless && !req.body.is_empty() {
        return Err(ApiError::NotImplemented(format!(
            "Unexpected content for method '{}'",
            req.method
        )));
    }
    if !bodyless {
        parse_body(req.content_type, req.body, params)?;
    }
    // Query parameters override body parameters.
    if let Some(q) = req.query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            params.insert(k.into_owned(), v.into_owned());
        }
    }
    params.extend(path_params);

    if !matches!(route.perm, Perm::NoAuth) {
        let id = authenticate(sim, req)?;
        *identity = Some(id);
    }
    let id = identity.as_ref();
    if let Some(id) = id {
        if !route.allowtoken && id.token.is_some() {
            return Err(ApiError::Perm(format!(
                "URI '{rel}' not available with API token, need proper ticket."
            )));
        }
        if params.contains_key("node") {
            check_node(sim, &params["node"])?;
        }
        check_perm(sim, route.perm, id, params)?;
    }
    validate::validate(routes::route_rules(index), params).map_err(ApiError::Param)?;
    (route.handler)(&Ctx { sim, id, params })
}

fn parse_body(content_type: Option<&str>, body: &[u8], params: &mut Params) -> Result<(), ApiError> {
    if body.is_empty() {
        return Ok(());
    }
    if content_type.is_some_and(|c| c.starts_with("application/json")) {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::Status(400, format!("malformed JSON body: {e}").replace('\n', " ")))?;
        let Value::Object(map) = value else {
            return Err(ApiError::Status(400, "JSON body is not an object".into()));
        };
        for (k, v) in map {
            let s = match v {
                Value::String(s) => s,
                Value::Bool(b) => if b { "1" } else { "0" }.to_string(),
                Value::Null => continue,
                other => other.to_string(),
            };
            params.insert(k, s);
        }
    } else {
        for (k, v) in form_urlencoded::parse(body) {
            params.insert(k.into_owned(), v.into_owned());
        }
    }
    Ok(())
}

fn authenticate(sim: &Sim, req: &ApiRequest) -> Result<Identity, ApiError> {
    match crate::auth::extract(req.cookie, req.authorization) {
        Credentials::None => Err(ApiError::Unauthorized("No ticket".into())),
        Credentials::Ticket(ticket) => {
            let t = now();
            let key = lock(&sim.key).clone();
            let user = key
                .verify_ticket(&ticket, t, sim.cfg.ticket_lifetime_secs)
                .ok_or_else(|| ApiError::Unauthorized("Authentication failed!".into()))?;
            let csrf_ok = req.method == "GET"
                || req
                    .csrf
                    .is_some_and(|c| key.verify_csrf(c, &user, t, sim.cfg.ticket_lifetime_secs));
            if !csrf_ok {
                return Err(ApiError::Unauthorized(
                    "Permission denied - invalid csrf token".into(),
                ));
            }
            Ok(Identity { user, token: None })
        }
        Credentials::Token(tokenid, secret) => {
            let known = sim
                .cfg
                .tokens
                .iter()
                .any(|t| t.tokenid == tokenid && t.secret == secret);
            let (user, name) = tokenid
                .split_once('!')
                .filter(|_| known)
                .ok_or_else(|| ApiError::Unauthorized("Authentication failed!".into()))?;
            Ok(Identity {
                user: user.into(),
                token: Some(name.into()),
            })
        }
    }
}

/// An unknown node fails the hostname lookup; an offline one cannot be proxied to (595).
fn check_node(sim: &Sim, node: &str) -> Result<(), ApiError> {
    match sim.state().nodes.get(node) {
        None => Err(ApiError::server(format!(
            "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
        ))),
        Some(n) if !n.online => Err(ApiError::Status(
            595,
            format!("Connection refused (node '{node}' is offline)"),
        )),
        Some(_) => Ok(()),
    }
}

fn check_perm(sim: &Sim, perm: Perm, id: &Identity, params: &Params) -> Result<(), ApiError> {
    let param = |k: &str| params.get(k).cloned().unwrap_or_default();
    let cfg = &sim.cfg;
    match perm {
        Perm::Any | Perm::NoAuth => Ok(()),
        Perm::Vm(p) => perms::check_all(cfg, id, &format!("/vms/{}", param("vmid")), p),
        Perm::VmAny(p) => perms::check_any(cfg, id, &format!("/vms/{}", param("vmid")), p),
        Perm::Storage(p) => perms::check_all(cfg, id, &format!("/storage/{}", param("storage")), p),
        Perm::StorageAny(p) => perms::check_any(cfg, id, &format!("/storage/{}", param("storage")), p),
        Perm::Node(p) => perms::check_all(cfg, id, &format!("/nodes/{}", param("node")), p),
        Perm::Root(p) => perms::check_all(cfg, id, "/", p),
    }
}
