//! Gives back, once the daemon is running, memory that only its start-up
//! used: freed heap (the configuration's parse and build temporaries,
//! `malloc_trim(3)`), the main thread's stack below the loop (the
//! parser's deep frames), and the pages of its own executable that
//! start-up read (argument parsing, the configuration parser, netlink
//! set-up) but the event loop at rest never runs. One of the daemon's few
//! `unsafe` modules. Never changes what any live memory holds.
//!
//! The executable's pages go with `madvise(MADV_DONTNEED)` on each of its
//! read-only mappings that holds no page of its own (no copy-on-write
//! page: smaps' `Anonymous: 0 kB`), so every page there is still the
//! file's: the process's page tables forget them, the kernel's page cache
//! keeps them, and what the loop runs faults back in from it. Writable
//! mappings and relocated read-only data (RELRO, which the loader wrote)
//! are never touched.

use std::fs;

use log::debug;
use vrlb_core::time::Duration;

/// How long after the last VRRP state change to trim again: a new master
/// runs code start-up did not (VIPs, gratuitous ARPs), the last of it the
/// second burst `garp_master_delay` (5 s by default) sends.
pub const SETTLE: Duration = Duration::from_millis(5500);

/// Bytes one trim gave back, for the log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// Resident bytes of the executable's mappings that were dropped.
    pub executable_bytes: u64,
    /// Bytes of the stack below the caller's frame that were dropped.
    pub stack_bytes: u64,
    /// Whether `malloc_trim` released any heap.
    pub heap_released: bool,
}

/// One mapping of /proc/self/smaps that may be dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    rss_kib: u64,
}

/// Trims now (after start-up, a reload, or once state changes settle).
pub fn after_start() -> Trimmed {
    let mut t = Trimmed {
        // SAFETY: malloc_trim only returns free memory to the system; it
        // takes no pointer and is thread-safe (glibc locks its arenas).
        heap_released: unsafe { libc::malloc_trim(0) } == 1,
        ..Trimmed::default()
    };
    let exe = fs::read_link("/proc/self/exe").ok();
    let smaps = fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    if let Some(exe) = exe.as_ref().and_then(|p| p.to_str()) {
        for m in clean_read_only(&smaps, exe) {
            // SAFETY: [start, end) is a whole, page-aligned, read-only
            // private mapping of our own executable with no anonymous
            // (written) page, so after MADV_DONTNEED every access reads
            // the file's bytes again, which are what it held: no value the
            // program can observe changes. The executable cannot change
            // under us (the kernel refuses writes to a running binary,
            // ETXTBSY; a replaced file keeps its old inode mapped here).
            let r = unsafe {
                libc::madvise(
                    m.start as *mut libc::c_void,
                    m.end - m.start,
                    libc::MADV_DONTNEED,
                )
            };
            if r == 0 {
                t.executable_bytes += m.rss_kib * 1024;
            }
        }
    }
    t.stack_bytes = trim_stack(&smaps);
    debug!(
        "trimmed start-up memory: {} KiB of the executable, {} KiB of stack{}",
        t.executable_bytes / 1024,
        t.stack_bytes / 1024,
        if t.heap_released { ", freed heap" } else { "" }
    );
    t
}

/// Room left below the caller's frame: more than the frames of this
/// module, the system call and a signal handler can reach.
const STACK_MARGIN: usize = 64 * 1024;

/// Drops the pages of the `[stack]` mapping more than [`STACK_MARGIN`]
/// below this frame, when this thread runs on it (the main thread).
fn trim_stack(smaps: &str) -> u64 {
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    let Some((start, end)) = smaps.lines().find_map(|l| {
        let (range, rest) = l.split_once(' ')?;
        if !rest.trim_end().ends_with("[stack]") {
            return None;
        }
        let (a, b) = range.split_once('-')?;
        Some((
            usize::from_str_radix(a, 16).ok()?,
            usize::from_str_radix(b, 16).ok()?,
        ))
    }) else {
        return 0;
    };
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    if !(start..end).contains(&sp) {
        return 0;
    }
    let top = sp.saturating_sub(STACK_MARGIN) & !(page - 1);
    if top <= start {
        return 0;
    }
    // SAFETY: [start, top) is the bottom of this thread's own stack, more
    // than STACK_MARGIN below the current frame: below the stack pointer
    // nothing is live (x86-64's red zone is 128 bytes, and a signal
    // handler's frame exists only while it runs, above `top`), so no
    // value the program can reach is lost; the pages read as zero again,
    // as a stack's fresh pages do.
    let r = unsafe { libc::madvise(start as *mut libc::c_void, top - start, libc::MADV_DONTNEED) };
    if r == 0 { (top - start) as u64 } else { 0 }
}

/// The read-only mappings of `exe` in `smaps` text with no anonymous
/// page and something resident.
fn clean_read_only(smaps: &str, exe: &str) -> Vec<Mapping> {
    let mut out = Vec::new();
    // (mapping, whether it may go) of the entry being read.
    let mut current: Option<(Mapping, bool)> = None;
    let flush = |c: Option<(Mapping, bool)>, out: &mut Vec<Mapping>| {
        if let Some((m, true)) = c
            && m.rss_kib > 0
        {
            out.push(m);
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            flush(current.take(), &mut out);
            let perms = f.next().unwrap_or("");
            // offset, dev, inode, then the path (which has no spaces for a
            // file vrlb runs from; " (deleted)" makes it not match).
            let path = f.nth(3).unwrap_or("");
            let read_only = perms.starts_with('r') && perms.as_bytes().get(1) == Some(&b'-');
            let private = perms.as_bytes().get(3) == Some(&b'p');
            let whole_path = f.next().is_none();
            let ok = read_only && private && path == exe && whole_path;
            current = Some((
                Mapping {
                    start,
                    end,
                    rss_kib: 0,
                },
                ok,
            ));
            continue;
        }
        let Some((m, ok)) = current.as_mut() else {
            continue;
        };
        let kib = f.next().and_then(|v| v.parse::<u64>().ok());
        match first {
            "Rss:" => m.rss_kib = kib.unwrap_or(0),
            // A page written here (by the loader, or a debugger's
            // breakpoint) became a private copy, counted as anonymous, and
            // is not the file's any more. (`Private_Dirty` also counts the
            // page cache's own dirty pages of a file just written: those
            // are still the file's.)
            "Anonymous:" if kib != Some(0) => *ok = false,
            _ => {}
        }
    }
    flush(current.take(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55f8c20e7000-55f8c220b000 r--p 00000000 fe:00 6384129                    /usr/sbin/vrlb
Rss:                 648 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55f8c220b000-55f8c2567000 r-xp 00123000 fe:00 6384129                    /usr/sbin/vrlb
Size:               3440 kB
Rss:                2480 kB
Shared_Dirty:          0 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55f8c2567000-55f8c2583000 r--p 0047e000 fe:00 6384129                    /usr/sbin/vrlb
Rss:                 112 kB
Private_Dirty:       112 kB
Anonymous:           112 kB
55f8c2583000-55f8c2585000 rw-p 00499000 fe:00 6384129                    /usr/sbin/vrlb
Rss:                   8 kB
Anonymous:             0 kB
7f4ece9a5000-7f4eceafb000 r-xp 00028000 fe:00 1234                       /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1176 kB
Anonymous:             0 kB
7f4ecec00000-7f4ecec10000 r-xp 00000000 fe:00 6384129                    /usr/sbin/vrlb (deleted)
Rss:                  64 kB
Anonymous:             0 kB
7fff07d5a000-7fff07d9a000 rw-p 00000000 00:00 0                          [stack]
Rss:                 256 kB
Anonymous:           256 kB
";

    #[test]
    fn only_clean_read_only_mappings_of_the_executable_are_dropped() {
        let got = clean_read_only(SMAPS, "/usr/sbin/vrlb");
        assert_eq!(
            got,
            vec![
                Mapping {
                    start: 0x55f8c20e7000,
                    end: 0x55f8c220b000,
                    rss_kib: 648
                },
                Mapping {
                    start: 0x55f8c220b000,
                    end: 0x55f8c2567000,
                    rss_kib: 2480
                },
            ]
        );
        // Not the RELRO mapping (written by the loader), not .data, not
        // another file, not a deleted one.
        assert!(clean_read_only(SMAPS, "/usr/sbin/other").is_empty());
    }

    #[test]
    fn trimming_this_process_drops_its_code_pages_and_keeps_it_running() {
        let exe = fs::read_link("/proc/self/exe").unwrap();
        let exe = exe.to_str().unwrap().to_string();
        let resident = || -> u64 {
            let smaps = fs::read_to_string("/proc/self/smaps").unwrap();
            clean_read_only(&smaps, &exe)
                .iter()
                .map(|m| m.rss_kib)
                .sum()
        };
        let before = resident();
        let t = after_start();
        let after = resident();
        assert!(before > 0 && t.executable_bytes > 0, "{before} KiB, {t:?}");
        // What runs from here faulted back in: this test, the smaps
        // reader, the formatter below. Far less than was resident.
        assert!(
            after < before,
            "{after} KiB resident after, {before} before"
        );
        assert_eq!(format!("{}", 1 + 1), "2");
    }
}
