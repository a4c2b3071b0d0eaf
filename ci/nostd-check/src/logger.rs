//! The global defmt logger: the smallest a board can have. It counts the
//! bytes of each frame instead of moving them to RTT or a UART, which is
//! all the link check needs (defmt's macros in the core resolve to it).

use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[defmt::global_logger]
struct Logger;

static TAKEN: AtomicBool = AtomicBool::new(false);
/// Bytes logged so far (a board's transport would send them).
static BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: `acquire` refuses a second holder, so frames never interleave;
// the other methods only run between `acquire` and `release`, as defmt's
// contract says.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        // No interrupts here, so a taken logger means a reentrant log call.
        if TAKEN.swap(true, Ordering::Acquire) {
            panic!("defmt logger taken twice");
        }
    }

    unsafe fn flush() {}

    unsafe fn release() {
        TAKEN.store(false, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        BYTES.fetch_add(black_box(bytes).len(), Ordering::Relaxed);
    }
}
