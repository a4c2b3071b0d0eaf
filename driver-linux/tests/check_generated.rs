//! `vrlb check` reads keepalived's generating syntax as keepalived does:
//! `@id` lines for this host's name when no `-i` is given, `~SEQ` lines
//! and `${_INSTANCE}`; `${_ENV NAME}` from its environment and
//! `${_RANDOM MIN MAX}`.

use std::process::Command;

#[test]
fn the_host_name_selects_conditional_lines_and_sequences_expand() {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let id = host.trim().split('.').next().unwrap().to_string();
    let text = format!(
        "vrrp_instance VI_1 {{\n  interface eth0\n  virtual_router_id 51\n  @{id} priority 150\n  @^{id} priority 90\n  virtual_ipaddress {{\n    ~SEQ(i, 10, 12) 192.0.2.${{i}}/24\n  }}\n  notify_master \"/bin/true ${{_INSTANCE}}\"\n}}\n"
    );
    let dir = std::env::temp_dir().join(format!("vrlb-check-generated-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("keepalived.conf");
    std::fs::write(&conf, text).unwrap();
    let check = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vrlb"))
            .args(["check", "-f", conf.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let mine = check(&[]);
    assert!(mine.contains("priority 150"), "{mine}");
    for vip in ["192.0.2.10/24", "192.0.2.11/24", "192.0.2.12/24"] {
        assert!(mine.contains(&format!("VIP {vip}\n")), "{mine}");
    }
    assert!(mine.contains(&format!("runs \"/bin/true {id}\"")), "{mine}");
    let other = check(&["-i", "another-director"]);
    assert!(other.contains("priority 90"), "{other}");
    assert!(
        other.contains("runs \"/bin/true another-director\""),
        "{other}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn env_and_random_are_read_from_the_process() {
    let text = "vrrp_instance VI_1 {\n  interface ${_ENV VRLB_TEST_IFACE}\n  virtual_router_id ${_RANDOM 40 60}\n  priority ${_RANDOM 120 120}\n  virtual_ipaddress {\n    192.0.2.10/24\n  }\n}\n";
    let dir = std::env::temp_dir().join(format!("vrlb-check-builtins-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("keepalived.conf");
    std::fs::write(&conf, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vrlb"))
        .args(["check", "-f", conf.to_str().unwrap()])
        .env("VRLB_TEST_IFACE", "eth7")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" on eth7, "), "{stdout}");
    assert!(stdout.contains("priority 120,"), "{stdout}");
    let vrid: u32 = stdout
        .split("VRID ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no VRID in {stdout}"));
    assert!((40..=60).contains(&vrid), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}
