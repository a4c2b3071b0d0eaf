//! `track_file`, an instance's `track_file` and a real server's
//! `FILE_CHECK`: what the parser reads, warns about and refuses, and what a
//! file's value does to a VRRP instance (priority, FAULT, reverse, weight
//! 0, reloads) and to a real server (weight, failure), as keepalived's
//! track_file.c and check_file.c do.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::world::World;
use vrlb_core::config::{self, Diagnostic, Kind, NoIncludes, Options, Sink};
use vrlb_core::node::build::name_key;
use vrlb_core::node::{FileId, Input, InstanceId};
use vrlb_core::time::Instant;
use vrlb_core::vrrp::State;

#[derive(Default)]
struct Files {
    files: Vec<String>,
    instances: Vec<String>,
    servers: Vec<String>,
    warnings: Vec<String>,
}

impl Sink for Files {
    fn track_file(&mut self, f: &config::TrackFileConf<'_>) -> Result<(), Kind> {
        self.files.push(format!(
            "{} {} weight={} reverse={} init={:?}",
            f.name, f.path, f.weight, f.reverse, f.init
        ));
        Ok(())
    }
    fn vrrp_instance(&mut self, i: &config::VrrpInstance<'_>) -> Result<(), Kind> {
        for t in &i.track_files {
            self.instances
                .push(format!("{} {:?} {:?}", t.name, t.weight, t.reverse));
        }
        Ok(())
    }
    fn real_server(
        &mut self,
        _vs: &config::VirtualServer<'_>,
        rs: &config::RealServer<'_>,
    ) -> Result<(), Kind> {
        for f in &rs.file_checks {
            self.servers
                .push(format!("{} {:?} {:?}", f.name, f.weight, f.reverse));
        }
        Ok(())
    }
    fn diagnostic(&mut self, d: &Diagnostic) {
        self.warnings.push(d.to_string());
    }
}

fn parse(text: &str) -> (Files, Result<config::Summary, Diagnostic>) {
    let mut sink = Files::default();
    let r = config::parse(
        "k.conf",
        text,
        &Options::default(),
        &mut sink,
        &mut NoIncludes,
    );
    (sink, r)
}

const FORMS: &str = "\
track_file one {
    file /run/one
    weight -5 reverse
    init_file 7 overwrite
}
vrrp_track_file two {
    file \"/run/two file\"
    init_file
}
vrrp_instance VI {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.10
    }
    track_file {
        one
        two weight 10
        one weight -3 noreverse
    }
}
virtual_server 192.0.2.10 80 {
    protocol TCP
    lb_kind DR
    real_server 198.51.100.1 80 {
        FILE_CHECK {
            track_file one
            weight 2 reverse
        }
        FILE_CHECK {
            track_file two
        }
    }
}
";

#[test]
fn every_form_parses() {
    let (s, r) = parse(FORMS);
    r.unwrap();
    assert_eq!(
        s.files,
        [
            "one /run/one weight=-5 reverse=true init=Some(InitFile { value: 7, overwrite: true })",
            "two /run/two file weight=1 reverse=false init=Some(InitFile { value: 0, overwrite: false })",
        ]
    );
    assert_eq!(s.instances, ["one None None", "two Some(10) None"]);
    assert_eq!(s.servers, ["one Some(2) Some(true)", "two None None"]);
    assert_eq!(
        s.warnings,
        [
            "k.conf:6:1: warning: 'vrrp_track_file' is deprecated, use 'track_file'",
            "k.conf:19:9: warning: 'one': tracked twice in this block: the first entry is used",
        ]
    );
}

#[test]
fn bad_values_are_errors_naming_the_place() {
    let cases: &[(&str, &str)] = &[
        (
            "track_file f {\n file /x\n weight 1 sideways\n}",
            "k.conf:3:11: error: 'weight' value 'sideways' is not one of: reverse",
        ),
        (
            "track_file f {\n file /x\n weight 1000\n}",
            "k.conf:3:9: error: 'weight' value '1000' is out of range: expected -254..254",
        ),
        (
            "track_file f {\n file /x\n init_file soon\n}",
            "k.conf:3:12: error: 'init_file': expected a number or overwrite, found 'soon'",
        ),
        (
            "track_file {\n file /x\n}",
            "k.conf:1:11: error: 'track_file': expected a track_file name",
        ),
        (
            "vrrp_instance V {\n virtual_router_id 51\n track_file {\n  f weight 300\n }\n}",
            "k.conf:4:12: error: 'f' value '300' is out of range: expected -254..254",
        ),
        (
            "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.2 80 {\n  FILE_CHECK {\n   track_file f\n   weight 2147483648\n  }\n }\n}",
            "k.conf:5:11: error: 'weight' value '2147483648' is out of range: expected -2147483647..2147483647",
        ),
    ];
    for (text, want) in cases {
        let (_, r) = parse(text);
        let got = r.expect_err(text).to_string();
        assert!(got.starts_with(want), "{text:?}\n got: {got}\nwant: {want}");
    }
    // An unknown word in an entry is reported and skipped, as keepalived
    // reports it and goes on (so for every tracked kind).
    let (s, r) =
        parse("vrrp_instance V {\n virtual_router_id 51\n track_file {\n  f sideways\n }\n}");
    r.unwrap();
    assert!(
        s.warnings
            .iter()
            .any(|w| w.starts_with("k.conf:4:5: warning:") && w.contains("'sideways'")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn what_cannot_work_is_warned_about_and_left_out() {
    let text = "\
track_file nofile {
    weight 3
}
track_file big {
    file /run/big
    init_file 300
}
virtual_server 192.0.2.1 80 {
    protocol TCP
    lb_kind DR
    real_server 192.0.2.2 80 {
        FILE_CHECK {
            weight 0
        }
    }
}
";
    let (s, r) = parse(text);
    r.unwrap();
    assert_eq!(s.files.len(), 1, "{:?}", s.files);
    assert_eq!(
        s.warnings,
        [
            "k.conf:1:1: warning: 'nofile': no 'file' line: the track_file is ignored, as keepalived does",
            "k.conf:6:15: warning: 'init_file': a value outside -254..254 is written, though no VRRP priority can use it whole",
            "k.conf:13:13: warning: 'weight': 0 means the track_file's own weight and reverse, as keepalived takes it",
            "k.conf:12:9: warning: 'FILE_CHECK': has no track_file: this checker is ignored",
        ]
    );
    assert_eq!(s.servers, Vec::<String>::new());
}

/// One instance (priority 100) tracking `f` as `entry` says, the file's
/// block `file_block`, and one real server (weight 10) with a FILE_CHECK.
fn conf(file_block: &str, entry: &str, priority: u8, check: &str) -> String {
    format!(
        "\
track_file f {{
    file /run/f
{file_block}
}}
track_file unused {{
    file /run/unused
}}
vrrp_instance VI {{
    state MASTER
    interface eth0
    virtual_router_id 51
    priority {priority}
    virtual_ipaddress {{
        192.0.2.10
    }}
    track_file {{
        {entry}
        missing
    }}
}}
virtual_server 192.0.2.10 80 {{
    lb_algo wrr
    lb_kind DR
    protocol TCP
    real_server 198.51.100.1 80 {{
        weight 10
        FILE_CHECK {{
            track_file f
            {check}
        }}
    }}
}}
"
    )
}

fn file(w: &World) -> FileId {
    w.node.track_file_by_key(name_key("f")).unwrap()
}

fn set(w: &mut World, value: i32) {
    let file = file(w);
    w.input(Input::TrackFile { file, value });
}

fn vi(w: &World) -> (State, u8) {
    let i = w.node.instance(InstanceId(0)).unwrap();
    (i.state(), i.effective_priority())
}

fn server(w: &World) -> (bool, u32, Vec<(IpAddr, u32)>) {
    let (_, s) = w.node.servers().next().unwrap();
    (s.healthy, s.weight(), w.listed())
}

const RS: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));

#[test]
fn the_builder_warns_about_unknown_and_unused_files() {
    let w = World::built(&conf("", "f", 100, ""));
    assert_eq!(
        w.env.warnings,
        [
            "keepalived.conf:5:1: warning: 'unused': tracked by no vrrp_instance or FILE_CHECK: the file is not read",
            "keepalived.conf:18:9: warning: 'missing': no track_file of this name: not tracked",
        ]
    );
    assert_eq!(w.node.track_files().count(), 1, "only f is read");
}

#[test]
fn a_value_times_the_weight_moves_the_priority_and_below_minus_253_is_fault() {
    let mut w = World::new(&conf("", "f weight -10", 100, ""));
    w.run_until(Instant::from_secs(5));
    assert_eq!(vi(&w), (State::Master, 100));
    set(&mut w, 3);
    assert_eq!(vi(&w), (State::Master, 70));
    set(&mut w, -5);
    assert_eq!(vi(&w), (State::Master, 150));
    // 25 x -10 = -250: priority 1 at least, still no fault.
    set(&mut w, 25);
    assert_eq!(vi(&w), (State::Master, 1));
    // 26 x -10 = -260, below -253: FAULT.
    set(&mut w, 26);
    assert_eq!(vi(&w).0, State::Fault);
    set(&mut w, 0);
    w.run_until(Instant::from_secs(10));
    assert_eq!(vi(&w), (State::Master, 100));
    // A big positive product stops at 254.
    set(&mut w, -1000);
    assert_eq!(vi(&w), (State::Master, 254));
}

#[test]
fn reverse_turns_the_sign_and_weight_0_faults_on_non_zero() {
    let mut w = World::new(&conf("    weight 4 reverse", "f", 100, ""));
    set(&mut w, 5);
    assert_eq!(vi(&w).1, 80, "the track_file's weight and reverse");
    let mut w = World::new(&conf("    weight 4 reverse", "f noreverse", 100, ""));
    set(&mut w, 5);
    assert_eq!(vi(&w).1, 120, "noreverse on the entry wins");

    let mut w = World::new(&conf("    weight 0", "f", 100, ""));
    w.run_until(Instant::from_secs(5));
    assert_eq!(vi(&w).0, State::Master);
    set(&mut w, 1);
    assert_eq!(vi(&w), (State::Fault, 100));
    set(&mut w, 0);
    w.run_until(Instant::from_secs(10));
    assert_eq!(vi(&w).0, State::Master);

    // weight 0 reverse: a zero value is the failure.
    let mut w = World::new(&conf("    weight 0 reverse", "f", 100, ""));
    w.run_until(Instant::from_secs(5));
    assert_eq!(vi(&w).0, State::Fault);
    set(&mut w, 2);
    w.run_until(Instant::from_secs(10));
    assert_eq!(vi(&w).0, State::Master);
}

#[test]
fn an_address_owner_tracks_files_unweighted_as_keepalived_does() {
    let mut w = World::new(&conf("", "f", 255, ""));
    assert!(
        w.env.warnings.iter().any(|x| x.contains(
            "'f': weight ignored for an address owner (priority 255): tracked with weight 0"
        )),
        "{:?}",
        w.env.warnings
    );
    set(&mut w, 1);
    assert_eq!(vi(&w), (State::Fault, 255));
    let w = World::new(&conf("", "f weight 5", 255, ""));
    assert!(
        w.env.warnings.iter().any(|x| x.contains(
            "'f': an address owner (priority 255) tracks files only with weight 0: not tracked"
        )),
        "{:?}",
        w.env.warnings
    );
    assert!(
        w.node
            .instance(InstanceId(0))
            .unwrap()
            .config()
            .tracks
            .is_empty()
    );
}

#[test]
fn a_reload_keeps_the_value_and_applies_the_new_weight() {
    let mut w = World::new(&conf("", "f weight -10", 100, ""));
    w.run_until(Instant::from_secs(5));
    set(&mut w, 3);
    assert_eq!(vi(&w), (State::Master, 70));
    let id = file(&w);
    w.reload(&conf("", "f weight -20", 100, ""));
    assert_eq!(file(&w), id, "the file keeps its id");
    assert_eq!(w.node.track_file_value(id), Some(3));
    assert_eq!(vi(&w), (State::Master, 40), "3 x -20");
    // A reload that stops tracking it: the priority goes back.
    let untracked = conf("", "missing", 100, "").replace("track_file f\n", "track_file other\n");
    w.reload(&untracked);
    assert_eq!(vi(&w), (State::Master, 100));
    assert_eq!(w.node.track_file_by_key(name_key("f")), None);
    // Tracked again later: it starts from 0 until the driver reads it.
    w.reload(&conf("", "f weight -20", 100, ""));
    assert_eq!(vi(&w), (State::Master, 100));
    set(&mut w, 1);
    assert_eq!(vi(&w), (State::Master, 80));
}

#[test]
fn file_check_adds_to_the_real_server_weight_and_fails_it() {
    let mut w = World::new(&conf("", "f", 100, "weight 3"));
    assert_eq!(server(&w), (true, 10, vec![(RS, 10)]));
    set(&mut w, 4);
    assert_eq!(server(&w), (true, 22, vec![(RS, 22)]));
    set(&mut w, -3);
    assert_eq!(server(&w), (true, 1, vec![(RS, 1)]));
    // 10 - 15: the weight stops at 0, the server stays listed.
    set(&mut w, -5);
    assert_eq!(server(&w), (true, 0, vec![(RS, 0)]));
    // 3 x -715827883 = -2147483649, at most -2147483647: the check fails,
    // the server is taken out.
    set(&mut w, -715_827_883);
    assert!(!server(&w).0);
    assert_eq!(w.listed(), []);
    assert_eq!(w.health().last().map(|h| (h.1, h.2)), Some((RS, false)));
    set(&mut w, 0);
    assert_eq!(server(&w), (true, 10, vec![(RS, 10)]));
    assert_eq!(w.health().last().map(|h| (h.1, h.2)), Some((RS, true)));
}

#[test]
fn file_check_without_weight_takes_the_track_file_s_and_a_failed_file_starts_down() {
    let text = conf("    weight 0", "f weight 5", 100, "");
    let mut w = World::built(&text);
    let file = file(&w);
    w.node
        .handle(Instant::ZERO, Input::TrackFile { file, value: 1 });
    // The reload after the read: the server is built with the value.
    w.reload(&text);
    w.node.handle(Instant::ZERO, Input::Start);
    w.drain();
    assert!(!server(&w).0, "weight 0: a non-zero value fails it");
    assert_eq!(w.listed(), []);
    set(&mut w, 0);
    assert_eq!(server(&w), (true, 10, vec![(RS, 10)]));
}
