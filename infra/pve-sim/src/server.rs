//! The listeners: HTTPS (rustls) for `/api2/json`, plain HTTP for the admin API; HTTP/1.1 with
//! keep-alive via hyper, custom reason phrases, and connection resets for injected faults.

use crate::dispatch::{ApiRequest, Outcome};
use crate::state::Sim;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
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

type Resp = Response<Full<Bytes>>;

pub fn response(status: u16, reason: &str, content_type: &str, body: Vec<u8>) -> Resp {
    let mut res = Response::new(Full::new(Bytes::from(body)));
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
        Outcome::Reset => Err(ConnectionReset),
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
