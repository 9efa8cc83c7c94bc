//! The operator's web server: `/healthz`, `/readyz` (which coordination backend serves and
//! whether this replica leads), and `/metrics`. Everything but GET and HEAD is refused.

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
}

/// The router (GET routes only: axum answers 405 for other methods, HEAD is served by GET).
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(s): State<HttpState>) -> impl IntoResponse {
    let body = serde_json::json!({
        "ready": *s.ready.borrow(),
        "leader": s.is_leader(),
        "coordination": s.coordination_backend,
        "audit": s.audit_backend,
    });
    let status = if *s.ready.borrow() {
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
