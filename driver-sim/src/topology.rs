//! What a keepalived.conf asks the simulated network to contain, read with
//! the core's parser (the parser only: no node is built here): its VRRP
//! instances, virtual services, real servers and their checks. The
//! simulator derives a run's hosts from this, and computes the bounds its
//! invariants hold the core to from these parameters (with keepalived's
//! documented defaults), never from the core's own checkers, so a core
//! that computes a bound wrongly is caught rather than followed.

use std::net::IpAddr;

use vrlb_core::config::{
    self, CheckKind, ForwardKind, GroupEntry, InitialState, NoIncludes, Options, Protocol,
    Scheduler, Sink, VsKey,
};

/// A `vrrp_instance`, as the file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    /// Its name.
    pub name: String,
    /// `virtual_router_id`.
    pub vrid: u8,
    /// IPv6 instance (VRRPv3 over IPv6).
    pub v6: bool,
    /// `priority`.
    pub priority: u8,
    /// `state MASTER`.
    pub state_master: bool,
    /// `preempt` (not `nopreempt`).
    pub preempt: bool,
    /// `preempt_delay`, microseconds.
    pub preempt_delay_us: u64,
    /// `advert_int`, centiseconds.
    pub advert_cs: u16,
    /// `virtual_ipaddress`.
    pub vips: Vec<IpAddr>,
    /// `unicast_src_ip`.
    pub unicast_src: Option<IpAddr>,
    /// `unicast_peer`.
    pub unicast_peers: Vec<IpAddr>,
    /// Its line.
    pub line: u32,
}

/// The kind of probe a checker sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProbeKind {
    /// TCP connect (TCP_CHECK).
    Tcp,
    /// Connect, then a request whose status must be accepted (HTTP_GET,
    /// SSL_GET).
    Http,
    /// A script on the director that asks the server (MISC_CHECK).
    Misc,
}

/// One checker's parameters, keepalived's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    /// What it sends.
    pub kind: ProbeKind,
    /// Where.
    pub target: (IpAddr, u16),
    /// `delay_loop`, microseconds.
    pub delay_loop_us: u64,
    /// `connect_timeout` (or `misc_timeout`), microseconds.
    pub timeout_us: u64,
    /// `retry` / `nb_get_retry`.
    pub retry: u64,
    /// `delay_before_retry`, microseconds.
    pub dbr_us: u64,
    /// `warmup`, microseconds.
    pub warmup_us: u64,
    /// HTTP status codes accepted (empty: any 2xx).
    pub status: Vec<(u16, u16)>,
}

impl CheckSpec {
    /// keepalived.conf(5) defaults where the file is silent: connect_timeout
    /// 5 s, one retry (PR 181: "1 retry after 1 second"), delay_before_retry
    /// 1 s. A MISC_CHECK without misc_timeout or connect_timeout may wait as
    /// long as its delay_loop, so its bound assumes that.
    fn from(
        vs_delay_loop_us: u64,
        rs: &config::RealServer<'_>,
        c: &config::CheckerConf<'_>,
    ) -> Self {
        let us = |d: vrlb_core::time::Duration| d.as_micros();
        let delay_loop_us = c.delay_loop.map_or(vs_delay_loop_us, us);
        let kind = match c.kind {
            // The simulated servers speak no SMTP, UDP, ICMP or DNS (see
            // director.rs): those checks probe them as TCP_CHECK does.
            CheckKind::Tcp
            | CheckKind::Smtp
            | CheckKind::Udp
            | CheckKind::Ping
            | CheckKind::Dns => ProbeKind::Tcp,
            CheckKind::Http | CheckKind::Ssl => ProbeKind::Http,
            CheckKind::Misc => ProbeKind::Misc,
        };
        let timeout_us = match kind {
            ProbeKind::Misc => c
                .misc_timeout
                .or(c.connect_timeout)
                .map_or(delay_loop_us.max(5_000_000), us),
            _ => c.connect_timeout.map_or(5_000_000, us),
        };
        CheckSpec {
            kind,
            target: (
                c.connect_ip.unwrap_or(rs.addr),
                c.connect_port.unwrap_or(rs.port),
            ),
            delay_loop_us,
            timeout_us,
            retry: u64::from(c.retry.unwrap_or(1)),
            dbr_us: c.delay_before_retry.map_or(1_000_000, us),
            warmup_us: c.warmup.map_or(0, us),
            status: c
                .urls
                .iter()
                .flat_map(|u| u.status_codes.iter().copied())
                .collect(),
        }
    }

    /// The longest a correct checker may take to see its server down once
    /// every probe fails: the wait for the next check (delay_loop, or the
    /// warmup before the first), every try timing out with the pauses
    /// between retries, and one more timeout for a probe already in flight
    /// when the server failed (check_api.c: retries only while up).
    pub fn down_bound_us(&self) -> u64 {
        self.delay_loop_us.max(self.warmup_us)
            + (self.retry + 1) * self.timeout_us
            + self.retry * self.dbr_us
            + self.timeout_us
    }

    /// Whether an HTTP answer with `status` passes.
    pub fn accepts(&self, status: u16) -> bool {
        if self.status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.status.iter().any(|(a, b)| (*a..=*b).contains(&status))
        }
    }
}

/// One `real_server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealView {
    /// Address.
    pub addr: IpAddr,
    /// Port (0: the service's).
    pub port: u16,
    /// `weight`.
    pub weight: u32,
    /// Its checkers.
    pub checks: Vec<CheckSpec>,
}

/// One virtual service (a `virtual_server`, or one address of a group's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    /// The VIP.
    pub vip: IpAddr,
    /// The port.
    pub port: u16,
    /// 6 or 17.
    pub protocol: u8,
    /// `persistence_timeout`, seconds (0: none).
    pub persistence_s: u64,
    /// `persistence_granularity` as a prefix length.
    pub granularity: Option<u8>,
    /// `lb_algo`.
    pub scheduler: Scheduler,
    /// `lb_kind`.
    pub kind: ForwardKind,
    /// vrlb's `anycast`.
    pub anycast: bool,
    /// `ha_suspend`.
    pub ha_suspend: bool,
    /// Its real servers.
    pub reals: Vec<RealView>,
    /// Its line.
    pub line: u32,
}

impl ServiceView {
    /// The key persistence remembers a client by: its address masked by
    /// the granularity (IPVS `persistence_granularity`).
    pub fn persistence_key(&self, client: IpAddr) -> IpAddr {
        let Some(len) = self.granularity else {
            return client;
        };
        match client {
            IpAddr::V4(a) => {
                let len = u32::from(len.min(32));
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let len = u32::from(len.min(128));
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }
}

/// What a configuration file asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigView {
    /// Its VRRP instances.
    pub instances: Vec<InstanceView>,
    /// Its virtual services (address-keyed; groups expanded).
    pub services: Vec<ServiceView>,
    /// `virtual_server fwmark N` blocks: (mark, line).
    pub fwmark_services: Vec<(u32, u32)>,
    /// `virtual_server` blocks with SCTP: (line).
    pub sctp_services: Vec<u32>,
    /// `vrrp_script` names (the simulator answers their runs with success).
    pub scripts: Vec<String>,
    /// Virtual servers naming a group that has no such block: (name, line).
    pub missing_groups: Vec<(String, u32)>,
    /// `lvs_timeouts udp N`, seconds (None: IPVS's 300 s).
    pub udp_timeout_s: Option<u32>,
}

#[derive(Default)]
struct Collect {
    view: ConfigView,
    groups: Vec<(String, Vec<GroupEntry>)>,
    pending: Vec<(Option<String>, ServiceView)>,
    current: Vec<usize>,
}

fn protocol(p: Protocol) -> Option<u8> {
    match p {
        Protocol::Tcp => Some(6),
        Protocol::Udp => Some(17),
        Protocol::Sctp => None,
    }
}

impl Sink for Collect {
    fn global_defs(&mut self, g: &config::GlobalDefs<'_>) -> Result<(), config::Kind> {
        let udp = g.lvs_timeouts.udp.as_secs();
        self.view.udp_timeout_s = (udp > 0).then_some(udp as u32);
        Ok(())
    }

    fn vrrp_script(&mut self, s: &config::VrrpScript<'_>) -> Result<(), config::Kind> {
        self.view.scripts.push(s.name.to_string());
        Ok(())
    }

    fn vrrp_instance(&mut self, i: &config::VrrpInstance<'_>) -> Result<(), config::Kind> {
        let v6 = i.native_ipv6 || i.vips.first().is_some_and(|v| v.addr.is_ipv6());
        self.view.instances.push(InstanceView {
            name: i.name.to_string(),
            vrid: i.vrid,
            v6,
            priority: i.priority,
            state_master: i.state == InitialState::Master,
            preempt: i.preempt,
            preempt_delay_us: i.preempt_delay.as_micros(),
            advert_cs: i.advert_interval_cs,
            vips: i.vips.iter().map(|v| v.addr).collect(),
            unicast_src: i.unicast_src_ip,
            unicast_peers: i.unicast_peers.iter().copied().collect(),
            line: i.pos.line,
        });
        Ok(())
    }

    fn virtual_server_group(
        &mut self,
        g: &config::VirtualServerGroup<'_>,
    ) -> Result<(), config::Kind> {
        self.groups
            .push((g.name.to_string(), g.entries.iter().copied().collect()));
        Ok(())
    }

    fn virtual_server(&mut self, vs: &config::VirtualServer<'_>) -> Result<(), config::Kind> {
        self.current.clear();
        let Some(proto) = protocol(vs.protocol) else {
            self.view.sctp_services.push(vs.pos.line);
            return Ok(());
        };
        let base = |vip: IpAddr, port: u16| ServiceView {
            vip,
            port,
            protocol: proto,
            persistence_s: vs.persistence_timeout.map_or(0, |d| d.as_secs()),
            granularity: vs.persistence_granularity,
            scheduler: vs.scheduler,
            kind: vs.kind,
            anycast: vs.anycast,
            ha_suspend: vs.ha_suspend,
            reals: Vec::new(),
            line: vs.pos.line,
        };
        match vs.key {
            VsKey::Addr(vip, port) => {
                self.current.push(self.pending.len());
                self.pending.push((None, base(vip, port)));
            }
            VsKey::Fwmark(mark) => self.view.fwmark_services.push((mark, vs.pos.line)),
            VsKey::Group(name) => {
                self.current.push(self.pending.len());
                let mut s = base(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);
                // The delay loop travels with the checks below.
                s.line = vs.pos.line;
                self.pending.push((Some(name.to_string()), s));
            }
        }
        Ok(())
    }

    fn real_server(
        &mut self,
        vs: &config::VirtualServer<'_>,
        rs: &config::RealServer<'_>,
    ) -> Result<(), config::Kind> {
        let delay_loop = vs.delay_loop.as_micros();
        for &i in &self.current {
            let real = RealView {
                addr: rs.addr,
                port: rs.port,
                weight: rs.weight,
                checks: rs
                    .checkers
                    .iter()
                    .map(|c| CheckSpec::from(delay_loop, rs, c))
                    .collect(),
            };
            self.pending[i].1.reals.push(real);
        }
        Ok(())
    }
}

/// Most addresses one group range expands to here.
const MAX_RANGE: u32 = 16;

/// Reads `text` (named `file` in errors).
pub fn view(file: &str, text: &str) -> Result<ConfigView, String> {
    let mut c = Collect::default();
    config::parse(file, text, &Options::default(), &mut c, &mut NoIncludes)
        .map_err(|e| e.to_string())?;
    let Collect {
        mut view,
        groups,
        pending,
        ..
    } = c;
    for (group, s) in pending {
        let Some(name) = group else {
            view.services.push(s);
            continue;
        };
        let Some((_, entries)) = groups.iter().find(|(n, _)| *n == name) else {
            view.missing_groups.push((name, s.line));
            continue;
        };
        for e in entries {
            match *e {
                GroupEntry::Addr { first, last, port } => {
                    let mut a = first;
                    for _ in 0..MAX_RANGE {
                        let mut one = s.clone();
                        one.vip = a;
                        one.port = port;
                        view.services.push(one);
                        if a == last {
                            break;
                        }
                        a = match a {
                            IpAddr::V4(x) => IpAddr::V4((u32::from(x).wrapping_add(1)).into()),
                            IpAddr::V6(x) => IpAddr::V6((u128::from(x).wrapping_add(1)).into()),
                        };
                    }
                }
                GroupEntry::Fwmark(mark) => view.fwmark_services.push((mark, s.line)),
            }
        }
    }
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_reads_as_its_document_says() {
        let text = include_str!("../../examples/seed/keepalived.conf");
        let v = view("seed", text).unwrap();
        assert_eq!(v.instances.len(), 1);
        let i = &v.instances[0];
        assert_eq!(
            (i.vrid, i.priority, i.advert_cs, i.state_master),
            (51, 100, 500, true)
        );
        assert_eq!(v.services.len(), 1);
        let s = &v.services[0];
        assert_eq!((s.port, s.protocol, s.persistence_s), (80, 6, 60));
        assert_eq!(s.scheduler, Scheduler::Wlc);
        assert_eq!(s.reals.len(), 2);
        let c = &s.reals[0].checks[0];
        assert_eq!(
            (c.delay_loop_us, c.timeout_us, c.retry, c.dbr_us),
            (6_000_000, 10_000_000, 3, 3_000_000)
        );
        // 6 + 4 * 10 + 3 * 3 + 10 (a probe in flight) = 65 s.
        assert_eq!(c.down_bound_us(), 65_000_000);
    }

    #[test]
    fn granularity_masks_the_client() {
        let mut s = view("seed", include_str!("../../examples/seed/keepalived.conf"))
            .unwrap()
            .services
            .remove(0);
        let a: IpAddr = "203.0.113.77".parse().unwrap();
        assert_eq!(s.persistence_key(a), a);
        s.granularity = Some(24);
        assert_eq!(
            s.persistence_key(a),
            "203.0.113.0".parse::<IpAddr>().unwrap()
        );
        s.granularity = Some(120);
        let b: IpAddr = "2001:db8:c::1:77".parse().unwrap();
        assert_eq!(
            s.persistence_key(b),
            "2001:db8:c::1:0".parse::<IpAddr>().unwrap()
        );
    }
}
