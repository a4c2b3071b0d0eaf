//! Real health checks for `vrlb run`: keepalived's `TCP_CHECK`, `HTTP_GET`,
//! `SSL_GET`, `SMTP_CHECK`, `UDP_CHECK`, `PING_CHECK`, `DNS_CHECK` and
//! `MISC_CHECK` performed on non-blocking sockets and child processes,
//! many at once, on the daemon's single event loop. Owns the
//! probing; never decides health: the core's checkers say when to probe
//! and what a result means, and this module only reports how each probe
//! ended (`Input::ProbeResult`).
//!
//! - [`Probes`]: the daemon [`Extension`](crate::daemon::event_loop::Extension)
//!   that wires it to the node.
//! - [`Prober`]: the probes in flight, usable without a node.
//! - [`ProbeSpec`]: what one checker probes, from its configuration block.

pub mod dns;
pub mod exchange;
pub mod extension;
pub mod http;
pub mod misc;
pub mod ping;
pub mod prober;
pub mod smtp;
pub mod spec;
pub mod tcp;
pub mod tls;
pub mod udp;

pub use extension::Probes;
pub use prober::{Finished, Prober, Request};
pub use spec::{ProbeSpec, SpecKind, UrlSpec};

#[cfg(test)]
mod tests;
