//! pve-sim: a Proxmox VE API simulator (built by its own issue; empty for now).
