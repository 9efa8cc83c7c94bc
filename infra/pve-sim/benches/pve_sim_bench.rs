//! Throughput of the simulator on one core (a current-thread runtime runs server and client):
//! GET requests/s over one TLS keep-alive connection, and create → task-done round trips/s
//! with zero task duration. Run: `cargo bench -p pve-sim`.

use pve_sim::{Config, PveSim};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;
use std::time::Instant;

fn client(sim: &PveSim) -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(sim.cert_pem().as_bytes()) {
        roots.add(c.expect("pem")).expect("root");
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .pool_max_idle_per_host(1)
        .build()
        .expect("client")
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let sim = PveSim::start(Config::default_with_nodes(&["pve"])).await?;
        let http = client(&sim);
        let base = sim.api_base();
        let auth = sim.token_header();
        let get = |path: &str| {
            http.get(format!("{base}{path}"))
                .header("Authorization", &auth)
                .send()
        };
        get("/version").await?.error_for_status()?;

        let n = 5000;
        let t = Instant::now();
        for _ in 0..n {
            get("/nodes/pve/status").await?.bytes().await?;
        }
        let gets = n as f64 / t.elapsed().as_secs_f64();

        let m = 1000;
        let t = Instant::now();
        for i in 0..m {
            let vmid = (1000 + i).to_string();
            let r = http
                .post(format!("{base}/nodes/pve/lxc"))
                .header("Authorization", &auth)
                .form(&[
                    ("vmid", vmid.as_str()),
                    (
                        "ostemplate",
                        "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                    ),
                    ("rootfs", "local-lvm:1"),
                ])
                .send()
                .await?
                .json::<serde_json::Value>()
                .await?;
            let upid = r["data"].as_str().unwrap_or_default().to_string();
            let enc: String = form_urlencoded::byte_serialize(upid.as_bytes()).collect();
            let st = get(&format!("/nodes/pve/tasks/{enc}/status"))
                .await?
                .json::<serde_json::Value>()
                .await?;
            anyhow::ensure!(st["data"]["exitstatus"] == "OK", "task failed: {st}");
        }
        let creates = m as f64 / t.elapsed().as_secs_f64();
        println!("GET /nodes/pve/status over TLS keep-alive, one core: {gets:.0} requests/s ({n} requests)");
        println!("create + task status round trips, zero task duration: {creates:.0} /s ({m} containers)");
        Ok(())
    })
}
