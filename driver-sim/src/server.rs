//! A simulated real server in direct-routing mode: the VIP sits on its
//! loopback (it accepts frames for the VIP but never answers ARP for it,
//! like `arp_ignore=1`), and it replies straight to the client. It can
//! answer, refuse (RST), hang (say nothing) or answer slowly; health-check
//! probes see the same behaviour.

use std::net::Ipv4Addr;

use vrlb_core::lb::TcpFlags;

use crate::frame::{self, Mac, Parsed};

/// How the server behaves now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Replies at once.
    Answer,
    /// Refuses (TCP RST; probes fail at once).
    Refuse,
    /// Says nothing (probes time out).
    Hang,
    /// Replies after this many microseconds.
    Slow(u64),
}

/// One real server.
#[derive(Debug, Clone)]
pub struct Server {
    /// Its index (the id it puts in replies is `index + 1`).
    pub index: usize,
    /// Its MAC.
    pub mac: Mac,
    /// Its own address.
    pub addr: Ipv4Addr,
    /// The VIPs on its loopback.
    pub vips: Vec<Ipv4Addr>,
    /// Behaviour.
    pub mode: Mode,
    /// Sim time the mode last changed.
    pub mode_since: u64,
    /// Requests it answered.
    pub answered: u64,
}

impl Server {
    /// A server that answers.
    pub fn new(index: usize, addr: Ipv4Addr, vips: Vec<Ipv4Addr>) -> Self {
        Server {
            index,
            mac: [0x02, 0, 0, 0, 0x20, index as u8],
            addr,
            vips,
            mode: Mode::Answer,
            mode_since: 0,
            answered: 0,
        }
    }

    /// The id it writes into replies.
    pub fn reply_id(&self) -> u32 {
        self.index as u32 + 1
    }

    /// Handles a frame; returns a reply and its delay, if any.
    pub fn receive(
        &mut self,
        frame_bytes: &[u8],
        client_mac: impl Fn(Ipv4Addr) -> Option<Mac>,
    ) -> Option<(Vec<u8>, u64)> {
        let (_, dst_mac) = frame::macs(frame_bytes)?;
        match frame::parse(frame_bytes) {
            Parsed::Arp {
                request: true,
                sender,
                target,
            } if target == self.addr => {
                let mut reply = Vec::new();
                frame::arp(&mut reply, false, (self.mac, self.addr), sender, sender.0);
                Some((reply, 0))
            }
            Parsed::L4 {
                protocol,
                src,
                dst,
                flags,
                ..
            } if dst_mac == self.mac && (self.vips.contains(&dst.0) || dst.0 == self.addr) => {
                // A closing FIN needs nothing the simulation measures.
                if flags.0 & 0x01 != 0 {
                    return None;
                }
                let mac = client_mac(src.0)?;
                let (reply_flags, delay) = match self.mode {
                    Mode::Answer => (
                        if flags.0 & 0x02 != 0 {
                            TcpFlags(0x12)
                        } else {
                            TcpFlags::ACK
                        },
                        0,
                    ),
                    Mode::Refuse => (TcpFlags::RST, 0),
                    Mode::Hang => return None,
                    Mode::Slow(us) => (TcpFlags::ACK, us),
                };
                if self.mode != Mode::Refuse {
                    self.answered += 1;
                }
                let id = if self.mode == Mode::Refuse {
                    0
                } else {
                    self.reply_id()
                };
                let mut reply = Vec::new();
                frame::l4(
                    &mut reply,
                    protocol,
                    (self.mac, dst.0, dst.1),
                    (mac, src.0, src.1),
                    reply_flags,
                    id,
                );
                Some((reply, delay))
            }
            _ => None,
        }
    }
}
