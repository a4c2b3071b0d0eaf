//! A simulated client host with several addresses, talking to the VIP:
//! it resolves the VIP's MAC by ARP (caching it, and updating the cache on
//! gratuitous ARP like a Linux host), opens flows (short and long-lived,
//! TCP or UDP), sends their packets, retries unanswered ones, and records
//! which real server answered each (the id in the reply).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use vrlb_core::lb::TcpFlags;
use vrlb_core::rand::Prng;

use crate::frame::{self, BROADCAST, Mac, Parsed};

/// How long an ARP entry lives without being refreshed.
pub const ARP_TTL_US: u64 = 30_000_000;
/// How long a packet waits for its reply before it is sent again.
pub const RETRY_US: u64 = 1_000_000;
/// Attempts per packet before the flow counts as lost.
pub const MAX_TRIES: u32 = 6;

/// One flow's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowState {
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
    /// The client's ARP epoch when it was opened.
    pub epoch: u64,
}

/// What a client reports to the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A reply came: `first` for the flow's first answer.
    Reply {
        /// The flow's source (client address, port).
        flow: (Ipv4Addr, u16),
        /// Server id.
        server: u32,
        /// The server that answered the flow before, if any.
        before: Option<u32>,
        /// Sim time the flow was opened.
        opened_at: u64,
        /// The client's ARP epoch when the flow was opened.
        epoch: u64,
        /// The client's ARP epoch now.
        epoch_now: u64,
    },
    /// The flow ended normally.
    Done,
    /// The flow gave up (no answer after every retry) or was refused.
    Lost {
        /// The flow's source.
        flow: (Ipv4Addr, u16),
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
    /// Its addresses (persistence is per address).
    pub addrs: Vec<Ipv4Addr>,
    /// The service it uses.
    pub vip: (Ipv4Addr, u16),
    /// 6 (TCP) or 17 (UDP).
    pub protocol: u8,
    vip_mac: Option<(Mac, u64)>,
    /// Changes of the VIP's MAC in the ARP cache: which director gets the
    /// client's traffic.
    pub arp_epoch: u64,
    /// Open flows by (address, port).
    pub flows: BTreeMap<(Ipv4Addr, u16), FlowState>,
    next_port: u16,
    /// Replies per server id.
    pub served: BTreeMap<u32, u64>,
    /// Flows opened, answered, lost.
    pub opened: u64,
    /// Flows that ended normally.
    pub completed: u64,
    /// Flows given up.
    pub lost: u64,
    prng: Prng,
}

impl Client {
    /// A client with `addrs` using `vip`.
    pub fn new(
        index: usize,
        addrs: Vec<Ipv4Addr>,
        vip: (Ipv4Addr, u16),
        protocol: u8,
        prng: Prng,
    ) -> Self {
        Client {
            index,
            mac: [0x02, 0, 0, 0, 0x30, index as u8],
            addrs,
            vip,
            protocol,
            vip_mac: None,
            arp_epoch: 0,
            flows: BTreeMap::new(),
            next_port: 10_000,
            served: BTreeMap::new(),
            opened: 0,
            completed: 0,
            lost: 0,
            prng,
        }
    }

    /// Sends to the VIP through a router (`mac`), without ARP.
    pub fn set_gateway(&mut self, mac: Mac) {
        self.vip_mac = Some((mac, u64::MAX));
    }

    fn vip_mac(&self, now: u64) -> Option<Mac> {
        self.vip_mac.filter(|(_, exp)| *exp > now).map(|(m, _)| m)
    }

    /// Opens a flow from address `addr_index` with `packets` packets `gap_us`
    /// apart; returns its key.
    pub fn open(
        &mut self,
        now: u64,
        addr_index: usize,
        packets: u32,
        gap_us: u64,
    ) -> (Ipv4Addr, u16) {
        let addr = self.addrs[addr_index % self.addrs.len()];
        self.next_port = if self.next_port >= 60_000 {
            10_000
        } else {
            self.next_port + 1
        };
        let key = (addr, self.next_port);
        self.flows.insert(
            key,
            FlowState {
                opened_at: now,
                server: None,
                remaining: packets.saturating_sub(1),
                gap_us,
                sent_at: now,
                tries: 0,
                waiting: false,
                epoch: self.arp_epoch,
            },
        );
        self.opened += 1;
        key
    }

    /// A random address index.
    pub fn pick_addr(&mut self) -> usize {
        self.prng.below(self.addrs.len() as u64) as usize
    }

    /// Sends what flow `key` needs at `now` (its first packet, the next
    /// one, or a retry); returns when it wants to be looked at again.
    pub fn step(
        &mut self,
        now: u64,
        key: (Ipv4Addr, u16),
        out: &mut Vec<Vec<u8>>,
        reports: &mut Vec<Report>,
    ) -> Option<u64> {
        let vip_mac = self.vip_mac(now);
        let flow = self.flows.get_mut(&key)?;
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
        let Some(mac) = vip_mac else {
            // Resolve first; the packet goes out on the next step.
            let mut f = Vec::new();
            frame::arp(
                &mut f,
                true,
                (self.mac, key.0),
                ([0; 6], self.vip.0),
                BROADCAST,
            );
            out.push(f);
            flow.waiting = true;
            flow.tries += 1;
            flow.sent_at = now;
            return Some(now + RETRY_US);
        };
        let flags = if self.protocol == 17 {
            TcpFlags::NONE
        } else if flow.server.is_none() {
            TcpFlags::SYN
        } else {
            TcpFlags::ACK
        };
        let mut f = Vec::new();
        frame::l4(
            &mut f,
            self.protocol,
            (self.mac, key.0, key.1),
            (mac, self.vip.0, self.vip.1),
            flags,
            0,
        );
        out.push(f);
        flow.waiting = true;
        flow.tries += 1;
        flow.sent_at = now;
        Some(now + RETRY_US)
    }

    /// Handles a frame; returns a frame to send back (an ARP reply, or the
    /// FIN that closes a finished TCP flow) and flows that want a step.
    pub fn receive(
        &mut self,
        now: u64,
        frame_bytes: &[u8],
        reports: &mut Vec<Report>,
        wake: &mut Vec<(Ipv4Addr, u16)>,
    ) -> Option<Vec<u8>> {
        match frame::parse(frame_bytes) {
            Parsed::Arp {
                request,
                sender,
                target,
            } => {
                if sender.1 == self.vip.0 {
                    // A reply, or a gratuitous ARP announcing the VIP.
                    if self.vip_mac.is_none_or(|(m, _)| m != sender.0) {
                        self.arp_epoch += 1;
                    }
                    self.vip_mac = Some((sender.0, now + ARP_TTL_US));
                    wake.extend(
                        self.flows
                            .iter()
                            .filter(|(_, f)| f.waiting)
                            .map(|(k, _)| *k),
                    );
                }
                if request && self.addrs.contains(&target) && sender.1 != target {
                    let mut reply = Vec::new();
                    frame::arp(&mut reply, false, (self.mac, target), sender, sender.0);
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
            } if src.0 == self.vip.0 => {
                let key = (dst.0, dst.1);
                let flow = self.flows.get_mut(&key)?;
                if !flow.waiting {
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
                    server: id,
                    before,
                    opened_at: flow.opened_at,
                    epoch: flow.epoch,
                    epoch_now: self.arp_epoch,
                });
                flow.waiting = false;
                flow.tries = 0;
                if flow.remaining == 0 {
                    self.flows.remove(&key);
                    self.completed += 1;
                    reports.push(Report::Done);
                    // Close it, so the director's counts see it end.
                    if self.protocol == 6
                        && let Some(mac) = self.vip_mac(now)
                    {
                        let mut fin = Vec::new();
                        frame::l4(
                            &mut fin,
                            6,
                            (self.mac, key.0, key.1),
                            (mac, self.vip.0, self.vip.1),
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
