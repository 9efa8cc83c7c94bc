//! Task workers: start (a UPID in the real format, injected failures), the locks a task takes
//! (the guest's config lock file, storage allocation locks) and its completion after the
//! configured duration. What each action does to the state is `effects.rs`.

use crate::error::ApiError;
use crate::state::{Holder, Sim, State, now};
use crate::sync::lock;
use crate::tasks::{Action, Task};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A task to start.
pub struct Spec<'a> {
    pub node: &'a str,
    pub kind: &'a str,
    pub id: &'a str,
    pub authid: &'a str,
    /// The config `lock` value held while the task runs.
    pub lock: Option<&'a str>,
    pub action: Action,
    /// Fail with this message instead of applying the action (e.g. a checksum mismatch).
    pub fail: Option<String>,
}

/// How often a waiter looks at a held lock again.
const LOCK_POLL: Duration = Duration::from_millis(10);

/// Waits until `take` succeeds (it runs under the state lock) or `timeout_ms` passes.
pub async fn wait_for(sim: &Sim, timeout_ms: u64, mut take: impl FnMut(&mut State) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        if take(&mut sim.state()) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep((deadline - now).min(LOCK_POLL)).await;
    }
}

/// What a started task still has to do.
struct Plan {
    upid: String,
    vmid: Option<u32>,
    /// The config `lock` to set once the task holds the lock file (None: set already, or none).
    late_lock: Option<String>,
    /// (node, storage) allocation locks a create needs.
    storages: Vec<(String, String)>,
    duration: Duration,
    alloc: Duration,
}

/// Starts a task: registers it as running and returns its UPID. The task takes the guest's
/// config lock file (as PVE's workers do with `lock_config`), then for a create each storage's
/// allocation lock for the allocation step, then runs for its configured duration. A task of
/// zero duration whose locks are free is finished before the UPID is returned.
pub fn start(sim: &Arc<Sim>, st: &mut State, spec: Spec) -> String {
    let Spec {
        node,
        kind,
        id,
        authid,
        lock: lock_value,
        action,
        fail,
    } = spec;
    st.next_pid += 1;
    let pid = st.next_pid;
    let starttime = now();
    let boot = st.nodes.get(node).map_or(starttime, |n| n.boot);
    let pstart = (starttime - boot) * 100;
    let upid = format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{id}:{authid}:");
    let vmid = action.vmid();
    let fail = fail.or_else(|| lock(&sim.faults).take_task_failure(kind, vmid));
    // A create's `lock: create` is written in the API call (`create_and_lock_config`); the
    // other tasks write their lock once they hold the lock file.
    let is_create = matches!(action, Action::Create { .. });
    if is_create && let (Some(l), Some(ct)) = (lock_value, vmid.and_then(|v| st.cts.get_mut(&v))) {
        ct.conf.insert("lock".into(), l.into());
    }
    let storages = match (&action, vmid.and_then(|v| st.cts.get(&v))) {
        (Action::Create { .. }, Some(ct)) => volume_storages(ct, node),
        _ => Vec::new(),
    };
    let duration = sim.cfg.task_duration(kind);
    let alloc = match (storages.is_empty(), sim.cfg.storage_alloc_ms) {
        (true, _) => Duration::ZERO,
        (false, Some(ms)) => Duration::from_millis(ms),
        (false, None) => duration / 4,
    };
    let task = Task {
        upid: upid.clone(),
        node: node.into(),
        pid,
        pstart,
        starttime,
        kind: kind.into(),
        id: id.into(),
        authid: authid.into(),
        running: true,
        exitstatus: None,
        log: Vec::new(),
        action,
        fail,
        lock: if is_create {
            lock_value.map(str::to_string)
        } else {
            None
        },
    };
    st.tasks.insert(upid.clone(), task);
    let now_running = st.tasks.values().filter(|t| t.running && t.node == node).count();
    let peak = st.peak_tasks.entry(node.to_string()).or_default();
    *peak = (*peak).max(now_running);
    let plan = Plan {
        upid: upid.clone(),
        vmid,
        late_lock: if is_create {
            None
        } else {
            lock_value.map(str::to_string)
        },
        storages,
        duration,
        alloc,
    };
    if duration.is_zero() && alloc.is_zero() && take_all_now(st, &plan) {
        finish(sim, st, &upid);
    } else {
        tokio::spawn(run(sim.clone(), plan));
    }
    upid
}

/// The (node, storage) pairs of a container's volumes (`rootfs`, `mp[n]`).
fn volume_storages(ct: &crate::state::Ct, node: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = ct
        .conf
        .iter()
        .filter(|(k, _)| *k == "rootfs" || k.starts_with("mp"))
        .filter_map(|(_, v)| v.split(',').next()?.split_once(':'))
        .filter(|(storage, _)| !storage.starts_with('/'))
        .map(|(storage, _)| (node.to_string(), storage.to_string()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Takes every lock the task needs if all are free now; takes none otherwise.
fn take_all_now(st: &mut State, plan: &Plan) -> bool {
    let holder = Holder::Task(plan.upid.clone());
    if let Some(vmid) = plan.vmid
        && !st.take_flock(vmid, &holder)
    {
        return false;
    }
    for key in &plan.storages {
        if !st.take_storage_lock(key, &plan.upid) {
            st.release_storage_locks(&plan.upid);
            if let Some(vmid) = plan.vmid {
                st.release_flock(vmid, &holder);
            }
            return false;
        }
    }
    if let Some(vmid) = plan.vmid {
        set_late_lock(st, plan, vmid);
    }
    true
}

fn set_late_lock(st: &mut State, plan: &Plan, vmid: u32) {
    let Some(l) = &plan.late_lock else { return };
    if let Some(ct) = st.cts.get_mut(&vmid) {
        ct.conf.insert("lock".into(), l.clone());
    }
    if let Some(t) = st.tasks.get_mut(&plan.upid) {
        t.lock = Some(l.clone());
    }
}

async fn run(sim: Arc<Sim>, plan: Plan) {
    let holder = Holder::Task(plan.upid.clone());
    if let Some(vmid) = plan.vmid {
        if !wait_for(&sim, sim.cfg.config_lock_timeout_ms, |st| {
            st.take_flock(vmid, &holder)
        })
        .await
        {
            return fail(&sim, &plan.upid, ApiError::flock_timeout(vmid));
        }
        set_late_lock(&mut sim.state(), &plan, vmid);
    }
    if !plan.storages.is_empty() {
        for key in &plan.storages {
            let timeout = sim.cfg.storage_lock_timeout_ms;
            if !wait_for(&sim, timeout, |st| st.take_storage_lock(key, &plan.upid)).await {
                let shared = sim.cfg.storages.iter().any(|s| s.id == key.1 && s.shared);
                let err = storage_lock_timeout(&key.1, shared);
                let vmid = plan.vmid.unwrap_or_default();
                return fail(&sim, &plan.upid, format!("unable to create CT {vmid} - {err}"));
            }
        }
        tokio::time::sleep(plan.alloc).await;
        sim.state().release_storage_locks(&plan.upid);
    }
    tokio::time::sleep(plan.duration.saturating_sub(plan.alloc)).await;
    finish(&sim, &mut sim.state(), &plan.upid);
}

/// PVE's message when a storage's allocation lock is not free in time: a local lock file
/// (`PVE::Storage::Plugin::cluster_lock_storage`), or pmxcfs's lock for a shared storage.
pub fn storage_lock_timeout(storage: &str, shared: bool) -> String {
    if shared {
        format!("cfs-lock 'storage-{storage}' error: got lock request timeout")
    } else {
        format!("can't lock file '/var/lock/pve-manager/pve-storage-{storage}' - got timeout")
    }
}

/// Ends a task with an error before its action ran.
fn fail(sim: &Sim, upid: &str, msg: String) {
    let mut st = sim.state();
    if let Some(t) = st.tasks.get_mut(upid) {
        t.fail = Some(msg);
    }
    finish(sim, &mut st, upid);
}

fn finish(sim: &Sim, st: &mut State, upid: &str) {
    let Some(task) = st.tasks.get(upid).cloned() else {
        return;
    };
    let result = match &task.fail {
        Some(msg) => Err(msg.clone()),
        None => crate::effects::apply(sim, st, &task.action),
    };
    st.release_storage_locks(upid);
    if let Some(vmid) = task.action.vmid() {
        st.release_flock(vmid, &Holder::Task(upid.to_string()));
        if let Some(ct) = st.cts.get_mut(&vmid) {
            if task.lock.is_some() && ct.lock() == task.lock.as_deref() {
                ct.conf.remove("lock");
            }
            if result.is_ok() && changes_status(&task.action) {
                ct.status_changed(sim.cfg.stats_delay());
            }
        }
        if result.is_err() && matches!(task.action, Action::Create { .. }) {
            // A failed create removes what it allocated, like PVE's cleanup.
            crate::effects::remove_ct(sim, st, vmid);
        }
    }
    let t = st.tasks.get_mut(upid).expect("task present");
    t.running = false;
    match result {
        Ok(lines) => {
            t.log.extend(lines);
            t.log.push("TASK OK".into());
            t.exitstatus = Some("OK".into());
        }
        Err(msg) => {
            let msg = msg.trim_end().to_string();
            t.log.push(format!("TASK ERROR: {msg}"));
            t.exitstatus = Some(msg.replace('\n', " "));
        }
    }
}

/// Whether the action changes what pvestatd reports (status or node).
fn changes_status(action: &Action) -> bool {
    matches!(
        action,
        Action::Create { start: true, .. }
            | Action::Start { .. }
            | Action::Stop { .. }
            | Action::Migrate { .. }
            | Action::Rollback { .. }
    )
}
