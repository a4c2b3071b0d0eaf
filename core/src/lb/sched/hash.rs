//! sh and dh: source and destination hashing over 256 buckets
//! (ip_vs_sh.c, ip_vs_dh.c). Buckets are filled in list order, each server
//! repeated `weight` times (a weight-0 server still gets one bucket), and
//! the bucket is `(offset + (port + addr) * 2654435761) & 255`. The same
//! table is every service's stateless fallback when the connection table
//! is full.

use core::net::IpAddr;

use super::{PickInput, View};
use crate::lb::addr::fold;
use crate::lb::server::{NONE, ServerSlot};

/// Buckets per table (`CONFIG_IP_VS_SH_TAB_BITS` = 8).
pub(crate) const BUCKETS: usize = 256;
const MULT: u32 = 2_654_435_761;

/// `ip_vs_sh_reassign` / `ip_vs_dh_reassign`.
pub(crate) fn reassign(v: &mut View<'_>) {
    let mut x = v.svc.head;
    let mut d_count = 0u64;
    for b in 0..BUCKETS {
        if v.svc.head == NONE {
            v.svc.buckets[b] = NONE;
            continue;
        }
        if x == NONE {
            x = v.svc.head;
        }
        v.svc.buckets[b] = x;
        d_count += 1;
        if d_count >= u64::from(v.servers[x as usize].cfg.weight) {
            x = v.servers[x as usize].next;
            d_count = 0;
        }
    }
}

/// `ip_vs_sh_hashkey`.
#[inline]
pub(crate) fn sh_bucket(addr: IpAddr, port: u16, offset: u32) -> usize {
    (offset.wrapping_add(u32::from(port).wrapping_add(fold(addr)).wrapping_mul(MULT)) as usize)
        & (BUCKETS - 1)
}

#[inline]
fn unavailable(s: &ServerSlot) -> bool {
    s.cfg.weight == 0 || s.overloaded
}

/// sh: the bucket of the source address (and port with `sh-port`); with
/// `sh-fallback`, walk the table from there for an available server.
pub(crate) fn sh_schedule(v: &mut View<'_>, input: &PickInput) -> Option<u16> {
    let port = if v.svc.cfg.flags.port {
        input.src_port
    } else {
        0
    };
    sh_lookup(
        &v.svc.buckets,
        v.servers,
        input.src,
        port,
        v.svc.cfg.flags.fallback,
    )
}

/// The sh lookup on any bucket table (also the stateless fallback).
pub(crate) fn sh_lookup(
    buckets: &[u16; BUCKETS],
    servers: &[ServerSlot],
    addr: IpAddr,
    port: u16,
    fallback: bool,
) -> Option<u16> {
    let ihash = sh_bucket(addr, port, 0);
    let d = buckets[ihash];
    if d == NONE {
        return None;
    }
    if !unavailable(&servers[d as usize]) {
        return Some(d);
    }
    if !fallback {
        return None;
    }
    for offset in 0..BUCKETS as u32 {
        let roffset = (offset + ihash as u32) % BUCKETS as u32;
        let d = buckets[sh_bucket(addr, port, roffset)];
        if d == NONE {
            break;
        }
        if !unavailable(&servers[d as usize]) {
            return Some(d);
        }
    }
    None
}

/// dh: the bucket of the destination address; no fallback.
pub(crate) fn dh_schedule(v: &mut View<'_>, input: &PickInput) -> Option<u16> {
    let b = (fold(input.dst).wrapping_mul(MULT) as usize) & (BUCKETS - 1);
    let d = v.svc.buckets[b];
    if d == NONE {
        return None;
    }
    let s = &v.servers[d as usize];
    (s.available() && !unavailable(s)).then_some(d)
}
