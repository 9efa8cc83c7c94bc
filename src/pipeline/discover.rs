//! Discover: the container's addresses — static ones from the config the spec asked for,
//! DHCP and SLAAC ones from `/interfaces` — and which interfaces still wait for one.

use crate::crd::container::InterfaceAddress;
use crate::proxmox::property::Net;
use crate::proxmox::types::Interface;

/// What discovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Addresses per interface, in NIC order (IPv4 first).
    pub addresses: Vec<InterfaceAddress>,
    /// Interfaces configured for DHCP that have no IPv4 address yet.
    pub waiting: Vec<String>,
}

fn is_address(ip: Option<&str>) -> Option<&str> {
    ip.filter(|v| !matches!(*v, "dhcp" | "manual" | "auto"))
}

/// The addresses of `nets` given what `/interfaces` returned (`None` while stopped).
pub fn discover(nets: &[Net], interfaces: Option<&[Interface]>) -> Discovered {
    let mut found = Discovered::default();
    for net in nets {
        let live = interfaces.and_then(|all| all.iter().find(|i| i.name == net.name));
        let live_of = |family: &str| -> Vec<String> {
            live.map(|i| {
                i.ip_addresses
                    .iter()
                    .filter(|a| a.family == family)
                    .map(|a| match a.prefix {
                        Some(p) => format!("{}/{p}", a.address),
                        None => a.address.clone(),
                    })
                    .filter(|a| !a.starts_with("fe80:"))
                    .collect()
            })
            .unwrap_or_default()
        };
        let mut push = |address: String| {
            found.addresses.push(InterfaceAddress {
                interface: net.name.clone(),
                address,
            })
        };
        match is_address(net.ip.as_deref()) {
            Some(ip) => push(ip.to_string()),
            None => {
                let v4 = live_of("inet");
                if v4.is_empty() && net.ip.as_deref() == Some("dhcp") {
                    found.waiting.push(net.name.clone());
                }
                v4.into_iter().for_each(&mut push);
            }
        }
        match is_address(net.ip6.as_deref()) {
            Some(ip) => push(ip.to_string()),
            None => live_of("inet6").into_iter().for_each(&mut push),
        }
    }
    found
}

/// How long an address has been waited for in seconds: since this start of the container —
/// its uptime as Proxmox reports it, whoever started it — and only without one since the
/// `Powered` condition last flipped (a container restarted after drift keeps `Powered=True`,
/// so that time can be long past).
pub fn address_wait(uptime: Option<u64>, since_powered: Option<f64>) -> f64 {
    match uptime {
        Some(up) => up as f64,
        None => since_powered.unwrap_or_default().max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_wait_counts_from_this_start() {
        // Powered=True flipped 444 s ago, the container was restarted 3 s ago.
        assert_eq!(address_wait(Some(3), Some(444.0)), 3.0);
        assert_eq!(address_wait(None, Some(444.0)), 444.0);
        assert_eq!(address_wait(None, None), 0.0);
    }

    fn iface(name: &str, addrs: &[(&str, &str, u64)]) -> Interface {
        serde_json::from_value(serde_json::json!({
            "name": name,
            "ip-addresses": addrs.iter().map(|(a, f, p)| serde_json::json!(
                {"ip-address": a, "ip-address-type": f, "prefix": p})).collect::<Vec<_>>()
        }))
        .unwrap()
    }

    #[test]
    fn static_from_config_dhcp_from_interfaces_and_waiting_named() {
        let nets = [
            Net::parse("name=eth0,bridge=vmbr0,ip=10.0.0.5/24,gw=10.0.0.1").unwrap(),
            Net::parse("name=eth1,bridge=vmbr0,ip=dhcp,ip6=auto").unwrap(),
            Net::parse("name=eth2,bridge=vmbr0,ip=dhcp").unwrap(),
        ];
        let live = [
            iface("lo", &[("127.0.0.1", "inet", 8)]),
            iface(
                "eth1",
                &[
                    ("192.168.1.50", "inet", 24),
                    ("fe80::1", "inet6", 64),
                    ("fd00::50", "inet6", 64),
                ],
            ),
        ];
        let d = discover(&nets, Some(&live));
        let got: Vec<(&str, &str)> = d
            .addresses
            .iter()
            .map(|a| (a.interface.as_str(), a.address.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("eth0", "10.0.0.5/24"),
                ("eth1", "192.168.1.50/24"),
                ("eth1", "fd00::50/64")
            ]
        );
        assert_eq!(d.waiting, ["eth2"]);
        let stopped = discover(&nets, None);
        assert_eq!(
            stopped.addresses.len(),
            1,
            "only the static address is known while stopped"
        );
        assert_eq!(stopped.waiting, ["eth1", "eth2"]);
    }
}
