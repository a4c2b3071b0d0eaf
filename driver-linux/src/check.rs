//! `vrlb check -f FILE`: validates a configuration the way the daemon will
//! load it (parse, then build a node, so duplicate names and clashing VRIDs
//! are found too) and says what it means. A missing interface is a warning
//! here: at run time that instance waits in Fault until it appears.

use std::net::IpAddr;
use std::path::Path;

use vrlb_core::config::{Diagnostic, Options};
use vrlb_core::node::IfaceId;
use vrlb_core::node::build::{self, Environment};
use vrlb_core::time::Instant;
use vrlb_core::vrrp::Family;

use crate::config_file::{FsIncluder, read_config};
use crate::describe::Describe;
use crate::node_memory::NodeMemory;

/// What `vrlb check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// What the configuration means.
    pub description: String,
    /// Warnings, `file:line:col: warning: ...`.
    pub warnings: Vec<String>,
    /// The error that refuses the file, if any.
    pub error: Option<String>,
    /// Files read (the main one and its includes).
    pub files: usize,
}

/// Numbers interfaces and notes the ones this host does not have.
struct CheckEnv {
    names: Vec<String>,
    warnings: Vec<String>,
    sys_class_net: &'static Path,
}

impl Environment for CheckEnv {
    fn interface(&mut self, name: &str) -> IfaceId {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return IfaceId(i as u16);
        }
        if !self.sys_class_net.join(name).exists() {
            self.warnings.push(format!(
                "warning: interface {name} does not exist on this host: its instances stay in FAULT until it appears"
            ));
        }
        self.names.push(name.to_string());
        IfaceId(self.names.len() as u16 - 1)
    }
    fn vmac_interface(&mut self, name: &str) -> IfaceId {
        // Made by the daemon: its absence here is no news.
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return IfaceId(i as u16);
        }
        self.names.push(name.to_string());
        IfaceId(self.names.len() as u16 - 1)
    }
    fn primary_address(&mut self, _iface: IfaceId, _family: Family) -> Option<IpAddr> {
        None
    }
}

/// Checks the configuration at `path`.
pub fn check(path: &Path, options: &Options<'_>) -> CheckReport {
    let mut report = CheckReport::default();
    let text = match read_config(path) {
        Ok(t) => t,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    let name = path.display().to_string();
    let mut describe = Describe::default();
    let mut includer = FsIncluder::new(path);
    let parsed = vrlb_core::config::parse(&name, &text, options, &mut describe, &mut includer);
    report.description = describe.text;
    report.warnings = describe.warnings;
    report.files = includer.files.len();
    if let Err(e) = parsed {
        report.error = Some(e.to_string());
        return report;
    }
    if let Err(e) = build_throwaway(path, &name, &text, options, &mut report.warnings) {
        report.error = Some(e);
    }
    report
}

/// Builds a node exactly as `vrlb run` would, then drops it.
fn build_throwaway(
    path: &Path,
    name: &str,
    text: &str,
    options: &Options<'_>,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let counts =
        build::count(name, text, options, &mut FsIncluder::new(path)).map_err(|d| d.to_string())?;
    // A small connection table: the node is built and dropped, never run.
    let mut memory = NodeMemory::for_counts(&counts, 0, 64);
    let mut node = memory
        .node(Instant::ZERO, 0)
        .map_err(|e| format!("{name}: cannot size the balancer for this file: {e}"))?;
    let mut env = CheckEnv {
        names: Vec::new(),
        warnings: Vec::new(),
        sys_class_net: Path::new("/sys/class/net"),
    };
    struct Quiet<'e>(&'e mut CheckEnv);
    impl Environment for Quiet<'_> {
        fn interface(&mut self, name: &str) -> IfaceId {
            self.0.interface(name)
        }
        fn vmac_interface(&mut self, name: &str) -> IfaceId {
            self.0.vmac_interface(name)
        }
        fn primary_address(&mut self, iface: IfaceId, family: Family) -> Option<IpAddr> {
            self.0.primary_address(iface, family)
        }
        fn diagnostic(&mut self, d: &Diagnostic) {
            // Parser warnings were reported by the first pass; the builder's
            // own (unknown track_script, single-member group) are new.
            if !matches!(d.kind, vrlb_core::config::Kind::Assumed { .. }) || d.line == 0 {
                return;
            }
            self.0.warnings.push(d.to_string());
        }
    }
    let result = build::build(
        &mut node,
        &mut Quiet(&mut env),
        name,
        text,
        options,
        &mut FsIncluder::new(path),
    );
    for w in env.warnings {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    result.map(|_| ()).map_err(|d| d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_checks_clean_and_describes_itself() {
        let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seed/keepalived.conf");
        let report = check(&seed, &Options::default());
        assert_eq!(report.error, None);
        assert!(report.description.contains("vrrp_instance VI_1 (line 13): VRID 51 on eth0, VRRPv2, priority 100, advert every 5s, starts claiming MASTER, preempt, PASS authentication"), "{}", report.description);
        assert!(report.description.contains("virtual_server TCP 192.168.2.240:80 (line 28): wlc, DR, checks every 6s, persistence 60s, 2 real server(s)"), "{}", report.description);
        assert!(
            report
                .description
                .contains("TCP_CHECK port 80; timeout 10s, retry 3, 3s between retries"),
            "{}",
            report.description
        );
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("'nb_get_retry' is deprecated"))
        );
    }

    #[test]
    fn tracked_files_are_described_and_their_problems_warned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("files.conf");
        std::fs::write(
            &path,
            "track_file f {\n  file /run/f\n  weight -5 reverse\n  init_file 2\n}\n\
             vrrp_track_file g {\n  file /run/g\n}\n\
             vrrp_instance VI {\n  interface eth0\n  virtual_router_id 51\n  virtual_ipaddress {\n    192.0.2.10\n  }\n\
             \x20 track_file {\n    f\n    g weight 0 reverse\n    nosuch\n  }\n}\n",
        )
        .unwrap();
        let report = check(&path, &Options::default());
        assert_eq!(report.error, None);
        let d = &report.description;
        for line in [
            "track_file f (line 1): reads \"/run/f\" when it changes, value times 5; writes 2 at start if missing",
            "  tracks file f (the track_file's weight)",
            "  tracks file g (weight 0 reverse: a zero value means FAULT)",
        ] {
            assert!(d.contains(line), "{line:?} in\n{d}");
        }
        let w = report.warnings.join("\n");
        assert!(w.contains("'vrrp_track_file' is deprecated"), "{w}");
        assert!(
            w.contains("'nosuch': no track_file of this name: not tracked"),
            "{w}"
        );
    }

    #[test]
    fn build_errors_are_reported_with_their_place() {
        let dir = std::env::temp_dir().join(format!("vrlb-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dup.conf");
        std::fs::write(&path, "vrrp_instance A {\n interface lo\n virtual_router_id 1\n}\nvrrp_instance A {\n interface lo\n virtual_router_id 2\n}\n").unwrap();
        let report = check(&path, &Options::default());
        let err = report.error.unwrap();
        assert!(
            err.ends_with("dup.conf:5:1: error: vrrp_instance 'A' is already defined at line 1"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
