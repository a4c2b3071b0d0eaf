//! The interfaces the daemon knows: the kernel's links and addresses (from
//! an rtnetlink dump, kept current by monitor events) and the names the
//! configuration uses, numbered as the core's [`IfaceId`]s. A name keeps
//! its id while its link comes and goes. No I/O: fed by the caller.

use std::collections::HashMap;
use std::net::IpAddr;

use vrlb_core::node::IfaceId;

use super::netlink::{Addr, Event, Link};
use super::vrrp_socket::is_link_local;

/// What changed for a configured interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Its up/down state changed.
    Link {
        /// Which.
        id: IfaceId,
        /// Now.
        up: bool,
    },
    /// It appeared (it did not exist before) or disappeared.
    Presence {
        /// Which.
        id: IfaceId,
        /// Whether it exists now.
        present: bool,
    },
    /// Its addresses changed.
    Addresses {
        /// Which.
        id: IfaceId,
    },
}

/// Links, addresses, and configured names.
#[derive(Debug, Default)]
pub struct Interfaces {
    links: HashMap<u32, Link>,
    addrs: Vec<Addr>,
    /// Configured names: `IfaceId(i)` is `names[i]`.
    names: Vec<String>,
}

impl Interfaces {
    /// Replaces everything known about the kernel's state.
    pub fn load(&mut self, links: Vec<Link>, addrs: Vec<Addr>) {
        self.links = links.into_iter().map(|l| (l.index, l)).collect();
        self.addrs = addrs;
    }

    /// The id of the interface called `name` (a new id for a new name).
    pub fn id(&mut self, name: &str) -> IfaceId {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return IfaceId(i as u16);
        }
        self.names.push(name.to_string());
        IfaceId((self.names.len() - 1) as u16)
    }

    /// Every configured id.
    pub fn ids(&self) -> impl Iterator<Item = IfaceId> + '_ {
        (0..self.names.len()).map(|i| IfaceId(i as u16))
    }

    /// The configured name of `id`.
    pub fn name(&self, id: IfaceId) -> &str {
        self.names
            .get(usize::from(id.0))
            .map_or("?", String::as_str)
    }

    /// The kernel's link called like `id`, if it exists.
    pub fn link(&self, id: IfaceId) -> Option<&Link> {
        let name = self.names.get(usize::from(id.0))?;
        self.links.values().find(|l| &l.name == name)
    }

    /// The link called `name`.
    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }

    /// The link with ifindex `index`.
    pub fn link_by_index(&self, index: u32) -> Option<&Link> {
        self.links.get(&index)
    }

    /// The configured id of ifindex `index`, if configured.
    pub fn id_of_index(&self, index: u32) -> Option<IfaceId> {
        let name = &self.links.get(&index)?.name;
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| IfaceId(i as u16))
    }

    /// Whether `id` exists and is up.
    pub fn is_up(&self, id: IfaceId) -> bool {
        self.link(id).is_some_and(|l| l.up)
    }

    /// Whether `addr` is configured on `index`.
    pub fn has_addr(&self, index: u32, addr: IpAddr) -> bool {
        self.addrs
            .iter()
            .any(|a| a.index == index && a.addr == addr)
    }

    /// The address adverts go out from when none is configured: IPv4, the
    /// first primary (not secondary) address that is not one of `vips`;
    /// IPv6, the link-local address (RFC 9568 5.1.2.1: IPv6 adverts come
    /// from the interface's link-local address).
    pub fn primary(&self, id: IfaceId, v6: bool, vips: &[IpAddr]) -> Option<IpAddr> {
        let index = self.link(id)?.index;
        let mut candidates = self
            .addrs
            .iter()
            .filter(|a| a.index == index && !vips.contains(&a.addr));
        if v6 {
            candidates
                .find(|a| matches!(a.addr, IpAddr::V6(x) if is_link_local(&x)))
                .map(|a| a.addr)
        } else {
            let v4: Vec<&Addr> = candidates.filter(|a| a.addr.is_ipv4()).collect();
            v4.iter()
                .find(|a| !a.secondary)
                .or(v4.first())
                .map(|a| a.addr)
        }
    }

    /// The link-local IPv6 address of ifindex `index` (NA source).
    pub fn link_local(&self, index: u32) -> Option<IpAddr> {
        self.addrs
            .iter()
            .find(|a| a.index == index && matches!(a.addr, IpAddr::V6(x) if is_link_local(&x)))
            .map(|a| a.addr)
    }

    /// Applies a monitor event; returns what changed for configured names.
    pub fn apply(&mut self, event: &Event) -> Option<Change> {
        match event {
            Event::Link(link) => {
                let old = self.links.insert(link.index, link.clone());
                let id = self.configured(&link.name)?;
                match old {
                    Some(o) if o.name == link.name && o.up == link.up => None,
                    Some(o) if o.name == link.name => Some(Change::Link { id, up: link.up }),
                    _ => Some(Change::Presence { id, present: true }),
                }
            }
            Event::LinkGone { index, name } => {
                self.links.remove(index);
                self.addrs.retain(|a| a.index != *index);
                let id = self.configured(name)?;
                Some(Change::Presence { id, present: false })
            }
            Event::NewAddr(a) => {
                if !self.addrs.contains(a) {
                    self.addrs.push(a.clone());
                }
                let id = self.id_of_index(a.index)?;
                Some(Change::Addresses { id })
            }
            Event::DelAddr(a) => {
                self.addrs
                    .retain(|x| !(x.index == a.index && x.addr == a.addr));
                let id = self.id_of_index(a.index)?;
                Some(Change::Addresses { id })
            }
            Event::Overrun => None,
        }
    }

    fn configured(&self, name: &str) -> Option<IfaceId> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| IfaceId(i as u16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, up: bool) -> Link {
        Link {
            index,
            name: name.into(),
            up,
            mac: Some([2, 0, 0, 0, 0, index as u8]),
            macvlan_parent: None,
        }
    }

    fn addr(index: u32, a: &str, secondary: bool) -> Addr {
        Addr {
            index,
            addr: a.parse().unwrap(),
            prefix_len: 24,
            secondary,
        }
    }

    #[test]
    fn primary_skips_vips_and_secondaries_and_v6_is_link_local() {
        let mut ifs = Interfaces::default();
        ifs.load(
            vec![link(2, "eth0", true)],
            vec![
                addr(2, "192.0.2.240", false),
                addr(2, "192.0.2.9", true),
                addr(2, "192.0.2.1", false),
                addr(2, "2001:db8::1", false),
                addr(2, "fe80::1", false),
            ],
        );
        let id = ifs.id("eth0");
        let vip: IpAddr = "192.0.2.240".parse().unwrap();
        assert_eq!(
            ifs.primary(id, false, &[vip]),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(ifs.primary(id, true, &[]), Some("fe80::1".parse().unwrap()));
        let missing = ifs.id("eth9");
        assert_eq!(ifs.primary(missing, false, &[]), None);
        assert!(!ifs.is_up(missing));
    }

    #[test]
    fn events_report_presence_and_link_changes_of_configured_names() {
        let mut ifs = Interfaces::default();
        ifs.load(vec![link(2, "eth0", true)], vec![]);
        let eth0 = ifs.id("eth0");
        let eth1 = ifs.id("eth1");
        assert_eq!(ifs.apply(&Event::Link(link(2, "eth0", true))), None);
        assert_eq!(
            ifs.apply(&Event::Link(link(2, "eth0", false))),
            Some(Change::Link {
                id: eth0,
                up: false
            })
        );
        assert_eq!(
            ifs.apply(&Event::Link(link(3, "eth1", true))),
            Some(Change::Presence {
                id: eth1,
                present: true
            })
        );
        assert_eq!(ifs.apply(&Event::Link(link(4, "other", true))), None);
        assert_eq!(
            ifs.apply(&Event::NewAddr(addr(3, "198.51.100.1", false))),
            Some(Change::Addresses { id: eth1 })
        );
        assert_eq!(
            ifs.apply(&Event::LinkGone {
                index: 3,
                name: "eth1".into()
            }),
            Some(Change::Presence {
                id: eth1,
                present: false
            })
        );
        assert!(!ifs.is_up(eth1));
    }
}
