//! A send-only AF_PACKET socket: whole Ethernet frames out of a given
//! interface (GARP, unsolicited NA). One of the daemon's few `unsafe`
//! modules: `sockaddr_ll` has no safe constructor in nix or socket2.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Sends raw Ethernet frames.
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens the socket. Protocol 0: it receives nothing, so it never
    /// needs draining.
    pub fn open() -> io::Result<PacketSocket> {
        // SAFETY: plain socket(2) call with constant arguments; the result
        // is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(PacketSocket { fd })
    }

    /// Sends `frame` (Ethernet header included) out of `ifindex`.
    pub fn send(&self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        if frame.len() < 14 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "runt frame"));
        }
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        // The frame's own EtherType, in network order as the kernel wants.
        addr.sll_protocol = u16::from_ne_bytes([frame[12], frame[13]]);
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: `frame` is a valid buffer of `frame.len()` bytes and
        // `addr` a valid sockaddr_ll whose size is passed with it.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
