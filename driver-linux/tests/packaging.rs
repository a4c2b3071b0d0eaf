//! packaging/vrlb.service names commands this vrlb accepts: its
//! `ExecStartPre` check passes on the seed configuration, its `ExecStart`
//! arguments parse, and it asks for the protocol the daemon speaks
//! (`Type=notify`, a watchdog).

use std::path::Path;
use std::process::Command;

const UNIT: &str = include_str!("../../packaging/vrlb.service");
const INSTALLED: &str = "/usr/sbin/vrlb";
const CONFIG: &str = "/etc/keepalived/keepalived.conf";

/// The words of the unit's `key=` line.
fn command(key: &str) -> Vec<String> {
    let line = UNIT
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit"));
    line.split_whitespace().map(str::to_owned).collect()
}

/// `words` run with this build's vrlb and the seed in place of the
/// installed paths, and `extra` appended.
fn run(words: &[String], extra: &[&str]) -> std::process::Output {
    assert_eq!(words[0], INSTALLED, "{words:?}");
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seed/keepalived.conf");
    let args: Vec<String> = words[1..]
        .iter()
        .map(|w| {
            if w == CONFIG {
                seed.display().to_string()
            } else {
                w.clone()
            }
        })
        .collect();
    Command::new(env!("CARGO_BIN_EXE_vrlb"))
        .args(&args)
        .args(extra)
        .output()
        .expect("vrlb")
}

#[test]
fn the_units_commands_are_ones_this_vrlb_accepts() {
    let pre = run(&command("ExecStartPre"), &[]);
    assert!(
        pre.status.success(),
        "ExecStartPre: {}",
        String::from_utf8_lossy(&pre.stderr)
    );
    // `--help` after the unit's arguments: clap refuses an unknown one
    // before it prints help, and nothing starts.
    let start = run(&command("ExecStart"), &["--help"]);
    assert!(
        start.status.success(),
        "ExecStart: {}",
        String::from_utf8_lossy(&start.stderr)
    );
    assert!(String::from_utf8_lossy(&start.stdout).contains("Usage: vrlb run"));
    for want in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(UNIT.lines().any(|l| l.starts_with(want)), "{want}");
    }
}
