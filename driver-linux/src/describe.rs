//! Renders what a keepalived.conf means, block by block, in plain words:
//! the output of `vrlb check`. Owns wording only; the meaning is the core
//! parser's.

use std::fmt::Write;

use vrlb_core::config::{
    self, AuthConf, CheckKind, CheckerConf, ForwardKind, GarpGroupConf, GlobalDefs, InitialState,
    Kind, ParamMatch, Protocol, RealServer, RouteConf, Sink, SyncGroupConf, TrackFileConf,
    TrackProcessConf, VipConf, VirtualServer, VirtualServerGroup, VrrpInstance, VrrpScript, VsKey,
};
use vrlb_core::node::build::vmac;
use vrlb_core::time::Duration;
use vrlb_core::vrrp::Family;

use crate::daemon::routes::RouteInfo;
use crate::daemon::vmacs::mac_text;

/// A sink that writes one paragraph per block.
#[derive(Debug, Default)]
pub struct Describe {
    /// The rendering so far.
    pub text: String,
    /// Warnings, rendered `file:line:col: warning: ...`.
    pub warnings: Vec<String>,
    /// `global_defs`' alert defaults (`smtp_alert*`), to say who mails.
    mail: config::MailDefs<'static>,
    /// Whether `global_defs` names a server and a recipient.
    mailable: bool,
    /// VMAC names, handed out as the build does.
    vmac_names: vmac::Names,
    /// Scripts' and tracked processes' own weights, by name, for the
    /// instances that track them without one.
    default_weights: std::collections::HashMap<String, (i32, bool)>,
}

/// What an enabled alert comes to when `global_defs` cannot send it.
const UNMAILABLE: &str = "smtp_alert is on, but global_defs has no smtp_server or no notification_email: no alert is sent";

fn secs(d: Duration) -> String {
    format!("{d}")
}

fn vip(v: &VipConf<'_>) -> String {
    let mut s = v.addr.to_string();
    let default_len = if v.addr.is_ipv4() { 32 } else { 128 };
    write!(s, "/{}", v.prefix_len.unwrap_or(default_len)).unwrap();
    for (k, val) in [("dev", v.dev), ("label", v.label), ("scope", v.scope)] {
        if let Some(val) = val {
            write!(s, " {k} {val}").unwrap();
        }
    }
    s
}

pub(crate) fn vs_key(key: &VsKey<'_>, protocol: Protocol) -> String {
    let proto = match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    };
    match key {
        VsKey::Addr(addr, port) if addr.is_ipv6() => format!("{proto} [{addr}]:{port}"),
        VsKey::Addr(addr, port) => format!("{proto} {addr}:{port}"),
        VsKey::Fwmark(m) => format!("FWM {m}"),
        VsKey::Group(g) => format!("group {g}"),
    }
}

fn checker(c: &CheckerConf<'_>) -> String {
    let mut s = c.kind.keyword().to_string();
    if let Some(ip) = c.connect_ip {
        write!(s, " to {ip}").unwrap();
    }
    // An echo has no port (the parser warned of one).
    if let Some(p) = c.connect_port.filter(|_| c.kind != CheckKind::Ping) {
        write!(s, " port {p}").unwrap();
    }
    for u in &c.urls {
        write!(s, " GET {}", u.path).unwrap();
        if let Some(d) = u.digest {
            write!(s, " digest {d}").unwrap();
        }
        for (lo, hi) in &u.status_codes {
            if lo == hi {
                write!(s, " status {lo}").unwrap();
            } else {
                write!(s, " status {lo}-{hi}").unwrap();
            }
        }
    }
    if c.kind == CheckKind::Smtp {
        let helo = c.helo_name.unwrap_or(config::DEFAULT_HELO_NAME);
        write!(s, " HELO {helo}").unwrap();
    }
    match c.kind {
        CheckKind::Udp if c.udp.payload.is_empty() => s.push_str(" sends random bytes"),
        CheckKind::Udp => write!(s, " sends {} bytes", c.udp.payload.len()).unwrap(),
        CheckKind::Ping => s.push_str(" ICMP echo"),
        CheckKind::Dns => {
            let name = c.dns_name.unwrap_or(config::DEFAULT_DNS_NAME);
            write!(s, " {} {name}", c.dns_type.name()).unwrap();
        }
        _ => {}
    }
    if c.kind == CheckKind::Udp {
        let u = &c.udp;
        match u.require_reply {
            false => s.push_str(", up unless an ICMP error comes back"),
            true => write!(
                s,
                ", needs a reply of {}..{} bytes",
                u.min_reply_len, u.max_reply_len
            )
            .unwrap(),
        }
        if !u.reply.is_empty() {
            write!(s, " starting with {} given bytes", u.reply.len()).unwrap();
        }
    }
    if let Some(p) = c.misc_path {
        write!(s, " runs {p:?}").unwrap();
        if c.misc_dynamic {
            s.push_str(" (exit code sets the weight)");
        }
    }
    write!(
        s,
        "; timeout {}, retry {}, {} between retries",
        secs(c.connect_timeout.unwrap_or(Duration::from_secs(5))),
        c.retry.unwrap_or(match c.kind {
            CheckKind::Misc => 0,
            CheckKind::Dns => 3,
            _ => 1,
        }),
        match (c.delay_before_retry, c.kind) {
            (Some(d), _) => secs(d),
            // keepalived check_dns.c: the delay_loop.
            (None, CheckKind::Dns) => "delay_loop".to_string(),
            (None, CheckKind::Http | CheckKind::Ssl) => secs(Duration::from_secs(3)),
            (None, _) => secs(Duration::from_secs(1)),
        }
    )
    .unwrap();
    if let Some(d) = c.delay_loop {
        write!(s, ", every {}", secs(d)).unwrap();
    }
    s
}

impl Sink for Describe {
    fn global_defs(&mut self, g: &GlobalDefs<'_>) -> Result<(), Kind> {
        writeln!(self.text, "global_defs (line {}):", g.pos.line).unwrap();
        if let Some(id) = g.router_id {
            writeln!(self.text, "  router_id {id}").unwrap();
        }
        if let Some(v) = g.vrrp_version {
            writeln!(self.text, "  VRRP version {v} by default").unwrap();
        }
        for (what, interval) in [
            ("gratuitous ARPs", g.garp_interval),
            ("unsolicited NAs", g.gna_interval),
        ] {
            if let Some(d) = interval {
                writeln!(
                    self.text,
                    "  {what} on an interface at least {} apart",
                    secs(d)
                )
                .unwrap();
            }
        }
        if let (Some(i), Some(inst)) = (g.lvs_sync_daemon_interface, g.lvs_sync_daemon_instance) {
            writeln!(self.text, "  connection sync on {i}, following {inst}").unwrap();
        }
        let m = &g.mail;
        if let Some(server) = m.server {
            writeln!(
                self.text,
                "  e-mail alerts to {} address(es) through {server}:{}: {}",
                m.to.len(),
                m.port.unwrap_or(25),
                match (m.vrrp_alerts(None), m.checker_alerts(None, None)) {
                    (true, true) => "from every instance and real server whose smtp_alert is not off",
                    (true, false) => "from every instance whose smtp_alert is not off, and real servers whose smtp_alert is on",
                    (false, true) => "from every real server whose smtp_alert is not off, and instances whose smtp_alert is on",
                    (false, false) => "only from instances and real servers whose smtp_alert is on (none by default, as in keepalived)",
                }
            )
            .unwrap();
        }
        self.mailable = m.server.is_some() && !m.to.is_empty();
        self.mail = m.switches();
        Ok(())
    }

    fn static_routes(&mut self, routes: &[RouteConf<'_>]) -> Result<(), Kind> {
        let line = routes.first().map_or(0, |r| r.pos.line);
        writeln!(
            self.text,
            "static_routes (line {line}): held from start to stop"
        )
        .unwrap();
        for r in routes {
            writeln!(self.text, "  route {}", RouteInfo::from(r)).unwrap();
        }
        Ok(())
    }

    fn garp_group(&mut self, g: &GarpGroupConf<'_>) -> Result<(), Kind> {
        writeln!(
            self.text,
            "garp_group (line {}): {} share one turn",
            g.pos.line,
            g.interfaces.join(", ")
        )
        .unwrap();
        for (what, interval) in [
            ("gratuitous ARPs", g.garp_interval),
            ("unsolicited NAs", g.gna_interval),
        ] {
            match interval {
                Some(d) => writeln!(self.text, "  {what} at least {} apart", secs(d)),
                None => writeln!(self.text, "  {what} back to back"),
            }
            .unwrap();
        }
        Ok(())
    }

    fn vrrp_script(&mut self, s: &VrrpScript<'_>) -> Result<(), Kind> {
        self.default_weights
            .insert(s.name.to_string(), (s.weight, s.reverse));
        writeln!(
            self.text,
            "vrrp_script {} (line {}): runs {:?} every {}, timeout {}, up after {} success(es), down after {} failure(s), weight {}",
            s.name,
            s.pos.line,
            s.script,
            secs(s.interval),
            secs(s.timeout.unwrap_or(s.interval)),
            s.rise,
            s.fall,
            s.weight
        )
        .unwrap();
        Ok(())
    }

    fn vrrp_track_process(&mut self, p: &TrackProcessConf<'_>) -> Result<(), Kind> {
        self.default_weights
            .insert(p.name.to_string(), (p.weight, p.reverse));
        let what = if p.full_command {
            let mut line = vec![p.process];
            line.extend(p.params.iter().copied());
            let how = match p.param_match {
                ParamMatch::Ignore => ", any parameters",
                ParamMatch::Exact => "",
                ParamMatch::Partial => ", more parameters allowed",
                ParamMatch::Initial => ", the last one a prefix, more allowed",
            };
            format!("command line {:?}{how}", line.join(" "))
        } else {
            format!("process name {:?}", p.process)
        };
        let most = match p.quorum_max {
            u32::MAX => String::new(),
            max => format!(" and at most {max}"),
        };
        writeln!(
            self.text,
            "vrrp_track_process {} (line {}): counts processes by {what}; up with at least {}{most} running, after {} (down after {}), weight {}",
            p.name,
            p.pos.line,
            p.quorum,
            secs(p.fork_delay),
            secs(p.terminate_delay),
            p.weight
        )
        .unwrap();
        Ok(())
    }

    fn track_file(&mut self, f: &TrackFileConf<'_>) -> Result<(), Kind> {
        write!(
            self.text,
            "track_file {} (line {}): reads {:?} when it changes, {}",
            f.name,
            f.pos.line,
            f.path,
            file_weight(f.weight, f.reverse)
        )
        .unwrap();
        if let Some(init) = f.init {
            let when = if init.overwrite {
                "at start"
            } else {
                "at start if missing"
            };
            write!(self.text, "; writes {} {when}", init.value).unwrap();
        }
        self.text.push('\n');
        Ok(())
    }

    fn vrrp_instance(&mut self, i: &VrrpInstance<'_>) -> Result<(), Kind> {
        // keepalived moves an IPv6 instance to VRRPv3 by itself.
        let version = i.version.unwrap_or(if i.is_ipv6() { 3 } else { 2 });
        write!(
            self.text,
            "vrrp_instance {} (line {}): VRID {} on {}, VRRPv{version}, priority {}, advert every {}",
            i.name,
            i.pos.line,
            i.vrid,
            i.interface.unwrap_or("(no interface)"),
            i.priority,
            secs(Duration::from_centis(u64::from(i.advert_interval_cs)))
        )
        .unwrap();
        if i.state == InitialState::Master {
            self.text.push_str(", starts claiming MASTER");
        }
        self.text.push_str(if i.preempt {
            ", preempt"
        } else {
            ", nopreempt"
        });
        if i.preempt_delay > Duration::ZERO {
            write!(self.text, " after {}", secs(i.preempt_delay)).unwrap();
        }
        match i.auth {
            Some(AuthConf::Pass(_)) => self.text.push_str(", PASS authentication"),
            Some(AuthConf::Ah) => self
                .text
                .push_str(", AH authentication (not supported: sent without)"),
            None => {}
        }
        self.text.push('\n');
        if let Some(v) = &i.use_vmac {
            let family = if i.is_ipv6() { Family::V6 } else { Family::V4 };
            let name = self.vmac_names.pick(v, i.vrid, family);
            writeln!(
                self.text,
                "  VMAC {} with MAC {} on {} (made by vrlb), carrying its VIPs without a dev{}",
                name.as_deref().unwrap_or("(no free default name)"),
                mac_text(v.mac(i.vrid, family == Family::V6)),
                i.interface.unwrap_or("(no interface)"),
                if i.vmac_xmit_base {
                    "; adverts on the base interface"
                } else {
                    " and its adverts"
                }
            )
            .unwrap();
        }
        for v in &i.vips {
            writeln!(self.text, "  VIP {}", vip(v)).unwrap();
        }
        for v in &i.excluded_vips {
            writeln!(self.text, "  VIP {} (not advertised)", vip(v)).unwrap();
        }
        for r in &i.virtual_routes {
            writeln!(self.text, "  route {} (while master)", RouteInfo::from(r)).unwrap();
        }
        if !i.unicast_peers.is_empty() {
            let peers: Vec<String> = i.unicast_peers.iter().map(|p| p.to_string()).collect();
            writeln!(self.text, "  unicast to {}", peers.join(", ")).unwrap();
        }
        for t in i
            .track_interfaces
            .iter()
            .chain(&i.track_scripts)
            .chain(&i.track_processes)
        {
            let (own_weight, own_reverse) = self
                .default_weights
                .get(t.name)
                .copied()
                .unwrap_or((0, false));
            let weight = t.weight.unwrap_or(own_weight);
            let how = match (weight, t.reverse.unwrap_or(own_reverse)) {
                (0, false) => "down means FAULT".to_string(),
                (0, true) => "weight 0 reverse: up means FAULT".to_string(),
                (w, false) => format!("weight {w:+}"),
                (w, true) => format!("weight {w:+} reverse"),
            };
            writeln!(self.text, "  tracks {} ({how})", t.name).unwrap();
        }
        for t in &i.track_files {
            let how = match (t.weight, t.reverse) {
                (None, None) => "the track_file's weight".to_string(),
                (Some(w), r) => file_weight(w, r.unwrap_or(false)),
                (None, Some(r)) => format!(
                    "the track_file's weight{}",
                    if r { ", reversed" } else { ", not reversed" }
                ),
            };
            writeln!(self.text, "  tracks file {} ({how})", t.name).unwrap();
        }
        for (what, script) in [
            ("master", i.notify.master),
            ("backup", i.notify.backup),
            ("fault", i.notify.fault),
            ("stop", i.notify.stop),
            ("any change", i.notify.any),
        ] {
            if let Some(s) = script {
                writeln!(self.text, "  on {what}: runs {s:?}").unwrap();
            }
        }
        if self.mail.vrrp_alerts(i.smtp_alert) {
            let what = if self.mailable {
                "mails an alert on each change of state"
            } else {
                UNMAILABLE
            };
            writeln!(self.text, "  {what}").unwrap();
        }
        Ok(())
    }

    fn vrrp_sync_group(&mut self, g: &SyncGroupConf<'_>) -> Result<(), Kind> {
        writeln!(
            self.text,
            "vrrp_sync_group {} (line {}): {} move together",
            g.name,
            g.pos.line,
            g.members
                .iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
        .unwrap();
        Ok(())
    }

    fn virtual_server_group(&mut self, g: &VirtualServerGroup<'_>) -> Result<(), Kind> {
        writeln!(
            self.text,
            "virtual_server_group {} (line {}): {} entries",
            g.name,
            g.pos.line,
            g.entries.len()
        )
        .unwrap();
        Ok(())
    }

    fn virtual_server(&mut self, vs: &VirtualServer<'_>) -> Result<(), Kind> {
        let kind = forward_kind(vs.kind);
        write!(
            self.text,
            "virtual_server {} (line {}): {}, {kind}, checks every {}",
            vs_key(&vs.key, vs.protocol),
            vs.pos.line,
            vs.scheduler.name(),
            secs(vs.delay_loop)
        )
        .unwrap();
        if let Some(p) = vs.persistence_timeout {
            write!(self.text, ", persistence {}", secs(p)).unwrap();
            if let Some(g) = vs.persistence_granularity {
                write!(self.text, " per /{g}").unwrap();
            }
        }
        if vs.quorum > 1 {
            write!(
                self.text,
                ", quorum {} (hysteresis {})",
                vs.quorum, vs.hysteresis
            )
            .unwrap();
        }
        if let Some((a, p)) = vs.sorry_server {
            write!(self.text, ", sorry server {a}:{p}").unwrap();
            if let Some(k) = vs.sorry_server_kind.filter(|k| *k != vs.kind) {
                write!(self.text, " by {}", forward_kind(k)).unwrap();
            }
        }
        if vs.ha_suspend {
            self.text.push_str(", checks only while holding the VIP");
        }
        if vs.anycast {
            self.text.push_str(", anycast");
        }
        if self.mail.checker_alerts(vs.smtp_alert, None) {
            self.text.push_str(", ");
            self.text.push_str(if self.mailable {
                "mails an alert on gaining or losing quorum"
            } else {
                UNMAILABLE
            });
        }
        writeln!(self.text, ", {} real server(s)", vs.real_servers).unwrap();
        Ok(())
    }

    fn real_server(&mut self, vs: &VirtualServer<'_>, rs: &RealServer<'_>) -> Result<(), Kind> {
        write!(
            self.text,
            "  real_server {}:{} weight {}",
            rs.addr, rs.port, rs.weight
        )
        .unwrap();
        if rs.inhibit_on_failure {
            self.text.push_str(", weight 0 on failure");
        }
        if self.mail.checker_alerts(rs.smtp_alert, vs.smtp_alert) {
            self.text.push_str(", ");
            self.text.push_str(if self.mailable {
                "mails an alert on going up or down"
            } else {
                UNMAILABLE
            });
        }
        self.text.push('\n');
        for c in &rs.checkers {
            writeln!(self.text, "    {}", checker(c)).unwrap();
        }
        for f in &rs.file_checks {
            let how = match f.weight {
                Some(w) => file_weight(w, f.reverse.unwrap_or(false)),
                None => "the track_file's weight".to_string(),
            };
            writeln!(
                self.text,
                "    FILE_CHECK: track_file {}, its value times the weight added to the server's weight ({how})",
                f.name
            )
            .unwrap();
        }
        if rs.checkers.is_empty() && rs.file_checks.is_empty() {
            writeln!(self.text, "    no checker: always considered up").unwrap();
        }
        Ok(())
    }

    fn diagnostic(&mut self, d: &config::Diagnostic) {
        self.warnings.push(d.to_string());
    }
}

/// `lb_kind` as `vrlb check` shows it.
/// What a tracked file's value does with `weight` (keepalived.conf(5)
/// "Track files").
fn file_weight(weight: i32, reverse: bool) -> String {
    match (weight, reverse) {
        (0, false) => "weight 0: a non-zero value means FAULT".to_string(),
        (0, true) => "weight 0 reverse: a zero value means FAULT".to_string(),
        (w, false) => format!("value times {w}"),
        (w, true) => format!("value times {}", -i64::from(w)),
    }
}

fn forward_kind(kind: ForwardKind) -> &'static str {
    match kind {
        ForwardKind::Dr => "DR",
        ForwardKind::Nat => "NAT (vrlb forwards DR only)",
        ForwardKind::Tun => "TUN (vrlb forwards DR only)",
    }
}
