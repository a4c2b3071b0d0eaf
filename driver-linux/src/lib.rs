//! vrlb on Linux: runs vrlb-core for real with raw sockets, netlink and
//! AF_PACKET (the `daemon` feature), and the firmware-style driver on
//! smoltcp over a TAP device (the `firmware` feature).

#[cfg(feature = "daemon")]
pub mod anycast;
#[cfg(feature = "daemon")]
pub mod check;
#[cfg(feature = "daemon")]
pub mod config_file;
#[cfg(feature = "daemon")]
pub mod control;
#[cfg(feature = "daemon")]
pub mod daemon;
#[cfg(feature = "daemon")]
pub mod dataplane;
#[cfg(feature = "daemon")]
pub mod describe;
#[cfg(feature = "firmware")]
pub mod firmware;
#[cfg(feature = "daemon")]
pub mod lab;
#[cfg(feature = "daemon")]
pub mod node_memory;
#[cfg(feature = "daemon")]
pub mod probe;
#[cfg(feature = "daemon")]
pub mod process_watch;
#[cfg(feature = "daemon")]
pub mod sync_transport;
#[cfg(all(test, feature = "daemon"))]
mod test_netns;
