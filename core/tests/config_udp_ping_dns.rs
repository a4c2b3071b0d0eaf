//! UDP_CHECK, PING_CHECK and DNS_CHECK (config/checker.rs, config/hex.rs):
//! their own options in every form keepalived.conf(5) gives, the generic
//! connection options, the per-kind defaults the build applies, and each
//! error and warning with its place.

mod common;

use core::net::IpAddr;

use common::world::World;

use vrlb_core::check::ProbeKind;
use vrlb_core::config::{
    self, CheckKind, CheckerConf, DnsType, NoIncludes, Options, ReplyMismatch, Sink, UdpConf,
};

#[derive(Default, Debug)]
struct Checkers(Vec<CheckerConf<'static>>, Vec<String>);

impl Sink for Checkers {
    fn real_server(
        &mut self,
        _vs: &config::VirtualServer<'_>,
        rs: &config::RealServer<'_>,
    ) -> Result<(), config::Kind> {
        for c in &rs.checkers {
            // The strings borrowed from the text are leaked for the test.
            let mut owned = CheckerConf::new(c.kind, c.pos);
            owned.connect_ip = c.connect_ip;
            owned.connect_port = c.connect_port;
            owned.bind_to = c.bind_to;
            owned.bind_port = c.bind_port;
            owned.connect_timeout = c.connect_timeout;
            owned.retry = c.retry;
            owned.delay_before_retry = c.delay_before_retry;
            owned.delay_loop = c.delay_loop;
            owned.warmup = c.warmup;
            owned.alpha = c.alpha;
            owned.udp = c.udp.clone();
            owned.dns_type = c.dns_type;
            owned.dns_name = c.dns_name.map(|n| &*String::leak(n.to_string()));
            self.0.push(owned);
        }
        Ok(())
    }
    fn diagnostic(&mut self, d: &config::Diagnostic) {
        self.1.push(d.to_string());
    }
}

fn parse(text: &str) -> Result<Checkers, String> {
    let mut c = Checkers::default();
    config::parse("k.conf", text, &Options::default(), &mut c, &mut NoIncludes)
        .map(|_| c)
        .map_err(|e| e.to_string())
}

/// `body` as the block of a checker on a real server.
fn server(body: &str) -> String {
    format!(
        "virtual_server 192.0.2.1 53 {{\n protocol UDP\n real_server 192.0.2.10 53 {{\n{body}\n }}\n lb_kind DR\n}}\n"
    )
}

#[test]
fn udp_check_reads_the_man_page_hex_and_its_lengths() {
    let c = parse(&server(
        "  UDP_CHECK {\n   payload Ab12f 3 456 546443123\n   require_reply 4f4b Xx 1x\n   min_reply_length 3\n   max_reply_length 512\n   connect_ip 192.0.2.11\n   connect_port 5353\n   bindto 192.0.2.2\n   bind_port 4000\n   connect_timeout 4\n   retry 2\n   delay_before_retry 2\n   delay_loop 10\n   warmup 1\n   alpha\n  }",
    ))
    .unwrap();
    assert!(c.1.is_empty(), "{:?}", c.1);
    let u = &c.0[0];
    assert_eq!(u.kind, CheckKind::Udp);
    assert_eq!(
        &u.udp.payload[..],
        &[
            0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03
        ]
    );
    assert!(u.udp.require_reply);
    assert_eq!(&u.udp.reply[..], &[0x4f, 0x4b, 0x00, 0x10]);
    assert_eq!(&u.udp.reply_mask[..], &[0, 0, 0xff, 0x0f]);
    assert_eq!((u.udp.min_reply_len, u.udp.max_reply_len), (3, 512));
    assert_eq!(u.connect_ip, Some("192.0.2.11".parse::<IpAddr>().unwrap()));
    assert_eq!((u.connect_port, u.bind_port), (Some(5353), Some(4000)));
    assert_eq!(u.bind_to, Some("192.0.2.2".parse::<IpAddr>().unwrap()));
    assert_eq!(u.connect_timeout.map(|d| d.as_secs()), Some(4));
    assert_eq!((u.retry, u.alpha), (Some(2), Some(true)));
    assert_eq!(u.delay_loop.map(|d| d.as_secs()), Some(10));
    assert_eq!(u.warmup.map(|d| d.as_secs()), Some(1));
}

#[test]
fn udp_check_defaults_and_require_reply_without_a_pattern() {
    let c = parse(&server(
        "  UDP_CHECK {\n  }\n  UDP_CHECK {\n   require_reply\n  }",
    ))
    .unwrap();
    assert!(c.1.is_empty(), "{:?}", c.1);
    assert_eq!(c.0[0].udp, UdpConf::default());
    assert_eq!(
        (c.0[0].udp.min_reply_len, c.0[0].udp.max_reply_len),
        (0, 255)
    );
    assert!(c.0[1].udp.require_reply && c.0[1].udp.reply.is_empty());
}

#[test]
fn a_reply_is_judged_by_length_then_pattern_up_to_the_shorter() {
    let mut u = UdpConf {
        require_reply: true,
        min_reply_len: 2,
        max_reply_len: 4,
        ..UdpConf::default()
    };
    u.reply.extend_from_slice(&[0x4f, 0x40, 0x01]).unwrap();
    u.reply_mask.extend_from_slice(&[0, 0x0f, 0]).unwrap();
    assert_eq!(u.judge(b"O"), Err(ReplyMismatch::TooShort { len: 1 }));
    assert_eq!(u.judge(b"OKOKO"), Err(ReplyMismatch::TooLong { len: 5 }));
    // 'K' is 0x4b: the wildcard low nibble lets it pass; a shorter reply
    // is compared only as far as it goes.
    assert_eq!(u.judge(b"OK"), Ok(()));
    assert_eq!(u.judge(b"OK\x01\x09"), Ok(()));
    assert_eq!(u.judge(b"OK\x02"), Err(ReplyMismatch::Byte { at: 2 }));
    assert_eq!(u.judge(b"P"), Err(ReplyMismatch::TooShort { len: 1 }));
    assert_eq!(u.judge(b"PK"), Err(ReplyMismatch::Byte { at: 0 }));
}

#[test]
fn dns_check_reads_type_and_name_with_keepalived_s_defaults() {
    let c = parse(&server(
        "  DNS_CHECK {\n   type aaaa\n   name www.example.com.\n   connect_port 5353\n  }\n  DNS_CHECK {\n  }",
    ))
    .unwrap();
    assert!(c.1.is_empty(), "{:?}", c.1);
    assert_eq!(c.0[0].kind, CheckKind::Dns);
    assert_eq!(c.0[0].dns_type, DnsType::Aaaa);
    assert_eq!(c.0[0].dns_name, Some("www.example.com."));
    assert_eq!(c.0[0].connect_port, Some(5353));
    assert_eq!((c.0[1].dns_type, c.0[1].dns_name), (DnsType::Soa, None));
    let names: Vec<_> = DnsType::ALL.iter().map(|t| (t.name(), t.code())).collect();
    assert_eq!(
        names,
        [
            ("A", 1),
            ("NS", 2),
            ("CNAME", 5),
            ("SOA", 6),
            ("MX", 15),
            ("TXT", 16),
            ("AAAA", 28)
        ]
    );
}

#[test]
fn ping_check_takes_the_connection_options_but_warns_of_ports() {
    let c = parse(&server(
        "  PING_CHECK {\n   connect_ip 192.0.2.12\n   connect_port 7\n   retry 2\n  }",
    ))
    .unwrap();
    assert_eq!(c.0.len(), 1);
    assert_eq!(c.0[0].kind, CheckKind::Ping);
    assert_eq!(
        c.0[0].connect_ip,
        Some("192.0.2.12".parse::<IpAddr>().unwrap())
    );
    assert_eq!(
        c.1,
        [
            "k.conf:6:4: warning: 'connect_port': does not apply to PING_CHECK: an ICMP echo has no port"
        ]
    );
}

#[test]
fn options_keepalived_has_but_vrlb_does_not_act_on_are_warned_of() {
    let c = parse(&server(
        "  UDP_CHECK {\n   fwmark 7\n   bind_if eth0\n   type A\n  }\n  PING_CHECK {\n   payload 00\n  }",
    ))
    .unwrap();
    assert_eq!(c.0.len(), 2);
    assert_eq!(
        c.1,
        [
            "k.conf:5:4: warning: 'fwmark' is not supported by vrlb: probes go out unmarked",
            "k.conf:6:4: warning: 'bind_if' is not supported by vrlb: probes leave by the route to the target",
            "k.conf:7:4: warning: 'type' does not belong in a checker block, skipped",
            "k.conf:10:4: warning: 'payload' does not belong in a checker block, skipped",
        ]
    );
}

#[test]
fn reply_lengths_without_require_reply_are_warned_of() {
    let c = parse(&server(
        "  UDP_CHECK {\n   max_reply_length 20\n   min_reply_length 2\n  }",
    ))
    .unwrap();
    assert_eq!(
        c.1,
        [
            "k.conf:5:4: warning: 'max_reply_length': has no effect without require_reply: no reply is awaited"
        ]
    );
}

/// (checker block, "line:col", the error's text)
const ERRORS: &[(&str, &str, &str)] = &[
    (
        "  UDP_CHECK {\n   payload 01 0g\n  }",
        "5:15",
        "'payload': expected hex digits such as 'Ab12 f3', found '0g'",
    ),
    (
        "  UDP_CHECK {\n   payload 0X\n  }",
        "5:12",
        "'payload': expected hex digits such as 'Ab12 f3', found '0X'",
    ),
    (
        "  UDP_CHECK {\n   payload\n  }",
        "5:11",
        "'payload': expected a hex string, found the end of the line",
    ),
    (
        "  UDP_CHECK {\n   payload \"\"\n  }",
        "5:12",
        "payload: the hex string has no digits",
    ),
    (
        "  UDP_CHECK {\n   require_reply \" \"\n  }",
        "5:18",
        "require_reply: the hex string has no digits",
    ),
    (
        "  UDP_CHECK {\n   require_reply 4f z1\n  }",
        "5:21",
        "'require_reply': expected hex digits, X for any nibble, found 'z1'",
    ),
    (
        "  UDP_CHECK {\n   min_reply_length 65536\n  }",
        "5:21",
        "'min_reply_length' value '65536' is out of range: expected 0..65535",
    ),
    (
        "  UDP_CHECK {\n   max_reply_length -1\n  }",
        "5:21",
        "'max_reply_length': expected a number, found '-1'",
    ),
    (
        "  UDP_CHECK {\n   require_reply\n   min_reply_length 10\n   max_reply_length 5\n  }",
        "4:3",
        "UDP_CHECK: min_reply_length is greater than max_reply_length: no reply could pass",
    ),
    ("  DNS_CHECK {\n   type PTR\n  }", "5:9", "'type'"),
    (
        "  DNS_CHECK {\n   name www..example.com\n  }",
        "5:9",
        "'name': expected a domain name such as example.com",
    ),
    (
        "  DNS_CHECK {\n   name .example.com\n  }",
        "5:9",
        "no empty labels",
    ),
    (
        "  DNS_CHECK {\n   connect_port 0\n  }",
        "5:17",
        "'connect_port' value '0' is out of range: expected 1..65535",
    ),
    (
        "  PING_CHECK {\n   connect_timeout 0\n  }",
        "5:20",
        "'connect_timeout' value '0' is out of range",
    ),
];

#[test]
fn each_error_names_its_place() {
    let mut wrong = Vec::new();
    for (body, at, text) in ERRORS {
        match parse(&server(body)) {
            Ok(_) => wrong.push(format!("{body:?}: accepted")),
            Err(e) if !(e.starts_with(&format!("k.conf:{at}: error: ")) && e.contains(text)) => {
                wrong.push(format!("{body:?}\n  want {at} {text}\n  got  {e}"))
            }
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn edge_cases_of_the_limits() {
    // 255 bytes fit, 256 do not; a 63-byte label fits, 64 do not.
    let hex = |n: usize| "ab".repeat(n);
    assert!(
        parse(&server(&format!(
            "  UDP_CHECK {{\n   payload {}\n  }}",
            hex(255)
        )))
        .is_ok()
    );
    let e = parse(&server(&format!(
        "  UDP_CHECK {{\n   payload {}\n  }}",
        hex(256)
    )))
    .unwrap_err();
    assert!(
        e.contains(
            "k.conf:5:4: error: too many bytes in a UDP_CHECK hex string: vrlb holds at most 255"
        ),
        "{e}"
    );
    let label = |n: usize| "a".repeat(n);
    let ok = parse(&server(&format!(
        "  DNS_CHECK {{\n   name {}.example\n  }}",
        label(63)
    )));
    assert!(ok.is_ok());
    let e = parse(&server(&format!(
        "  DNS_CHECK {{\n   name {}.example\n  }}",
        label(64)
    )))
    .unwrap_err();
    assert!(e.contains("labels up to 63 characters"), "{e}");
}

#[test]
fn dns_checks_retry_three_times_a_delay_loop_apart_unless_told() {
    let text = "virtual_server 192.0.2.1 53 {\n delay_loop 7\n protocol UDP\n real_server 192.0.2.10 53 {\n  DNS_CHECK {\n  }\n  DNS_CHECK {\n   retry 1\n   delay_before_retry 2\n  }\n  UDP_CHECK {\n  }\n  UDP_CHECK {\n   require_reply\n   connect_timeout 2\n  }\n }\n real_server 192.0.2.11 53 {\n  PING_CHECK {\n  }\n }\n}\n";
    let w = World::built(text);
    let mut seen: Vec<_> = w
        .node
        .checkers()
        .map(|(id, c, _, _)| {
            let c = c.config();
            let timeout_ms = c.timeout.as_micros() / 1000;
            (
                id.0,
                (c.kind, c.retry, c.delay_before_retry.as_secs(), timeout_ms),
            )
        })
        .collect();
    seen.sort_by_key(|(id, _)| *id);
    let seen: Vec<_> = seen.into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        seen,
        [
            (ProbeKind::Dns, 3, 7, 5000),
            (ProbeKind::Dns, 1, 2, 5000),
            // A quiet UDP_CHECK's pass comes at connect_timeout; the
            // checker's deadline is a grace later.
            (ProbeKind::Udp, 1, 1, 6000),
            (ProbeKind::Udp, 1, 1, 2000),
            (ProbeKind::Ping, 1, 1, 5000),
        ]
    );
    assert!(!ProbeKind::Dns.retries_while_down() && ProbeKind::Tcp.retries_while_down());
}
