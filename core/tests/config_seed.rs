//! The seed document's keepalived.conf (examples/seed/keepalived.conf,
//! copied unchanged) means exactly what it says.

use std::net::IpAddr;

use vrlb_core::config::{
    self, AuthConf, CheckKind, ForwardKind, InitialState, Kind, Protocol, Scheduler, VsKey,
};
use vrlb_core::time::Duration;

#[derive(Default)]
struct Seed {
    instances: Vec<String>,
    services: Vec<String>,
    servers: Vec<String>,
    warnings: Vec<String>,
}

impl config::Sink for Seed {
    fn vrrp_instance(&mut self, i: &config::VrrpInstance<'_>) -> Result<(), Kind> {
        assert_eq!(i.name, "VI_1");
        assert_eq!(i.state, InitialState::Master);
        assert_eq!(i.interface, Some("eth0"));
        assert_eq!(i.vrid, 51);
        assert_eq!(i.priority, 100);
        assert_eq!(i.advert_interval_cs, 500);
        assert_eq!(i.auth, Some(AuthConf::Pass("1111")));
        let vips: Vec<IpAddr> = i.vips.iter().map(|v| v.addr).collect();
        assert_eq!(vips, ["192.168.2.240".parse::<IpAddr>().unwrap()]);
        assert!(i.preempt);
        self.instances.push(i.name.to_string());
        Ok(())
    }
    fn virtual_server(&mut self, vs: &config::VirtualServer<'_>) -> Result<(), Kind> {
        assert_eq!(vs.key, VsKey::Addr("192.168.2.240".parse().unwrap(), 80));
        assert_eq!(vs.delay_loop, Duration::from_secs(6));
        assert_eq!(vs.scheduler, Scheduler::Wlc);
        assert_eq!(vs.kind, ForwardKind::Dr);
        assert_eq!(vs.persistence_timeout, Some(Duration::from_secs(60)));
        assert_eq!(vs.protocol, Protocol::Tcp);
        assert_eq!(vs.real_servers, 2);
        self.services.push(format!("{:?}", vs.key));
        Ok(())
    }
    fn real_server(
        &mut self,
        _vs: &config::VirtualServer<'_>,
        rs: &config::RealServer<'_>,
    ) -> Result<(), Kind> {
        assert_eq!(rs.port, 80);
        assert_eq!(rs.weight, 3);
        assert_eq!(rs.checkers.len(), 1);
        let c = &rs.checkers[0];
        assert_eq!(c.kind, CheckKind::Tcp);
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(10)));
        assert_eq!(c.retry, Some(3));
        assert_eq!(c.delay_before_retry, Some(Duration::from_secs(3)));
        assert_eq!(c.connect_port, Some(80));
        self.servers.push(rs.addr.to_string());
        Ok(())
    }
    fn diagnostic(&mut self, d: &config::Diagnostic) {
        self.warnings.push(d.to_string());
    }
}

#[test]
fn seed_config_yields_exactly_what_it_says() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/seed/keepalived.conf"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut seed = Seed::default();
    let summary = config::parse(
        "keepalived.conf",
        &text,
        &config::Options::default(),
        &mut seed,
        &mut config::NoIncludes,
    )
    .unwrap();
    assert_eq!(seed.instances, ["VI_1"]);
    assert_eq!(seed.services.len(), 1);
    assert_eq!(seed.servers, ["192.168.2.212", "192.168.2.213"]);
    assert_eq!(
        summary.items, 5,
        "global_defs, instance, service, two servers"
    );
    // smtp_server is kept as written, never resolved (and, with no
    // smtp_alert, never used); nb_get_retry is an alias.
    assert_eq!(
        seed.warnings,
        [
            "keepalived.conf:39:11: warning: 'nb_get_retry' is deprecated, use 'retry'",
            "keepalived.conf:48:11: warning: 'nb_get_retry' is deprecated, use 'retry'",
        ]
    );
}

#[test]
fn the_seed_documents_typo_gets_a_suggestion() {
    // The document's prose places this line inside the instance.
    let text = "vrrp_instance VI_1 {\n    virtual_router_id 51\n    lvs_sync_daemon_inteface eth0\n    virtual_ipaddress {\n        192.0.2.240\n    }\n}\n";
    struct Warn(Vec<String>);
    impl config::Sink for Warn {
        fn diagnostic(&mut self, d: &config::Diagnostic) {
            self.0.push(d.to_string());
        }
    }
    let mut w = Warn(Vec::new());
    config::parse(
        "k.conf",
        text,
        &config::Options::default(),
        &mut w,
        &mut config::NoIncludes,
    )
    .unwrap();
    assert_eq!(
        w.0,
        [
            "k.conf:3:5: warning: unknown keyword 'lvs_sync_daemon_inteface' in vrrp_instance, skipped (did you mean 'lvs_sync_daemon_interface'?)"
        ]
    );
}

/// One field of every virtual server of `text`, in order, and the
/// parse's diagnostics.
fn per_virtual_server<T>(
    text: &str,
    field: fn(&config::VirtualServer<'_>) -> T,
) -> (Vec<T>, Vec<String>) {
    struct Each<T> {
        field: fn(&config::VirtualServer<'_>) -> T,
        seen: Vec<T>,
        warnings: Vec<String>,
    }
    impl<T> config::Sink for Each<T> {
        fn virtual_server(&mut self, vs: &config::VirtualServer<'_>) -> Result<(), Kind> {
            self.seen.push((self.field)(vs));
            Ok(())
        }
        fn diagnostic(&mut self, d: &config::Diagnostic) {
            self.warnings.push(d.to_string());
        }
    }
    let mut each = Each {
        field,
        seen: Vec::new(),
        warnings: Vec::new(),
    };
    config::parse(
        "k.conf",
        text,
        &config::Options::default(),
        &mut each,
        &mut config::NoIncludes,
    )
    .unwrap();
    (each.seen, each.warnings)
}

#[test]
fn sorry_server_lvs_method_sets_the_sorry_servers_method_only_after_sorry_server() {
    let text = "virtual_server 192.0.2.1 80 {\n protocol TCP\n lb_kind DR\n sorry_server 192.0.2.9 80\n sorry_server_lvs_method TUN\n}\n\
                virtual_server 192.0.2.2 80 {\n protocol TCP\n lb_kind DR\n sorry_server_lvs_method NAT\n sorry_server 192.0.2.9 80\n}\n\
                virtual_server 192.0.2.3 80 {\n protocol TCP\n lb_kind DR\n sorry_server 192.0.2.9 80\n}\n";
    let (sorry, warnings) = per_virtual_server(text, |vs| vs.sorry_server_kind);
    // keepalived ignores it before (or without) a sorry_server; unset, the
    // sorry server forwards by the virtual server's lb_kind.
    assert_eq!(sorry, [Some(ForwardKind::Tun), None, None]);
    assert_eq!(
        warnings,
        ["k.conf:10:2: warning: 'sorry_server_lvs_method': ignored: no sorry_server before it"]
    );
}

#[test]
fn a_virtual_server_without_protocol_is_udp_as_in_keepalived() {
    // keepalived 2.2.7: "no protocol set - defaulting to UDP" (what the
    // kernel takes for protocol 0). A fwmark service has no protocol.
    let text = "virtual_server 192.0.2.1 80 {\n lb_kind DR\n}\n\
                virtual_server 192.0.2.2 80 {\n lb_kind DR\n protocol TCP\n}\n\
                virtual_server fwmark 7 {\n lb_kind DR\n}\n";
    let (seen, warnings) = per_virtual_server(text, |vs| vs.protocol);
    assert_eq!(seen.len(), 3, "every virtual server reaches the sink");
    assert_eq!(seen[..2], [Protocol::Udp, Protocol::Tcp]);
    assert_eq!(
        warnings,
        [
            "k.conf:1:1: warning: 'protocol': not set: UDP assumed, as keepalived does (write `protocol TCP` for TCP)"
        ]
    );
}
