//! The kernel's `hsiphash` of one 32-bit word, which Maglev hashing keys
//! its permutations with. Pure arithmetic; knows nothing of servers.

/// `hsiphash` of one 32-bit word as lib/siphash.c computes it on 64-bit
/// hosts: SipHash-1-3 over the word's 4 little-endian bytes, truncated to
/// 32 bits. Hand-written: a fixed 4-byte input needs none of a general
/// SipHash crate's streaming state, and the truncation must match.
#[inline]
pub(crate) fn hsiphash_u32(key: (u64, u64), word: u32) -> u32 {
    let mut v0 = 0x736f_6d65_7073_6575 ^ key.0;
    let mut v1 = 0x646f_7261_6e64_6f6d ^ key.1;
    let mut v2 = 0x6c79_6765_6e65_7261 ^ key.0;
    let mut v3 = 0x7465_6462_7974_6573 ^ key.1;
    let b = (4u64 << 56) | u64::from(word);
    macro_rules! round {
        () => {
            v0 = v0.wrapping_add(v1);
            v1 = v1.rotate_left(13);
            v1 ^= v0;
            v0 = v0.rotate_left(32);
            v2 = v2.wrapping_add(v3);
            v3 = v3.rotate_left(16);
            v3 ^= v2;
            v0 = v0.wrapping_add(v3);
            v3 = v3.rotate_left(21);
            v3 ^= v0;
            v2 = v2.wrapping_add(v1);
            v1 = v1.rotate_left(17);
            v1 ^= v2;
            v2 = v2.rotate_left(32);
        };
    }
    v3 ^= b;
    round!();
    v0 ^= b;
    v2 ^= 0xff;
    round!();
    round!();
    round!();
    (v0 ^ v1 ^ v2 ^ v3) as u32
}
