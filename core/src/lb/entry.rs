//! One row of the connection table as the status command shows it
//! (ipvsadm -L -c): a connection or a persistence template with its
//! addresses, server, TCP state and time left. A read-only view; never
//! changes the table.

use core::net::IpAddr;

use super::server::ServerId;
use super::tcp::TcpState;
use crate::time::Duration;

/// A tracked connection or persistence template.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnEntry {
    /// A persistence template (ipvsadm shows it with state NONE and the
    /// masked client with port 0).
    pub template: bool,
    /// IP protocol number (templates: the service's).
    pub protocol: u8,
    /// Client address (templates: masked by the granularity).
    pub client: IpAddr,
    /// Client port (0 for templates).
    pub client_port: u16,
    /// Virtual address (templates of fwmark services: unspecified).
    pub vip: IpAddr,
    /// Virtual port (0 for port-zero services' templates).
    pub vport: u16,
    /// The real server's id in this balancer.
    pub server: ServerId,
    /// TCP state (None for UDP and templates).
    pub state: TcpState,
    /// Whether it counts as inactive (`InActConn`).
    pub inactive: bool,
    /// Time until it expires (rounded to the table's tick).
    pub expires_in: Duration,
}

#[cfg(test)]
mod tests {
    use heapless::Vec;

    use super::super::tests::balancer;
    use super::super::*;
    use crate::time::Instant;
    use core::net::{IpAddr, Ipv4Addr};

    #[test]
    fn entries_show_connections_and_templates_with_time_left() {
        let layout = Layout {
            services: 1,
            servers_per_service: 4,
            mh_table_max: 251,
            connections: 64,
        };
        let mut b = balancer(layout, LbConfig::DEFAULT);
        let vip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 240));
        let mut cfg = ServiceConfig::new(
            ServiceKey::Addr {
                protocol: Protocol::Tcp,
                vip,
                port: 80,
            },
            Scheduler::Wlc,
        );
        cfg.persistence_timeout_s = 60;
        let svc = b.add_service(cfg).unwrap();
        let rs = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 21));
        let server = b.add_server(svc, RealServer::new(rs, 80)).unwrap();
        let client = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        let now = Instant::from_secs(5);
        let flow = Flow::tcp(client, 40000, vip, 80, TcpFlags::SYN);
        assert!(matches!(b.classify(now, &flow), Verdict::Forward { .. }));
        // As many rows as the table has slots.
        let mut rows: Vec<ConnEntry, 64> = Vec::new();
        b.for_each_entry(|e| rows.push(*e).expect("at most 64 entries"));
        rows.sort_unstable_by_key(|e| e.template);
        assert_eq!(rows.len(), 2);
        let (conn, tpl) = (rows[0], rows[1]);
        assert!(!conn.template && tpl.template);
        assert_eq!(
            (conn.client, conn.client_port, conn.vip, conn.vport),
            (client, 40000, vip, 80)
        );
        assert_eq!(conn.server, server);
        assert_eq!(conn.state, TcpState::SynRecv);
        assert_eq!(conn.protocol, 6);
        assert_eq!(
            (tpl.client, tpl.client_port, tpl.server),
            (client, 0, server)
        );
        // SYN_RECV lasts 60 s in IPVS; the template persistence_timeout.
        let secs = |e: ConnEntry| e.expires_in.as_secs();
        assert!((59..=60).contains(&secs(conn)), "{:?}", conn.expires_in);
        assert!((59..=60).contains(&secs(tpl)), "{:?}", tpl.expires_in);
    }
}
