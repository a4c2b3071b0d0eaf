//! The lab's keepalived.conf for each director: the seed document's
//! configuration (one VRRP instance holding the VIP, one `wlc` DR virtual
//! server with persistence and two real servers of weight 3) with its
//! 192.168.2.0/24 addresses moved to 192.0.2.0/24 (.210/.211 directors,
//! .212/.213 real servers, .240 the VIP), and connection sync between
//! the directors on the same interface (the seed's notes name
//! `lvs_sync_daemon_inteface eth0`; today's keyword is `lvs_sync_daemon`).
//! Each real server has the seed's `TCP_CHECK` (delay_loop 6,
//! connect_timeout 10, nb_get_retry 3, delay_before_retry 3, port 80),
//! which reaches that server's `vrlb lab serve`; `nb_get_retry` is
//! spelled `retry`, its current name, so `vrlb check` has nothing to say.
//! Text only.

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

/// The seed's `delay_loop` (s): a checker probes this often while the
/// server answers.
pub const DELAY_LOOP_S: u32 = 6;
/// The seed's `TCP_CHECK` `connect_timeout` (s).
pub const CONNECT_TIMEOUT_S: u32 = 10;
/// The seed's `nb_get_retry`, written `retry` (keepalived.conf(5): the
/// old name is deprecated).
pub const RETRY: u32 = 3;
/// The seed's `delay_before_retry` (s).
pub const DELAY_BEFORE_RETRY_S: u32 = 3;
/// The port the checks connect to: the real servers' `vrlb lab serve`.
pub const HTTP_PORT: u16 = 80;

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
   lvs_sync_daemon {iface} VI_1
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

virtual_server {VIP} {HTTP_PORT} {{
    delay_loop {DELAY_LOOP_S}
    lb_algo wlc
    lb_kind DR
    persistence_timeout {PERSISTENCE_TIMEOUT_S}
    protocol TCP
"
    );
    for (addr, weight) in REAL_SERVERS.iter().zip(WEIGHTS) {
        s.push_str(&format!(
            "
    real_server {addr} {HTTP_PORT} {{
        weight {weight}
        TCP_CHECK {{
            connect_timeout {CONNECT_TIMEOUT_S}
            retry {RETRY}
            delay_before_retry {DELAY_BEFORE_RETRY_S}
            connect_port {HTTP_PORT}
        }}
"
        ));
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
            // The seed's check on each real server, aimed at its HTTP port.
            assert_eq!(text.matches("TCP_CHECK {").count(), 2, "{text}");
            assert_eq!(text.matches("connect_port 80\n").count(), 2, "{text}");
            assert!(text.contains("delay_loop 6\n"), "{text}");
            assert!(!text.contains("192.168."));
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(director(0, "eth0").contains("state MASTER"));
        assert!(director(1, "eth0").contains("priority 90"));
    }
}
