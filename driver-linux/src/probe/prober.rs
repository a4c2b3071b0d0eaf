//! Runs probes concurrently without blocking: every TCP connect, HTTP
//! exchange, TLS session, SMTP dialogue, UDP datagram, ICMP echo and DNS
//! query sits on its own non-blocking socket in the prober's own mio `Poll`, whose epoll descriptor the daemon watches like
//! any other (an epoll fd is readable while it has events); `MISC_CHECK`
//! scripts are child processes reaped on SIGCHLD or at their deadline.
//! Owns the probes in flight and their deadlines; decides nothing about
//! health (the core's checkers do): it only says how each probe ended.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use log::{info, warn};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::ClientConfig;
use signal_hook::consts::SIGCHLD;
use signal_hook_mio::v1_0::Signals;
use vrlb_core::check::ProbeResult;
use vrlb_core::node::CheckerId;
use vrlb_core::time::{Duration, Instant};

use super::dns::DnsProbe;
use super::exchange::{Exchange, Step};
use super::ping::Echo;
use super::smtp::{self, Dialogue};
use super::spec::{ProbeSpec, SpecKind};
use super::udp::{self as udp, UdpProbe};
use super::{http, misc, tcp, tls};
use crate::daemon::scripts::{Credentials, Job, Runner};

/// The prober's token for SIGCHLD; probes use the others.
const SIGCHLD_TOKEN: Token = Token(0);
/// Rounds of events handled in one [`Prober::process`] before yielding
/// to the rest of the loop (a busy server cannot starve it).
const MAX_ROUNDS: usize = 64;

/// One probe to start, as the node's `Output::Probe` asks.
#[derive(Debug, Clone)]
pub struct Request {
    /// The checker.
    pub checker: CheckerId,
    /// The probe's sequence number, reported back.
    pub seq: u32,
    /// `connect_ip`:`connect_port` (or the real server's).
    pub target: SocketAddr,
    /// Give up after this long (`connect_timeout`, `misc_timeout`).
    pub timeout: Duration,
    /// What to do there.
    pub spec: Arc<ProbeSpec>,
    /// Who runs a MISC_CHECK script (`None`: vrlb's own account).
    pub run_as: Option<Credentials>,
}

/// How a probe ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The checker.
    pub checker: CheckerId,
    /// The probe's sequence number.
    pub seq: u32,
    /// For the node.
    pub result: ProbeResult,
    /// Why it failed, for the log (`None` on success).
    pub reason: Option<String>,
}

enum Stage {
    /// Connecting (for URL number `url` of an HTTP check).
    Connecting(TcpStream),
    /// The request and reply for URL number `url` (boxed: a TLS session is large).
    Exchanging(Box<Exchange>),
    /// An SMTP_CHECK's dialogue.
    Smtp(Box<Dialogue>),
    /// A MISC_CHECK script runs in the runner under this probe's token.
    Script,
    /// A UDP_CHECK datagram awaits an ICMP error or a reply.
    Udp(Box<UdpProbe>),
    /// A PING_CHECK echo awaits its reply.
    Ping(Box<Echo>),
    /// A DNS_CHECK query awaits its reply.
    Dns(Box<DnsProbe>),
    /// Between two stages.
    Moving,
}

struct Probe {
    request: Request,
    deadline: Instant,
    url: usize,
    stage: Stage,
}

enum Outcome {
    Pending,
    Done(ProbeResult, Option<String>),
}

fn failed(reason: String) -> Outcome {
    Outcome::Done(ProbeResult::Failure, Some(reason))
}

/// The probes in flight.
pub struct Prober {
    poll: Poll,
    events: Events,
    /// SIGCHLD, registered in `poll` (signal-hook runs every registered
    /// handler: the daemon's own reaping is not disturbed).
    signals: Signals,
    tls: Option<Arc<ClientConfig>>,
    probes: HashMap<usize, Probe>,
    by_checker: HashMap<CheckerId, usize>,
    runner: Runner<usize>,
    next_token: usize,
    finished: VecDeque<Finished>,
    /// Events may remain after [`MAX_ROUNDS`]: come back at once.
    more: bool,
    /// Whether the log has said that echoes go on raw sockets.
    raw_ping_said: bool,
}

impl Prober {
    /// An idle prober.
    pub fn new() -> io::Result<Prober> {
        let poll = Poll::new()?;
        let mut signals = Signals::new([SIGCHLD])?;
        poll.registry()
            .register(&mut signals, SIGCHLD_TOKEN, Interest::READABLE)?;
        Ok(Prober {
            poll,
            events: Events::with_capacity(64),
            signals,
            tls: None,
            probes: HashMap::new(),
            by_checker: HashMap::new(),
            runner: Runner::default(),
            next_token: 1,
            finished: VecDeque::new(),
            more: false,
            raw_ping_said: false,
        })
    }

    /// Probes in flight.
    pub fn running(&self) -> usize {
        self.probes.len()
    }

    /// Starts `request` at `now`. A probe of the same checker still
    /// running is abandoned first (the core never overlaps them). A probe
    /// that cannot even start is finished at once (see
    /// [`Prober::poll_result`]).
    pub fn start(&mut self, now: Instant, request: Request) {
        if let Some(token) = self.by_checker.get(&request.checker).copied() {
            self.abandon(token);
        }
        let token = self.token();
        let mut deadline = now + request.timeout;
        let stage = match &request.spec.kind {
            SpecKind::Udp(conf) => {
                if !conf.require_reply {
                    deadline = now + udp::quiet_wait(request.timeout);
                }
                let mut random = [0u8; udp::RANDOM_PAYLOAD];
                random_fill(&mut random);
                UdpProbe::start(
                    request.target,
                    request.spec.bind_addr(request.target),
                    conf,
                    random,
                )
                .and_then(|mut p| {
                    self.watch(p.socket(), token)
                        .map(|()| Stage::Udp(Box::new(p)))
                })
                .map_err(|e| format!("UDP to {}: {}", request.target, udp::icmp_error(&e)))
            }
            SpecKind::Ping => {
                let mut ident = [0u8; 2];
                random_fill(&mut ident);
                Echo::start(
                    request.target.ip(),
                    request.spec.bind_to,
                    u16::from_ne_bytes(ident),
                    request.seq as u16,
                )
                .inspect(|p| {
                    if p.raw() && !self.raw_ping_said {
                        self.raw_ping_said = true;
                        info!(
                            "PING_CHECK: net.ipv4.ping_group_range leaves vrlb's group out: echoes go on raw ICMP sockets (vrlb does not change the sysctl)"
                        );
                    }
                })
                .and_then(|mut p| {
                    self.watch(p.socket(), token)
                        .map(|()| Stage::Ping(Box::new(p)))
                })
                .map_err(|e| format!("echo to {}: {}", request.target.ip(), udp::icmp_error(&e)))
            }
            SpecKind::Dns { qtype, name } => {
                let mut id = [0u8; 2];
                random_fill(&mut id);
                DnsProbe::start(
                    request.target,
                    request.spec.bind_addr(request.target),
                    u16::from_ne_bytes(id),
                    *qtype,
                    name,
                )
                .and_then(|mut p| {
                    self.watch(p.socket(), token)
                        .map(|()| Stage::Dns(Box::new(p)))
                        .map_err(|e| format!("DNS: {e}"))
                })
            }
            SpecKind::Misc { command, .. } => {
                match self.runner.spawn(
                    now,
                    command,
                    &[],
                    request.run_as,
                    request.timeout,
                    Job::Check(token),
                ) {
                    Ok(()) => Ok(Stage::Script),
                    Err(e) => Err(e),
                }
            }
            _ => self
                .connect(token, &request)
                .map(Stage::Connecting)
                .map_err(|e| format!("connect to {}: {e}", request.target)),
        };
        match stage {
            Ok(stage) => {
                self.by_checker.insert(request.checker, token);
                self.probes.insert(
                    token,
                    Probe {
                        request,
                        deadline,
                        url: 0,
                        stage,
                    },
                );
            }
            Err(reason) => self.finished.push_back(Finished {
                checker: request.checker,
                seq: request.seq,
                result: ProbeResult::Failure,
                reason: Some(reason),
            }),
        }
    }

    /// Abandons probe `seq` of `checker` (the core timed it out or
    /// suspended checks); its result is never reported. Whether it ran.
    pub fn cancel(&mut self, checker: CheckerId, seq: u32) -> bool {
        let Some(token) = self.token_of(checker, seq) else {
            return false;
        };
        self.abandon(token);
        true
    }

    /// The core timed probe `seq` of `checker` out: abandons it and
    /// returns its failure, for the log, if it was still running (else
    /// it finished first, and its own result says so).
    pub fn time_out(&mut self, checker: CheckerId, seq: u32) -> Option<Finished> {
        let token = self.token_of(checker, seq)?;
        let timeout = self.probes.get(&token)?.request.timeout;
        self.abandon(token);
        Some(Finished {
            checker,
            seq,
            result: ProbeResult::Failure,
            reason: Some(timed_out(timeout)),
        })
    }

    /// The token of probe `seq` of `checker`, if it runs.
    fn token_of(&self, checker: CheckerId, seq: u32) -> Option<usize> {
        let token = self.by_checker.get(&checker).copied()?;
        (self.probes.get(&token)?.request.seq == seq).then_some(token)
    }

    /// Abandons every probe whose checker `keep` refuses (checkers a
    /// reload removed; all of them at shutdown).
    pub fn retain(&mut self, mut keep: impl FnMut(CheckerId) -> bool) {
        let gone: Vec<usize> = self
            .by_checker
            .iter()
            .filter(|(c, _)| !keep(**c))
            .map(|(_, t)| *t)
            .collect();
        for token in gone {
            self.abandon(token);
        }
        self.finished.retain(|f| keep(f.checker));
    }

    /// Does what the sockets and children allow at `now`, and fails the
    /// probes past their deadline. Never blocks.
    pub fn process(&mut self, now: Instant) {
        self.more = false;
        let mut rounds = 0;
        loop {
            if rounds == MAX_ROUNDS {
                self.more = true;
                break;
            }
            rounds += 1;
            match self
                .poll
                .poll(&mut self.events, Some(std::time::Duration::ZERO))
            {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("probes: epoll: {e}");
                    break;
                }
            }
            if self.events.is_empty() {
                break;
            }
            let tokens: Vec<Token> = self.events.iter().map(|e| e.token()).collect();
            for token in tokens {
                if token == SIGCHLD_TOKEN {
                    // Only the wake-up matters: reaping below tries every
                    // child.
                    self.signals.pending().for_each(drop);
                } else {
                    self.advance(token.0);
                }
            }
        }
        self.reap(now);
        self.expire(now);
    }

    /// When [`Prober::process`] must run next even if no descriptor
    /// becomes ready: the earliest deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.more || !self.finished.is_empty() {
            return Some(Instant::ZERO);
        }
        self.probes
            .values()
            .map(|p| p.deadline)
            .chain(self.runner.next_deadline())
            .min()
    }

    /// The next probe that ended.
    pub fn poll_result(&mut self) -> Option<Finished> {
        self.finished.pop_front()
    }

    fn token(&mut self) -> usize {
        // Tokens stay below the daemon's per-extension span; skip 0
        // (SIGCHLD) and any still in use.
        loop {
            let t = self.next_token;
            self.next_token = if t + 1 >= crate::daemon::event_loop::TOKEN_SPAN {
                1
            } else {
                t + 1
            };
            if !self.probes.contains_key(&t) {
                return t;
            }
        }
    }

    fn tls_config(&mut self) -> Arc<ClientConfig> {
        self.tls.get_or_insert_with(tls::client_config).clone()
    }

    fn connect(&self, token: usize, request: &Request) -> io::Result<TcpStream> {
        let mut stream = tcp::connect(request.target, request.spec.bind_addr(request.target))?;
        self.poll.registry().register(
            &mut stream,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(stream)
    }

    /// Registers a datagram socket for reading.
    fn watch(&self, socket: &mut mio::net::UdpSocket, token: usize) -> io::Result<()> {
        self.poll
            .registry()
            .register(socket, Token(token), Interest::READABLE)
    }

    fn abandon(&mut self, token: usize) {
        let Some(mut probe) = self.probes.remove(&token) else {
            return;
        };
        self.by_checker.remove(&probe.request.checker);
        self.close(&mut probe, token);
    }

    /// Releases what `probe` holds: its socket, or its script (killed).
    fn close(&mut self, probe: &mut Probe, token: usize) {
        match &mut probe.stage {
            Stage::Connecting(stream) => {
                let _ = self.poll.registry().deregister(stream);
            }
            Stage::Exchanging(exchange) => {
                let _ = self.poll.registry().deregister(exchange.stream());
            }
            Stage::Smtp(dialogue) => {
                let _ = self.poll.registry().deregister(dialogue.stream());
            }
            Stage::Script => {
                self.runner
                    .kill_where(|job| matches!(job, Job::Check(t) if *t == token));
            }
            Stage::Udp(p) => {
                let _ = self.poll.registry().deregister(p.socket());
            }
            Stage::Ping(p) => {
                let _ = self.poll.registry().deregister(p.socket());
            }
            Stage::Dns(p) => {
                let _ = self.poll.registry().deregister(p.socket());
            }
            Stage::Moving => {}
        }
        probe.stage = Stage::Moving;
    }

    fn finish(&mut self, token: usize, result: ProbeResult, reason: Option<String>) {
        let Some(mut probe) = self.probes.remove(&token) else {
            return;
        };
        self.by_checker.remove(&probe.request.checker);
        self.close(&mut probe, token);
        self.finished.push_back(Finished {
            checker: probe.request.checker,
            seq: probe.request.seq,
            result,
            reason,
        });
    }

    /// A probe's socket is ready.
    fn advance(&mut self, token: usize) {
        let Some(mut probe) = self.probes.remove(&token) else {
            return;
        };
        let outcome = self.drive(&mut probe, token);
        self.probes.insert(token, probe);
        if let Outcome::Done(result, reason) = outcome {
            self.finish(token, result, reason);
        }
    }

    /// Moves `probe` on as far as its socket allows.
    fn drive(&mut self, probe: &mut Probe, token: usize) -> Outcome {
        let target = probe.request.target;
        let spec = probe.request.spec.clone();
        loop {
            match &mut probe.stage {
                Stage::Connecting(stream) => match tcp::connected(stream) {
                    Ok(false) => return Outcome::Pending,
                    Err(e) => return failed(format!("connect to {target}: {e}")),
                    Ok(true) => {}
                },
                Stage::Exchanging(exchange) => {
                    let step = exchange.step();
                    let reply = match step {
                        Step::Pending => return Outcome::Pending,
                        Step::Done(Err(e)) => return failed(self.url_error(probe, e)),
                        Step::Done(Ok(reply)) => reply,
                    };
                    let SpecKind::Http { urls, .. } = &spec.kind else {
                        return failed("internal: an exchange without URLs".into());
                    };
                    if let Err(e) = http::judge(&urls[probe.url], &reply) {
                        return failed(self.url_error(probe, e));
                    }
                    probe.url += 1;
                    if probe.url == urls.len() {
                        return Outcome::Done(ProbeResult::Success, None);
                    }
                    // Each URL on its own connection, in order (keepalived's
                    // check_http.c does the same with HTTP/1.0).
                    if let Stage::Exchanging(exchange) = &mut probe.stage {
                        let _ = self.poll.registry().deregister(exchange.stream());
                    }
                    probe.stage = match self.connect(token, &probe.request) {
                        Ok(stream) => Stage::Connecting(stream),
                        Err(e) => return failed(format!("connect to {target}: {e}")),
                    };
                    continue;
                }
                Stage::Smtp(dialogue) => {
                    return match dialogue.step() {
                        smtp::Step::Pending => Outcome::Pending,
                        smtp::Step::Done(Ok(())) => Outcome::Done(ProbeResult::Success, None),
                        smtp::Step::Done(Err(e)) => failed(format!("SMTP at {target}: {e}")),
                    };
                }
                Stage::Udp(p) => return datagram(p.step(), "UDP", target),
                Stage::Ping(p) => return datagram(p.step(), "echo", target),
                Stage::Dns(p) => return datagram(p.step(), "DNS", target),
                Stage::Script | Stage::Moving => return Outcome::Pending,
            }
            // Connected.
            if let SpecKind::Smtp { helo_name } = &spec.kind {
                let Stage::Connecting(stream) = std::mem::replace(&mut probe.stage, Stage::Moving)
                else {
                    return Outcome::Pending;
                };
                probe.stage = Stage::Smtp(Box::new(Dialogue::new(stream, helo_name)));
                // The greeting may be in already: edge-triggered, as below.
                continue;
            }
            let (tls, urls) = match &spec.kind {
                SpecKind::Http { tls, urls } if !urls.is_empty() => (*tls, urls),
                // TCP_CHECK, or an HTTP check with no URL: the connect is
                // the check.
                _ => return Outcome::Done(ProbeResult::Success, None),
            };
            let session = if tls {
                match tls::session(&self.tls_config(), target) {
                    Ok(s) => Some(s),
                    Err(e) => return failed(format!("TLS: {e}")),
                }
            } else {
                None
            };
            let Stage::Connecting(stream) = std::mem::replace(&mut probe.stage, Stage::Moving)
            else {
                return Outcome::Pending;
            };
            let request = http::request(&urls[probe.url], target);
            probe.stage = Stage::Exchanging(Box::new(Exchange::new(stream, session, request)));
            // mio is edge-triggered: the writable event that ended the
            // connect is spent, so the exchange starts now.
        }
    }

    fn url_error(&self, probe: &Probe, e: impl std::fmt::Display) -> String {
        match &probe.request.spec.kind {
            SpecKind::Http { urls, .. } if probe.url < urls.len() => {
                format!("{}: {e}", urls[probe.url].path)
            }
            _ => e.to_string(),
        }
    }

    /// Collects scripts that ended or passed their `misc_timeout`.
    fn reap(&mut self, now: Instant) {
        if self.runner.running() == 0 {
            return;
        }
        let mut ended = Vec::new();
        self.runner.reap_status(now, |job, code| {
            if let Job::Check(token) = job {
                ended.push((token, code));
            }
        });
        for (token, code) in ended {
            let Some(probe) = self.probes.get_mut(&token) else {
                continue;
            };
            // The runner has forgotten the child already.
            probe.stage = Stage::Moving;
            // The core's checker judges the status (misc_dynamic).
            let result = misc::script_result(code);
            let reason = match code {
                Some(0) => None,
                Some(c) => Some(format!("exit status {c}")),
                None => Some("killed at its timeout or by a signal".to_string()),
            };
            self.finish(token, result, reason);
        }
    }

    /// Ends socket probes past their deadline (scripts are the runner's):
    /// a failure, except for a UDP_CHECK that passes on silence.
    fn expire(&mut self, now: Instant) {
        let late: Vec<(usize, Duration, bool)> = self
            .probes
            .iter()
            .filter(|(_, p)| p.deadline <= now && !matches!(p.stage, Stage::Script))
            .map(|(t, p)| {
                let quiet_pass = matches!(&p.stage, Stage::Udp(u) if u.passes_when_quiet());
                (*t, p.request.timeout, quiet_pass)
            })
            .collect();
        for (token, timeout, quiet_pass) in late {
            match quiet_pass {
                true => self.finish(token, ProbeResult::Success, None),
                false => self.finish(token, ProbeResult::Failure, Some(timed_out(timeout))),
            }
        }
    }
}

/// A datagram probe's step as an outcome; `what` and `target` name it in
/// the log.
fn datagram(step: Option<Result<(), String>>, what: &str, target: SocketAddr) -> Outcome {
    match step {
        None => Outcome::Pending,
        Some(Ok(())) => Outcome::Done(ProbeResult::Success, None),
        Some(Err(e)) => failed(format!("{what} to {target}: {e}")),
    }
}

/// Fills `buf` with unpredictable bytes (UDP_CHECK's random payload, echo
/// identifiers, DNS IDs; keepalived uses random(3)): std's randomly keyed
/// SipHash over a counter, so no RNG crate for a few bytes that guard
/// nothing secret.
fn random_fill(buf: &mut [u8]) {
    let state = RandomState::new();
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let mut h = state.build_hasher();
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_ne_bytes()[..chunk.len()]);
    }
}

/// The log's reason for a probe that ran out of time.
fn timed_out(timeout: Duration) -> String {
    format!("timed out after {} ms", timeout.as_micros() / 1000)
}

impl AsRawFd for Prober {
    /// The epoll descriptor to watch (readable when a probe can move).
    fn as_raw_fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }
}
