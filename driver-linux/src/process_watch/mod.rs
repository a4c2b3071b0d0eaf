//! keepalived's `vrrp_track_process` for `vrlb run`: counts the running
//! processes each tracked process matches and reports every change of a
//! count to the node (`Input::ProcessCount`), which decides with the
//! quorum and delays what it means. Owns the process table it keeps and
//! its sources: one scan of `/proc` at start, after a reload or when the
//! kernel dropped events, and the process events connector between
//! scans, so nothing is polled (keepalived's design). Without the
//! connector (no CAP_NET_ADMIN, a PID namespace), it warns and scans
//! `/proc` every second instead.

pub mod connector;
pub mod matcher;
pub mod procfs;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::os::fd::AsRawFd;

use log::{info, warn};
use mio::Interest;
use mio::unix::SourceFd;
use vrlb_core::config::TrackProcessConf;
use vrlb_core::node::{Input, Output, ProcessId};
use vrlb_core::time::{Duration, Instant};

use crate::daemon::event_loop::{Context, Extension};
use connector::{Connector, Event};
use matcher::{ProcessSpec, Seen};

/// The connector's token.
const CONNECTOR: usize = 0;
/// How often `/proc` is scanned when there is no connector.
const RESCAN_EVERY: Duration = Duration::from_secs(1);

/// The extension: add it to the daemon's list; it is idle until a
/// configuration tracks a process.
#[derive(Default)]
pub struct ProcessWatch {
    specs: BTreeMap<ProcessId, ProcessSpec>,
    /// Announced by the build under way.
    announced: HashSet<ProcessId>,
    /// What each matching process counts for.
    matched: HashMap<u32, Vec<ProcessId>>,
    /// Last count given to the node.
    reported: BTreeMap<ProcessId, u32>,
    connector: Option<Connector>,
    /// Without a connector: the next scan.
    rescan_at: Option<Instant>,
}

impl ProcessWatch {
    /// Idle.
    pub fn new() -> ProcessWatch {
        ProcessWatch::default()
    }

    /// Whether any spec needs command lines read.
    fn needs_cmdline(&self) -> bool {
        self.specs.values().any(|s| s.full_command)
    }

    /// The specs process `pid` matches now, named `comm` if the caller
    /// knows it, else as `/proc` says (none if it is gone or a zombie).
    fn evaluate(&self, pid: u32, comm: Option<&str>) -> Vec<ProcessId> {
        let stat;
        let comm = match comm {
            Some(c) => c,
            None => match procfs::stat(pid) {
                Some(s) if !s.zombie => {
                    stat = s;
                    stat.comm.as_str()
                }
                _ => return Vec::new(),
            },
        };
        let cmdline = if self.needs_cmdline() {
            procfs::cmdline(pid)
        } else {
            None
        };
        let seen = Seen {
            comm,
            cmdline: cmdline.as_deref(),
        };
        self.specs
            .iter()
            .filter(|(_, s)| s.matches(seen))
            .map(|(id, _)| *id)
            .collect()
    }

    fn set(&mut self, pid: u32, matches: Vec<ProcessId>) {
        if matches.is_empty() {
            self.matched.remove(&pid);
        } else {
            self.matched.insert(pid, matches);
        }
    }

    /// Rebuilds the table from `/proc`.
    fn rescan(&mut self) {
        self.matched.clear();
        let pids = match procfs::pids() {
            Ok(p) => p,
            Err(e) => {
                warn!("vrrp_track_process: cannot list /proc: {e}");
                return;
            }
        };
        for pid in pids {
            let m = self.evaluate(pid, None);
            self.set(pid, m);
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            // Threads are not processes: only their group leader counts.
            Event::Fork {
                parent_tgid,
                child_pid,
                child_tgid,
            } if child_pid == child_tgid => {
                // A fork runs its parent's program under its name.
                let m = self.matched.get(&parent_tgid).cloned().unwrap_or_default();
                self.set(child_tgid, m);
            }
            Event::Exec { pid, tgid } if pid == tgid => {
                let m = self.evaluate(tgid, None);
                self.set(tgid, m);
            }
            Event::Comm { pid, tgid, comm } if pid == tgid => {
                let m = self.evaluate(tgid, Some(&comm));
                self.set(tgid, m);
            }
            Event::Exit { pid, tgid } if pid == tgid => {
                self.matched.remove(&tgid);
            }
            _ => {}
        }
    }

    fn counts(&self) -> BTreeMap<ProcessId, u32> {
        let mut counts: BTreeMap<ProcessId, u32> = self.specs.keys().map(|id| (*id, 0)).collect();
        for ids in self.matched.values() {
            for id in ids {
                *counts.entry(*id).or_default() += 1;
            }
        }
        counts
    }

    /// Gives the node every count that changed (every count when `all`).
    fn report(&mut self, ctx: &mut Context<'_>, all: bool) {
        for (process, count) in self.counts() {
            if !all && self.reported.get(&process) == Some(&count) {
                continue;
            }
            self.reported.insert(process, count);
            ctx.handle(Input::ProcessCount { process, count });
        }
    }

    fn open_connector(&mut self, ctx: &mut Context<'_>) -> io::Result<()> {
        let c = Connector::open()?;
        ctx.register(&mut SourceFd(&c.as_raw_fd()), CONNECTOR, Interest::READABLE)?;
        self.connector = Some(c);
        Ok(())
    }

    fn close_connector(&mut self, ctx: &mut Context<'_>) {
        if let Some(c) = self.connector.take() {
            let _ = ctx.deregister(&mut SourceFd(&c.as_raw_fd()));
        }
    }
}

impl Extension for ProcessWatch {
    fn name(&self) -> &str {
        "track_process"
    }

    fn process(&mut self, id: ProcessId, conf: &TrackProcessConf<'_>) {
        self.specs.insert(id, ProcessSpec::from_conf(conf));
        self.announced.insert(id);
    }

    fn reloaded(&mut self, ctx: &mut Context<'_>) {
        let announced = std::mem::take(&mut self.announced);
        self.specs.retain(|id, _| announced.contains(id));
        self.reported.retain(|id, _| announced.contains(id));
        if self.specs.is_empty() {
            self.close_connector(ctx);
            self.rescan_at = None;
            self.matched.clear();
            return;
        }
        if self.connector.is_none() && self.rescan_at.is_none() {
            match self.open_connector(ctx) {
                Ok(()) => info!("vrrp_track_process: following process events"),
                Err(e) => {
                    warn!(
                        "vrrp_track_process: no process events connector ({e}): scanning /proc every {RESCAN_EVERY}"
                    );
                    self.rescan_at = Some(ctx.now() + RESCAN_EVERY);
                }
            }
        }
        // Subscribed before the scan: nothing falls between the two.
        self.rescan();
        for (id, spec) in &self.specs {
            let count = self.matched.values().filter(|m| m.contains(id)).count();
            info!("vrrp_track_process {}: {count} running", spec.name);
        }
        // New trackers wait for their first count: give every one.
        self.report(ctx, true);
    }

    fn ready(&mut self, local: usize, _readable: bool, _writable: bool, ctx: &mut Context<'_>) {
        if local != CONNECTOR {
            return;
        }
        let Some(c) = self.connector.as_mut() else {
            return;
        };
        let mut events = Vec::new();
        match c.read(&mut events) {
            Ok(true) => {
                for e in events {
                    self.apply(e);
                }
            }
            Ok(false) => {
                warn!("vrrp_track_process: the kernel dropped process events: rescanning /proc");
                self.rescan();
            }
            Err(e) => {
                warn!(
                    "vrrp_track_process: process events connector failed ({e}): scanning /proc every {RESCAN_EVERY}"
                );
                self.close_connector(ctx);
                self.rescan();
                self.rescan_at = Some(ctx.now() + RESCAN_EVERY);
            }
        }
        self.report(ctx, false);
    }

    fn output(&mut self, out: &Output, _ctx: &mut Context<'_>) {
        if let Output::ProcessChanged { process, up } = *out {
            let name = self.specs.get(&process).map_or("?", |s| s.name.as_str());
            let count = self.reported.get(&process).copied().unwrap_or(0);
            info!(
                "vrrp_track_process {name}: {count} running: {}",
                if up { "up" } else { "down" }
            );
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.rescan_at
    }

    fn handle_timeout(&mut self, ctx: &mut Context<'_>) {
        if self.rescan_at.is_some_and(|t| t <= ctx.now()) {
            self.rescan();
            self.report(ctx, false);
            self.rescan_at = Some(ctx.now() + RESCAN_EVERY);
        }
    }

    fn shutdown(&mut self, ctx: &mut Context<'_>) {
        self.close_connector(ctx);
        self.rescan_at = None;
    }
}

#[cfg(test)]
mod tests;
