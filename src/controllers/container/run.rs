//! One reconcile's working state: the status being built, and the helpers every phase uses —
//! conditions, the audited call (through the object's [`Actor`]), Events and the status write
//! that must land before the next Proxmox call.

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use super::context::{ContainerCtx, cache_is_older};
use crate::controllers::act::{ActError, Actor};
use crate::controllers::halt::{Halt, HaltKind};
use crate::coordination::LockGuard;
use crate::crd::container::{LxcContainer, LxcContainerStatus};
use crate::proxmox::{Mutation, ProxmoxClient, Upid};
use crate::status::apply::apply_status_versioned;
use crate::status::conditions::{Desired, is_true, set, types};

/// The per-phase condition types.
pub mod phase {
    pub const RESOLVED: &str = "Resolved";
    pub const PLACED: &str = "Placed";
    pub const VMID_ALLOCATED: &str = "VmidAllocated";
    pub const CREATED: &str = "Created";
    pub const CONFIGURED: &str = "Configured";
    pub const POWERED: &str = "Powered";
    pub const PROVISIONED: &str = "Provisioned";
    pub const DISCOVERED: &str = "Discovered";
}

/// One reconcile's state.
pub struct Run<'a> {
    pub ct: &'a LxcContainer,
    pub ctx: &'a ContainerCtx,
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub generation: Option<i64>,
    /// The status as read (merged with what this process wrote last).
    pub before: LxcContainerStatus,
    /// The status being built.
    pub status: LxcContainerStatus,
    pub now: Timestamp,
    /// The container was Ready for this generation when the reconcile began: whatever the
    /// walk corrects now is drift.
    pub was_ready: bool,
    /// Mutating calls made in this reconcile (for drift Events).
    pub corrected: Vec<String>,
    /// The status last written by this reconcile.
    written: Option<LxcContainerStatus>,
    /// Acts for the container under its lock.
    actor: Actor<'a>,
    /// The container's lock, for work that outlives this reconcile (background provisioning
    /// holds it until it ends; the lock is released by whichever lets go last).
    pub lock_handle: Option<std::sync::Arc<LockGuard>>,
    /// The VMID was allocated in this walk (nothing can be ours on it yet).
    pub fresh_vmid: bool,
    /// The action of the task this walk found finished.
    pub finished: Option<String>,
    /// A task slot claimed at the start of the walk for the task it expects to start (see
    /// [`Run::claim_expected_slot`]); the call that starts a task takes it.
    slot: std::sync::Mutex<Option<crate::proxmox::slots::TaskSlot>>,
}

impl<'a> Run<'a> {
    pub fn new(ct: &'a LxcContainer, ctx: &'a ContainerCtx, lock: Option<&'a LockGuard>) -> Self {
        let uid = ct.metadata.uid.clone().unwrap_or_default();
        let mut status = ct.status.clone().unwrap_or_default();
        if let Some(m) = ctx.remembered(&uid) {
            if let Some((rv, written)) = m.written
                && cache_is_older(ct.metadata.resource_version.as_deref(), &rv)
            {
                status = written;
            }
            status.vmid = m.vmid.or(status.vmid);
            status.node = m.node.or(status.node);
            status.task = m.task;
        }
        let generation = ct.metadata.generation;
        let was_ready = is_true(&status.conditions, types::READY) && status.observed_generation == generation;
        Self {
            ct,
            ctx,
            name: ct.name_any(),
            namespace: ct.namespace().unwrap_or_default(),
            uid,
            generation,
            before: status.clone(),
            status,
            now: Timestamp::now(),
            was_ready,
            corrected: Vec::new(),
            written: None,
            actor: Actor::new(&ctx.shared, ct, lock),
            lock_handle: None,
            fresh_vmid: false,
            finished: None,
            slot: Default::default(),
        }
    }

    /// Marks a phase satisfied.
    pub fn pass(&mut self, condition: &'static str, reason: &str, message: impl Into<String>) {
        set(
            &mut self.status.conditions,
            Desired {
                type_: condition,
                status: true,
                reason,
                message: message.into(),
            },
            self.generation,
            self.now,
        );
    }

    /// Records a halted phase.
    pub fn fail(&mut self, halt: &Halt) {
        set(
            &mut self.status.conditions,
            Desired {
                type_: halt.condition,
                status: false,
                reason: &halt.reason,
                message: halt.message.chars().take(2048).collect(),
            },
            self.generation,
            self.now,
        );
    }

    /// Whether `condition` was true when the reconcile began.
    pub fn was(&self, condition: &str) -> bool {
        is_true(&self.before.conditions, condition)
    }

    /// Acts for this container (audited, fenced).
    pub fn actor(&self) -> &Actor<'a> {
        &self.actor
    }

    /// The fences as a check an SSH target runs before each command.
    pub fn fence(&self) -> crate::provision::Fence {
        let leadership = self.ctx.leadership.clone();
        let lock = self.actor.lock_watch();
        std::sync::Arc::new(move || {
            crate::cluster::fence::check(&leadership, None)
                .and_then(|()| match lock.as_ref().is_some_and(|l| l.lost()) {
                    true => Err(crate::cluster::fence::Fenced::LockLost),
                    false => Ok(()),
                })
                .map_err(|f| f.to_string())
        })
    }

    /// Starts a Proxmox task for this container; a failure halts at `condition`.
    pub async fn act(
        &self,
        client: &ProxmoxClient,
        phase: &str,
        condition: &'static str,
        mutation: Mutation,
    ) -> Result<Upid, Halt> {
        let slot = self.task_slot(client, condition)?;
        let upid = self
            .actor
            .proxmox_task(client, phase, &mutation)
            .await
            .map_err(|e| Halt::acted(condition, &e))?;
        slot.started(&upid.to_string());
        Ok(upid)
    }

    /// Claims the node's task slot up front when the walk's next step is a task a rollout
    /// cannot skip — a create (nothing created yet) or the first start (created, asked to run,
    /// never powered) — so that waiting for a slot (`WaitingForTaskSlot`, all of the node's
    /// slots held by tasks in flight) costs no Proxmox call at all. An unused claim is given
    /// back when the walk ends.
    pub fn claim_expected_slot(&self, client: &ProxmoxClient) -> Result<(), Halt> {
        let kept = self.slot.lock().unwrap_or_else(|p| p.into_inner()).is_some();
        if self.status.task.is_some() || self.finished.is_some() || kept {
            return Ok(());
        }
        let condition = if !self.was(phase::CREATED) {
            phase::CREATED
        } else if !self.was(phase::POWERED)
            && self.ct.spec.power_state == crate::crd::container::PowerState::Running
            && self.before.phase.as_deref() != Some("Ready")
        {
            phase::POWERED
        } else {
            return Ok(());
        };
        let slot = self.claim_task_slot(client, condition)?;
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(slot);
        Ok(())
    }

    /// Right after the container's create (or a restart's shutdown) ended: its start is next,
    /// so it takes the slot the task just gave back, before a waiting create can (a start
    /// finishes a rollout; taking turns with new creates would leave containers created and not
    /// started while all slots create). No slot free: it waits in the queue like anyone.
    pub fn keep_slot_for_start(&self, client: &ProxmoxClient) {
        if self.ct.spec.power_state != crate::crd::container::PowerState::Running {
            return;
        }
        let wake = self.waker();
        if let Some(slot) = client.task_slots().claim_or_wait(&self.uid, wake) {
            *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(slot);
        }
    }

    /// Sends this container's reconcile to the controller (a freed slot's wake-up).
    fn waker(&self) -> crate::proxmox::slots::Waker {
        let target = kube::runtime::reflector::ObjectRef::from_obj(self.ct);
        let wake = self.ctx.wake.clone();
        Box::new(move || {
            if let Some(wake) = wake {
                let _ = wake.send(target);
            }
        })
    }

    /// The slot claimed up front, or one claimed now.
    pub fn task_slot(
        &self,
        client: &ProxmoxClient,
        condition: &'static str,
    ) -> Result<crate::proxmox::slots::TaskSlot, Halt> {
        let claimed = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        match claimed {
            Some(slot) => Ok(slot),
            None => self.claim_task_slot(client, condition),
        }
    }

    /// One of the node's task slots (`maxConcurrentTasks`), or a wait in its queue: the
    /// container is reconciled again as soon as a slot frees (the requeue is only a backstop).
    /// Claimed before the audited call, so a wait leaves no audit row.
    fn claim_task_slot(
        &self,
        client: &ProxmoxClient,
        condition: &'static str,
    ) -> Result<crate::proxmox::slots::TaskSlot, Halt> {
        client
            .task_slots()
            .claim_or_wait(&self.uid, self.waker())
            .ok_or_else(|| {
                let (busy, limit) = client.task_slots().busy();
                Halt::wait(
                    condition,
                    "WaitingForTaskSlot",
                    format!(
                        "the node runs {busy} of this operator's tasks (maxConcurrentTasks {limit}); \
                         waiting for one to end"
                    ),
                    SLOT_WAIT_BACKSTOP,
                )
            })
    }

    /// Makes a synchronous Proxmox change for this container; a failure halts at `condition`.
    pub async fn act_sync(
        &self,
        client: &ProxmoxClient,
        phase: &str,
        condition: &'static str,
        mutation: Mutation,
    ) -> Result<(), Halt> {
        self.actor
            .proxmox(client, phase, &mutation)
            .await
            .map(|_| ())
            .map_err(|e: ActError<_>| Halt::acted(condition, &e))
    }

    /// Publishes an Event about the container (failures to publish are logged only).
    pub async fn event(&self, type_: EventType, reason: &str, action: &str, note: String) {
        let Some(recorder) = &self.ctx.recorder else {
            return;
        };
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1024).collect()),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &self.ct.object_ref(&())).await {
            tracing::warn!(error = %e, "could not publish Event");
        }
    }

    /// The object's status as the API server holds it now (a direct GET, not the cache).
    pub async fn latest_status(&self) -> Result<Option<LxcContainerStatus>, Halt> {
        kube::Api::<LxcContainer>::namespaced(self.ctx.kube.clone(), &self.namespace)
            .get_status(&self.name)
            .await
            .map(|c| c.status)
            .map_err(|e| Halt::kube(types::READY, &e))
    }

    /// Writes the status now (before a call whose result must survive a crash) and remembers
    /// its identity fields.
    pub async fn save(&mut self) -> Result<(), Halt> {
        // Not any one phase's failure: the overall condition says it.
        self.flush().await.map_err(|e| Halt::kube(types::READY, &e))
    }

    /// The Proxmox client of `node` (shared cache); a failure halts at `condition`.
    pub async fn client_for(
        &self,
        node: &crate::crd::ProxmoxNode,
        condition: &'static str,
    ) -> Result<crate::proxmox::ProxmoxClient, Halt> {
        self.ctx
            .clients
            .current(&self.ctx.kube, node, self.ctx.proxmox_metrics.clone())
            .await
            .map_err(|e| Halt::new(condition, e.reason(), e.to_string(), HaltKind::Transient))
    }

    /// Writes the status if it differs from the last one written (or read).
    pub async fn flush(&mut self) -> Result<(), kube::Error> {
        let last = self.written.as_ref().unwrap_or(&self.before);
        if *last != self.status || self.ct.status.is_none() {
            let (last_phase, was_ready) = (last.phase.clone(), is_true(&last.conditions, types::READY));
            let version = write_status(self.ctx, self.ct, &self.status).await?;
            self.written = Some(self.status.clone());
            if let Some(rv) = version {
                let status = self.status.clone();
                self.ctx.remember(&self.uid, |m| m.written = Some((rv, status)));
            }
            self.measure(last_phase, was_ready);
        }
        self.remember();
        Ok(())
    }

    /// Whether the container runs, as the task this walk found finished says (`None`: it does
    /// not say).
    pub fn running_after_task(&self) -> Option<bool> {
        match self.finished.as_deref()? {
            "create" | "stop" | "shutdown" | "restart" => Some(false),
            "start" => Some(true),
            _ => None,
        }
    }

    /// What the last walk saw, when it still serves this one: a rollout still under way (a
    /// Ready container is only reconciled again because something changed: drift, a sweep, a
    /// user's touch, so it reads afresh), and no task but a power task ended since (a create,
    /// resize or migration changes the config).
    pub fn seen(&self, vmid: u32, node: &str) -> Option<super::context::Seen> {
        let config_task = self.finished.is_some() && self.running_after_task().is_none();
        if self.was_ready || config_task || self.finished.as_deref() == Some("create") {
            return None;
        }
        let seen = self.ctx.remembered(&self.uid)?.seen?;
        seen.serves(self.generation, vmid, node).then_some(seen)
    }

    /// Whether the container runs, from its node's last poll, when that poll is at most
    /// `fresh` old and lists it in the power state the spec asks for: then a status read would
    /// only confirm it (and if the listing lags a stop, the next poll wakes the container). A
    /// listing that disagrees is never acted on (it may lag a change by pvestatd's cycle): the
    /// walk reads the container's own status before any power call.
    pub fn listed_as_asked(&self, vmid: u32, fresh: std::time::Duration) -> Option<bool> {
        let node = self.status.node.as_deref()?;
        let running = self.ctx.observations.listed_running(node, vmid, fresh)?;
        let wanted = self.ct.spec.power_state == crate::crd::container::PowerState::Running;
        (running == wanted).then_some(running)
    }

    /// Records (or with `None` forgets) what this walk saw.
    pub fn see(&self, seen: Option<super::context::Seen>) {
        self.ctx.remember(&self.uid, |m| m.seen = seen);
    }

    /// Phase durations and the time to first Ready, after a status write that moved the
    /// container from `last_phase` (Ready or not before: `was_ready`).
    fn measure(&self, last_phase: Option<String>, was_ready: bool) {
        let Some(metrics) = &self.ctx.reconcile_metrics else {
            return;
        };
        if self.status.phase != last_phase
            && let Some(phase) = self.status.phase.clone()
        {
            let now = std::time::Instant::now();
            let mut left = None;
            self.ctx.remember(&self.uid, |m| {
                // Only a phase this process saw begin is measured (not one begun before a restart).
                if let Some((since_phase, since)) = m.phase_since.take()
                    && Some(&since_phase) == last_phase.as_ref()
                {
                    left = Some((since_phase, now - since));
                }
                m.phase_since = Some((phase, now));
            });
            if let Some((phase, spent)) = left {
                metrics.phase_left(&phase, spent.as_secs_f64());
            }
        }
        // First Ready: Ready turns true for a container that never got through discovery before.
        let first = is_true(&self.status.conditions, types::READY)
            && !was_ready
            && !is_true(&self.before.conditions, phase::DISCOVERED);
        if first && let Some(created) = &self.ct.metadata.creation_timestamp {
            let seconds = self.now.duration_since(created.0).as_secs_f64();
            metrics.first_ready(seconds.max(0.0));
        }
    }

    pub fn remember(&self) {
        let (vmid, node, task) = (
            self.status.vmid,
            self.status.node.clone(),
            self.status.task.clone(),
        );
        self.ctx.remember(&self.uid, |m| {
            m.vmid = vmid;
            m.node = node;
            m.task = task;
        });
    }
}

/// Writes `status` with server-side apply; returns the resource version it gave the object.
pub async fn write_status(
    ctx: &ContainerCtx,
    ct: &LxcContainer,
    status: &LxcContainerStatus,
) -> Result<Option<String>, kube::Error> {
    apply_status_versioned(&ctx.kube, ct, status).await
}

/// How long a container waiting for a task slot goes before it asks again if no freed slot
/// woke it (a node's client rebuilt, a wake lost).
const SLOT_WAIT_BACKSTOP: std::time::Duration = std::time::Duration::from_secs(15);
