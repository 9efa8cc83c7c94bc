//! A control plane of one test's own (etcd + kube-apiserver, CRDs installed) whose API server the
//! test may stop and start again on the same port, with etcd and its data left running: what a
//! control-plane upgrade or a crashed API server looks like to its clients.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::block_on_fresh;
use crate::control_plane::{ControlPlane, launch, spawn_api_server, wait_api_server_ready};
use crate::process::port_open;

/// A private control plane; its processes stop when it is dropped (and, like every server of
/// the test world, when the test binary ends).
pub struct PrivateControlPlane {
    control_plane: ControlPlane,
    dir: PathBuf,
    etcd_port: u16,
    api_port: u16,
    api_server: Option<Child>,
    starts: u32,
}

impl PrivateControlPlane {
    /// Starts etcd and kube-apiserver and installs the CRDs (blocks; callable from any runtime).
    pub fn start() -> anyhow::Result<Self> {
        let launched = block_on_fresh(launch())?;
        Ok(Self {
            control_plane: launched.control_plane,
            dir: launched.dir,
            etcd_port: launched.etcd_port,
            api_port: launched.api_port,
            api_server: Some(launched.api_server),
            starts: 1,
        })
    }

    /// The kubeconfig, URL and clients of this control plane.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    /// Stops the API server (SIGTERM, as a restart would; SIGKILL after 10 s) and waits until
    /// its port is closed.
    pub fn stop_api_server(&mut self) -> anyhow::Result<()> {
        let Some(mut api) = self.api_server.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(api.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while api.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = api.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        api.wait()?;
        while port_open(self.api_port) && Instant::now() < deadline + Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Starts the API server again on the same port, certificates and etcd, and waits until it
    /// is ready (blocks). Its log is `kube-apiserver-<n>.log` beside the first one.
    pub fn start_api_server(&mut self) -> anyhow::Result<()> {
        if self.api_server.is_some() {
            return Ok(());
        }
        self.starts += 1;
        let name = format!("kube-apiserver-{}", self.starts);
        let log = self.dir.join(format!("{name}.log"));
        let mut api = spawn_api_server(
            &self.control_plane.binaries,
            &self.dir,
            self.etcd_port,
            self.api_port,
            &name,
        )?;
        let cp = self.control_plane.clone();
        let port = self.api_port;
        let api = block_on_fresh(async move {
            wait_api_server_ready(&cp, &mut api, &log, port).await?;
            Ok(api)
        })?;
        self.api_server = Some(api);
        Ok(())
    }

    /// [`stop_api_server`](Self::stop_api_server), then
    /// [`start_api_server`](Self::start_api_server).
    pub fn restart_api_server(&mut self) -> anyhow::Result<()> {
        self.stop_api_server()?;
        self.start_api_server()
    }
}

impl Drop for PrivateControlPlane {
    fn drop(&mut self) {
        if let Some(mut api) = self.api_server.take() {
            let _ = api.kill();
            let _ = api.wait();
        }
    }
}
