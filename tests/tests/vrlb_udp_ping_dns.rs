//! `vrlb run` checks real servers by UDP_CHECK, PING_CHECK and DNS_CHECK
//! for real: a small responder (Python, in the client namespace) answers
//! a UDP port with a reply the check's pattern matches, keeps another
//! port open without answering, and answers DNS queries with NOERROR.
//! All four servers come up (`alpha`); when the responder stops, the UDP
//! and DNS servers go down (port unreachable) while the pinged one stays
//! up; they come back with the responder; an nftables rule dropping echo
//! requests takes the pinged server down, and removing it brings it back.

use std::time::Duration;

use vrlb_tests::netns::{in_ns, run, wait_until};
use vrlb_tests::vrrp_lab::{Kind, Running, VrrpLab, log};

const SERVER: &str = "192.0.2.100";
/// UDP_CHECK with require_reply; no reply needed; DNS_CHECK; PING_CHECK.
const UDP_REPLY: u16 = 5301;
const UDP_QUIET: u16 = 5304;
const DNS: u16 = 5302;
const PING: u16 = 5303;
/// Each down or up must be seen within this (the check's own bound is
/// delay_loop 1 + 2 attempts of connect_timeout 1 + delay_before_retry 1).
const WAIT: Duration = Duration::from_secs(12);

/// Answers UDP_REPLY with "OK" and the request's first byte, DNS with the
/// query turned into a NOERROR response; UDP_QUIET is bound, silent.
const RESPONDER: &str = r#"
import select, socket, sys
ip = sys.argv[1]
def bound(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    return s
reply, dns, quiet = bound(5301), bound(5302), bound(5304)
print("ready", flush=True)
while True:
    for s in select.select([reply, dns, quiet], [], [])[0]:
        data, peer = s.recvfrom(2048)
        if s is reply:
            s.sendto(b"OK" + data[:1], peer)
        elif s is dns and len(data) >= 12:
            s.sendto(data[:2] + bytes([0x81, 0x80]) + data[4:], peer)
"#;

fn conf() -> String {
    let timing = "connect_timeout 1\n      retry 1\n      delay_before_retry 1";
    format!(
        "virtual_server 192.0.2.240 53 {{
  delay_loop 1
  lb_algo rr
  lb_kind DR
  protocol UDP
  alpha
  real_server {SERVER} {UDP_REPLY} {{
    UDP_CHECK {{
      payload 31 32
      require_reply 4f4b 3X
      min_reply_length 3
      max_reply_length 3
      {timing}
    }}
  }}
  real_server {SERVER} {UDP_QUIET} {{
    UDP_CHECK {{
      {timing}
    }}
  }}
  real_server {SERVER} {DNS} {{
    DNS_CHECK {{
      type A
      name www.example.com
      {timing}
    }}
  }}
  real_server {SERVER} {PING} {{
    PING_CHECK {{
      {timing}
    }}
  }}
}}
"
    )
}

fn count(d: &Running, what: &str) -> usize {
    log(d).matches(what).count()
}

fn wait_for(d: &Running, what: &str, n: usize) {
    if wait_until(WAIT, || count(d, what) >= n).is_none() {
        panic!(
            "no {what:?} #{n} within {WAIT:?}\n--- {}\n{}",
            d.log.display(),
            log(d)
        );
    }
}

fn state(port: u16, up: bool) -> String {
    let word = if up { "up" } else { "down" };
    format!("real server {SERVER}:{port}: {word}")
}

#[test]
fn udp_ping_and_dns_checks_take_servers_down_and_back_up() {
    let Some(mut lab) = VrrpLab::new(&["python3", "nft"]) else {
        return;
    };
    let script = lab.dir.path("responder.py");
    std::fs::write(&script, RESPONDER).unwrap();
    let client = lab.client.clone();
    let respond = |lab: &mut VrrpLab, run: u32| {
        let out = lab.dir.path(&format!("responder{run}.log"));
        let script = script.to_str().unwrap().to_string();
        let pid = lab
            .lab
            .spawn(&client, &["python3", "-u", &script, SERVER], &out);
        let ready = wait_until(Duration::from_secs(5), || {
            std::fs::read_to_string(&out).is_ok_and(|t| t.contains("ready"))
        });
        assert!(ready.is_some(), "the responder did not start");
        pid
    };

    let pid = respond(&mut lab, 1);
    let d0 = lab.start(Kind::Vrlb, 0, &conf());
    for port in [UDP_REPLY, UDP_QUIET, DNS, PING] {
        wait_for(&d0, &state(port, true), 1);
    }
    assert_eq!(count(&d0, ": down"), 0, "{}", log(&d0));
    // A new namespace's ping_group_range ("1 0") admits no group: raw
    // sockets, said once, and the sysctl is left alone.
    assert_eq!(
        count(&d0, "echoes go on raw ICMP sockets"),
        1,
        "{}",
        log(&d0)
    );
    let range = in_ns(&lab.ns[0], &["cat", "/proc/sys/net/ipv4/ping_group_range"]);
    assert_eq!(range.split_whitespace().collect::<Vec<_>>(), ["1", "0"]);

    // The responder stops: its ports answer with ICMP port unreachable.
    lab.lab.signal(pid, "KILL");
    for port in [UDP_REPLY, UDP_QUIET, DNS] {
        wait_for(&d0, &state(port, false), 1);
    }
    let text = log(&d0);
    for (name, port) in [
        ("UDP_CHECK", UDP_REPLY),
        ("UDP_CHECK", UDP_QUIET),
        ("DNS_CHECK", DNS),
    ] {
        let failed = format!("{name} {SERVER}:{port}: failed: ");
        assert!(
            text.lines()
                .any(|l| l.contains(&failed) && l.contains("port unreachable")),
            "{failed}\n{text}"
        );
    }
    assert_eq!(count(&d0, &state(PING, false)), 0, "{text}");

    // Back: one good probe each.
    let pid = respond(&mut lab, 2);
    for port in [UDP_REPLY, UDP_QUIET, DNS] {
        wait_for(&d0, &state(port, true), 2);
    }

    // Echo requests dropped in the server's namespace: PING_CHECK times
    // out and its server goes down; the others stay up.
    let rules = "table inet vrlb_test_ping {\n chain input {\n  type filter hook input priority 0;\n  icmp type echo-request drop\n }\n}\n";
    let rules_file = lab.dir.path("drop-ping.nft");
    std::fs::write(&rules_file, rules).unwrap();
    run(&[
        "ip",
        "netns",
        "exec",
        &client,
        "nft",
        "-f",
        rules_file.to_str().unwrap(),
    ]);
    wait_for(&d0, &state(PING, false), 1);
    let text = log(&d0);
    assert!(
        text.contains(&format!(
            "PING_CHECK {SERVER}:{PING}: failed: timed out after 1000 ms"
        )),
        "{text}"
    );
    for port in [UDP_REPLY, UDP_QUIET, DNS] {
        assert_eq!(count(&d0, &state(port, false)), 1, "{text}");
    }
    run(&[
        "ip",
        "netns",
        "exec",
        &client,
        "nft",
        "delete",
        "table",
        "inet",
        "vrlb_test_ping",
    ]);
    wait_for(&d0, &state(PING, true), 2);
    assert!(
        in_ns(&client, &["nft", "list", "tables"]).is_empty(),
        "the rule is gone"
    );

    lab.lab.signal(pid, "TERM");
    lab.stop(&d0);
    let text = log(&d0);
    assert!(text.contains("vrlb stopped"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}
