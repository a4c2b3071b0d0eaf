//! The seed scenario with `use_vmac` added to its instance by a reload:
//! the VIP moves onto `vrrp.51` with the virtual router's MAC, the client
//! reaches the real servers through the DR data plane (which takes the
//! frames sent to the VMAC on its base interface), its ARP entry for the
//! VIP is the VMAC; when the master dies the backup serves the same
//! client, its real server kept (connection sync), with no ARP change at
//! the client: the MAC it has is the new master's too.

use std::time::Duration;

use vrlb_tests::netns::{in_ns, run, wait_until};
use vrlb_tests::seed_lab::Seed;

const VIP: &str = "192.0.2.240";
const VMAC: &str = "00:00:5e:00:01:33";
const LONG: Duration = Duration::from_secs(20);

/// The real server that answers `GET /` through the VIP, if one does.
fn served_by(seed: &Seed) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &seed.ns("client")])
        .args(["curl", "-s", "-m", "2", &format!("http://{VIP}/")])
        .output()
        .ok()?;
    let body = String::from_utf8_lossy(&out.stdout);
    body.split_whitespace().next().map(str::to_string)
}

/// The client's neighbour entry for the VIP.
fn client_mac(seed: &Seed) -> Option<String> {
    let text = in_ns(&seed.ns("client"), &["ip", "neigh", "show", VIP]);
    let mut w = text.split_whitespace();
    w.position(|x| x == "lladdr")?;
    w.next().map(str::to_string)
}

#[test]
fn the_seed_with_use_vmac_forwards_through_the_vmac_and_fails_over_without_an_arp_change() {
    let Some(seed) = Seed::new(&["curl"]) else {
        return;
    };
    let up = seed.lab_cmd("up");
    if !up.status.success() {
        seed.fail(&format!(
            "vrlb lab up: {}",
            String::from_utf8_lossy(&up.stderr)
        ));
    }
    for d in ["d1", "d2"] {
        let path = seed.dir.join(format!("{d}.conf"));
        let text = std::fs::read_to_string(&path).unwrap();
        let with = text.replacen(
            "virtual_router_id 51",
            "virtual_router_id 51\n    use_vmac",
            1,
        );
        assert_ne!(text, with, "{d}.conf has no virtual_router_id 51");
        std::fs::write(&path, with).unwrap();
        run(&[
            "kill",
            "-HUP",
            &seed.pid(usize::from(d == "d2")).to_string(),
        ]);
    }
    let (d1, d2) = (seed.ns("d1"), seed.ns("d2"));
    let on_vmac = |ns: &str| {
        in_ns(ns, &["ip", "-o", "addr", "show", "dev", "vrrp.51"]).contains(&format!(" {VIP}/"))
    };
    if wait_until(LONG, || on_vmac(&d1)).is_none() {
        seed.fail("the VIP never reached d1's vrrp.51");
    }
    let first = wait_until(LONG, || served_by(&seed).is_some())
        .and_then(|_| served_by(&seed))
        .unwrap_or_else(|| seed.fail("no answer through the VMAC"));
    assert_eq!(
        client_mac(&seed).as_deref(),
        Some(VMAC),
        "the client's entry for the VIP"
    );
    // Persistence: the same real server every time.
    for _ in 0..3 {
        assert_eq!(served_by(&seed).as_deref(), Some(first.as_str()));
    }

    // d1 is gone (killed, its link down); d2 takes the VIP onto its own
    // VMAC and serves the client, who keeps its ARP entry and server.
    run(&["kill", "-9", &seed.pid(0).to_string()]);
    run(&["ip", "-n", &d1, "link", "set", "eth0", "down"]);
    if wait_until(LONG, || on_vmac(&d2)).is_none() {
        seed.fail("the VIP never reached d2's vrrp.51");
    }
    let after = wait_until(LONG, || served_by(&seed).is_some())
        .and_then(|_| served_by(&seed))
        .unwrap_or_else(|| seed.fail("no answer through d2"));
    assert_eq!(after, first, "the client kept its real server");
    assert_eq!(client_mac(&seed).as_deref(), Some(VMAC));
}
