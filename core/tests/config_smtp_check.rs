//! SMTP_CHECK (config/checker.rs): `helo_name`, keepalived's deprecated
//! `host` blocks read as one checker each, and the places and warnings
//! they are reported with.

use core::net::IpAddr;

use vrlb_core::config::{self, CheckKind, NoIncludes, Options, Pos, Sink};

/// One checker as compared: kind, connect_ip, connect_port,
/// connect_timeout in s, retry, helo_name, where it was written.
type Seen = (
    CheckKind,
    Option<IpAddr>,
    Option<u16>,
    Option<u64>,
    Option<u32>,
    Option<String>,
    Pos,
);

#[derive(Default)]
struct Checkers(Vec<Seen>, Vec<String>);

impl Sink for Checkers {
    fn real_server(
        &mut self,
        _vs: &config::VirtualServer<'_>,
        rs: &config::RealServer<'_>,
    ) -> Result<(), config::Kind> {
        for c in &rs.checkers {
            self.0.push((
                c.kind,
                c.connect_ip,
                c.connect_port,
                c.connect_timeout.map(|d| d.as_secs()),
                c.retry,
                c.helo_name.map(Into::into),
                c.pos,
            ));
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

fn at(line: u32, col: u32) -> Pos {
    Pos { line, col }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn an_smtp_check_takes_helo_name_and_the_common_options_and_warns_of_nothing() {
    let c = parse(
        "virtual_server 192.0.2.1 25 {\n protocol TCP\n lb_kind DR\n real_server 192.0.2.10 25 {\n  SMTP_CHECK {\n   helo_name lb1.example.net\n   connect_timeout 3\n   retry 2\n  }\n  SMTP_CHECK {\n  }\n }\n}\n",
    )
    .unwrap();
    assert_eq!(
        c.0,
        [
            (
                CheckKind::Smtp,
                None,
                None,
                Some(3),
                Some(2),
                Some("lb1.example.net".into()),
                at(5, 3)
            ),
            (CheckKind::Smtp, None, None, None, None, None, at(10, 3)),
        ]
    );
    assert!(c.1.is_empty(), "{:?}", c.1);
    assert_eq!(config::DEFAULT_HELO_NAME, "smtpchecker.keepalived.org");
}

#[test]
fn each_host_block_is_a_checker_of_its_own_on_the_outer_settings() {
    let c = parse(
        "virtual_server 192.0.2.1 25 {\n protocol TCP\n lb_kind DR\n real_server 192.0.2.10 25 {\n  SMTP_CHECK {\n   connect_timeout 4\n   helo_name lb1.example.net\n   host {\n    connect_ip 192.0.2.20\n   }\n   host {\n    connect_port 587\n    connect_timeout 9\n   }\n   retry 3\n  }\n }\n}\n",
    )
    .unwrap();
    let helo = || Some("lb1.example.net".to_string());
    assert_eq!(
        c.0,
        [
            (
                CheckKind::Smtp,
                ip("192.0.2.20"),
                None,
                Some(4),
                Some(3),
                helo(),
                at(8, 4)
            ),
            (
                CheckKind::Smtp,
                None,
                Some(587),
                Some(9),
                Some(3),
                helo(),
                at(11, 4)
            ),
        ]
    );
    // Said once, where the first host block starts.
    assert_eq!(c.1.len(), 1, "{:?}", c.1);
    assert!(
        c.1[0].starts_with("k.conf:8:4: warning: 'host': deprecated by keepalived: each host block is checked as an SMTP_CHECK of its own"),
        "{:?}",
        c.1
    );
}

#[test]
fn keywords_out_of_place_are_named_with_their_block() {
    let c = parse(
        "virtual_server 192.0.2.1 25 {\n protocol TCP\n lb_kind DR\n real_server 192.0.2.10 25 {\n  SMTP_CHECK {\n   host {\n    retry 2\n   }\n  }\n  TCP_CHECK {\n   helo_name x.example\n  }\n }\n}\n",
    )
    .unwrap();
    assert_eq!(c.0.len(), 2);
    assert_eq!(c.0[0].4, None, "retry in a host block is not the checker's");
    assert!(
        c.1[1].starts_with(
            "k.conf:7:5: warning: 'retry' does not belong in an SMTP_CHECK host block, skipped"
        ),
        "{:?}",
        c.1
    );
    assert!(
        c.1[2].starts_with(
            "k.conf:11:4: warning: 'helo_name' does not belong in a checker block, skipped"
        ),
        "{:?}",
        c.1
    );
}

#[test]
fn host_blocks_count_against_the_checkers_of_a_real_server() {
    let server = |checkers: &str| {
        format!(
            "virtual_server 192.0.2.1 25 {{\n protocol TCP\n lb_kind DR\n real_server 192.0.2.10 25 {{\n{checkers} }}\n}}\n"
        )
    };
    let hosts = "   host {\n   }\n".repeat(config::MAX_CHECKERS);
    // Four hosts are four checkers: with a TCP_CHECK, one too many, named
    // at the fourth host (line 14).
    let err = parse(&server(&format!(
        "  TCP_CHECK {{\n  }}\n  SMTP_CHECK {{\n{hosts}  }}\n"
    )))
    .err()
    .expect("refused");
    assert!(
        err.starts_with(
            "k.conf:14:4: error: too many checkers on one real server: vrlb holds at most 4"
        ),
        "{err}"
    );
    // Alone, each is a checker.
    let c = parse(&server(&format!("  SMTP_CHECK {{\n{hosts}  }}\n"))).unwrap();
    assert_eq!(c.0.len(), config::MAX_CHECKERS);
    assert_eq!(c.0[3].6, at(12, 4));
}
