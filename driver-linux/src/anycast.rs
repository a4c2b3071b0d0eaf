//! Anycast announcement (docs/anycast.md): holds the VIP of every service
//! marked `anycast` on `lo` while the core says it is announced (the
//! service has quorum and the node runs), so a BGP speaker exporting the
//! addresses on `lo` announces and withdraws the route with it. Owns those
//! addresses and their crash record; decides nothing (the core does).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::path::Path;

use log::{info, warn};
use vrlb_core::lb::{ServiceId, ServiceKey};
use vrlb_core::node::Output;

use crate::daemon::event_loop::{Context, Extension};
use crate::daemon::netlink::{Rtnl, VipSpec};
use crate::daemon::vip_state::{Entry, VipState};

const DEVICE: &str = "lo";

/// The extension.
pub struct Anycast {
    rtnl: Option<Rtnl>,
    lo_index: u32,
    state: VipState,
    /// Services announcing each VIP this extension added (two services on
    /// one VIP, ports 80 and 443, share it).
    held: BTreeMap<IpAddr, BTreeSet<ServiceId>>,
}

impl Anycast {
    /// Records its addresses in `state_file` (apart from the VRRP VIPs').
    pub fn new(state_file: &Path) -> Anycast {
        Anycast {
            rtnl: None,
            lo_index: 0,
            state: VipState::new(state_file),
            held: BTreeMap::new(),
        }
    }

    fn spec(&self, addr: IpAddr) -> VipSpec {
        VipSpec {
            addr,
            prefix_len: if addr.is_ipv4() { 32 } else { 128 },
            index: self.lo_index,
            label: None,
            scope: 0,
            broadcast: None,
        }
    }

    fn entry(addr: IpAddr) -> Entry {
        Entry {
            addr,
            prefix_len: if addr.is_ipv4() { 32 } else { 128 },
            dev: DEVICE.to_string(),
        }
    }

    fn announce(&mut self, service: ServiceId, addr: IpAddr) {
        let first = !self.held.contains_key(&addr);
        self.held.entry(addr).or_default().insert(service);
        if !first {
            return;
        }
        let spec = self.spec(addr);
        let Some(rtnl) = self.rtnl.as_mut() else {
            return;
        };
        match rtnl.add_addr(&spec) {
            Ok(true) => {
                info!("anycast: announcing {addr} (added to {DEVICE})");
                if let Err(e) = self.state.add(Self::entry(addr)) {
                    warn!("anycast: cannot write the state file: {e}");
                }
            }
            Ok(false) => {
                // Configured by hand: announced already, and not ours to
                // remove later.
                warn!("anycast: {addr} is already on {DEVICE}: left to whoever put it there");
                self.held.remove(&addr);
            }
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
        let spec = self.spec(addr);
        if let Some(rtnl) = self.rtnl.as_mut() {
            match rtnl.del_addr(&spec) {
                Ok(_) => info!("anycast: withdrawing {addr} (removed from {DEVICE})"),
                Err(e) => warn!("anycast: cannot remove {addr} from {DEVICE}: {e}"),
            }
        }
        if let Err(e) = self.state.remove(&Self::entry(addr)) {
            warn!("anycast: cannot write the state file: {e}");
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
        let mut rtnl = Rtnl::new()?;
        self.lo_index = rtnl
            .links()?
            .into_iter()
            .find(|l| l.name == DEVICE)
            .map(|l| l.index)
            .ok_or_else(|| io::Error::other("no lo interface"))?;
        self.rtnl = Some(rtnl);
        // A crashed run's announcements must not outlive it.
        for e in self.state.leftovers() {
            info!(
                "anycast: removing {} from {DEVICE}: left by an earlier run",
                e.addr
            );
            self.delete(e.addr);
        }
        self.state.save()
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
    }

    fn shutdown(&mut self, _ctx: &mut Context<'_>) {
        for addr in std::mem::take(&mut self.held).into_keys() {
            self.delete(addr);
        }
    }
}
