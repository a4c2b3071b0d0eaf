//! Load balancing: IPVS-compatible virtual services and real servers, the
//! schedulers, the connection and persistence-template table, and the
//! [`Balancer::classify`] fast path.
//!
//! Owns every load-balancing decision: which real server gets a flow, how
//! long the director remembers it, and when a persistent client may move.
//! Never does I/O, reads a clock, parses packets (the driver hands in a
//! [`Flow`]) or allocates: every table lives in caller-provided [`Storage`].
//!
//! Semantics follow the kernel's IPVS (net/netfilter/ipvs/ip_vs_*.c): the
//! overhead formula, strict `>` comparisons in list order, newest server at
//! the head of the list, weight 0 quiesced, upper/lower thresholds, the
//! input-only TCP state table of a direct-routing director and its default
//! timeouts, persistence templates with controlled-connection counting.
//! Where the structure differs (a tournament tree instead of a list scan, a
//! timer wheel instead of per-connection timers) the decision does not.
//! Deliberate differences: mh builds its table over the servers in
//! (address, port) order, not list order, so directors agree whatever
//! their history; a fixed-size table, when full, forwards new flows
//! untracked and keeps their later packets on the same server
//! ([`TableFullPolicy`]); mh adopts mid-flow packets of unknown flows.
//!
//! With the `sync` feature the balancer also keeps a bounded journal of new
//! and changed connections for [`crate::sync`] and applies entries a peer
//! sent (`Balancer::attach_sync_journal`, `sync_pop`, `sync_apply`).

mod addr;
mod balancer;
mod classify;
mod conn;
mod entry;
mod hsiphash;
#[cfg(feature = "sync")]
mod journal;
mod persist;
pub mod sched;
mod server;
mod service;
mod stats;
mod storage;
#[cfg(feature = "sync")]
mod sync;
pub mod tcp;

#[cfg(any(test, feature = "reference"))]
pub mod reference;

// Unit tests that need the standard library and private items live
// outside src, so src names no standard crate (lib.rs).
#[cfg(test)]
#[path = "../../unit-tests/lb/expiry_tests.rs"]
mod expiry_tests;
#[cfg(test)]
#[path = "../../unit-tests/lb/model.rs"]
mod model;
#[cfg(test)]
#[path = "../../unit-tests/lb/tests.rs"]
mod tests;

pub use balancer::{
    Balancer, CLASSIFY_BATCH, LbConfig, LbError, NEXT_EXPIRY_SCAN_TICKS, ServerInfo,
    TableFullPolicy,
};
pub use classify::{DropReason, Flow, TcpFlags, Verdict};
pub use conn::{ConnSlot, TICK_SHIFT};
pub use entry::ConnEntry;
pub use sched::Scheduler;
pub use sched::mh::valid_table_size as valid_mh_table_size;
pub use server::{ForwardMethod, RealServer, ServerId, ServerSlot};
pub use service::{Protocol, SchedFlags, ServiceConfig, ServiceId, ServiceKey, ServiceSlot};
pub use stats::Stats;
pub use storage::{CONNECTIONS_MAX, Layout, MH_TABLE_MAX, SERVERS_PER_SERVICE_MAX, Storage};
#[cfg(feature = "sync")]
pub use sync::{ApplyError, JournalStats};
pub use tcp::TcpState;
