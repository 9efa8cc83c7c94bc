//! Test helpers: an HTTPS client pinned to the simulator's certificate (reqwest for API calls,
//! a raw TLS client for status lines), and task polling.
#![allow(dead_code)]

use pve_sim::{Config, PveSim};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn tls_config(sim: &PveSim) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(sim.cert_pem().as_bytes()) {
        roots.add(c.expect("pem")).expect("root");
    }
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// How a client authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Token(String),
    Ticket { ticket: String, csrf: Option<String> },
}

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub auth: Auth,
}

/// (status, body as JSON or Null when not JSON, raw body text)
pub type Answer = (u16, Value, String);

impl Client {
    pub fn new(sim: &PveSim, auth: Auth) -> Client {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config(sim))
            .build()
            .expect("client");
        Client {
            http,
            base: sim.api_base(),
            auth,
        }
    }

    pub fn token(sim: &PveSim) -> Client {
        Client::new(sim, Auth::Token(sim.token_header()))
    }

    pub async fn root(sim: &PveSim) -> Client {
        let c = Client::new(sim, Auth::None);
        let (s, v, _) = c
            .call(
                "POST",
                "/access/ticket",
                &[("username", sim.username()), ("password", sim.password())],
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let data = &v["data"];
        Client::new(
            sim,
            Auth::Ticket {
                ticket: data["ticket"].as_str().unwrap().into(),
                csrf: Some(data["CSRFPreventionToken"].as_str().unwrap().into()),
            },
        )
    }

    fn builder(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut b = self.http.request(m, format!("{}{path}", self.base));
        match &self.auth {
            Auth::None => {}
            Auth::Token(h) => b = b.header("Authorization", h),
            Auth::Ticket { ticket, csrf } => {
                b = b.header("Cookie", format!("PVEAuthCookie={ticket}"));
                if let Some(c) = csrf {
                    b = b.header("CSRFPreventionToken", c);
                }
            }
        }
        b
    }

    /// Params go in the query for GET/DELETE and in a form body otherwise.
    pub async fn call(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Answer {
        let b = self.builder(method, path);
        let b = if matches!(method, "GET" | "DELETE") {
            b.query(params)
        } else {
            b.form(params)
        };
        answer(b.send().await.expect("request")).await
    }

    pub async fn call_json(&self, method: &str, path: &str, body: &Value) -> Answer {
        answer(
            self.builder(method, path)
                .json(body)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn try_call(&self, method: &str, path: &str) -> Result<Answer, reqwest::Error> {
        Ok(answer(self.builder(method, path).send().await?).await)
    }

    pub async fn get_ok(&self, path: &str) -> Value {
        let (s, v, t) = self.call("GET", path, &[]).await;
        assert_eq!(s, 200, "GET {path}: {t}");
        v["data"].clone()
    }

    /// Runs a task-returning call and waits for the task; returns (upid, exitstatus).
    pub async fn task(&self, method: &str, path: &str, params: &[(&str, &str)]) -> (String, String) {
        let (s, v, t) = self.call(method, path, params).await;
        assert_eq!(s, 200, "{method} {path}: {t}");
        let upid = v["data"].as_str().expect("upid").to_string();
        let status = self.wait(&upid).await;
        (upid, status)
    }

    pub async fn wait(&self, upid: &str) -> String {
        let node = upid.split(':').nth(1).unwrap();
        for _ in 0..200 {
            let st = self
                .get_ok(&format!("/nodes/{node}/tasks/{}/status", enc(upid)))
                .await;
            if st["status"] == "stopped" {
                return st["exitstatus"].as_str().unwrap().to_string();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("task {upid} did not finish");
    }
}

pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), text)
}

/// A raw HTTP/1.1 request over TLS; returns the status line and the body.
pub async fn raw(sim: &PveSim, request: &str) -> (String, String) {
    let addr = sim.url().trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(sim)));
    let mut tls = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("tls");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status_line = text.lines().next().unwrap_or_default().to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status_line, body)
}

pub async fn start(nodes: &[&str]) -> PveSim {
    PveSim::start(Config::default_with_nodes(nodes))
        .await
        .expect("sim starts")
}

pub const TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

/// Creates a container with the token and waits for the task.
pub async fn create_ct(c: &Client, node: &str, vmid: &str, extra: &[(&str, &str)]) {
    let mut p = vec![
        ("vmid", vmid),
        ("ostemplate", TEMPLATE),
        ("rootfs", "local-lvm:8"),
    ];
    p.extend_from_slice(extra);
    let (_, status) = c.task("POST", &format!("/nodes/{node}/lxc"), &p).await;
    assert_eq!(status, "OK");
}

/// A plain-HTTP client for the admin API.
pub fn plain() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub async fn admin_get(url: String) -> reqwest::Response {
    plain().get(url).send().await.expect("admin request")
}
