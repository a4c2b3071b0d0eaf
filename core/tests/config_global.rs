//! `global_defs` (config/global.rs): lvs_sync_daemon's options, lvs_timeouts
//! and script_user, parsed and refused with errors naming the word. An
//! integration test: it needs only the public parser and formats with std.

use core::net::{IpAddr, Ipv4Addr};

use vrlb_core::config::{self, GlobalDefs, LvsSyncOptions, LvsTimeouts, NoIncludes, Options, Sink};
use vrlb_core::time::Duration;

#[derive(Default)]
struct Sync(Option<(Option<&'static str>, Option<&'static str>, LvsSyncOptions)>);

impl Sink for Sync {
    fn global_defs(&mut self, g: &GlobalDefs<'_>) -> Result<(), config::Kind> {
        // The test texts are 'static; keep only what is compared.
        let leak = |s: Option<&str>| s.map(|s| &*Box::leak(s.into()));
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

fn timeouts(line: &str) -> Result<LvsTimeouts, String> {
    let text = format!("global_defs {{\n {line}\n}}\n");
    let mut t = Timeouts::default();
    config::parse(
        "k.conf",
        &text,
        &Options::default(),
        &mut t,
        &mut NoIncludes,
    )
    .map(|_| t.0.unwrap())
    .map_err(|e| format!("{e}"))
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
type Pair = (String, Option<String>);

#[derive(Default)]
struct Users(Vec<(&'static str, Option<Pair>)>, Vec<String>);

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
        self.1.push(format!("{d}"));
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
    assert!(format!("{err}").contains("a user name"), "{err}");
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

#[derive(Default)]
struct Mail(Option<String>, Vec<String>);

impl Sink for Mail {
    fn global_defs(&mut self, g: &GlobalDefs<'_>) -> Result<(), config::Kind> {
        self.0 = Some(format!("{:?}", g.mail));
        Ok(())
    }
    fn diagnostic(&mut self, d: &config::Diagnostic) {
        self.1.push(d.to_string());
    }
}

fn mail(text: &str) -> Result<Mail, String> {
    let mut m = Mail::default();
    config::parse("k.conf", text, &Options::default(), &mut m, &mut NoIncludes)
        .map(|_| m)
        .map_err(|e| e.to_string())
}

#[test]
fn e_mail_settings_are_read_with_several_addresses_a_line_and_display_names() {
    let m = mail(
        "global_defs {\n notification_email {\n  ops@example.com noc@example.com\n  \"On call <oncall@example.com>\"\n }\n notification_email_from \"LB <lb@example.com>\"\n smtp_server mail.example.com 2525\n smtp_helo_name lb1.example.com\n smtp_connect_timeout 10\n smtp_alert\n smtp_alert_vrrp off\n smtp_alert_checker yes\n no_email_faults\n}\n",
    )
    .unwrap();
    let want = config::MailDefs {
        to: [
            "ops@example.com",
            "noc@example.com",
            "On call <oncall@example.com>",
        ]
        .into_iter()
        .collect(),
        from: Some("LB <lb@example.com>"),
        server: Some("mail.example.com"),
        port: Some(2525),
        helo_name: Some("lb1.example.com"),
        connect_timeout: Some(Duration::from_secs(10)),
        alert: Some(true),
        alert_vrrp: Some(false),
        alert_checker: Some(true),
        no_email_faults: true,
    };
    assert_eq!(m.0, Some(format!("{want:?}")));
    assert!(m.1.is_empty(), "{:?}", m.1);
}

#[test]
fn alerts_default_as_keepalived_s_do() {
    let none = config::MailDefs::default();
    // Nothing set: no alert (keepalived sends none).
    assert!(!none.vrrp_alerts(None) && !none.checker_alerts(None, None));
    assert!(none.vrrp_alerts(Some(true)) && none.checker_alerts(None, Some(true)));
    let all = config::MailDefs {
        alert: Some(true),
        ..Default::default()
    };
    assert!(all.vrrp_alerts(None) && all.checker_alerts(None, None));
    assert!(!all.vrrp_alerts(Some(false)));
    // The real server's own beats its virtual server's.
    assert!(all.checker_alerts(Some(true), Some(false)));
    assert!(!all.checker_alerts(None, Some(false)));
    let vrrp_only = config::MailDefs {
        alert: Some(true),
        alert_checker: Some(false),
        ..Default::default()
    };
    assert!(vrrp_only.vrrp_alerts(None) && !vrrp_only.checker_alerts(None, None));
}

#[derive(Default)]
struct Groups(Vec<(String, Vec<String>, Option<bool>)>);

impl Sink for Groups {
    fn vrrp_sync_group(&mut self, g: &config::SyncGroupConf<'_>) -> Result<(), config::Kind> {
        self.0.push((
            g.name.into(),
            g.members.iter().map(|m| m.name.into()).collect(),
            g.smtp_alert,
        ));
        Ok(())
    }
}

#[test]
fn a_sync_groups_smtp_alert_is_no_member_even_in_the_old_member_list() {
    let mut g = Groups::default();
    let text = "vrrp_sync_group G {\n group {\n  A\n  B\n }\n smtp_alert\n}\nvrrp_sync_group H {\n C\n smtp_alert off\n}\n";
    config::parse("k.conf", text, &Options::default(), &mut g, &mut NoIncludes).unwrap();
    assert_eq!(
        g.0,
        [
            ("G".into(), vec!["A".into(), "B".into()], Some(true)),
            ("H".into(), vec!["C".into()], Some(false)),
        ]
    );
}
