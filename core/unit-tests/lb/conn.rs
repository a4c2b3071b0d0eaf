//! Tests of the connection table (`lb::conn`): index and overflow
//! counters, wrap-around, the expiry wheel, and a property test against
//! a `HashMap` model.

// The crate is no_std; this test module links std for itself (lib.rs).
extern crate std;

use super::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::vec;
use std::vec::Vec;

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

/// Storage for `groups` groups, at most 7/8 full, and its capacity.
struct Mem {
    slots: Vec<ConnSlot>,
    index: Vec<u8>,
    wheel: Vec<u32>,
    cap: u32,
}

fn mem(groups: usize, wheel: usize) -> Mem {
    let n = groups * GROUP;
    Mem {
        slots: vec![ConnSlot::EMPTY; n],
        index: vec![0; index_bytes(n)],
        wheel: vec![0; wheel],
        cap: (n - n / 8) as u32,
    }
}

fn table(m: &mut Mem, seed: u64) -> ConnTable<'_> {
    ConnTable::new(&mut m.slots, &mut m.index, &mut m.wheel, m.cap, seed, 0)
}

/// The overflow counters recomputed from the live slots' paths must
/// equal the stored ones; every live slot sits on its own path.
fn check_counters(t: &ConnTable<'_>) {
    let mut want = vec![0u32; t.groups as usize];
    for s in t.live_slots() {
        let (g1, g2) = t.homes(t.slots[s as usize].hash);
        let home = s >> GROUP_SHIFT;
        if home == g1 || home == g2 {
            continue;
        }
        let mut g = g2;
        let mut steps = 0;
        while g != home {
            want[g as usize] += 1;
            g = t.next_group(g);
            steps += 1;
            assert!(steps <= t.groups, "slot {s} is off its probe path");
        }
    }
    for (g, w) in want.iter().enumerate() {
        let got = t.overflow(g as u32);
        if got != OVERFLOW_SATURATED {
            assert_eq!(u32::from(got), *w, "overflow of group {g}");
        }
    }
}

#[test]
fn insert_find_remove_keeps_index_consistent() {
    let mut m = mem(4, 64);
    let mut t = table(&mut m, 7);
    let mut ids = Vec::new();
    for i in 0..t.cap {
        let k = key(i);
        let h = t.hash(&k);
        ids.push(t.insert(h, &k, 10 + i).unwrap());
    }
    let k = key(99);
    assert!(t.insert(t.hash(&k), &k, 1).is_none(), "full table refuses");
    check_counters(&t);
    for i in (0..ids.len()).step_by(3) {
        t.remove(ids[i]);
    }
    check_counters(&t);
    for i in 0..ids.len() as u32 {
        let k = key(i);
        let found = t.find(t.hash(&k), &k);
        assert_eq!(found.is_some(), i % 3 != 0, "key {i}");
        if let Some(s) = found {
            assert_eq!(s, ids[i as usize], "slots never move");
        }
    }
}

#[test]
fn chains_wrap_around_the_end_and_unwind() {
    // Every key hashes to the last group (both choices), so entries
    // chain past the end into group 0 and on.
    let mut m = mem(4, 64);
    let mut t = table(&mut m, 1);
    let hash = u32::MAX;
    let (g1, g2) = t.homes(hash);
    assert_eq!((g1, g2), (3, 3), "a hash whose two groups are the last");
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(t.insert(hash, &key(i), 5).unwrap());
    }
    assert!(ids[..16].iter().all(|&s| s >> GROUP_SHIFT == 3));
    assert!(
        ids[16..32].iter().all(|&s| s >> GROUP_SHIFT == 0),
        "wrapped"
    );
    assert!(ids[32..].iter().all(|&s| s >> GROUP_SHIFT == 1));
    assert_eq!((t.overflow(3), t.overflow(0), t.overflow(1)), (24, 8, 0));
    check_counters(&t);
    for i in 0..40 {
        assert_eq!(t.find(hash, &key(i)), Some(ids[i as usize]));
    }
    assert_eq!(t.find(hash, &key(1000)), None);
    for &s in &ids[..16] {
        t.remove(s);
    }
    check_counters(&t);
    // Entries past the end are still found (their counters remain).
    for i in 16..40 {
        assert_eq!(t.find(hash, &key(i)), Some(ids[i as usize]));
    }
    for &s in &ids[16..] {
        t.remove(s);
    }
    assert_eq!(t.live, 0);
    assert!(t.index.iter().all(|&b| b == 0), "index back to all zero");
}

#[test]
fn new_touches_no_slot_and_writes_only_dirty_index() {
    // Slots full of a real key's bytes (left over from an earlier
    // table): a new table must not take them for live entries.
    let mut m = mem(4, 16);
    let k = key(5);
    let stale = ConnSlot {
        caddr: k.caddr,
        vaddr: k.vaddr,
        cport: k.cport,
        vport: k.vport,
        kind: KIND_CONN,
        proto: 6,
        flags: F_INACTIVE,
        wnext: 3,
        wprev: 3,
        control: 9,
        hash: 0xdead_beef,
        ..ConnSlot::EMPTY
    };
    m.slots.fill(stale);
    let before = m.slots.clone();
    {
        let t = table(&mut m, 3);
        let h = t.hash(&k);
        assert_eq!(t.find(h, &k), None);
        assert_eq!(t.find_hinted(h, &k, 5), None, "a stale hint is no hit");
        assert_eq!(t.candidate(h), NIL);
        assert_eq!(t.next_live(0), None);
        assert_eq!(t.live_slots().count(), 0);
        assert!(!t.is_live(5));
        // Positions past the slots (the overflow bytes) are never live.
        assert!(!t.is_live(t.slots.len() as u32) && !t.is_live(NIL));
        assert_eq!(t.find_hinted(h, &k, t.slots.len() as u32), None);
    }
    assert_eq!(m.slots, before, "ConnTable::new wrote no slot");
    // Zero memory is read, never written; dirty chunks are cleared.
    let mut zero = vec![0u8; 5 * 4096];
    assert_eq!(zero_dirty(&mut zero), 0);
    zero[3 * 4096 + 17] = 0x81;
    assert_eq!(zero_dirty(&mut zero), 1);
    assert!(zero.iter().all(|&b| b == 0));
    let mut wheel = vec![0u32; 4096];
    wheel[2000] = 7;
    assert_eq!(zero_dirty(&mut wheel), 1, "one 4 KiB page of u32");
    // A new table over a dirty index and wheel starts empty.
    m.index.fill(0x85);
    m.wheel.fill(3);
    let mut t = table(&mut m, 3);
    assert_eq!(t.live_slots().count(), 0);
    assert_eq!(t.pop_due(1000), None);
    let h = t.hash(&k);
    let s = t.insert(h, &k, 1002).unwrap();
    assert_eq!(t.find(h, &k), Some(s));
    assert_eq!(t.pop_due(1003), Some(s));
}

#[test]
fn wheel_expires_in_order_and_handles_shortening() {
    let mut m = mem(1, 4);
    let mut t = table(&mut m, 1);
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
fn long_churn_at_full_load_keeps_probes_short() {
    // 7/8 full, 50 rounds of the whole table replaced at random: the
    // counters stay exact and lookups read few groups (two-choice
    // placement keeps overflow chains rare and short).
    let mut m = mem(256, 1024);
    let mut t = table(&mut m, 11);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut live: Vec<(u32, u32)> = Vec::new();
    let mut fresh = 0u32;
    while live.len() < t.cap as usize {
        let k = key(fresh);
        live.push((fresh, t.insert(t.hash(&k), &k, 1).unwrap()));
        fresh += 1;
    }
    for _ in 0..50 * t.cap {
        let i = (next() % live.len() as u64) as usize;
        t.remove(live.swap_remove(i).1);
        let k = key(fresh);
        live.push((fresh, t.insert(t.hash(&k), &k, 1).unwrap()));
        fresh += 1;
    }
    check_counters(&t);
    let (mut hit_sum, mut hit_max) = (0u32, 0u32);
    for &(i, s) in &live {
        let k = key(i);
        let (found, read) = t.probe(t.hash(&k), &k);
        assert_eq!(found, Some(s));
        hit_sum += read;
        hit_max = hit_max.max(read);
    }
    let (mut miss_sum, mut miss_max) = (0u32, 0u32);
    for i in 0..4096 {
        let k = key(fresh + i);
        let (found, read) = t.probe(t.hash(&k), &k);
        assert_eq!(found, None);
        miss_sum += read;
        miss_max = miss_max.max(read);
    }
    let hit_avg = f64::from(hit_sum) / live.len() as f64;
    let miss_avg = f64::from(miss_sum) / 4096.0;
    assert!(
        hit_avg < 1.6 && hit_max <= 12,
        "hits: {hit_avg} avg, {hit_max} max"
    );
    assert!(
        miss_avg < 3.0 && miss_max <= 16,
        "misses: {miss_avg} avg, {miss_max} max"
    );
}

#[test]
fn slot_is_64_bytes() {
    assert_eq!(core::mem::size_of::<ConnSlot>(), 64);
    assert_eq!(core::mem::align_of::<ConnSlot>(), 64, "one cache line");
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u32, u32),
    Remove(u32),
    Find(u32),
    SetExpiry(u32, u32),
    Advance(u32),
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u32..150;
    prop_oneof![
        4 => (k.clone(), 0u32..100).prop_map(|(k, d)| Op::Insert(k, d)),
        2 => k.clone().prop_map(Op::Remove),
        2 => k.clone().prop_map(Op::Find),
        1 => (k, 0u32..100).prop_map(|(k, d)| Op::SetExpiry(k, d)),
        1 => (0u32..40).prop_map(Op::Advance),
    ]
}

proptest! {
    /// The one-subtraction tag match: every byte equal to the tag is
    /// flagged, the lowest flag is a match, and every flag is a full
    /// slot (lookups compare the key of each flagged slot).
    #[test]
    fn tag_match_flags_every_match_and_only_full_slots(
        bytes in proptest::collection::vec(proptest::option::weighted(0.8, 0u8..128), GROUP),
        tag7 in 0u8..128,
    ) {
        let tags: Vec<u8> = bytes.iter().map(|b| b.map_or(TAG_EMPTY, |t| TAG_FULL | t)).collect();
        let mut word = [0u8; GROUP];
        word.copy_from_slice(&tags);
        let tag = TAG_FULL | tag7;
        // The word test, and the one lookups use (the same or, with SSE2,
        // a vector compare).
        for m in [match_bytes(u128::from_le_bytes(word), tag), match_tags(word, tag)] {
            for (i, &t) in tags.iter().enumerate() {
                let flagged = m >> (i * 8 + 7) & 1 == 1;
                if t == tag {
                    prop_assert!(flagged, "byte {} matches", i);
                }
                if flagged {
                    prop_assert!(t & TAG_FULL != 0, "byte {} flagged but empty", i);
                }
            }
            if m != 0 {
                prop_assert_eq!(tags[first_byte(m) as usize], tag);
            }
        }
    }

    /// Random inserts, removals, lookups, expiry changes and wheel
    /// passes against a `HashMap` model, with the table's own keyed
    /// hash or (`crowd`) three hashes for every key, so overflow
    /// chains, wrap-around and a full table all happen.
    #[test]
    fn table_matches_a_hashmap_model(
        ops in proptest::collection::vec(op(), 1..400),
        crowd in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut m = mem(4, 16);
        let mut t = table(&mut m, seed);
        let crowded = [u32::MAX, u32::MAX - 0x10_0000, 0x4000_0000];
        let hash_of = |t: &ConnTable<'_>, i: u32| {
            if crowd { crowded[(i % 3) as usize] } else { t.hash(&key(i)) }
        };
        // key -> (slot, expiry tick)
        let mut model: HashMap<u32, (u32, u32)> = HashMap::new();
        let mut now = 0u32;
        for op in ops {
            match op {
                Op::Insert(i, d) => {
                    if model.contains_key(&i) {
                        continue; // the balancer inserts only what it did not find
                    }
                    let got = t.insert(hash_of(&t, i), &key(i), now + d);
                    if model.len() == t.cap as usize {
                        prop_assert_eq!(got, None, "full table refuses");
                    } else {
                        let s = got.expect("room left");
                        prop_assert!(model.values().all(|&(o, _)| o != s));
                        model.insert(i, (s, now + d));
                    }
                }
                Op::Remove(i) => {
                    if let Some((s, _)) = model.remove(&i) {
                        t.remove(s);
                    }
                }
                Op::Find(i) => {
                    let want = model.get(&i).map(|&(s, _)| s);
                    prop_assert_eq!(t.find(hash_of(&t, i), &key(i)), want);
                    let hint = want.unwrap_or(0);
                    prop_assert_eq!(t.find_hinted(hash_of(&t, i), &key(i), hint), want);
                    // The batch's guess: a live slot with that hash, or none.
                    let h = hash_of(&t, i);
                    let guess = t.find_hash(h);
                    if guess != NIL {
                        prop_assert!(t.is_live(guess) && t.slots[guess as usize].hash == h);
                    }
                    let (g1, g2) = t.homes(h);
                    if let Some(s) = want.filter(|&s| s >> GROUP_SHIFT == g1 || s >> GROUP_SHIFT == g2) {
                        prop_assert!(guess != NIL, "slot {} is in a home group", s);
                    }
                }
                Op::SetExpiry(i, d) => {
                    if let Some(e) = model.get_mut(&i) {
                        t.set_expiry(e.0, now + d);
                        e.1 = now + d;
                    }
                }
                Op::Advance(d) => {
                    now += d;
                    while let Some(s) = t.pop_due(u64::from(now)) {
                        let (&i, &(_, e)) = model
                            .iter()
                            .find(|(_, v)| v.0 == s)
                            .expect("a due slot is live");
                        prop_assert!(e < now, "slot {} due at {} before {}", s, e, now);
                        t.remove(s);
                        model.remove(&i);
                    }
                    prop_assert!(model.values().all(|&(_, e)| e >= now), "all due expired");
                }
            }
            prop_assert_eq!(t.live as usize, model.len());
            let mut live: Vec<u32> = t.live_slots().collect();
            let mut want: Vec<u32> = model.values().map(|&(s, _)| s).collect();
            want.sort_unstable();
            live.sort_unstable();
            prop_assert_eq!(live, want);
            check_counters(&t);
        }
        for (&i, &(s, _)) in &model {
            prop_assert_eq!(t.find(hash_of(&t, i), &key(i)), Some(s));
        }
    }
}
