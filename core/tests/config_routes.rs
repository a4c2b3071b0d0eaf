//! `virtual_routes` and `static_routes`: every form keepalived's samples
//! and the corpus use, read to the route it means; bad lines refused at
//! their place.

use vrlb_core::config::{self, Diagnostic, Kind, NoIncludes, Options, RouteConf, Sink};

/// Each route as one line of text, `static` or the instance's name first.
#[derive(Default)]
struct Routes {
    lines: Vec<String>,
    warnings: Vec<String>,
}

fn line(owner: &str, r: &RouteConf<'_>) -> String {
    format!(
        "{owner}: {:?} {}/{} via={:?} src={:?} dev={:?} scope={:?} table={:?} metric={:?} onlink={} at {}:{}",
        r.kind,
        r.dst,
        r.prefix_len,
        r.via,
        r.src,
        r.dev,
        r.scope,
        r.table,
        r.metric,
        r.onlink,
        r.pos.line,
        r.pos.col
    )
}

impl Sink for Routes {
    fn vrrp_instance(&mut self, i: &config::VrrpInstance<'_>) -> Result<(), Kind> {
        for r in &i.virtual_routes {
            self.lines.push(line(i.name, r));
        }
        Ok(())
    }
    fn static_routes(&mut self, routes: &[RouteConf<'_>]) -> Result<(), Kind> {
        for r in routes {
            self.lines.push(line("static", r));
        }
        Ok(())
    }
    fn diagnostic(&mut self, d: &Diagnostic) {
        self.warnings.push(d.to_string());
    }
}

fn parse(text: &str) -> Result<Routes, String> {
    let mut routes = Routes::default();
    config::parse(
        "k.conf",
        text,
        &Options::default(),
        &mut routes,
        &mut NoIncludes,
    )
    .map_err(|d| d.to_string())?;
    Ok(routes)
}

fn instance(routes: &str) -> String {
    format!(
        "vrrp_instance VI {{\n interface eth0\n virtual_router_id 51\n virtual_routes {{\n{routes}\n }}\n virtual_ipaddress {{\n  192.0.2.240\n }}\n}}\n"
    )
}

#[test]
fn keepalived_samples_forms() {
    // keepalived.conf.vrrp.routes, both blocks.
    let text = "static_routes {\n    src 192.168.100.1 192.168.209.0/24 via 192.168.200.254 dev eth0\n    192.168.212.0/24 dev eth3 scope site\n}\n"
        .to_string()
        + &instance(
            "  src 192.168.100.1 to 192.168.109.0/24 via 192.168.200.254 dev eth1\n  192.168.112.0/24 via 192.168.100.254\n  blackhole 192.168.114.0/24\n  0.0.0.0/0 gw 192.168.0.1 table 100\n  192.168.200.0/24 dev eth1 table main metric 7 onlink no_track",
        );
    let r = parse(&text).unwrap();
    assert_eq!(
        r.lines,
        [
            "static: Unicast 192.168.209.0/24 via=Some(192.168.200.254) src=Some(192.168.100.1) dev=Some(\"eth0\") scope=None table=None metric=None onlink=false at 2:5",
            "static: Unicast 192.168.212.0/24 via=None src=None dev=Some(\"eth3\") scope=Some(\"site\") table=None metric=None onlink=false at 3:5",
            "VI: Unicast 192.168.109.0/24 via=Some(192.168.200.254) src=Some(192.168.100.1) dev=Some(\"eth1\") scope=None table=None metric=None onlink=false at 9:3",
            "VI: Unicast 192.168.112.0/24 via=Some(192.168.100.254) src=None dev=None scope=None table=None metric=None onlink=false at 10:3",
            "VI: Blackhole 192.168.114.0/24 via=None src=None dev=None scope=None table=None metric=None onlink=false at 11:3",
            "VI: Unicast 0.0.0.0/0 via=Some(192.168.0.1) src=None dev=None scope=None table=Some(100) metric=None onlink=false at 12:3",
            "VI: Unicast 192.168.200.0/24 via=None src=None dev=Some(\"eth1\") scope=None table=Some(254) metric=Some(7) onlink=true at 13:3",
        ]
    );
    // `gw` is the old spelling of `via`.
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("12:13"), "{}", r.warnings[0]);
    assert!(r.warnings[0].contains("'via'"), "{}", r.warnings[0]);
}

#[test]
fn default_routes_take_the_family_of_their_gateway() {
    // The corpus's keepalived-devel-tools config.
    let r = parse(&instance(
        "  default via 82.94.225.1 dev eth1 src 82.94.225.89\n  2001:db8:29::/64 dev eth1 src 2001:db8:29::89 metric 256\n  default via inet6 2001:db8:29::1 dev eth1\n  default dev eth1\n  192.0.2.7 dev eth1",
    ))
    .unwrap();
    let dsts: Vec<&str> = r
        .lines
        .iter()
        .map(|l| l.split(' ').nth(2).unwrap())
        .collect();
    assert_eq!(
        dsts,
        [
            "0.0.0.0/0",
            "2001:db8:29::/64",
            "::/0",
            "0.0.0.0/0",
            "192.0.2.7/32"
        ]
    );
    assert!(
        r.lines[2].contains("via=Some(2001:db8:29::1)"),
        "{}",
        r.lines[2]
    );
    assert!(r.lines[1].contains("metric=Some(256)"), "{}", r.lines[1]);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn tuning_options_and_multipath_are_warned_about_and_left_out() {
    let r = parse(&instance(
        "  192.0.2.0/24 via 198.51.100.1 mtu 1400 dev eth1\n  203.0.113.0/24 via 198.51.100.1 or 198.51.100.2",
    ))
    .unwrap();
    assert_eq!(r.lines.len(), 2);
    assert!(r.lines[0].contains("dev=Some(\"eth1\")"), "{}", r.lines[0]);
    assert!(
        r.lines[1].contains("via=Some(198.51.100.1)"),
        "{}",
        r.lines[1]
    );
    assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("5:33") && r.warnings[0].contains("'mtu'"));
    assert!(r.warnings[1].contains("6:35") && r.warnings[1].contains("multipath"));
}

#[test]
fn bad_route_lines_are_refused_at_their_place() {
    let cases = [
        (
            "  192.0.2.0/24 via 198.51.100.1 weight 3",
            "5:33",
            "'virtual_routes' value 'weight' is not one of",
        ),
        (
            "  via 198.51.100.1 dev eth1",
            "5:28",
            "'virtual_routes': expected a destination prefix, found the end of the line",
        ),
        ("  192.0.2.0/24 via 2001:db8::1", "5:3", "one family"),
        (
            "  192.0.2.0/24 dev eth1 table vrf-red",
            "5:31",
            "'table' value 'vrf-red'",
        ),
        (
            "  192.0.2.0/24 dev eth1 table 0",
            "5:31",
            "'table' value '0'",
        ),
        (
            "  192.0.2.0/24 dev eth1 scope galaxy",
            "5:31",
            "'scope' value 'galaxy'",
        ),
        (
            "  192.0.2.0/24 dev eth1 metric 4294967296",
            "5:32",
            "expected a number",
        ),
        (
            "  192.0.2.0/24 via",
            "5:19",
            "'via': expected an address, found the end of the line",
        ),
        (
            "  192.0.2.0/24 192.0.2.0/25",
            "5:16",
            "'virtual_routes' value '192.0.2.0/25'",
        ),
        (
            "  blackhole unreachable 192.0.2.0/24",
            "5:13",
            "'virtual_routes' value 'unreachable'",
        ),
        (
            "  192.0.2.0/24 to 192.0.2.0/25",
            "5:16",
            "'virtual_routes' value 'to'",
        ),
    ];
    for (route, at, message) in cases {
        let err = match parse(&instance(route)) {
            Ok(r) => panic!("{route:?} accepted: {:?}", r.lines),
            Err(e) => e,
        };
        assert!(err.contains(&format!("k.conf:{at}")), "{route:?}: {err}");
        assert!(err.contains(message), "{route:?}: {err}");
    }
}

#[test]
fn a_block_holds_at_most_max_routes() {
    let many: String = (0..=config::MAX_ROUTES)
        .map(|i| format!("  192.0.2.{i} dev eth1\n"))
        .collect();
    let err = parse(&instance(many.trim_end())).err().unwrap();
    assert!(err.contains("routes in one block"), "{err}");
}
