//! vrlb on Linux: runs vrlb-core for real with raw sockets, netlink and
//! AF_PACKET.

pub mod anycast;
pub mod check;
pub mod config_file;
pub mod daemon;
pub mod describe;
pub mod firmware;
pub mod node_memory;
