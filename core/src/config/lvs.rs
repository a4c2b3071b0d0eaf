//! Reads `virtual_server_group`, `virtual_server` and `real_server` (the
//! checker blocks inside are `checker.rs`'s).
//!
//! A virtual server is read twice: first its own settings (which may come
//! after its real servers in the file), then each real server, so the sink
//! always sees a real server together with its complete virtual server and
//! nothing has to be collected in memory.

use core::net::IpAddr;

use heapless::Vec;

use super::diag::{Kind, Snippet};
use super::global::MAX_TIMER_US;
use super::keywords::Block;
use super::model::{
    CheckerDefaults, ForwardKind, GroupEntry, Protocol, RealServer, SchedFlags, Scheduler,
    VirtualServer, VirtualServerGroup, VsKey,
};
use super::parser::{Parser, Res, Stmt};
use super::value;
use super::vrrp::UpperFixed;
use crate::time::Duration;

const SCHEDULERS: &str = "rr, wrr, lc, wlc, sed, nq, sh, dh, mh, fo, ovf";

impl<'t> Parser<'t, '_> {
    pub(super) fn virtual_server_group(&mut self, head: &Stmt<'t>) -> Res<()> {
        let name = self.arg(head, 0, "a group name")?.text;
        self.require_block(head)?;
        let mut g = VirtualServerGroup {
            name,
            entries: Vec::new(),
            pos: head.pos(),
        };
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            self.no_block(&stmt)?;
            let entry = if stmt.keyword() == "fwmark" {
                let tok = self.arg(&stmt, 0, "a firewall mark")?;
                self.extra_args(&stmt, 1);
                GroupEntry::Fwmark(self.number_token(
                    &stmt,
                    &tok,
                    1,
                    u64::from(u32::MAX),
                    "1..4294967295",
                )? as u32)
            } else {
                let (first, last) = self.address_range(&stmt)?;
                let port_tok = self.arg(&stmt, 0, "a port")?;
                let port = self.number_token(&stmt, &port_tok, 0, 65535, "0..65535")? as u16;
                self.extra_args(&stmt, 1);
                GroupEntry::Addr { first, last, port }
            };
            self.push(
                &mut g.entries,
                entry,
                &stmt.kw,
                "virtual_server_group entries",
            )?;
        }
        let result = self.sink.virtual_server_group(&g);
        self.summary.items += 1;
        self.sink_result(g.pos, result)
    }

    /// `A.B.C.D` or `A.B.C.D-E` (a range in the last byte; the last group
    /// for IPv6), as keepalived's virtual_server_group.
    fn address_range(&self, stmt: &Stmt<'t>) -> Res<(IpAddr, IpAddr)> {
        let text = stmt.keyword();
        let bad = || self.expected(&stmt.kw, "an address or range (192.0.2.1-10)");
        let (addr, end) = match text.rsplit_once('-') {
            Some((a, e)) => (a, Some(e)),
            None => (text, None),
        };
        let first = value::ip(addr).ok_or_else(bad)?;
        let last = match (first, end) {
            (_, None) => first,
            (IpAddr::V4(a), Some(e)) => {
                let e = value::uint(e).filter(|e| *e <= 255).ok_or_else(bad)? as u8;
                let mut o = a.octets();
                if e < o[3] {
                    return Err(bad());
                }
                o[3] = e;
                IpAddr::from(o)
            }
            (IpAddr::V6(a), Some(e)) => {
                let e = u16::from_str_radix(e, 16).map_err(|_| bad())?;
                let mut s = a.segments();
                if e < s[7] {
                    return Err(bad());
                }
                s[7] = e;
                IpAddr::from(s)
            }
        };
        Ok((first, last))
    }

    pub(super) fn virtual_server(&mut self, head: &Stmt<'t>) -> Res<()> {
        let key = self.vs_key(head)?;
        self.require_block(head)?;
        let mut vs = VirtualServer {
            key,
            delay_loop: Duration::from_secs(60),
            scheduler: Scheduler::Wlc,
            sched_flags: SchedFlags::default(),
            kind: ForwardKind::Nat,
            persistence_timeout: None,
            persistence_granularity: None,
            protocol: Protocol::Tcp,
            sorry_server: None,
            sorry_server_inhibit: false,
            sorry_server_kind: None,
            quorum: 1,
            hysteresis: 0,
            quorum_up: None,
            quorum_down: None,
            alpha: false,
            omega: false,
            ha_suspend: false,
            inhibit_on_failure: false,
            virtualhost: None,
            ops: false,
            checker_defaults: CheckerDefaults::default(),
            anycast: false,
            real_servers: 0,
            smtp_alert: None,
            pos: head.pos(),
        };
        let body = self.lx.mark();
        let mut saw_kind = false;
        let mut saw_protocol = false;
        let mut anycast_at = None;
        // Pass 1: the virtual server's own settings.
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            match stmt.keyword() {
                "real_server" => {
                    vs.real_servers += 1;
                    self.skip_stmt_block(&stmt)?;
                }
                "delay_loop" => {
                    vs.delay_loop = self.seconds(&stmt, 1, MAX_TIMER_US, "more than 0 s")?
                }
                "lb_algo" | "lvs_sched" => vs.scheduler = self.scheduler(&stmt)?,
                "lb_kind" | "lvs_method" => {
                    saw_kind = true;
                    vs.kind = self.forward_kind(&stmt)?;
                }
                "persistence_timeout" => {
                    let tok = self.single(&stmt, "a number of seconds")?;
                    let secs = self.number_token(&stmt, &tok, 0, 2_678_400, "0..2678400 s")?;
                    if secs == 0 {
                        // keepalived 2.x refuses 0; older configs meant "off".
                        self.warn_at(
                            &tok,
                            Kind::Assumed {
                                keyword: Snippet::new("persistence_timeout"),
                                note: "0 means no persistence (keepalived 2 refuses 0; leave the keyword out)",
                            },
                        );
                        vs.persistence_timeout = None;
                    } else {
                        vs.persistence_timeout = Some(Duration::from_secs(secs));
                    }
                }
                "persistence_granularity" => {
                    let tok = self.single(&stmt, "a netmask or prefix length")?;
                    vs.persistence_granularity = Some(self.granularity(&tok)?);
                }
                "protocol" => {
                    saw_protocol = true;
                    let tok = self.single(&stmt, "TCP, UDP or SCTP")?;
                    vs.protocol = match tok.text.to_ascii_uppercase_fixed().as_str() {
                        "TCP" => Protocol::Tcp,
                        "UDP" => Protocol::Udp,
                        "SCTP" => Protocol::Sctp,
                        _ => {
                            return Err(self.error_at(
                                &tok,
                                Kind::UnknownValue {
                                    keyword: Snippet::new("protocol"),
                                    value: Snippet::new(tok.text),
                                    expected: "TCP, UDP, SCTP",
                                },
                            ));
                        }
                    };
                }
                "sorry_server" => {
                    self.no_block(&stmt)?;
                    let a = self.arg(&stmt, 0, "an address")?;
                    let addr = self.address(&a)?;
                    let port = match stmt.args.get(1) {
                        Some(p) => self.number_token(&stmt, p, 0, 65535, "0..65535")? as u16,
                        None => 0,
                    };
                    self.extra_args(&stmt, 2);
                    vs.sorry_server = Some((addr, port));
                }
                "sorry_server_inhibit" => vs.sorry_server_inhibit = self.flag(&stmt)?,
                "sorry_server_lvs_method" => {
                    let kind = self.forward_kind(&stmt)?;
                    if vs.sorry_server.is_some() {
                        vs.sorry_server_kind = Some(kind);
                    } else {
                        // keepalived too ignores it (check_parser.c
                        // ss_forwarding_handler).
                        self.warn_at(
                            &stmt.kw,
                            Kind::Assumed {
                                keyword: Snippet::new("sorry_server_lvs_method"),
                                note: "ignored: no sorry_server before it",
                            },
                        );
                    }
                }
                "quorum" => {
                    vs.quorum = self.number(&stmt, 1, u64::from(u32::MAX), "1..4294967295")? as u32
                }
                "hysteresis" => {
                    vs.hysteresis =
                        self.number(&stmt, 0, u64::from(u32::MAX), "0..4294967295")? as u32
                }
                "quorum_up" => vs.quorum_up = Some(self.script(&stmt)?),
                "quorum_down" => vs.quorum_down = Some(self.script(&stmt)?),
                "alpha" => vs.alpha = self.flag(&stmt)?,
                "smtp_alert" => vs.smtp_alert = Some(self.flag(&stmt)?),
                "omega" => vs.omega = self.flag(&stmt)?,
                "ha_suspend" => vs.ha_suspend = self.flag(&stmt)?,
                "inhibit_on_failure" => vs.inhibit_on_failure = self.flag(&stmt)?,
                "virtualhost" => vs.virtualhost = Some(self.single(&stmt, "a host name")?.text),
                "ops" => vs.ops = self.flag(&stmt)?,
                "anycast" => {
                    vs.anycast = self.flag(&stmt)?;
                    anycast_at = vs.anycast.then_some(stmt.kw);
                }
                "connect_timeout" | "retry" | "nb_get_retry" | "delay_before_retry" | "warmup" => {
                    self.checker_default(&mut vs.checker_defaults, &stmt)?;
                }
                "sh-port" | "mh-port" => {
                    self.no_block(&stmt)?;
                    vs.sched_flags.port = true;
                }
                "sh-fallback" | "mh-fallback" => {
                    self.no_block(&stmt)?;
                    vs.sched_flags.fallback = true;
                }
                _ => self.unknown(Block::VirtualServer, &stmt)?,
            }
        }
        if let Some(at) = anycast_at {
            self.check_anycast(&mut vs, &at);
        }
        if !saw_protocol && !matches!(vs.key, VsKey::Fwmark(_)) {
            // keepalived sets what the kernel would take for protocol 0
            // (check_parser.c vs_end_handler).
            vs.protocol = Protocol::Udp;
            self.warn(
                vs.pos.line,
                vs.pos.col,
                Kind::Assumed {
                    keyword: Snippet::new("protocol"),
                    note: "not set: UDP assumed, as keepalived does (write `protocol TCP` for TCP)",
                },
            );
        }
        if !saw_kind {
            self.warn(
                vs.pos.line,
                vs.pos.col,
                Kind::Assumed {
                    keyword: Snippet::new("lb_kind"),
                    note: "not set: NAT assumed, as keepalived does",
                },
            );
        }
        let result = self.sink.virtual_server(&vs);
        self.summary.items += 1;
        self.sink_result(vs.pos, result)?;

        // Pass 2: each real server, with the settings complete.
        self.lx.reset(body);
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            if stmt.keyword() == "real_server" {
                self.real_server(&vs, &stmt)?;
            } else {
                self.skip_stmt_block(&stmt)?;
            }
        }
        Ok(())
    }

    /// `anycast` (at `at`) needs a VIP to announce, and `mh` for the
    /// directors to agree (docs/anycast.md): warns where either is missing.
    fn check_anycast(&mut self, vs: &mut VirtualServer<'t>, at: &super::lexer::Token<'t>) {
        if matches!(vs.key, VsKey::Fwmark(_)) {
            self.warn_at(
                at,
                Kind::Assumed {
                    keyword: Snippet::new("anycast"),
                    note: "a fwmark service has no VIP to announce: ignored \
                           (announce each address with its own virtual_server)",
                },
            );
            vs.anycast = false;
        } else if vs.scheduler != Scheduler::Mh {
            self.warn_at(
                at,
                Kind::Assumed {
                    keyword: Snippet::new("anycast"),
                    note: "lb_algo is not mh: directors would not agree on the real server \
                           of a flow, so one the router moves to another director is dropped \
                           (only mh picks the same server everywhere and adopts moved flows)",
                },
            );
        }
    }

    fn vs_key(&mut self, head: &Stmt<'t>) -> Res<VsKey<'t>> {
        let first = self.arg(head, 0, "an address, 'fwmark N' or 'group NAME'")?;
        match first.text {
            "fwmark" => {
                let tok = self.arg(head, 1, "a firewall mark")?;
                self.extra_args(head, 2);
                Ok(VsKey::Fwmark(self.number_token(
                    head,
                    &tok,
                    1,
                    u64::from(u32::MAX),
                    "1..4294967295",
                )? as u32))
            }
            "group" => {
                let tok = self.arg(head, 1, "a virtual_server_group name")?;
                self.extra_args(head, 2);
                Ok(VsKey::Group(tok.text))
            }
            _ => {
                let addr = self.address(&first)?;
                let port = self.port_or_zero(head, 1)?;
                self.extra_args(head, 2);
                Ok(VsKey::Addr(addr, port))
            }
        }
    }

    /// The port at argument `i`; missing means 0 (all ports), with a warning.
    fn port_or_zero(&mut self, stmt: &Stmt<'t>, i: usize) -> Res<u16> {
        match stmt.args.get(i) {
            Some(tok) => Ok(self.number_token(stmt, tok, 0, 65535, "0..65535")? as u16),
            None => {
                let at = stmt.args.last().unwrap_or(&stmt.kw);
                self.warn_at(
                    &at.clone(),
                    Kind::Assumed {
                        keyword: Snippet::new(stmt.keyword()),
                        note: "no port given: port 0 (every port) assumed",
                    },
                );
                Ok(0)
            }
        }
    }

    fn scheduler(&mut self, stmt: &Stmt<'t>) -> Res<Scheduler> {
        let tok = self.single(stmt, "a scheduler")?;
        if let Some(s) = Scheduler::from_name(tok.text) {
            return Ok(s);
        }
        if matches!(tok.text, "lblc" | "lblcr") {
            // Locality-based schedulers exist for cache clusters; their
            // decisions reduce to wlc when the tables are cold.
            self.warn_at(
                &tok,
                Kind::Assumed {
                    keyword: Snippet::new(tok.text),
                    note: "locality-based scheduling is not implemented: wlc is used",
                },
            );
            return Ok(Scheduler::Wlc);
        }
        Err(self.error_at(
            &tok,
            Kind::UnknownValue {
                keyword: Snippet::new(stmt.keyword()),
                value: Snippet::new(tok.text),
                expected: SCHEDULERS,
            },
        ))
    }

    /// A netmask (`255.255.255.0`) or prefix length (`24`, IPv6 too).
    fn granularity(&self, tok: &super::lexer::Token<'t>) -> Res<u8> {
        if let Some(n) = value::uint(tok.text).filter(|n| *n <= 128) {
            return Ok(n as u8);
        }
        match value::ip(tok.text) {
            Some(IpAddr::V4(mask)) => {
                let bits = u32::from(mask);
                let len = bits.leading_ones();
                if bits.checked_shl(len).unwrap_or(0) == 0 {
                    return Ok(len as u8);
                }
                Err(self.expected(tok, "a contiguous netmask"))
            }
            _ => Err(self.expected(tok, "a netmask or prefix length")),
        }
    }

    /// `lb_kind` / `lvs_method`: DR, NAT or TUN.
    fn forward_kind(&mut self, stmt: &Stmt<'t>) -> Res<ForwardKind> {
        let tok = self.single(stmt, "DR, NAT or TUN")?;
        let kind = match tok.text.to_ascii_uppercase_fixed().as_str() {
            "DR" => ForwardKind::Dr,
            "NAT" => ForwardKind::Nat,
            "TUN" => ForwardKind::Tun,
            _ => {
                return Err(self.error_at(
                    &tok,
                    Kind::UnknownValue {
                        keyword: Snippet::new(stmt.keyword()),
                        value: Snippet::new(tok.text),
                        expected: "DR, NAT, TUN",
                    },
                ));
            }
        };
        if tok.text.bytes().any(|b| b.is_ascii_lowercase()) {
            // check_parser.c compares with strcmp: `dr` is an unknown
            // method there and is ignored (a virtual server then falls
            // back to NAT, a real server to its virtual server's).
            self.warn_at(
                &tok,
                Kind::Assumed {
                    keyword: Snippet::new(stmt.keyword()),
                    note: "taken as if written in capitals; keepalived 2 knows only DR, \
                           NAT and TUN and would ignore it",
                },
            );
        }
        Ok(kind)
    }

    /// A checker setting given for a whole real or virtual server.
    fn checker_default(&mut self, d: &mut CheckerDefaults, stmt: &Stmt<'t>) -> Res<()> {
        match stmt.keyword() {
            "connect_timeout" => {
                d.connect_timeout = Some(self.seconds(stmt, 1, MAX_TIMER_US, "more than 0 s")?)
            }
            "retry" | "nb_get_retry" => {
                if stmt.keyword() == "nb_get_retry" {
                    self.warn_at(
                        &stmt.kw,
                        Kind::Deprecated {
                            keyword: Snippet::new("nb_get_retry"),
                            instead: "retry",
                        },
                    );
                }
                d.retry = Some(self.number(stmt, 0, u64::from(u32::MAX), "0 or more")? as u32);
            }
            "delay_before_retry" => {
                d.delay_before_retry =
                    Some(self.seconds(stmt, 0, MAX_TIMER_US, "0 or more seconds")?)
            }
            "delay_loop" => {
                d.delay_loop = Some(self.seconds(stmt, 1, MAX_TIMER_US, "more than 0 s")?)
            }
            _ => d.warmup = Some(self.seconds(stmt, 0, MAX_TIMER_US, "0 or more seconds")?),
        }
        Ok(())
    }

    fn real_server(&mut self, vs: &VirtualServer<'t>, head: &Stmt<'t>) -> Res<()> {
        let addr_tok = self.arg(head, 0, "an address")?;
        let addr = self.address(&addr_tok)?;
        // Port-less real servers are normal for fwmark services.
        let port = match (head.args.get(1), vs.key) {
            (None, VsKey::Fwmark(_)) => 0,
            _ => self.port_or_zero(head, 1)?,
        };
        self.extra_args(head, 2);
        let mut rs = RealServer {
            addr,
            port,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
            kind: vs.kind,
            inhibit_on_failure: vs.inhibit_on_failure,
            notify_up: None,
            notify_down: None,
            checkers: Vec::new(),
            file_checks: Vec::new(),
            smtp_alert: None,
            pos: head.pos(),
        };
        let mut defaults = CheckerDefaults::default();
        if head.block {
            while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
                match stmt.keyword() {
                    "connect_timeout" | "retry" | "nb_get_retry" | "delay_before_retry"
                    | "delay_loop" | "warmup" => {
                        self.checker_default(&mut defaults, &stmt)?;
                    }
                    "weight" => rs.weight = self.number(&stmt, 0, 65535, "0..65535")? as u32,
                    "uthreshold" => {
                        rs.upper_threshold =
                            self.number(&stmt, 0, u64::from(u32::MAX), "0 or more")? as u32
                    }
                    "lthreshold" => {
                        rs.lower_threshold =
                            self.number(&stmt, 0, u64::from(u32::MAX), "0 or more")? as u32
                    }
                    // keepalived's per-server override of the virtual
                    // server's lb_kind (check_parser.c rs_forwarding_handler).
                    "lvs_method" => rs.kind = self.forward_kind(&stmt)?,
                    "inhibit_on_failure" => rs.inhibit_on_failure = self.flag(&stmt)?,
                    "notify_up" => rs.notify_up = Some(self.script(&stmt)?),
                    "notify_down" => rs.notify_down = Some(self.script(&stmt)?),
                    "smtp_alert" => rs.smtp_alert = Some(self.flag(&stmt)?),
                    "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "SMTP_CHECK"
                    | "UDP_CHECK" | "PING_CHECK" | "DNS_CHECK" => {
                        self.checker(&stmt, &mut rs.checkers)?
                    }
                    "FILE_CHECK" => self.file_check(&stmt, &mut rs.file_checks)?,
                    _ => self.unknown(Block::RealServer, &stmt)?,
                }
            }
        }
        for c in rs.checkers.iter_mut() {
            defaults.apply_to(c);
            vs.checker_defaults.apply_to(c);
        }
        let result = self.sink.real_server(vs, &rs);
        self.summary.items += 1;
        self.sink_result(rs.pos, result)
    }
}
