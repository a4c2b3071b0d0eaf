//! The ECMP router in front of active-active directors: it holds one route
//! to the VIP per director that announces it and spreads flows over them by
//! a hash of the 5-tuple, as a Linux router with multipath routes and
//! layer-4 hashing does. Routes appear when a director announces and go
//! when it withdraws (or, after a crash, when the BGP session times out).

use std::net::IpAddr;

use crate::frame::Mac;
use crate::scenario::EcmpHash;

/// The router.
#[derive(Debug, Clone)]
pub struct Router {
    /// Its MAC (the clients' gateway).
    pub mac: Mac,
    /// Its hash.
    pub hash: EcmpHash,
    /// Directors with a route, in index order.
    pub next_hops: Vec<usize>,
    /// Packets sent to each director.
    pub per_director: Vec<u64>,
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn flow_hash(src: (IpAddr, u16), dst: (IpAddr, u16), protocol: u8) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in octets(src.0)
        .iter()
        .chain(&src.1.to_be_bytes())
        .chain(&octets(dst.0))
        .chain(&dst.1.to_be_bytes())
        .chain(&[protocol])
    {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    // Finish so the top bits (the threshold regions) are mixed too.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

impl Router {
    /// A router with no routes yet.
    pub fn new(directors: usize, hash: EcmpHash) -> Self {
        Router {
            mac: [0x02, 0, 0, 0, 0x40, 1],
            hash,
            next_hops: Vec::new(),
            per_director: vec![0; directors],
        }
    }

    /// Adds or removes `d`'s route.
    pub fn set_route(&mut self, d: usize, up: bool) {
        self.next_hops.retain(|x| *x != d);
        if up {
            self.next_hops.push(d);
            self.next_hops.sort_unstable();
        }
    }

    /// The director a packet of this flow goes to.
    pub fn pick(&mut self, src: (IpAddr, u16), dst: (IpAddr, u16), protocol: u8) -> Option<usize> {
        let n = self.next_hops.len() as u64;
        if n == 0 {
            return None;
        }
        let h = flow_hash(src, dst, protocol);
        let i = match self.hash {
            EcmpHash::Modulo => h % n,
            // One region per next hop (with one, the whole space: the
            // region size u64::MAX / 1 + 1 would overflow).
            EcmpHash::Threshold if n == 1 => 0,
            EcmpHash::Threshold => h / (u64::MAX / n + 1),
        };
        let d = self.next_hops[i.min(n - 1) as usize];
        self.per_director[d] += 1;
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_and_threshold_moves_fewer_flows() {
        let flows: Vec<(IpAddr, u16)> = (0..3000)
            .map(|i| {
                (
                    IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, (i % 250) as u8)),
                    1000 + i as u16,
                )
            })
            .collect();
        let vip = (IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 240)), 80);
        let moved = |hash| {
            let mut r = Router::new(3, hash);
            for d in 0..3 {
                r.set_route(d, true);
            }
            let before: Vec<usize> = flows.iter().map(|f| r.pick(*f, vip, 6).unwrap()).collect();
            assert!(
                r.per_director.iter().all(|n| *n > 800),
                "{:?}",
                r.per_director
            );
            r.set_route(2, false);
            let after: Vec<usize> = flows.iter().map(|f| r.pick(*f, vip, 6).unwrap()).collect();
            before
                .iter()
                .zip(&after)
                .filter(|(b, a)| **b != 2 && b != a)
                .count()
        };
        // Flows of surviving directors: hash-threshold moves fewer of them.
        assert!(moved(EcmpHash::Threshold) < moved(EcmpHash::Modulo));
    }
}
