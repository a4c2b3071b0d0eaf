//! Zero-filled, leaked memory for a worker's connection table, straight
//! from `mmap(2)`: an anonymous private mapping reads as zeros and the
//! kernel gives it pages only when they are first written, so the slots,
//! tags and wheel of an idle table cost no resident memory (the core's
//! table writes nothing that is already zero and never reads an empty
//! slot). The data plane's only unsafe code besides `sys.rs`.

use std::alloc::Layout;

/// Types for which all-zero bytes are a valid value.
///
/// # Safety
///
/// Implement only for types made of plain integers (and arrays of them):
/// no references, no `bool`, no enums, no niches.
pub unsafe trait Zeroable: Sized {}

// SAFETY: `ConnSlot` is `repr(C)` of integers and integer arrays only
// (core/src/lb/conn.rs says so and that zeroed slots are valid).
unsafe impl Zeroable for vrlb_core::lb::ConnSlot {}
// SAFETY: an integer.
unsafe impl Zeroable for u8 {}
// SAFETY: an integer.
unsafe impl Zeroable for u32 {}

/// `n` zeroed `T`s that live as long as the process (shards are never
/// freed). Aborts like any allocation when the memory is not there.
pub fn leak_zeroed<T: Zeroable>(n: usize) -> &'static mut [T] {
    let Ok(layout) = Layout::array::<T>(n) else {
        panic!("a connection table of {n} elements does not fit the address space");
    };
    if layout.size() == 0 {
        return &mut [];
    }
    // SAFETY: a new private anonymous mapping with no address hint: it
    // overlaps nothing; the result is checked for MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            layout.size(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: the mapping is `layout.size()` bytes, page aligned (more
    // than any `T` needs), zero-filled (a valid `[T]`: `T: Zeroable`),
    // never unmapped, and this is its only reference.
    unsafe { std::slice::from_raw_parts_mut(p.cast::<T>(), n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    /// The pagemap entries (`/proc/self/pagemap`) of the `len` bytes at
    /// `addr`, one per page.
    fn pagemap(addr: usize, len: usize) -> Vec<u64> {
        use std::io::{Read, Seek, SeekFrom};
        let first = addr / PAGE;
        let pages = (addr + len).div_ceil(PAGE) - first;
        let mut map = std::fs::File::open("/proc/self/pagemap").unwrap();
        map.seek(SeekFrom::Start((first * 8) as u64)).unwrap();
        let mut raw = vec![0u8; pages * 8];
        map.read_exact(&mut raw).unwrap();
        raw.chunks_exact(8)
            .map(|e| u64::from_le_bytes(e.try_into().unwrap()))
            .collect()
    }

    /// Resident KiB of the `len` bytes at `addr`: their own pages, not the
    /// shared zero page that reading maps. Counted page by page where
    /// pagemap shows frame numbers (as root): the whole mapping's Rss
    /// counts pages of neighbours the kernel merged it with, which other
    /// tests' threads may be writing. Without frame numbers, that Rss.
    pub(crate) fn resident_kib(addr: usize, len: usize) -> u64 {
        const PRESENT: u64 = 1 << 63;
        const FRAME: u64 = (1 << 55) - 1;
        let probe: &'static mut [u8] = leak_zeroed(PAGE);
        assert_eq!(probe[0], 0, "a read maps the zero page");
        let zero_frame = pagemap(probe.as_ptr() as usize, 1)[0] & FRAME;
        if zero_frame == 0 {
            return mapping_rss_kib(addr);
        }
        let own = pagemap(addr, len)
            .into_iter()
            .filter(|e| e & PRESENT != 0 && e & FRAME != zero_frame)
            .count();
        (own * PAGE / 1024) as u64
    }

    /// Rss of the whole mapping that holds `addr` (`/proc/self/smaps`).
    fn mapping_rss_kib(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    {
                        inside = (a..b).contains(&addr);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(v) = line.strip_prefix("Rss:") {
                    return v.trim().trim_end_matches("kB").trim().parse().unwrap();
                }
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    #[test]
    fn zeroed_memory_is_zero_and_not_resident_until_written() {
        let n = 16 << 20; // 16 MiB
        let m: &'static mut [u8] = leak_zeroed(n);
        let addr = m.as_ptr() as usize;
        assert!(m.iter().step_by(4096).all(|&b| b == 0), "reads as zeros");
        assert!(resident_kib(addr, n) < 1024, "reading maps no pages");
        for b in m.iter_mut().step_by(4096).take(64) {
            *b = 1;
        }
        assert!(resident_kib(addr, n) >= 256, "writes do");
        let slots: &'static mut [vrlb_core::lb::ConnSlot] = leak_zeroed(3);
        assert!(slots.iter().all(|s| *s == vrlb_core::lb::ConnSlot::EMPTY));
        assert!(leak_zeroed::<u32>(0).is_empty());
    }

    #[test]
    fn an_idle_shard_table_stays_off_resident_memory() {
        use crate::dataplane::shard::Shard;
        use vrlb_core::lb::{Layout, LbConfig};
        use vrlb_core::time::Instant;
        let layout = Layout {
            services: 1,
            servers_per_service: 4,
            mh_table_max: 0,
            connections: 1 << 20, // 77 MiB of slots, 1.2 MiB of tags
        };
        let shard = Shard::new(layout, LbConfig::default(), 7, Instant::ZERO).unwrap();
        assert_eq!(shard.balancer.tracked(), 0);
        let st = shard.balancer.into_storage();
        let conns = (st.conns.as_ptr() as usize, std::mem::size_of_val(st.conns));
        let index = (st.index.as_ptr() as usize, std::mem::size_of_val(st.index));
        assert_eq!(st.conns.len(), layout.conn_slots());
        // Shard::new cleared nothing and wrote no slot: the mappings (which
        // the kernel may have merged) hold next to nothing.
        let kib = resident_kib(conns.0, conns.1).max(resident_kib(index.0, index.1));
        assert!(kib < 4096, "{kib} KiB resident after Shard::new");
    }
}
