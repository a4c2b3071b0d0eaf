//! One health checker (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `MISC_CHECK`):
//! when a probe starts, when it has timed out, how many retries remain and
//! what a result means for the checker's up/down state.
//!
//! The driver performs the probe (connect, GET and compare, run a script)
//! and reports the outcome with the probe's sequence number; a result that
//! arrives after the core gave up on it is ignored. keepalived semantics
//! (check_api.c `tcp_epilog` and friends, keepalived.conf(5) "delay_loop",
//! "retry", "delay_before_retry", "warmup", "alpha"):
//!
//! - a check runs every `delay_loop`; the first after a random delay in
//!   `[0, warmup)`;
//! - while the checker is up, a failed probe is retried `retry` times,
//!   `delay_before_retry` apart; when the last retry fails it goes down;
//! - while it is down, one successful probe brings it back up, and failures
//!   are not retried (the next probe comes after `delay_loop`);
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
}

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
    /// Upper bound of the random delay before the first check (`warmup`).
    pub warmup: Duration,
    /// Start down (`alpha`).
    pub alpha: bool,
}

impl CheckerConfig {
    /// keepalived's defaults for a checker of `kind` on `target`: checks
    /// every 60 s, 5 s timeout, one retry 1 s later, warmup = delay_loop.
    pub fn new(kind: ProbeKind, target: (IpAddr, u16)) -> Self {
        CheckerConfig {
            kind,
            target,
            delay_loop: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            retry: 1,
            delay_before_retry: Duration::from_secs(1),
            warmup: Duration::from_secs(60),
            alpha: false,
        }
    }
}

/// How a probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ProbeResult {
    /// The check passed.
    Success,
    /// The check passed and asks for this weight (`misc_dynamic`: exit
    /// status 2..=255 means weight status - 2).
    Weight(u32),
    /// The check failed (refused, wrong status, digest mismatch, exit 1...).
    Failure,
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
    /// The probe `seq` timed out: stop it (its result no longer counts).
    Cancel {
        /// The probe.
        seq: u32,
    },
    /// The checker went up or down.
    Changed {
        /// New state.
        up: bool,
    },
    /// A dynamic weight was reported (MISC_CHECK with `misc_dynamic`).
    Weight(u32),
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
    retries_done: u32,
    phase: Phase,
    seq: u32,
}

impl Checker {
    /// A stopped checker; up unless `alpha`.
    pub fn new(config: CheckerConfig) -> Self {
        Checker {
            up: !config.alpha,
            config,
            has_run: false,
            retries_done: 0,
            phase: Phase::Stopped,
            seq: 0,
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

    /// Whether a probe is running.
    pub fn probing(&self) -> bool {
        matches!(self.phase, Phase::Probing(_))
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
        let warmup = prng.below(self.config.warmup.as_micros());
        self.phase = Phase::Waiting(now + Duration::from_micros(warmup));
    }

    /// Suspends checking (`ha_suspend` while the VIP is elsewhere) or
    /// resumes it; a running probe is cancelled. Resuming probes at once.
    pub fn suspend(&mut self, now: Instant, suspended: bool) -> Option<CheckerEvent> {
        let cancel = match self.phase {
            Phase::Probing(_) => Some(CheckerEvent::Cancel { seq: self.seq }),
            _ => None,
        };
        self.phase = if suspended {
            Phase::Stopped
        } else {
            Phase::Waiting(now)
        };
        cancel
    }

    /// At the deadline: starts a probe, or fails the one that timed out.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut impl FnMut(CheckerEvent)) {
        match self.phase {
            Phase::Waiting(t) if t <= now => {
                self.seq = self.seq.wrapping_add(1);
                self.phase = Phase::Probing(now + self.config.timeout);
                out(CheckerEvent::Start {
                    seq: self.seq,
                    timeout: self.config.timeout,
                });
            }
            Phase::Probing(t) if t <= now => {
                out(CheckerEvent::Cancel { seq: self.seq });
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

    fn finish(&mut self, now: Instant, result: ProbeResult, out: &mut impl FnMut(CheckerEvent)) {
        let success = result != ProbeResult::Failure;
        let c = self.config;
        let next = if success {
            self.retries_done = 0;
            if let ProbeResult::Weight(w) = result {
                out(CheckerEvent::Weight(w));
            }
            if (!self.up && !mutation::on(Mutation::StayDown)) || !self.has_run {
                self.set(true, out);
            }
            c.delay_loop
        } else if self.up && self.retries_done < c.retry {
            // keepalived retries only while the checker is up.
            self.retries_done += 1;
            c.delay_before_retry
        } else {
            self.retries_done = 0;
            if (self.up || !self.has_run) && !mutation::on(Mutation::IgnoreCheckFailure) {
                self.set(false, out);
            }
            c.delay_loop
        };
        self.has_run = true;
        self.phase = Phase::Waiting(now + next);
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
    use std::vec::Vec;

    /// The seed: delay_loop 6, connect_timeout 10, retry 3 (nb_get_retry),
    /// delay_before_retry 3, TCP_CHECK port 80.
    fn seed() -> Checker {
        let mut c = CheckerConfig::new(
            ProbeKind::Tcp,
            (IpAddr::V4(Ipv4Addr::new(192, 168, 2, 212)), 80),
        );
        c.delay_loop = Duration::from_secs(6);
        c.timeout = Duration::from_secs(10);
        c.retry = 3;
        c.delay_before_retry = Duration::from_secs(3);
        c.warmup = Duration::ZERO;
        Checker::new(c)
    }

    /// Drives a checker whose probes end with `outcome(now)`: Some(result)
    /// answers at once, None hangs until the timeout. Returns every
    /// (time, event).
    fn drive(
        c: &mut Checker,
        until: Instant,
        outcome: impl Fn(Instant) -> Option<ProbeResult>,
    ) -> Vec<(u64, CheckerEvent)> {
        let mut log = Vec::new();
        loop {
            let t = c.deadline();
            if t > until {
                return log;
            }
            let mut events = Vec::new();
            c.handle_timeout(t, &mut |e| events.push(e));
            for e in events {
                log.push((t.as_millis(), e));
                if let CheckerEvent::Start { seq, .. } = e
                    && let Some(r) = outcome(t)
                {
                    c.result(t, seq, r, &mut |e| log.push((t.as_millis(), e)));
                }
            }
        }
    }

    fn changes(log: &[(u64, CheckerEvent)]) -> Vec<(u64, bool)> {
        log.iter()
            .filter_map(|(t, e)| match e {
                CheckerEvent::Changed { up } => Some((*t, *up)),
                _ => None,
            })
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
        // at 33 = 24 + 3 * 3. Then every 6 s: 39 .. 57 fail, 63 passes.
        assert_eq!(changes(&log), [(33_000, false), (63_000, true)]);
        // The first probe after the port fails is at most delay_loop later.
        let starts: Vec<u64> = log
            .iter()
            .filter(|e| matches!(e.1, CheckerEvent::Start { .. }))
            .map(|e| e.0 / 1000)
            .collect();
        assert_eq!(&starts[..9], [0, 6, 12, 18, 24, 27, 30, 33, 39]);
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
        // Broke just after the check at 18: down 55 s later at most.
        assert_eq!(c.down_bound(), Duration::from_secs(6 + 40 + 9));
        assert!(73 - 18 <= c.down_bound().as_secs());
    }

    #[test]
    fn alpha_starts_down_and_one_success_brings_it_up() {
        let mut c = seed();
        let mut cfg = *c.config();
        cfg.alpha = true;
        c = Checker::new(cfg);
        assert!(!c.is_up());
        c.start(Instant::ZERO, &mut Prng::new(1));
        let log = drive(&mut c, Instant::from_secs(5), |_| {
            Some(ProbeResult::Success)
        });
        assert_eq!(changes(&log), [(0, true)]);
    }

    #[test]
    fn late_results_are_ignored_and_weights_reported() {
        let mut c = seed();
        c.start(Instant::ZERO, &mut Prng::new(1));
        let mut ev = Vec::new();
        c.handle_timeout(Instant::ZERO, &mut |e| ev.push(e));
        let CheckerEvent::Start { seq, .. } = ev[0] else {
            panic!()
        };
        c.result(Instant::ZERO, seq + 1, ProbeResult::Failure, &mut |e| {
            ev.push(e)
        });
        assert!(c.probing(), "a result for another probe is ignored");
        c.result(Instant::ZERO, seq, ProbeResult::Weight(7), &mut |e| {
            ev.push(e)
        });
        assert_eq!(ev[1..], [CheckerEvent::Weight(7)], "already up: no change");
    }

    #[test]
    fn warmup_is_random_but_reproducible() {
        let mut cfg = *seed().config();
        cfg.warmup = Duration::from_secs(6);
        let first = |seed| {
            let mut c = Checker::new(cfg);
            c.start(Instant::ZERO, &mut Prng::new(seed));
            c.deadline()
        };
        assert_eq!(first(7), first(7));
        assert!((0..20).map(first).all(|t| t < Instant::from_secs(6)));
        assert!(
            (0..20)
                .map(first)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                > 10
        );
    }

    #[test]
    fn suspend_cancels_and_resume_probes_at_once() {
        let mut c = seed();
        c.start(Instant::ZERO, &mut Prng::new(1));
        c.handle_timeout(Instant::ZERO, &mut |_| {});
        assert!(matches!(
            c.suspend(Instant::from_secs(1), true),
            Some(CheckerEvent::Cancel { .. })
        ));
        assert_eq!(c.deadline(), Instant::MAX);
        assert_eq!(c.suspend(Instant::from_secs(9), false), None);
        assert_eq!(c.deadline(), Instant::from_secs(9));
    }
}
