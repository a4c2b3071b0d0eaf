//! mh: Maglev hashing (ip_vs_mh.c, after Eisenbud et al., NSDI 2016).
//! Each server gets a permutation of the table from two keyed hashes of its
//! address and port; servers take turns (`last_weight / gcd`, shifted down
//! so the largest fits in `bits` bits) claiming their next free preferred
//! entry until the table is full. The table size is a prime up to 131071.
//! Lookups hash the source address (and port with `mh-port`); with
//! `mh-fallback` an unavailable server's clients are rehashed over the
//! table. Built on every server add, delete and update, as the kernel does.
//!
//! The turns go round the servers sorted by (address, port), not in list
//! order, so every director with the same servers and weights builds the
//! same table whatever order it learned them in (a flap re-adds a server at
//! the list head; a restarted director adds them in configuration order).

use core::net::IpAddr;

use super::{PickInput, View};
use crate::lb::addr::fold;
use crate::lb::hsiphash::hsiphash_u32;
use crate::lb::server::{NONE, ServerSlot, SlotState};

/// The kernel's fixed hsiphash keys (`generate_hash_secret`): the same
/// permutations as IPVS on a 64-bit little-endian host.
const HASH1: (u64, u64) = (2_654_435_761, 2_654_435_761);
const HASH2: (u64, u64) = (2_654_446_892, 2_654_446_892);

/// `ip_vs_mh_hashkey`.
#[inline]
pub(crate) fn hashkey(addr: IpAddr, port: u16, key: (u64, u64), offset: u32) -> u32 {
    hsiphash_u32(
        key,
        offset
            .wrapping_add(u32::from(port))
            .wrapping_add(fold(addr)),
    )
}

/// Bits the largest turn count may use for a table of `size` entries
/// (`IP_VS_MH_TAB_BITS`: half the table's index in the kernel's list of
/// primes, i.e. half of `ilog2(size) + 1`).
pub(crate) const fn tab_bits(size: u32) -> u32 {
    size.ilog2().div_ceil(2)
}

/// Whether `n` is a prime vrlb accepts as an mh table size.
pub const fn valid_table_size(n: u32) -> bool {
    if n < 3 || n > crate::lb::storage::MH_TABLE_MAX {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

const fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// `ip_vs_mh_dest_changed`: new gcd and shift, then rebuild the table.
pub(crate) fn dest_changed(v: &mut View<'_>) {
    let size = v.svc.cfg.mh_table_size;
    let mut g = 0u32;
    let mut max = 0u32;
    let mut n = 0usize;
    let mut x = v.svc.head;
    while x != NONE {
        let s = &v.servers[x as usize];
        let w = s.last_weight;
        if w > 0 {
            g = if g > 0 { gcd(w, g) } else { w };
        }
        max = max.max(w);
        // mh keeps no tournament tree: its storage holds the order.
        v.tree[n] = x;
        n += 1;
        x = s.next;
    }
    v.svc.mh_gcd = g;
    v.svc.mh_rshift = match max.checked_div(g) {
        None => 0,
        Some(mw) => (32 - mw.leading_zeros()).saturating_sub(tab_bits(size)),
    };
    let order = &mut v.tree[..n];
    canonical_order(order, v.servers);
    build(
        order,
        v.svc.mh_gcd,
        v.svc.mh_rshift,
        size,
        v.servers,
        &mut v.mh[..size as usize],
    );
}

/// Sorts local indices by (address, port). vrlb's deviation from
/// ip_vs_mh.c, which populates in dest-list order (so two IPVS directors
/// agree only when their lists have the same history).
pub(crate) fn canonical_order(order: &mut [u16], servers: &[ServerSlot]) {
    order.sort_unstable_by_key(|&x| {
        let c = &servers[x as usize].cfg;
        (c.addr, c.port)
    });
}

/// `ip_vs_mh_permutate` + `ip_vs_mh_populate`, the turns going round
/// `order` (local indices).
pub(crate) fn build(
    order: &[u16],
    gcd: u32,
    rshift: u32,
    size: u32,
    servers: &mut [ServerSlot],
    table: &mut [u16],
) {
    table.fill(NONE);
    if gcd < 1 || order.is_empty() {
        return;
    }
    for &x in order {
        let s = &mut servers[x as usize];
        s.mh_offset = hashkey(s.cfg.addr, s.cfg.port, HASH1, 0) % size;
        s.mh_skip = hashkey(s.cfg.addr, s.cfg.port, HASH2, 0) % (size - 1) + 1;
        s.mh_perm = s.mh_offset;
        let lw = s.last_weight;
        let t = (lw / gcd) >> rshift;
        s.mh_turns = if t != 0 { t } else { u32::from(lw != 0) };
    }
    let mut n = 0u32;
    let mut dt_count = 0u32;
    let mut i = 0usize;
    loop {
        if i == order.len() {
            i = 0;
        }
        let x = order[i];
        let s = &mut servers[x as usize];
        if s.mh_turns < 1 {
            i += 1;
            continue;
        }
        let mut c = s.mh_perm;
        while table[c as usize] != NONE {
            s.mh_perm += s.mh_skip;
            if s.mh_perm >= size {
                s.mh_perm -= size;
            }
            c = s.mh_perm;
        }
        table[c as usize] = x;
        n += 1;
        if n == size {
            return;
        }
        dt_count += 1;
        if dt_count >= s.mh_turns {
            dt_count = 0;
            i += 1;
        }
    }
}

#[inline]
fn unavailable(s: &ServerSlot) -> bool {
    s.state != SlotState::Listed || s.cfg.weight == 0 || s.overloaded
}

/// The mh lookup on a built table.
pub(crate) fn lookup(
    table: &[u16],
    servers: &[ServerSlot],
    addr: IpAddr,
    port: u16,
    fallback: bool,
) -> Option<u16> {
    let size = table.len() as u32;
    let ihash = hashkey(addr, port, HASH1, 0) % size;
    let d = table[ihash as usize];
    if d == NONE {
        return None;
    }
    if !unavailable(&servers[d as usize]) {
        return Some(d);
    }
    if !fallback {
        return None;
    }
    for offset in 0..size {
        let roffset = (offset + ihash) % size;
        let d = table[(hashkey(addr, port, HASH1, roffset) % size) as usize];
        if d == NONE {
            break;
        }
        if !unavailable(&servers[d as usize]) {
            return Some(d);
        }
    }
    None
}

pub(crate) fn schedule(v: &mut View<'_>, input: &PickInput) -> Option<u16> {
    let port = if v.svc.cfg.flags.port {
        input.src_port
    } else {
        0
    };
    let size = v.svc.cfg.mh_table_size as usize;
    lookup(
        &v.mh[..size],
        v.servers,
        input.src,
        port,
        v.svc.cfg.flags.fallback,
    )
}
