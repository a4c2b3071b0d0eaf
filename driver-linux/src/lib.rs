//! vrlb on Linux: runs vrlb-core for real with raw sockets, netlink and
//! AF_PACKET.
