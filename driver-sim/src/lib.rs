//! A seeded discrete-event simulator in which vrlb-core runs unchanged:
//! directors (each a `Node` with VRRP over IPv4 and IPv6, balancer and
//! checks) beside a learning switch, real servers and clients on one
//! layer-2 segment, with faults (loss, duplication, jitter, latency and
//! link changes, partitions, one-way links, crashes, graceful stops,
//! pauses, clock drift, failing servers, floods of new flows) and named
//! invariants checked after every event. Health probes are frames on the
//! segment, so the faults reach them too. Directors configured with
//! `lvs_sync_daemon` exchange connection sync datagrams over the same
//! segment (loss, partitions and all), and the `synced_flow_kept`
//! invariant holds them to the promise that synced flows survive a
//! failover. One seed decides everything; the
//! trace hash proves a replay is bit for bit the same. No wall clock is
//! read anywhere in a run.

pub mod client;
pub mod director;
pub mod engine;
pub mod frame;
pub mod invariants;
pub mod report;
pub mod router;
pub mod scenario;
pub mod segment;
pub mod server;
pub mod swarm;
pub mod topology;
pub mod trace;
pub mod world;

pub use scenario::Scenario;
pub use world::{Outcome, run};
