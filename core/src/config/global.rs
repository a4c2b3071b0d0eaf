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
                    while let Some(addr) = self.next_stmt(Some(&stmt.kw))? {
                        self.no_block(&addr)?;
                        self.push(
                            &mut g.notification_email,
                            addr.keyword(),
                            &addr.kw,
                            "notification_email addresses",
                        )?;
                    }
                }
                "smtp_server" => {
                    // Never resolved here: a name that does not resolve at
                    // check time must not fail the configuration.
                    self.no_block(&stmt)?;
                    g.smtp_server = Some(self.arg(&stmt, 0, "a host name or address")?.text);
                    self.extra_args(&stmt, 2);
                }
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

#[cfg(test)]
mod tests {
    use core::net::{IpAddr, Ipv4Addr};

    use crate::config::{self, GlobalDefs, LvsSyncOptions, LvsTimeouts, NoIncludes, Options, Sink};
    use crate::time::Duration;

    #[derive(Default)]
    struct Sync(Option<(Option<&'static str>, Option<&'static str>, LvsSyncOptions)>);

    impl Sink for Sync {
        fn global_defs(&mut self, g: &GlobalDefs<'_>) -> Result<(), config::Kind> {
            // The test texts are 'static; keep only what is compared.
            let leak = |s: Option<&str>| s.map(|s| &*std::boxed::Box::leak(s.into()));
            self.0 = Some((
                leak(g.lvs_sync_daemon_interface),
                leak(g.lvs_sync_daemon_instance),
                g.lvs_sync_daemon_options,
            ));
            Ok(())
        }
    }

    fn parse(text: &str) -> Sync {
        let mut s = Sync::default();
        config::parse("k.conf", text, &Options::default(), &mut s, &mut NoIncludes).unwrap();
        s
    }

    #[test]
    fn lvs_sync_daemon_takes_keepalived_options_in_any_order() {
        let s = parse("global_defs {\n lvs_sync_daemon eth1 VI_1\n}\n");
        assert_eq!(
            s.0,
            Some((Some("eth1"), Some("VI_1"), LvsSyncOptions::default()))
        );
        let s = parse(
            "global_defs {\n lvs_sync_daemon eth1 VI_1 ttl 2 id 7 group 239.0.2.81 port 9000 maxlen 1200\n}\n",
        );
        let want = LvsSyncOptions {
            sync_id: Some(7),
            maxlen: Some(1200),
            port: Some(9000),
            ttl: Some(2),
            group: Some(IpAddr::V4(Ipv4Addr::new(239, 0, 2, 81))),
        };
        assert_eq!(s.0, Some((Some("eth1"), Some("VI_1"), want)));
    }

    #[derive(Default)]
    struct Timeouts(Option<LvsTimeouts>);

    impl Sink for Timeouts {
        fn global_defs(&mut self, g: &GlobalDefs<'_>) -> Result<(), config::Kind> {
            self.0 = Some(g.lvs_timeouts);
            Ok(())
        }
    }

    fn timeouts(line: &str) -> Result<LvsTimeouts, std::string::String> {
        let text = std::format!("global_defs {{\n {line}\n}}\n");
        let mut t = Timeouts::default();
        config::parse(
            "k.conf",
            &text,
            &Options::default(),
            &mut t,
            &mut NoIncludes,
        )
        .map(|_| t.0.unwrap())
        .map_err(|e| std::format!("{e}"))
    }

    #[test]
    fn lvs_timeouts_take_tcp_tcpfin_and_udp_in_any_order() {
        let s = Duration::from_secs;
        assert_eq!(
            timeouts("lvs_timeouts tcp 7200 tcpfin 30 udp 60"),
            Ok(LvsTimeouts {
                tcp: s(7200),
                tcp_fin: s(30),
                udp: s(60)
            })
        );
        assert_eq!(
            timeouts("lvs_timeouts udp 5 tcp 0"),
            Ok(LvsTimeouts {
                udp: s(5),
                ..LvsTimeouts::default()
            }),
            "0 is the default"
        );
        assert_eq!(
            timeouts("lvs_timeouts tcpfin 2678400"),
            Ok(LvsTimeouts {
                tcp_fin: s(2_678_400),
                ..LvsTimeouts::default()
            }),
            "31 days is the most"
        );
    }

    #[test]
    fn lvs_timeouts_errors_name_the_word_and_the_range() {
        let e = timeouts("lvs_timeouts").unwrap_err();
        assert!(
            e.contains("k.conf:2") && e.contains("tcp, tcpfin or udp"),
            "{e}"
        );
        let e = timeouts("lvs_timeouts tcp 2678401").unwrap_err();
        assert!(e.contains("2678401") && e.contains("0..2678400"), "{e}");
        let e = timeouts("lvs_timeouts tcp").unwrap_err();
        assert!(e.contains("a number of seconds"), "{e}");
        let e = timeouts("lvs_timeouts tcp ten").unwrap_err();
        assert!(
            e.contains("ten") && e.contains("a number of seconds"),
            "{e}"
        );
        let e = timeouts("lvs_timeouts sctp 5").unwrap_err();
        assert!(e.contains("sctp") && e.contains("tcp, tcpfin, udp"), "{e}");
    }

    /// `(user, group)` of `script_user`, each vrrp_script `user` and
    /// each checker `user`, in order.
    type Pair = (std::string::String, Option<std::string::String>);

    #[derive(Default)]
    struct Users(
        std::vec::Vec<(&'static str, Option<Pair>)>,
        std::vec::Vec<std::string::String>,
    );

    fn pair(r: Option<config::RunAs<'_>>) -> Option<Pair> {
        r.map(|r| (r.user.into(), r.group.map(Into::into)))
    }

    impl Sink for Users {
        fn global_defs(&mut self, g: &GlobalDefs<'_>) -> Result<(), config::Kind> {
            self.0.push(("global", pair(g.script_user)));
            Ok(())
        }
        fn vrrp_script(&mut self, s: &config::VrrpScript<'_>) -> Result<(), config::Kind> {
            self.0.push(("script", pair(s.user)));
            Ok(())
        }
        fn real_server(
            &mut self,
            _vs: &config::VirtualServer<'_>,
            rs: &config::RealServer<'_>,
        ) -> Result<(), config::Kind> {
            for c in rs.checkers.iter() {
                self.0.push(("checker", pair(c.user)));
            }
            Ok(())
        }
        fn diagnostic(&mut self, d: &config::Diagnostic) {
            self.1.push(std::format!("{d}"));
        }
    }

    #[test]
    fn script_users_keep_user_and_optional_group() {
        let text = "global_defs {\n script_user nobody nogroup\n}\n\
            vrrp_script a {\n script /bin/true\n user daemon\n}\n\
            vrrp_script b {\n script /bin/true\n}\n\
            virtual_server 192.0.2.1 80 {\n real_server 192.0.2.2 80 {\n\
            MISC_CHECK {\n misc_path /bin/true\n user www-data adm\n }\n\
            MISC_CHECK {\n misc_path /bin/true\n }\n }\n}\n";
        let mut u = Users::default();
        let summary =
            config::parse("k.conf", text, &Options::default(), &mut u, &mut NoIncludes).unwrap();
        let p = |u: &str, g: Option<&str>| Some((u.into(), g.map(Into::into)));
        assert_eq!(
            u.0,
            [
                ("global", p("nobody", Some("nogroup"))),
                ("script", p("daemon", None)),
                ("script", None),
                ("checker", p("www-data", Some("adm"))),
                ("checker", None),
            ]
        );
        // `user` in MISC_CHECK is acted on now: it is not reported.
        assert!(!u.1.iter().any(|d| d.contains("user")), "{:?}", u.1);
        assert_eq!(summary.warnings as usize, u.1.len());
    }

    #[test]
    fn script_user_needs_a_user_and_warns_past_the_group() {
        let mut u = Users::default();
        let err = config::parse(
            "k.conf",
            "global_defs {\n script_user\n}\n",
            &Options::default(),
            &mut u,
            &mut NoIncludes,
        )
        .unwrap_err();
        assert!(std::format!("{err}").contains("a user name"), "{err}");
        let summary = config::parse(
            "k.conf",
            "global_defs {\n script_user a b c\n}\n",
            &Options::default(),
            &mut u,
            &mut NoIncludes,
        )
        .unwrap();
        assert_eq!(summary.warnings, 1);
    }
}
