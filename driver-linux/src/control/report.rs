//! What `vrlb status` and `vrlb conns` answer, as serde values (the JSON
//! the socket carries and `--json` prints), and how the daemon fills them
//! from its node and the data plane's shards. Reads only.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use vrlb_core::check::ProbeKind;
use vrlb_core::config::ForwardKind;
use vrlb_core::lb::{ConnEntry, ServiceId, ServiceKey};

use crate::daemon::event_loop::DaemonNode;
use crate::dataplane::DataPlaneView;
use crate::dataplane::counters::Forwarding;

/// `vrlb status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Connection-table slots per balancer (ipvsadm's `size=`).
    pub connection_slots: u32,
    /// VRRP instances.
    pub instances: Vec<InstanceStatus>,
    /// The data plane, when it runs.
    pub dataplane: Option<DataPlaneStatus>,
    /// Virtual services, sorted as ipvsadm sorts them.
    pub services: Vec<ServiceStatus>,
    /// Connection sync (`lvs_sync_daemon`), when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<crate::dataplane::sync::SyncSummary>,
}

/// One VRRP instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// `virtual_router_id`.
    pub vrid: u8,
    /// MASTER, BACKUP, FAULT, INIT.
    pub state: String,
    /// Effective priority.
    pub priority: u8,
    /// Its VIPs.
    pub vips: Vec<IpAddr>,
}

/// The data plane of this director.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPlaneStatus {
    /// The interface it forwards on.
    pub iface: String,
    /// Worker threads.
    pub workers: usize,
    /// Counters summed over the workers.
    pub forwarding: Forwarding,
}

/// One virtual service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// TCP, UDP, SCTP, or FWM for fwmark services.
    pub protocol: String,
    /// VIP (fwmark services: none).
    pub vip: Option<IpAddr>,
    /// Virtual port (0 for fwmark and port-zero services).
    pub port: u16,
    /// Firewall mark (fwmark services).
    pub fwmark: Option<u32>,
    /// `lb_algo`.
    pub scheduler: String,
    /// `lb_kind`: Route (DR), Masq (NAT), Tunnel (TUN), as ipvsadm names
    /// them.
    pub forward: String,
    /// `persistence_timeout` in seconds (0: none).
    pub persistence_timeout_s: u32,
    /// `persistence_granularity` as a prefix length.
    pub persistence_prefix_len: u8,
    /// Whether the live weight meets `quorum`.
    pub quorum_up: bool,
    /// `sorry_server`, and whether it takes new flows now.
    pub sorry: Option<(IpAddr, u16)>,
    /// Whether new flows go to the sorry server.
    pub sorry_active: bool,
    /// Configured real servers, sorted by address and port.
    pub servers: Vec<ServerStatus>,
}

/// One real server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// Address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Weight in the balancer now (0 when inhibited); none when the server
    /// is not listed (down, so removed as keepalived removes it).
    pub weight: Option<u32>,
    /// Configured weight.
    pub configured_weight: u32,
    /// ActiveConn, summed over the data plane's workers.
    pub active: u32,
    /// InActConn.
    pub inactive: u32,
    /// Persistence templates pointing here.
    pub persistent: u32,
    /// Every checker of it is up (no checker: always).
    pub healthy: bool,
    /// Its checkers.
    pub checks: Vec<CheckStatus>,
}

/// One checker's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK.
    pub kind: String,
    /// Where it probes.
    pub target: (IpAddr, u16),
    /// Its verdict.
    pub up: bool,
    /// A probe has reported since it started. Until then the verdict is
    /// assumed, and one failure is enough to take it down (as keepalived).
    pub checked: bool,
}

/// `vrlb conns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conns {
    /// Connections and persistence templates.
    pub entries: Vec<ConnStatus>,
}

/// One tracked connection or persistence template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnStatus {
    /// A persistence template.
    pub template: bool,
    /// TCP, UDP, SCTP, IP.
    pub protocol: String,
    /// Seconds until it expires.
    pub expires_s: u64,
    /// IPVS state name (NONE for templates).
    pub state: String,
    /// Client address (templates: masked).
    pub client: IpAddr,
    /// Client port (templates: 0).
    pub client_port: u16,
    /// VIP.
    pub vip: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real server address.
    pub server: IpAddr,
    /// Real server port.
    pub server_port: u16,
}

/// ipvsadm's name for a protocol number.
pub fn protocol_name(n: u8) -> &'static str {
    match n {
        6 => "TCP",
        17 => "UDP",
        132 => "SCTP",
        _ => "IP",
    }
}

fn check_name(k: ProbeKind) -> &'static str {
    match k {
        ProbeKind::Tcp => "TCP_CHECK",
        ProbeKind::Http => "HTTP_GET",
        ProbeKind::Ssl => "SSL_GET",
        ProbeKind::Misc => "MISC_CHECK",
        ProbeKind::Smtp => "SMTP_CHECK",
        ProbeKind::Udp => "UDP_CHECK",
        ProbeKind::Ping => "PING_CHECK",
        ProbeKind::Dns => "DNS_CHECK",
    }
}

/// ipvsadm's name for a forwarding method (`fwd_name`).
pub fn forward_name(k: ForwardKind) -> &'static str {
    match k {
        ForwardKind::Dr => "Route",
        ForwardKind::Nat => "Masq",
        ForwardKind::Tun => "Tunnel",
    }
}

/// The status of `node` and its data plane; `forward` names each
/// service's `lb_kind`.
pub fn status(
    node: &DaemonNode,
    view: &DataPlaneView,
    forward: &HashMap<ServiceId, ForwardKind>,
) -> Status {
    let instances = node
        .instances()
        .map(|(_, i)| InstanceStatus {
            vrid: i.config().vrid,
            state: i.state().to_string(),
            priority: i.effective_priority(),
            vips: i.vips().to_vec(),
        })
        .collect();
    let dataplane = view.running().map(|(iface, workers)| DataPlaneStatus {
        iface,
        workers,
        forwarding: view.forwarding(),
    });
    let mut services = Vec::new();
    let mut connection_slots = 0;
    if let Some(b) = node.balancer() {
        connection_slots = view.connection_slots().unwrap_or(b.layout().connections);
        for (id, config) in b.services() {
            let state = node.service_state(id);
            let (protocol, vip, port, fwmark) = match config.key {
                ServiceKey::Addr {
                    protocol,
                    vip,
                    port,
                } => (protocol_name(protocol.number()), Some(vip), port, None),
                ServiceKey::Fwmark { mark, .. } => ("FWM", None, 0, Some(mark)),
            };
            let mut servers: Vec<ServerStatus> = node
                .servers()
                .filter(|(_, s)| s.service == id)
                .map(|(r, s)| {
                    let listed = s.listed.and_then(|l| b.server_info(l));
                    let counts = if view.running().is_some() {
                        view.server_counts(&config.key, s.config.addr, s.config.port)
                    } else {
                        listed.map_or_else(Default::default, |i| crate::dataplane::ServerCounts {
                            active: i.active,
                            inactive: i.inactive,
                            persistent: i.persistent,
                        })
                    };
                    ServerStatus {
                        addr: s.config.addr,
                        port: s.config.port,
                        weight: listed.map(|i| i.server.weight),
                        configured_weight: s.config.weight,
                        active: counts.active,
                        inactive: counts.inactive,
                        persistent: counts.persistent,
                        healthy: s.healthy,
                        checks: node
                            .checkers()
                            .filter(|(_, _, server, _)| *server == r)
                            .map(|(_, c, _, _)| CheckStatus {
                                kind: check_name(c.config().kind).to_string(),
                                target: c.config().target,
                                up: c.is_up(),
                                checked: c.has_run(),
                            })
                            .collect(),
                    }
                })
                .collect();
            servers.sort_by_key(|s| (s.addr, s.port));
            services.push(ServiceStatus {
                protocol: protocol.to_string(),
                vip,
                port,
                fwmark,
                scheduler: config.scheduler.name().to_string(),
                forward: forward
                    .get(&id)
                    .map_or("Route", |k| forward_name(*k))
                    .to_string(),
                persistence_timeout_s: config.persistence_timeout_s,
                persistence_prefix_len: config.persistence_prefix_len,
                quorum_up: state.is_none_or(|s| s.quorum.is_up()),
                sorry: state.and_then(|s| s.sorry),
                sorry_active: state.is_some_and(|s| !s.quorum.is_up() && s.sorry.is_some()),
                servers,
            });
        }
    }
    services.sort_by_key(|s| (s.fwmark, s.protocol.clone(), s.vip, s.port));
    Status {
        connection_slots,
        instances,
        dataplane,
        services,
        sync: None,
    }
}

fn conn_status(e: &ConnEntry, server: IpAddr, server_port: u16) -> ConnStatus {
    let state = if e.template {
        "NONE"
    } else if e.protocol == 6 {
        e.state.name()
    } else {
        // IPVS's UDP and other protocols have one state, named after them.
        protocol_name(e.protocol)
    };
    ConnStatus {
        template: e.template,
        protocol: protocol_name(e.protocol).to_string(),
        expires_s: e.expires_in.as_secs(),
        state: state.to_string(),
        client: e.client,
        client_port: e.client_port,
        vip: e.vip,
        vport: e.vport,
        server,
        server_port,
    }
}

/// Every connection and template the data plane tracks, templates after
/// connections, each group by client.
pub fn conns(view: &DataPlaneView) -> Conns {
    let mut entries = Vec::new();
    view.entries(|e, addr, port| entries.push(conn_status(e, addr, port)));
    entries.sort_by(|a, b| {
        (a.template, a.client, a.client_port, a.vip, a.vport).cmp(&(
            b.template,
            b.client,
            b.client_port,
            b.vip,
            b.vport,
        ))
    });
    Conns { entries }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use vrlb_core::check::ProbeResult;
    use vrlb_core::config::{NoIncludes, Options};
    use vrlb_core::node::build::{self, Environment};
    use vrlb_core::node::{IfaceId, Input, Output};
    use vrlb_core::time::Instant;
    use vrlb_core::vrrp::Family;

    use crate::node_memory::NodeMemory;

    const CONF: &str = "virtual_server 192.0.2.240 80 {
    delay_loop 6
    lb_algo wlc
    lb_kind NAT
    persistence_timeout 60
    persistence_granularity 255.255.255.0
    protocol TCP
    real_server 192.0.2.213 80 {
        weight 2
    }
    real_server 192.0.2.212 80 {
        weight 3
        TCP_CHECK {
            connect_timeout 2
            retry 1
            delay_before_retry 1
        }
    }
}
";

    /// Records each service's lb_kind, as the control extension does.
    #[derive(Default)]
    struct Env(HashMap<ServiceId, ForwardKind>);

    impl Environment for Env {
        fn interface(&mut self, _name: &str) -> IfaceId {
            IfaceId(0)
        }
        fn primary_address(&mut self, _iface: IfaceId, _family: Family) -> Option<IpAddr> {
            None
        }
        fn virtual_server(
            &mut self,
            services: &[ServiceId],
            vs: &vrlb_core::config::VirtualServer<'_>,
        ) {
            for id in services {
                self.0.insert(*id, vs.kind);
            }
        }
    }

    fn node() -> (DaemonNode, HashMap<ServiceId, ForwardKind>) {
        let options = Options::default();
        let counts = build::count("t.conf", CONF, &options, &mut NoIncludes).unwrap();
        let memory = Box::leak(Box::new(NodeMemory::for_counts(&counts, 0, 64)));
        let mut node = memory.node(Instant::ZERO, 1).unwrap();
        let mut env = Env::default();
        build::build(
            &mut node,
            &mut env,
            "t.conf",
            CONF,
            &options,
            &mut NoIncludes,
        )
        .unwrap();
        (node, env.0)
    }

    fn server(s: &Status, last: u8) -> &ServerStatus {
        s.services[0]
            .servers
            .iter()
            .find(|r| r.addr == IpAddr::from([192, 0, 2, last]))
            .unwrap()
    }

    #[test]
    fn status_shows_services_servers_and_check_state_as_the_node_has_them() {
        let (mut node, forward) = node();
        let view = DataPlaneView::default();
        let s = status(&node, &view, &forward);
        assert_eq!(s.connection_slots, 64);
        assert!(s.instances.is_empty() && s.dataplane.is_none());
        let svc = &s.services[0];
        assert_eq!(
            (svc.protocol.as_str(), svc.vip, svc.port),
            ("TCP", Some(IpAddr::from([192, 0, 2, 240])), 80)
        );
        assert_eq!(
            (svc.scheduler.as_str(), svc.forward.as_str()),
            ("wlc", "Masq")
        );
        assert_eq!(
            (svc.persistence_timeout_s, svc.persistence_prefix_len),
            (60, 24)
        );
        assert!(svc.quorum_up);
        // Sorted by address; the checked one starts up (no `alpha`).
        assert_eq!(svc.servers[0].addr, IpAddr::from([192, 0, 2, 212]));
        let checked = server(&s, 212);
        assert_eq!((checked.weight, checked.configured_weight), (Some(3), 3));
        assert!(checked.healthy);
        assert_eq!(checked.checks.len(), 1);
        assert_eq!(checked.checks[0].kind, "TCP_CHECK");
        assert!(checked.checks[0].up);
        assert_eq!(
            checked.checks[0].target,
            (IpAddr::from([192, 0, 2, 212]), 80)
        );
        let plain = server(&s, 213);
        assert_eq!(plain.weight, Some(2));
        assert!(plain.checks.is_empty() && plain.healthy);

        // Every probe fails: the checker goes down, the server leaves the
        // balancer, and the status says so.
        node.handle(Instant::ZERO, Input::Start);
        let mut now = Instant::ZERO;
        for _ in 0..100 {
            while let Some(out) = node.poll_output() {
                if let Output::Probe { checker, seq, .. } = out {
                    node.handle(
                        now,
                        Input::ProbeResult {
                            checker,
                            seq,
                            result: ProbeResult::Failure,
                        },
                    );
                }
            }
            if !server(&status(&node, &view, &forward), 212).healthy {
                break;
            }
            now = node.poll_timeout().expect("a checker is due").max(now);
            node.handle_timeout(now);
        }
        let s = status(&node, &view, &forward);
        let down = server(&s, 212);
        assert!(!down.healthy, "{down:?}");
        assert_eq!(down.weight, None);
        assert!(!down.checks[0].up);
        assert_eq!(server(&s, 213).weight, Some(2));
    }
}
