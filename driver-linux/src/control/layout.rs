//! The text layouts of `vrlb status` and `vrlb conns`: ipvsadm's `-L -n`
//! and `-L -c -n` columns (ipvsadm.c `print_title`, `print_service_entry`
//! and the connection listing), with a Check column and the data plane's
//! counters added to the status. Pure formatting.

use std::fmt::Write;
use std::net::IpAddr;

use super::Request;
use super::report::{Conns, Status};

/// ipvsadm's `addr:port` (IPv6 in brackets).
fn addr_port(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// ipvsadm's `mask` text: a dotted mask for IPv4, a prefix length for IPv6.
fn mask(v6: bool, prefix_len: u8) -> Option<String> {
    if v6 {
        return (prefix_len < 128).then(|| prefix_len.to_string());
    }
    let p = prefix_len.min(32);
    (p < 32).then(|| {
        let m = u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0);
        std::net::Ipv4Addr::from(m).to_string()
    })
}

/// `vrlb status` as text.
pub fn status(s: &Status) -> String {
    let mut o = String::new();
    // ipvsadm prints the kernel's IPVS version; vrlb implements 1.2.1's
    // behaviour and prints its own connection-table size.
    let _ = writeln!(
        o,
        "IP Virtual Server version 1.2.1 (size={})",
        s.connection_slots
    );
    o.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    o.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Check\n");
    for svc in &s.services {
        let name = match (svc.vip, svc.fwmark) {
            (Some(vip), _) => format!("{}  {}", svc.protocol, addr_port(vip, svc.port)),
            (None, Some(mark)) => format!("FWM  {mark}"),
            (None, None) => svc.protocol.clone(),
        };
        let _ = write!(o, "{name} {}", svc.scheduler);
        if svc.persistence_timeout_s > 0 {
            let _ = write!(o, " persistent {}", svc.persistence_timeout_s);
            let v6 = svc.vip.is_some_and(|v| v.is_ipv6());
            if let Some(m) = mask(v6, svc.persistence_prefix_len) {
                let _ = write!(o, " mask {m}");
            }
        }
        if !svc.quorum_up {
            o.push_str(" (quorum lost)");
        }
        o.push('\n');
        for rs in &svc.servers {
            let check = if rs.checks.is_empty() {
                "-".to_string()
            } else {
                rs.checks
                    .iter()
                    .map(|c| format!("{}:{}", c.kind, if c.up { "up" } else { "down" }))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let weight = rs.weight.map_or_else(|| "-".to_string(), |w| w.to_string());
            let _ = writeln!(
                o,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10} {}",
                addr_port(rs.addr, rs.port),
                svc.forward,
                weight,
                rs.active,
                rs.inactive,
                check
            );
        }
        if let (Some((addr, port)), true) = (svc.sorry, svc.sorry_active) {
            let _ = writeln!(
                o,
                "  -> {:<28} sorry server (quorum lost)",
                addr_port(addr, port)
            );
        }
    }
    if !s.instances.is_empty() {
        o.push_str("\nVRRP\n");
        for i in &s.instances {
            let vips: Vec<String> = i.vips.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                o,
                "  vrid {:<3} {:<7} priority {:<3} {}",
                i.vrid,
                i.state,
                i.priority,
                vips.join(" ")
            );
        }
    }
    match &s.dataplane {
        None => o.push_str("\nData plane: not running\n"),
        Some(d) => {
            let f = &d.forwarding;
            let _ = writeln!(o, "\nData plane on {}: {} worker(s)", d.iface, d.workers);
            let _ = writeln!(
                o,
                "  packets: {} received, {} forwarded",
                f.received, f.forwarded
            );
            let _ = writeln!(
                o,
                "  flows: {} forwarded, {} adopted mid-flow, {} templates made, {} template hits",
                f.flows_created, f.adopted_mid_flow, f.templates_created, f.template_hits
            );
            if f.stateless_forwards + f.stateless_continued + f.stateless_adopted > 0 {
                let _ = writeln!(
                    o,
                    "  table full: {} flows forwarded untracked, {} of their packets after the first, {} taken in later",
                    f.stateless_forwards, f.stateless_continued, f.stateless_adopted
                );
            }
            let drops: Vec<String> = f
                .drops()
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(name, n)| format!("{name} {n}"))
                .collect();
            let _ = writeln!(
                o,
                "  drops: {}",
                if drops.is_empty() {
                    "none".to_string()
                } else {
                    drops.join(", ")
                }
            );
        }
    }
    if let Some(y) = &s.sync {
        o.push('\n');
        o.push_str(&y.text());
    }
    o
}

/// `vrlb conns` as text.
pub fn conns(c: &Conns) -> String {
    let mut o = String::from("IPVS connection entries\n");
    let _ = writeln!(
        o,
        "pro expire {:<11} {:<18} {:<18} destination",
        "state", "source", "virtual"
    );
    for e in &c.entries {
        let _ = writeln!(
            o,
            "{:<3} {:02}:{:02}  {:<11} {:<18} {:<18} {}",
            e.protocol,
            e.expires_s / 60,
            e.expires_s % 60,
            e.state,
            addr_port(e.client, e.client_port),
            addr_port(e.vip, e.vport),
            addr_port(e.server, e.server_port)
        );
    }
    o
}

/// The text of the daemon's JSON `answer` to `request`.
pub fn render(request: Request, answer: &str) -> Result<String, String> {
    let bad = |e: serde_json::Error| format!("unreadable answer from the daemon: {e}");
    Ok(match request {
        Request::Status => status(&serde_json::from_str(answer).map_err(bad)?),
        Request::Conns => conns(&serde_json::from_str(answer).map_err(bad)?),
    })
}

#[cfg(test)]
mod tests {
    use super::super::report::{
        CheckStatus, ConnStatus, DataPlaneStatus, InstanceStatus, ServerStatus, ServiceStatus,
    };
    use super::*;
    use crate::dataplane::counters::Forwarding;

    fn sample() -> Status {
        let server = |last: u8, weight: Option<u32>, up: bool| ServerStatus {
            addr: IpAddr::from([192, 0, 2, last]),
            port: 80,
            weight,
            configured_weight: 3,
            active: 2,
            inactive: 31,
            persistent: 7,
            healthy: up,
            checks: vec![CheckStatus {
                kind: "TCP_CHECK".into(),
                target: (IpAddr::from([192, 0, 2, last]), 80),
                up,
                checked: true,
            }],
        };
        Status {
            connection_slots: 4096,
            instances: vec![InstanceStatus {
                vrid: 51,
                state: "MASTER".into(),
                priority: 100,
                vips: vec![IpAddr::from([192, 0, 2, 240])],
            }],
            dataplane: Some(DataPlaneStatus {
                iface: "eth0".into(),
                workers: 2,
                forwarding: Forwarding {
                    received: 10,
                    forwarded: 9,
                    drop_no_mac: 1,
                    flows_created: 3,
                    ..Forwarding::default()
                },
            }),
            services: vec![ServiceStatus {
                protocol: "TCP".into(),
                vip: Some(IpAddr::from([192, 0, 2, 240])),
                port: 80,
                fwmark: None,
                scheduler: "wlc".into(),
                forward: "Route".into(),
                persistence_timeout_s: 60,
                persistence_prefix_len: 24,
                quorum_up: true,
                sorry: None,
                sorry_active: false,
                servers: vec![server(212, Some(3), true), server(213, None, false)],
            }],
            sync: None,
        }
    }

    #[test]
    fn status_follows_ipvsadm_columns_and_adds_checks_and_counters() {
        let text = status(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "IP Virtual Server version 1.2.1 (size=4096)");
        assert_eq!(lines[1], "Prot LocalAddress:Port Scheduler Flags");
        assert_eq!(
            lines[2],
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Check"
        );
        assert_eq!(
            lines[3],
            "TCP  192.0.2.240:80 wlc persistent 60 mask 255.255.255.0"
        );
        assert_eq!(
            lines[4],
            "  -> 192.0.2.212:80               Route   3      2          31         TCP_CHECK:up"
        );
        assert_eq!(
            lines[5],
            "  -> 192.0.2.213:80               Route   -      2          31         TCP_CHECK:down"
        );
        assert!(
            text.contains("  vrid 51  MASTER  priority 100 192.0.2.240\n"),
            "{text}"
        );
        assert!(text.contains("Data plane on eth0: 2 worker(s)\n"), "{text}");
        assert!(
            text.contains("  packets: 10 received, 9 forwarded\n"),
            "{text}"
        );
        assert!(text.contains("  drops: no_mac 1\n"), "{text}");
    }

    #[test]
    fn conns_follow_ipvsadm_and_json_round_trips() {
        let c = Conns {
            entries: vec![
                ConnStatus {
                    template: false,
                    protocol: "TCP".into(),
                    expires_s: 899,
                    state: "ESTABLISHED".into(),
                    client: IpAddr::from([198, 51, 100, 7]),
                    client_port: 40000,
                    vip: IpAddr::from([192, 0, 2, 240]),
                    vport: 80,
                    server: IpAddr::from([192, 0, 2, 212]),
                    server_port: 80,
                },
                ConnStatus {
                    template: true,
                    protocol: "TCP".into(),
                    expires_s: 57,
                    state: "NONE".into(),
                    client: "2001:db8::7".parse().unwrap(),
                    client_port: 0,
                    vip: "2001:db8::240".parse().unwrap(),
                    vport: 80,
                    server: "2001:db8::212".parse().unwrap(),
                    server_port: 80,
                },
            ],
        };
        let json = serde_json::to_string(&c).unwrap();
        let text = render(Request::Conns, &json).unwrap();
        assert_eq!(
            text,
            "IPVS connection entries\n\
             pro expire state       source             virtual            destination\n\
             TCP 14:59  ESTABLISHED 198.51.100.7:40000 192.0.2.240:80     192.0.2.212:80\n\
             TCP 00:57  NONE        [2001:db8::7]:0    [2001:db8::240]:80 [2001:db8::212]:80\n"
        );
        let s = sample();
        let back: Status = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert!(render(Request::Status, "{").is_err());
    }

    #[test]
    fn masks_as_ipvsadm_prints_them() {
        assert_eq!(mask(false, 32), None);
        assert_eq!(mask(false, 24).as_deref(), Some("255.255.255.0"));
        assert_eq!(mask(false, 0).as_deref(), Some("0.0.0.0"));
        assert_eq!(mask(true, 128), None);
        assert_eq!(mask(true, 64).as_deref(), Some("64"));
    }
}
