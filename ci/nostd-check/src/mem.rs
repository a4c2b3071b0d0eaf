//! The C memory functions a firmware's runtime (or compiler_builtins' `mem`
//! feature) provides; Linux leaves them to libc, which this binary does not
//! link. Byte loops: the figure should reflect vrlb, not a tuned memcpy.

// SAFETY: the compiler only calls these with valid, non-overlapping (for
// memcpy) regions of `n` bytes, as the C standard requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: i < n, within both regions.
        unsafe { *dst.add(i) = *src.add(i) };
    }
    dst
}

// SAFETY: as memcpy, regions may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) < (src as usize) {
        for i in 0..n {
            // SAFETY: i < n; copying forwards never overwrites unread bytes.
            unsafe { *dst.add(i) = *src.add(i) };
        }
    } else {
        for i in (0..n).rev() {
            // SAFETY: i < n; copying backwards never overwrites unread bytes.
            unsafe { *dst.add(i) = *src.add(i) };
        }
    }
    dst
}

// SAFETY: the compiler only calls this with a valid region of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: i < n, within the region.
        unsafe { *dst.add(i) = c as u8 };
    }
    dst
}

// SAFETY: the compiler only calls this with two valid regions of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: i < n, within both regions.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

// SAFETY: as memcmp.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}
