//! The three controllers as one set — what a leading replica runs, and what the end-to-end
//! tests start in-process: node polls wake containers, one client cache and one observation
//! store serve all three.

use std::sync::Arc;

use crate::audit::AuditStore;
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
        }
    }

    /// Runs the three controllers until `shutdown` resolves.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
        let (node_tx, node_rx) = tokio::sync::oneshot::channel::<()>();
        let (template_tx, template_rx) = tokio::sync::oneshot::channel::<()>();
        let (container_tx, container_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            shutdown.await;
            let _ = node_tx.send(());
            let _ = template_tx.send(());
            let _ = container_tx.send(());
        });
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
            node_controller::run(node_ctx, async move {
                let _ = node_rx.await;
            }),
            template_controller::run(template_ctx, async move {
                let _ = template_rx.await;
            }),
            containers.run(async move {
                let _ = container_rx.await;
            }),
        );
    }
}
