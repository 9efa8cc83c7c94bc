//! Provision: the hook where the steps inside the container (files, packages, scripts) run
//! over SSH. The phase resolves the template's and the container's steps; a
//! [`Provisioner`]
//! runs the ones not yet done. Without SSH on the node, or without a provisioner, a container
//! that has steps says so instead of pretending to be provisioned.

use super::provisioner::Provisioner;
use super::run::{Run, phase};
use super::target::Target;
use crate::controllers::halt::{Halt, HaltKind};
use crate::crd::provisioning::ServiceSpec;
use crate::provision::content::digest::ResolvedProvisioning;
use crate::provision::content::resolve::resolve;

/// The services the template declares.
pub fn services(target: &Target) -> &[ServiceSpec] {
    &target.template.spec.services
}

/// The template's steps then the container's, resolved.
async fn steps(run: &Run<'_>, target: &Target) -> Result<ResolvedProvisioning, Halt> {
    let invalid = |e: crate::provision::content::resolve::ResolveError| {
        Halt::new(
            phase::PROVISIONED,
            "InvalidContent",
            e.to_string(),
            HaltKind::Stalled,
        )
    };
    let kube = &run.ctx.kube;
    let template = resolve(kube, &target.template.spec.provisioning, "LxcTemplate spec", None)
        .await
        .map_err(invalid)?;
    let own = match &run.ct.spec.provisioning {
        Some(p) => resolve(kube, p, "spec.provisioning", Some(&run.namespace))
            .await
            .map_err(invalid)?,
        None => ResolvedProvisioning::default(),
    };
    Ok(template.then(own))
}

/// Runs the Provision phase.
pub async fn provision(
    run: &mut Run<'_>,
    provisioner: Option<&dyn Provisioner>,
    target: &Target,
    vmid: u32,
    running: bool,
) -> Result<(), Halt> {
    let steps = steps(run, target).await?;
    if steps.files.is_empty() && steps.packages.is_empty() && steps.scripts.is_empty() {
        run.pass(phase::PROVISIONED, "NothingToProvision", "no provisioning steps");
        return Ok(());
    }
    if !running {
        run.pass(
            phase::PROVISIONED,
            "ContainerStopped",
            "provisioning runs while the container runs",
        );
        return Ok(());
    }
    if target.node.spec.ssh.is_none() {
        return Err(Halt::new(
            phase::PROVISIONED,
            "SshNotConfigured",
            format!(
                "the container has provisioning steps but ProxmoxNode {} has no spec.ssh",
                kube::ResourceExt::name_any(&target.node)
            ),
            HaltKind::Blocked,
        ));
    }
    match provisioner {
        Some(p) => p.provision(run, target, vmid, &steps).await,
        None => Err(Halt::new(
            phase::PROVISIONED,
            "ProvisionerUnavailable",
            "this operator build has no provisioner",
            HaltKind::Blocked,
        )),
    }
}

/// Reads the template's declared services (and credentials) of a running container.
pub async fn observe_services(
    run: &mut Run<'_>,
    provisioner: Option<&dyn Provisioner>,
    target: &Target,
    vmid: u32,
    running: bool,
) -> Result<(), Halt> {
    let declared = services(target);
    if !running || declared.is_empty() || target.node.spec.ssh.is_none() {
        return Ok(());
    }
    match provisioner {
        Some(p) => p.observe(run, target, vmid, declared).await,
        None => Ok(()),
    }
}
