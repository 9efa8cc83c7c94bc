//! The Provision phase's seam: a [`Provisioner`] runs the steps inside a container (in
//! production [`SshProvisioner`](super::ssh::SshProvisioner): `pct` over SSH). The driver hands
//! it to the phase; it is not part of the context a [`Run`] reads, so the two stay apart.

use async_trait::async_trait;

use super::run::Run;
use super::target::Target;
use crate::controllers::halt::Halt;
use crate::crd::provisioning::ServiceSpec;
use crate::provision::content::digest::ResolvedProvisioning;

/// Runs provisioning steps inside a container.
#[async_trait]
pub trait Provisioner: Send + Sync {
    /// Runs the steps of `steps` not recorded as done in `run.status.provisionedSteps`,
    /// recording each one done there.
    async fn provision(
        &self,
        run: &mut Run<'_>,
        target: &Target,
        vmid: u32,
        steps: &ResolvedProvisioning,
    ) -> Result<(), Halt>;

    /// Reads the declared `services` of a running container into status (and their
    /// credentials into the container's credentials Secret).
    async fn observe(
        &self,
        run: &mut Run<'_>,
        target: &Target,
        vmid: u32,
        services: &[ServiceSpec],
    ) -> Result<(), Halt>;

    /// Stops work still running for the container `uid` (it is being deleted).
    fn cancel(&self, _uid: &str) {}
}
