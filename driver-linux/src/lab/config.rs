//! The lab's keepalived.conf for each director: the seed document's
//! configuration (one VRRP instance holding the VIP, one `wlc` DR virtual
//! server with persistence and two real servers of weight 3) with its
//! 192.168.2.0/24 addresses moved to 192.0.2.0/24 (.210/.211 directors,
//! .212/.213 real servers, .240 the VIP). Text only.

/// The lab's addresses (documentation range, RFC 5737).
pub const VIP: &str = "192.0.2.240";
/// Director addresses, master first.
pub const DIRECTORS: [&str; 2] = ["192.0.2.210", "192.0.2.211"];
/// Real server addresses.
pub const REAL_SERVERS: [&str; 2] = ["192.0.2.212", "192.0.2.213"];
/// The client's first address.
pub const CLIENT: &str = "192.0.2.100";
/// The prefix length of the lab's segment.
pub const PREFIX_LEN: u8 = 24;
/// The seed's `persistence_timeout`.
pub const PERSISTENCE_TIMEOUT_S: u32 = 60;
/// The seed's weights.
pub const WEIGHTS: [u32; 2] = [3, 3];
/// VRRP priorities: the seed's master has 100, its copy on the backup a
/// lower one.
pub const PRIORITIES: [u8; 2] = [100, 90];
/// `advert_int`: the seed's notes use 1 s (its first listing 5 s); 1 s
/// makes a failover take about 3.6 s instead of 15.
pub const ADVERT_INT_S: u32 = 1;

/// Whether the real servers get the seed's `TCP_CHECK`. Off while `vrlb
/// run` has no probe extension (it lands with `driver-linux/src/probe/`):
/// a checker nobody probes times out and would take both servers down
/// about 55 s after start.
pub const WITH_CHECKS: bool = false;

/// keepalived.conf of director `n` (0: the master), whose segment
/// interface is `iface`.
pub fn director(n: usize, iface: &str) -> String {
    let (state, priority) = if n == 0 {
        ("MASTER", PRIORITIES[0])
    } else {
        ("BACKUP", PRIORITIES[1])
    };
    let mut s = format!(
        "! vrlb lab: the seed's keepalived.conf on 192.0.2.0/24 (director {n})
global_defs {{
   router_id LVS_DEVEL
}}

vrrp_instance VI_1 {{
    state {state}
    interface {iface}
    virtual_router_id 51
    priority {priority}
    advert_int {ADVERT_INT_S}
    authentication {{
        auth_type PASS
        auth_pass 1111
    }}
    virtual_ipaddress {{
        {VIP}/{PREFIX_LEN}
    }}
}}

virtual_server {VIP} 80 {{
    delay_loop 6
    lb_algo wlc
    lb_kind DR
    persistence_timeout {PERSISTENCE_TIMEOUT_S}
    protocol TCP
"
    );
    for (addr, weight) in REAL_SERVERS.iter().zip(WEIGHTS) {
        s.push_str(&format!(
            "\n    real_server {addr} 80 {{\n        weight {weight}\n"
        ));
        if WITH_CHECKS {
            s.push_str(
                "        TCP_CHECK {
            connect_timeout 10
            nb_get_retry 3
            delay_before_retry 3
            connect_port 80
        }
",
            );
        }
        s.push_str("    }\n");
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_config_on_documentation_addresses_parses_cleanly() {
        let dir = std::env::temp_dir().join(format!("vrlb-lab-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for n in 0..2 {
            // lo exists everywhere: no missing-interface warning.
            let text = director(n, "lo");
            let path = dir.join(format!("d{n}.conf"));
            std::fs::write(&path, &text).unwrap();
            let report = crate::check::check(&path, &vrlb_core::config::Options::default());
            assert!(report.error.is_none(), "{:?}\n{text}", report.error);
            assert!(report.warnings.is_empty(), "{:?}\n{text}", report.warnings);
            assert!(text.contains("192.0.2.240"));
            assert!(!text.contains("192.168."));
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(director(0, "eth0").contains("state MASTER"));
        assert!(director(1, "eth0").contains("priority 90"));
    }
}
