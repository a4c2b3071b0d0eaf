//! Virtual servers, real servers and checkers from keepalived.conf into the
//! node's balancer, and the sweep that removes what a reload dropped.

use core::net::IpAddr;

use heapless::Vec;

use super::{Builder, Environment, name_key};
use crate::check::Quorum;
use crate::check::{Checker, CheckerConfig, ProbeKind, UDP_QUIET_GRACE};
use crate::config::{self, CheckKind, Kind, Snippet, VsKey};
use crate::lb::{self, ForwardMethod, Protocol, RealServer, ServiceConfig, ServiceId, ServiceKey};
use crate::node::{FileCheck, Node, NodeError, ServerRef, ServerState, ServiceState};
use crate::vrrp::VipStore;

/// Applies `lvs_timeouts` to the balancer as ipvsadm --set does: `tcp`
/// is the ESTABLISHED timeout, `tcpfin` FIN_WAIT's, `udp` UDP's; 0 (or no
/// `lvs_timeouts`, on reload too) keeps IPVS's default (ip_vs_ctl.c
/// `ip_vs_set_timeout`).
pub(super) fn apply_timeouts<S: VipStore>(node: &mut Node<'_, S>, t: &config::LvsTimeouts) {
    let Some(b) = node.balancing.as_mut() else {
        return;
    };
    let or_default = |d: crate::time::Duration, default: u32| match d.as_secs() {
        0 => default,
        // The parser caps it at 31 days.
        secs => u32::try_from(secs).unwrap_or(u32::MAX),
    };
    let defaults = lb::LbConfig::DEFAULT;
    let mut cfg = *b.balancer.config();
    cfg.tcp_timeout_s = or_default(t.tcp, defaults.tcp_timeout_s);
    cfg.tcp_fin_timeout_s = or_default(t.tcp_fin, defaults.tcp_fin_timeout_s);
    cfg.udp_timeout_s = or_default(t.udp, defaults.udp_timeout_s);
    if cfg != *b.balancer.config() {
        b.balancer.set_config(cfg);
    }
}

/// Most services one `virtual_server group` expands to.
pub const MAX_GROUP_SERVICES: usize = 256;

pub(super) type GroupServices = Vec<ServiceId, MAX_GROUP_SERVICES>;

/// The virtual server being read: what keepalived corrects once its real
/// servers are known.
pub(super) struct QuorumCheck {
    pos: config::Pos,
    quorum: u32,
    hysteresis: u32,
    /// Configured weights of its real servers so far.
    weight_sum: u64,
}

fn protocol(p: config::Protocol) -> Protocol {
    match p {
        config::Protocol::Tcp => Protocol::Tcp,
        config::Protocol::Udp => Protocol::Udp,
        config::Protocol::Sctp => Protocol::Sctp,
    }
}

fn node_kind(e: NodeError) -> Kind {
    super::node_error(e)
}

/// A stable key for a real server of a service.
fn server_key(service: ServiceId, addr: IpAddr, port: u16) -> u64 {
    let mut h = name_key("") ^ u64::from(service.0);
    let bytes: [u8; 16] = match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    };
    for b in bytes.iter().chain(&port.to_be_bytes()) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl<E: Environment, S: VipStore> Builder<'_, '_, E, S> {
    /// The balancer keys a virtual server stands for.
    fn service_keys(
        &self,
        vs: &config::VirtualServer<'_>,
    ) -> Result<Vec<ServiceKey, MAX_GROUP_SERVICES>, Kind> {
        let mut keys = Vec::new();
        let too_many = || Kind::TooMany {
            what: "services in one virtual_server group",
            max: MAX_GROUP_SERVICES,
        };
        let proto = protocol(vs.protocol);
        match vs.key {
            VsKey::Addr(vip, port) => keys
                .push(ServiceKey::Addr {
                    protocol: proto,
                    vip,
                    port,
                })
                .map_err(|_| too_many())?,
            VsKey::Fwmark(mark) => keys
                .push(ServiceKey::Fwmark { mark, ipv6: false })
                .map_err(|_| too_many())?,
            VsKey::Group(name) => {
                let key = name_key(name);
                let Some(group) = self.pre.vs_groups.iter().find(|g| g.0 == key) else {
                    return Err(Kind::Undefined {
                        what: "virtual_server_group",
                        name: Snippet::new(name),
                    });
                };
                for entry in &group.1 {
                    match *entry {
                        config::GroupEntry::Fwmark(mark) => keys
                            .push(ServiceKey::Fwmark { mark, ipv6: false })
                            .map_err(|_| too_many())?,
                        config::GroupEntry::Addr { first, last, port } => {
                            let mut addr = first;
                            loop {
                                keys.push(ServiceKey::Addr {
                                    protocol: proto,
                                    vip: addr,
                                    port,
                                })
                                .map_err(|_| too_many())?;
                                if addr == last {
                                    break;
                                }
                                addr = next_addr(addr);
                            }
                        }
                    }
                }
            }
        }
        Ok(keys)
    }

    pub(super) fn lvs_virtual_server(
        &mut self,
        vs: &config::VirtualServer<'_>,
    ) -> Result<(), Kind> {
        if self.node.balancer().is_none() {
            self.warn_no_balancer(vs.pos);
            return Ok(());
        }
        self.flush_quorum_check();
        let keys = self.service_keys(vs)?;
        // keepalived check_parser.c: "cannot use ha_suspend with fwmarks -
        // clearing ha_suspend" (a fwmark service has no address to hold).
        let fwmark = keys.iter().any(|k| matches!(k, ServiceKey::Fwmark { .. }));
        let ha_suspend = vs.ha_suspend && !fwmark;
        if vs.ha_suspend && fwmark {
            self.warn_assumed(
                vs.pos,
                "ha_suspend",
                "cannot be used with fwmark services: cleared, as keepalived does (checks always run)",
            );
        }
        self.current_services.clear();
        for key in keys {
            let ipv6 = match key {
                ServiceKey::Addr { vip, .. } => vip.is_ipv6(),
                ServiceKey::Fwmark { ipv6, .. } => ipv6,
            };
            let mut cfg = ServiceConfig::new(key, vs.scheduler);
            cfg.flags = lb::SchedFlags {
                fallback: vs.sched_flags.fallback,
                port: vs.sched_flags.port,
            };
            cfg.persistence_timeout_s = vs.persistence_timeout.map_or(0, |d| d.as_secs() as u32);
            cfg.persistence_prefix_len =
                vs.persistence_granularity
                    .unwrap_or(if ipv6 { 128 } else { 32 });
            let state = ServiceState {
                quorum: Quorum::new(vs.quorum, vs.hysteresis),
                sorry: vs.sorry_server,
                sorry_inhibit: vs.sorry_server_inhibit,
                sorry_method: method(vs.sorry_server_kind.unwrap_or(vs.kind)),
                ha_suspend,
                suspended: false,
                omega: vs.omega,
                anycast: vs.anycast,
                announced: false,
            };
            let id = self.node.set_service(cfg, state).map_err(node_kind)?;
            if let Some(b) = self.node.balancing.as_mut() {
                let _ = b.balancer.set_service_mark(id, self.generation);
            }
            if self.current_services.contains(&id) {
                continue;
            }
            self.current_services.push(id).map_err(|_| Kind::TooMany {
                what: "services in one virtual_server group",
                max: MAX_GROUP_SERVICES,
            })?;
        }
        self.env.virtual_server(&self.current_services, vs);
        self.quorum_check = Some(QuorumCheck {
            pos: vs.pos,
            quorum: vs.quorum,
            hysteresis: vs.hysteresis,
            weight_sum: 0,
        });
        Ok(())
    }

    /// keepalived's corrections of the virtual server just read, once its
    /// real servers are known (check_parser.c `validate_check_config`): a
    /// quorum above the total weight is lowered to it, a hysteresis not
    /// below the quorum to quorum - 1. Each is a warning.
    pub(super) fn flush_quorum_check(&mut self) {
        let Some(q) = self.quorum_check.take() else {
            return;
        };
        let mut quorum = q.quorum;
        let mut hysteresis = q.hysteresis;
        if u64::from(quorum) > q.weight_sum {
            quorum = q.weight_sum as u32;
            self.warn_assumed(
                q.pos,
                "quorum",
                "exceeds the total weight of the real servers: lowered to that total, as keepalived does",
            );
        }
        if hysteresis >= quorum && hysteresis > 0 {
            hysteresis = quorum.saturating_sub(1);
            self.warn_assumed(
                q.pos,
                "hysteresis",
                "is not below the quorum: set to quorum - 1, as keepalived does",
            );
        }
        if (quorum, hysteresis) != (q.quorum, q.hysteresis) {
            for id in self.current_services.clone() {
                self.node
                    .set_quorum_settings(id, Quorum::new(quorum, hysteresis));
            }
        }
    }

    fn warn_assumed(&mut self, pos: config::Pos, keyword: &str, note: &'static str) {
        let d = config::Diagnostic::new(
            self.file,
            pos.line,
            pos.col,
            Kind::Assumed {
                keyword: Snippet::new(keyword),
                note,
            },
        );
        self.env.diagnostic(&d);
    }

    pub(super) fn lvs_real_server(
        &mut self,
        vs: &config::VirtualServer<'_>,
        rs: &config::RealServer<'_>,
    ) -> Result<(), Kind> {
        if self.node.balancer().is_none() {
            return Ok(());
        }
        if let Some(q) = self.quorum_check.as_mut() {
            q.weight_sum += u64::from(rs.weight);
        }
        let mut file_checks = heapless::Vec::new();
        for f in &rs.file_checks {
            if let Some((file, weight, reverse)) = self.file_ref(f)? {
                // Capacities match the parser's: cannot overflow.
                let _ = file_checks.push(FileCheck {
                    file,
                    weight,
                    reverse,
                    value: 0,
                });
            }
        }
        let services = self.current_services.clone();
        for service in services {
            let key = server_key(service, rs.addr, rs.port);
            let alpha = rs.checkers.iter().any(|c| c.alpha.unwrap_or(vs.alpha));
            let state = ServerState {
                service,
                config: RealServer {
                    addr: rs.addr,
                    port: rs.port,
                    weight: rs.weight,
                    uthreshold: rs.upper_threshold,
                    lthreshold: rs.lower_threshold,
                    method: method(rs.kind),
                },
                dynamic_weight: None,
                file_checks: file_checks.clone(),
                inhibit_on_failure: rs.inhibit_on_failure,
                healthy: !alpha,
                listed: None,
                key,
                mark: self.generation,
            };
            let r = self.node.set_server(state).map_err(node_kind)?;
            for (i, c) in rs.checkers.iter().enumerate() {
                let checker = Checker::new(checker_config(vs, rs, c));
                let ckey = key ^ ((i as u64 + 1) << 56);
                let id = self.node.set_checker(r, checker, ckey).map_err(node_kind)?;
                self.node.mark_checker(id, self.generation);
                self.env.checker(id, r, c);
            }
            self.env.real_server(r, rs);
        }
        Ok(())
    }

    fn warn_no_balancer(&mut self, pos: config::Pos) {
        let d = config::Diagnostic::new(
            self.file,
            pos.line,
            pos.col,
            Kind::Assumed {
                keyword: Snippet::new("virtual_server"),
                note: "this node has no load balancer (VRRP-only build): ignored",
            },
        );
        self.env.diagnostic(&d);
    }
}

fn checker_config(
    vs: &config::VirtualServer<'_>,
    rs: &config::RealServer<'_>,
    c: &config::CheckerConf<'_>,
) -> CheckerConfig {
    let kind = match c.kind {
        CheckKind::Tcp => ProbeKind::Tcp,
        CheckKind::Http => ProbeKind::Http,
        CheckKind::Ssl => ProbeKind::Ssl,
        CheckKind::Misc => ProbeKind::Misc,
        CheckKind::Smtp => ProbeKind::Smtp,
        CheckKind::Udp => ProbeKind::Udp,
        CheckKind::Ping => ProbeKind::Ping,
        CheckKind::Dns => ProbeKind::Dns,
    };
    let target = (
        c.connect_ip.unwrap_or(rs.addr),
        c.connect_port.unwrap_or(rs.port),
    );
    // keepalived's defaults per kind come from CheckerConfig::new.
    let mut cfg = CheckerConfig::new(kind, target);
    cfg.delay_loop = c.delay_loop.unwrap_or(vs.delay_loop);
    cfg.timeout = match kind {
        // keepalived check_misc.c: misc_timeout, else the virtual
        // server's delay_loop.
        ProbeKind::Misc => c.misc_timeout.unwrap_or(vs.delay_loop),
        // The driver passes a quiet UDP_CHECK at connect_timeout.
        ProbeKind::Udp if !c.udp.require_reply => {
            c.connect_timeout.unwrap_or(cfg.timeout) + UDP_QUIET_GRACE
        }
        _ => c.connect_timeout.unwrap_or(cfg.timeout),
    };
    cfg.retry = c.retry.unwrap_or(cfg.retry);
    cfg.delay_before_retry = c.delay_before_retry.unwrap_or(match kind {
        // keepalived check_dns.c: default_delay_before_retry 0, which
        // means the checker's delay_loop.
        ProbeKind::Dns => cfg.delay_loop,
        _ => cfg.delay_before_retry,
    });
    // Unset: up to delay_loop, keepalived's default.
    cfg.warmup = c.warmup;
    cfg.alpha = c.alpha.unwrap_or(vs.alpha);
    cfg.misc_dynamic = c.misc_dynamic;
    cfg
}

fn next_addr(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a).wrapping_add(1)).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a).wrapping_add(1)).into()),
    }
}

/// Removes services, servers and checkers not marked with `generation`.
/// Walks by index so nothing needs collecting.
pub(super) fn sweep<S: VipStore>(node: &mut Node<'_, S>, generation: u8) -> Result<(), NodeError> {
    let Some(b) = node.balancing.as_ref() else {
        return Ok(());
    };
    let (checkers, servers, services) = (b.checkers.len(), b.servers.len(), b.services.len());
    for i in 0..checkers {
        let stale = node.balancing.as_ref().is_some_and(|b| {
            b.checkers[i]
                .entry
                .as_ref()
                .is_some_and(|e| e.mark != generation)
        });
        if stale {
            node.remove_checker(crate::node::CheckerId(i as u32))?;
        }
    }
    for i in 0..servers {
        let stale = node.balancing.as_ref().is_some_and(|b| {
            b.servers[i]
                .entry
                .as_ref()
                .is_some_and(|e| e.mark != generation)
        });
        if stale {
            node.remove_server(ServerRef(i as u32))?;
        }
    }
    for i in 0..services {
        let id = ServiceId(i as u16);
        let stale = node.balancing.as_ref().is_some_and(|b| {
            b.balancer.service(id).is_ok() && b.balancer.service_mark(id) != Some(generation)
        });
        if stale {
            node.remove_service(id)?;
        }
    }
    Ok(())
}

/// The balancer's forwarding method for a configured `lb_kind`.
fn method(kind: config::ForwardKind) -> ForwardMethod {
    match kind {
        config::ForwardKind::Dr => ForwardMethod::Dr,
        config::ForwardKind::Nat => ForwardMethod::Nat,
        config::ForwardKind::Tun => ForwardMethod::Tun,
    }
}
