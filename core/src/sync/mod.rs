//! Connection sync, the job of keepalived's `lvs_sync_daemon` (IPVS's
//! sync daemons, ip_vs_sync.c): the director that holds the VIP sends its
//! new and changed connections and persistence templates in batched,
//! versioned messages ([`crate::wire::sync`]); a backup applies them to its
//! own balancer, so after a failover established flows and persistent
//! clients keep their servers.
//!
//! [`ConnSync`] owns the batching, the size and rate bounds, the flush
//! timer, sequence numbers, and on receipt the checks (version, sync id,
//! length, duplicates and gaps) and the drop counters. It never does I/O,
//! reads a clock, or decides which changes are worth sending: the
//! balancer's journal does that (`lb::Balancer::attach_sync_journal`), and
//! applying an entry is `lb::Balancer::sync_apply`. The machine does not
//! own the balancer (the node does); every call that needs it takes it as
//! an argument.
//!
//! ```text
//! sender:   classify() -> journal -> handle_timeout() -> Output::Transmit
//! receiver: handle(Input::Receive(datagram)) -> Balancer::sync_apply
//! ```

mod config;
mod machine;
mod rate;
mod replay;
mod stats;

// Unit tests that need the standard library and private items live
// outside src, so src names no standard crate (lib.rs).
#[cfg(test)]
#[path = "../../unit-tests/sync/tests.rs"]
mod tests;

pub use config::{MESSAGE_BYTES_MAX, MESSAGE_BYTES_MIN, Role, SyncConfig, SyncConfigError};
pub use machine::{ConnSync, Input, Message, OUTPUT_QUEUE, Output};
pub use replay::PEERS_MAX;
pub use stats::SyncStats;
