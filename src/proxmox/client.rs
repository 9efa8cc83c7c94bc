//! The HTTP core of the Proxmox client: one per endpoint, cheap to clone. It authenticates
//! (token, or ticket + CSRF with renewal and one re-login after a 401), unwraps the
//! `{"data": ...}` envelope in one place, classifies failures, retries only what is safe,
//! guards the endpoint with a circuit breaker, caps concurrent task-starting calls and reports
//! every call to the metrics hook.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};

use super::auth::{Credentials, Secret, Ticket};
use super::breaker::{Breaker, BreakerConfig};
use super::error::{Error, ErrorClass, classify};
use super::tls::{TlsError, TlsTrust, client_config};

/// What kind of call it is: decides its timeout, whether it may be retried, and whether it
/// takes one of the node's task slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// A GET: short timeout, retried on connect errors, 5xx and locks.
    Read,
    /// An idempotent PUT or DELETE (config update with digest, resize to a size): retried like reads.
    IdempotentWrite,
    /// A POST that creates or starts something: never retried once it may have reached the
    /// server, except on a "locked" refusal, which guarantees it had no effect.
    StartTask,
}

/// Timeouts per kind of call.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub read: Duration,
    pub write: Duration,
    pub task_start: Duration,
    pub connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            read: Duration::from_secs(10),
            write: Duration::from_secs(30),
            task_start: Duration::from_secs(60),
            connect: Duration::from_secs(5),
        }
    }
}

/// Retry settings for the calls that may be retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryConfig {
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub max_attempts: usize,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_attempts: 5,
        }
    }
}

/// Receives one observation per call (after retries): the operation name, the outcome
/// (`ok` or an [`ErrorClass`] label) and the time it took.
pub trait Metrics: Send + Sync {
    fn observe(&self, operation: &str, outcome: &str, elapsed: Duration);
    /// A task of type `kind` (`vzcreate`, `vzstart`, ...) was found stopped, `ok` or `failed`,
    /// after running `seconds` (whole seconds: Proxmox keeps no finer times).
    fn task_finished(&self, _kind: &str, _outcome: &str, _seconds: f64) {}
}

struct NoMetrics;
impl Metrics for NoMetrics {
    fn observe(&self, _: &str, _: &str, _: Duration) {}
}

/// Everything needed to build a client for one endpoint.
pub struct ClientConfig {
    /// `https://host:8006` (with or without a trailing slash).
    pub endpoint: String,
    pub credentials: Credentials,
    pub tls: TlsTrust,
    pub timeouts: Timeouts,
    pub retry: RetryConfig,
    pub breaker: BreakerConfig,
    /// Tasks in flight allowed (the node's `maxConcurrentTasks`): the calls that start them, and
    /// the tasks until they are seen to end (see [`super::slots`]).
    pub max_concurrent_tasks: usize,
    /// The node's task slots, when they outlive this client (a client rebuilt for a new spec
    /// or Secret must count the tasks its predecessor started); `None`: its own.
    pub task_slots: Option<super::slots::TaskSlots>,
    /// Age after which a ticket is renewed before use (Proxmox tickets live 2 h).
    pub ticket_renew_after: Duration,
    /// The largest response body read; a larger one is [`Error::BodyTooLarge`], and no more than
    /// this is ever held in memory.
    pub max_body_bytes: usize,
    pub metrics: Option<Arc<dyn Metrics>>,
}

/// Default [`ClientConfig::max_body_bytes`]: far above any answer the operator reads (a
/// `/cluster/resources` of thousands of guests is a few MiB), far below what hurts.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

impl ClientConfig {
    /// Defaults for everything but the endpoint, credentials and trust.
    pub fn new(endpoint: impl Into<String>, credentials: Credentials, tls: TlsTrust) -> Self {
        Self {
            endpoint: endpoint.into(),
            credentials,
            tls,
            timeouts: Timeouts::default(),
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            max_concurrent_tasks: 4,
            task_slots: None,
            ticket_renew_after: Duration::from_secs(3600),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            metrics: None,
        }
    }
}

/// A client for one Proxmox endpoint.
#[derive(Clone)]
pub struct ProxmoxClient {
    inner: Arc<Inner>,
}

struct Inner {
    base: String,
    endpoint: String,
    http: reqwest::Client,
    credentials: Credentials,
    ticket: Mutex<Option<Ticket>>,
    ticket_renew_after: Duration,
    timeouts: Timeouts,
    retry: RetryConfig,
    breaker: Breaker,
    task_slots: Semaphore,
    /// The node's tasks in flight (`maxConcurrentTasks`, counted until each ends).
    tasks: super::slots::TaskSlots,
    max_body_bytes: usize,
    metrics: Arc<dyn Metrics>,
}

impl std::fmt::Debug for ProxmoxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxmoxClient")
            .field("endpoint", &self.inner.endpoint)
            .field("identity", &self.inner.credentials.identity())
            .finish()
    }
}

/// Parameters of a call, form-encoded (booleans already as 0/1).
pub type Params = Vec<(String, String)>;

/// A path segment, percent-encoded.
pub fn enc(segment: &str) -> String {
    segment
        .bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (c as char).to_string(),
            _ => format!("%{c:02X}"),
        })
        .collect()
}

impl ProxmoxClient {
    /// Builds a client; no request is made yet.
    pub fn new(config: ClientConfig) -> Result<Self, TlsError> {
        let tls = client_config(&config.tls)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(config.timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
        let endpoint = config.endpoint.trim_end_matches('/').to_string();
        Ok(Self {
            inner: Arc::new(Inner {
                base: format!("{endpoint}/api2/json"),
                endpoint,
                http,
                credentials: config.credentials,
                ticket: Mutex::new(None),
                ticket_renew_after: config.ticket_renew_after,
                timeouts: config.timeouts,
                retry: config.retry,
                breaker: Breaker::new(config.breaker),
                task_slots: Semaphore::new(config.max_concurrent_tasks.max(1)),
                tasks: config
                    .task_slots
                    .unwrap_or_else(|| super::slots::TaskSlots::new(config.max_concurrent_tasks)),
                max_body_bytes: config.max_body_bytes,
                metrics: config.metrics.unwrap_or_else(|| Arc::new(NoMetrics)),
            }),
        })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The credentials' identity (never the secret).
    pub fn identity(&self) -> &str {
        self.inner.credentials.identity()
    }

    /// Whether the credentials are `root@pam` with a ticket.
    pub fn is_root_ticket(&self) -> bool {
        self.inner.credentials.is_root_ticket()
    }

    /// The node's task slots: claim one before an audited call that starts a task.
    pub fn task_slots(&self) -> &super::slots::TaskSlots {
        &self.inner.tasks
    }

    /// Reports a stopped task to the metrics hook.
    pub(crate) fn task_finished(&self, kind: &str, outcome: &str, seconds: f64) {
        self.inner.metrics.task_finished(kind, outcome, seconds);
    }

    /// Makes one call and returns its `data`, decoded.
    pub async fn call<T: DeserializeOwned>(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        params: Params,
        kind: CallKind,
    ) -> Result<T, Error> {
        let started = Instant::now();
        let result = self
            .call_value(operation, method, path, params, kind)
            .await
            .and_then(|data| {
                serde_json::from_value(data).map_err(|e| Error::Decode {
                    operation: operation.to_string(),
                    message: e.to_string(),
                })
            });
        let outcome = result.as_ref().map_or_else(|e| e.class().label(), |_| "ok");
        self.inner.metrics.observe(operation, outcome, started.elapsed());
        result
    }

    async fn call_value(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        params: Params,
        kind: CallKind,
    ) -> Result<Value, Error> {
        let _slot = match kind {
            CallKind::StartTask => Some(
                self.inner
                    .task_slots
                    .acquire()
                    .await
                    .expect("semaphore never closed"),
            ),
            _ => None,
        };
        let retry = self.inner.retry;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(retry.min_delay)
            .with_max_delay(retry.max_delay)
            .with_max_times(retry.max_attempts.saturating_sub(1))
            .with_jitter();
        let attempt = || self.attempt(operation, method.clone(), path, &params, kind);
        attempt
            .retry(backoff)
            .when(|e: &Error| retryable(e, kind))
            .notify(|e, delay| tracing::debug!(operation, error = %e, ?delay, "retrying Proxmox call"))
            .await
    }

    /// One attempt: breaker, auth (with one re-login after a 401 on a ticket), send, unwrap.
    async fn attempt(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        params: &Params,
        kind: CallKind,
    ) -> Result<Value, Error> {
        // Held until the attempt ends: if this is the breaker's trial and the caller drops the
        // future, dropping the admission frees the trial slot.
        let _admission = self
            .inner
            .breaker
            .admit(Instant::now())
            .map_err(|wait| Error::CircuitOpen {
                operation: operation.to_string(),
                endpoint: self.inner.endpoint.clone(),
                retry_in_secs: wait.as_secs().max(1),
            })?;
        let first = self
            .send(operation, method.clone(), path, params, kind, false)
            .await;
        match (&first, &self.inner.credentials) {
            (Err(e), Credentials::Password { .. }) if e.class() == ErrorClass::Unauthorized => {
                self.send(operation, method, path, params, kind, true).await
            }
            _ => first,
        }
    }

    async fn send(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        params: &Params,
        kind: CallKind,
        relogin: bool,
    ) -> Result<Value, Error> {
        let url = format!("{}{}", self.inner.base, path);
        let timeout = match kind {
            CallKind::Read => self.inner.timeouts.read,
            CallKind::IdempotentWrite => self.inner.timeouts.write,
            CallKind::StartTask => self.inner.timeouts.task_start,
        };
        let mut request = self.inner.http.request(method.clone(), &url).timeout(timeout);
        request = if method == Method::GET || method == Method::DELETE {
            request.query(params)
        } else {
            request.form(params)
        };
        request = match &self.inner.credentials {
            Credentials::Token { id, secret } => {
                request.header("Authorization", format!("PVEAPIToken={id}={}", secret.expose()))
            }
            Credentials::Password { .. } => {
                let ticket = self.ticket(operation, relogin).await?;
                let request = request.header("Cookie", format!("PVEAuthCookie={}", ticket.ticket.expose()));
                if method == Method::GET {
                    request
                } else {
                    request.header("CSRFPreventionToken", ticket.csrf.expose())
                }
            }
        };
        self.exchange(operation, request).await
    }

    /// Sends a request and reads the answer through [`unwrap_envelope`]; transport failures
    /// feed the circuit breaker, any answer closes it.
    async fn exchange(&self, operation: &str, request: reqwest::RequestBuilder) -> Result<Value, Error> {
        let response = request
            .send()
            .await
            .map_err(|e| self.connect_error(operation, &e))?;
        self.inner.breaker.record_success();
        let status = response.status();
        let reason = status.canonical_reason().unwrap_or_default().to_string();
        let body = self.read_body(operation, response).await?;
        unwrap_envelope(operation, status, &reason, &body)
    }

    /// Reads the body chunk by chunk up to `max_body_bytes`: a larger answer is refused from its
    /// `Content-Length`, or as soon as it crosses the limit (the connection is then dropped).
    async fn read_body(&self, operation: &str, mut response: reqwest::Response) -> Result<String, Error> {
        let limit = self.inner.max_body_bytes;
        let too_large = || Error::BodyTooLarge {
            operation: operation.to_string(),
            limit_bytes: limit,
        };
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.connect_error(operation, &e))?
        {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    fn connect_error(&self, operation: &str, e: &reqwest::Error) -> Error {
        let message = error_chain(e);
        // An untrusted certificate is an answer, not an outage: no retry, no breaker.
        if is_certificate_error(&message) {
            self.inner.breaker.record_success();
            return Error::Tls {
                operation: operation.to_string(),
                message,
            };
        }
        if self.inner.breaker.record_failure(Instant::now()) {
            tracing::warn!(endpoint = %self.inner.endpoint, "Proxmox endpoint unreachable; circuit breaker open");
        }
        Error::Connect {
            operation: operation.to_string(),
            message,
            never_sent: e.is_connect(),
        }
    }

    /// The current ticket: logs in when there is none, after a 401 (`relogin`), and renews
    /// it (by posting the ticket as the password) once it is older than `ticket_renew_after`.
    async fn ticket(&self, operation: &str, relogin: bool) -> Result<Ticket, Error> {
        let Credentials::Password { username, password } = &self.inner.credentials else {
            unreachable!("tickets are only used with password credentials");
        };
        let mut slot = self.inner.ticket.lock().await;
        let now = Instant::now();
        let secret = match slot.as_ref() {
            Some(t) if !relogin && !t.needs_renewal(now, self.inner.ticket_renew_after) => {
                return Ok(t.clone());
            }
            Some(t) if !relogin => t.ticket.clone(),
            _ => password.clone(),
        };
        let fresh = match self.login(operation, username, &secret).await {
            Err(e) if e.class() == ErrorClass::Unauthorized && secret != *password => {
                self.login(operation, username, password).await?
            }
            other => other?,
        };
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    async fn login(&self, operation: &str, username: &str, password: &Secret) -> Result<Ticket, Error> {
        let url = format!("{}/access/ticket", self.inner.base);
        let form = [("username", username), ("password", password.expose())];
        let request = self
            .inner
            .http
            .post(&url)
            .timeout(self.inner.timeouts.read)
            .form(&form);
        let data = self.exchange(operation, request).await?;
        let field = |k: &str| data.get(k).and_then(Value::as_str).map(Secret::new);
        match (field("ticket"), field("CSRFPreventionToken")) {
            (Some(ticket), Some(csrf)) => Ok(Ticket {
                ticket,
                csrf,
                issued: Instant::now(),
            }),
            _ => Err(Error::Decode {
                operation: operation.to_string(),
                message: "login answer without a ticket".into(),
            }),
        }
    }
}

/// Whether an error may be retried for this kind of call.
fn retryable(e: &Error, kind: CallKind) -> bool {
    match (e, kind) {
        (Error::Connect { never_sent: true, .. }, _) => true,
        (_, _) if e.class() == ErrorClass::Locked => true,
        (_, CallKind::StartTask) => false,
        (Error::Connect { .. }, _) => true,
        (
            Error::Api {
                class: ErrorClass::Server,
                ..
            },
            _,
        ) => true,
        _ => false,
    }
}

fn is_certificate_error(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("invalid peer certificate") || m.contains("certificate verify") || m.contains("unknownissuer")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The one place that reads Proxmox's answers: `{"data": ...}` on success; on failure the
/// message (body `message`, else the status line's reason) and per-field `errors`.
pub fn unwrap_envelope(
    operation: &str,
    status: StatusCode,
    reason: &str,
    body: &str,
) -> Result<Value, Error> {
    let json: Option<Value> = serde_json::from_str(body).ok();
    if status.is_success() {
        return match json {
            Some(Value::Object(mut map)) => Ok(map.remove("data").unwrap_or(Value::Null)),
            _ => Err(Error::Decode {
                operation: operation.to_string(),
                message: format!("not JSON: {body:.200}"),
            }),
        };
    }
    let fields: BTreeMap<String, String> = json
        .as_ref()
        .and_then(|j| j.get("errors"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().trim_end().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let message = json
        .as_ref()
        .and_then(|j| j.get("message"))
        .and_then(Value::as_str)
        .map(|m| m.trim_end().to_string())
        .filter(|m| !m.is_empty())
        .or_else(|| (!body.trim().is_empty() && json.is_none()).then(|| body.trim().to_string()))
        .unwrap_or_else(|| reason.to_string());
    Err(Error::Api {
        operation: operation.to_string(),
        status: status.as_u16(),
        class: classify(status.as_u16(), &message, &fields),
        message,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_is_unwrapped_and_errors_carry_fields() {
        let ok = unwrap_envelope("op", StatusCode::OK, "OK", r#"{"data":{"version":"9.1.2"}}"#).unwrap();
        assert_eq!(ok["version"], "9.1.2");
        let null = unwrap_envelope("op", StatusCode::OK, "OK", r#"{"data":null}"#).unwrap();
        assert!(null.is_null());
        let body = r#"{"errors":{"vmid":"value must have a minimum value of 100\n"},"data":null,"message":"Parameter verification failed.\n"}"#;
        let Error::Api {
            status,
            class,
            message,
            fields,
            ..
        } = unwrap_envelope(
            "create",
            StatusCode::BAD_REQUEST,
            "Parameter verification failed.",
            body,
        )
        .unwrap_err()
        else {
            panic!("expected an API error")
        };
        assert_eq!((status, class), (400, ErrorClass::InvalidParameters));
        assert_eq!(message, "Parameter verification failed.");
        assert_eq!(fields["vmid"], "value must have a minimum value of 100");
    }

    #[test]
    fn old_servers_without_a_message_fall_back_to_the_reason() {
        let e = unwrap_envelope(
            "start",
            StatusCode::INTERNAL_SERVER_ERROR,
            "CT 100 already running",
            r#"{"data":null}"#,
        )
        .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Server);
        assert!(e.to_string().contains("CT 100 already running"), "{e}");
        let empty_401 = unwrap_envelope("get", StatusCode::UNAUTHORIZED, "No ticket", "").unwrap_err();
        assert_eq!(empty_401.class(), ErrorClass::Unauthorized);
    }

    #[test]
    fn creates_are_not_retried_but_reads_are() {
        let server = |class| Error::Api {
            operation: "x".into(),
            status: 500,
            class,
            message: String::new(),
            fields: BTreeMap::new(),
        };
        let sent = Error::Connect {
            operation: "x".into(),
            message: String::new(),
            never_sent: false,
        };
        let unsent = Error::Connect {
            operation: "x".into(),
            message: String::new(),
            never_sent: true,
        };
        assert!(retryable(&server(ErrorClass::Server), CallKind::Read));
        assert!(!retryable(&server(ErrorClass::Server), CallKind::StartTask));
        assert!(retryable(&server(ErrorClass::Locked), CallKind::StartTask));
        assert!(
            !retryable(&sent, CallKind::StartTask),
            "a timed-out create may have happened"
        );
        assert!(
            retryable(&unsent, CallKind::StartTask),
            "a create that never left is safe to retry"
        );
        assert!(retryable(&sent, CallKind::IdempotentWrite));
        assert!(!retryable(&server(ErrorClass::InvalidParameters), CallKind::Read));
        assert!(
            !retryable(&server(ErrorClass::ConfigChanged), CallKind::IdempotentWrite),
            "the same digest can never match again"
        );
    }
}
