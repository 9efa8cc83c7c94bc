//! Power: the one step that brings Proxmox's power state to the spec's — start, a graceful
//! shutdown with the strategy's timeout, or a hard stop once a shutdown has failed.

use crate::crd::container::PowerState;
use crate::proxmox::api::PowerAction;

/// What to do about power, given the desired state and Proxmox's `status` (`running`/`stopped`).
pub fn decide(
    desired: PowerState,
    status: &str,
    shutdown_timeout_secs: u32,
    shutdown_failed: bool,
) -> Option<PowerAction> {
    match (desired, status) {
        (PowerState::Running, "stopped") => Some(PowerAction::Start),
        (PowerState::Stopped, "running") if shutdown_failed => Some(PowerAction::Stop),
        (PowerState::Stopped, "running") => Some(PowerAction::Shutdown {
            timeout_secs: shutdown_timeout_secs,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_follows_the_spec_and_falls_back_to_stop() {
        assert_eq!(
            decide(PowerState::Running, "stopped", 60, false),
            Some(PowerAction::Start)
        );
        assert_eq!(decide(PowerState::Running, "running", 60, false), None);
        assert_eq!(
            decide(PowerState::Stopped, "running", 30, false),
            Some(PowerAction::Shutdown { timeout_secs: 30 })
        );
        assert_eq!(
            decide(PowerState::Stopped, "running", 30, true),
            Some(PowerAction::Stop)
        );
        assert_eq!(decide(PowerState::Stopped, "stopped", 30, true), None);
    }
}
