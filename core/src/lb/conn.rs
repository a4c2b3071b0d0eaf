//! The connection table: fixed-capacity slots in caller storage, a keyed
//! hash over them kept in a one-byte-per-slot tag array, and a timer wheel
//! for expiry. Holds connections and persistence templates alike. Never
//! decides what a connection means (states, counts, templates): the
//! balancer does.
//!
//! Memory: one [`ConnSlot`] is 64 bytes, one cache line (size and alignment
//! asserted at compile time), and holds IPv4 or IPv6 flows; the index adds
//! 1 tag byte per slot and 1 overflow byte per group of 16 slots (65.06
//! bytes a slot in all); the wheel is at
//! most 256 KiB. A table for `n` connections has at least `8n/7` slots (load
//! at most 7/8), so a full table costs 74.4 bytes per tracked connection.
//!
//! - Index (F14-like, with two choices): slots come in groups of 16, and
//!   the tag array holds one byte per slot: 0 for empty, `0x80 | 7 hash
//!   bits` for full. A key has two candidate groups from its hash; an
//!   insert takes the emptier one, or, when both are full, the first group
//!   with room after the second, counting itself in the saturating
//!   overflow byte of every full group it passed. A lookup reads the 16
//!   tags of the first group as one `u128` (SWAR compare), then the
//!   second's, then further groups only while the overflow byte says an
//!   entry went past. So a lookup is one or two reads of the small tag
//!   array and, usually, one slot: one random access into the big array.
//!   Entries never move (no tombstones, no backward shift): a delete
//!   clears the tag and walks the same path from the stored hash to take
//!   itself out of the counters. Slot numbers are stable, so wheel links,
//!   template references, the sync journal and batch hints stay valid.
//! - Why two choices: with one home group (F14) and no moves, a table kept
//!   at 7/8 under churn ends with most overflow bytes non-zero, and a miss
//!   (every new flow) walked 19 groups on average in a simulation of 1 M
//!   entries (235 at worst); placing each entry in the emptier of two
//!   groups keeps overflow rare: 2.4 groups a miss, 1.4 a hit.
//! - Liveness: a slot is in use exactly when its tag is full. Zeroed index
//!   and wheel memory is an empty table and slots need no initialisation,
//!   so [`ConnTable::new`] writes nothing that is already zero and a
//!   driver can hand in storage fresh from the allocator without it
//!   becoming resident. Nothing reads a slot whose tag is empty.
//! - Expiry: a single-level wheel of 2^14 us (16.384 ms) ticks. A slot sits
//!   in the bucket of a tick at or before its expiry; extending an expiry
//!   only rewrites the slot (it is re-filed when its bucket comes round),
//!   shortening it re-files at once. Every slot is visited O(1) times per
//!   wheel revolution: amortised O(1), never a full scan. Buckets hold a
//!   slot number plus one (0: empty).
//! - A slot is alive while the current tick is at most its expiry tick.

use core::hash::{BuildHasher, Hasher};

use foldhash::fast::FixedState;

use super::server::ForwardMethod;

/// Expiry granularity: one tick is `1 << TICK_SHIFT` microseconds.
pub const TICK_SHIFT: u32 = 14;

pub(crate) const NIL: u32 = u32::MAX;
/// Slots per group of the index (one `u128` of tags).
pub(crate) const GROUP: usize = 16;
const GROUP_SHIFT: u32 = 4;
/// Tag byte of an empty slot; a full one has the top bit set.
const TAG_EMPTY: u8 = 0;
const TAG_FULL: u8 = 0x80;
const OVERFLOW_SATURATED: u8 = u8::MAX;
const BYTES_LOW: u128 = u128::MAX / 0xff;
const BYTES_HIGH: u128 = u128::MAX / 0xff * 0x80;
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
/// Bits 3 and 4: the forwarding method the connection was created with.
/// IPVS keeps it in the connection (`IP_VS_CONN_F_FWD_MASK`), so a
/// server's change of method applies to new connections only.
const F_METHOD_SHIFT: u8 = 3;
const F_METHOD_MASK: u8 = 0b11 << F_METHOD_SHIFT;

/// The flag bits recording `method`.
#[inline]
pub(crate) const fn method_flags(method: ForwardMethod) -> u8 {
    let bits = match method {
        ForwardMethod::Dr => 0,
        ForwardMethod::Nat => 1,
        ForwardMethod::Tun => 2,
    };
    bits << F_METHOD_SHIFT
}

/// The method recorded in a connection's `flags`.
#[inline]
pub(crate) const fn flags_method(flags: u8) -> ForwardMethod {
    // A table, not a `match`: one load on the hit path instead of a
    // chain of compares and conditional moves.
    const METHODS: [ForwardMethod; 4] = [
        ForwardMethod::Dr,
        ForwardMethod::Nat,
        ForwardMethod::Tun,
        ForwardMethod::Dr,
    ];
    METHODS[((flags & F_METHOD_MASK) >> F_METHOD_SHIFT) as usize]
}

/// The tick `micros` falls in.
#[inline]
pub(crate) const fn tick_of(micros: u64) -> u64 {
    micros >> TICK_SHIFT
}

/// Ticks covering at least `secs` seconds.
#[inline]
pub(crate) const fn ticks_for_secs(secs: u32) -> u64 {
    // Rounded up by hand: `div_ceil` compiles to a test and a subtraction
    // more (no overflow: at most 2^32 * 10^6).
    ((secs as u64) * 1_000_000 + (1 << TICK_SHIFT) - 1) >> TICK_SHIFT
}

/// `a < b` on wrapping 32-bit ticks.
#[inline]
pub(crate) const fn tick_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// One connection or persistence template: 64 bytes, IPv6-capable. Every
/// field is a plain integer, so all-zero memory is a valid value (a driver
/// may allocate slots zeroed); the table never reads a slot it has not
/// filled. Aligned to 64 bytes, so a slot is one cache line: a lookup
/// misses once, not twice (slots at the 16-byte offset a large `malloc`
/// gives would straddle two lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
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
    /// Folded key hash: candidate groups and tag in the index.
    pub(crate) hash: u32,
}

const _: () =
    assert!(core::mem::size_of::<ConnSlot>() == 64 && core::mem::align_of::<ConnSlot>() == 64);

impl ConnSlot {
    /// A free slot (all zero), for static arrays. Slot contents do not
    /// matter to a new table: zeroed or left-over memory works as well.
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
        wnext: 0,
        wprev: 0,
        control: 0,
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

/// The last four bytes of a 16-byte address (all of an IPv4 address kept
/// IPv4-mapped), as they lie in memory.
#[inline(always)]
const fn low32(addr: [u8; 16]) -> u32 {
    u32::from_ne_bytes([addr[12], addr[13], addr[14], addr[15]])
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
    /// Ports, service, protocol and kind as one word. Not in the order
    /// of a `Flow`'s fields: with the client port in the low bits and the
    /// virtual port next, the compiler reads both ports of a just-written
    /// flow with one load over two stores, and with the client port
    /// shifted by 16 it reads it with a four-byte load (see
    /// `Balancer::classify`).
    #[inline(always)]
    fn tail(&self) -> u64 {
        u64::from(self.vport)
            | u64::from(self.svc) << 16
            | u64::from(self.cport) << 32
            | u64::from(self.proto) << 48
            | u64::from(self.kind) << 56
    }

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

/// The tag byte a full slot with key hash `hash` carries.
#[inline]
const fn tag_of(hash: u32) -> u8 {
    TAG_FULL | (hash as u8 & 0x7f)
}

/// `x` scaled into `0..n` (Lemire's multiply-shift; uses the high bits).
#[inline]
const fn scale(x: u32, n: u32) -> u32 {
    ((x as u64 * n as u64) >> 32) as u32
}

/// Bit 7 of every byte of `w` equal to `tag`, and perhaps of a few full
/// bytes above one that is. The zero-byte test with one subtraction (four
/// word operations a half where the exact test needs seven): a borrow out
/// of a matching byte can flag a byte above it that differs from the tag
/// only in bit 0. So the lowest flag is always a match, and every flag is
/// a full slot (an empty byte, 0, has bit 7 set in `w ^ tag`, never
/// flagged) whose key the caller compares anyway.
#[cfg_attr(target_feature = "sse2", allow(dead_code))]
#[inline]
const fn match_bytes(w: u128, tag: u8) -> u128 {
    // The tag in every byte: a 64-bit multiply, doubled (a 128-bit
    // multiply costs three).
    let half = 0x0101_0101_0101_0101u64 * tag as u64;
    let x = w ^ ((half as u128) << 64 | half as u128);
    x.wrapping_sub(BYTES_LOW) & !x & BYTES_HIGH
}

/// [`match_bytes`] of a group's tags. With SSE2 (every x86-64) this byte
/// loop compiles to one vector compare and its moves: fewer instructions
/// than the word test and no registers held for its constants. It flags
/// exactly the matches.
#[cfg(target_feature = "sse2")]
#[inline(always)]
fn match_tags(tags: [u8; GROUP], tag: u8) -> u128 {
    let eq: [u8; GROUP] = core::array::from_fn(|i| u8::from(tags[i] == tag).wrapping_neg());
    u128::from_le_bytes(eq) & BYTES_HIGH
}

/// [`match_bytes`] of a group's tags (no SSE2 here).
#[cfg(not(target_feature = "sse2"))]
#[inline(always)]
fn match_tags(tags: [u8; GROUP], tag: u8) -> u128 {
    match_bytes(u128::from_le_bytes(tags), tag)
}

/// Bit 7 of every empty byte of `w`.
#[inline]
const fn empty_bytes(w: u128) -> u128 {
    !w & BYTES_HIGH
}

/// Lowest byte position flagged in a mask of bit-7 flags.
#[inline]
const fn first_byte(m: u128) -> u32 {
    m.trailing_zeros() >> 3
}

/// Clears `buf` where it is not already zero, a page-sized chunk at a time,
/// so zero memory is only read (untouched anonymous pages then stay
/// unallocated: reads map the shared zero page). Returns chunks written.
pub(crate) fn zero_dirty<T: Copy + Default + PartialEq>(buf: &mut [T]) -> usize {
    let per = (4096 / core::mem::size_of::<T>().max(1)).max(1);
    let mut written = 0;
    for c in buf.chunks_mut(per) {
        if c.iter().any(|x| *x != T::default()) {
            c.fill(T::default());
            written += 1;
        }
    }
    written
}

/// Index bytes (tags and overflow counters) a table of `slots` slots
/// needs: one per slot and one per group.
pub(crate) const fn index_bytes(slots: usize) -> usize {
    slots + slots / GROUP
}

/// Table size errors are the balancer's; these are the table's own parts.
pub(crate) struct ConnTable<'a> {
    pub slots: &'a mut [ConnSlot],
    /// A tag byte per slot, then an overflow counter per group.
    index: &'a mut [u8],
    wheel: &'a mut [u32],
    hasher: FixedState,
    groups: u32,
    /// Most live slots (7/8 of the slots or fewer).
    cap: u32,
    pub live: u32,
    /// Every tick before this one has been expired.
    next_tick: u64,
    /// Slots taken off a bucket and not yet looked at.
    pending: u32,
}

impl<'a> ConnTable<'a> {
    /// Gives the storage back (slots, index, wheel).
    pub fn into_parts(self) -> (&'a mut [ConnSlot], &'a mut [u8], &'a mut [u32]) {
        (self.slots, self.index, self.wheel)
    }

    /// A table over `slots` (a non-zero multiple of [`GROUP`], contents
    /// ignored), `index` ([`index_bytes`] of it) and `wheel` (a power of
    /// two), holding at most `cap` entries (at most 7/8 of the slots, so
    /// probes stay short). Only the non-zero parts of `index` and `wheel`
    /// are written; slots are not touched.
    pub fn new(
        slots: &'a mut [ConnSlot],
        index: &'a mut [u8],
        wheel: &'a mut [u32],
        cap: u32,
        seed: u64,
        now_tick: u64,
    ) -> Self {
        debug_assert!(slots.len() % GROUP == 0 && !slots.is_empty());
        debug_assert_eq!(index.len(), index_bytes(slots.len()));
        debug_assert!(wheel.len().is_power_of_two());
        debug_assert!(cap as usize <= slots.len() - slots.len() / 8);
        zero_dirty(index);
        zero_dirty(wheel);
        let groups = (slots.len() / GROUP) as u32;
        ConnTable {
            slots,
            index,
            wheel,
            hasher: FixedState::with_seed(seed),
            groups,
            cap,
            live: 0,
            next_tick: now_tick,
            pending: NIL,
        }
    }

    #[inline]
    pub fn free(&self) -> u32 {
        self.cap - self.live
    }

    /// Keyed hash of `k`, folded to 32 bits.
    #[inline]
    pub fn hash(&self, k: &Key) -> u32 {
        let mut h = self.hasher.build_hasher();
        if k.kind & KIND_V6 == 0 {
            // IPv4: the addresses are IPv4-mapped, so only their last four
            // bytes vary and the key fits one 128-bit write: one seeded
            // multiply in all. (Any function of the key is a correct hash;
            // a key whose bytes 0 to 11 differ, which no IPv4 packet
            // gives, would only spread less well.)
            let addrs = u64::from(low32(k.caddr)) | u64::from(low32(k.vaddr)) << 32;
            h.write_u128(u128::from(k.tail()) << 64 | u128::from(addrs));
        } else {
            h.write_u128(u128::from_ne_bytes(k.caddr));
            h.write_u128(u128::from_ne_bytes(k.vaddr));
            h.write_u64(k.tail());
        }
        let x = h.finish();
        (x ^ (x >> 32)) as u32
    }

    /// The two candidate groups of `hash` (the top bits pick the first, a
    /// remix the second; the low 7 bits are the tag).
    #[inline]
    fn homes(&self, hash: u32) -> (u32, u32) {
        let mixed = hash.wrapping_mul(0x9e37_79b1).rotate_left(13) ^ hash;
        (scale(hash, self.groups), scale(mixed, self.groups))
    }

    #[inline]
    fn next_group(&self, g: u32) -> u32 {
        if g + 1 == self.groups { 0 } else { g + 1 }
    }

    /// The 16 tags of group `g`.
    #[inline]
    fn tag_bytes(&self, g: u32) -> [u8; GROUP] {
        let at = (g as usize) << GROUP_SHIFT;
        let b: &[u8; GROUP] = self.index[at..at + GROUP]
            .try_into()
            .unwrap_or(&[TAG_EMPTY; GROUP]);
        *b
    }

    /// The 16 tags of group `g` as one little-endian word.
    #[inline]
    fn tags(&self, g: u32) -> u128 {
        u128::from_le_bytes(self.tag_bytes(g))
    }

    #[inline]
    fn overflow(&self, g: u32) -> u8 {
        self.index[self.slots.len() + g as usize]
    }

    /// Whether slot `s` holds an entry (its tag is full).
    #[cfg(any(test, feature = "sync"))]
    #[inline]
    pub fn is_live(&self, s: u32) -> bool {
        (s as usize) < self.slots.len() && self.index[s as usize] & TAG_FULL != 0
    }

    /// The first live slot at or after `from`, skipping empty groups a
    /// whole word at a time.
    pub fn next_live(&self, from: u32) -> Option<u32> {
        let mut g = from >> GROUP_SHIFT;
        let mut skip = from & (GROUP as u32 - 1);
        while g < self.groups {
            // Drop the flags of positions before `from` in its group.
            let m = (self.tags(g) & BYTES_HIGH) >> (skip * 8) << (skip * 8);
            if m != 0 {
                return Some((g << GROUP_SHIFT) | first_byte(m));
            }
            g += 1;
            skip = 0;
        }
        None
    }

    /// Every live slot, in slot order.
    pub fn live_slots(&self) -> impl Iterator<Item = u32> + '_ {
        let mut next = self.next_live(0);
        core::iter::from_fn(move || {
            let s = next?;
            next = self.next_live(s + 1);
            Some(s)
        })
    }

    /// Every live slot's contents, in slot order.
    pub fn live(&self) -> impl Iterator<Item = &ConnSlot> + '_ {
        self.live_slots().map(|s| &self.slots[s as usize])
    }

    #[inline(always)]
    fn find_in(&self, g: u32, tag: u8, k: &Key) -> Option<u32> {
        let mut m = match_tags(self.tag_bytes(g), tag);
        while m != 0 {
            let s = (g << GROUP_SHIFT) | first_byte(m);
            if self.slots[s as usize].matches(k) {
                return Some(s);
            }
            m &= m - 1;
        }
        None
    }

    /// The slot holding `k`, if any: its two groups, then the overflow
    /// chain after the second while the chain's counters are non-zero.
    #[inline]
    pub fn find(&self, hash: u32, k: &Key) -> Option<u32> {
        self.probe(hash, k).0
    }

    /// [`Self::find`] and the number of groups it read.
    #[inline(always)]
    fn probe(&self, hash: u32, k: &Key) -> (Option<u32>, u32) {
        let tag = tag_of(hash);
        let (g1, g2) = self.homes(hash);
        if let Some(s) = self.find_in(g1, tag, k) {
            return (Some(s), 1);
        }
        let mut g = g2;
        for read in 2..self.groups + 2 {
            if let Some(s) = self.find_in(g, tag, k) {
                return (Some(s), read);
            }
            if self.overflow(g) == 0 {
                return (None, read);
            }
            g = self.next_group(g);
        }
        (None, self.groups + 1)
    }

    /// The first slot of `hash`'s two groups whose tag matches (or `NIL`):
    /// a guess at [`Self::find`] that reads only the tag array.
    #[inline]
    pub fn candidate(&self, hash: u32) -> u32 {
        let tag = tag_of(hash);
        let (g1, g2) = self.homes(hash);
        for g in [g1, g2] {
            let m = match_tags(self.tag_bytes(g), tag);
            if m != 0 {
                return (g << GROUP_SHIFT) | first_byte(m);
            }
        }
        NIL
    }

    /// The slot a lookup of a key with `hash` would most likely find: the
    /// first, in [`Self::find`]'s order, whose tag and stored hash match
    /// (`NIL` for none). Compares no key, reads no group past the second.
    #[inline]
    pub fn find_hash(&self, hash: u32) -> u32 {
        let tag = tag_of(hash);
        let (g1, g2) = self.homes(hash);
        for g in [g1, g2] {
            let mut m = match_tags(self.tag_bytes(g), tag);
            while m != 0 {
                let s = (g << GROUP_SHIFT) | first_byte(m);
                if self.slots.get(s as usize).is_some_and(|x| x.hash == hash) {
                    return s;
                }
                m &= m - 1;
            }
        }
        NIL
    }

    /// [`Self::find`], trying slot `hint` first. Exact whatever the hint:
    /// the hint counts only while its tag is full and its key matches, and
    /// no two live slots share a key.
    #[inline]
    pub fn find_hinted(&self, hash: u32, k: &Key, hint: u32) -> Option<u32> {
        if let Some(slot) = self.slots.get(hint as usize) {
            if self.index[hint as usize] == tag_of(hash) && slot.matches(k) {
                return Some(hint);
            }
        }
        self.find(hash, k)
    }

    /// Claims a position for `hash`: the emptier of its two groups (the
    /// first on a tie), else the first group with room after the second,
    /// counted in the overflow byte of every full group passed. The caller
    /// has checked `live < cap`, so a free position exists.
    fn place(&mut self, hash: u32) -> u32 {
        let (g1, g2) = self.homes(hash);
        let e1 = empty_bytes(self.tags(g1));
        let e2 = empty_bytes(self.tags(g2));
        let (g, e) = if e1 != 0 && e1.count_ones() >= e2.count_ones() {
            (g1, e1)
        } else if e2 != 0 {
            (g2, e2)
        } else {
            let mut g = g2;
            // Ends: live < cap < slots, and the walk visits every group.
            loop {
                let at = self.slots.len() + g as usize;
                if self.index[at] != OVERFLOW_SATURATED {
                    self.index[at] += 1;
                }
                g = self.next_group(g);
                let e = empty_bytes(self.tags(g));
                if e != 0 {
                    break (g, e);
                }
            }
        };
        let s = (g << GROUP_SHIFT) | first_byte(e);
        self.index[s as usize] = tag_of(hash);
        s
    }

    /// Frees `s`'s position: clears its tag and takes it out of the
    /// overflow counters [`Self::place`] raised (the same path, from the
    /// stored hash). A saturated counter stays saturated.
    fn unplace(&mut self, s: u32) {
        let hash = self.slots[s as usize].hash;
        let (g1, g2) = self.homes(hash);
        let home = s >> GROUP_SHIFT;
        if home != g1 && home != g2 {
            let mut g = g2;
            for _ in 0..self.groups {
                if g == home {
                    break;
                }
                let at = self.slots.len() + g as usize;
                if self.index[at] != OVERFLOW_SATURATED {
                    self.index[at] -= 1;
                }
                g = self.next_group(g);
            }
        }
        self.index[s as usize] = TAG_EMPTY;
    }

    /// Takes a free position, fills in `k`, files it under `hash` and in
    /// the wheel at `expires`. `None` when the table holds its capacity.
    pub fn insert(&mut self, hash: u32, k: &Key, expires: u32) -> Option<u32> {
        if self.live >= self.cap {
            return None;
        }
        let s = self.place(hash);
        self.live += 1;
        self.slots[s as usize] = ConnSlot {
            caddr: k.caddr,
            vaddr: k.vaddr,
            cport: k.cport,
            vport: k.vport,
            svc: k.svc,
            proto: k.proto,
            kind: k.kind,
            server: 0,
            state: 0,
            flags: 0,
            expires,
            wnext: NIL,
            wprev: NIL,
            control: NIL,
            hash,
        };
        self.link(s);
        Some(s)
    }

    /// Makes template `s` an orphan: lookups no longer find it (its kind
    /// matches no key) while it stays in place for the connections it
    /// controls.
    pub fn orphan(&mut self, s: u32) {
        let slot = &mut self.slots[s as usize];
        slot.kind = KIND_ORPHAN | (slot.kind & KIND_V6);
    }

    /// Frees `s`: out of the index and the wheel.
    pub fn remove(&mut self, s: u32) {
        self.unplace(s);
        self.unlink(s);
        let slot = &mut self.slots[s as usize];
        slot.kind = KIND_FREE;
        slot.flags = 0;
        self.live -= 1;
    }

    fn link(&mut self, s: u32) {
        let b = (self.slots[s as usize].expires as usize) & (self.wheel.len() - 1);
        let head = self.wheel[b].wrapping_sub(1); // 0 (empty) becomes NIL
        let slot = &mut self.slots[s as usize];
        slot.wprev = HEAD_BIT | b as u32;
        slot.wnext = head;
        if head != NIL {
            self.slots[head as usize].wprev = s;
        }
        self.wheel[b] = s + 1;
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
            self.wheel[(prev & !HEAD_BIT) as usize] = next.wrapping_add(1);
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
        let slot = &mut self.slots[s as usize];
        let old = slot.expires;
        slot.expires = expires;
        if tick_before(expires, old) {
            self.refile(s);
        }
    }

    /// Files `s` again under its (earlier) expiry.
    #[inline(never)]
    fn refile(&mut self, s: u32) {
        self.unlink(s);
        self.link(s);
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
            let head = self.wheel[b].wrapping_sub(1);
            self.wheel[b] = 0;
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

    /// The first tick from the first one not yet expired whose bucket
    /// holds a slot, looking at most `limit` buckets (and one revolution)
    /// ahead; the tick after the last one looked at when none does. Every
    /// slot's bucket is at or before its expiry, so no slot expires before
    /// the tick returned ends.
    pub fn next_filled_tick(&self, limit: usize) -> u64 {
        if self.pending != NIL {
            return self.next_tick;
        }
        let mask = self.wheel.len() - 1;
        let ahead = limit.min(self.wheel.len()) as u64;
        (self.next_tick..self.next_tick + ahead)
            .find(|t| self.wheel[(*t as usize) & mask] != 0)
            .unwrap_or(self.next_tick + ahead)
    }
}

// Unit tests that need the standard library and private items live
// outside src, so src names no standard crate (lib.rs).
#[cfg(test)]
#[path = "../../unit-tests/lb/conn.rs"]
mod tests;
