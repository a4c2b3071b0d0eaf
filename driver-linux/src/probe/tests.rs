//! The prober against real listeners on 127.0.0.1: a TCP listener, a small
//! HTTP server with a known body, a rustls server with a self-signed
//! certificate, scripts with chosen exit codes, and servers that never
//! answer. The prober's epoll descriptor is watched from an outer mio
//! `Poll`, as the daemon does.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use vrlb_core::check::ProbeResult;
use vrlb_core::node::CheckerId;
use vrlb_core::time::Duration;

use super::prober::{Finished, Prober, Request};
use super::spec::{ProbeSpec, SpecKind, UrlSpec, parse_digest};
use crate::daemon::clock::Clock;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// md5("hello\n")
const HELLO_MD5: &str = "b1946ac92492d2347c6235b4d2611184";
const HELLO_REPLY: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello\n";

/// The prober and the loop that drives it, as the daemon would.
struct Harness {
    clock: Clock,
    poll: Poll,
    events: Events,
    prober: Prober,
}

impl Harness {
    fn new() -> Harness {
        let prober = Prober::new().unwrap();
        let poll = Poll::new().unwrap();
        poll.registry()
            .register(
                &mut SourceFd(&prober.as_raw_fd()),
                Token(7),
                Interest::READABLE,
            )
            .unwrap();
        Harness {
            clock: Clock::new(),
            poll,
            events: Events::with_capacity(8),
            prober,
        }
    }

    fn start(&mut self, checker: u32, target: SocketAddr, timeout_ms: u64, spec: ProbeSpec) {
        self.start_as(checker, target, timeout_ms, spec, None);
    }

    fn start_as(
        &mut self,
        checker: u32,
        target: SocketAddr,
        timeout_ms: u64,
        spec: ProbeSpec,
        run_as: Option<crate::daemon::scripts::Credentials>,
    ) {
        let now = self.clock.now();
        self.prober.start(
            now,
            Request {
                checker: CheckerId(checker),
                seq: checker * 10,
                target,
                timeout: Duration::from_millis(timeout_ms),
                spec: Arc::new(spec),
                run_as,
            },
        );
    }

    /// Runs until every probe ended (at most 10 s); results in order.
    fn finish_all(&mut self) -> Vec<Finished> {
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut out = Vec::new();
        loop {
            self.prober.process(self.clock.now());
            while let Some(f) = self.prober.poll_result() {
                out.push(f);
            }
            if self.prober.running() == 0 {
                return out;
            }
            let left = give_up.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "probes still running: {out:?}");
            let wait = self
                .prober
                .poll_timeout()
                .map_or(left, |d| self.clock.until(d).min(left));
            poll(&mut self.poll, &mut self.events, wait);
        }
    }

    fn one(&mut self) -> Finished {
        let mut all = self.finish_all();
        assert_eq!(all.len(), 1, "{all:?}");
        all.pop().unwrap()
    }
}

/// Waits for events; a signal (SIGCHLD) interrupting is no error.
fn poll(poll: &mut Poll, events: &mut Events, wait: std::time::Duration) {
    if let Err(e) = poll.poll(events, Some(wait)) {
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "{e}");
        events.clear();
    }
}

fn spec(kind: SpecKind) -> ProbeSpec {
    ProbeSpec {
        kind,
        bind_to: None,
        bind_port: None,
    }
}

/// A URL: path, status codes, digest.
type Url<'a> = (&'a str, &'a [(u16, u16)], Option<&'a str>);

fn http(tls: bool, urls: &[Url<'_>]) -> ProbeSpec {
    spec(SpecKind::Http {
        tls,
        urls: urls
            .iter()
            .map(|(path, codes, digest)| UrlSpec {
                path: path.to_string(),
                digest: digest.and_then(parse_digest),
                status_codes: codes.to_vec(),
                virtualhost: None,
            })
            .collect(),
    })
}

fn misc(command: &str) -> ProbeSpec {
    spec(SpecKind::Misc {
        command: command.into(),
        user: None,
    })
}

/// Serves `reply` to `conns` connections; returns each request's head.
fn http_server(reply: &'static [u8], conns: usize) -> (SocketAddr, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut heads = Vec::new();
        for _ in 0..conns {
            let (mut s, _) = listener.accept().unwrap();
            heads.push(read_head(&mut s));
            s.write_all(reply).unwrap();
        }
        heads
    });
    (addr, handle)
}

fn read_head(s: &mut impl Read) -> String {
    read_until(s, b"\r\n\r\n")
}

/// What `s` sends up to and including `end`, or until it closes.
fn read_until(s: &mut impl Read, end: &[u8]) -> String {
    let mut text = Vec::new();
    let mut byte = [0u8; 1];
    while !text.ends_with(end) {
        match s.read(&mut byte) {
            Ok(1) => text.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// A port nothing listens on (bound then released).
fn closed_port() -> SocketAddr {
    TcpListener::bind((LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn tcp_check_passes_on_a_listener_and_fails_on_a_closed_port() {
    let mut h = Harness::new();
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    h.start(
        1,
        listener.local_addr().unwrap(),
        2_000,
        spec(SpecKind::Tcp),
    );
    let f = h.one();
    assert_eq!(
        (f.checker, f.seq, f.result),
        (CheckerId(1), 10, ProbeResult::Success)
    );
    assert_eq!(f.reason, None);

    h.start(2, closed_port(), 2_000, spec(SpecKind::Tcp));
    let f = h.one();
    assert_eq!(f.result, ProbeResult::Failure);
    assert!(f.reason.as_deref().unwrap().contains("refused"), "{f:?}");
}

#[test]
fn tcp_check_connects_from_bindto_and_bind_port() {
    let mut h = Harness::new();
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let source = closed_port();
    let mut s = spec(SpecKind::Tcp);
    s.bind_to = Some(LOCALHOST);
    s.bind_port = Some(source.port());
    h.start(1, listener.local_addr().unwrap(), 2_000, s);
    assert_eq!(h.one().result, ProbeResult::Success);
    let (_, peer) = listener.accept().unwrap();
    assert_eq!(peer, source);
}

#[test]
fn http_get_checks_status_and_digest_of_every_url_each_on_its_own_connection() {
    let mut h = Harness::new();
    let (addr, server) = http_server(HELLO_REPLY, 2);
    h.start(
        1,
        addr,
        2_000,
        http(
            false,
            &[
                ("/a", &[], Some(HELLO_MD5)),
                ("/b?x=1", &[(200, 200)], None),
            ],
        ),
    );
    let f = h.one();
    assert_eq!(f.result, ProbeResult::Success, "{f:?}");
    let heads = server.join().unwrap();
    assert!(heads[0].starts_with("GET /a HTTP/1.0\r\n"), "{heads:?}");
    assert!(heads[0].contains("User-Agent: KeepAliveClient\r\n"));
    assert!(heads[0].contains(&format!("Host: {addr}\r\n")));
    assert!(heads[1].starts_with("GET /b?x=1 HTTP/1.0\r\n"), "{heads:?}");
}

#[test]
fn http_get_fails_on_a_wrong_digest_or_status() {
    let mut h = Harness::new();
    let (addr, server) = http_server(HELLO_REPLY, 2);
    h.start(
        1,
        addr,
        2_000,
        http(
            false,
            &[("/", &[], Some("00000000000000000000000000000000"))],
        ),
    );
    let f = h.one();
    assert_eq!(f.result, ProbeResult::Failure);
    assert!(f.reason.as_deref().unwrap().contains(HELLO_MD5), "{f:?}");
    h.start(2, addr, 2_000, http(false, &[("/x", &[(300, 399)], None)]));
    let f = h.one();
    assert_eq!(f.result, ProbeResult::Failure);
    assert!(
        f.reason
            .as_deref()
            .unwrap()
            .starts_with("/x: HTTP status code 200"),
        "{f:?}"
    );
    server.join().unwrap();
}

#[test]
fn a_silent_server_times_out_while_other_probes_finish() {
    let mut h = Harness::new();
    // Accepts (the kernel's backlog) and never answers.
    let silent = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let good = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let started = std::time::Instant::now();
    h.start(
        1,
        silent.local_addr().unwrap(),
        300,
        http(false, &[("/", &[], None)]),
    );
    h.start(2, good.local_addr().unwrap(), 5_000, spec(SpecKind::Tcp));
    let all = h.finish_all();
    let elapsed = started.elapsed();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0].checker, all[0].result),
        (CheckerId(2), ProbeResult::Success)
    );
    assert_eq!(
        (all[1].checker, all[1].result),
        (CheckerId(1), ProbeResult::Failure)
    );
    assert_eq!(all[1].reason.as_deref(), Some("timed out after 300 ms"));
    assert!(
        elapsed >= std::time::Duration::from_millis(300),
        "{elapsed:?}"
    );
}

#[test]
fn ssl_get_speaks_tls_to_a_self_signed_server_and_checks_the_digest() {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], private)
    .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut heads = Vec::new();
        for _ in 0..2 {
            let (tcp, _) = listener.accept().unwrap();
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            heads.push(read_head(&mut tls));
            tls.write_all(HELLO_REPLY).unwrap();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        heads
    });
    let mut h = Harness::new();
    h.start(
        1,
        addr,
        5_000,
        http(true, &[("/tls", &[], Some(HELLO_MD5))]),
    );
    let f = h.one();
    assert_eq!(f.result, ProbeResult::Success, "{f:?}");
    h.start(
        2,
        addr,
        5_000,
        http(
            true,
            &[("/tls", &[], Some("00000000000000000000000000000000"))],
        ),
    );
    assert_eq!(h.one().result, ProbeResult::Failure);
    let heads = server.join().unwrap();
    assert!(heads[0].starts_with("GET /tls HTTP/1.0\r\n"), "{heads:?}");
}

#[test]
fn ssl_get_fails_against_a_plain_http_server() {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    // Answers the ClientHello with a plain HTTP reply.
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut hello = [0u8; 512];
        let _ = s.read(&mut hello).unwrap();
        s.write_all(HELLO_REPLY).unwrap();
    });
    let mut h = Harness::new();
    h.start(1, addr, 2_000, http(true, &[("/", &[], None)]));
    let f = h.one();
    assert_eq!(f.result, ProbeResult::Failure);
    assert!(f.reason.as_deref().unwrap().contains("TLS"), "{f:?}");
    server.join().unwrap();
}

#[test]
fn misc_check_runs_as_its_user() {
    if !crate::test_netns::root("running a script as another user") {
        return;
    }
    let nobody = crate::daemon::scripts::credentials("nobody", None).expect("user 'nobody'");
    let mut h = Harness::new();
    let addr = SocketAddr::new(LOCALHOST, 80);
    let line = format!("sh -c 'test \"$(id -u)\" = {}'", nobody.uid);
    h.start_as(1, addr, 5_000, misc(&line), Some(nobody));
    h.start_as(2, addr, 5_000, misc(&line), None);
    let mut all = h.finish_all();
    all.sort_by_key(|f| f.checker);
    let results: Vec<(u32, ProbeResult)> = all.iter().map(|f| (f.checker.0, f.result)).collect();
    assert_eq!(
        results,
        [(1, ProbeResult::Exit(0)), (2, ProbeResult::Exit(1))]
    );
}

#[test]
fn misc_check_exit_statuses_are_reported_concurrently_and_a_hung_script_is_killed() {
    let mut h = Harness::new();
    let addr = SocketAddr::new(LOCALHOST, 80);
    let started = std::time::Instant::now();
    h.start(1, addr, 5_000, misc("sh -c 'exit 0'"));
    h.start(2, addr, 5_000, misc("sh -c 'exit 1'"));
    h.start(3, addr, 5_000, misc("sh -c 'exit 7'"));
    h.start(4, addr, 5_000, misc("sh -c 'exit 2'"));
    h.start(5, addr, 5_000, misc("sh -c 'exit 255'"));
    h.start(6, addr, 300, misc("sleep 30"));
    h.start(7, addr, 5_000, misc("/nonexistent/vrlb-check"));
    let mut all = h.finish_all();
    let elapsed = started.elapsed();
    all.sort_by_key(|f| f.checker);
    let results: Vec<(u32, ProbeResult)> = all.iter().map(|f| (f.checker.0, f.result)).collect();
    assert_eq!(
        results,
        [
            (1, ProbeResult::Exit(0)),
            (2, ProbeResult::Exit(1)),
            (3, ProbeResult::Exit(7)),
            (4, ProbeResult::Exit(2)),
            (5, ProbeResult::Exit(255)),
            (6, ProbeResult::Failure),
            (7, ProbeResult::Failure),
        ]
    );
    assert_eq!(all[1].reason.as_deref(), Some("exit status 1"));
    assert_eq!(
        all[5].reason.as_deref(),
        Some("killed at its timeout or by a signal")
    );
    assert!(
        all[6].reason.as_deref().unwrap().contains("cannot run"),
        "{all:?}"
    );
    // The hung script was killed at its 300 ms, not waited for.
    assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn a_cancelled_probe_reports_nothing_and_releases_its_script_and_socket() {
    let mut h = Harness::new();
    let silent = TcpListener::bind((LOCALHOST, 0)).unwrap();
    h.start(1, SocketAddr::new(LOCALHOST, 80), 10_000, misc("sleep 30"));
    h.start(
        2,
        silent.local_addr().unwrap(),
        10_000,
        http(false, &[("/", &[], None)]),
    );
    assert_eq!(h.prober.running(), 2);
    assert!(!h.prober.cancel(CheckerId(1), 99), "wrong seq");
    assert!(h.prober.cancel(CheckerId(1), 10));
    h.prober.retain(|c| c != CheckerId(2));
    assert_eq!(h.prober.running(), 0);
    assert!(h.finish_all().is_empty());
    assert_eq!(h.prober.poll_timeout(), None);
}

#[test]
fn a_probe_the_core_times_out_is_failed_once_with_its_timeout() {
    let mut h = Harness::new();
    let silent = TcpListener::bind((LOCALHOST, 0)).unwrap();
    h.start(
        1,
        silent.local_addr().unwrap(),
        2_500,
        http(false, &[("/", &[], None)]),
    );
    assert!(h.prober.time_out(CheckerId(1), 99).is_none(), "wrong seq");
    let failed = h.prober.time_out(CheckerId(1), 10).expect("it was running");
    assert_eq!((failed.checker, failed.seq), (CheckerId(1), 10));
    assert_eq!(failed.result, ProbeResult::Failure);
    assert_eq!(failed.reason.as_deref(), Some("timed out after 2500 ms"));
    assert_eq!(h.prober.running(), 0);
    assert!(h.prober.time_out(CheckerId(1), 10).is_none(), "only once");
    assert!(h.finish_all().is_empty(), "and it reports nothing itself");
}

#[test]
fn a_new_probe_of_the_same_checker_replaces_the_old_one() {
    let mut h = Harness::new();
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    h.start(1, SocketAddr::new(LOCALHOST, 80), 10_000, misc("sleep 30"));
    h.start(
        1,
        listener.local_addr().unwrap(),
        2_000,
        spec(SpecKind::Tcp),
    );
    let f = h.one();
    assert_eq!((f.seq, f.result), (10, ProbeResult::Success));
    assert_eq!(h.prober.running(), 0);
}

fn smtp(helo_name: &str) -> ProbeSpec {
    spec(SpecKind::Smtp {
        helo_name: helo_name.into(),
    })
}

/// One SMTP connection: sends each reply of `script` in turn, the first
/// (the greeting) unprompted and each later one after reading a line;
/// closes when the script ends. Returns the lines it read.
fn smtp_server(script: &'static [&'static [u8]]) -> (SocketAddr, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut lines = Vec::new();
        for (i, reply) in script.iter().enumerate() {
            if i > 0 {
                lines.push(read_until(&mut s, b"\r\n"));
            }
            // Each reply in two writes, so that it spans reads.
            let (a, b) = reply.split_at(reply.len() / 2);
            s.write_all(a).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            s.write_all(b).unwrap();
        }
        lines
    });
    (addr, handle)
}

#[test]
fn smtp_check_reads_a_multi_line_greeting_says_helo_and_quits() {
    let mut h = Harness::new();
    let (addr, server) = smtp_server(&[
        b"220-mx.example.net ESMTP\r\n220-no UCE\r\n220 ready\r\n",
        b"250 mx.example.net\r\n",
        b"221 bye\r\n",
    ]);
    h.start(1, addr, 2_000, smtp("lb1.example.net"));
    let f = h.one();
    assert_eq!((f.result, f.reason), (ProbeResult::Success, None));
    assert_eq!(
        server.join().unwrap(),
        ["HELO lb1.example.net\r\n", "QUIT\r\n"]
    );
}

#[test]
fn smtp_check_fails_on_a_refusing_greeting_or_helo_and_names_the_reply() {
    let mut h = Harness::new();
    let (addr, server) = smtp_server(&[b"554 mx.example.net no service\r\n"]);
    h.start(1, addr, 2_000, smtp("lb1.example.net"));
    let f = h.one();
    assert_eq!(f.result, ProbeResult::Failure);
    assert_eq!(
        f.reason.unwrap(),
        format!("SMTP at {addr}: greeting was 554, expected 220")
    );
    assert!(server.join().unwrap().is_empty(), "no HELO after a 554");

    let (addr, server) = smtp_server(&[b"220 mx.example.net\r\n", b"501 bad name\n"]);
    h.start(2, addr, 2_000, smtp("lb1.example.net"));
    let f = h.one();
    assert_eq!(
        f.reason.unwrap(),
        format!("SMTP at {addr}: reply to HELO was 501, expected 250")
    );
    server.join().unwrap();
}

#[test]
fn smtp_check_fails_when_the_server_hangs_up_or_says_nothing() {
    let mut h = Harness::new();
    // Reads HELO and closes.
    let (addr, server) = smtp_server(&[b"220 mx.example.net\r\n", b""]);
    h.start(1, addr, 2_000, smtp("lb1.example.net"));
    let f = h.one();
    assert_eq!(
        f.reason.unwrap(),
        format!("SMTP at {addr}: connection closed before the reply to HELO")
    );
    assert_eq!(server.join().unwrap(), ["HELO lb1.example.net\r\n"]);

    // Accepts (the kernel's backlog) and never greets.
    let silent = TcpListener::bind((LOCALHOST, 0)).unwrap();
    h.start(
        2,
        silent.local_addr().unwrap(),
        300,
        smtp("lb1.example.net"),
    );
    let f = h.one();
    assert_eq!(f.result, ProbeResult::Failure);
    assert_eq!(f.reason.as_deref(), Some("timed out after 300 ms"));
}

/// The extension on a node built from a configuration, with a loop like
/// the daemon's: probes reach the checkers, and the checkers the servers.
mod with_a_node {
    use std::collections::VecDeque;

    use vrlb_core::node::{Input, Output, ServerState};

    use super::*;
    use crate::daemon::event_loop::{Context, DaemonNode, Extension, test_node, token_base};
    use crate::probe::Probes;

    struct Loop {
        clock: Clock,
        poll: Poll,
        node: DaemonNode,
        probes: Vec<Box<dyn Extension>>,
        pending: VecDeque<Output>,
    }

    impl Loop {
        fn new(text: &str) -> Loop {
            let clock = Clock::new();
            let mut probes: Vec<Box<dyn Extension>> = Probes::added_to(Vec::new());
            let node = test_node(text, &mut probes, clock.now());
            let mut l = Loop {
                clock,
                poll: Poll::new().unwrap(),
                node,
                probes,
                pending: VecDeque::new(),
            };
            l.with(|e, ctx| {
                e.start(ctx).unwrap();
                e.reloaded(ctx);
            });
            let now = l.clock.now();
            l.node.handle(now, Input::Start);
            l.drain();
            l
        }

        fn with(&mut self, f: impl FnOnce(&mut dyn Extension, &mut Context<'_>)) {
            let mut ctx = Context {
                node: &mut self.node,
                now: self.clock.now(),
                outputs: &mut self.pending,
                registry: self.poll.registry(),
                token_base: token_base(0),
            };
            f(self.probes[0].as_mut(), &mut ctx);
        }

        fn drain(&mut self) {
            loop {
                let out = match self.pending.pop_front() {
                    Some(o) => o,
                    None => match self.node.poll_output() {
                        Some(o) => o,
                        None => return,
                    },
                };
                self.with(|e, ctx| e.output(&out, ctx));
            }
        }

        /// Runs for `how_long`, or until `until` holds.
        fn run(
            &mut self,
            how_long: std::time::Duration,
            mut until: impl FnMut(&DaemonNode) -> bool,
        ) {
            let end = std::time::Instant::now() + how_long;
            let mut events = Events::with_capacity(8);
            while !until(&self.node) {
                let left = end.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return;
                }
                let deadline = [self.node.poll_timeout(), self.probes[0].poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                let wait = deadline.map_or(left, |d| self.clock.until(d).min(left));
                poll(&mut self.poll, &mut events, wait);
                if !events.is_empty() {
                    self.with(|e, ctx| e.ready(0, true, false, ctx));
                    self.drain();
                }
                let now = self.clock.now();
                if self.node.poll_timeout().is_some_and(|t| t <= now) {
                    self.node.handle_timeout(now);
                    self.drain();
                }
                if self.probes[0].poll_timeout().is_some_and(|t| t <= now) {
                    self.with(|e, ctx| e.handle_timeout(ctx));
                    self.drain();
                }
            }
        }

        fn server(&self, port: u16) -> ServerState {
            self.node
                .servers()
                .map(|(_, s)| s)
                .find(|s| s.config.port == port)
                .unwrap()
                .clone()
        }
    }

    #[test]
    fn a_server_whose_listener_goes_away_is_marked_down_and_a_dynamic_script_sets_a_weight() {
        let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let source = closed_port().port();
        let text = format!(
            "virtual_server 192.0.2.100 80 {{
  delay_loop 1
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 127.0.0.1 {port} {{
    weight 1
    TCP_CHECK {{
      bindto 127.0.0.1
      bind_port {source}
      connect_timeout 1
      retry 1
      delay_before_retry 1
    }}
  }}
  real_server 127.0.0.1 9 {{
    weight 1
    MISC_CHECK {{
      misc_path \"sh -c 'exit 5'\"
      misc_dynamic
      misc_timeout 2
    }}
  }}
}}
"
        );
        let mut l = Loop::new(&text);
        // The first probes run within delay_loop (warmup, keepalived's default).
        // Until the script has set its weight and every checker has run.
        l.run(std::time::Duration::from_secs(3), |n| {
            n.servers().any(|(_, s)| s.dynamic_weight == Some(3))
                && n.checkers().all(|(_, c, ..)| c.has_run())
        });
        assert_eq!(l.server(9).dynamic_weight, Some(3));
        assert!(l.server(port).healthy);
        assert!(
            l.node.checkers().all(|(_, c, ..)| c.has_run()),
            "the TCP check connected (else accept would wait forever)"
        );
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer.port(), source, "probes connect from bind_port");
        drop(listener);
        let gone = std::time::Instant::now();
        // Refused at once: down after delay_loop + retry * delay_before_retry.
        l.run(std::time::Duration::from_secs(5), |n| {
            n.servers()
                .any(|(_, s)| s.config.port == port && !s.healthy)
        });
        let took = gone.elapsed();
        assert!(!l.server(port).healthy, "still up after {took:?}");
        assert!(took <= std::time::Duration::from_millis(2_500), "{took:?}");
    }
}

// ---- UDP_CHECK, PING_CHECK, DNS_CHECK ----

use vrlb_core::config::{DnsType, UdpConf};

/// A UDP port on loopback with a thread answering each datagram with what
/// `answer` makes of it (no datagram for `None`), until `count` came.
fn udp_responder(
    count: usize,
    answer: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static,
) -> (SocketAddr, JoinHandle<Vec<Vec<u8>>>) {
    let socket = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 2048];
        while seen.len() < count {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                break;
            };
            if let Some(reply) = answer(&buf[..n]) {
                socket.send_to(&reply, from).unwrap();
            }
            seen.push(buf[..n].to_vec());
        }
        seen
    });
    (addr, handle)
}

fn udp_conf(payload: &[u8], reply: Option<(&[u8], &[u8])>, min: u16, max: u16) -> UdpConf {
    let mut c = UdpConf {
        min_reply_len: min,
        max_reply_len: max,
        ..UdpConf::default()
    };
    c.payload.extend_from_slice(payload).unwrap();
    if let Some((pattern, mask)) = reply {
        c.require_reply = true;
        c.reply.extend_from_slice(pattern).unwrap();
        c.reply_mask.extend_from_slice(mask).unwrap();
    }
    c
}

#[test]
fn udp_check_passes_on_silence_and_fails_on_port_unreachable() {
    let mut h = Harness::new();
    // A bound socket that never answers: no ICMP error, so it passes at
    // connect_timeout (300 ms; the checker's timeout has the grace on top).
    let (quiet, _) = udp_responder(1, |_| None);
    let started = std::time::Instant::now();
    let grace_ms = vrlb_core::check::UDP_QUIET_GRACE.as_micros() / 1000;
    h.start(
        1,
        quiet,
        300 + grace_ms,
        spec(SpecKind::Udp(Box::new(udp_conf(b"ping", None, 0, 255)))),
    );
    let f = h.one();
    assert_eq!((f.result, f.reason), (ProbeResult::Success, None));
    let took = started.elapsed();
    assert!(took >= std::time::Duration::from_millis(300), "{took:?}");
    // Well before the checker's own deadline (300 ms + the grace).
    assert!(took < std::time::Duration::from_millis(1000), "{took:?}");

    // A closed port answers with ICMP port unreachable: a failure at once.
    let closed = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let target = closed.local_addr().unwrap();
    drop(closed);
    let started = std::time::Instant::now();
    h.start(
        2,
        target,
        2000,
        spec(SpecKind::Udp(Box::new(udp_conf(b"", None, 0, 255)))),
    );
    let f = h.one();
    assert_eq!(f.result, ProbeResult::Failure);
    assert!(
        f.reason.as_deref().unwrap().contains("port unreachable"),
        "{f:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn udp_check_sends_the_payload_and_judges_the_reply() {
    let mut h = Harness::new();
    // Answers "OK" + the request's first byte.
    let answer = |q: &[u8]| Some([b"OK".as_slice(), &q[..1]].concat());
    let (addr, seen) = udp_responder(1, answer);
    // "4f 4b X1": O, K, then any high nibble with low nibble 1.
    let pass = udp_conf(&[0x31, 0x32], Some((b"OK\x01", &[0, 0, 0xf0])), 3, 3);
    h.start(1, addr, 2000, spec(SpecKind::Udp(Box::new(pass))));
    assert_eq!(h.one().result, ProbeResult::Success);
    assert_eq!(seen.join().unwrap(), vec![vec![0x31, 0x32]]);

    let cases: [(UdpConf, &str); 3] = [
        (
            udp_conf(b"1", Some((b"OX", &[0, 0])), 0, 255),
            "reply mismatch at byte 1",
        ),
        (
            udp_conf(b"1", Some((b"", &[])), 4, 255),
            "reply too short: 3 bytes, min_reply_length 4",
        ),
        (
            udp_conf(b"1", Some((b"", &[])), 0, 2),
            "reply too long: more than max_reply_length 2 bytes",
        ),
    ];
    for (i, (conf, why)) in cases.into_iter().enumerate() {
        let (addr, _) = udp_responder(1, answer);
        h.start(
            2 + i as u32,
            addr,
            2000,
            spec(SpecKind::Udp(Box::new(conf))),
        );
        let f = h.one();
        assert_eq!(f.result, ProbeResult::Failure);
        assert!(f.reason.as_deref().unwrap().ends_with(why), "{f:?}");
    }

    // require_reply with no answer: a timeout, not a pass.
    let (addr, _) = udp_responder(1, |_| None);
    h.start(
        9,
        addr,
        300,
        spec(SpecKind::Udp(Box::new(udp_conf(
            b"1",
            Some((b"", &[])),
            0,
            255,
        )))),
    );
    let f = h.one();
    assert_eq!(f.result, ProbeResult::Failure);
    assert!(f.reason.as_deref().unwrap().contains("timed out"), "{f:?}");
}

#[test]
fn ping_check_gets_its_echo_reply_on_v4_and_v6() {
    if !crate::test_netns::root("PING_CHECK's raw-socket fallback") {
        return;
    }
    let mut h = Harness::new();
    h.start(1, SocketAddr::new(LOCALHOST, 0), 2000, spec(SpecKind::Ping));
    let f = h.one();
    assert_eq!((f.result, f.reason), (ProbeResult::Success, None));
    let v6 = SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), 0);
    h.start(2, v6, 2000, spec(SpecKind::Ping));
    let f = h.one();
    assert_eq!((f.result, f.reason), (ProbeResult::Success, None));
}

#[test]
fn echo_replies_match_identifier_and_sequence() {
    use super::ping::{is_reply, request};
    for v6 in [false, true] {
        let mut reply = request(v6, 0x1234, 7);
        // Turn the request into its reply (v4: fix the checksum).
        reply[0] = if v6 { 129 } else { 0 };
        if !v6 {
            let mut p = smoltcp::wire::Icmpv4Packet::new_unchecked(&mut reply[..]);
            p.fill_checksum();
        }
        assert!(is_reply(v6, &reply, 0x1234, 7));
        assert!(!is_reply(v6, &reply, 0x1235, 7));
        assert!(!is_reply(v6, &reply, 0x1234, 8));
        assert!(!is_reply(v6, &request(v6, 0x1234, 7), 0x1234, 7));
        assert!(!is_reply(v6, &reply[..4], 0x1234, 7));
    }
}

/// A DNS answer to `query`: its ID (or `id`), the response bit, `rcode`.
fn dns_answer(query: &[u8], id: Option<u16>, rcode: u8) -> Vec<u8> {
    let mut r = query.to_vec();
    if let Some(id) = id {
        r[..2].copy_from_slice(&id.to_be_bytes());
    }
    r[2] |= 0x80;
    r[3] = (r[3] & 0xf0) | rcode;
    r
}

#[test]
fn dns_check_sends_the_query_and_reads_the_rcode() {
    let mut h = Harness::new();
    let dns = |qtype, name: &str| {
        spec(SpecKind::Dns {
            qtype,
            name: name.to_string(),
        })
    };
    // First a stray reply with another ID (skipped), then the real one.
    let socket = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let addr = socket.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        let q = buf[..n].to_vec();
        let other = u16::from_be_bytes([q[0], q[1]]).wrapping_add(1);
        socket
            .send_to(&dns_answer(&q, Some(other), 0), from)
            .unwrap();
        socket.send_to(&dns_answer(&q, None, 0), from).unwrap();
        q
    });
    h.start(1, addr, 2000, dns(DnsType::Mx, "example.com"));
    let f = h.one();
    assert_eq!((f.result, f.reason), (ProbeResult::Success, None));
    let q = server.join().unwrap();
    let parsed = simple_dns::Packet::parse(&q).unwrap();
    assert!(parsed.has_flags(simple_dns::PacketFlag::RECURSION_DESIRED));
    assert_eq!(parsed.questions.len(), 1);
    assert_eq!(parsed.questions[0].qname.to_string(), "example.com");
    assert_eq!(
        parsed.questions[0].qtype,
        simple_dns::QTYPE::TYPE(simple_dns::TYPE::MX)
    );

    // NXDOMAIN fails, naming the rcode; the root's SOA is the default query.
    let (addr, seen) = udp_responder(1, |q| Some(dns_answer(q, None, 3)));
    h.start(2, addr, 2000, dns(DnsType::Soa, "."));
    let f = h.one();
    assert_eq!(f.result, ProbeResult::Failure);
    assert!(
        f.reason
            .as_deref()
            .unwrap()
            .ends_with("DNS rcode 3 (NameError)"),
        "{f:?}"
    );
    let q = seen.join().unwrap().pop().unwrap();
    // Header, the root (one zero byte), type 6, class 1.
    assert_eq!(&q[12..], &[0, 0, 6, 0, 1]);

    // A server that is not there: port unreachable.
    let closed = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let target = closed.local_addr().unwrap();
    drop(closed);
    h.start(3, target, 2000, dns(DnsType::A, "example.com"));
    let f = h.one();
    assert_eq!(f.result, ProbeResult::Failure);
    assert!(
        f.reason.as_deref().unwrap().contains("port unreachable"),
        "{f:?}"
    );
}

#[test]
fn ping_check_uses_a_ping_socket_where_ping_group_range_allows_and_the_kernel_s_identifier() {
    use super::ping::Echo;
    let result = crate::test_netns::in_private_netns(|| {
        // In this namespace only: admit group 0 (root) to ping sockets.
        std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 0").unwrap();
        let mut seen = Vec::new();
        for target in [LOCALHOST, IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)] {
            let mut echo = Echo::start(target, None, 0x4242, 9).unwrap();
            let give_up = std::time::Instant::now() + std::time::Duration::from_secs(2);
            let verdict = loop {
                if let Some(v) = echo.step() {
                    break v;
                }
                assert!(std::time::Instant::now() < give_up, "no echo reply");
                std::thread::sleep(std::time::Duration::from_millis(5));
            };
            seen.push((echo.raw(), verdict));
        }
        seen
    });
    if let Some(seen) = result {
        assert_eq!(seen, [(false, Ok(())), (false, Ok(()))]);
    }
}
