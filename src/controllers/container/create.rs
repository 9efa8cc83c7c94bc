//! Create: look before acting. The VMID's config tells whether the container exists and whose
//! it is — ours is adopted (a retry after a crash never makes a second one), anyone else's is
//! a `Conflict` and is not touched — and only a VMID free in the whole cluster is created,
//! with the task's UPID stored so the next reconcile waits on it.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::api::Api;
use kube::runtime::events::EventType;

use super::run::{Run, phase};
use super::target::Target;
use crate::controllers::act::ActError;
use crate::controllers::halt::{Halt, HaltKind};
use crate::crd::common::SecretKeyRef;
use crate::crd::container::TaskRef;
use crate::pipeline::desired::{DesiredContainer, Subject, desired_container};
use crate::pipeline::ownership::{Owner, owner};
use crate::proxmox::auth::Secret;
use crate::proxmox::types::LxcConfig;
use crate::proxmox::{ErrorClass, Mutation};

/// The Proxmox parameters the spec asks for (without secrets).
pub fn desired(run: &Run<'_>, target: &Target, vmid: u32) -> DesiredContainer {
    desired_container(
        &Subject {
            name: &run.name,
            uid: &run.uid,
            spec: &run.ct.spec,
            template: &target.template.spec,
            node: &target.node.spec,
        },
        vmid,
    )
}

/// Whether this object's status records creating (or adopting) exactly this container: its
/// VMID on this node, with `Created` true.
fn recorded(run: &Run<'_>, target: &Target, vmid: u32) -> bool {
    run.was(phase::CREATED)
        && run.before.vmid == Some(i64::from(vmid))
        && run.before.node.as_deref() == Some(kube::ResourceExt::name_any(&target.node).as_str())
}

fn conflict(message: String) -> Halt {
    Halt::new(phase::CREATED, "Conflict", message, HaltKind::Stalled)
}

/// The container's config, creating the container first when the VMID is free.
pub async fn create(
    run: &mut Run<'_>,
    target: &Target,
    desired: &DesiredContainer,
) -> Result<LxcConfig, Halt> {
    let vmid = desired.vmid;
    let node = target.pve_node().to_string();
    if run.fresh_vmid {
        // Allocated in this walk, under the allocation lock, from every VMID known taken: no
        // container of ours can be there, and one of anyone else's makes the create answer
        // "already exists" (Proxmox checks the whole cluster's VMID list before it creates,
        // as `nextid?vmid=` would), which gives the VMID up and allocates another.
        return start_create(run, target, desired).await;
    }
    if let Some(seen) = run.seen(vmid, &node) {
        run.pass(phase::CREATED, "Created", format!("VMID {vmid} on {node}"));
        return Ok(seen.config);
    }
    match target.client.container_config(&node, vmid).await {
        Ok(config) => match owner(
            config.get("tags"),
            config.get("description"),
            &run.uid,
            recorded(run, target, vmid),
        ) {
            // Proxmox writes a config holding only `lock: create` when a create starts and the
            // real one when it ends: a create in flight (ours after a crash lost its UPID, or
            // anyone's) is waited out, never judged, re-created or given up.
            Owner::This | Owner::Unmarked | Owner::Foreign if config.lock() == Some("create") => {
                Err(Halt::wait(
                    phase::CREATED,
                    "Creating",
                    format!("VMID {vmid} is being created"),
                    Duration::from_secs(1),
                ))
            }
            Owner::This => {
                if !run.was(phase::CREATED) && run.before.task.is_none() {
                    run.event(
                        EventType::Normal,
                        "Adopted",
                        "Create",
                        format!("VMID {vmid} on {node} carries this object's marker: adopted"),
                    )
                    .await;
                }
                run.pass(phase::CREATED, "Created", format!("VMID {vmid} on {node}"));
                Ok(config)
            }
            Owner::Unmarked => {
                // The configure phase writes the marker back with the rest of the config.
                run.event(
                    EventType::Warning,
                    "OwnershipMarkerRestored",
                    "Create",
                    format!(
                        "the ownership marker of VMID {vmid} on {node} was removed or altered in \
                         Proxmox (a Notes or tags edit?); it is still this object's container, and \
                         the marker is written back"
                    ),
                )
                .await;
                run.pass(phase::CREATED, "Created", format!("VMID {vmid} on {node}"));
                Ok(config)
            }
            Owner::OtherObject(uid) => Err(taken(
                run,
                vmid,
                format!("VMID {vmid} on {node} belongs to another LxcContainer (uid {uid}); not touching it"),
            )
            .await),
            Owner::Foreign => Err(taken(
                run,
                vmid,
                format!("VMID {vmid} on {node} is a container lxc-operator did not create; not touching it"),
            )
            .await),
        },
        Err(e) if e.class() == ErrorClass::NotFound => {
            elsewhere(run, target, vmid).await?;
            start_create(run, target, desired).await
        }
        Err(e) => Err(Halt::proxmox(phase::CREATED, &e)),
    }
}

/// Whether the VMID is in use on another node of the cluster: then it moved (ours, followed)
/// or it is someone else's (a conflict). `Ok` when it is free everywhere.
async fn elsewhere(run: &mut Run<'_>, target: &Target, vmid: u32) -> Result<(), Halt> {
    let guests = target
        .client
        .cluster_resources(Some("vm"))
        .await
        .map_err(|e| Halt::proxmox(phase::CREATED, &e))?;
    let Some(found) = guests.iter().find(|g| g.vmid == Some(u64::from(vmid))) else {
        return Ok(());
    };
    let at = found.node.clone().unwrap_or_default();
    let nodes = run.ctx.stores.nodes.state();
    let ours = nodes
        .iter()
        .find(|n| n.vmid_space() == target.node.vmid_space() && n.spec.node_name == at);
    if found.kind == "lxc"
        && let Some(node) = ours
        && let Ok(config) = target.client.container_config(&at, vmid).await
        && owner(config.get("tags"), config.get("description"), &run.uid, false).is_ours()
    {
        let name = kube::ResourceExt::name_any(node.as_ref());
        run.event(
            EventType::Warning,
            "Relocated",
            "Create",
            format!("VMID {vmid} was moved outside the operator; now following it on ProxmoxNode {name}"),
        )
        .await;
        run.status.node = Some(name);
        return Err(Halt::wait(
            phase::PLACED,
            "Relocated",
            "container found on another node",
            Duration::ZERO,
        ));
    }
    Err(taken(
        run,
        vmid,
        format!(
            "VMID {vmid} is taken by a {} guest on Proxmox node {at} that is not this object's; not touching it",
            found.kind
        ),
    )
    .await)
}

/// The VMID holds someone else's guest. When the operator chose it (no `spec.vmid`) and never
/// created anything on it, the choice raced with someone: the VMID is given up and another
/// allocated. Otherwise (`spec.vmid`, or ours was there before) it is a `Conflict`.
async fn taken(run: &mut Run<'_>, vmid: u32, why: String) -> Halt {
    if run.ct.spec.vmid.is_some() || run.was(phase::CREATED) || run.status.task.is_some() {
        return conflict(why);
    }
    run.event(
        EventType::Normal,
        "VmidTaken",
        "Create",
        format!("{why}; allocating another VMID"),
    )
    .await;
    run.status.vmid = None;
    Halt::wait(
        phase::VMID_ALLOCATED,
        "VmidTaken",
        format!("VMID {vmid} was taken before it could be created; allocating another"),
        Duration::ZERO,
    )
}

async fn secret_value(run: &Run<'_>, r: &SecretKeyRef, field: &str) -> Result<String, Halt> {
    let missing = |why: String| {
        Halt::new(
            phase::CREATED,
            "SecretNotFound",
            format!("{field}: {why}"),
            HaltKind::Blocked,
        )
    };
    let secret = Api::<KubeSecret>::namespaced(run.ctx.kube.clone(), &run.namespace)
        .get_opt(&r.name)
        .await
        .map_err(|e| Halt::kube(phase::CREATED, &e))?
        .ok_or_else(|| missing(format!("Secret {} not found", r.name)))?;
    let bytes = secret
        .data
        .and_then(|mut d| d.remove(&r.key))
        .ok_or_else(|| missing(format!("Secret {} has no key {}", r.name, r.key)))?;
    String::from_utf8(bytes.0)
        .map_err(|_| missing(format!("key {} of Secret {} is not UTF-8", r.key, r.name)))
}

async fn start_create(
    run: &mut Run<'_>,
    target: &Target,
    desired: &DesiredContainer,
) -> Result<LxcConfig, Halt> {
    let vmid = desired.vmid;
    let node = target.pve_node().to_string();
    super::preflight::preflight(target, desired).await?;
    if desired.features.as_ref().is_some_and(|f| f.needs_root()) && !target.client.is_root_ticket() {
        return Err(root_required(target));
    }
    let mut create = desired.create_request();
    if let Some(r) = run.ct.spec.root_password_secret_ref.clone() {
        let value = secret_value(run, &r, "spec.rootPasswordSecretRef").await?;
        create.password = Some(Secret::new(value));
    }
    if let Some(r) = run.ct.spec.ssh_public_keys_secret_ref.clone() {
        create.ssh_public_keys = Some(secret_value(run, &r, "spec.sshPublicKeysSecretRef").await?);
    }
    if run.was(phase::CREATED) {
        run.event(
            EventType::Warning,
            "Recreating",
            "Create",
            format!("VMID {vmid} vanished from Proxmox behind the operator's back; creating it again"),
        )
        .await;
    }
    // Right before the POST: the object's latest status must still name this VMID and no task
    // (a stale cache must never make a second container). A VMID allocated in this walk was
    // chosen from the latest status, read under the lock, and written by this walk.
    let latest = match run.fresh_vmid {
        true => run.status.clone(),
        false => run.latest_status().await?.unwrap_or_default(),
    };
    if latest.vmid != Some(i64::from(vmid)) || latest.task.is_some() {
        return Err(Halt::wait(
            phase::CREATED,
            "StaleStatus",
            format!(
                "the recorded status moved on (VMID {:?}); looking again",
                latest.vmid
            ),
            Duration::ZERO,
        ));
    }
    let creation = Mutation::CreateContainer {
        node: node.clone(),
        create: Box::new(create),
    };
    let slot = run.task_slot(&target.client, phase::CREATED)?;
    let upid = run
        .actor()
        .proxmox_task(&target.client, "create", &creation)
        .await
        .map_err(|e| match &e {
            ActError::Call(c) if c.class() == ErrorClass::AlreadyExists => {
                Err(format!("VMID {vmid} was taken before it could be created: {c}"))
            }
            _ => Ok(Halt::acted(phase::CREATED, &e)),
        });
    let upid = match upid {
        Ok(upid) => {
            slot.started(&upid.to_string());
            upid
        }
        Err(Ok(halt)) => return Err(halt),
        Err(Err(why)) => return Err(taken(run, vmid, why).await),
    };
    run.status.task = Some(TaskRef {
        upid: upid.to_string(),
        action: "create".into(),
        node,
    });
    // The reconcile's status write, right after, records the UPID.
    Err(Halt::wait(
        phase::CREATED,
        "Creating",
        format!("creating VMID {vmid} (task {upid})"),
        super::settle::FIRST_LOOK,
    ))
}

/// The condition for feature flags an API token may not set.
pub fn root_required(target: &Target) -> Halt {
    Halt::new(
        phase::CONFIGURED,
        "RootRequired",
        format!(
            "feature flags other than nesting (keyctl, fuse, mknod, mount) need root@pam with a \
             password; ProxmoxNode {} authenticates as {}, and an API token never qualifies",
            kube::ResourceExt::name_any(&target.node),
            target.client.identity()
        ),
        HaltKind::Stalled,
    )
}
