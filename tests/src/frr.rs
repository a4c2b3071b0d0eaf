//! FRR (zebra + bgpd) in a test's network namespace.
//!
//! FRR's daemons drop privileges to the `frr` user, and by default put
//! their pid files and sockets in /var/run/frr, shared by every namespace.
//! Each instance here gets its own runtime directory instead (owned by
//! `frr`: `-i` pid file, `-z` zebra's API socket, `--vty_socket`), no TCP
//! vty (`-P 0`), and its processes belong to the [`Lab`], which kills
//! them when it drops.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::netns::Lab;

/// Paths of the daemons (Debian's frr package).
const ZEBRA: &str = "/usr/lib/frr/zebra";
const BGPD: &str = "/usr/lib/frr/bgpd";

/// Whether FRR's zebra, bgpd and vtysh are installed.
pub fn installed() -> bool {
    Path::new(ZEBRA).exists() && Path::new(BGPD).exists() && crate::netns::have("vtysh")
}

/// One FRR instance: zebra and bgpd in one namespace.
pub struct Frr {
    /// Its runtime directory (configs, pid files, sockets, logs).
    pub dir: PathBuf,
    /// zebra's pid (a child of the lab, as bgpd is).
    pub zebra: u32,
    /// bgpd's pid.
    pub bgpd: u32,
}

impl Frr {
    /// Starts zebra, then bgpd with `bgpd_conf` (its text), in `ns`, with
    /// runtime directory `dir` (made here, given to the `frr` user).
    pub fn start(lab: &mut Lab, ns: &str, dir: &Path, bgpd_conf: &str) -> Frr {
        std::fs::create_dir_all(dir).expect("FRR directory");
        let zebra_conf = dir.join("zebra.conf");
        std::fs::write(&zebra_conf, format!("hostname {ns}\n")).expect("zebra.conf");
        let bgpd_path = dir.join("bgpd.conf");
        std::fs::write(&bgpd_path, bgpd_conf).expect("bgpd.conf");
        let frr = nix::unistd::User::from_name("frr")
            .ok()
            .flatten()
            .expect("user frr (Debian's frr package makes it)");
        for path in [dir, &zebra_conf, &bgpd_path] {
            nix::unistd::chown(path, Some(frr.uid), Some(frr.gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        }
        let zserv = dir.join("zserv.api");
        let common = |conf: &Path, pid: &str| -> Vec<String> {
            [
                "-P",
                "0",
                "-f",
                conf.to_str().unwrap(),
                "-i",
                dir.join(pid).to_str().unwrap(),
                "-z",
                zserv.to_str().unwrap(),
                "--vty_socket",
                dir.to_str().unwrap(),
            ]
            .map(String::from)
            .to_vec()
        };
        let start = |lab: &mut Lab, daemon: &str, args: Vec<String>, log: &str| {
            let mut cmd = vec![daemon];
            cmd.extend(args.iter().map(String::as_str));
            lab.spawn(ns, &cmd, &dir.join(log))
        };
        let zebra = start(lab, ZEBRA, common(&zebra_conf, "zebra.pid"), "zebra.log");
        // bgpd keeps trying zebra's socket until zebra has made it.
        let bgpd = start(lab, BGPD, common(&bgpd_path, "bgpd.pid"), "bgpd.log");
        Frr {
            dir: dir.to_path_buf(),
            zebra,
            bgpd,
        }
    }

    /// `vtysh -c COMMAND` against this instance; its output.
    pub fn vtysh(&self, command: &str) -> String {
        let out = Command::new("vtysh")
            .arg("--vty_socket")
            .arg(&self.dir)
            .args(["-c", command])
            .output()
            .expect("vtysh runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The daemons' logs, for a failure message.
    pub fn logs(&self) -> String {
        ["zebra.log", "bgpd.log"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
                format!("--- {f}\n{text}")
            })
            .collect()
    }
}
