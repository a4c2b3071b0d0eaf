//! vrlb on Linux: runs vrlb-core for real with raw sockets, netlink and
//! AF_PACKET.

pub mod anycast;
pub mod check;
pub mod config_file;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod describe;
pub mod firmware;
pub mod lab;
pub mod node_memory;
pub mod probe;
pub mod sync_transport;
#[cfg(test)]
mod test_netns;
