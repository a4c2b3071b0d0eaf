//! `vrlb run` refuses bad input before it touches the network: a config
//! error exits non-zero with the parser's message (file, line, column);
//! missing capabilities exit non-zero with one line naming them. Neither
//! needs a namespace: both stop before any socket is opened.

use std::process::Command;

fn vrlb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vrlb"))
}

fn temp(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vrlb-refuses-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_config_error_stops_the_start_with_the_parsers_message() {
    let conf = temp(
        "bad.conf",
        "vrrp_instance X {\n  interface eth0\n  virtual_router_id 300\n}\n",
    );
    let state = conf.with_file_name("state");
    let out = vrlb()
        .args(["run", "-f", conf.to_str().unwrap(), "-p"])
        .arg(conf.with_file_name("pid"))
        .arg("--state-file")
        .arg(&state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.conf:3:21: error: 'virtual_router_id' value '300' is out of range"),
        "{err}"
    );
    // Nothing was written: no pid file, no VIP record.
    assert!(!conf.with_file_name("pid").exists());
    assert!(!state.exists());
}

#[test]
fn missing_capabilities_are_named() {
    let root = nix_is_root();
    let have_setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !(root && have_setpriv) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but this test needs root (have: {root}) and setpriv (have: {have_setpriv})"
        );
        eprintln!("skipping: needs root and setpriv to drop capabilities");
        return;
    }
    let conf = temp(
        "ok.conf",
        "vrrp_instance X {\n  interface lo\n  virtual_router_id 9\n  virtual_ipaddress {\n    192.0.2.9/32\n  }\n}\n",
    );
    let out = Command::new("setpriv")
        .args([
            "--inh-caps=-all",
            "--bounding-set=-net_raw,-net_admin",
            "--",
        ])
        .arg(env!("CARGO_BIN_EXE_vrlb"))
        .args(["run", "-f", conf.to_str().unwrap(), "-p"])
        .arg(conf.with_file_name("pid2"))
        .arg("--state-file")
        .arg(conf.with_file_name("state2"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("vrlb: vrlb run needs CAP_NET_RAW and CAP_NET_ADMIN"),
        "{err}"
    );
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
    })
}
