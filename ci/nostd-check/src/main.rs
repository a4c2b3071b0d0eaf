//! Link check: a freestanding binary that drives vrlb-core. If any crate in
//! the graph links `std`, its `#[panic_handler]` collides with ours and the
//! build fails. Its text size is the firmware footprint figure: the VRRP-only
//! profile runs one instance with eight VIPs; the full profile also parses a
//! keepalived.conf into a node.
#![no_std]
#![no_main]
// The memory functions below must not be compiled into calls to themselves.
#![no_builtins]

use core::hint::black_box;
use core::net::{IpAddr, Ipv4Addr};
use core::panic::PanicInfo;

use vrlb_core::node::{
    GroupSlot, IfaceId, Input, InstanceSlot, Node, NodeStorage, ScriptSlot, TimerEntry,
};
use vrlb_core::time::Instant;
use vrlb_core::vrrp;

// The C memory functions a firmware's runtime (or compiler_builtins' `mem`
// feature) provides; Linux leaves them to libc, which this binary does not
// link. Byte loops: the figure should reflect vrlb, not a tuned memcpy.

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

#[panic_handler]
fn panic(_info: &PanicInfo) -> ! {
    loop {}
}

/// One instance, eight VIPs: the firmware budget's case.
fn vrrp_node() {
    let mut instances = [InstanceSlot::<vrlb_core::vrrp::InlineVips<8>>::default()];
    let mut timers = [TimerEntry::default(); 4];
    let mut node = Node::new(NodeStorage {
        instances: &mut instances,
        scripts: &mut [] as &mut [ScriptSlot],
        groups: &mut [] as &mut [GroupSlot],
        timers: &mut timers,
    });
    let me = IpAddr::V4(Ipv4Addr::new(192, 0, 2, black_box(1)));
    let vips: [IpAddr; 8] =
        core::array::from_fn(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, 240 + i as u8)));
    let mut config = vrrp::Config::new(black_box(51), me);
    config.priority = black_box(150);
    let Ok(id) = node.add_instance(config, &vips, &[], IfaceId(0), 1) else {
        return;
    };
    node.handle(Instant::ZERO, Input::Start);
    let mut buf = [0u8; 128];
    let packet = black_box([0u8; 40]);
    node.handle(
        Instant::from_millis(10),
        Input::Advert {
            iface: IfaceId(0),
            src: me,
            dst: vrrp::MULTICAST,
            ttl: 255,
            payload: &packet,
        },
    );
    while let Some(t) = node.poll_timeout() {
        if t > Instant::from_secs(black_box(10)) {
            break;
        }
        node.handle_timeout(t);
        while let Some(out) = node.poll_output() {
            if let vrlb_core::node::Output::Vrrp {
                event: vrrp::Output::Advert { priority },
                ..
            } = out
            {
                black_box(node.emit_advert(id, priority, me, vrrp::MULTICAST, &mut buf));
            }
        }
    }
}

#[cfg(feature = "full")]
fn full_node() {
    use vrlb_core::config::{NoIncludes, Options};
    use vrlb_core::node::build::{self, Environment};

    struct Env;
    impl Environment for Env {
        fn interface(&mut self, _name: &str) -> IfaceId {
            IfaceId(0)
        }
        fn primary_address(&mut self, _iface: IfaceId, _family: vrrp::Family) -> Option<IpAddr> {
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
        }
    }
    let text = black_box(
        "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n virtual_ipaddress {\n  192.0.2.240\n }\n}\n",
    );
    let mut instances = [InstanceSlot::<vrlb_core::vrrp::InlineVips<8>>::default(), InstanceSlot::<vrlb_core::vrrp::InlineVips<8>>::default()];
    let mut scripts = [ScriptSlot::default()];
    let mut groups = [GroupSlot::default()];
    let mut timers = [TimerEntry::default(); 8];
    let mut node = Node::new(NodeStorage {
        instances: &mut instances,
        scripts: &mut scripts,
        groups: &mut groups,
        timers: &mut timers,
    });
    black_box(
        build::build(
            &mut node,
            &mut Env,
            "keepalived.conf",
            text,
            &Options::default(),
            &mut NoIncludes,
        )
        .is_ok(),
    );
}

// SAFETY: `_start` is the process entry point the linker expects with
// -nostartfiles; nothing else defines it.
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    vrrp_node();
    #[cfg(feature = "full")]
    full_node();
    loop {}
}
