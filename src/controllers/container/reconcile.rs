//! The `LxcContainer` reconcile driver. It reads like the pipeline:
//! resolve → settle the task in flight → allocate → create → migrate → configure → power →
//! provision → discover, then one status write and the next requeue.

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};

use super::context::ContainerCtx;
use super::provisioner::Provisioner;
use super::run::Run;
use super::{
    ContainerError, FINALIZER, allocate, configure, create, delete, discover, migrate, power, provision,
    resolve, settle,
};
use crate::cluster::drift::{ContainerWake, ReadinessChanges, TemplateChanges};
use crate::cluster::sweep::{ConfigSweep, SweepSettings};
use crate::cluster::watches::Watches;
use crate::controllers::halt::{Halt, HaltKind, backoff};
use crate::controllers::metered::Metered;
use crate::controllers::workers::Workers;
use crate::coordination::container_lock;
use crate::crd::container::{LxcContainer, PowerState};
use crate::crd::node::ProxmoxNode;
use crate::crd::template::LxcTemplate;
use crate::status::conditions::{Outcome, set_kstatus, types};

/// How long a Ready container goes without a look (drift and the config sweep wake it sooner).
const RESYNC: Duration = Duration::from_secs(30 * 60);

/// What the controller reconciles with: the context, and the provisioner the Provision phase
/// hands its steps to (`None` reports provisioning as unavailable).
pub struct Reconciler {
    pub ctx: ContainerCtx,
    pub provisioner: Option<Arc<dyn Provisioner>>,
    /// `--container-concurrency` workers; the rest of the due reconciles queue here.
    pub workers: Workers,
}

/// One reconcile of an `LxcContainer`.
pub async fn reconcile(ct: Arc<LxcContainer>, reconciler: Arc<Reconciler>) -> Result<Action, ContainerError> {
    let (ctx, provisioner) = (&reconciler.ctx, reconciler.provisioner.as_deref());
    let _slot = reconciler.workers.admit().await;
    let mut metered = Metered::start(ctx.reconcile_metrics.clone(), "LxcContainer");
    let result = match ct.metadata.deletion_timestamp {
        Some(_) => {
            // Provisioning still running in the background stops: the container goes.
            if let Some(p) = provisioner {
                p.cancel(ct.metadata.uid.as_deref().unwrap_or_default());
            }
            delete::finalize(&ct, ctx, &mut metered).await
        }
        None => reconcile_live(&ct, ctx, provisioner, &mut metered).await,
    };
    if result.is_err() {
        metered.error("KubernetesError");
    }
    result
}

async fn reconcile_live(
    ct: &LxcContainer,
    ctx: &ContainerCtx,
    provisioner: Option<&dyn Provisioner>,
    metered: &mut Metered,
) -> Result<Action, ContainerError> {
    ensure_finalizer(ct, ctx).await?;
    ctx.stores.ready().await;
    let uid = ct.metadata.uid.clone().unwrap_or_default();
    let lock = match ctx.coordinator.try_lock(&container_lock(&uid)).await {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            metered.halted(&Halt::wait(types::READY, "Locked", "", Duration::from_secs(2)));
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
        Err(e) => {
            // Without the lock nothing may change in Proxmox; say so and retry.
            let halt = Halt::new(
                types::READY,
                "CoordinationUnavailable",
                e.to_string(),
                HaltKind::Transient,
            );
            return finish(Run::new(ct, ctx, None), Err(halt), metered).await;
        }
    };
    let lock = Arc::new(lock);
    let mut run = Run::new(ct, ctx, Some(&lock));
    run.lock_handle = Some(lock.clone());
    let result = walk(&mut run, provisioner).await;
    let action = finish(run, result, metered).await;
    // Background provisioning may still hold the lock: then it releases it when it ends.
    if let Ok(lock) = Arc::try_unwrap(lock)
        && let Err(e) = lock.release().await
    {
        tracing::warn!(error = %e, "could not release the container lock (it expires)");
    }
    action
}

async fn walk(run: &mut Run<'_>, provisioner: Option<&dyn Provisioner>) -> Result<(), Halt> {
    let target = resolve::resolve(run).await?;
    settle::settle(run, &target.client).await?;
    run.claim_expected_slot(&target.client)?;
    let vmid = allocate::allocate(run, &target).await?;
    let desired = create::desired(run, &target, vmid);
    let config = create::create(run, &target, &desired).await?;
    migrate::migrate(run, &target).await?;
    let running = configure::configure(run, &target, &desired, &config).await?;
    let running = power::power(run, &target, vmid, running).await?;
    provision::provision(run, provisioner, &target, vmid, running).await?;
    discover::discover(run, &target, &desired, running).await?;
    provision::observe_services(run, provisioner, &target, vmid, running).await
}

/// What of an `LxcContainer` a user changes: the spec (its generation), deletion, finalizers,
/// labels and annotations — not the status, and not the resource version a status write bumps.
fn user_change(ct: &LxcContainer) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = &ct.metadata;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    Some(hasher.finish())
}

async fn ensure_finalizer(ct: &LxcContainer, ctx: &ContainerCtx) -> Result<(), kube::Error> {
    if ct.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let mut finalizers = ct.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    let patch = serde_json::json!({"metadata": {
        "finalizers": finalizers, "resourceVersion": ct.resource_version()
    }});
    Api::<LxcContainer>::namespaced(ctx.kube.clone(), &ct.namespace().unwrap_or_default())
        .patch(&ct.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// The phase name a halted condition shows.
fn phase_name(condition: &str, kind: &HaltKind) -> &'static str {
    use super::run::phase::*;
    if matches!(kind, HaltKind::Stalled | HaltKind::Failed) {
        return "Failed";
    }
    match condition {
        RESOLVED | PLACED | VMID_ALLOCATED => "Pending",
        CREATED => "Creating",
        CONFIGURED => "Configuring",
        PROVISIONED => "Provisioning",
        _ => "Starting",
    }
}

async fn finish(
    mut run: Run<'_>,
    result: Result<(), Halt>,
    metered: &mut Metered,
) -> Result<Action, ContainerError> {
    let ctx = run.ctx;
    match &result {
        Ok(()) => metered.success(),
        Err(h) => metered.halted(h),
    }
    let (outcome, action, phase) = match &result {
        Ok(()) if !run.status.pending_changes.is_empty() => (
            Outcome::Stalled {
                reason: "RestartRequired",
                message: format!("pending until restart: {}", run.status.pending_changes.join(", ")),
            },
            Action::requeue(RESYNC),
            "Configuring",
        ),
        Ok(()) => {
            let phase = match run.ct.spec.power_state {
                PowerState::Running => "Ready",
                PowerState::Stopped => "Stopped",
            };
            // Declared services are looked at again now and then; the rest waits for drift.
            let next = match run.status.services.is_empty() {
                true => RESYNC,
                false => super::ssh::SERVICE_REFRESH,
            };
            (Outcome::Ready, Action::requeue(next), phase)
        }
        Err(h) if h.kind == HaltKind::Fenced => {
            // This replica may no longer act: it writes nothing, not even status.
            tracing::info!(reason = %h.message, "reconcile stopped: fenced");
            return Ok(h.requeue(0));
        }
        Err(h) => {
            run.fail(h);
            let failures = ctx.count_failure(&run.uid, h.is_failure());
            let outcome = match h.is_stalled() {
                true => Outcome::Stalled {
                    reason: &h.reason,
                    message: h.message.clone(),
                },
                false => Outcome::Progressing {
                    reason: &h.reason,
                    message: h.message.clone(),
                },
            };
            (outcome, h.requeue(failures), phase_name(h.condition, &h.kind))
        }
    };
    if result.is_ok() {
        ctx.count_failure(&run.uid, false);
    }
    let stalled = matches!(outcome, Outcome::Stalled { .. });
    let (generation, now) = (run.generation, run.now);
    set_kstatus(&mut run.status.conditions, outcome, generation, now);
    run.status.phase = Some(phase.to_string());
    run.status.observed_generation = generation;
    publish(&run, stalled).await;
    run.flush().await?;
    Ok(action)
}

/// Reasons a container waits on that a human must act on elsewhere: each gets a Warning
/// Event when it appears, like a stall.
const BLOCKED_WITH_EVENT: &[&str] = &["TemplateNotReady", "NodeDeleting"];

/// Events: Ready reached, a new reason to be stuck, and drift corrected.
async fn publish(run: &Run<'_>, stalled: bool) {
    let before = run.before.conditions.iter().find(|c| c.type_ == types::READY);
    let after = run.status.conditions.iter().find(|c| c.type_ == types::READY);
    if run.was_ready && !run.corrected.is_empty() {
        let note = format!("corrected drift in Proxmox: {}", run.corrected.join(", "));
        run.event(EventType::Normal, "DriftCorrected", "Reconcile", note)
            .await;
    }
    let Some(after) = after else { return };
    let changed = before.is_none_or(|b| b.status != after.status || b.reason != after.reason);
    if !changed {
        return;
    }
    if after.status == "True" {
        run.event(
            EventType::Normal,
            "Ready",
            "Reconcile",
            "the container matches its spec".into(),
        )
        .await;
    } else if stalled || BLOCKED_WITH_EVENT.contains(&after.reason.as_str()) {
        run.event(
            EventType::Warning,
            &after.reason,
            "Reconcile",
            after.message.clone(),
        )
        .await;
    }
}

fn error_policy(_ct: Arc<LxcContainer>, error: &ContainerError, _r: Arc<Reconciler>) -> Action {
    tracing::warn!(%error, "LxcContainer reconcile failed");
    Action::requeue(backoff(3))
}

/// The controller, built but not running, with its cache and the wake-up handle the node
/// controller uses.
pub struct Prepared {
    controller: Controller<LxcContainer>,
    concurrency: u16,
    /// The containers' watch cache.
    pub store: Store<LxcContainer>,
    /// Hand this to the node controller: it wakes containers whose Proxmox state changed.
    pub wake: ContainerWake,
}

/// Builds the controller: containers, plus the nodes and templates they use (a node or
/// template change wakes the containers waiting on it), plus the node polls' wake-ups.
pub fn prepare(kube: kube::Client, concurrency: u16, watches: &Watches, sweep: SweepSettings) -> Prepared {
    // kube's runner gets no limit of its own: `Workers` admits `concurrency` reconciles at a
    // time and counts the rest as the queue.
    let (store, writer) = reflector::store::<LxcContainer>();
    let changes = watcher(Api::<LxcContainer>::all(kube.clone()), watcher::Config::default())
        .default_backoff()
        // Nothing reads who wrote which field; managed fields are most of a small object.
        .modify(|ct| ct.metadata.managed_fields = None)
        .reflect(writer)
        .applied_objects()
        // Only what a user changes starts a reconcile: the operator's own status writes do not
        // (each would walk the pipeline again and re-read Proxmox). Progress comes from the
        // requeue each reconcile returns, drift from the node polls and the config sweep.
        .predicate_filter(user_change, PredicateConfig::default());
    let controller = Controller::for_stream(changes, store.clone());
    let (by_node, by_template) = (store.clone(), store.clone());
    let readiness = ReadinessChanges::default();
    let template_changes = TemplateChanges::default();
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<ObjectRef<LxcContainer>>();
    let woken = futures::stream::unfold(receiver, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let controller = controller
        .watches_shared_stream(watches.nodes.subscribe(), move |node: Arc<ProxmoxNode>| {
            // Only a real change of the node (readiness, spec such as a cordon, deletion)
            // matters, not a probe that refreshed its status: then every container that uses
            // it looks again, Ready or not, and its conditions say what changed.
            if !readiness.changed(&node) {
                return Vec::new();
            }
            let name = node.name_any();
            by_node
                .state()
                .into_iter()
                .filter(|c| {
                    let placed = c.status.as_ref().and_then(|s| s.node.as_deref());
                    placed == Some(name.as_str())
                        || c.spec.node_ref.as_deref() == Some(name.as_str())
                        || (c.spec.node_selector.is_some() && placed.is_none())
                })
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_shared_stream(
            watches.templates.subscribe(),
            move |template: Arc<LxcTemplate>| {
                // Only the containers the update concerns (its spec or content, or the line of
                // their node), not every user at each rewrite of another node's line.
                let change = template_changes.changed(&template);
                let name = template.name_any();
                by_template
                    .state()
                    .into_iter()
                    .filter(|c| {
                        let node = c.status.as_ref().and_then(|s| s.node.as_deref());
                        c.spec.template_ref == name && change.concerns(node)
                    })
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .reconcile_on(woken);
    Prepared {
        controller,
        concurrency,
        wake: ContainerWake {
            containers: store.clone(),
            sender,
            sweep: Arc::new(ConfigSweep::new(sweep)),
        },
        store,
    }
}

impl Prepared {
    /// Runs the controller until it is dropped (cancelling reconciles in flight) or `shutdown`
    /// resolves.
    pub async fn run(
        self,
        mut ctx: ContainerCtx,
        provisioner: Option<Arc<dyn Provisioner>>,
        shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ) {
        ctx.wake = Some(self.wake.sender.clone());
        crate::controllers::drive(
            self.controller,
            reconcile,
            error_policy,
            Reconciler {
                workers: Workers::new(self.concurrency, "LxcContainer", ctx.reconcile_metrics.clone()),
                ctx,
                provisioner,
            },
            shutdown,
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halted_phases_name_where_the_container_is() {
        use super::super::run::phase::*;
        assert_eq!(phase_name(CREATED, &HaltKind::Wait(Duration::ZERO)), "Creating");
        assert_eq!(phase_name(CREATED, &HaltKind::Stalled), "Failed");
        assert_eq!(phase_name(VMID_ALLOCATED, &HaltKind::Blocked), "Pending");
        assert_eq!(phase_name(POWERED, &HaltKind::Transient), "Starting");
    }
}
