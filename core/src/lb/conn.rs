//! The connection table: fixed-capacity slots in caller storage, a keyed
//! open-addressing hash index over them, and a timer wheel for expiry.
//! Holds connections and persistence templates alike. Never decides what a
//! connection means (states, counts, templates): the balancer does.
//!
//! Memory: one [`ConnSlot`] is 64 bytes (asserted at compile time) and holds
//! IPv4 or IPv6 flows; the index adds 8 bytes per slot (a `u32` per entry at
//! load factor <= 1/2) and the wheel at most 256 KiB.
//!
//! - Index: linear probing over `u32` entries, each an 8-bit hash tag and a
//!   24-bit slot number, with backward-shift deletion (no tombstones), so
//!   a lookup usually reads one index cache line and one slot.
//! - Expiry: a single-level wheel of 2^14 us (16.384 ms) ticks. A slot sits
//!   in the bucket of a tick at or before its expiry; extending an expiry
//!   only rewrites the slot (it is re-filed when its bucket comes round),
//!   shortening it re-files at once. Every slot is visited O(1) times per
//!   wheel revolution: amortised O(1), never a full scan.
//! - A slot is alive while the current tick is at most its expiry tick.

use core::hash::{BuildHasher, Hasher};

use foldhash::fast::FixedState;

/// Expiry granularity: one tick is `1 << TICK_SHIFT` microseconds.
pub const TICK_SHIFT: u32 = 14;

pub(crate) const NIL: u32 = u32::MAX;
/// `wprev` of a bucket's first slot: this bit and the bucket number.
const HEAD_BIT: u32 = 1 << 31;
/// `wprev` of the first slot of the list being expired.
const PENDING_HEAD: u32 = NIL - 1;

pub(crate) const KIND_FREE: u8 = 0;
pub(crate) const KIND_CONN: u8 = 1;
pub(crate) const KIND_TEMPLATE: u8 = 2;
/// A template that no longer answers lookups (its server went away) but
/// lives on while connections it controls do (ip_vs_check_template).
pub(crate) const KIND_ORPHAN: u8 = 3;
pub(crate) const KIND_MASK: u8 = 0x0f;
pub(crate) const KIND_V6: u8 = 0x10;

/// Connection counted as inactive (`IP_VS_CONN_F_INACTIVE`).
pub(crate) const F_INACTIVE: u8 = 1;
/// Template re-armed by its controlled connections: 60 s timeout from
/// now on (ip_vs_conn.c `expire_later`).
pub(crate) const F_LATE: u8 = 2;
/// In the sync journal (`lb::sync`): journaled at most once.
#[cfg(feature = "sync")]
pub(crate) const F_QUEUED: u8 = 4;

/// The tick `micros` falls in.
#[inline]
pub(crate) const fn tick_of(micros: u64) -> u64 {
    micros >> TICK_SHIFT
}

/// Ticks covering at least `secs` seconds.
#[inline]
pub(crate) const fn ticks_for_secs(secs: u32) -> u64 {
    ((secs as u64) * 1_000_000).div_ceil(1 << TICK_SHIFT)
}

/// `a < b` on wrapping 32-bit ticks.
#[inline]
pub(crate) const fn tick_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// One connection or persistence template: 64 bytes, IPv6-capable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct ConnSlot {
    pub(crate) caddr: [u8; 16],
    pub(crate) vaddr: [u8; 16],
    pub(crate) cport: u16,
    pub(crate) vport: u16,
    /// Service index.
    pub(crate) svc: u16,
    pub(crate) proto: u8,
    pub(crate) kind: u8,
    /// Real server (global slot index).
    pub(crate) server: u16,
    /// TCP state (`TcpState as u8`).
    pub(crate) state: u8,
    pub(crate) flags: u8,
    /// Expiry tick (low 32 bits).
    pub(crate) expires: u32,
    pub(crate) wnext: u32,
    pub(crate) wprev: u32,
    /// Connection: its template slot or `NIL`. Template: connections it
    /// controls (`n_control`).
    pub(crate) control: u32,
    /// Folded key hash: home position and tag in the index.
    pub(crate) hash: u32,
}

const _: () = assert!(core::mem::size_of::<ConnSlot>() == 64);

impl ConnSlot {
    /// A free slot, for static arrays.
    pub const EMPTY: ConnSlot = ConnSlot {
        caddr: [0; 16],
        vaddr: [0; 16],
        cport: 0,
        vport: 0,
        svc: 0,
        proto: 0,
        kind: KIND_FREE,
        server: 0,
        state: 0,
        flags: 0,
        expires: 0,
        wnext: NIL,
        wprev: NIL,
        control: NIL,
        hash: 0,
    };

    #[inline]
    fn matches(&self, k: &Key) -> bool {
        self.kind == k.kind
            && self.cport == k.cport
            && self.vport == k.vport
            && self.proto == k.proto
            && self.caddr == k.caddr
            && self.vaddr == k.vaddr
            && (k.kind & KIND_MASK != KIND_TEMPLATE || self.svc == k.svc)
    }
}

impl Default for ConnSlot {
    fn default() -> Self {
        ConnSlot::EMPTY
    }
}

/// What a lookup matches. Connections: protocol, client and virtual
/// address and port. Templates: service, masked client, virtual port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    pub caddr: [u8; 16],
    pub vaddr: [u8; 16],
    pub cport: u16,
    pub vport: u16,
    pub svc: u16,
    pub proto: u8,
    pub kind: u8,
}

impl Key {
    pub const EMPTY: Key = Key {
        caddr: [0; 16],
        vaddr: [0; 16],
        cport: 0,
        vport: 0,
        svc: 0,
        proto: 0,
        kind: KIND_FREE,
    };
}

/// Table size errors are the balancer's; these are the table's own parts.
pub(crate) struct ConnTable<'a> {
    pub slots: &'a mut [ConnSlot],
    index: &'a mut [u32],
    wheel: &'a mut [u32],
    hasher: FixedState,
    free_head: u32,
    pub live: u32,
    /// Every tick before this one has been expired.
    next_tick: u64,
    /// Slots taken off a bucket and not yet looked at.
    pending: u32,
}

impl<'a> ConnTable<'a> {
    /// Gives the storage back (slots, index, wheel).
    pub fn into_parts(self) -> (&'a mut [ConnSlot], &'a mut [u32], &'a mut [u32]) {
        (self.slots, self.index, self.wheel)
    }

    pub fn new(
        slots: &'a mut [ConnSlot],
        index: &'a mut [u32],
        wheel: &'a mut [u32],
        seed: u64,
        now_tick: u64,
    ) -> Self {
        index.fill(0);
        wheel.fill(NIL);
        let n = slots.len();
        for (i, s) in slots.iter_mut().enumerate() {
            *s = ConnSlot::EMPTY;
            s.wnext = if i + 1 < n { (i + 1) as u32 } else { NIL };
        }
        ConnTable {
            slots,
            index,
            wheel,
            hasher: FixedState::with_seed(seed),
            free_head: if n > 0 { 0 } else { NIL },
            live: 0,
            next_tick: now_tick,
            pending: NIL,
        }
    }

    #[inline]
    pub fn capacity(&self) -> u32 {
        self.slots.len() as u32
    }

    #[inline]
    pub fn free(&self) -> u32 {
        self.capacity() - self.live
    }

    /// Keyed hash of `k`, folded to 32 bits.
    #[inline]
    pub fn hash(&self, k: &Key) -> u32 {
        let mut h = self.hasher.build_hasher();
        h.write_u128(u128::from_ne_bytes(k.caddr));
        h.write_u128(u128::from_ne_bytes(k.vaddr));
        h.write_u64(
            u64::from(k.cport)
                | u64::from(k.vport) << 16
                | u64::from(k.svc) << 32
                | u64::from(k.proto) << 48
                | u64::from(k.kind) << 56,
        );
        let x = h.finish();
        (x ^ (x >> 32)) as u32
    }

    #[inline]
    fn tag(hash: u32) -> u32 {
        hash >> 24
    }

    #[inline]
    fn mask(&self) -> usize {
        self.index.len() - 1
    }

    /// The slot holding `k`, if any.
    #[inline]
    pub fn find(&self, hash: u32, k: &Key) -> Option<u32> {
        let mask = self.mask();
        let tag = Self::tag(hash);
        let mut pos = hash as usize & mask;
        loop {
            let e = self.index[pos];
            if e == 0 {
                return None;
            }
            if e >> 24 == tag {
                let s = (e & 0x00ff_ffff) - 1;
                if self.slots[s as usize].matches(k) {
                    return Some(s);
                }
            }
            pos = (pos + 1) & mask;
        }
    }

    /// The first slot whose index tag matches `hash` (or `NIL`): a guess
    /// at [`Self::find`] that reads only the index.
    #[inline]
    pub fn candidate(&self, hash: u32) -> u32 {
        let mask = self.mask();
        let tag = Self::tag(hash);
        let mut pos = hash as usize & mask;
        loop {
            let e = self.index[pos];
            if e == 0 {
                return NIL;
            }
            if e >> 24 == tag {
                return (e & 0x00ff_ffff) - 1;
            }
            pos = (pos + 1) & mask;
        }
    }

    /// [`Self::find`], trying slot `hint` first. Exact whatever the hint:
    /// a live connection or template matching `k` is always indexed, and
    /// no two live slots share a key.
    #[inline]
    pub fn find_hinted(&self, hash: u32, k: &Key, hint: u32) -> Option<u32> {
        if let Some(slot) = self.slots.get(hint as usize) {
            if slot.matches(k) {
                return Some(hint);
            }
        }
        self.find(hash, k)
    }

    /// Takes a free slot, fills in `k`, files it under `hash` and in the
    /// wheel at `expires`. `None` when the table is full.
    pub fn insert(&mut self, hash: u32, k: &Key, expires: u32) -> Option<u32> {
        let s = self.free_head;
        if s == NIL {
            return None;
        }
        self.free_head = self.slots[s as usize].wnext;
        self.live += 1;
        let slot = &mut self.slots[s as usize];
        *slot = ConnSlot {
            caddr: k.caddr,
            vaddr: k.vaddr,
            cport: k.cport,
            vport: k.vport,
            svc: k.svc,
            proto: k.proto,
            kind: k.kind,
            expires,
            hash,
            ..ConnSlot::EMPTY
        };
        self.index_insert(hash, s);
        self.link(s);
        Some(s)
    }

    fn index_insert(&mut self, hash: u32, s: u32) {
        let mask = self.mask();
        let mut pos = hash as usize & mask;
        while self.index[pos] != 0 {
            pos = (pos + 1) & mask;
        }
        self.index[pos] = (Self::tag(hash) << 24) | (s + 1);
    }

    /// Takes `s` out of the index (lookups no longer find it).
    pub fn unhash(&mut self, s: u32) {
        let mask = self.mask();
        let want = (Self::tag(self.slots[s as usize].hash) << 24) | (s + 1);
        let mut i = self.slots[s as usize].hash as usize & mask;
        while self.index[i] != want {
            if self.index[i] == 0 {
                return; // not hashed (an orphan template)
            }
            i = (i + 1) & mask;
        }
        // Backward-shift deletion: pull later entries of the run into the
        // hole when the hole lies between their home and where they sit.
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let e = self.index[j];
            if e == 0 {
                break;
            }
            let other = (e & 0x00ff_ffff) - 1;
            let home = self.slots[other as usize].hash as usize & mask;
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(i) & mask) {
                self.index[i] = e;
                i = j;
            }
        }
        self.index[i] = 0;
    }

    /// Frees `s`: out of the index, the wheel and back on the free list.
    pub fn remove(&mut self, s: u32) {
        if self.slots[s as usize].kind & KIND_MASK != KIND_ORPHAN {
            self.unhash(s);
        }
        self.unlink(s);
        let slot = &mut self.slots[s as usize];
        *slot = ConnSlot::EMPTY;
        slot.wnext = self.free_head;
        self.free_head = s;
        self.live -= 1;
    }

    fn link(&mut self, s: u32) {
        let b = (self.slots[s as usize].expires as usize) & (self.wheel.len() - 1);
        let head = self.wheel[b];
        let slot = &mut self.slots[s as usize];
        slot.wprev = HEAD_BIT | b as u32;
        slot.wnext = head;
        if head != NIL {
            self.slots[head as usize].wprev = s;
        }
        self.wheel[b] = s;
    }

    fn unlink(&mut self, s: u32) {
        let (prev, next) = {
            let slot = &self.slots[s as usize];
            (slot.wprev, slot.wnext)
        };
        if prev == NIL {
            // Not on any list.
        } else if prev == PENDING_HEAD {
            self.pending = next;
        } else if prev & HEAD_BIT != 0 {
            self.wheel[(prev & !HEAD_BIT) as usize] = next;
        } else {
            self.slots[prev as usize].wnext = next;
        }
        if next != NIL {
            self.slots[next as usize].wprev = prev;
        }
        let slot = &mut self.slots[s as usize];
        slot.wprev = NIL;
        slot.wnext = NIL;
    }

    /// Sets `s`'s expiry tick; re-files it only when it moves earlier.
    #[inline]
    pub fn set_expiry(&mut self, s: u32, expires: u32) {
        let old = self.slots[s as usize].expires;
        self.slots[s as usize].expires = expires;
        if tick_before(expires, old) {
            self.unlink(s);
            self.link(s);
        }
    }

    /// The next slot whose expiry tick is before `now_tick`, taken off the
    /// wheel (the caller frees or re-arms it with [`Self::rearm`]). Slots
    /// met on the way that are not due are re-filed.
    pub fn pop_due(&mut self, now_tick: u64) -> Option<u32> {
        let now32 = now_tick as u32;
        loop {
            while self.pending != NIL {
                let s = self.pending;
                self.unlink(s);
                if tick_before(self.slots[s as usize].expires, now32) {
                    return Some(s);
                }
                self.link(s);
            }
            if self.next_tick >= now_tick {
                return None;
            }
            let w = self.wheel.len() as u64;
            if now_tick - self.next_tick > w {
                // One revolution visits every bucket.
                self.next_tick = now_tick - w;
            }
            let b = (self.next_tick as usize) & (self.wheel.len() - 1);
            self.next_tick += 1;
            let head = self.wheel[b];
            self.wheel[b] = NIL;
            if head != NIL {
                self.slots[head as usize].wprev = PENDING_HEAD;
                self.pending = head;
            }
        }
    }

    /// Puts a slot taken by [`Self::pop_due`] back with a new expiry.
    pub fn rearm(&mut self, s: u32, expires: u32) {
        self.slots[s as usize].expires = expires;
        self.link(s);
    }

    /// Whether any tick is due before `now_tick`.
    #[inline]
    pub fn behind(&self, now_tick: u64) -> bool {
        self.next_tick < now_tick || self.pending != NIL
    }

    /// The first tick not yet expired.
    pub fn next_tick(&self) -> u64 {
        self.next_tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn key(i: u32) -> Key {
        let mut caddr = [0u8; 16];
        caddr[12..].copy_from_slice(&i.to_be_bytes());
        Key {
            caddr,
            vaddr: [1; 16],
            cport: i as u16,
            vport: 80,
            svc: 0,
            proto: 6,
            kind: KIND_CONN,
        }
    }

    #[test]
    fn insert_find_remove_keeps_index_consistent() {
        let mut slots = vec![ConnSlot::EMPTY; 64];
        let mut index = vec![0u32; 128];
        let mut wheel = vec![NIL; 64];
        let mut t = ConnTable::new(&mut slots, &mut index, &mut wheel, 7, 0);
        let mut ids = std::vec::Vec::new();
        for i in 0..64 {
            let k = key(i);
            let h = t.hash(&k);
            ids.push(t.insert(h, &k, 10 + i).unwrap());
        }
        let k = key(99);
        assert!(t.insert(t.hash(&k), &k, 1).is_none(), "full table refuses");
        for i in (0..64).step_by(3) {
            t.remove(ids[i as usize]);
        }
        for i in 0..64u32 {
            let k = key(i);
            let found = t.find(t.hash(&k), &k);
            assert_eq!(found.is_some(), i % 3 != 0, "key {i}");
        }
    }

    #[test]
    fn wheel_expires_in_order_and_handles_shortening() {
        let mut slots = vec![ConnSlot::EMPTY; 8];
        let mut index = vec![0u32; 16];
        let mut wheel = vec![NIL; 4];
        let mut t = ConnTable::new(&mut slots, &mut index, &mut wheel, 1, 0);
        let k0 = key(0);
        let a = t.insert(t.hash(&k0), &k0, 2).unwrap();
        let k1 = key(1);
        let b = t.insert(t.hash(&k1), &k1, 9).unwrap();
        assert_eq!(t.pop_due(3), Some(a));
        t.remove(a);
        assert_eq!(t.pop_due(3), None);
        t.set_expiry(b, 4);
        assert_eq!(t.pop_due(5), Some(b));
        t.rearm(b, 20);
        assert_eq!(t.pop_due(20), None);
        assert_eq!(t.pop_due(21), Some(b));
    }

    #[test]
    fn slot_is_64_bytes() {
        assert_eq!(core::mem::size_of::<ConnSlot>(), 64);
    }
}
