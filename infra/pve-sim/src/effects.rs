//! What each task's action does to the state when the task succeeds (`worker.rs` decides
//! when).

use crate::ctroot;
use crate::state::{Sim, State, Volume, now};
use crate::tasks::Action;
use std::collections::BTreeMap;

/// Removes a container and its volumes (destroy, or a failed create's cleanup).
pub fn remove_ct(sim: &Sim, st: &mut State, vmid: u32) {
    if let Some(ct) = st.cts.remove(&vmid) {
        for vols in st.volumes.values_mut() {
            vols.retain(|v| v.vmid != Some(vmid));
        }
        ctroot::remove(&sim.cfg, ct.vmid);
    }
}

pub fn apply(sim: &Sim, st: &mut State, action: &Action) -> Result<Vec<String>, String> {
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
        Action::Destroy { vmid, force } => {
            // Checked again once the task holds the lock (`destroy_vm`'s `$code`): the
            // container may have been started while the task waited.
            let running = st.cts.get(vmid).is_some_and(|ct| ct.running);
            if running && !force {
                return Err(format!("unable to destroy CT {vmid} - container is running"));
            }
            remove_ct(sim, st, *vmid);
            let mut log = Vec::new();
            if running {
                log.push(format!("forced to stop CT {vmid} before destroying!"));
            }
            log.push(format!(
                "  Logical volume \"vm-{vmid}-disk-0\" successfully removed."
            ));
            Ok(log)
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
