//! Link check: a freestanding binary that drives vrlb-core. If any crate in
//! the graph links `std`, its `#[panic_handler]` collides with ours and the
//! build fails. Its text size is the firmware footprint figure: every
//! profile runs one VRRP instance with eight VIPs through start, an advert
//! and its timers; the full profile also builds the seed's keepalived.conf
//! into a node and drives its balancer, checkers and connection sync
//! (`seed.rs`); with `defmt` the core logs through a global defmt logger
//! (`logger.rs`), linked with defmt's linker script.
#![no_std]
#![no_main]
// The memory functions in mem.rs must not be compiled into calls to
// themselves.
#![no_builtins]

mod mem;

#[cfg(feature = "defmt")]
mod logger;
#[cfg(feature = "full")]
mod seed;

use core::hint::black_box;
use core::net::{IpAddr, Ipv4Addr};
use core::panic::PanicInfo;

use vrlb_core::node::{
    GroupSlot, IfaceId, Input, InstanceSlot, Node, NodeStorage, Output, ScriptSlot, TimerEntry,
};
use vrlb_core::time::Instant;
use vrlb_core::vrrp;

#[panic_handler]
fn panic(_info: &PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// One instance, eight VIPs: the firmware budget's case.
fn vrrp_node() {
    let mut instances = [InstanceSlot::<vrrp::InlineVips<8>>::default()];
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
            if let Output::Vrrp {
                event: vrrp::Output::Advert { priority },
                ..
            } = out
            {
                black_box(node.emit_advert(id, priority, me, vrrp::MULTICAST, &mut buf));
            } else {
                black_box(out);
            }
        }
    }
}

// SAFETY: `_start` is the process entry point the linker expects with
// -nostartfiles; nothing else defines it.
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    vrrp_node();
    #[cfg(feature = "full")]
    seed::run();
    loop {
        core::hint::spin_loop();
    }
}
