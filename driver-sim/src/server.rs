//! A simulated real server in direct-routing mode: the VIPs sit on its
//! loopback (it accepts frames for them but never answers ARP or neighbour
//! solicitations for them, like `arp_ignore=1`), and it replies straight
//! to the client. It can answer, refuse (RST), hang (say nothing), answer
//! slowly, or answer with an error status; health-check probes (a TCP
//! connect, an HTTP request after it, a MISC_CHECK script's UDP question)
//! reach it as frames and see the same behaviour.

use std::net::IpAddr;

use vrlb_core::lb::TcpFlags;

use crate::frame::{self, Mac, PROBE_HTTP_REQUEST, PROBE_MISC_REQUEST, Parsed};

/// How the server behaves now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Replies at once.
    Answer,
    /// Refuses (TCP RST; probes fail at once).
    Refuse,
    /// Says nothing (probes time out).
    Hang,
    /// Replies after this many microseconds (probes too).
    Slow(u64),
    /// Accepts connections and serves clients, but its application answers
    /// HTTP 500 and its MISC_CHECK script exits 1: only TCP_CHECK passes.
    BadStatus,
}

impl Mode {
    /// A small code for traces.
    pub fn code(self) -> u64 {
        match self {
            Mode::Answer => 0,
            Mode::Refuse => 1,
            Mode::Hang => 2,
            Mode::Slow(_) => 3,
            Mode::BadStatus => 4,
        }
    }
}

/// One real server.
#[derive(Debug, Clone)]
pub struct Server {
    /// Its index (the id it puts in replies is `index + 1`).
    pub index: usize,
    /// Its MAC.
    pub mac: Mac,
    /// Its own addresses.
    pub addrs: Vec<IpAddr>,
    /// The VIPs on its loopback.
    pub vips: Vec<IpAddr>,
    /// Behaviour.
    pub mode: Mode,
    /// Sim time the mode last changed.
    pub mode_since: u64,
    /// Requests it answered.
    pub answered: u64,
    /// Probes it answered (any way).
    pub probes: u64,
}

impl Server {
    /// A server that answers.
    pub fn new(index: usize, addrs: Vec<IpAddr>, vips: Vec<IpAddr>) -> Self {
        Server {
            index,
            mac: [0x02, 0, 0, 0, 0x20, index as u8],
            addrs,
            vips,
            mode: Mode::Answer,
            mode_since: 0,
            answered: 0,
            probes: 0,
        }
    }

    /// The id it writes into replies.
    pub fn reply_id(&self) -> u32 {
        self.index as u32 + 1
    }

    /// Whether it has `addr`.
    pub fn has(&self, addr: IpAddr) -> bool {
        self.addrs.contains(&addr)
    }

    /// Handles a frame; returns a reply and its delay, if any. `mac_of`
    /// knows the MACs of directors and clients (static neighbour entries).
    pub fn receive(
        &mut self,
        frame_bytes: &[u8],
        mac_of: impl Fn(IpAddr) -> Option<Mac>,
    ) -> Option<(Vec<u8>, u64)> {
        let (_, dst_mac) = frame::macs(frame_bytes)?;
        match frame::parse(frame_bytes) {
            Parsed::Arp {
                request: true,
                sender,
                target,
            } if self.has(IpAddr::V4(target)) => {
                let mut reply = Vec::new();
                frame::arp(&mut reply, false, (self.mac, target), sender, sender.0);
                Some((reply, 0))
            }
            Parsed::Nd {
                solicit: true,
                src_mac,
                src,
                target,
                ..
            } if self.has(IpAddr::V6(target)) => {
                let mut reply = Vec::new();
                frame::na(&mut reply, (self.mac, target), Some((src_mac, src)), target);
                Some((reply, 0))
            }
            Parsed::L4 {
                protocol,
                src,
                dst,
                flags,
                id,
            } if dst_mac == self.mac && self.has(dst.0) => {
                self.probe(protocol, src, dst, flags, id, mac_of(src.0)?)
            }
            Parsed::L4 {
                protocol,
                src,
                dst,
                flags,
                ..
            } if dst_mac == self.mac && self.vips.contains(&dst.0) => {
                // A closing FIN needs nothing the simulation measures.
                if flags.0 & 0x01 != 0 {
                    return None;
                }
                let mac = mac_of(src.0)?;
                let (reply_flags, delay) = match self.mode {
                    Mode::Answer | Mode::BadStatus => (
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
                let id = if self.mode == Mode::Refuse {
                    0
                } else {
                    self.answered += 1;
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

    /// A health probe to its own address: a TCP SYN (TCP_CHECK, and the
    /// first step of HTTP_GET), an HTTP request, or a MISC_CHECK question.
    fn probe(
        &mut self,
        protocol: u8,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        flags: TcpFlags,
        id: u32,
        mac: Mac,
    ) -> Option<(Vec<u8>, u64)> {
        let syn = protocol == 6 && flags.0 & 0x02 != 0;
        let (reply_flags, answer, delay) = match (protocol, self.mode) {
            (_, Mode::Hang) => return None,
            (6, Mode::Refuse) => (TcpFlags::RST, 0, 0),
            // The script's probe finds nothing listening: exit status 1.
            (_, Mode::Refuse) => (TcpFlags::NONE, 1, 0),
            (6, _) if syn => {
                // A slow server is slow at every step (a full accept queue,
                // then the application): an HTTP probe waits twice.
                let delay = match self.mode {
                    Mode::Slow(us) => us,
                    _ => 0,
                };
                (TcpFlags(0x12), 0, delay)
            }
            (6, mode) if id == PROBE_HTTP_REQUEST => match mode {
                Mode::BadStatus => (TcpFlags::ACK, 500, 0),
                Mode::Slow(us) => (TcpFlags::ACK, 200, us),
                _ => (TcpFlags::ACK, 200, 0),
            },
            (17, mode) if id == PROBE_MISC_REQUEST => match mode {
                Mode::BadStatus => (TcpFlags::NONE, 1, 0),
                Mode::Slow(us) => (TcpFlags::NONE, 0, us),
                _ => (TcpFlags::NONE, 0, 0),
            },
            _ => return None,
        };
        self.probes += 1;
        let mut reply = Vec::new();
        frame::l4(
            &mut reply,
            protocol,
            (self.mac, dst.0, dst.1),
            (mac, src.0, src.1),
            reply_flags,
            answer,
        );
        Some((reply, delay))
    }
}
