//! Plain reference schedulers written from the kernel's stated semantics:
//! linear scans over the server list in IPVS order (newest first), cursors
//! kept as list positions, hash tables rebuilt from scratch. No trees, no
//! incremental state. Property tests compare the real schedulers with
//! these; benchmarks use them as the baseline. Enabled by the `reference`
//! feature (and in the core's own tests). Never used by `classify` unless
//! a benchmark asks for the linear scan.

use core::net::IpAddr;

use super::addr::fold;
use super::hsiphash::hsiphash_u32;
use super::server::ServerSlot;
use crate::scheduler::Scheduler;

/// One server as a scan sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RefServer {
    /// Address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Current weight.
    pub weight: u32,
    /// Latest non-zero weight (mh).
    pub last_weight: u32,
    /// Active connections.
    pub active: u32,
    /// Inactive connections.
    pub inactive: u32,
    /// `IP_VS_DEST_F_OVERLOAD`.
    pub overloaded: bool,
}

impl RefServer {
    pub(crate) fn of(s: &ServerSlot) -> RefServer {
        RefServer {
            addr: s.cfg.addr,
            port: s.cfg.port,
            weight: s.cfg.weight,
            last_weight: s.last_weight,
            active: s.active,
            inactive: s.inactive,
            overloaded: s.overloaded,
        }
    }

    /// `ip_vs_dest_conn_overhead`.
    pub fn overhead(&self) -> i128 {
        i128::from(self.active) * 256 + i128::from(self.inactive)
    }
}

/// lc, wlc, sed, nq, fo, ovf: the kernel's loops, literally, over
/// `(id, server)` pairs in list order. Returns the chosen id.
pub fn pick_least<T: Copy>(
    kind: Scheduler,
    list: impl IntoIterator<Item = (T, RefServer)>,
) -> Option<T> {
    let mut least: Option<(T, RefServer)> = None;
    match kind {
        Scheduler::Lc => {
            for (id, d) in list {
                if d.overloaded || d.weight == 0 {
                    continue;
                }
                if least.is_none_or(|(_, l)| d.overhead() < l.overhead()) {
                    least = Some((id, d));
                }
            }
        }
        Scheduler::Wlc | Scheduler::Sed => {
            let oh = |d: &RefServer| {
                if kind == Scheduler::Wlc {
                    d.overhead()
                } else {
                    i128::from(d.active) + 1
                }
            };
            let mut it = list.into_iter();
            // First stage: the first usable server.
            for (id, d) in it.by_ref() {
                if !d.overloaded && d.weight > 0 {
                    least = Some((id, d));
                    break;
                }
            }
            let (mut lid, mut l) = least?;
            // Next stage: weight-0 servers are not skipped, as in the kernel.
            for (id, d) in it {
                if d.overloaded {
                    continue;
                }
                if oh(&l) * i128::from(d.weight) > oh(&d) * i128::from(l.weight) {
                    lid = id;
                    l = d;
                }
            }
            return Some(lid);
        }
        Scheduler::Nq => {
            for (id, d) in list {
                if d.overloaded || d.weight == 0 {
                    continue;
                }
                let doh = i128::from(d.active) + 1;
                if d.active == 0 {
                    return Some(id);
                }
                if least.is_none_or(|(_, l)| {
                    (i128::from(l.active) + 1) * i128::from(d.weight) > doh * i128::from(l.weight)
                }) {
                    least = Some((id, d));
                }
            }
        }
        Scheduler::Fo => {
            let mut hw = 0u32;
            for (id, d) in list {
                if !d.overloaded && d.weight > hw {
                    least = Some((id, d));
                    hw = d.weight;
                }
            }
        }
        Scheduler::Ovf => {
            let mut hw = 0u32;
            for (id, d) in list {
                let w = d.weight;
                if d.overloaded || d.active > w || w == 0 {
                    continue;
                }
                if least.is_none() || w > hw {
                    least = Some((id, d));
                    hw = w;
                }
            }
        }
        _ => return None,
    }
    least.map(|(id, _)| id)
}

/// rr with the cursor as a list position (`None` = at the head).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefRr {
    /// Position of the last pick.
    pub cursor: Option<usize>,
}

impl RefRr {
    /// A server was added at the head: positions shift by one.
    pub fn on_add(&mut self) {
        if let Some(c) = self.cursor.as_mut() {
            *c += 1;
        }
    }
    /// The server at `pos` is being removed: a cursor on it steps back.
    pub fn on_remove(&mut self, pos: usize) {
        self.cursor = match self.cursor {
            Some(c) if c == pos => c.checked_sub(1),
            Some(c) if c > pos => Some(c - 1),
            other => other,
        };
    }
    /// Walk on from the cursor, wrapping once, to the next server with a
    /// weight that is not overloaded.
    pub fn schedule(&mut self, list: &[RefServer]) -> Option<usize> {
        let start = self.cursor.map_or(0, |c| c + 1);
        let n = list.len();
        // Positions after the cursor, then from the head up to and
        // including the cursor.
        let order = (start..n).chain(0..self.cursor.map_or(0, |c| c + 1));
        for p in order {
            if !list[p].overloaded && list[p].weight > 0 {
                self.cursor = Some(p);
                return Some(p);
            }
        }
        None
    }
}

/// wrr as the kernel states it: passes with a current weight stepping from
/// `max - (gcd - 1)` down by the gcd; positions instead of pointers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefWrr {
    /// Position of the current server, `None` = head.
    pub cl: Option<usize>,
    /// Current weight.
    pub cw: i64,
    /// Maximum weight less `gcd - 1`.
    pub mw: i64,
    /// gcd of the positive weights.
    pub di: i64,
}

impl Default for RefWrr {
    fn default() -> Self {
        RefWrr {
            cl: None,
            cw: 0,
            mw: 0,
            di: 1,
        }
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl RefWrr {
    /// Any add, remove or update (`ip_vs_wrr_dest_changed`).
    pub fn changed(&mut self, list: &[RefServer]) {
        let g = list
            .iter()
            .map(|d| i64::from(d.weight))
            .filter(|w| *w > 0)
            .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
        let max = list.iter().map(|d| i64::from(d.weight)).max().unwrap_or(0);
        self.cl = None;
        self.di = if g > 0 { g } else { 1 };
        self.mw = max - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    /// One pick.
    pub fn schedule(&mut self, list: &[RefServer]) -> Option<usize> {
        if self.mw == 0 {
            return None;
        }
        let last = self.cl;
        let mut stop: Option<usize> = None;
        let (mut last_pass, mut restarted) = (false, false);
        let mut from = self.cl.map_or(0, |c| c + 1);
        loop {
            for (p, d) in list.iter().enumerate().skip(from) {
                if !d.overloaded && i64::from(d.weight) >= self.cw {
                    self.cl = Some(p);
                    return Some(p);
                }
                if stop == Some(p) {
                    self.cl = Some(p);
                    return None;
                }
            }
            from = 0;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }
}

const MULT: u32 = 2_654_435_761;

/// The sh/dh table: 256 buckets filled in list order, each server
/// `weight` times (at least once).
pub fn hash_table(list: &[RefServer]) -> [Option<usize>; 256] {
    let mut t = [None; 256];
    if list.is_empty() {
        return t;
    }
    let mut p = 0;
    let mut count = 0u64;
    for b in t.iter_mut() {
        *b = Some(p);
        count += 1;
        if count >= u64::from(list[p].weight) {
            p = (p + 1) % list.len();
            count = 0;
        }
    }
    t
}

fn sh_key(addr: IpAddr, port: u16, offset: u32) -> usize {
    (offset.wrapping_add(u32::from(port).wrapping_add(fold(addr)).wrapping_mul(MULT)) & 255)
        as usize
}

fn hash_unavailable(d: &RefServer) -> bool {
    d.weight == 0 || d.overloaded
}

/// sh over a [`hash_table`].
pub fn sh_pick(
    t: &[Option<usize>; 256],
    list: &[RefServer],
    src: IpAddr,
    src_port: u16,
    port_flag: bool,
    fallback: bool,
) -> Option<usize> {
    let port = if port_flag { src_port } else { 0 };
    let first = sh_key(src, port, 0);
    let d = t[first]?;
    if !hash_unavailable(&list[d]) {
        return Some(d);
    }
    if !fallback {
        return None;
    }
    (0..256u32)
        .map(|o| t[sh_key(src, port, (o + first as u32) % 256)])
        .take_while(Option::is_some)
        .flatten()
        .find(|d| !hash_unavailable(&list[*d]))
}

/// dh over a [`hash_table`].
pub fn dh_pick(t: &[Option<usize>; 256], list: &[RefServer], dst: IpAddr) -> Option<usize> {
    let d = t[(fold(dst).wrapping_mul(MULT) & 255) as usize]?;
    (!hash_unavailable(&list[d])).then_some(d)
}

const H1: (u64, u64) = (2_654_435_761, 2_654_435_761);
const H2: (u64, u64) = (2_654_446_892, 2_654_446_892);

fn mh_key(addr: IpAddr, port: u16, key: (u64, u64), offset: u32) -> u32 {
    hsiphash_u32(
        key,
        offset
            .wrapping_add(u32::from(port))
            .wrapping_add(fold(addr)),
    )
}

/// Maglev's population as the paper and ip_vs_mh.c state it: server `i`'s
/// j-th preference is `(offset_i + j * skip_i) mod M`; servers take turns
/// (`(last_weight / gcd) >> shift`, at least 1 for a non-zero weight)
/// claiming their next free preference, in (address, port) order (vrlb's
/// canonical order; the kernel goes round its dest list instead).
/// `next` and `order` are scratch of `list.len()` entries.
pub fn mh_table(
    list: &[RefServer],
    table: &mut [Option<usize>],
    next: &mut [u64],
    order: &mut [usize],
) {
    let m = table.len() as u64;
    table.fill(None);
    let g = list
        .iter()
        .map(|d| d.last_weight)
        .filter(|w| *w > 0)
        .fold(0u32, |g, w| {
            if g > 0 {
                gcd(i64::from(w), i64::from(g)) as u32
            } else {
                w
            }
        });
    if g == 0 {
        return;
    }
    let mw = list.iter().map(|d| d.last_weight).max().unwrap_or(0) / g;
    let bits = m.ilog2().div_ceil(2);
    let shift = (32 - mw.leading_zeros()).saturating_sub(bits);
    let turns = |d: &RefServer| {
        let t = (d.last_weight / g) >> shift;
        if t != 0 {
            u64::from(t)
        } else {
            u64::from(d.last_weight != 0)
        }
    };
    let pref = |i: usize, j: u64| {
        let d = &list[i];
        let offset = u64::from(mh_key(d.addr, d.port, H1, 0)) % m;
        let skip = u64::from(mh_key(d.addr, d.port, H2, 0)) % (m - 1) + 1;
        ((offset + j * skip) % m) as usize
    };
    let order = &mut order[..list.len()];
    for (k, o) in order.iter_mut().enumerate() {
        *o = k;
    }
    order.sort_unstable_by_key(|&i| (list[i].addr, list[i].port));
    next[..list.len()].fill(0);
    let mut filled = 0u64;
    loop {
        for &i in order.iter() {
            for _ in 0..turns(&list[i]) {
                let mut c = pref(i, next[i]);
                while table[c].is_some() {
                    next[i] += 1;
                    c = pref(i, next[i]);
                }
                table[c] = Some(i);
                filled += 1;
                if filled == m {
                    return;
                }
            }
        }
    }
}

/// mh over an [`mh_table`].
pub fn mh_pick(
    table: &[Option<usize>],
    list: &[RefServer],
    src: IpAddr,
    src_port: u16,
    port_flag: bool,
    fallback: bool,
) -> Option<usize> {
    let m = table.len() as u32;
    let port = if port_flag { src_port } else { 0 };
    let first = mh_key(src, port, H1, 0) % m;
    let d = table[first as usize]?;
    if !hash_unavailable(&list[d]) {
        return Some(d);
    }
    if !fallback {
        return None;
    }
    (0..m)
        .map(|o| table[(mh_key(src, port, H1, (o + first) % m) % m) as usize])
        .take_while(Option::is_some)
        .flatten()
        .find(|d| !hash_unavailable(&list[*d]))
}
