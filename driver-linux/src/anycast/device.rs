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

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::daemon::netlink::Rtnl;
    use crate::test_netns::in_private_netns;

    const NAME: &str = "vrlb-anycast";

    fn listed() -> bool {
        Rtnl::new()
            .unwrap()
            .links()
            .unwrap()
            .iter()
            .any(|l| l.name == NAME)
    }

    /// Whether the device is gone within 5 s of its close: the kernel's
    /// removal can lag the close on a loaded machine (a CI run once found
    /// it still there).
    fn gone() -> bool {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while listed() {
            if std::time::Instant::now() > until {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        true
    }

    fn ip(args: &[&str]) {
        let status = Command::new("ip").args(args).status().expect("ip runs");
        assert!(status.success(), "ip {args:?}: {status}");
    }

    #[test]
    fn the_device_and_its_address_go_with_the_descriptor() {
        in_private_netns(|| {
            let device = Device::create(NAME).unwrap();
            assert!(listed());
            ip(&["addr", "add", "192.0.2.240/32", "dev", NAME]);
            drop(device);
            assert!(gone(), "{NAME} outlived its descriptor");
            let left = Rtnl::new().unwrap().addrs().unwrap();
            assert!(
                left.iter().all(|a| a.addr.to_string() != "192.0.2.240"),
                "address outlived the device: {left:?}"
            );
        });
    }

    #[test]
    fn a_persistent_device_of_that_name_is_taken_over_and_goes_too() {
        in_private_netns(|| {
            ip(&["tuntap", "add", "dev", NAME, "mode", "tun"]);
            let device = Device::create(NAME).unwrap();
            drop(device);
            assert!(gone(), "the persistent {NAME} stayed");
        });
    }

    #[test]
    fn a_held_device_or_another_kind_of_that_name_is_refused() {
        in_private_netns(|| {
            let held = Device::create(NAME).unwrap();
            let second = Device::create(NAME).unwrap_err();
            assert_eq!(second.raw_os_error(), Some(libc::EBUSY), "{second}");
            drop(held);
            assert!(gone(), "{NAME} outlived its descriptor");
            ip(&["link", "add", NAME, "type", "veth", "peer", "name", "v1"]);
            let other = Device::create(NAME).unwrap_err();
            assert_eq!(other.raw_os_error(), Some(libc::EINVAL), "{other}");
            assert!(listed(), "the veth is not vrlb's to remove");
        });
    }

    #[test]
    fn names_the_kernel_would_refuse_or_cut_are_refused_first() {
        for name in ["", "sixteen-chars-xx", "a\0b"] {
            let e = Device::create(name).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?}: {e}");
        }
    }
}
