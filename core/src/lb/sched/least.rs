//! lc, wlc, sed, nq, fo, ovf: the schedulers that pick the best server by a
//! key (ip_vs_lc.c, ip_vs_wlc.c, ip_vs_sed.c, ip_vs_nq.c, ip_vs_fo.c,
//! ip_vs_ovf.c), in O(1) per pick and O(log n) per change instead of the
//! kernel's O(n) scan, with exactly the scan's answer.
//!
//! Why a tournament tree gives the scan's answer: every one of these scans
//! skips the same ineligible servers (overloaded, weight 0, and for ovf
//! `active > weight`) and keeps the first server in list order whose key is
//! strictly better than the best so far. With all eligible weights positive,
//! the cross-multiplied test `h1 * w2 > h2 * w1` is exactly `h1/w1 > h2/w2`
//! on rationals, a strict weak order; nq's "first idle server wins" is the
//! key `(busy, ratio)`; lc, fo and ovf compare integers. A left-to-right
//! scan keeping the first strict improvement returns the minimum of the
//! total order "key, then list position". Each tree node holds the minimum
//! of its leaves under that same order (ties go to the server nearer the
//! head, i.e. the higher insertion sequence), and a minimum is associative,
//! so the root equals the scan whatever the leaf placement. (wlc and sed do
//! not skip weight-0 servers after the first candidate, but such a server
//! can never win: `loh * 0 > doh * lw` is false for `doh >= 0, lw > 0`.)
//! The property tests in `lb::model` check it against `lb::reference`.

use core::cmp::Ordering;

use super::{Scheduler, View};
use crate::lb::server::{NONE, ServerSlot, SlotState};

#[inline]
fn eligible(kind: Scheduler, s: &ServerSlot) -> bool {
    s.state == SlotState::Listed
        && !s.overloaded
        && s.cfg.weight > 0
        && !(kind == Scheduler::Ovf && s.active > s.cfg.weight)
}

/// Ordering of two eligible servers by key alone (`Less` = `a` is better).
#[inline]
fn cmp_key(kind: Scheduler, a: &ServerSlot, b: &ServerSlot) -> Ordering {
    let (wa, wb) = (u128::from(a.cfg.weight), u128::from(b.cfg.weight));
    match kind {
        Scheduler::Lc => a.overhead().cmp(&b.overhead()),
        Scheduler::Wlc => (u128::from(a.overhead()) * wb).cmp(&(u128::from(b.overhead()) * wa)),
        Scheduler::Sed => sed(a, b, wa, wb),
        Scheduler::Nq => match (a.active == 0, b.active == 0) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => sed(a, b, wa, wb),
        },
        // fo and ovf: the highest weight wins.
        _ => b.cfg.weight.cmp(&a.cfg.weight),
    }
}

#[inline]
fn sed(a: &ServerSlot, b: &ServerSlot, wa: u128, wb: u128) -> Ordering {
    ((u128::from(a.active) + 1) * wb).cmp(&((u128::from(b.active) + 1) * wa))
}

/// The better of two candidates (either may be `NONE`).
#[inline]
fn winner(kind: Scheduler, servers: &[ServerSlot], l: u16, r: u16) -> u16 {
    if l == NONE {
        return r;
    }
    if r == NONE {
        return l;
    }
    let (a, b) = (&servers[l as usize], &servers[r as usize]);
    match cmp_key(kind, a, b) {
        Ordering::Less => l,
        Ordering::Greater => r,
        Ordering::Equal => {
            if a.seq > b.seq {
                l
            } else {
                r
            }
        }
    }
}

/// Recomputes `local`'s leaf and the path to the root: O(log n).
#[inline]
pub(crate) fn update(kind: Scheduler, tree: &mut [u16], servers: &[ServerSlot], local: u16) {
    let leaves = tree.len() / 2;
    let mut i = leaves + local as usize;
    tree[i] = if eligible(kind, &servers[local as usize]) {
        local
    } else {
        NONE
    };
    while i > 1 {
        i /= 2;
        tree[i] = winner(kind, servers, tree[2 * i], tree[2 * i + 1]);
    }
}

/// Rebuilds the whole tree: O(n).
pub(crate) fn rebuild(kind: Scheduler, tree: &mut [u16], servers: &[ServerSlot]) {
    let leaves = tree.len() / 2;
    for i in 0..leaves {
        tree[leaves + i] = match servers.get(i) {
            Some(s) if eligible(kind, s) => i as u16,
            _ => NONE,
        };
    }
    for i in (1..leaves).rev() {
        tree[i] = winner(kind, servers, tree[2 * i], tree[2 * i + 1]);
    }
}

/// The scheduler's pick: the root. O(1).
#[inline]
pub(crate) fn pick(v: &View<'_>) -> Option<u16> {
    let root = if v.tree.len() > 1 { v.tree[1] } else { NONE };
    (root != NONE).then_some(root)
}

/// The kernel's linear scan over the list, for the reference benchmark
/// (the tree is not maintained then).
pub(crate) fn linear_pick(v: &View<'_>) -> Option<u16> {
    #[cfg(any(test, feature = "reference"))]
    {
        let kind = v.svc.cfg.scheduler;
        crate::lb::reference::pick_least(
            kind,
            v.list().map(|x| {
                (
                    x,
                    crate::lb::reference::RefServer::of(&v.servers[x as usize]),
                )
            }),
        )
    }
    #[cfg(not(any(test, feature = "reference")))]
    {
        pick(v)
    }
}
