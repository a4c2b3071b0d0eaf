//! rr: round robin (ip_vs_rr.c). The cursor stays on the last server
//! picked; a pick walks on from it, skipping quiesced (weight 0) and
//! overloaded servers, wrapping once. When the server under the cursor is
//! removed the cursor steps back to its predecessor, so its successor is
//! next (`ip_vs_rr_del_dest`).

use super::View;
use crate::lb::server::NONE;

#[inline]
fn usable(v: &View<'_>, x: u16) -> bool {
    let s = &v.servers[x as usize];
    !s.overloaded && s.cfg.weight > 0
}

pub(crate) fn schedule(v: &mut View<'_>) -> Option<u16> {
    let last = v.svc.rr_cursor;
    let mut from = last;
    // Two passes at most: from the cursor to the end, then from the head
    // back to the cursor (one pass when the cursor is at the head).
    for _pass in 0..2 {
        let mut x = if from == NONE {
            v.svc.head
        } else {
            v.servers[from as usize].next
        };
        while x != NONE {
            if usable(v, x) {
                v.svc.rr_cursor = x;
                return Some(x);
            }
            if x == last {
                return None;
            }
            x = v.servers[x as usize].next;
        }
        if last == NONE {
            return None;
        }
        from = NONE;
    }
    None
}

/// Called before `local` is unlinked; `prev` is its predecessor.
pub(crate) fn on_del(v: &mut View<'_>, local: u16, prev: u16) {
    if v.svc.rr_cursor == local {
        v.svc.rr_cursor = prev;
    }
}
