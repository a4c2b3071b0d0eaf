//! The firmware footprint figures (issue 9), printed for `ci/footprint.sh`
//! and BENCHMARKS.md, with the budget asserted: the VRRP-only node with one
//! instance of eight VIPs fits in 2 KiB of RAM.

use vrlb_core::node::{InstanceSlot, Node, TimerEntry};
use vrlb_core::vrrp::InlineVips;

/// RAM of a VRRP-only node: the node, one instance slot, its timer queue.
fn vrrp_only_ram() -> usize {
    std::mem::size_of::<Node<'static, InlineVips<8>>>()
        + std::mem::size_of::<InstanceSlot<InlineVips<8>>>()
        + 4 * std::mem::size_of::<TimerEntry>()
}

#[test]
fn footprint_figures() {
    let ram = vrrp_only_ram();
    println!("vrrp-only node (1 instance, 8 VIPs): {ram} bytes of RAM");
    println!(
        "  size_of Node<8> = {}",
        std::mem::size_of::<Node<'static, InlineVips<8>>>()
    );
    println!(
        "  size_of InstanceSlot<8> = {}",
        std::mem::size_of::<InstanceSlot<InlineVips<8>>>()
    );
    println!(
        "  size_of TimerEntry = {}",
        std::mem::size_of::<TimerEntry>()
    );
    println!(
        "  size_of InstanceSlot (64 VIPs, the Linux default) = {}",
        std::mem::size_of::<InstanceSlot>()
    );
    #[cfg(all(feature = "lb", feature = "check"))]
    {
        println!(
            "  connection slot = {} bytes (templates use the same slots)",
            std::mem::size_of::<vrlb_core::lb::ConnSlot>()
        );
        println!(
            "  balancer real server slot = {} bytes",
            std::mem::size_of::<vrlb_core::lb::ServerSlot>()
        );
        println!(
            "  node real server slot = {} bytes",
            std::mem::size_of::<vrlb_core::node::ServerSlot>()
        );
        println!(
            "  checker slot = {} bytes",
            std::mem::size_of::<vrlb_core::node::CheckerSlot>()
        );
        assert!(std::mem::size_of::<vrlb_core::lb::ConnSlot>() <= 64);
    }
    // The budget is for the VRRP-only build; the full build's node carries
    // the balancing outputs too.
    #[cfg(not(feature = "lb"))]
    assert!(
        ram <= 2048,
        "VRRP-only node is {ram} bytes, over the 2 KiB budget"
    );
}
