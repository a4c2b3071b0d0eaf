//! A recording sink shared by the config tests: every item and warning as a
//! line of text, so tests can compare whole outcomes.
#![allow(dead_code)]

pub mod world;

use std::fmt::Write;
use std::path::PathBuf;

use vrlb_core::config::{self, Diagnostic, Kind, NoIncludes, Options, Sink};

#[derive(Default)]
pub struct Recorder {
    pub items: Vec<String>,
    pub warnings: Vec<String>,
}

impl Sink for Recorder {
    fn global_defs(&mut self, g: &config::GlobalDefs<'_>) -> Result<(), Kind> {
        self.items
            .push(format!("global_defs router_id={:?}", g.router_id));
        Ok(())
    }
    fn vrrp_script(&mut self, s: &config::VrrpScript<'_>) -> Result<(), Kind> {
        self.items
            .push(format!("vrrp_script {} {:?}", s.name, s.script));
        Ok(())
    }
    fn vrrp_instance(&mut self, i: &config::VrrpInstance<'_>) -> Result<(), Kind> {
        let mut line = format!(
            "vrrp_instance {} vrid={} prio={} int_cs={} state={:?} if={:?} auth={:?} vips=",
            i.name, i.vrid, i.priority, i.advert_interval_cs, i.state, i.interface, i.auth
        );
        for v in &i.vips {
            write!(line, "{},", v.addr).unwrap();
        }
        self.items.push(line);
        Ok(())
    }
    fn vrrp_sync_group(&mut self, g: &config::SyncGroupConf<'_>) -> Result<(), Kind> {
        self.items
            .push(format!("vrrp_sync_group {} {:?}", g.name, g.members));
        Ok(())
    }
    fn virtual_server_group(&mut self, g: &config::VirtualServerGroup<'_>) -> Result<(), Kind> {
        self.items.push(format!(
            "virtual_server_group {} {}",
            g.name,
            g.entries.len()
        ));
        Ok(())
    }
    fn virtual_server(&mut self, vs: &config::VirtualServer<'_>) -> Result<(), Kind> {
        self.items.push(format!(
            "virtual_server {:?} {} {:?} persist={:?} delay_loop={} rs={}{}",
            vs.key,
            vs.scheduler.name(),
            vs.kind,
            vs.persistence_timeout.map(|d| d.as_secs()),
            vs.delay_loop,
            vs.real_servers,
            if vs.anycast { " anycast" } else { "" }
        ));
        Ok(())
    }
    fn real_server(
        &mut self,
        _vs: &config::VirtualServer<'_>,
        rs: &config::RealServer<'_>,
    ) -> Result<(), Kind> {
        let mut line = format!("  real_server {} {} weight={}", rs.addr, rs.port, rs.weight);
        for c in &rs.checkers {
            write!(
                line,
                " {:?}(timeout={:?} retry={:?} dbr={:?} port={:?})",
                c.kind, c.connect_timeout, c.retry, c.delay_before_retry, c.connect_port
            )
            .unwrap();
        }
        self.items.push(line);
        Ok(())
    }
    fn diagnostic(&mut self, d: &Diagnostic) {
        self.warnings.push(d.to_string());
    }
}

pub fn parse(name: &str, text: &str) -> (Recorder, Result<config::Summary, Diagnostic>) {
    let mut rec = Recorder::default();
    let result = config::parse(name, text, &Options::default(), &mut rec, &mut NoIncludes);
    (rec, result)
}

/// `../shared/corpus/SUB` from the workspace root, or `None` (with a printed
/// reason) when it is absent outside CI. In CI a missing corpus fails.
pub fn corpus_dir(sub: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus")
        .join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "corpus {} missing: CI must run with ../shared beside the repository",
            dir.display()
        );
    }
    eprintln!(
        "skipping: corpus {} not found (../shared beside the repository)",
        dir.display()
    );
    None
}

pub fn corpus_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(|c: char| c.is_ascii_alphanumeric())
        })
        .filter(|p| p.extension().is_none_or(|e| e != "md"))
        .collect();
    files.sort();
    files
}

/// Files are read as bytes: invalid UTF-8 is replaced, as a driver would.
pub fn read_text(path: &std::path::Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
}
