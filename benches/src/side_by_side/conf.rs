//! keepalived.conf texts for the side-by-side runs: one file, read by
//! both vrlb and keepalived unchanged. Pure text; no I/O.

use std::fmt::Write;
use std::net::Ipv4Addr;

/// The seed configuration the project starts from.
pub const SEED: &str = include_str!("../../../examples/seed/keepalived.conf");

/// One `vrrp_instance` block.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Its name.
    pub name: String,
    /// `interface`.
    pub iface: String,
    /// `virtual_router_id`.
    pub vrid: u8,
    /// `priority`.
    pub priority: u8,
    /// `advert_int`, as written (seconds, e.g. "1", "0.01").
    pub advert_int: String,
    /// `virtual_ipaddress` entries.
    pub vips: Vec<Ipv4Addr>,
}

impl Instance {
    fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            "vrrp_instance {} {{\n    state BACKUP\n    interface {}\n    virtual_router_id {}\n    priority {}\n    advert_int {}\n    virtual_ipaddress {{\n",
            self.name, self.iface, self.vrid, self.priority, self.advert_int
        );
        for v in &self.vips {
            let _ = writeln!(out, "        {v}");
        }
        out.push_str("    }\n}\n");
    }
}

/// A whole file: `global_defs` with `vrrp_version`, then the instances.
pub fn file(version: u8, instances: &[Instance]) -> String {
    let mut out =
        format!("global_defs {{\n    router_id vrlb_bench\n    vrrp_version {version}\n}}\n");
    for i in instances {
        i.write(&mut out);
    }
    out
}

/// The VIP pool for generated instances: 198.51.100.0/24 and
/// 203.0.113.0/24 (documentation ranges; 192.0.2.0/24 holds the lab's own
/// addresses). 512 addresses: beyond that they repeat, on another
/// interface.
pub fn pool_vip(i: usize) -> Ipv4Addr {
    let i = i % 512;
    let last = (i % 256) as u8;
    if i < 256 {
        Ipv4Addr::new(198, 51, 100, last)
    } else {
        Ipv4Addr::new(203, 0, 113, last)
    }
}

/// How many instances share one interface (VRIDs are 1..=255 per
/// interface; 250 keeps the arithmetic round).
pub const PER_IFACE: usize = 250;

/// `n` VRRPv2 instances at 1 s adverts, one VIP each, [`PER_IFACE`] per
/// interface on `ifaces` (so instance `i` is VRID `i % 250 + 1` on
/// interface `i / 250`). Instances sharing a VIP are on different
/// interfaces.
pub fn many(n: usize, ifaces: &[String], priority: u8) -> String {
    assert!(
        n <= ifaces.len() * PER_IFACE,
        "{n} instances need more interfaces"
    );
    let instances: Vec<Instance> = (0..n)
        .map(|i| Instance {
            name: format!("VI_{i}"),
            iface: ifaces[i / PER_IFACE].clone(),
            vrid: (i % PER_IFACE + 1) as u8,
            priority,
            advert_int: "1".into(),
            vips: vec![pool_vip(i)],
        })
        .collect();
    file(2, &instances)
}

/// The seed configuration adapted to the lab: its 192.168.2.0/24
/// addresses moved to 192.0.2.0/24, `eth0` to `iface`, `priority` and
/// `state` as given. keepalived 2.2.7 refuses the seed as written, so two
/// more changes: no `smtp_server` (keepalived resolves the name while
/// parsing) and `retry` for `nb_get_retry` (a keyword it no longer knows).
pub fn seed(iface: &str, state: &str, priority: u8) -> String {
    let mut out = String::new();
    for line in SEED.lines() {
        // Copied from a web page: non-breaking spaces around keywords.
        let line = line.replace('\u{a0}', " ");
        let t = line.trim();
        if t.starts_with("smtp_server") {
            continue;
        }
        let line = if t.starts_with("state ") {
            format!("    state {state}")
        } else if t.starts_with("priority ") {
            format!("    priority {priority}")
        } else if t.starts_with("interface ") {
            format!("    interface {iface}")
        } else {
            line.replace("192.168.2.", "192.0.2.")
                .replace("nb_get_retry", "retry")
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// [`seed`] without its `virtual_server` blocks: the seed's VRRP alone,
/// so vrlb runs no health checks and no data plane, as keepalived `-P`
/// (VRRP only) does with the whole file.
pub fn seed_vrrp_only(iface: &str, state: &str, priority: u8) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for line in seed(iface, state, priority).lines() {
        if depth == 0 && line.trim_start().starts_with("virtual_server") {
            depth = 1;
            // The opening brace is on this line; count the rest from it.
            let after = line.split_once('{').map_or("", |(_, r)| r);
            depth += after.matches('{').count();
            depth -= after.matches('}').count().min(depth);
            continue;
        }
        if depth > 0 {
            depth += line.matches('{').count();
            depth -= line.matches('}').count().min(depth);
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_instances_spread_over_interfaces_with_unique_vrids() {
        let ifaces: Vec<String> = (0..4).map(|k| format!("eth{k}")).collect();
        let text = many(1000, &ifaces, 150);
        assert_eq!(text.matches("vrrp_instance ").count(), 1000);
        assert!(text.contains("vrrp_instance VI_999 {\n    state BACKUP\n    interface eth3\n    virtual_router_id 250\n"));
        assert!(text.contains("vrrp_version 2"));
        // (interface, VRID) pairs and (interface, VIP) pairs are unique.
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000 {
            assert!(seen.insert((i / PER_IFACE, i % PER_IFACE + 1)));
            assert!(seen.insert((i / PER_IFACE + 100, pool_vip(i).to_bits() as usize)));
        }
        assert_eq!(pool_vip(0), Ipv4Addr::new(198, 51, 100, 0));
        assert_eq!(pool_vip(511), Ipv4Addr::new(203, 0, 113, 255));
        assert_eq!(pool_vip(512), pool_vip(0));
    }

    #[test]
    fn the_vrrp_only_seed_keeps_the_instance_and_drops_the_virtual_server() {
        let s = seed_vrrp_only("veth9", "MASTER", 100);
        assert!(
            !s.contains("virtual_server") && !s.contains("real_server"),
            "{s}"
        );
        assert!(!s.contains("TCP_CHECK") && !s.contains("lb_algo"), "{s}");
        assert!(
            s.contains("vrrp_instance VI_1 {") && s.contains("192.0.2.240"),
            "{s}"
        );
        assert!(s.contains("    interface veth9\n") && s.contains("auth_pass 1111"));
        assert_eq!(s.matches('{').count(), s.matches('}').count(), "{s}");
    }

    #[test]
    fn seed_moves_to_lab_addresses_and_keepalived_keywords() {
        let s = seed("veth9", "BACKUP", 90);
        assert!(
            !s.contains("192.168.") && !s.contains("smtp_server") && !s.contains("nb_get_retry")
        );
        assert!(s.contains("192.0.2.240") && s.contains("real_server 192.0.2.212 80"));
        assert!(s.contains("    interface veth9\n") && s.contains("    state BACKUP\n"));
        assert!(s.contains("    priority 90\n") && s.contains("advert_int 5"));
        assert!(!s.contains('\u{a0}'));
    }
}
