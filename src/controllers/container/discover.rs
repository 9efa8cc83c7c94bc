//! Discover: the container's addresses into status — static ones from the config, DHCP ones
//! from `/interfaces`, polled until they appear and reported once they take too long.

use std::time::Duration;

use super::run::{Run, phase};
use super::target::Target;
use crate::controllers::halt::{Halt, HaltKind};
use crate::crd::container::InterfaceAddress;
use crate::pipeline::desired::DesiredContainer;
use crate::pipeline::discover::{address_wait, discover as found};

/// Records the addresses; waits while a DHCP interface of a running container has none.
pub async fn discover(
    run: &mut Run<'_>,
    target: &Target,
    desired: &DesiredContainer,
    running: bool,
) -> Result<(), Halt> {
    let interfaces = if running {
        target
            .client
            .container_interfaces(target.pve_node(), desired.vmid)
            .await
            .map_err(|e| Halt::proxmox(phase::DISCOVERED, &e))?
    } else {
        None
    };
    let d = found(&desired.nets, interfaces.as_deref());
    run.status.ip = d
        .addresses
        .first()
        .map(|a: &InterfaceAddress| a.address.split('/').next().unwrap_or_default().to_string());
    run.status.addresses = d.addresses;
    if running && !d.waiting.is_empty() {
        let since_powered = run
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == phase::POWERED)
            .map(|c| run.now.duration_since(c.last_transition_time.0).as_secs_f64());
        let timeout = run.ctx.address_timeout.as_secs_f64();
        // Measured from this start (the container's uptime, read only when the Powered
        // transition alone would call it late), not from an old transition.
        let mut waited = address_wait(None, since_powered);
        if waited > timeout {
            let uptime = target
                .client
                .container_status(target.pve_node(), desired.vmid)
                .await
                .map_err(|e| Halt::proxmox(phase::DISCOVERED, &e))?
                .uptime;
            waited = address_wait(uptime, since_powered);
        }
        let names = d.waiting.join(", ");
        if waited > timeout {
            return Err(Halt::new(
                phase::DISCOVERED,
                "AddressTimeout",
                format!("no DHCP address on {names} after {}s", waited as u64),
                HaltKind::Failed,
            ));
        }
        return Err(Halt::wait(
            phase::DISCOVERED,
            "WaitingForAddress",
            format!("waiting for a DHCP address on {names}"),
            Duration::from_secs(2),
        ));
    }
    let message = match &run.status.ip {
        Some(ip) => format!("address {ip}"),
        None => "no address (stopped or none configured)".into(),
    };
    run.pass(phase::DISCOVERED, "Discovered", message);
    Ok(())
}
