//! The VMAC interfaces of `use_vmac` instances: private-mode macvlans with
//! the virtual router's MAC, made when a configuration wants them, given
//! keepalived's interface settings (vrrp_if_config.c), and removed, their
//! base's settings restored, when a reload drops them or the daemon stops.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;

use log::{info, warn};

use super::interfaces::Interfaces;
use super::netlink::{Link, Rtnl, VipSpec};

/// A VMAC an instance wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmacInfo {
    /// Its name.
    pub name: String,
    /// The interface it sits on.
    pub base: String,
    /// Its MAC.
    pub mac: [u8; 6],
    /// For an IPv6 instance.
    pub v6: bool,
}

/// What a base interface gets while an IPv4 VMAC sits on it:
/// keepalived's `arp_ignore` and `arp_filter` (only the VMAC answers ARP
/// for its VIPs), and `arp_announce` 2, which keepalived leaves alone: a
/// reply from a VIP leaves by the base (the subnet's route is the base's),
/// and the ARP request it needs would carry the VIP with the base's MAC,
/// moving clients' entries for the VIP off the VMAC.
const BASE_SETTINGS: [(&str, u8); 3] = [("arp_ignore", 1), ("arp_filter", 1), ("arp_announce", 2)];

/// A base interface's values of [`BASE_SETTINGS`] before the first VMAC
/// on it changed them.
#[derive(Debug, Clone)]
struct BaseSettings {
    saved: Vec<(&'static str, Option<u8>)>,
    vmacs: usize,
}

/// The VMACs this daemon made or adopted.
#[derive(Debug, Default)]
pub struct Vmacs {
    made: HashMap<String, VmacInfo>,
    bases: HashMap<String, BaseSettings>,
}

fn sysctl_path(family: &str, dev: &str, key: &str) -> String {
    format!("/proc/sys/net/{family}/conf/{dev}/{key}")
}

fn read_sysctl(dev: &str, key: &str) -> Option<u8> {
    std::fs::read_to_string(sysctl_path("ipv4", dev, key))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn write_sysctl(family: &str, dev: &str, key: &str, value: u8) -> io::Result<()> {
    std::fs::write(sysctl_path(family, dev, key), format!("{value}\n"))
}

impl Vmacs {
    /// Makes every VMAC in `wanted` that is not there yet and removes the
    /// ones made before that `wanted` no longer has. `true` when links
    /// were made or removed (the caller reads them again).
    pub fn sync(&mut self, rtnl: &mut Rtnl, ifaces: &Interfaces, wanted: &[VmacInfo]) -> bool {
        let mut changed = false;
        let gone: Vec<VmacInfo> = self
            .made
            .values()
            .filter(|m| !wanted.iter().any(|w| w == *m))
            .cloned()
            .collect();
        for m in gone {
            changed |= self.remove(rtnl, ifaces, &m);
        }
        for w in wanted {
            let known = self.made.contains_key(&w.name);
            // Made before and still there; one deleted by hand, or with its
            // base, is made again.
            if known && ifaces.link_by_name(&w.name).is_some() {
                continue;
            }
            match make(rtnl, ifaces, w) {
                Ok(made) => {
                    changed |= made;
                    if !known {
                        self.made.insert(w.name.clone(), w.clone());
                        self.adjust_base(&w.base, w.v6);
                    }
                }
                Err(e) => warn!(
                    "VMAC {} on {}: {e}; its instance stays in FAULT",
                    w.name, w.base
                ),
            }
        }
        changed
    }

    /// Whether `name` is a VMAC this daemon made.
    pub fn made(&self, name: &str) -> bool {
        self.made.contains_key(name)
    }

    /// Removes every VMAC made (at exit).
    pub fn remove_all(&mut self, rtnl: &mut Rtnl, ifaces: &Interfaces) {
        let all: Vec<VmacInfo> = self.made.values().cloned().collect();
        for m in all {
            self.remove(rtnl, ifaces, &m);
        }
    }

    /// [`BASE_SETTINGS`] on `base` while it has IPv4 VMACs.
    fn adjust_base(&mut self, base: &str, v6: bool) {
        if v6 {
            return;
        }
        if let Some(b) = self.bases.get_mut(base) {
            b.vmacs += 1;
            return;
        }
        let saved = BaseSettings {
            saved: BASE_SETTINGS
                .iter()
                .map(|(key, _)| (*key, read_sysctl(base, key)))
                .collect(),
            vmacs: 1,
        };
        for (key, value) in BASE_SETTINGS {
            if let Err(e) = write_sysctl("ipv4", base, key, value) {
                warn!(
                    "{base}: cannot set {key} to {value}: {e}: it may answer ARP for VMAC addresses"
                );
            }
        }
        self.bases.insert(base.to_string(), saved);
    }

    /// Removes VMAC `m`; `true` if a link went.
    fn remove(&mut self, rtnl: &mut Rtnl, ifaces: &Interfaces, m: &VmacInfo) -> bool {
        self.made.remove(&m.name);
        if !m.v6 {
            self.release_base(&m.base);
        }
        let Some(link) = ifaces.link_by_name(&m.name) else {
            return false;
        };
        match rtnl.del_link(link.index) {
            Ok(gone) => {
                info!("VMAC {} removed", m.name);
                gone
            }
            Err(e) => {
                warn!("VMAC {}: cannot remove it: {e}", m.name);
                false
            }
        }
    }

    /// Restores the base's settings when its last VMAC goes.
    fn release_base(&mut self, base: &str) {
        let Some(b) = self.bases.get_mut(base) else {
            return;
        };
        b.vmacs -= 1;
        if b.vmacs > 0 {
            return;
        }
        let Some(b) = self.bases.remove(base) else {
            return;
        };
        for (key, value) in b.saved {
            if let Some(v) = value
                && let Err(e) = write_sysctl("ipv4", base, key, v)
            {
                warn!("{base}: cannot restore {key} to {v}: {e}");
            }
        }
    }
}

/// Makes `w` (or adopts a matching macvlan a previous run left);
/// `Ok(true)` if a link was made.
fn make(rtnl: &mut Rtnl, ifaces: &Interfaces, w: &VmacInfo) -> Result<bool, String> {
    let base = ifaces
        .link_by_name(&w.base)
        .ok_or_else(|| format!("interface {} does not exist", w.base))?
        .clone();
    if let Some(old) = ifaces.link_by_name(&w.name) {
        match old.macvlan_parent {
            Some(parent) if parent == base.index && old.mac == Some(w.mac) => {
                info!("VMAC {}: taking over the one already there", w.name);
                return Ok(false);
            }
            // keepalived removes a VMAC with the wrong MAC or base.
            Some(_) => {
                rtnl.del_link(old.index)
                    .map_err(|e| format!("cannot remove the mismatched macvlan there: {e}"))?;
            }
            None => {
                return Err(format!(
                    "an interface {} exists and is not a macvlan",
                    w.name
                ));
            }
        }
    }
    rtnl.add_macvlan(&w.name, base.index, w.mac)
        .map_err(|e| format!("cannot make it: {e}"))?;
    let index = rtnl
        .links()
        .map_err(|e| format!("listing interfaces: {e}"))?
        .into_iter()
        .find(|l: &Link| l.name == w.name)
        .map(|l| l.index)
        .ok_or("made, but the kernel does not list it")?;
    configure(rtnl, ifaces, w, index, &base).map_err(|e| format!("cannot configure it: {e}"))?;
    info!(
        "VMAC {} made on {} with MAC {}",
        w.name,
        w.base,
        mac_text(w.mac)
    );
    Ok(true)
}

/// keepalived's settings for a new VMAC, then up.
fn configure(
    rtnl: &mut Rtnl,
    ifaces: &Interfaces,
    w: &VmacInfo,
    index: u32,
    base: &Link,
) -> io::Result<()> {
    // Answer ARP only for its own addresses (the VIPs); hear the other
    // routers' adverts, which come from addresses of this host's
    // subnet, without reverse-path filtering on an interface with no
    // address of its own.
    for (key, value) in [
        ("arp_ignore", 1),
        ("accept_local", 1),
        ("rp_filter", 0),
        ("promote_secondaries", 1),
    ] {
        write_sysctl("ipv4", &w.name, key, value)?;
    }
    if w.v6 {
        // Adverts from the base's link-local address with the VMAC's
        // MAC, and no address of the VMAC's own (the same on every
        // router).
        rtnl.no_ipv6_addr_gen(index)?;
        rtnl.set_link_up(index)?;
        let ll = ifaces.link_local(base.index).ok_or_else(|| {
            io::Error::other(format!("{} has no IPv6 link-local address", base.name))
        })?;
        rtnl.add_addr(&VipSpec {
            addr: ll,
            prefix_len: 64,
            index,
            label: None,
            scope: 253,
            broadcast: None,
        })?;
    } else {
        // No IPv6 on an IPv4 VMAC: its neighbour discovery would come
        // from the same MAC on every router.
        write_sysctl("ipv6", &w.name, "disable_ipv6", 1)?;
        rtnl.set_link_up(index)?;
    }
    if read_sysctl("all", "rp_filter") == Some(1) {
        warn!(
            "VMAC {}: net.ipv4.conf.all.rp_filter is 1 (strict): adverts heard on the VMAC \
             may be dropped; set it to 0 or 2",
            w.name
        );
    }
    Ok(())
}

/// `00:00:5e:00:01:33`.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Whether a VIP `addr` without a `dev` goes on the instance's VMAC: it
/// does when it is of the instance's family (keepalived.conf(5)).
pub fn carries(vmac: &VmacInfo, addr: IpAddr) -> bool {
    addr.is_ipv6() == vmac.v6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_text_is_colon_hex() {
        assert_eq!(mac_text([0, 0, 0x5e, 0, 1, 0x33]), "00:00:5e:00:01:33");
    }

    #[test]
    fn only_vips_of_the_instance_family_go_on_the_vmac() {
        let v = VmacInfo {
            name: "vrrp.51".into(),
            base: "eth0".into(),
            mac: [0, 0, 0x5e, 0, 1, 51],
            v6: false,
        };
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(carries(&v, v4));
        assert!(!carries(&v, v6));
    }
}
