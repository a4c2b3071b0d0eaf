//! Reads `global_defs`.

use super::diag::{Kind, Snippet};
use super::keywords::Block;
use super::model::{GlobalDefs, LvsTimeouts};
use super::parser::{Parser, Res, Stmt};
use super::value;
use crate::time::Duration;

/// keepalived's largest `lvs_timeouts` value, 31 days (global_parser.c
/// `LVS_MAX_TIMEOUT`).
pub(crate) const LVS_MAX_TIMEOUT_S: u64 = 86_400 * 31;

/// keepalived's largest timer value, 2^32 - 1 microseconds written as seconds.
pub(super) const MAX_TIMER_US: u64 = 4_294_967_295_000_000;

/// What an e-mail address must be: it goes into a mail header as written.
const MAIL_ADDRESS: &str = "an e-mail address without control characters";

impl<'t> Parser<'t, '_> {
    pub(super) fn global_defs(&mut self, head: &Stmt<'t>) -> Res<()> {
        self.require_block(head)?;
        self.extra_args(head, 0);
        let mut g = GlobalDefs {
            pos: head.pos(),
            ..GlobalDefs::default()
        };
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            match stmt.keyword() {
                "router_id" => g.router_id = Some(self.single(&stmt, "a router id")?.text),
                "notification_email" => {
                    self.require_block(&stmt)?;
                    while let Some(line) = self.next_stmt(Some(&stmt.kw))? {
                        self.no_block(&line)?;
                        // `"Name <a@example>"` is one word; unquoted, the
                        // rest of the line is more addresses.
                        for word in core::iter::once(&line.kw).chain(line.args.iter()) {
                            let to = self.plain_text("notification_email", word, MAIL_ADDRESS)?;
                            self.push(&mut g.mail.to, to, word, "notification_email addresses")?;
                        }
                    }
                }
                "notification_email_from" => {
                    let tok = self.single(&stmt, "an e-mail address")?;
                    g.mail.from = Some(self.plain_text(stmt.keyword(), &tok, MAIL_ADDRESS)?);
                }
                "smtp_server" => {
                    // Never resolved here: a name that does not resolve at
                    // check time must not fail the configuration.
                    self.no_block(&stmt)?;
                    g.mail.server = Some(self.arg(&stmt, 0, "a host name or address")?.text);
                    if let Some(port) = stmt.args.get(1) {
                        g.mail.port =
                            Some(self.number_token(&stmt, port, 1, 65535, "1..65535")? as u16);
                    }
                    self.extra_args(&stmt, 2);
                }
                "smtp_helo_name" => {
                    let tok = self.single(&stmt, "a host name")?;
                    g.mail.helo_name = Some(self.plain_text(
                        stmt.keyword(),
                        &tok,
                        "a host name without control characters",
                    )?);
                }
                "smtp_connect_timeout" => {
                    g.mail.connect_timeout =
                        Some(self.seconds(&stmt, 1, MAX_TIMER_US, "more than 0 s")?)
                }
                "smtp_alert" => g.mail.alert = Some(self.flag(&stmt)?),
                "smtp_alert_vrrp" => g.mail.alert_vrrp = Some(self.flag(&stmt)?),
                "smtp_alert_checker" => g.mail.alert_checker = Some(self.flag(&stmt)?),
                "no_email_faults" => g.mail.no_email_faults = self.flag(&stmt)?,
                "vrrp_version" => g.vrrp_version = Some(self.number(&stmt, 2, 3, "2 or 3")? as u8),
                "vrrp_garp_master_delay" => {
                    g.garp_master_delay =
                        Some(self.seconds(&stmt, 0, 1_000_000_000, "0..1000 s")?)
                }
                "vrrp_garp_master_repeat" => {
                    g.garp_master_repeat = Some(self.number(&stmt, 1, 255, "1..255")? as u8)
                }
                "vrrp_garp_master_refresh" => {
                    g.garp_master_refresh =
                        Some(self.seconds(&stmt, 0, MAX_TIMER_US, "0 or more seconds")?)
                }
                "vrrp_garp_master_refresh_repeat" => {
                    g.garp_master_refresh_repeat = Some(self.number(&stmt, 1, 255, "1..255")? as u8)
                }
                "vrrp_garp_interval" => g.garp_interval = self.burst_interval(&stmt)?,
                "vrrp_gna_interval" => g.gna_interval = self.burst_interval(&stmt)?,
                "vrrp_lower_prio_no_advert" => g.lower_prio_no_advert = self.flag(&stmt)?,
                "vrrp_strict" => g.vrrp_strict = self.flag(&stmt)?,
                "vrrp_check_unicast_src" => g.check_unicast_src = self.flag(&stmt)?,
                "enable_script_security" => g.enable_script_security = self.flag(&stmt)?,
                "script_user" => g.script_user = Some(self.run_as(&stmt)?),
                "lvs_sync_daemon" => self.lvs_sync_daemon(&stmt, &mut g)?,
                "lvs_timeouts" => g.lvs_timeouts = self.lvs_timeouts(&stmt)?,
                _ => self.unknown(Block::Global, &stmt)?,
            }
        }
        let result = self.sink.global_defs(&g);
        self.summary.items += 1;
        self.sink_result(g.pos, result)
    }

    /// `lvs_sync_daemon INTERFACE [INSTANCE] [inst INSTANCE] [id N]
    /// [maxlen N] [port N] [ttl N] [group ADDR]`, as keepalived.conf(5)
    /// and its parser (global_parser.c `lvs_syncd_handler`) read it: a bare
    /// word after the interface is the instance, and a bare number after
    /// that the sync id (the old syntax, with a warning).
    fn lvs_sync_daemon(&mut self, stmt: &Stmt<'t>, g: &mut GlobalDefs<'t>) -> Res<()> {
        self.no_block(stmt)?;
        g.lvs_sync_daemon_interface = Some(self.arg(stmt, 0, "an interface name")?.text);
        let mut i = 1;
        while i < stmt.args.len() {
            let word = stmt.args[i];
            let value = |p: &Self, what| p.arg(stmt, i + 1, what);
            match word.text {
                "inst" => {
                    g.lvs_sync_daemon_instance = Some(value(self, "a vrrp_instance name")?.text)
                }
                "id" => {
                    let tok = value(self, "a sync id")?;
                    g.lvs_sync_daemon_options.sync_id =
                        Some(self.number_token(stmt, &tok, 0, 255, "0..255")? as u8);
                }
                "maxlen" => {
                    let tok = value(self, "a message length")?;
                    // 65535 less the IPv4 and UDP headers, like keepalived.
                    g.lvs_sync_daemon_options.maxlen =
                        Some(self.number_token(stmt, &tok, 1, 65507, "1..65507")? as u16);
                }
                "port" => {
                    let tok = value(self, "a UDP port")?;
                    g.lvs_sync_daemon_options.port =
                        Some(self.number_token(stmt, &tok, 1, 65535, "1..65535")? as u16);
                }
                "ttl" => {
                    let tok = value(self, "a TTL")?;
                    g.lvs_sync_daemon_options.ttl =
                        Some(self.number_token(stmt, &tok, 1, 255, "1..255")? as u8);
                }
                "group" => {
                    let tok = value(self, "a multicast address")?;
                    let addr = self.address(&tok)?;
                    if !addr.is_multicast() {
                        return Err(self.expected_in(stmt.keyword(), &tok, "a multicast address"));
                    }
                    g.lvs_sync_daemon_options.group = Some(addr);
                }
                _ if i == 1 => {
                    g.lvs_sync_daemon_instance = Some(word.text);
                    i += 1;
                    continue;
                }
                _ if i == 2 && value::uint(word.text).is_some() => {
                    g.lvs_sync_daemon_options.sync_id =
                        Some(self.number_token(stmt, &word, 0, 255, "0..255")? as u8);
                    self.warn_at(
                        &word,
                        Kind::Deprecated {
                            keyword: Snippet::new("lvs_sync_daemon SYNC_ID"),
                            instead: "lvs_sync_daemon ... id SYNC_ID",
                        },
                    );
                    i += 1;
                    continue;
                }
                _ => {
                    return Err(self.error_at(
                        &word,
                        Kind::UnknownValue {
                            keyword: Snippet::new("lvs_sync_daemon"),
                            value: Snippet::new(word.text),
                            expected: "inst, id, maxlen, port, ttl, group",
                        },
                    ));
                }
            }
            i += 2;
        }
        Ok(())
    }

    /// `lvs_timeouts tcp N tcpfin N udp N` in any order, at least one,
    /// each 0 (the default) to 31 days as keepalived reads them
    /// (global_parser.c `lvs_timeouts`, `LVS_MAX_TIMEOUT`).
    fn lvs_timeouts(&mut self, stmt: &Stmt<'t>) -> Res<LvsTimeouts> {
        self.no_block(stmt)?;
        self.arg(stmt, 0, "tcp, tcpfin or udp")?;
        let mut t = LvsTimeouts::default();
        let mut i = 0;
        while i < stmt.args.len() {
            let name = stmt.args[i];
            let value_tok = self.arg(stmt, i + 1, "a number of seconds")?;
            if value::uint(value_tok.text).is_none() {
                return Err(self.expected(&value_tok, "a number of seconds"));
            }
            let secs = self.number_token(stmt, &value_tok, 0, LVS_MAX_TIMEOUT_S, "0..2678400 s")?;
            let d = Duration::from_secs(secs);
            match name.text {
                "tcp" => t.tcp = d,
                "tcpfin" => t.tcp_fin = d,
                "udp" => t.udp = d,
                _ => {
                    return Err(self.error_at(
                        &name,
                        Kind::UnknownValue {
                            keyword: Snippet::new("lvs_timeouts"),
                            value: Snippet::new(name.text),
                            expected: "tcp, tcpfin, udp",
                        },
                    ));
                }
            }
            i += 2;
        }
        Ok(t)
    }
}

// Tested through the public parser in core/tests/config_global.rs.
