//! The order of a takeover and of a graceful stop, read off the daemon's
//! own system calls (strace, one ordered stream). Taking over, the VIP
//! is added and its gratuitous ARP sent before the notify_master script
//! is spawned. After SIGTERM, a master that holds two instances sends
//! both priority-0 adverts before it removes any VIP (each backup's
//! Skew_Time runs from its advert), and removes the VIPs before any
//! slower work starts: the notify_stop script and the data plane's `nft`
//! are spawned only after the last VIP is gone.

use std::path::Path;
use std::time::Duration;

use vrlb_tests::netns::{Lab, TempDir, binary, has_addr, run, wait_until};

const VIPS: [&str; 2] = ["192.0.2.240", "192.0.2.241"];

fn conf(iface: &str, stop: &Path, master: &Path) -> String {
    let mut s = String::from("global_defs {\n    router_id order\n    vrrp_version 3\n}\n");
    for (i, vip) in VIPS.iter().enumerate() {
        s.push_str(&format!(
            "vrrp_instance VI_{i} {{
    state MASTER
    interface {iface}
    virtual_router_id {}
    priority 100
    advert_int 0.1
    virtual_ipaddress {{
        {vip}/32
    }}
    notify_stop {}
    notify_master {}
}}
",
            51 + i,
            stop.display(),
            master.display()
        ));
    }
    // A DR service, so the data plane runs and removes its nftables table
    // on the way out.
    s.push_str(&format!(
        "virtual_server {} 80 {{
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 192.0.2.50 80 {{
        weight 1
    }}
}}
",
        VIPS[0]
    ));
    s
}

/// Index of the first line `f` accepts.
fn first(lines: &[&str], f: impl Fn(&str) -> bool) -> Option<usize> {
    lines.iter().position(|l| f(l))
}

#[test]
fn takeover_announces_before_notify_and_sigterm_resigns_before_removing_vips_and_tearing_down() {
    let Some(mut lab) = Lab::new(&["strace", "nft"]) else {
        return;
    };
    let dir = TempDir::new(&lab.tag);
    let vrlb = binary("vrlb");
    let d = lab.netns("d");
    let p = lab.netns("p");
    let iface = lab.name("e0");
    lab.veth(&d, &iface, &p, "p0");
    run(&["ip", "-n", &d, "addr", "add", "192.0.2.1/24", "dev", &iface]);
    let script = |name: &str| {
        let path = dir.path(name);
        std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    };
    let (stop, master) = (script("stop.sh"), script("master.sh"));
    let conf_path = dir.path("d.conf");
    std::fs::write(&conf_path, conf(&iface, &stop, &master)).unwrap();
    let trace = dir.path("strace.txt");
    let pid_file = dir.path("d.pid");
    let log = dir.path("d.log");
    let tracer = lab.spawn(
        &d,
        &[
            "strace",
            "-f",
            "-qq",
            "-x",
            "-e",
            "trace=sendto,sendmsg,execve",
            "-o",
            trace.to_str().unwrap(),
            vrlb.to_str().unwrap(),
            "run",
            "-f",
            conf_path.to_str().unwrap(),
            "-p",
            pid_file.to_str().unwrap(),
            "--state-file",
            dir.path("d.vips").to_str().unwrap(),
            "--control-socket",
            dir.path("d.sock").to_str().unwrap(),
            "--workers",
            "1",
            "--dataplane-iface",
            &iface,
        ],
        &log,
    );
    let show = || {
        format!(
            "log:\n{}\ntrace (tail):\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            std::fs::read_to_string(&trace)
                .unwrap_or_default()
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    // Master of both, the data plane up, and notify_master started: its
    // child execs a little after the spawn (slower under strace -f), and
    // the stop must not overtake it in the trace.
    let up = wait_until(Duration::from_secs(20), || {
        VIPS.iter().all(|v| has_addr(&d, v))
            && std::fs::read_to_string(&log).is_ok_and(|t| t.contains("data plane on"))
            && std::fs::read_to_string(&trace).is_ok_and(|t| {
                t.lines()
                    .any(|l| l.contains("execve(") && l.contains("master.sh"))
            })
    });
    assert!(
        up.is_some(),
        "never master of both with the data plane and notify_master run\n{}",
        show()
    );
    // SIGTERM to vrlb itself (its pid file), not to strace.
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    run(&["kill", "-TERM", pid.trim()]);
    // strace exits with the daemon; the lab reaps it (or kills it after 10 s).
    lab.signal(tracer, "0");
    assert!(
        VIPS.iter().all(|v| !has_addr(&d, v)),
        "VIPs left after the stop\n{}",
        show()
    );

    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let term = first(&lines, |l| l.contains("--- SIGTERM"))
        .unwrap_or_else(|| panic!("no SIGTERM in the trace\n{}", show()));
    let (before, after) = lines.split_at(term);

    // The takeover: VIP, then its gratuitous ARP (AF_PACKET), then the
    // script (the first instance's; the second may take over in a later
    // loop turn).
    let added = first(before, |l| {
        l.contains("RTM_NEWADDR") && l.contains("sendto(")
    })
    .unwrap_or_else(|| panic!("no RTM_NEWADDR before SIGTERM\n{}", show()));
    let garp = added
        + first(&before[added..], |l| {
            l.contains("sendto(") && l.contains("AF_PACKET")
        })
        .unwrap_or_else(|| panic!("no gratuitous ARP after the VIP was added\n{}", show()));
    let notified = first(before, |l| l.contains("execve(") && l.contains("master.sh"))
        .unwrap_or_else(|| panic!("notify_master not run\n{}", show()));
    eprintln!(
        "takeover (trace lines): VIP added at {added}, GARP at {garp}, notify_master at {notified}"
    );
    assert!(
        garp < notified,
        "notify_master was spawned before the VIP and its gratuitous ARP\n{}",
        before[added.min(notified)..].join("\n")
    );

    // VRRPv3 advert payloads (hex with -x, as they hold non-ASCII bytes):
    // version/type 0x31, the VRID, the priority.
    let goodbye = |vrid: u8| {
        let head = format!("\"\\x31\\x{vrid:02x}\\x00");
        first(after, |l| l.contains("sendto(") && l.contains(&head))
            .unwrap_or_else(|| panic!("no priority-0 advert for VRID {vrid}\n{}", show()))
    };
    let (g51, g52) = (goodbye(51), goodbye(52));
    let removed = first(after, |l| l.contains("RTM_DELADDR"))
        .unwrap_or_else(|| panic!("no RTM_DELADDR after SIGTERM\n{}", show()));
    let spawned = |what: &str| {
        first(after, |l| l.contains("execve(") && l.contains(what))
            .unwrap_or_else(|| panic!("{what} not run after SIGTERM\n{}", show()))
    };
    let (nft, notify) = (spawned("nft"), spawned("stop.sh"));
    let last_removed = after
        .iter()
        .rposition(|l| l.contains("RTM_DELADDR"))
        .unwrap();
    eprintln!(
        "after SIGTERM (trace lines): priority 0 at {g51} and {g52}, VIPs removed {removed}..{last_removed}, \
         notify_stop at {notify}, nft at {nft}"
    );
    assert!(
        g51 < removed && g52 < removed,
        "a VIP was removed before every priority-0 advert was sent\n{}",
        after.join("\n")
    );
    assert!(
        last_removed < nft && last_removed < notify,
        "teardown started before the last VIP was removed\n{}",
        after.join("\n")
    );
}
