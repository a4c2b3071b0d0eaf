//! What Debian's keepalived (2.2.7) makes of the shipped anycast director
//! configuration (`examples/anycast/keepalived.conf`), as docs/anycast.md
//! states it: `anycast` is its only objection, reported with file and line
//! as an unknown keyword; `keepalived -t` fails the file for it (exit 5)
//! while a running keepalived logs the same line and carries on setting up
//! the virtual server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vrlb_tests::netns::{Lab, TempDir, have, prerequisite, wait_until};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/anycast/keepalived.conf")
}

/// The 1-based line of the `anycast` keyword in `text`.
fn anycast_line(text: &str) -> usize {
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == "anycast")
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines.len(), 1, "one `anycast` line expected: {lines:?}");
    lines[0]
}

/// What keepalived 2.2.7 prints for it (`report_config_error`, "Unknown
/// keyword", keepalived/core/parser.c).
fn unknown_keyword(path: &Path, line: usize) -> String {
    format!(
        "({}: Line {line}) Unknown keyword 'anycast'",
        path.display()
    )
}

#[test]
fn keepalived_config_test_objects_only_to_anycast() {
    if !prerequisite(have("keepalived"), "keepalived is not installed") {
        return;
    }
    let path = example();
    let text = std::fs::read_to_string(&path).expect("example");
    let out = Command::new("keepalived")
        .args(["-t", "-f", path.to_str().unwrap()])
        .output()
        .expect("keepalived runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Exit 5: KEEPALIVED_EXIT_CONFIG_TEST, the file has an error.
    assert_eq!(out.status.code(), Some(5), "keepalived -t: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines,
        [unknown_keyword(&path, anycast_line(&text))],
        "keepalived -t said more (or else) than the unknown keyword"
    );

    // Without the keyword the same file passes: nothing else is amiss.
    let dir = TempDir::new("anycastka");
    let without = dir.path("without-anycast.conf");
    let kept: Vec<&str> = text.lines().filter(|l| l.trim() != "anycast").collect();
    std::fs::write(&without, kept.join("\n") + "\n").expect("config");
    let out = Command::new("keepalived")
        .args(["-t", "-f", without.to_str().unwrap()])
        .output()
        .expect("keepalived runs");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "without anycast: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn running_keepalived_logs_anycast_and_carries_on() {
    let Some(mut lab) = Lab::new(&["keepalived"]) else {
        return;
    };
    let dir = TempDir::new("anycastkr");
    let ns = lab.netns("k");
    let path = example();
    let text = std::fs::read_to_string(&path).expect("example");
    let log = dir.path("keepalived.log");
    // -C: the checker (LVS) side only, the part this file configures; -l
    // -D: a detailed log on the console; -n: in the foreground.
    let pid = lab.spawn(
        &ns,
        &[
            "keepalived",
            "-n",
            "-l",
            "-D",
            "-C",
            "-f",
            path.to_str().unwrap(),
            "-p",
            dir.path("k.pid").to_str().unwrap(),
            "-c",
            dir.path("c.pid").to_str().unwrap(),
        ],
        &log,
    );
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    // Past the keyword, the checker process goes on to set up the virtual
    // server in IPVS (which a kernel without IPVS then refuses).
    let carried_on = wait_until(Duration::from_secs(10), || {
        read().contains("Initializing ipvs")
    });
    lab.signal(pid, "TERM");
    let log = read();
    assert!(carried_on.is_some(), "keepalived did not get on: {log}");
    let warning = unknown_keyword(&path, anycast_line(&text));
    let at = log
        .find(&warning)
        .unwrap_or_else(|| panic!("no `{warning}` in {log}"));
    assert!(
        at < log.find("Initializing ipvs").unwrap(),
        "the warning came after the set-up: {log}"
    );
    assert_eq!(log.matches("Unknown keyword").count(), 1, "{log}");
}
