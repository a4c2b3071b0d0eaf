//! One layer-2 segment: a learning switch joining host ports, with the
//! faults a real network has: latency and jitter (so reordering), loss,
//! duplication, partitions and one-way links. The switch learns source
//! MACs from every frame it carries, gratuitous ARP included, so a VIP's
//! traffic follows whichever director announced it last.

use std::collections::BTreeMap;

use vrlb_core::rand::Prng;

use crate::frame::{BROADCAST, Mac, macs};

/// Link behaviour for the whole segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkParams {
    /// One-way latency.
    pub latency_us: u64,
    /// Uniform extra delay in `0..jitter_us`.
    pub jitter_us: u64,
    /// Frames lost, per million.
    pub loss_ppm: u32,
    /// Frames delivered twice, per million.
    pub dup_ppm: u32,
}

impl Default for LinkParams {
    fn default() -> Self {
        LinkParams {
            latency_us: 100,
            jitter_us: 0,
            loss_ppm: 0,
            dup_ppm: 0,
        }
    }
}

/// What the segment's faults did to frames so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameFaults {
    /// Frames the loss rate dropped.
    pub lost: u64,
    /// Frames delivered twice.
    pub duplicated: u64,
    /// Deliveries delayed by jitter.
    pub jittered: u64,
    /// Deliveries that overtook an earlier frame between the same ports.
    pub reordered: u64,
    /// Frames a partition or one-way block kept from a port.
    pub cut: u64,
}

/// The switch and its faults.
#[derive(Debug)]
pub struct Segment {
    /// Current link behaviour.
    pub link: LinkParams,
    /// Which part of a partition each port is in (same number: connected).
    part: Vec<u32>,
    /// (from, to) port pairs whose frames are dropped (one-way links).
    blocked: Vec<(usize, usize)>,
    learned: BTreeMap<Mac, usize>,
    prng: Prng,
    /// Latest arrival scheduled per (from, to) port pair, to count
    /// reordering.
    last_arrival: Vec<u64>,
    /// What the faults did.
    pub faults: FrameFaults,
}

/// Where a frame goes, with its delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The receiving port.
    pub port: usize,
    /// After this long.
    pub delay_us: u64,
}

impl Segment {
    /// A segment of `ports` ports, all connected.
    pub fn new(ports: usize, prng: Prng) -> Self {
        Segment {
            link: LinkParams::default(),
            part: vec![0; ports],
            blocked: Vec::new(),
            learned: BTreeMap::new(),
            prng,
            last_arrival: vec![0; ports * ports],
            faults: FrameFaults::default(),
        }
    }

    /// Whether `from` can reach `to` now.
    pub fn connected(&self, from: usize, to: usize) -> bool {
        self.part[from] == self.part[to] && !self.blocked.contains(&(from, to))
    }

    /// Puts `port` in partition `part` (0 is everyone's default).
    pub fn set_part(&mut self, port: usize, part: u32) {
        self.part[port] = part;
    }

    /// Blocks (or unblocks) frames from `from` to `to`.
    pub fn set_blocked(&mut self, from: usize, to: usize, blocked: bool) {
        self.blocked.retain(|b| *b != (from, to));
        if blocked {
            self.blocked.push((from, to));
        }
    }

    /// Removes every partition and one-way block.
    pub fn heal(&mut self) {
        self.part.iter_mut().for_each(|p| *p = 0);
        self.blocked.clear();
    }

    /// Ports on the segment.
    pub fn ports(&self) -> usize {
        self.part.len()
    }

    /// The port that last sent from `mac`.
    pub fn port_of(&self, mac: &Mac) -> Option<usize> {
        self.learned.get(mac).copied()
    }

    /// The deliveries of a frame sent on `from` at `now` (learning its
    /// source).
    pub fn send(&mut self, from: usize, frame: &[u8], now: u64, out: &mut Vec<Delivery>) {
        out.clear();
        let Some((src, dst)) = macs(frame) else {
            return;
        };
        self.learned.insert(src, from);
        let flood = dst == BROADCAST || dst[0] & 1 == 1;
        let target = if flood {
            None
        } else {
            self.learned.get(&dst).copied()
        };
        match target {
            // A known unicast destination: one port to consider.
            Some(port) => {
                if port != from {
                    self.deliver(from, port, now, out);
                }
            }
            None => {
                for port in 0..self.part.len() {
                    if port != from {
                        self.deliver(from, port, now, out);
                    }
                }
            }
        }
    }

    fn deliver(&mut self, from: usize, port: usize, now: u64, out: &mut Vec<Delivery>) {
        if !self.connected(from, port) {
            self.faults.cut += 1;
            return;
        }
        if self.prng.chance_ppm(self.link.loss_ppm) {
            self.faults.lost += 1;
            return;
        }
        let copies = if self.prng.chance_ppm(self.link.dup_ppm) {
            self.faults.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = self.prng.below(self.link.jitter_us);
            if jitter > 0 {
                self.faults.jittered += 1;
            }
            let delay_us = self.link.latency_us + jitter;
            let last = &mut self.last_arrival[from * self.part.len() + port];
            if now + delay_us < *last {
                self.faults.reordered += 1;
            }
            *last = (*last).max(now + delay_us);
            out.push(Delivery { port, delay_us });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame;
    use std::net::Ipv4Addr;

    const A: Mac = [2, 0, 0, 0, 0, 1];
    const B: Mac = [2, 0, 0, 0, 0, 2];

    fn frame_from(src: Mac, dst: Mac) -> Vec<u8> {
        let mut f = Vec::new();
        frame::arp(
            &mut f,
            false,
            (src, Ipv4Addr::new(192, 0, 2, 1)),
            (dst, Ipv4Addr::new(192, 0, 2, 2)),
            dst,
        );
        f
    }

    #[test]
    fn learns_floods_unknown_and_honours_partitions() {
        let mut s = Segment::new(3, Prng::new(1));
        let mut out = Vec::new();
        s.send(0, &frame_from(A, B), 0, &mut out);
        assert_eq!(
            out.iter().map(|d| d.port).collect::<Vec<_>>(),
            [1, 2],
            "unknown destination floods"
        );
        s.send(1, &frame_from(B, A), 0, &mut out);
        assert_eq!(
            out.iter().map(|d| d.port).collect::<Vec<_>>(),
            [0],
            "learned"
        );
        // GARP from another port moves the MAC.
        s.send(2, &frame_from(A, BROADCAST), 0, &mut out);
        s.send(1, &frame_from(B, A), 0, &mut out);
        assert_eq!(out.iter().map(|d| d.port).collect::<Vec<_>>(), [2]);
        s.set_part(2, 1);
        s.send(1, &frame_from(B, A), 0, &mut out);
        assert!(out.is_empty(), "partitioned");
        s.heal();
        s.set_blocked(1, 2, true);
        s.send(1, &frame_from(B, A), 0, &mut out);
        assert!(out.is_empty(), "one-way block");
        s.send(2, &frame_from(A, B), 0, &mut out);
        assert_eq!(out.len(), 1, "the other way still works");
    }

    #[test]
    fn loss_rate_is_roughly_right() {
        let mut s = Segment::new(2, Prng::new(9));
        s.link.loss_ppm = 100_000;
        let mut out = Vec::new();
        let mut delivered = 0;
        for _ in 0..10_000 {
            s.send(0, &frame_from(A, BROADCAST), 0, &mut out);
            delivered += out.len();
        }
        assert!((8_700..9_300).contains(&delivered), "{delivered}");
    }
}
