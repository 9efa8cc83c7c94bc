//! Task workers: start (a UPID in the real format, injected failures), completion after the
//! configured duration, and the effects each action has on the state when it succeeds.

use crate::ctroot;
use crate::state::{Sim, State, Volume, now};
use crate::sync::lock;
use crate::tasks::{Action, Task};
use std::collections::BTreeMap;
use std::sync::Arc;

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

/// Starts a task: registers it as running, sets `lock` on the CT if given, and finishes it now
/// (zero duration) or after its configured duration. Returns the UPID.
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
    if let Some(ct) = vmid.and_then(|v| st.cts.get_mut(&v)) {
        ct.busy = Some(upid.clone());
        if let Some(l) = lock_value {
            ct.conf.insert("lock".into(), l.into());
        }
    }
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
        lock: lock_value.map(str::to_string),
    };
    st.tasks.insert(upid.clone(), task);
    let duration = sim.cfg.task_duration(kind);
    if duration.is_zero() {
        finish(sim, st, &upid);
    } else {
        let sim = sim.clone();
        let upid = upid.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            finish(&sim, &mut sim.state(), &upid);
        });
    }
    upid
}

fn finish(sim: &Sim, st: &mut State, upid: &str) {
    let Some(task) = st.tasks.get(upid).cloned() else {
        return;
    };
    let result = match &task.fail {
        Some(msg) => Err(msg.clone()),
        None => apply(sim, st, &task.action),
    };
    if let Some(vmid) = task.action.vmid() {
        if let Some(ct) = st.cts.get_mut(&vmid) {
            if ct.busy.as_deref() == Some(upid) {
                ct.busy = None;
            }
            if task.lock.is_some() && ct.lock() == task.lock.as_deref() {
                ct.conf.remove("lock");
            }
        }
        if result.is_err() && matches!(task.action, Action::Create { .. }) {
            // A failed create removes what it allocated, like PVE's cleanup.
            remove_ct(sim, st, vmid);
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

fn remove_ct(sim: &Sim, st: &mut State, vmid: u32) {
    if let Some(ct) = st.cts.remove(&vmid) {
        for vols in st.volumes.values_mut() {
            vols.retain(|v| v.vmid != Some(vmid));
        }
        ctroot::remove(&sim.cfg, ct.vmid);
    }
}

fn apply(sim: &Sim, st: &mut State, action: &Action) -> Result<Vec<String>, String> {
    let t = now();
    match action {
        Action::Create { vmid, start } => {
            let ct = st.cts.get_mut(vmid).ok_or("container vanished")?;
            let mut log = vec![format!(
                "extracting archive '{}'",
                ct.conf.get("ostemplate").cloned().unwrap_or_default()
            )];
            ct.conf.remove("ostemplate");
            ctroot::create(&sim.cfg, *vmid, &ct.conf)
                .map_err(|e| format!("unable to create CT {vmid} - {e}"))?;
            log.push("Total bytes read: 524288000 (500MiB, 125MiB/s)".into());
            if *start {
                ct.running = true;
                ct.started_at = t;
                log.push(format!("starting CT {vmid}"));
            }
            Ok(log)
        }
        Action::Start { vmid } => {
            let ct = st.cts.get_mut(vmid).ok_or("container vanished")?;
            if ct.conf.get("template").is_some_and(|v| v == "1") {
                return Err("you can't start a CT if it's a template".into());
            }
            ct.running = true;
            ct.started_at = t;
            Ok(vec![])
        }
        Action::Stop { vmid } => {
            let ct = st.cts.get_mut(vmid).ok_or("container vanished")?;
            ct.running = false;
            Ok(vec![])
        }
        Action::Reboot { vmid } => {
            let ct = st.cts.get_mut(vmid).ok_or("container vanished")?;
            ct.started_at = t;
            Ok(vec![])
        }
        Action::Destroy { vmid } => {
            remove_ct(sim, st, *vmid);
            Ok(vec![format!(
                "  Logical volume \"vm-{vmid}-disk-0\" successfully removed."
            )])
        }
        Action::Resize { vmid, disk, bytes } => {
            let ct = st.cts.get_mut(vmid).ok_or("container vanished")?;
            let value = ct
                .conf
                .get(disk)
                .cloned()
                .ok_or_else(|| format!("no such disk '{disk}'"))?;
            let size = crate::state::format_size(*bytes);
            let mut parts: Vec<String> = value
                .split(',')
                .filter(|p| !p.starts_with("size="))
                .map(String::from)
                .collect();
            parts.push(format!("size={size}"));
            ct.conf.insert(disk.clone(), parts.join(","));
            Ok(vec![format!(
                "  Size of logical volume pve/vm-{vmid}-disk-0 changed to {size}."
            )])
        }
        Action::Migrate {
            vmid,
            target,
            restart,
        } => {
            let ct = st.cts.get_mut(vmid).ok_or("container vanished")?;
            let from = std::mem::replace(&mut ct.node, target.clone());
            if *restart && ct.running {
                ct.started_at = t;
            }
            let moved: Vec<((String, String), Vec<Volume>)> = st
                .volumes
                .iter_mut()
                .filter(|((n, _), _)| *n == from)
                .map(|(k, vols)| {
                    let (taken, kept): (Vec<Volume>, Vec<Volume>) =
                        vols.drain(..).partition(|v| v.vmid == Some(*vmid));
                    *vols = kept;
                    ((target.clone(), k.1.clone()), taken)
                })
                .collect();
            for (k, vols) in moved {
                st.volumes.entry(k).or_default().extend(vols);
            }
            Ok(vec![format!(
                "migration finished successfully (duration 00:00:01)"
            )])
        }
        Action::Snapshot {
            vmid,
            name,
            description,
        } => {
            let ct = st.cts.get_mut(vmid).ok_or("container vanished")?;
            let parent = ct.conf.get("parent").cloned();
            let mut conf: BTreeMap<String, String> = ct.conf.clone();
            conf.remove("lock");
            ct.snapshots.push(crate::state::Snapshot {
                name: name.clone(),
                description: description.clone(),
                parent,
                snaptime: t,
                conf,
            });
            ct.conf.insert("parent".into(), name.clone());
            Ok(vec![])
        }
        Action::DeleteSnapshot { vmid, name } => {
            let ct = st.cts.get_mut(vmid).ok_or("container vanished")?;
            let removed_parent = ct
                .snapshots
                .iter()
                .find(|s| &s.name == name)
                .and_then(|s| s.parent.clone());
            ct.snapshots.retain(|s| &s.name != name);
            for s in &mut ct.snapshots {
                if s.parent.as_deref() == Some(name) {
                    s.parent = removed_parent.clone();
                }
            }
            if ct.conf.get("parent") == Some(name) {
                match &removed_parent {
                    Some(p) => ct.conf.insert("parent".into(), p.clone()),
                    None => ct.conf.remove("parent"),
                };
            }
            Ok(vec![])
        }
        Action::Rollback { vmid, name, start } => {
            let ct = st.cts.get_mut(vmid).ok_or("container vanished")?;
            let snap = ct
                .snapshots
                .iter()
                .find(|s| &s.name == name)
                .ok_or("snapshot vanished")?;
            let mut conf = snap.conf.clone();
            conf.insert("parent".into(), name.clone());
            conf.insert("lock".into(), "rollback".into());
            ct.conf = conf;
            ct.running = *start;
            if *start {
                ct.started_at = t;
            }
            Ok(vec![])
        }
        Action::Download {
            node,
            storage,
            volid,
            size,
        } => {
            let vols = st.volumes.entry((node.clone(), storage.clone())).or_default();
            vols.retain(|v| v.volid != *volid);
            vols.push(Volume::template(volid, *size, t));
            Ok(vec![
                format!("downloaded {size} bytes"),
                format!("successfully created '{volid}'"),
            ])
        }
    }
}
