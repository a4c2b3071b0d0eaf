//! The order of a graceful stop, read off the daemon's own system calls
//! (strace, one ordered stream): after SIGTERM, a master that holds two
//! instances sends both priority-0 adverts before it removes any VIP
//! (each backup's Skew_Time runs from its advert), and removes the VIPs
//! before any slower work starts: the notify_stop script and the data
//! plane's `nft` are spawned only after the last VIP is gone.

use std::path::Path;
use std::time::Duration;

use vrlb_tests::netns::{Lab, TempDir, binary, has_addr, run, wait_until};

const VIPS: [&str; 2] = ["192.0.2.240", "192.0.2.241"];

fn conf(iface: &str, script: &Path) -> String {
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
}}
",
            51 + i,
            script.display()
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
fn sigterm_sends_every_priority_zero_advert_then_removes_vips_then_tears_down() {
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
    let script = dir.path("stop.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let conf_path = dir.path("d.conf");
    std::fs::write(&conf_path, conf(&iface, &script)).unwrap();
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
    let up = wait_until(Duration::from_secs(20), || {
        VIPS.iter().all(|v| has_addr(&d, v))
            && std::fs::read_to_string(&log).is_ok_and(|t| t.contains("data plane on"))
    });
    assert!(
        up.is_some(),
        "never master of both with the data plane\n{}",
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
    let after = &lines[term..];
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
