//! Bad configurations: each gives the right error at the right line and
//! column; arbitrary text never panics the parser.

mod common;

use proptest::prelude::*;

/// (configuration, "line:col", text the message must contain)
const CASES: &[(&str, &str, &str)] = &[
    (
        "vrrp_instance V {\n virtual_router_id 0\n}",
        "2:20",
        "'virtual_router_id' value '0' is out of range: expected 1..255",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 256\n}",
        "2:20",
        "out of range: expected 1..255",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n priority 0\n}",
        "3:11",
        "'priority' value '0' is out of range",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n priority 256\n}",
        "3:11",
        "'priority' value '256' is out of range",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n priority high\n}",
        "3:11",
        "'priority': expected a number, found 'high'",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n priority\n}",
        "3:10",
        "'priority': expected a number, found the end of the line",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n advert_int 0\n}",
        "3:13",
        "'advert_int' value '0' is out of range",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n advert_int 256\n}",
        "3:13",
        "'advert_int' value '256' is out of range: expected 0.01..255 s",
    ),
    (
        "vrrp_instance V {\n version 3\n virtual_router_id 51\n advert_int 41\n}",
        "4:13",
        "'advert_int' value '41' is out of range: expected 0.01..40.95 s for VRRPv3",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n advert_int 0.005\n}",
        "3:13",
        "'advert_int' value '0.005' is out of range",
    ),
    (
        "vrrp_instance V {\n version 2\n virtual_router_id 51\n advert_int 0.5\n}",
        "4:13",
        "'advert_int' value '0.5' is out of range: expected whole seconds for VRRPv2",
    ),
    (
        "vrrp_instance V {\n priority 100\n}",
        "1:1",
        "'V' needs 'virtual_router_id'",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n state LEADER\n}",
        "3:8",
        "'state' value 'LEADER' is not one of: MASTER, BACKUP",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n version 4\n}",
        "3:10",
        "'version' value '4' is out of range",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n virtual_ipaddress {\n  192.168.1.300\n }\n}",
        "4:3",
        "expected an address[/prefix], found '192.168.1.300'",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n virtual_ipaddress {\n  10.0.0.1/33\n }\n}",
        "4:3",
        "expected an address[/prefix]",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n unicast_peer {\n  not-an-ip\n }\n}",
        "4:3",
        "expected an IPv4 or IPv6 address, found 'not-an-ip'",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n authentication {\n  auth_type MD5\n }\n}",
        "4:13",
        "'auth_type' value 'MD5' is not one of: PASS, AH",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n authentication {\n  auth_type PASS\n }\n}",
        "3:2",
        "'authentication' needs 'auth_pass'",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n track_script {\n  chk weight 300\n }\n}",
        "4:14",
        "'chk' value '300' is out of range: expected -254..254",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n preempt_delay 2000\n}",
        "3:16",
        "'preempt_delay' value '2000' is out of range",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n nopreempt maybe\n}",
        "3:12",
        "'nopreempt': expected true or false, found 'maybe'",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n",
        "1:1",
        "block 'vrrp_instance' is not closed",
    ),
    (
        "vrrp_instance V\n virtual_router_id 51\n",
        "1:16",
        "'vrrp_instance': expected '{' to open the block",
    ),
    ("vrrp_instance {\n}", "1:14", "expected an instance name"),
    ("vrrp_sync_group G {\n}", "1:1", "'G' needs 'group'"),
    (
        "vrrp_script s {\n script /bin/true\n interval 0\n}",
        "3:11",
        "'interval' value '0' is out of range",
    ),
    (
        "vrrp_script s {\n script /bin/true\n rise 0\n}",
        "3:7",
        "'rise' value '0' is out of range",
    ),
    (
        "global_defs {\n vrrp_version 4\n}",
        "2:15",
        "'vrrp_version' value '4' is out of range",
    ),
    (
        "global_defs {\n lvs_timeouts tcp 900 syn 5\n}",
        "2:23",
        "'lvs_timeouts' value 'syn' is not one of: tcp, tcpfin, udp",
    ),
    (
        "global_defs {\n lvs_sync_daemon eth1 VI_1 id 256\n}",
        "2:31",
        "'lvs_sync_daemon' value '256' is out of range: expected 0..255",
    ),
    (
        "global_defs {\n lvs_sync_daemon eth1 VI_1 group 192.0.2.81\n}",
        "2:34",
        "'lvs_sync_daemon': expected a multicast address, found '192.0.2.81'",
    ),
    (
        "global_defs {\n lvs_sync_daemon eth1 VI_1 mtu 1500\n}",
        "2:28",
        "'lvs_sync_daemon' value 'mtu' is not one of: inst, id, maxlen, port, ttl, group",
    ),
    (
        "global_defs {\n lvs_sync_daemon eth1 VI_1 port\n}",
        "2:32",
        "'lvs_sync_daemon': expected a UDP port, found the end of the line",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n lb_algo fastest\n}",
        "2:10",
        "'lb_algo' value 'fastest' is not one of: rr, wrr",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n lb_kind FNAT\n}",
        "2:10",
        "'lb_kind' value 'FNAT' is not one of: DR, NAT, TUN",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.2 80 {\n  lvs_method FNAT\n }\n}",
        "3:14",
        "'lvs_method' value 'FNAT' is not one of: DR, NAT, TUN",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n protocol ICMP\n}",
        "2:11",
        "'protocol' value 'ICMP' is not one of: TCP, UDP, SCTP",
    ),
    (
        "virtual_server 192.0.2.1 70000 {\n}",
        "1:26",
        "'virtual_server' value '70000' is out of range: expected 0..65535",
    ),
    (
        "virtual_server 192.0.2 80 {\n}",
        "1:16",
        "expected an IPv4 or IPv6 address, found '192.0.2'",
    ),
    (
        "virtual_server fwmark 0 {\n}",
        "1:23",
        "'virtual_server' value '0' is out of range",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n persistence_timeout 2678401\n}",
        "2:22",
        "'persistence_timeout' value '2678401' is out of range",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n persistence_granularity 255.0.255.0\n}",
        "2:26",
        "expected a contiguous netmask",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n quorum 0\n}",
        "2:9",
        "'quorum' value '0' is out of range",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.10 80 {\n  weight -1\n }\n}",
        "3:10",
        "'weight': expected a number, found '-1'",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.10 80 {\n  TCP_CHECK {\n   connect_port 0\n  }\n }\n}",
        "4:17",
        "'connect_port' value '0' is out of range",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.10 80 {\n  TCP_CHECK {\n   connect_timeout 0\n  }\n }\n}",
        "4:20",
        "'connect_timeout' value '0' is out of range",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.10 80 {\n  HTTP_GET {\n   url {\n    path /\n    digest xyz\n   }\n  }\n }\n}",
        "6:12",
        "expected an MD5 digest (32 hex digits), found 'xyz'",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.10 80 {\n  HTTP_GET {\n   url {\n    path /\n    status_code 700\n   }\n  }\n }\n}",
        "6:17",
        "expected a status code 100..599",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.10 80 {\n  HTTP_GET {\n   url {\n    digest 640205b7b0fc66c1ea91c463fac6334d\n   }\n  }\n }\n}",
        "4:4",
        "'url' needs 'path'",
    ),
    (
        "virtual_server_group G {\n 192.0.2.10-5 80\n}",
        "2:2",
        "expected an address or range (192.0.2.1-10), found '192.0.2.10-5'",
    ),
    (
        "include /etc/keepalived/other.conf",
        "1:9",
        "include '/etc/keepalived/other.conf': includes are not available here",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n include /etc/keepalived/vips.conf\n}",
        "3:10",
        "include '/etc/keepalived/vips.conf': includes are not available here",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n delay_loop 0\n}",
        "2:13",
        "'delay_loop' value '0' is out of range: expected more than 0 s",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n delay_loop 6s\n}",
        "2:13",
        "'delay_loop': expected a time in seconds, found '6s'",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.10 80 {\n  TCP_CHECK {\n   delay_loop\n  }\n }\n}",
        "4:14",
        "'delay_loop': expected a time in seconds, found the end of the line",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.10 80 {\n  TCP_CHECK {\n   retry -1\n  }\n }\n}",
        "4:10",
        "'retry': expected a number, found '-1'",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.10 80 {\n  retry 3x\n  TCP_CHECK {\n  }\n }\n}",
        "3:9",
        "'retry': expected a number, found '3x'",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.10 80 {\n  MISC_CHECK {\n   misc_path /bin/true\n   misc_timeout 0\n  }\n }\n}",
        "5:17",
        "'misc_timeout' value '0' is out of range: expected more than 0 s",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.10 80 {\n  MISC_CHECK {\n   misc_path /bin/true\n   misc_timeout soon\n  }\n }\n}",
        "5:17",
        "'misc_timeout': expected a time in seconds, found 'soon'",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.10 80 {\n  TCP_CHECK {\n   connect_ip 192.0.2.300\n  }\n }\n}",
        "4:15",
        "expected an IPv4 or IPv6 address, found '192.0.2.300'",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.10 80 {\n  TCP_CHECK {\n   connect_ip web.example\n  }\n }\n}",
        "4:15",
        "expected an IPv4 or IPv6 address, found 'web.example'",
    ),
    (
        "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.10 80 {\n  TCP_CHECK {\n   connect_ip\n  }\n }\n}",
        "4:14",
        "'connect_ip': expected an address, found the end of the line",
    ),
    (
        "virtual_server 192.0.2.1 25 {\n real_server 192.0.2.10 25 {\n  SMTP_CHECK {\n   helo_name lb1\u{7}.example\n  }\n }\n}",
        "4:14",
        "'helo_name': expected a host name without control characters, found 'lb1\\u{7}.example'",
    ),
    (
        "virtual_server 192.0.2.1 25 {\n real_server 192.0.2.10 25 {\n  SMTP_CHECK {\n   host {\n    connect_port 0\n   }\n  }\n }\n}",
        "5:18",
        "'connect_port' value '0' is out of range: expected 1..65535",
    ),
    (
        "global_defs {\n smtp_server 192.0.2.25 smtp\n}",
        "2:25",
        "'smtp_server': expected a number, found 'smtp'",
    ),
    (
        "global_defs {\n smtp_server 192.0.2.25 0\n}",
        "2:25",
        "'smtp_server' value '0' is out of range: expected 1..65535",
    ),
    (
        "global_defs {\n notification_email_from \"a@example.com\u{1b}[2J\"\n}",
        "2:26",
        "'notification_email_from': expected an e-mail address without control characters, found 'a@example.com\\u{1b}[2J'",
    ),
    (
        "global_defs {\n notification_email {\n  ops@example.com \"b@example.com\u{7}\"\n }\n}",
        "3:19",
        "'notification_email': expected an e-mail address without control characters",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n use_vmac a/b\n}",
        "3:11",
        "'use_vmac': expected an interface name (1 to 15 characters, no '/', ':' or spaces), found 'a/b'",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n use_vmac name a_name_longer_than_15\n}",
        "3:16",
        "'use_vmac': expected an interface name",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n use_vmac vm1 01:00:5e:00:00:01\n}",
        "3:15",
        "'use_vmac': expected a unicast MAC address, found '01:00:5e:00:00:01'",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n use_vmac vm1 02:00:00:00:00:01 02:00:00:00:00:02\n}",
        "3:33",
        "'use_vmac': expected one MAC address",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n use_vmac vm1 other\n}",
        "3:15",
        "'use_vmac': expected a MAC address, netlink_notify_msg or group, found 'other'",
    ),
    (
        "vrrp_instance V {\n virtual_router_id 51\n use_vmac name\n}",
        "3:15",
        "'use_vmac': expected an interface name, found the end of the line",
    ),
    (
        "garp_group {\n garp_interval 0.1\n}",
        "1:1",
        "'garp_group' needs 'interface'",
    ),
    (
        "garp_group {\n garp_interval 5000\n interface eth0\n}",
        "2:16",
        "'garp_interval' value '5000' is out of range: expected 0..4294.967295 s",
    ),
    (
        "global_defs {\n vrrp_gna_interval soon\n}",
        "2:20",
        "'vrrp_gna_interval': expected a time in seconds, found 'soon'",
    ),
    (
        "$PRIO=300\nvrrp_instance V {\n virtual_router_id 51\n priority $PRIO\n}",
        "4:11",
        "'priority' value '300' is out of range",
    ),
    (
        "$A=${A}.\nvrrp_instance V {\n interface ${A}\n}",
        "3:12",
        "parameter substitution: nested more than 8 deep",
    ),
];

#[test]
fn each_bad_configuration_reports_the_right_place() {
    assert!(CASES.len() >= 30);
    let mut failures = Vec::new();
    for (text, at, message) in CASES {
        let (_, result) = common::parse("bad.conf", text);
        match result {
            Ok(_) => failures.push(format!("accepted: {text:?}")),
            Err(e) => {
                let rendered = e.to_string();
                let prefix = format!("bad.conf:{at}: error: ");
                if !rendered.starts_with(&prefix) || !rendered.contains(message) {
                    failures.push(format!(
                        "{text:?}\n   want {prefix}…{message}\n   got  {rendered}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn warnings_do_not_refuse_the_file() {
    let text = "OS: centos7.6\nglobal_defs {\n router_id x;\n}\n}\nvrrp_instance V {\n virtual_router_id 51\n weigth 3\n priority\u{a0}100\n}\n";
    let (rec, result) = common::parse("ok.conf", text);
    assert!(result.is_ok(), "{result:?}");
    let w = rec.warnings.join("\n");
    assert!(
        w.contains("ok.conf:1:1: warning: unknown keyword 'OS:'"),
        "{w}"
    );
    assert!(
        w.contains("ok.conf:3:13: warning: trailing ';' ignored"),
        "{w}"
    );
    assert!(
        w.contains("ok.conf:5:1: warning: '}' closes no block"),
        "{w}"
    );
    assert!(w.contains("ok.conf:8:2: warning: unknown keyword 'weigth' in vrrp_instance, skipped (did you mean 'weight'?)"), "{w}");
    assert!(
        w.contains("ok.conf:9:10: warning: non-ASCII white space"),
        "{w}"
    );
}

/// (configuration, "line:col" of the warning and text it must contain, or
/// `None` when the file must give no warning at all; whether the service
/// stays anycast)
type WarningCase = (&'static str, Option<(&'static str, &'static str)>, bool);

const WARNING_CASES: &[WarningCase] = &[
    // anycast with mh: directors agree, nothing to say.
    (
        "virtual_server 192.0.2.240 80 {\n lb_algo mh\n lb_kind DR\n anycast\n protocol TCP\n}",
        None,
        true,
    ),
    // ... wherever lb_algo comes in the block.
    (
        "virtual_server 192.0.2.240 80 {\n anycast\n lb_kind DR\n lb_algo mh\n protocol TCP\n}",
        None,
        true,
    ),
    (
        "virtual_server 192.0.2.240 80 {\n lb_algo wlc\n lb_kind DR\n  anycast\n protocol TCP\n}",
        Some((
            "4:3",
            "'anycast': lb_algo is not mh: directors would not agree on the real server of a flow",
        )),
        true,
    ),
    // No lb_algo: keepalived's wlc.
    (
        "virtual_server 192.0.2.240 80 {\n lb_kind DR\n anycast\n protocol TCP\n}",
        Some(("3:2", "lb_algo is not mh")),
        true,
    ),
    // sh hashes too, but neither in a canonical order nor adopting moved flows.
    (
        "virtual_server 192.0.2.240 80 {\n anycast\n lb_algo sh\n lb_kind DR\n protocol TCP\n}",
        Some(("2:2", "one the router moves to another director is dropped")),
        true,
    ),
    (
        "virtual_server fwmark 7 {\n lb_algo mh\n lb_kind DR\n anycast\n}",
        Some((
            "4:2",
            "'anycast': a fwmark service has no VIP to announce: ignored",
        )),
        false,
    ),
    // Turned off again: no warning.
    (
        "virtual_server 192.0.2.240 80 {\n lb_kind DR\n anycast\n anycast false\n protocol TCP\n}",
        None,
        false,
    ),
];

#[test]
fn anycast_warns_where_directors_could_not_agree() {
    let mut failures = Vec::new();
    for (text, want, anycast) in WARNING_CASES {
        let (rec, result) = common::parse("any.conf", text);
        if let Err(e) = result {
            failures.push(format!("{text:?} refused: {e}"));
            continue;
        }
        let vs = rec.items.iter().find(|i| i.starts_with("virtual_server"));
        if vs.is_none_or(|vs| vs.ends_with(" anycast") != *anycast) {
            failures.push(format!("{text:?}: anycast should be {anycast}: {vs:?}"));
        }
        match want {
            None if !rec.warnings.is_empty() => {
                failures.push(format!(
                    "{text:?}\n   want no warning\n   got  {:?}",
                    rec.warnings
                ));
            }
            None => {}
            Some((at, message)) => {
                let prefix = format!("any.conf:{at}: warning: ");
                let hits = rec
                    .warnings
                    .iter()
                    .filter(|w| w.starts_with(&prefix) && w.contains(message))
                    .count();
                if hits != 1 || rec.warnings.len() != 1 {
                    failures.push(format!(
                        "{text:?}\n   want {prefix}…{message}\n   got  {:?}",
                        rec.warnings
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = common::parse("fuzz.conf", &text);
    }

    #[test]
    fn keyword_soup_never_panics(words in proptest::collection::vec(
        prop_oneof![
            Just("{"), Just("}"), Just("\n"), Just("vrrp_instance"), Just("virtual_server"), Just("real_server"),
            Just("TCP_CHECK"), Just("HTTP_GET"), Just("url"), Just("192.0.2.1"), Just("80"), Just("priority"),
            Just("virtual_router_id"), Just("51"), Just("\"quoted"), Just("#"), Just("@x"), Just("include"),
            Just("global_defs"), Just("virtual_ipaddress"), Just("authentication"), Just("group"),
            Just("$X=1"), Just("$X"), Just("${X}"), Just("$Y=${X}$Y"), Just("${Y}"), Just("\\\n"),
            Just("~SEQ(I,1,3)"),
        ], 0..120)) {
        let _ = common::parse("fuzz.conf", &words.join(" "));
    }

    #[test]
    fn mutated_seed_never_panics(cut in 0usize..2000, insert in "\\PC{0,8}") {
        let seed = include_str!("../../examples/seed/keepalived.conf");
        let mut at = cut.min(seed.len());
        while !seed.is_char_boundary(at) { at -= 1; }
        let text = format!("{}{}{}", &seed[..at], insert, &seed[at..]);
        let _ = common::parse("fuzz.conf", &text);
    }
}
