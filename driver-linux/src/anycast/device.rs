//! The anycast interface: a TUN device that exists only while vrlb holds
//! its file descriptor. The kernel deletes a non-persistent TUN device,
//! and every address on it, when its last descriptor closes
//! (`tun_chr_close`, drivers/net/tun.c), so however vrlb ends (a clean
//! stop, a panic, kill -9, the OOM killer) its anycast addresses go with
//! it and a BGP speaker exporting them withdraws the route. Owns the
//! descriptor; the anycast feature's only unsafe code (two ioctls).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;

/// A TUN device held open.
pub struct Device {
    /// Closing it deletes the device.
    file: File,
}

impl Device {
    /// Creates TUN device `name`, or attaches to an idle one of that name
    /// and makes it non-persistent, so it goes when vrlb does.
    pub fn create(name: &str) -> io::Result<Device> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not an interface name"),
            ));
        }
        // std opens with O_CLOEXEC: scripts vrlb runs must not inherit the
        // descriptor, or the device would outlive vrlb while they run.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")?;
        let mut req = libc::ifreq {
            ifr_name: [0; libc::IFNAMSIZ],
            ifr_ifru: libc::__c_anonymous_ifr_ifru {
                // IP packets without the 4-byte packet-information header.
                ifru_flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
            },
        };
        for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        let fd = file.as_raw_fd();
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req` is
        // one, NUL-terminated (name shorter than IFNAMSIZ), alive for the
        // call, and `fd` is open.
        if unsafe { libc::ioctl(fd, libc::TUNSETIFF, &mut req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // A device made persistent by hand (`ip tuntap add`) would stay
        // behind, addresses and all: take that away.
        // SAFETY: TUNSETPERSIST takes its argument by value (no memory is
        // touched), on the open, attached `fd`.
        if unsafe { libc::ioctl(fd, libc::TUNSETPERSIST, 0 as libc::c_ulong) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Device { file })
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Device(fd {})", self.file.as_raw_fd())
    }
}
