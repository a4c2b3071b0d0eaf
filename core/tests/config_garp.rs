//! How gratuitous ARPs and NAs are spaced (config/garp.rs):
//! `vrrp_garp_interval` / `vrrp_gna_interval` in `global_defs` and
//! `garp_group` blocks, with keepalived's units (seconds, µs resolution),
//! 0 read as keepalived's default (no delay) with a warning.

use vrlb_core::config::{self, GarpGroupConf, GlobalDefs, NoIncludes, Options, Pos, Sink};
use vrlb_core::time::Duration;

/// (garp_interval, gna_interval, interfaces, where) of each group.
type Group = (Option<Duration>, Option<Duration>, Vec<String>, Pos);

#[derive(Default)]
struct Seen {
    global: Option<(Option<Duration>, Option<Duration>)>,
    groups: Vec<Group>,
    warnings: Vec<String>,
}

impl Sink for Seen {
    fn global_defs(&mut self, g: &GlobalDefs<'_>) -> Result<(), config::Kind> {
        self.global = Some((g.garp_interval, g.gna_interval));
        Ok(())
    }
    fn garp_group(&mut self, g: &GarpGroupConf<'_>) -> Result<(), config::Kind> {
        self.groups.push((
            g.garp_interval,
            g.gna_interval,
            g.interfaces.iter().map(|s| s.to_string()).collect(),
            g.pos,
        ));
        Ok(())
    }
    fn diagnostic(&mut self, d: &config::Diagnostic) {
        self.warnings.push(d.to_string());
    }
}

fn parse(text: &str) -> Seen {
    let mut s = Seen::default();
    config::parse("g.conf", text, &Options::default(), &mut s, &mut NoIncludes)
        .unwrap_or_else(|e| panic!("{e}"));
    s
}

fn ms(n: u64) -> Option<Duration> {
    Some(Duration::from_millis(n))
}

#[test]
fn global_intervals_in_seconds_with_microseconds() {
    let s = parse("global_defs {\n vrrp_garp_interval 0.25\n vrrp_gna_interval 0.000001\n}\n");
    assert_eq!(s.global, Some((ms(250), Some(Duration::from_micros(1)))));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn zero_is_keepalived_default_with_a_warning() {
    let s = parse("global_defs {\n vrrp_garp_interval 0\n vrrp_gna_interval 0\n}\n");
    assert_eq!(s.global, Some((None, None)));
    assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
    assert!(
        s.warnings[0].starts_with("g.conf:2:2: warning: 'vrrp_garp_interval': 0 means no delay"),
        "{}",
        s.warnings[0]
    );
}

#[test]
fn garp_groups_with_one_interface_or_a_list() {
    let s = parse(
        "garp_group {\n garp_interval 0.1\n interface eth0\n}\n\
         garp_group {\n gna_interval 0.02\n interfaces {\n  eth1\n  eth2\n }\n}\n",
    );
    assert_eq!(
        s.groups,
        vec![
            (
                ms(100),
                None,
                vec!["eth0".to_string()],
                Pos { line: 1, col: 1 }
            ),
            (
                None,
                ms(20),
                vec!["eth1".to_string(), "eth2".to_string()],
                Pos { line: 5, col: 1 }
            ),
        ]
    );
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}
