//! The listeners: HTTPS (rustls) for `/api2/json`, plain HTTP for the admin API; HTTP/1.1 with
//! keep-alive via hyper, custom reason phrases, connection resets and streamed oversized answers
//! for injected faults.

use crate::dispatch::{ApiRequest, JSON, Outcome};
use crate::faults::PaddingRule;
use crate::state::Sim;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Returned by the service to drop the connection without an answer.
#[derive(Debug)]
pub struct ConnectionReset;

impl std::fmt::Display for ConnectionReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset (injected)")
    }
}

impl std::error::Error for ConnectionReset {}

type Resp = Response<BoxBody<Bytes, Infallible>>;

pub fn response(status: u16, reason: &str, content_type: &str, body: Vec<u8>) -> Resp {
    with_body(status, reason, content_type, Full::new(Bytes::from(body)).boxed())
}

fn with_body(status: u16, reason: &str, content_type: &str, body: BoxBody<Bytes, Infallible>) -> Resp {
    let mut res = Response::new(body);
    *res.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    let canonical = res.status().canonical_reason();
    if canonical != Some(reason)
        && let Ok(rp) = hyper::ext::ReasonPhrase::try_from(reason.as_bytes().to_vec())
    {
        res.extensions_mut().insert(rp);
    }
    res
}

async fn api_service(sim: Arc<Sim>, req: Request<Incoming>) -> Result<Resp, ConnectionReset> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let req = ApiRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        cookie: header("cookie"),
        authorization: header("authorization"),
        csrf: header("csrfpreventiontoken"),
        content_type: header("content-type"),
        body: &body,
    };
    match crate::dispatch::handle(&sim, req).await {
        Outcome::Respond {
            status,
            reason,
            content_type,
            body,
        } => Ok(response(status, &reason, content_type, body)),
        Outcome::Padded { body, padding } => {
            let body = PaddedBody::new(sim, body, &padding).boxed();
            Ok(with_body(200, "OK", JSON, body))
        }
        Outcome::Reset => Err(ConnectionReset),
    }
}

/// A JSON envelope with filler spliced in before its closing brace, produced one chunk at a
/// time as hyper writes, so the simulator never holds the filler and stops producing it when
/// the client hangs up.
struct PaddedBody {
    sim: Arc<Sim>,
    /// The envelope up to the filler: `{"data":...,"padding":"`.
    head: Option<Bytes>,
    /// Filler bytes still to send.
    left: u64,
    /// `"}` after the filler.
    tail: Option<Bytes>,
    /// Without `Content-Length`.
    chunked: bool,
}

static FILLER: [u8; 64 * 1024] = [b'x'; 64 * 1024];

impl PaddedBody {
    fn new(sim: Arc<Sim>, envelope: Vec<u8>, rule: &PaddingRule) -> PaddedBody {
        let mut head = envelope;
        head.pop(); // the envelope's closing `}`
        head.extend_from_slice(br#","padding":""#);
        PaddedBody {
            sim,
            head: Some(Bytes::from(head)),
            left: rule.bytes,
            tail: Some(Bytes::from_static(br#""}"#)),
            chunked: rule.chunked,
        }
    }
}

impl Body for PaddedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let next = if let Some(head) = this.head.take() {
            Some(head)
        } else if this.left > 0 {
            let n = this.left.min(FILLER.len() as u64);
            this.left -= n;
            this.sim.padding_sent.fetch_add(n, Ordering::Relaxed);
            Some(Bytes::from_static(&FILLER[..n as usize]))
        } else {
            this.tail.take()
        };
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.left == 0 && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.chunked {
            return SizeHint::default();
        }
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
        SizeHint::with_exact(len(&self.head) + self.left + len(&self.tail))
    }
}

async fn admin_service(sim: Arc<Sim>, req: Request<Incoming>) -> Result<Resp, ConnectionReset> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let (status, value) = crate::admin::handle(
        &sim,
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query(),
        &body,
    );
    Ok(response(
        status,
        "",
        "application/json",
        value.to_string().into_bytes(),
    ))
}

async fn serve_conn<S>(io: S, sim: Arc<Sim>, admin: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let sim = sim.clone();
        async move {
            if admin {
                admin_service(sim, req).await
            } else {
                api_service(sim, req).await
            }
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// Accepts until `stop` flips; TLS when an acceptor is given.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    sim: Arc<Sim>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let _ = tcp.set_nodelay(true);
        let sim = sim.clone();
        let tls = tls.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let conn = async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            serve_conn(stream, sim, false).await;
                        }
                    }
                    None => serve_conn(tcp, sim, true).await,
                }
            };
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}
