//! The nftables table `vrlb` that keeps the director's own stack from
//! answering packets the data plane forwards (no RST, no ICMP): one drop
//! rule per DR service in a `prerouting` chain at priority `raw`. AF_PACKET
//! sees frames before netfilter, so the data plane still gets them; the
//! VIP stays on the interface, so ARP and VRRP work. Applied atomically
//! with `nft -f -` (a table replaced in one transaction), removed on stop;
//! a crash's leftover table is replaced at the next start. Never touches
//! another table.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use super::filter::Match;

/// The table's name (family `inet`: one table for IPv4 and IPv6).
pub const TABLE: &str = "vrlb";

fn rule(m: &Match) -> String {
    let (family, addr) = match m.vip {
        IpAddr::V4(a) => ("ip", a.to_string()),
        IpAddr::V6(a) => ("ip6", a.to_string()),
    };
    let proto = match m.protocol {
        6 => "tcp",
        17 => "udp",
        132 => "sctp",
        _ => return String::new(),
    };
    if m.port == 0 {
        format!("    {family} daddr {addr} meta l4proto {proto} counter drop\n")
    } else {
        format!(
            "    {family} daddr {addr} {proto} dport {} counter drop\n",
            m.port
        )
    }
}

/// The nft script that replaces table `vrlb` with drop rules for `matches`
/// (creating it first so that deleting it cannot fail).
pub fn script(matches: &[Match]) -> String {
    let mut s = format!("table inet {TABLE}\ndelete table inet {TABLE}\n");
    s.push_str(&format!("table inet {TABLE} {{\n  chain prerouting {{\n"));
    s.push_str("    type filter hook prerouting priority raw; policy accept;\n");
    s.push_str("    # vrlb forwards these from AF_PACKET: the host must not answer them\n");
    for m in matches {
        s.push_str(&rule(m));
    }
    s.push_str("  }\n}\n");
    s
}

fn nft(input: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: cannot run it: {e} (is nftables installed?)"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("nft: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft refused the {TABLE} table: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Installs (or replaces) the table.
pub fn apply(matches: &[Match]) -> Result<(), String> {
    nft(&script(matches))
}

/// Removes the table if it exists.
pub fn remove() -> Result<(), String> {
    nft(&format!("table inet {TABLE}\ndelete table inet {TABLE}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_replaces_the_table_with_one_rule_per_service() {
        let s = script(&[
            Match {
                vip: "192.0.2.240".parse().unwrap(),
                protocol: 6,
                port: 80,
            },
            Match {
                vip: "2001:db8::1".parse().unwrap(),
                protocol: 17,
                port: 0,
            },
        ]);
        assert!(s.starts_with("table inet vrlb\ndelete table inet vrlb\n"));
        assert!(s.contains("type filter hook prerouting priority raw; policy accept;"));
        assert!(s.contains("ip daddr 192.0.2.240 tcp dport 80 counter drop\n"));
        assert!(s.contains("ip6 daddr 2001:db8::1 meta l4proto udp counter drop\n"));
    }
}
