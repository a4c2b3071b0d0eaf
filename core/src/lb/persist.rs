//! Persistence templates: the key a persistent client is remembered by,
//! and the rule for whether a found template may still be used. The
//! template's life cycle (refresh on use, kept while connections depend on
//! it) is driven by the balancer. Never schedules.

use core::net::IpAddr;

use super::addr::{mask, to16};
use super::conn::{KIND_TEMPLATE, KIND_V6, Key};
use super::server::ServerSlot;
use super::service::ServiceConfig;

/// FTP's control port: IPVS keys its templates with port 0 so data
/// connections on other ports follow (ip_vs_core.c `ip_vs_sched_persist`).
const FTP_PORT: u16 = 21;

/// The template key for a flow from `client` to `dst_port` of service
/// `svc`: `<service, client masked by persistence_granularity, vport>`,
/// vport being the service port for port services (0 for FTP) and 0 for
/// fwmark and port-zero services.
pub(crate) fn template_key(svc: u16, cfg: &ServiceConfig, client: IpAddr, dst_port: u16) -> Key {
    let masked = mask(client, cfg.persistence_prefix_len);
    let (caddr, v6) = to16(masked);
    let vport = if cfg.port() != 0 && dst_port == cfg.port() && cfg.port() != FTP_PORT {
        dst_port
    } else {
        0
    };
    Key {
        caddr,
        vaddr: [0; 16],
        cport: 0,
        vport,
        svc,
        proto: 0,
        kind: KIND_TEMPLATE | if v6 { KIND_V6 } else { 0 },
    }
}

/// `ip_vs_check_template`: a template is usable while its server is
/// configured and, with `expire_quiescent_template`, has a non-zero weight.
pub(crate) fn template_valid(server: &ServerSlot, expire_quiescent_template: bool) -> bool {
    server.available() && !(expire_quiescent_template && server.cfg.weight == 0)
}
