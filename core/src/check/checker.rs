//! One health checker (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `MISC_CHECK`,
//! `SMTP_CHECK`, `UDP_CHECK`, `PING_CHECK`, `DNS_CHECK`):
//! when a probe starts, when it has timed out, how many retries remain and
//! what a result means for the checker's up/down state, a `MISC_CHECK`
//! script's exit status included (`misc_dynamic` weights).
//!
//! The driver performs the probe (connect, GET and compare, run a script)
//! and reports the outcome with the probe's sequence number; a result that
//! arrives after the core gave up on it is ignored. keepalived semantics
//! (check_tcp.c `tcp_epilog`, check_http.c `epilog`, check_misc.c
//! `misc_check_child_thread`, check_parser.c `validate_check_config`;
//! keepalived.conf(5) "delay_loop", "retry", "delay_before_retry",
//! "warmup", "alpha", "misc_dynamic"):
//!
//! - a check runs every `delay_loop`; the first after a random delay in
//!   `[0, warmup)`, `warmup` being `delay_loop` unless set;
//! - until its first success one failure is enough to go down;
//! - after that a failed probe is retried `retry` times, `delay_before_retry`
//!   apart, and when the last retry fails the checker goes down;
//! - while it is down, one successful probe brings it back up; TCP and HTTP
//!   checks keep retrying failures while down, `MISC_CHECK`, `UDP_CHECK`,
//!   `PING_CHECK` and `DNS_CHECK` do not;
//! - `MISC_CHECK` times its next run from the start of the last one, the
//!   others from the end of the last probe;
//! - with `alpha` it starts down and needs one success first.
//!
//! So a port that starts refusing connections right after a good check is
//! seen down at most `delay_loop + retry * delay_before_retry` later (plus
//! the probes' own duration), and a port that stops answering (each probe
//! times out) at most `delay_loop + (retry + 1) * connect_timeout + retry *
//! delay_before_retry` later: [`Checker::down_bound`].

use core::net::IpAddr;

use crate::mutation::{self, Mutation};
use crate::rand::Prng;
use crate::time::{Duration, Instant};

/// What the driver probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ProbeKind {
    /// TCP connect.
    Tcp,
    /// HTTP GET, compared with the configured status codes and digests.
    Http,
    /// HTTP GET over TLS.
    Ssl,
    /// A script's exit status.
    Misc,
    /// An SMTP greeting, `HELO` and `QUIT`.
    Smtp,
    /// A UDP datagram: no ICMP error, or a matching reply.
    Udp,
    /// An ICMP or ICMPv6 echo.
    Ping,
    /// A DNS query answered without error.
    Dns,
}

impl ProbeKind {
    /// Whether a failure while down is retried: keepalived's TCP, HTTP
    /// and SMTP epilogs do; check_misc.c, check_udp.c, check_ping.c and
    /// check_dns.c retry only while up (or before the first result).
    pub const fn retries_while_down(self) -> bool {
        matches!(
            self,
            ProbeKind::Tcp | ProbeKind::Http | ProbeKind::Ssl | ProbeKind::Smtp
        )
    }
}

/// How much longer than `connect_timeout` a checker waits for a
/// `UDP_CHECK` without `require_reply`, which passes on silence: the
/// driver reports that pass at `connect_timeout` itself (keepalived's
/// moment), and a late wake-up must not let the checker's own deadline,
/// handled first, fail the probe.
pub const UDP_QUIET_GRACE: Duration = Duration::from_secs(1);

/// A checker's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckerConfig {
    /// What to probe.
    pub kind: ProbeKind,
    /// Where (`connect_ip`/`connect_port`, default the real server's).
    pub target: (IpAddr, u16),
    /// Interval between checks (`delay_loop`).
    pub delay_loop: Duration,
    /// How long one probe may take (`connect_timeout`, `misc_timeout`).
    pub timeout: Duration,
    /// Retries before a failure counts (`retry`, alias `nb_get_retry`).
    pub retry: u32,
    /// Pause before each retry (`delay_before_retry`).
    pub delay_before_retry: Duration,
    /// Upper bound of the random delay before the first check (`warmup`);
    /// `None` is keepalived's default, `delay_loop`.
    pub warmup: Option<Duration>,
    /// Start down (`alpha`).
    pub alpha: bool,
    /// `misc_dynamic`: a script exit status of 2..=255 means up with weight
    /// status - 2.
    pub misc_dynamic: bool,
}

impl CheckerConfig {
    /// keepalived's defaults for a checker of `kind` on `target`
    /// (keepalived.conf(5), "virtual_server"): checks every 60 s, 5 s
    /// timeout, one retry (none for `MISC_CHECK`, three for `DNS_CHECK`)
    /// 1 s later (3 s for `HTTP_GET` and `SSL_GET`; `DNS_CHECK` waits its
    /// `delay_loop`, which the caller sets), warmup up to `delay_loop`.
    pub fn new(kind: ProbeKind, target: (IpAddr, u16)) -> Self {
        CheckerConfig {
            kind,
            target,
            delay_loop: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            retry: match kind {
                ProbeKind::Misc => 0,
                // check_dns.c DNS_DEFAULT_RETRY.
                ProbeKind::Dns => 3,
                _ => 1,
            },
            delay_before_retry: match kind {
                ProbeKind::Http | ProbeKind::Ssl => Duration::from_secs(3),
                _ => Duration::from_secs(1),
            },
            warmup: None,
            alpha: false,
            misc_dynamic: false,
        }
    }

    /// The warmup bound in effect.
    pub fn warmup(&self) -> Duration {
        self.warmup.unwrap_or(self.delay_loop)
    }
}

/// How a probe ended, as the driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ProbeResult {
    /// The check passed.
    Success,
    /// The check failed (refused, wrong status, digest mismatch, a script
    /// killed at its timeout or by a signal...).
    Failure,
    /// A `MISC_CHECK` script exited with this status; the checker decides
    /// what it means (0 up, 2..=255 up with a weight under `misc_dynamic`,
    /// anything else down).
    Exit(u8),
}

impl ProbeResult {
    /// Whether this result passes a check: keepalived check_misc.c (a
    /// script passes with exit status 0, and with 2..=255 under
    /// `misc_dynamic`).
    pub fn passes(self, misc_dynamic: bool) -> bool {
        match self {
            ProbeResult::Success => true,
            ProbeResult::Failure => false,
            ProbeResult::Exit(status) => status == 0 || (misc_dynamic && status >= 2),
        }
    }
}

/// What a checker asks for or reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CheckerEvent {
    /// Start a probe now; report with this sequence number.
    Start {
        /// Identifies this probe's result.
        seq: u32,
        /// Give up after this long.
        timeout: Duration,
    },
    /// The probe `seq` timed out or was abandoned: stop it (its result no
    /// longer counts).
    Cancel {
        /// The probe.
        seq: u32,
        /// It timed out (and counts as failed); else it was abandoned.
        timed_out: bool,
    },
    /// The checker went up or down.
    Changed {
        /// New state.
        up: bool,
    },
    /// The first check of a checker that started down (`alpha`) failed:
    /// keepalived runs the server's `notify_down` then (ipwrapper.c
    /// `update_svr_checker_state`).
    ConfirmedDown,
    /// `misc_dynamic` set a weight (`Some`), or an exit status of 0 put the
    /// configured weight back (`None`).
    Weight(Option<u32>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not started, or suspended (`ha_suspend`).
    Stopped,
    /// Waiting to start the next probe at the instant.
    Waiting(Instant),
    /// A probe is running until the deadline.
    Probing(Instant),
}

/// One checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checker {
    config: CheckerConfig,
    up: bool,
    has_run: bool,
    /// keepalived's `retry_it`: retries used since the last success.
    retries_done: u32,
    phase: Phase,
    seq: u32,
    /// When the running (or last) probe started.
    probe_started: Instant,
    /// The last exit status that set a weight (keepalived's `last_exit_code`).
    last_exit: u8,
}

impl Checker {
    /// A stopped checker; up unless `alpha`.
    pub fn new(config: CheckerConfig) -> Self {
        Checker {
            up: !config.alpha,
            config,
            has_run: false,
            // keepalived: until the first success one failure is enough.
            retries_done: config.retry,
            phase: Phase::Stopped,
            seq: 0,
            probe_started: Instant::ZERO,
            last_exit: 0,
        }
    }

    /// Its settings.
    pub fn config(&self) -> &CheckerConfig {
        &self.config
    }

    /// Whether it is up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Whether a probe has reported since it was created.
    pub fn has_run(&self) -> bool {
        self.has_run
    }

    /// Before its first result, counts as up: a checker a reload adds to
    /// a live server does not take it down (keepalived ipwrapper.c
    /// `migrate_checkers`).
    pub fn assume_up(&mut self) {
        if !self.has_run {
            self.up = true;
        }
    }

    /// Whether a probe is running.
    pub fn probing(&self) -> bool {
        matches!(self.phase, Phase::Probing(_))
    }

    /// Whether it is stopped (not started, or suspended).
    pub fn stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// The longest it can take to see a healthy server go down once its
    /// port stops answering (probes time out) after a good check.
    pub fn down_bound(&self) -> Duration {
        let c = &self.config;
        c.delay_loop
            + c.timeout.saturating_mul(u64::from(c.retry) + 1)
            + c.delay_before_retry.saturating_mul(u64::from(c.retry))
    }

    /// When something is due.
    pub fn deadline(&self) -> Instant {
        match self.phase {
            Phase::Stopped => Instant::MAX,
            Phase::Waiting(t) | Phase::Probing(t) => t,
        }
    }

    /// Starts checking at `now`: the first probe after a random delay in
    /// `[0, warmup)`.
    pub fn start(&mut self, now: Instant, prng: &mut Prng) {
        let warmup = prng.below(self.config.warmup().as_micros());
        self.phase = Phase::Waiting(now + Duration::from_micros(warmup));
    }

    /// Takes new settings (a reload changed them), keeping the verdict so
    /// nothing flaps: an up checker stays up with at most the new number of
    /// retries left used, a down one stays down until a success (keepalived
    /// ipwrapper.c `migrate_checkers`). Timing starts over: the caller
    /// starts it again. Returns the cancel of a probe that was running.
    pub fn reconfigure(&mut self, config: CheckerConfig) -> Option<CheckerEvent> {
        let cancel = self.stop();
        self.retries_done = if self.up {
            self.retries_done.min(config.retry)
        } else {
            config.retry
        };
        self.config = config;
        cancel
    }

    /// Suspends checking (`ha_suspend` while the VIP is elsewhere) or
    /// resumes it; a running probe is cancelled. Resuming probes at once.
    pub fn suspend(&mut self, now: Instant, suspended: bool) -> Option<CheckerEvent> {
        let cancel = self.stop();
        if !suspended {
            self.phase = Phase::Waiting(now);
        }
        cancel
    }

    /// Stops checking; returns the cancel of a running probe.
    fn stop(&mut self) -> Option<CheckerEvent> {
        let cancel = match self.phase {
            Phase::Probing(_) => Some(CheckerEvent::Cancel {
                seq: self.seq,
                timed_out: false,
            }),
            _ => None,
        };
        self.phase = Phase::Stopped;
        cancel
    }

    /// At the deadline: starts a probe, or fails the one that timed out.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut impl FnMut(CheckerEvent)) {
        match self.phase {
            Phase::Waiting(t) if t <= now => {
                self.seq = self.seq.wrapping_add(1);
                self.phase = Phase::Probing(now + self.config.timeout);
                self.probe_started = now;
                out(CheckerEvent::Start {
                    seq: self.seq,
                    timeout: self.config.timeout,
                });
            }
            Phase::Probing(t) if t <= now => {
                out(CheckerEvent::Cancel {
                    seq: self.seq,
                    timed_out: true,
                });
                self.finish(now, ProbeResult::Failure, out);
            }
            _ => {}
        }
    }

    /// A probe's result. Results of other probes (late, or cancelled) are
    /// ignored.
    pub fn result(
        &mut self,
        now: Instant,
        seq: u32,
        result: ProbeResult,
        out: &mut impl FnMut(CheckerEvent),
    ) {
        if seq != self.seq || !self.probing() {
            return;
        }
        self.finish(now, result, out);
    }

    /// Whether `result` passed, and the weight it asks for: keepalived
    /// check_misc.c (exit 0 up; 2..=255 up with weight status - 2 under
    /// `misc_dynamic`; a weight changes only when the status does).
    fn judge(&mut self, result: ProbeResult, out: &mut impl FnMut(CheckerEvent)) -> bool {
        let dynamic = self.config.misc_dynamic;
        let success = result.passes(dynamic);
        let ProbeResult::Exit(status) = result else {
            return success;
        };
        if success && dynamic && status != self.last_exit {
            out(CheckerEvent::Weight(
                (status >= 2).then(|| u32::from(status) - 2),
            ));
        }
        if success {
            self.last_exit = status;
        }
        success
    }

    fn finish(&mut self, now: Instant, result: ProbeResult, out: &mut impl FnMut(CheckerEvent)) {
        let success = self.judge(result, out);
        let c = self.config;
        // MISC, UDP, PING and DNS retry only while up; TCP and HTTP also
        // while down.
        let may_retry = self.up || !self.has_run || c.kind.retries_while_down();
        let next = if success {
            self.retries_done = 0;
            if (!self.up && !mutation::on(Mutation::StayDown)) || !self.has_run {
                self.set(true, out);
            }
            c.delay_loop
        } else if may_retry && self.retries_done < c.retry {
            self.retries_done += 1;
            c.delay_before_retry
        } else {
            self.retries_done = 0;
            if (self.up || !self.has_run) && !mutation::on(Mutation::IgnoreCheckFailure) {
                if !self.up && !self.has_run {
                    out(CheckerEvent::ConfirmedDown);
                }
                self.set(false, out);
            }
            c.delay_loop
        };
        self.has_run = true;
        // keepalived check_misc.c times the next run from the last start.
        let from = match c.kind {
            ProbeKind::Misc => self.probe_started,
            _ => now,
        };
        self.phase = Phase::Waiting((from + next).max(now));
    }

    fn set(&mut self, up: bool, out: &mut impl FnMut(CheckerEvent)) {
        let changed = self.up != up;
        self.up = up;
        if changed {
            out(CheckerEvent::Changed { up });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;
    use heapless::Vec;

    /// Room for every event of the longest drive (120 s of probes every
    /// few seconds); a fuller log fails the test.
    const LOG: usize = 256;
    type Log = Vec<(u64, CheckerEvent), LOG>;
    /// Room for the events of one call.
    type Events = Vec<CheckerEvent, 8>;

    /// The seed: delay_loop 6, connect_timeout 10, retry 3 (nb_get_retry),
    /// delay_before_retry 3, TCP_CHECK port 80; no warmup here.
    fn seed() -> Checker {
        let mut c = CheckerConfig::new(
            ProbeKind::Tcp,
            (IpAddr::V4(Ipv4Addr::new(192, 168, 2, 212)), 80),
        );
        c.delay_loop = Duration::from_secs(6);
        c.timeout = Duration::from_secs(10);
        c.retry = 3;
        c.delay_before_retry = Duration::from_secs(3);
        c.warmup = Some(Duration::ZERO);
        Checker::new(c)
    }

    fn misc(dynamic: bool) -> Checker {
        let mut c = CheckerConfig::new(ProbeKind::Misc, (IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
        c.delay_loop = Duration::from_secs(6);
        c.timeout = Duration::from_secs(2);
        c.retry = 2;
        c.delay_before_retry = Duration::from_secs(1);
        c.warmup = Some(Duration::ZERO);
        c.misc_dynamic = dynamic;
        Checker::new(c)
    }

    /// Drives a checker whose probes end with `outcome(now)` after `took`:
    /// Some(result) answers, None hangs until the timeout. Returns every
    /// (time in ms, event).
    fn drive_with(
        c: &mut Checker,
        until: Instant,
        took: Duration,
        outcome: impl Fn(Instant) -> Option<ProbeResult>,
    ) -> Log {
        let mut log = Log::new();
        let mut answer: Option<(Instant, u32, ProbeResult)> = None;
        loop {
            let t = match answer {
                Some((at, ..)) if at <= c.deadline() => at,
                _ => c.deadline(),
            };
            if t > until {
                return log;
            }
            if let Some((at, seq, r)) = answer.filter(|a| a.0 == t) {
                answer = None;
                c.result(at, seq, r, &mut |e| log.push((at.as_millis(), e)).unwrap());
                continue;
            }
            let mut events = Events::new();
            c.handle_timeout(t, &mut |e| events.push(e).unwrap());
            for e in events {
                log.push((t.as_millis(), e)).unwrap();
                if let CheckerEvent::Start { seq, .. } = e
                    && let Some(r) = outcome(t)
                {
                    answer = Some((t + took, seq, r));
                }
            }
        }
    }

    fn drive(
        c: &mut Checker,
        until: Instant,
        outcome: impl Fn(Instant) -> Option<ProbeResult>,
    ) -> Log {
        drive_with(c, until, Duration::ZERO, outcome)
    }

    fn changes(log: &[(u64, CheckerEvent)]) -> Vec<(u64, bool), LOG> {
        log.iter()
            .filter_map(|(t, e)| match e {
                CheckerEvent::Changed { up } => Some((*t, *up)),
                _ => None,
            })
            .collect()
    }

    fn starts(log: &[(u64, CheckerEvent)]) -> Vec<u64, LOG> {
        log.iter()
            .filter(|e| matches!(e.1, CheckerEvent::Start { .. }))
            .map(|e| e.0 / 1000)
            .collect()
    }

    #[test]
    fn seed_numbers_refused_port_goes_down_after_three_retries() {
        let mut c = seed();
        c.start(Instant::ZERO, &mut Prng::new(1));
        // Good until 20 s, refused from then on, good again from 60 s.
        let log = drive(&mut c, Instant::from_secs(80), |t| {
            Some(
                if t < Instant::from_secs(20) || t >= Instant::from_secs(60) {
                    ProbeResult::Success
                } else {
                    ProbeResult::Failure
                },
            )
        });
        // Checks at 0, 6, 12, 18 pass; 24 fails, retries at 27, 30, 33: down
        // at 33 = 24 + 3 * 3. TCP keeps retrying while down: 39, 42, 45, 48,
        // then 54, 57 fail and 60 passes.
        assert_eq!(changes(&log), [(33_000, false), (60_000, true)]);
        assert_eq!(
            &starts(&log)[..16],
            [0, 6, 12, 18, 24, 27, 30, 33, 39, 42, 45, 48, 54, 57, 60, 66]
        );
    }

    #[test]
    fn seed_numbers_hanging_port_goes_down_within_the_bound() {
        let mut c = seed();
        c.start(Instant::ZERO, &mut Prng::new(1));
        let log = drive(&mut c, Instant::from_secs(120), |t| {
            (t < Instant::from_secs(20)).then_some(ProbeResult::Success)
        });
        // 24 times out at 34; retries at 37 (-> 47), 50 (-> 60), 63 (-> 73): down.
        assert_eq!(changes(&log), [(73_000, false)]);
        let cancels = log
            .iter()
            .filter(|e| matches!(e.1, CheckerEvent::Cancel { .. }))
            .count();
        assert!(cancels >= 4);
        assert!(
            log.iter()
                .filter_map(|e| match e.1 {
                    CheckerEvent::Cancel { timed_out, .. } => Some(timed_out),
                    _ => None,
                })
                .all(|t| t),
            "each cancel here is a timeout"
        );
        // Broke just after the check at 18: down 55 s later at most.
        assert_eq!(c.down_bound(), Duration::from_secs(6 + 40 + 9));
        assert!(73 - 18 <= c.down_bound().as_secs());
    }

    #[test]
    fn before_its_first_success_one_failure_is_enough() {
        let mut c = seed();
        c.start(Instant::ZERO, &mut Prng::new(1));
        let log = drive(&mut c, Instant::from_secs(7), |_| {
            Some(ProbeResult::Failure)
        });
        assert_eq!(changes(&log), [(0, false)], "no retries before a success");
        assert_eq!(starts(&log), [0, 6]);
    }

    #[test]
    fn alpha_starts_down_and_one_success_brings_it_up() {
        let mut cfg = *seed().config();
        cfg.alpha = true;
        let mut c = Checker::new(cfg);
        assert!(!c.is_up());
        c.start(Instant::ZERO, &mut Prng::new(1));
        let log = drive(&mut c, Instant::from_secs(5), |_| {
            Some(ProbeResult::Success)
        });
        assert_eq!(changes(&log), [(0, true)]);
        // A first failure confirms it down (keepalived runs notify_down).
        let mut c = Checker::new(cfg);
        c.start(Instant::ZERO, &mut Prng::new(1));
        let log = drive(&mut c, Instant::from_secs(5), |_| {
            Some(ProbeResult::Failure)
        });
        let events: Vec<CheckerEvent, LOG> = log.iter().map(|e| e.1).collect();
        assert_eq!(
            events,
            [
                CheckerEvent::Start {
                    seq: 1,
                    timeout: Duration::from_secs(10)
                },
                CheckerEvent::ConfirmedDown
            ]
        );
    }

    #[test]
    fn late_results_are_ignored() {
        let mut c = seed();
        c.start(Instant::ZERO, &mut Prng::new(1));
        let mut ev = Events::new();
        c.handle_timeout(Instant::ZERO, &mut |e| ev.push(e).unwrap());
        let CheckerEvent::Start { seq, .. } = ev[0] else {
            panic!()
        };
        c.result(Instant::ZERO, seq + 1, ProbeResult::Failure, &mut |e| {
            ev.push(e).unwrap()
        });
        assert!(c.probing(), "a result for another probe is ignored");
        c.result(Instant::ZERO, seq, ProbeResult::Success, &mut |e| {
            ev.push(e).unwrap()
        });
        assert!(!c.probing());
        assert_eq!(ev.len(), 1, "already up: no change");
    }

    /// keepalived.conf(5) MISC_CHECK `misc_dynamic`, check_misc.c.
    #[test]
    fn misc_exit_statuses_and_dynamic_weights() {
        let mut c = misc(true);
        c.start(Instant::ZERO, &mut Prng::new(1));
        let run = |c: &mut Checker, status: u8| {
            let mut ev = Events::new();
            let t = c.deadline();
            c.handle_timeout(t, &mut |e| ev.push(e).unwrap());
            let CheckerEvent::Start { seq, .. } = ev[0] else {
                panic!("{ev:?}")
            };
            ev.clear();
            c.result(t, seq, ProbeResult::Exit(status), &mut |e| {
                ev.push(e).unwrap()
            });
            ev
        };
        assert_eq!(run(&mut c, 0), [], "0: up, weight as configured");
        assert_eq!(run(&mut c, 7), [CheckerEvent::Weight(Some(5))]);
        assert_eq!(run(&mut c, 7), [], "same status: no change");
        assert_eq!(run(&mut c, 255), [CheckerEvent::Weight(Some(253))]);
        assert_eq!(run(&mut c, 2), [CheckerEvent::Weight(Some(0))]);
        assert_eq!(run(&mut c, 0), [CheckerEvent::Weight(None)]);
        // 1 fails: retried twice (1 s apart, from each run's start), then down.
        assert_eq!(run(&mut c, 1), []);
        assert_eq!(run(&mut c, 1), []);
        assert_eq!(run(&mut c, 1), [CheckerEvent::Changed { up: false }]);
        // Down: a failure is not retried (the next run is a delay_loop later).
        let before = c.deadline();
        assert_eq!(run(&mut c, 1), []);
        assert_eq!(c.deadline(), before + Duration::from_secs(6));
        assert_eq!(
            run(&mut c, 9),
            [
                CheckerEvent::Weight(Some(7)),
                CheckerEvent::Changed { up: true }
            ]
        );

        // Without misc_dynamic only 0 passes, and weights never change.
        let mut c = misc(false);
        c.start(Instant::ZERO, &mut Prng::new(1));
        assert_eq!(run(&mut c, 0), []);
        assert_eq!(run(&mut c, 7), []);
        assert_eq!(run(&mut c, 7), []);
        assert_eq!(run(&mut c, 7), [CheckerEvent::Changed { up: false }]);
    }

    #[test]
    fn misc_runs_are_timed_from_their_start() {
        let mut c = misc(false);
        c.start(Instant::ZERO, &mut Prng::new(1));
        // Each run takes 1.5 s: the next starts delay_loop after the start.
        let log = drive_with(
            &mut c,
            Instant::from_secs(20),
            Duration::from_millis(1500),
            |_| Some(ProbeResult::Exit(0)),
        );
        assert_eq!(starts(&log), [0, 6, 12, 18]);
        // A TCP check waits delay_loop after the probe ends.
        let mut c = seed();
        c.start(Instant::ZERO, &mut Prng::new(1));
        let log = drive_with(
            &mut c,
            Instant::from_secs(20),
            Duration::from_secs(1),
            |_| Some(ProbeResult::Success),
        );
        assert_eq!(starts(&log), [0, 7, 14]);
    }

    #[test]
    fn warmup_defaults_to_delay_loop_is_random_but_reproducible() {
        let mut cfg = *seed().config();
        cfg.warmup = None;
        assert_eq!(cfg.warmup(), Duration::from_secs(6));
        let first = |seed| {
            let mut c = Checker::new(cfg);
            c.start(Instant::ZERO, &mut Prng::new(seed));
            c.deadline()
        };
        assert_eq!(first(7), first(7));
        assert!((0..20).map(first).all(|t| t < Instant::from_secs(6)));
        let mut firsts: [Instant; 20] = core::array::from_fn(|i| first(i as _));
        firsts.sort_unstable();
        let distinct = 1 + firsts.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(distinct > 10, "{distinct} distinct of 20");
        // keepalived's defaults per kind.
        let any = (IpAddr::V4(Ipv4Addr::LOCALHOST), 80);
        let http = CheckerConfig::new(ProbeKind::Http, any);
        assert_eq!((http.retry, http.delay_before_retry.as_secs()), (1, 3));
        let m = CheckerConfig::new(ProbeKind::Misc, any);
        assert_eq!((m.retry, m.delay_before_retry.as_secs()), (0, 1));
        assert_eq!(m.warmup(), m.delay_loop);
    }

    #[test]
    fn suspend_cancels_and_resume_probes_at_once() {
        let mut c = seed();
        c.start(Instant::ZERO, &mut Prng::new(1));
        c.handle_timeout(Instant::ZERO, &mut |_| {});
        assert!(matches!(
            c.suspend(Instant::from_secs(1), true),
            Some(CheckerEvent::Cancel {
                timed_out: false,
                ..
            })
        ));
        assert_eq!(c.deadline(), Instant::MAX);
        assert_eq!(c.suspend(Instant::from_secs(9), false), None);
        assert_eq!(c.deadline(), Instant::from_secs(9));
    }

    #[test]
    fn reconfigure_keeps_the_verdict() {
        // Down, then its delay_loop changes: still down, needs a success.
        let mut c = seed();
        c.start(Instant::ZERO, &mut Prng::new(1));
        drive(&mut c, Instant::from_secs(1), |_| {
            Some(ProbeResult::Failure)
        });
        assert!(!c.is_up());
        c.handle_timeout(c.deadline(), &mut |_| {});
        assert!(c.probing());
        let mut cfg = *c.config();
        cfg.delay_loop = Duration::from_secs(10);
        assert_eq!(
            c.reconfigure(cfg),
            Some(CheckerEvent::Cancel {
                seq: 2,
                timed_out: false
            }),
            "the running probe is abandoned"
        );
        assert!(!c.is_up() && c.stopped());
        c.start(Instant::from_secs(20), &mut Prng::new(1));
        let log = drive(&mut c, Instant::from_secs(45), |_| {
            Some(ProbeResult::Failure)
        });
        assert_eq!(changes(&log), [], "no flap up");
        // A down checker's first failure after the reload does not retry.
        assert_eq!(starts(&log)[..5], [20, 30, 33, 36, 39]);

        // Up with two retries used; the new setting allows one: one more
        // failure takes it down.
        let mut c = seed();
        c.start(Instant::ZERO, &mut Prng::new(1));
        drive(&mut c, Instant::ZERO, |_| Some(ProbeResult::Success));
        drive(&mut c, Instant::from_secs(9), |t| {
            Some(if t < Instant::from_secs(6) {
                ProbeResult::Success
            } else {
                ProbeResult::Failure
            })
        });
        assert!(c.is_up());
        let mut cfg = *c.config();
        cfg.retry = 1;
        assert_eq!(c.reconfigure(cfg), None);
        c.start(Instant::from_secs(10), &mut Prng::new(1));
        let log = drive(&mut c, Instant::from_secs(10), |_| {
            Some(ProbeResult::Failure)
        });
        assert_eq!(changes(&log), [(10_000, false)]);
    }
}
