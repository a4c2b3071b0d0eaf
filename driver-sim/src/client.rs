//! A simulated client host with several addresses (IPv4 and IPv6), using
//! the virtual services: it resolves each VIP's MAC by ARP or neighbour
//! solicitation (caching it, and updating the cache on gratuitous ARP and
//! on unsolicited neighbour advertisements with the override flag, like a
//! Linux host), opens flows (short and long-lived, TCP or UDP), sends their
//! packets, retries unanswered ones, and records which real server
//! answered each (the id in the reply). A flooding host sends opening
//! packets from spoofed addresses and forgets them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use vrlb_core::lb::TcpFlags;
use vrlb_core::rand::Prng;

use crate::frame::{self, BROADCAST, Mac, Parsed};

/// How long an ARP or neighbour entry lives without being refreshed.
pub const ARP_TTL_US: u64 = 30_000_000;
/// How long a packet waits for its reply before it is sent again.
pub const RETRY_US: u64 = 1_000_000;
/// Attempts per packet before the flow counts as lost.
pub const MAX_TRIES: u32 = 6;

/// A service a client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The VIP.
    pub vip: IpAddr,
    /// The port.
    pub port: u16,
    /// 6 (TCP) or 17 (UDP).
    pub protocol: u8,
}

/// One flow's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowState {
    /// Which service (index into the client's targets).
    pub service: usize,
    /// When it was opened.
    pub opened_at: u64,
    /// The server that answered last (its reply id).
    pub server: Option<u32>,
    /// Packets still to send after the current one.
    pub remaining: u32,
    /// Pause between packets.
    pub gap_us: u64,
    /// When the current packet was (last) sent.
    pub sent_at: u64,
    /// Sends of the current packet.
    pub tries: u32,
    /// Waiting for a reply.
    pub waiting: bool,
    /// The client's neighbour epoch for the VIP when it was opened.
    pub epoch: u64,
    /// Sent once and forgotten (a flood's spoofed opening packet).
    pub forget: bool,
    /// When its one pending step is due (`u64::MAX`: none); other queued
    /// steps are stale.
    pub step_at: u64,
}

/// What a client reports to the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A reply came.
    Reply {
        /// The flow's source (client address, port).
        flow: (IpAddr, u16),
        /// Which service.
        service: usize,
        /// Server id.
        server: u32,
        /// The server that answered the flow before, if any.
        before: Option<u32>,
        /// Sim time the flow was opened.
        opened_at: u64,
        /// The client's neighbour epoch for the VIP when the flow opened.
        epoch: u64,
        /// That epoch now.
        epoch_now: u64,
    },
    /// The flow ended normally.
    Done,
    /// The flow gave up (no answer after every retry) or was refused.
    Lost {
        /// The flow's source.
        flow: (IpAddr, u16),
        /// When it was opened.
        opened_at: u64,
    },
}

/// One client host.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its index.
    pub index: usize,
    /// Its MAC.
    pub mac: Mac,
    /// Its addresses (persistence is per address, or per masked address).
    pub addrs: Vec<IpAddr>,
    /// The services it uses.
    pub targets: Vec<Target>,
    /// Cached VIP MACs, with their expiry.
    neigh: BTreeMap<IpAddr, (Mac, u64)>,
    /// Per VIP: changes of its MAC in the cache (which director gets the
    /// client's traffic).
    epochs: BTreeMap<IpAddr, u64>,
    /// A router in front (ECMP): everything goes to it, without resolving.
    gateway: Option<Mac>,
    /// IPv6 VIPs it sent a solicitation for and has no answer yet (an
    /// INCOMPLETE neighbour entry).
    soliciting: std::collections::BTreeSet<IpAddr>,
    /// Open flows by (address, port).
    pub flows: BTreeMap<(IpAddr, u16), FlowState>,
    next_port: u16,
    /// Replies per server id.
    pub served: BTreeMap<u32, u64>,
    /// Flows opened (spoofed ones not counted).
    pub opened: u64,
    /// Flows opened per protocol: TCP, UDP.
    pub opened_by_protocol: (u64, u64),
    /// Flows that ended normally.
    pub completed: u64,
    /// Flows given up.
    pub lost: u64,
    /// Spoofed opening packets sent.
    pub spoofed: u64,
    prng: Prng,
}

impl Client {
    /// A client with `addrs` using `targets`.
    pub fn new(index: usize, addrs: Vec<IpAddr>, targets: Vec<Target>, prng: Prng) -> Self {
        Client {
            index,
            mac: [0x02, 0, 0, 0, 0x30, index as u8],
            addrs,
            targets,
            neigh: BTreeMap::new(),
            epochs: BTreeMap::new(),
            gateway: None,
            soliciting: std::collections::BTreeSet::new(),
            flows: BTreeMap::new(),
            next_port: 10_000,
            served: BTreeMap::new(),
            opened: 0,
            opened_by_protocol: (0, 0),
            completed: 0,
            lost: 0,
            spoofed: 0,
            prng,
        }
    }

    /// Sends to the VIPs through a router (`mac`), without resolving.
    pub fn set_gateway(&mut self, mac: Mac) {
        self.gateway = Some(mac);
    }

    fn vip_mac(&self, vip: IpAddr, now: u64) -> Option<Mac> {
        self.gateway.or_else(|| {
            self.neigh
                .get(&vip)
                .filter(|(_, exp)| *exp > now)
                .map(|(m, _)| *m)
        })
    }

    /// The neighbour epoch of `vip`.
    pub fn epoch(&self, vip: IpAddr) -> u64 {
        self.epochs.get(&vip).copied().unwrap_or(0)
    }

    /// A random service this client can use (one with an address of its
    /// family), and a random address of that family.
    pub fn pick(&mut self) -> Option<(usize, usize)> {
        let usable: Vec<usize> = (0..self.targets.len())
            .filter(|&t| {
                let v6 = self.targets[t].vip.is_ipv6();
                self.addrs.iter().any(|a| a.is_ipv6() == v6)
            })
            .collect();
        if usable.is_empty() {
            return None;
        }
        let t = usable[self.prng.below(usable.len() as u64) as usize];
        let v6 = self.targets[t].vip.is_ipv6();
        let family: Vec<usize> = (0..self.addrs.len())
            .filter(|&a| self.addrs[a].is_ipv6() == v6)
            .collect();
        let a = family[self.prng.below(family.len() as u64) as usize];
        Some((t, a))
    }

    fn port(&mut self) -> u16 {
        self.next_port = if self.next_port >= 60_000 {
            10_000
        } else {
            self.next_port + 1
        };
        self.next_port
    }

    /// Opens a flow to service `service` from address `addr` with `packets`
    /// packets `gap_us` apart; returns its key.
    pub fn open(
        &mut self,
        now: u64,
        service: usize,
        addr: usize,
        packets: u32,
        gap_us: u64,
    ) -> (IpAddr, u16) {
        let addr = self.addrs[addr % self.addrs.len()];
        let key = (addr, self.port());
        let vip = self.targets[service].vip;
        self.flows.insert(
            key,
            FlowState {
                service,
                opened_at: now,
                server: None,
                remaining: packets.saturating_sub(1),
                gap_us,
                sent_at: now,
                tries: 0,
                waiting: false,
                epoch: self.epoch(vip),
                forget: false,
                step_at: u64::MAX,
            },
        );
        self.opened += 1;
        if self.targets[service].protocol == 17 {
            self.opened_by_protocol.1 += 1;
        } else {
            self.opened_by_protocol.0 += 1;
        }
        key
    }

    /// Queues one spoofed opening packet from `src` (a flood): sent on
    /// its step, then forgotten.
    pub fn open_spoofed(&mut self, now: u64, service: usize, src: IpAddr) -> (IpAddr, u16) {
        let key = (src, self.port());
        self.flows.insert(
            key,
            FlowState {
                service,
                opened_at: now,
                server: None,
                remaining: 0,
                gap_us: 0,
                sent_at: now,
                tries: 0,
                waiting: false,
                epoch: 0,
                forget: true,
                step_at: u64::MAX,
            },
        );
        key
    }

    fn resolve(&mut self, key: (IpAddr, u16), vip: IpAddr, out: &mut Vec<Vec<u8>>) {
        let mut f = Vec::new();
        match (key.0, vip) {
            (IpAddr::V4(me), IpAddr::V4(vip)) => {
                frame::arp(&mut f, true, (self.mac, me), ([0; 6], vip), BROADCAST)
            }
            (IpAddr::V6(me), IpAddr::V6(v)) => {
                self.soliciting.insert(vip);
                frame::ns(&mut f, (self.mac, me), v)
            }
            _ => return,
        }
        out.push(f);
    }

    /// Whether a step of `key` should be queued at `at` (given `now`): no
    /// if one is pending no later; records it if so.
    pub fn want_step(&mut self, key: (IpAddr, u16), at: u64, now: u64) -> bool {
        let Some(f) = self.flows.get_mut(&key) else {
            return false;
        };
        if f.step_at >= now && f.step_at <= at {
            return false;
        }
        f.step_at = at;
        true
    }

    /// Whether a queued step of `key` at `now` is the pending one (others
    /// are stale and do nothing).
    pub fn take_step(&mut self, key: (IpAddr, u16), now: u64) -> bool {
        match self.flows.get_mut(&key) {
            Some(f) if f.step_at == now => {
                f.step_at = u64::MAX;
                true
            }
            _ => false,
        }
    }

    /// Sends what flow `key` needs at `now` (its first packet, the next
    /// one, or a retry); returns when it wants to be looked at again.
    pub fn step(
        &mut self,
        now: u64,
        key: (IpAddr, u16),
        out: &mut Vec<Vec<u8>>,
        reports: &mut Vec<Report>,
    ) -> Option<u64> {
        let service = self.flows.get(&key)?.service;
        let target = self.targets[service];
        let vip_mac = self.vip_mac(target.vip, now);
        let flow = self.flows.get_mut(&key)?;
        if flow.forget {
            let Some(mac) = vip_mac else {
                // Nobody resolved yet: the flood's packet goes nowhere, as
                // a spoofing host's unanswered ARP would leave it.
                self.flows.remove(&key);
                self.resolve(key, target.vip, out);
                return None;
            };
            self.flows.remove(&key);
            let flags = if target.protocol == 17 {
                TcpFlags::NONE
            } else {
                TcpFlags::SYN
            };
            let mut f = Vec::new();
            frame::l4(
                &mut f,
                target.protocol,
                (self.mac, key.0, key.1),
                (mac, target.vip, target.port),
                flags,
                0,
            );
            out.push(f);
            self.spoofed += 1;
            return None;
        }
        if flow.waiting && now < flow.sent_at + RETRY_US {
            return Some(flow.sent_at + RETRY_US);
        }
        if !flow.waiting && now < flow.sent_at {
            return Some(flow.sent_at);
        }
        if flow.waiting && flow.tries >= MAX_TRIES {
            let opened_at = flow.opened_at;
            self.flows.remove(&key);
            self.lost += 1;
            reports.push(Report::Lost {
                flow: key,
                opened_at,
            });
            return None;
        }
        flow.waiting = true;
        flow.tries += 1;
        flow.sent_at = now;
        let Some(mac) = vip_mac else {
            // Resolve first; the packet goes out on the next step.
            self.resolve(key, target.vip, out);
            return Some(now + RETRY_US);
        };
        let flags = if target.protocol == 17 {
            TcpFlags::NONE
        } else if flow.server.is_none() {
            TcpFlags::SYN
        } else {
            TcpFlags::ACK
        };
        let mut f = Vec::new();
        frame::l4(
            &mut f,
            target.protocol,
            (self.mac, key.0, key.1),
            (mac, target.vip, target.port),
            flags,
            0,
        );
        out.push(f);
        Some(now + RETRY_US)
    }

    fn learned(&mut self, now: u64, vip: IpAddr, mac: Mac, wake: &mut Vec<(IpAddr, u16)>) {
        if !self.targets.iter().any(|t| t.vip == vip) {
            return;
        }
        if self.neigh.get(&vip).is_none_or(|(m, _)| *m != mac) {
            *self.epochs.entry(vip).or_insert(0) += 1;
        }
        self.soliciting.remove(&vip);
        self.neigh.insert(vip, (mac, now + ARP_TTL_US));
        let targets = &self.targets;
        wake.extend(
            self.flows
                .iter()
                .filter(|(_, f)| f.waiting && targets[f.service].vip == vip)
                .map(|(k, _)| *k),
        );
    }

    /// Handles a frame; returns a frame to send back (an ARP reply, a
    /// neighbour advertisement, or the FIN that closes a finished TCP flow)
    /// and flows that want a step.
    pub fn receive(
        &mut self,
        now: u64,
        frame_bytes: &[u8],
        reports: &mut Vec<Report>,
        wake: &mut Vec<(IpAddr, u16)>,
    ) -> Option<Vec<u8>> {
        match frame::parse(frame_bytes) {
            Parsed::Arp {
                request,
                sender,
                target,
            } => {
                // A reply, or a gratuitous ARP announcing a VIP.
                self.learned(now, IpAddr::V4(sender.1), sender.0, wake);
                if request && self.addrs.contains(&IpAddr::V4(target)) && sender.1 != target {
                    let mut reply = Vec::new();
                    frame::arp(&mut reply, false, (self.mac, target), sender, sender.0);
                    return Some(reply);
                }
                None
            }
            Parsed::Nd {
                solicit: false,
                src_mac,
                target,
                lladdr,
                override_flag,
                ..
            } => {
                // RFC 4861 7.2.5 (Linux ndisc.c): an advertisement fills
                // an INCOMPLETE entry (one it solicited); an unsolicited
                // one with the override flag updates an entry that
                // exists, and creates none.
                let vip = IpAddr::V6(target);
                let known = self.neigh.contains_key(&vip);
                if (override_flag && known) || self.soliciting.contains(&vip) {
                    self.learned(now, vip, lladdr.unwrap_or(src_mac), wake);
                }
                None
            }
            Parsed::Nd {
                solicit: true,
                src_mac,
                src,
                target,
                ..
            } => {
                if self.addrs.contains(&IpAddr::V6(target)) {
                    let mut reply = Vec::new();
                    frame::na(&mut reply, (self.mac, target), Some((src_mac, src)), target);
                    return Some(reply);
                }
                None
            }
            Parsed::L4 {
                src,
                dst,
                flags,
                id,
                ..
            } => {
                let key = (dst.0, dst.1);
                let flow = self.flows.get_mut(&key)?;
                let target = self.targets[flow.service];
                if src.0 != target.vip || !flow.waiting {
                    return None;
                }
                if flags.0 & 0x04 != 0 || id == 0 {
                    let opened_at = flow.opened_at;
                    self.flows.remove(&key);
                    self.lost += 1;
                    reports.push(Report::Lost {
                        flow: key,
                        opened_at,
                    });
                    return None;
                }
                *self.served.entry(id).or_insert(0) += 1;
                // The previous reply's server: each move is reported once.
                let before = flow.server.replace(id);
                reports.push(Report::Reply {
                    flow: key,
                    service: flow.service,
                    server: id,
                    before,
                    opened_at: flow.opened_at,
                    epoch: flow.epoch,
                    epoch_now: self.epochs.get(&target.vip).copied().unwrap_or(0),
                });
                flow.waiting = false;
                flow.tries = 0;
                if flow.remaining == 0 {
                    self.flows.remove(&key);
                    self.completed += 1;
                    reports.push(Report::Done);
                    // Close it, so the director's counts see it end.
                    if target.protocol == 6
                        && let Some(mac) = self.vip_mac(target.vip, now)
                    {
                        let mut fin = Vec::new();
                        frame::l4(
                            &mut fin,
                            6,
                            (self.mac, key.0, key.1),
                            (mac, target.vip, target.port),
                            TcpFlags(0x11),
                            0,
                        );
                        return Some(fin);
                    }
                    return None;
                }
                flow.remaining -= 1;
                flow.sent_at = now + flow.gap_us;
                wake.push(key);
                None
            }
            _ => None,
        }
    }
}
