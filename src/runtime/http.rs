//! The operator's web server: `/healthz`, `/readyz` (which coordination backend serves,
//! whether this replica leads, and false while it cannot take part in the election), `/metrics`,
//! and `/`, which says where everything is. Everything but GET and HEAD is refused.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use super::metrics::Metrics;
use crate::cluster::fence::Leadership;

impl HttpState {
    fn is_leader(&self) -> bool {
        *self.leading.borrow() && self.leadership.is_leading()
    }
}

/// What the endpoints read.
#[derive(Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub coordination_backend: &'static str,
    pub audit_backend: &'static str,
    pub leading: watch::Receiver<bool>,
    /// Judged at each request by the local clock, so a replica that was frozen says "not
    /// leading" on its first answer, before its election loop has run again.
    pub leadership: Leadership,
    pub ready: watch::Receiver<bool>,
    /// Why this replica cannot take part in the leader election, while it cannot.
    pub election_problem: watch::Receiver<Option<String>>,
}

/// The router (GET routes only: axum answers 405 for other methods, HEAD is served by GET).
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// What `/` says until the status page exists: where everything is.
pub const INDEX: &str = "lxc-operator\n\
    \n\
    /metrics  Prometheus metrics\n\
    /healthz  liveness\n\
    /readyz   readiness (JSON: leader, coordination and audit backends, election problem)\n\
    \n\
    The read-only status page is not served here: it comes with --status-listen\n\
    (LXC_OPERATOR_STATUS_LISTEN), on an address of its own.\n";

async fn index() -> impl IntoResponse {
    ([("content-type", "text/plain; charset=utf-8")], INDEX)
}

async fn readyz(State(s): State<HttpState>) -> impl IntoResponse {
    let problem = s.election_problem.borrow().clone();
    let ready = *s.ready.borrow() && problem.is_none();
    let body = serde_json::json!({
        "ready": ready,
        "leader": s.is_leader(),
        "coordination": s.coordination_backend,
        "audit": s.audit_backend,
        "problem": problem,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    s.metrics.set_leader(s.is_leader());
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        s.metrics.render(),
    )
}
