//! What the daemon needs from the kernel before it touches the network:
//! CAP_NET_RAW (raw VRRP sockets, AF_PACKET) and CAP_NET_ADMIN (addresses,
//! multicast membership on a device, SO_BINDTODEVICE). Read from
//! `/proc/self/status` so the answer is one clear line, not an EPERM from
//! whichever socket happens to be opened first.

/// Linux capability numbers (include/uapi/linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;

/// The effective capability set of this process, if readable.
fn effective() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

/// `Err` with one message naming every missing capability.
pub fn check() -> Result<(), String> {
    let Some(caps) = effective() else {
        // No /proc: let the socket calls speak for themselves.
        return Ok(());
    };
    missing_message(caps)
}

fn missing_message(caps: u64) -> Result<(), String> {
    let missing: Vec<&str> = [
        (CAP_NET_RAW, "CAP_NET_RAW"),
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
    ]
    .into_iter()
    .filter(|(bit, _)| caps & (1 << bit) == 0)
    .map(|(_, name)| name)
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "vrlb run needs {} (raw VRRP sockets and AF_PACKET need CAP_NET_RAW; \
         adding VIPs and joining multicast groups need CAP_NET_ADMIN): run it as root \
         or grant them, e.g. setcap cap_net_raw,cap_net_admin+ep",
        missing.join(" and ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_missing_capability() {
        assert!(missing_message(1 << CAP_NET_ADMIN | 1 << CAP_NET_RAW).is_ok());
        let e = missing_message(1 << CAP_NET_ADMIN).unwrap_err();
        assert!(e.starts_with("vrlb run needs CAP_NET_RAW ("), "{e}");
        let e = missing_message(0).unwrap_err();
        assert!(e.contains("CAP_NET_RAW and CAP_NET_ADMIN"), "{e}");
    }
}
