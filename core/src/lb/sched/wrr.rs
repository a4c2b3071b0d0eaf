//! wrr: weighted round robin (ip_vs_wrr.c). Passes over the list with a
//! current weight `cw` that starts at the maximum weight less `gcd - 1` and
//! steps down by the gcd of the weights; a pass picks servers whose weight
//! is at least `cw`. Any add, delete or update resets the cursor to the head
//! and adjusts `cw` as the kernel's `ip_vs_wrr_dest_changed` does.

use super::View;
use crate::lb::server::NONE;
use crate::lb::service::WrrMark;

const fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

pub(crate) fn dest_changed(v: &mut View<'_>) {
    let mut g = 0i64;
    let mut max = 0i64;
    let mut x = v.svc.head;
    while x != NONE {
        let w = i64::from(v.servers[x as usize].cfg.weight);
        if w > 0 {
            g = if g > 0 { gcd(w, g) } else { w };
        }
        max = max.max(w);
        x = v.servers[x as usize].next;
    }
    let m = &mut v.svc.wrr;
    m.cl = NONE;
    m.di = if g > 0 { g } else { 1 };
    m.mw = max - (m.di - 1);
    if m.cw > m.mw || m.cw == 0 {
        m.cw = m.mw;
    } else if m.di > 1 {
        m.cw = (m.cw / m.di) * m.di + 1;
    }
}

pub(crate) fn schedule(v: &mut View<'_>) -> Option<u16> {
    let mut m = v.svc.wrr;
    let picked = pick(v, &mut m);
    v.svc.wrr = m;
    picked
}

fn pick(v: &View<'_>, m: &mut WrrMark) -> Option<u16> {
    if m.mw == 0 {
        return None;
    }
    let last = m.cl;
    let mut stop = NONE;
    let mut last_pass = false;
    let mut restarted = false;
    let mut from = m.cl;
    loop {
        let mut x = if from == NONE {
            v.svc.head
        } else {
            v.servers[from as usize].next
        };
        while x != NONE {
            let s = &v.servers[x as usize];
            if !s.overloaded && i64::from(s.cfg.weight) >= m.cw {
                m.cl = x;
                return Some(x);
            }
            if x == stop {
                m.cl = x;
                return None;
            }
            x = s.next;
        }
        // Walked off the end: the cursor is back at the head.
        from = NONE;
        m.cw -= m.di;
        if m.cw <= 0 {
            m.cw = m.mw;
            if last_pass || last == NONE {
                m.cl = NONE;
                return None;
            }
            restarted = true;
        }
        last_pass = m.cw <= m.di;
        if last_pass && restarted && last != NONE {
            stop = last;
        }
    }
}
