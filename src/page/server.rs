//! The page's routes and the rules every answer follows: only GET and HEAD (anything else is
//! 405 before routing), an optional bearer token, and the security headers (a CSP without
//! inline script, `nosniff`, no referrer, no framing) on every response.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use super::caches::{Change, PageCaches};
use super::filter::{AuditFilter, ContainerFilter};
use super::views;
use crate::audit::AuditStore;
use crate::observe::latency::LatencyHistory;

/// The page's Content-Security-Policy: only this origin's stylesheet and script, no inline
/// script or style, no framing, forms only to this origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What the page reads.
#[derive(Clone)]
pub struct PageState {
    pub caches: PageCaches,
    pub audit: AuditStore,
    /// When set, every request needs `Authorization: Bearer <token>` (kept as its SHA-256, so
    /// the comparison takes the same time whatever the guess).
    token_sha256: Option<Arc<[u8; 32]>>,
    /// The last hour of reconcile and Proxmox call latencies (from the metrics registry).
    latency: Option<Arc<LatencyHistory>>,
}

impl PageState {
    pub fn new(caches: PageCaches, audit: AuditStore, token: Option<&str>) -> Self {
        let token_sha256 = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| Arc::new(Sha256::digest(t.as_bytes()).into()));
        Self {
            caches,
            audit,
            token_sha256,
            latency: None,
        }
    }

    /// Draws the latency pictures on the overview from `latency`.
    pub fn with_latency(mut self, latency: Arc<LatencyHistory>) -> Self {
        self.latency = Some(latency);
        self
    }
}

/// The page's router, with its rules.
pub fn router(state: PageState) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/containers/{namespace}/{name}", get(container))
        .route("/nodes/{name}", get(node))
        .route("/templates/{name}", get(template))
        .route("/audit", get(audit))
        .route("/events", get(events))
        .route("/static/page.css", get(css))
        .route("/static/page.js", get(js))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(middleware::from_fn(read_only))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Serves the page on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: PageState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn read_only(request: Request, next: Next) -> Response {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return next.run(request).await;
    }
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "GET, HEAD")],
        "the status page is read-only\n",
    )
        .into_response()
}

async fn authorize(State(state): State<PageState>, request: Request, next: Next) -> Response {
    let Some(want) = &state.token_sha256 else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Sha256::digest(t.trim().as_bytes()));
    // Equal-length digests, compared without an early exit.
    let ok = given.is_some_and(|g| g.iter().zip(want.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0);
    if ok {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a bearer token is required\n",
    )
        .into_response()
}

async fn overview(State(s): State<PageState>, Query(filter): Query<ContainerFilter>) -> Html<String> {
    Html(views::overview::render(&s.caches, &filter, s.latency.as_deref()).into_string())
}

async fn container(
    State(s): State<PageState>,
    Path((namespace, name)): Path<(String, String)>,
    Query(cursor): Query<AuditFilter>,
) -> Response {
    let Some(ct) = s.caches.container(&namespace, &name) else {
        return missing("LxcContainer", &format!("{namespace}/{name}"));
    };
    let mut page = cursor.page();
    page.uid = Some(ct.metadata.uid.clone().unwrap_or_default());
    page.name = None;
    let trail = s.audit.page(page).await;
    Html(views::container::render(&s.caches, &ct, trail).into_string()).into_response()
}

async fn node(State(s): State<PageState>, Path(name): Path<String>) -> Response {
    match s.caches.node(&name) {
        Some(node) => Html(views::node::render(&s.caches, &node).into_string()).into_response(),
        None => missing("ProxmoxNode", &name),
    }
}

async fn template(State(s): State<PageState>, Path(name): Path<String>) -> Response {
    match s.caches.template(&name) {
        Some(t) => Html(views::template::render(&s.caches, &t).into_string()).into_response(),
        None => missing("LxcTemplate", &name),
    }
}

async fn audit(State(s): State<PageState>, Query(filter): Query<AuditFilter>) -> Html<String> {
    let rows = s.audit.page(filter.page()).await;
    Html(views::audit::render(&filter, rows).into_string())
}

async fn events(State(s): State<PageState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = change_events(s.caches.subscribe());
    Sse::new(changes).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("assets/page.css"),
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("assets/page.js"),
    )
}

async fn not_found() -> Response {
    missing("page", "")
}

fn missing(kind: &str, name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(views::layout::not_found(kind, name).into_string()),
    )
        .into_response()
}

/// The change feed as SSE events (`event: change`, `data: <what>`), opened by `event: hello`
/// so the viewer knows at once that it is connected; a viewer that fell behind gets `data: *`
/// (reload everything).
fn change_events(rx: broadcast::Receiver<Change>) -> impl Stream<Item = Result<Event, Infallible>> {
    let hello = Event::default()
        .event("hello")
        .data("connected")
        .retry(Duration::from_secs(3));
    let changes = futures::stream::unfold(rx, |mut rx| async move {
        let data = match rx.recv().await {
            Ok(Change(what)) => what,
            Err(broadcast::error::RecvError::Lagged(_)) => "*".to_string(),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(Event::default().event("change").data(data)), rx))
    });
    futures::stream::once(async move { Ok(hello) }).chain(changes)
}
