//! Health checks: each checker's schedule, retries and verdict
//! ([`Checker`]), and each virtual service's quorum ([`Quorum`]). The
//! driver performs the probes; `Node` combines verdicts per real server (a
//! server is down while any of its checkers is down) and applies them to
//! the load balancer. Never opens a connection or runs a script.

mod checker;
mod quorum;

pub use checker::{Checker, CheckerConfig, CheckerEvent, ProbeKind, ProbeResult, UDP_QUIET_GRACE};
pub use quorum::Quorum;
