//! Link check: a freestanding binary that calls into vrlb-core. If any crate
//! in the graph links `std`, its `#[panic_handler]` collides with ours and
//! the build fails.
#![no_std]
#![no_main]

use core::panic::PanicInfo;

use vrlb_core::rand::Prng;
use vrlb_core::time::{Duration, Instant};

#[panic_handler]
fn panic(_info: &PanicInfo) -> ! {
    loop {}
}

// SAFETY: `_start` is the process entry point the linker expects with
// -nostartfiles; nothing else defines it.
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    let mut prng = Prng::new(1);
    let now = Instant::ZERO + Duration::from_millis(prng.below(1000));
    core::hint::black_box(now);
    loop {}
}
