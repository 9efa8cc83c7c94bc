//! The three controllers as one set — what a leading replica runs, and what the end-to-end
//! tests start in-process: one shared context (caches, clients, observations, audit trail,
//! coordinator, fences) serves all three, and node polls wake containers.

use std::sync::Arc;

use futures::FutureExt;

use crate::audit::AuditStore;
use crate::cluster::clients::ClientCache;
use crate::cluster::fence::Leadership;
use crate::cluster::observations::Observations;
use crate::cluster::sweep::SweepSettings;
use crate::cluster::watches::Watches;
use crate::cluster::{ReconcileMetrics, Shared, Stores};
use crate::controllers::container::{self, ContainerCtx, Provisioner};
use crate::controllers::node::{self, NodeCtx};
use crate::controllers::template::{self, TemplateCtx};
use crate::coordination::Coordinator;
use crate::proxmox::client::Metrics;

/// What the controller set needs.
#[derive(Clone)]
pub struct ControllerSet {
    pub kube: kube::Client,
    /// This replica's identity (Events, audit actor).
    pub identity: Option<String>,
    pub metrics: Option<Arc<dyn Metrics>>,
    pub reconcile_metrics: Option<Arc<dyn ReconcileMetrics>>,
    /// SSH sessions and provisioning steps (the audit store and coordinator carry their own).
    pub observer: crate::observe::Observed,
    pub audit: AuditStore,
    pub coordinator: Coordinator,
    /// Whether this replica may act; checked right before every mutation.
    pub leadership: Leadership,
    /// `LxcContainer`s reconciled at once.
    pub container_concurrency: u16,
    /// How often each container's config is read for drift the polls cannot see, how fast.
    pub drift_sweep: SweepSettings,
    /// Shared with the status page.
    pub observations: Observations,
    pub clients: ClientCache,
    pub provisioner: Option<Arc<dyn Provisioner>>,
    /// How long a DHCP interface of a started container may go without an address.
    pub address_timeout: std::time::Duration,
}

impl ControllerSet {
    /// The set with fresh shared state (leading for as long as it runs).
    pub fn new(kube: kube::Client, audit: AuditStore, coordinator: Coordinator) -> Self {
        Self {
            kube,
            identity: None,
            metrics: None,
            reconcile_metrics: None,
            observer: None,
            audit,
            coordinator,
            leadership: Leadership::always(),
            container_concurrency: 16,
            drift_sweep: SweepSettings::default(),
            observations: Observations::default(),
            clients: ClientCache::default(),
            provisioner: Some(Arc::new(container::ssh::SshProvisioner::default())),
            address_timeout: container::context::DEFAULT_ADDRESS_TIMEOUT,
        }
    }

    /// Runs the three controllers until `shutdown` resolves (running reconciles finish), or
    /// cancels them when the leadership lapses or is revoked: the controllers' future is dropped,
    /// so running reconciles stop at their next await. Dropping the returned future cancels the
    /// same way. A leadership never proven (`Leadership::elected()` before its first renewal)
    /// counts as lapsed: nothing runs.
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
        let watches = Watches::default();
        let nodes = node::reconcile::prepare(&watches.nodes);
        let templates = template::reconcile::prepare(&watches);
        let containers = container::prepare(
            self.kube.clone(),
            self.container_concurrency,
            &watches,
            self.drift_sweep,
        );
        let stores = Stores {
            nodes: nodes.store.clone(),
            templates: templates.store.clone(),
            containers: containers.store.clone(),
        };
        let shared = self.shared(stores);
        let mut container_ctx = ContainerCtx::new(shared.clone());
        container_ctx.address_timeout = self.address_timeout;
        let node_ctx = NodeCtx::new(shared.clone(), Some(containers.wake.clone()));
        let template_ctx = TemplateCtx::new(shared);
        let controllers = async {
            tokio::join!(
                nodes.run(node_ctx, shutdown.clone()),
                templates.run(template_ctx, shutdown.clone()),
                containers.run(container_ctx, self.provisioner.clone(), shutdown),
            )
        };
        // The shared watches run for as long as the controllers do, and no longer.
        tokio::select! {
            _ = controllers => {}
            () = watches.run(self.kube.clone()) => {}
        }
    }

    /// The one context the three controllers share.
    pub fn shared(&self, stores: Stores) -> Shared {
        Shared {
            kube: self.kube.clone(),
            stores,
            clients: self.clients.clone(),
            observations: self.observations.clone(),
            proxmox_metrics: self.metrics.clone(),
            reconcile_metrics: self.reconcile_metrics.clone(),
            observer: self.observer.clone(),
            recorder: Some(crate::status::events::recorder(
                self.kube.clone(),
                self.identity.clone(),
            )),
            audit: self.audit.clone(),
            actor: format!("lxc-operator/{}", self.identity.clone().unwrap_or_default()),
            coordinator: self.coordinator.clone(),
            leadership: self.leadership.clone(),
        }
    }
}
