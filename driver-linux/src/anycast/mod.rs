//! Anycast announcement (docs/anycast.md): holds the VIP of every service
//! marked `anycast` on vrlb's own interface, `vrlb-anycast`, while the
//! core says it is announced (the service has quorum and the node runs),
//! so a BGP speaker exporting that interface's addresses announces and
//! withdraws the route with it. The interface is a TUN device that dies
//! with the process ([`device`]), so a crashed vrlb withdraws too. Owns
//! the device and the addresses on it; decides nothing (the core does).

mod device;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;

use log::{info, warn};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use vrlb_core::config::VirtualServer;
use vrlb_core::lb::{ServiceId, ServiceKey};
use vrlb_core::node::Output;

use crate::daemon::event_loop::{Context, Extension};
use crate::daemon::netlink::{Rtnl, VipSpec};
use device::Device;

/// The interface vrlb holds anycast VIPs on (the BGP speakers' configs in
/// examples/anycast export its addresses).
pub const DEVICE: &str = "vrlb-anycast";

/// The extension.
#[derive(Default)]
pub struct Anycast {
    rtnl: Option<Rtnl>,
    /// The interface and its ifindex, made when a service first needs it.
    device: Option<(Device, u32)>,
    /// Some virtual server of the configuration being built is marked
    /// `anycast` (reset once `reloaded` has used it).
    wanted: bool,
    /// Services announcing each VIP this extension added (two services on
    /// one VIP, ports 80 and 443, share it).
    held: BTreeMap<IpAddr, BTreeSet<ServiceId>>,
}

impl Anycast {
    /// The extension; it makes its interface once a service needs it.
    pub fn new() -> Anycast {
        Anycast::default()
    }

    fn spec(addr: IpAddr, index: u32) -> VipSpec {
        VipSpec {
            addr,
            prefix_len: if addr.is_ipv4() { 32 } else { 128 },
            index,
            label: None,
            scope: 0,
            broadcast: None,
        }
    }

    /// The interface's ifindex, making the interface (up, empty) first if
    /// need be.
    fn device(&mut self) -> io::Result<u32> {
        if let Some((_, index)) = self.device {
            return Ok(index);
        }
        let rtnl = self
            .rtnl
            .as_mut()
            .ok_or_else(|| io::Error::other("no rtnetlink socket"))?;
        let device = Device::create(DEVICE).map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::EBUSY) => " (another process, another vrlb?, holds it)",
                Some(libc::EINVAL) => " (an interface of that name that is not TUN exists)",
                _ => " (needs /dev/net/tun and CAP_NET_ADMIN)",
            };
            io::Error::new(e.kind(), format!("cannot make {DEVICE}: {e}{hint}"))
        })?;
        let index = rtnl
            .links()?
            .into_iter()
            .find(|l| l.name == DEVICE)
            .map(|l| l.index)
            .ok_or_else(|| io::Error::other(format!("{DEVICE} made but not listed")))?;
        // Attached to a device someone left behind: what is on it is not
        // vrlb's to announce.
        for a in rtnl.addrs()?.into_iter().filter(|a| a.index == index) {
            warn!("anycast: removing {} from {DEVICE}: not vrlb's", a.addr);
            rtnl.del_addr(&Self::spec(a.addr, index))?;
        }
        let mut up = LinkMessage::default();
        up.header.index = index;
        up.header.flags = LinkFlags::Up;
        up.header.change_mask = LinkFlags::Up;
        rtnl.request(RouteNetlinkMessage::SetLink(up), 0, |_| {})?;
        info!("anycast: made {DEVICE} (ifindex {index}); it goes when vrlb does");
        self.device = Some((device, index));
        Ok(index)
    }

    fn announce(&mut self, service: ServiceId, addr: IpAddr) {
        let first = !self.held.contains_key(&addr);
        self.held.entry(addr).or_default().insert(service);
        if !first {
            return;
        }
        let added = self.device().and_then(|index| match self.rtnl.as_mut() {
            Some(rtnl) => rtnl.add_addr(&Self::spec(addr, index)),
            None => Err(io::Error::other("no rtnetlink socket")),
        });
        match added {
            // Already there (`Ok(false)`): added by this run already.
            Ok(_) => info!("anycast: announcing {addr} (added to {DEVICE})"),
            Err(e) => warn!("anycast: cannot add {addr} to {DEVICE}: {e}"),
        }
    }

    fn withdraw(&mut self, service: ServiceId, addr: IpAddr) {
        let Some(services) = self.held.get_mut(&addr) else {
            return;
        };
        services.remove(&service);
        if services.is_empty() {
            self.held.remove(&addr);
            self.delete(addr);
        }
    }

    fn delete(&mut self, addr: IpAddr) {
        let (Some(rtnl), Some((_, index))) = (self.rtnl.as_mut(), self.device.as_ref()) else {
            return;
        };
        match rtnl.del_addr(&Self::spec(addr, *index)) {
            Ok(_) => info!("anycast: withdrawing {addr} (removed from {DEVICE})"),
            Err(e) => warn!("anycast: cannot remove {addr} from {DEVICE}: {e}"),
        }
    }
}

/// The VIP of an address service (fwmark services have none to announce).
fn vip_of(ctx: &Context<'_>, service: ServiceId) -> Option<IpAddr> {
    let config = ctx.node().balancer()?.service(service).ok()?;
    match config.key {
        ServiceKey::Addr { vip, .. } => Some(vip),
        _ => None,
    }
}

impl Extension for Anycast {
    fn name(&self) -> &str {
        "anycast"
    }

    fn start(&mut self, _ctx: &mut Context<'_>) -> io::Result<()> {
        // The interface is made by `reloaded`, which follows at once.
        self.rtnl = Some(Rtnl::new()?);
        Ok(())
    }

    fn virtual_server(&mut self, _services: &[ServiceId], vs: &VirtualServer<'_>) {
        self.wanted |= vs.anycast;
    }

    fn output(&mut self, out: &Output, ctx: &mut Context<'_>) {
        let Output::Announce { service, up } = *out else {
            return;
        };
        let Some(addr) = vip_of(ctx, service) else {
            warn!(
                "anycast: service {} has no VIP to announce (fwmark)",
                service.0
            );
            return;
        };
        if up {
            self.announce(service, addr);
        } else {
            self.withdraw(service, addr);
        }
    }

    fn reloaded(&mut self, ctx: &mut Context<'_>) {
        // Made as soon as a service is marked, so a problem shows at once.
        if self.wanted
            && self.rtnl.is_some()
            && let Err(e) = self.device()
        {
            warn!("anycast: {e}");
        }
        // A service removed (or changed address) by the reload withdraws.
        let stale: Vec<(IpAddr, ServiceId)> = self
            .held
            .iter()
            .flat_map(|(addr, services)| services.iter().map(move |s| (*addr, *s)))
            .filter(|(addr, s)| {
                vip_of(ctx, *s) != Some(*addr)
                    || !ctx.node().service_state(*s).is_some_and(|st| st.announced)
            })
            .collect();
        for (addr, s) in stale {
            self.withdraw(s, addr);
        }
        // No service marked any more: the interface goes too.
        if !self.wanted && self.held.is_empty() && self.device.take().is_some() {
            info!("anycast: {DEVICE} removed (no service is marked anycast)");
        }
        // The next reload's `virtual_server` calls say again.
        self.wanted = false;
    }

    fn shutdown(&mut self, _ctx: &mut Context<'_>) {
        for addr in std::mem::take(&mut self.held).into_keys() {
            self.delete(addr);
        }
        // Closing the descriptor deletes the interface.
        if self.device.take().is_some() {
            info!("anycast: {DEVICE} removed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::test_netns::in_private_netns;

    #[test]
    fn a_left_behind_device_is_emptied_and_brought_up() {
        in_private_netns(|| {
            let ip = |args: &[&str]| {
                let s = Command::new("ip").args(args).status().unwrap();
                assert!(s.success(), "ip {args:?}");
            };
            // A persistent device of that name with someone's address on it.
            ip(&["tuntap", "add", "dev", DEVICE, "mode", "tun"]);
            ip(&["addr", "add", "192.0.2.99/32", "dev", DEVICE]);
            let mut a = Anycast::new();
            a.rtnl = Some(Rtnl::new().unwrap());
            let index = a.device().unwrap();
            let rtnl = a.rtnl.as_mut().unwrap();
            let addrs = rtnl.addrs().unwrap();
            assert!(
                addrs.iter().all(|x| x.index != index),
                "left on {DEVICE}: {addrs:?}"
            );
            // Up, and running: vrlb holds it, so it has carrier (the
            // operational state follows asynchronously, linkwatch).
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
            loop {
                let links = rtnl.links().unwrap();
                let link = links.iter().find(|l| l.index == index).unwrap();
                if link.up {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{DEVICE} not up: {link:?}"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            // Asked again: the same device.
            assert_eq!(a.device().unwrap(), index);
        });
    }

    /// What `ip` says of `addr` in this namespace (empty: not there).
    fn ip_addr_line(addr: &str) -> String {
        let out = Command::new("ip")
            .args(["-o", "addr", "show"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&format!(" {addr}/")))
            .collect()
    }

    #[test]
    fn an_ipv6_vip_is_announced_usable_and_withdrawn_with_the_device() {
        in_private_netns(|| {
            let vip: IpAddr = "2001:db8::240".parse().unwrap();
            let service = ServiceId(0);
            let mut a = Anycast::new();
            a.rtnl = Some(Rtnl::new().unwrap());
            a.announce(service, vip);
            let line = ip_addr_line("2001:db8::240");
            assert!(line.contains(DEVICE) && line.contains("/128"), "{line:?}");
            // A speaker exports only usable addresses: no duplicate
            // address detection holds it back (TUN has no link layer).
            assert!(!line.contains("tentative"), "{line:?}");
            a.withdraw(service, vip);
            assert_eq!(ip_addr_line("2001:db8::240"), "", "withdrawn");
            a.announce(service, vip);
            assert_ne!(ip_addr_line("2001:db8::240"), "");
            // However vrlb ends, the address goes with the device.
            drop(a);
            assert_eq!(ip_addr_line("2001:db8::240"), "", "outlived vrlb");
        });
    }
}
