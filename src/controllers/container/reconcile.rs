//! The `LxcContainer` reconcile driver. It reads like the pipeline:
//! resolve → settle the task in flight → allocate → create → migrate → configure → power →
//! provision → discover, then one status write and the next requeue.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use super::context::ContainerCtx;
use super::run::{Halt, HaltKind, Run};
use super::{allocate, create, delete, discover, locate, power, provision, settle, tune};
use crate::controllers::node::reconcile::ContainerWake;
use crate::coordination::container_lock;
use crate::crd::container::{LxcContainer, PowerState};
use crate::crd::node::ProxmoxNode;
use crate::crd::template::LxcTemplate;
use crate::status::conditions::{Outcome, is_true, set_kstatus, types};

/// The finalizer that keeps an `LxcContainer` until its Proxmox container is handled.
pub const FINALIZER: &str = "lxc.infrahaus.dev/container";

/// How long a Ready container goes without a look (drift wakes it sooner).
const RESYNC: Duration = Duration::from_secs(30 * 60);

/// Errors that end a reconcile before its status could be written.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Coordination(#[from] crate::coordination::Unavailable),
}

/// One reconcile of an `LxcContainer`.
pub async fn reconcile(ct: Arc<LxcContainer>, ctx: Arc<ContainerCtx>) -> Result<Action, ContainerError> {
    if ct.metadata.deletion_timestamp.is_some() {
        return delete::finalize(&ct, &ctx).await;
    }
    ensure_finalizer(&ct, &ctx).await?;
    let uid = ct.metadata.uid.clone().unwrap_or_default();
    let mut run = Run::new(&ct, &ctx);
    let lock = match ctx.coordinator.try_lock(&container_lock(&uid)).await {
        Ok(Some(lock)) => lock,
        Ok(None) => return Ok(Action::requeue(Duration::from_secs(2))),
        Err(e) => {
            // Without the lock nothing may change in Proxmox; say so and retry.
            let halt = Halt::new(
                types::READY,
                "CoordinationUnavailable",
                e.to_string(),
                HaltKind::Transient,
            );
            return finish(run, Err(halt)).await;
        }
    };
    let result = walk(&mut run).await;
    if let Err(e) = lock.release().await {
        tracing::warn!(error = %e, "could not release the container lock (it expires)");
    }
    finish(run, result).await
}

async fn walk(run: &mut Run<'_>) -> Result<(), Halt> {
    let target = locate::resolve(run).await?;
    settle::settle(run, &target.client).await?;
    let vmid = allocate::allocate(run, &target).await?;
    let desired = create::desired(run, &target, vmid);
    let config = create::create(run, &target, &desired).await?;
    locate::migrate(run, &target).await?;
    let running = tune::configure(run, &target, &desired, &config).await?;
    let running = power::power(run, &target, vmid, running).await?;
    provision::provision(run, &target, vmid, running).await?;
    discover::discover(run, &target, &desired, running).await?;
    provision::observe_services(run, &target, vmid, running).await
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

/// The delay before the next attempt after `failures` failures in a row (1 s doubling to 5 min,
/// ±20 % jitter).
pub fn backoff(failures: u32) -> Duration {
    let base = 2f64.powi(failures.saturating_sub(1).min(9) as i32).min(300.0);
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    Duration::from_secs_f64(base * jitter)
}

async fn finish(mut run: Run<'_>, result: Result<(), Halt>) -> Result<Action, ContainerError> {
    let ctx = run.ctx;
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
        Err(h) => {
            run.fail(h);
            let failures = {
                let mut map = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
                let n = map.entry(run.uid.clone()).or_default();
                if matches!(h.kind, HaltKind::Transient | HaltKind::Failed) {
                    *n += 1;
                } else {
                    *n = 0;
                }
                *n
            };
            let action = match h.kind {
                HaltKind::Wait(d) => Action::requeue(d),
                HaltKind::Blocked => Action::requeue(Duration::from_secs(300)),
                HaltKind::Stalled => Action::requeue(Duration::from_secs(600)),
                HaltKind::Transient => Action::requeue(backoff(failures)),
                HaltKind::Failed => Action::requeue(Duration::from_secs((30 * u64::from(failures)).min(300))),
            };
            let outcome = match h.kind {
                HaltKind::Stalled | HaltKind::Failed => Outcome::Stalled {
                    reason: &h.reason,
                    message: h.message.clone(),
                },
                _ => Outcome::Progressing {
                    reason: &h.reason,
                    message: h.message.clone(),
                },
            };
            (outcome, action, phase_name(h.condition, &h.kind))
        }
    };
    if result.is_ok() {
        ctx.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&run.uid);
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
    } else if stalled {
        run.event(
            EventType::Warning,
            &after.reason,
            "Reconcile",
            after.message.clone(),
        )
        .await;
    }
}

fn error_policy(_ct: Arc<LxcContainer>, error: &ContainerError, _ctx: Arc<ContainerCtx>) -> Action {
    tracing::warn!(%error, "LxcContainer reconcile failed");
    Action::requeue(backoff(3))
}

/// The controller, built but not running, and the wake-up handle the node controller uses.
pub struct Prepared {
    controller: Controller<LxcContainer>,
    ctx: Arc<ContainerCtx>,
    /// Hand this to the node controller: it wakes containers whose Proxmox state changed.
    pub wake: ContainerWake,
}

/// Builds the controller: containers, plus the nodes and templates they use (a node or
/// template change wakes the containers waiting on it), plus the node polls' wake-ups.
pub fn prepare(ctx: ContainerCtx, concurrency: u16) -> Prepared {
    let kube = ctx.kube.clone();
    let controller = Controller::new(Api::<LxcContainer>::all(kube.clone()), watcher::Config::default())
        .with_config(Config::default().concurrency(concurrency));
    let store = controller.store();
    let (by_node, by_template) = (store.clone(), store.clone());
    let readiness = crate::controllers::node::observe::ReadinessChanges::default();
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<ObjectRef<LxcContainer>>();
    let woken = futures::stream::unfold(receiver, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let controller = controller
        .watches(
            Api::<ProxmoxNode>::all(kube.clone()),
            watcher::Config::default(),
            move |node: ProxmoxNode| {
                // Only a change of the node's readiness (or spec) matters, and only to containers
                // not Ready: Ready ones hear of their own changes from the poll, so a poll costs
                // no reconcile per container.
                if !readiness.changed(&node) {
                    return Vec::new();
                }
                let name = node.name_any();
                by_node
                    .state()
                    .into_iter()
                    .filter(|c| {
                        let s = c.status.as_ref();
                        let uses = s.and_then(|s| s.node.as_deref()) == Some(name.as_str())
                            || c.spec.node_ref.as_deref() == Some(name.as_str())
                            || (c.spec.node_selector.is_some() && s.and_then(|s| s.node.as_ref()).is_none());
                        uses && !s.is_some_and(|s| is_true(&s.conditions, types::READY))
                    })
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .watches(
            Api::<LxcTemplate>::all(kube),
            watcher::Config::default(),
            move |template: LxcTemplate| {
                let name = template.name_any();
                by_template
                    .state()
                    .into_iter()
                    .filter(|c| c.spec.template_ref == name)
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .reconcile_on(woken);
    Prepared {
        controller,
        ctx: Arc::new(ctx),
        wake: ContainerWake {
            containers: store,
            sender,
        },
    }
}

impl Prepared {
    /// Runs the controller until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
        self.controller
            .graceful_shutdown_on(shutdown)
            .run(reconcile, error_policy, self.ctx)
            .for_each(|_| async {})
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let secs = |n| backoff(n).as_secs_f64();
        assert!((0.8..=1.2).contains(&secs(1)));
        assert!((3.2..=4.8).contains(&secs(3)));
        assert!(secs(30) <= 360.0 && secs(30) >= 240.0);
    }

    #[test]
    fn halted_phases_name_where_the_container_is() {
        use super::super::run::phase::*;
        assert_eq!(phase_name(CREATED, &HaltKind::Wait(Duration::ZERO)), "Creating");
        assert_eq!(phase_name(CREATED, &HaltKind::Stalled), "Failed");
        assert_eq!(phase_name(VMID_ALLOCATED, &HaltKind::Blocked), "Pending");
        assert_eq!(phase_name(POWERED, &HaltKind::Transient), "Starting");
    }
}
