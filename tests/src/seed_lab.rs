//! The seed's lab as `vrlb lab up` builds it (a client, two directors,
//! two real servers, a switch), driven from a test: its commands, the
//! directors' control sockets, logs and pids, and `vrlb lab down` when the
//! test ends, passed or not.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::netns::{Lab, TempDir, binary};

/// The lab `vrlb lab up` built, taken down on drop (then the harness
/// kills anything left in its namespaces and deletes them).
pub struct Seed {
    /// The harness (lock, cleanup).
    pub lab: Lab,
    _files: TempDir,
    /// The `vrlb` binary.
    pub vrlb: PathBuf,
    /// Namespace prefix (`PREFIX-client`, `PREFIX-d1`, ...).
    pub prefix: String,
    /// The lab's directory (configurations, logs, sockets).
    pub dir: PathBuf,
    /// Whether `vrlb lab down` is still owed.
    pub up: bool,
}

impl Seed {
    /// Takes the harness's lock with `tools` required, and claims the
    /// namespaces `vrlb lab up` will make so they go even on failure;
    /// the lab is not built yet (`lab_cmd("up")`).
    pub fn new(tools: &[&str]) -> Option<Seed> {
        let lab = Lab::new(tools)?;
        let files = TempDir::new("seed");
        let prefix = lab.tag.clone();
        let dir = files.path("lab");
        let mut seed = Seed {
            lab,
            _files: files,
            vrlb: binary("vrlb"),
            prefix,
            dir,
            up: true,
        };
        for role in ["client", "d1", "d2", "rs1", "rs2", "sw"] {
            let ns = seed.ns(role);
            seed.lab.adopt_netns(&ns);
        }
        Some(seed)
    }

    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// `vrlb lab ACTION --prefix P --dir D`.
    pub fn lab_cmd(&self, action: &str) -> std::process::Output {
        Command::new(&self.vrlb)
            .args(["lab", action, "--prefix", &self.prefix, "--dir"])
            .arg(&self.dir)
            .output()
            .expect("vrlb lab")
    }

    /// `vrlb status|conns [--json]` against director `n` (0 or 1).
    pub fn ask(&self, what: &str, n: usize, json: bool) -> String {
        let sock = self.dir.join(format!("d{}.sock", n + 1));
        let mut c = Command::new(&self.vrlb);
        c.arg(what).arg("--control-socket").arg(&sock);
        if json {
            c.arg("--json");
        }
        let out = c.output().expect("vrlb status");
        assert!(
            out.status.success(),
            "vrlb {what} on d{}: {}",
            n + 1,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    pub fn json(&self, what: &str, n: usize) -> Value {
        serde_json::from_str(&self.ask(what, n, true)).expect("JSON")
    }

    pub fn pid(&self, n: usize) -> u32 {
        let path = self.dir.join(format!("d{}.pid", n + 1));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .parse()
            .expect("pid")
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Fails with the directors' logs.
    pub fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n--- d1.log\n{}\n--- d1-restart.log\n{}\n--- d2.log\n{}",
            self.read("d1.log"),
            self.read("d1-restart.log"),
            self.read("d2.log")
        );
    }
}

impl Drop for Seed {
    fn drop(&mut self) {
        if self.up {
            let _ = self.lab_cmd("down");
        }
    }
}
