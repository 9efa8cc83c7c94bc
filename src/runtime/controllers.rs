//! The three controllers as one set — what a leading replica runs, and what the end-to-end
//! tests start in-process: node polls wake containers, one client cache and one observation
//! store serve all three.

use std::sync::Arc;

use futures::FutureExt;

use crate::audit::AuditStore;
use crate::cluster::fence::Leadership;
use crate::controllers::container::ContainerCtx;
use crate::controllers::container::provision::Provisioner;
use crate::controllers::node::connect::ClientCache;
use crate::controllers::node::observe::Observations;
use crate::controllers::node::reconcile::{self as node_controller, NodeCtx};
use crate::controllers::template::reconcile::{self as template_controller, TemplateCtx};
use crate::coordination::Coordinator;
use crate::proxmox::client::Metrics;

/// What the controller set needs.
#[derive(Clone)]
pub struct ControllerSet {
    pub kube: kube::Client,
    /// This replica's identity (Events, audit actor).
    pub identity: Option<String>,
    pub metrics: Option<Arc<dyn Metrics>>,
    pub audit: AuditStore,
    pub coordinator: Coordinator,
    /// `LxcContainer`s reconciled at once.
    pub container_concurrency: u16,
    /// Shared with the status page.
    pub observations: Observations,
    pub clients: ClientCache,
    pub provisioner: Option<Arc<dyn Provisioner>>,
    /// Whether this replica may act; every mutation checks it (`cluster::fence::check`), and
    /// [`run`](Self::run) cancels the controllers when it lapses.
    pub leadership: Leadership,
}

impl ControllerSet {
    /// The set with fresh shared state.
    pub fn new(kube: kube::Client, audit: AuditStore, coordinator: Coordinator) -> Self {
        Self {
            kube,
            identity: None,
            metrics: None,
            audit,
            coordinator,
            container_concurrency: 16,
            observations: Observations::default(),
            clients: ClientCache::default(),
            provisioner: Some(Arc::new(
                crate::controllers::container::ssh::SshProvisioner::default(),
            )),
            leadership: Leadership::always(),
        }
    }

    /// Runs the three controllers until `shutdown` resolves (running reconciles finish), or
    /// cancels them when the leadership lapses (running reconciles stop at their next await).
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
        tokio::select! {
            // Checked first at every wake-up: no reconcile makes a step after the lapse.
            biased;
            () = self.leadership.lapsed() => {
                tracing::warn!("leadership lapsed: controllers cancelled");
            }
            () = self.run_until(shutdown) => {}
        }
    }

    async fn run_until(&self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
        // One shutdown for three controllers, without a task that could outlive them.
        let shutdown = shutdown.boxed().shared();
        let kube = self.kube.clone();
        let recorder = || {
            Some(crate::status::events::recorder(
                kube.clone(),
                self.identity.clone(),
            ))
        };
        let actor = format!("lxc-operator/{}", self.identity.clone().unwrap_or_default());
        let mut container_ctx = ContainerCtx::new(
            kube.clone(),
            self.clients.clone(),
            self.audit.clone(),
            actor.clone(),
            self.coordinator.clone(),
            self.observations.clone(),
        );
        container_ctx.metrics = self.metrics.clone();
        container_ctx.recorder = recorder();
        container_ctx.provisioner = self.provisioner.clone();
        let containers = crate::controllers::container::prepare(container_ctx, self.container_concurrency);
        let node_ctx = NodeCtx {
            kube: kube.clone(),
            observations: self.observations.clone(),
            clients: self.clients.clone(),
            metrics: self.metrics.clone(),
            recorder: recorder(),
            published: Default::default(),
            probed: Default::default(),
            wake: Some(containers.wake.clone()),
        };
        let template_ctx = TemplateCtx {
            kube: kube.clone(),
            metrics: self.metrics.clone(),
            inflight: Default::default(),
            clients: self.clients.clone(),
            audit: self.audit.clone(),
            actor,
            recorder: recorder(),
        };
        tokio::join!(
            node_controller::run(node_ctx, shutdown.clone()),
            template_controller::run(template_ctx, shutdown.clone()),
            containers.run(shutdown),
        );
    }
}
