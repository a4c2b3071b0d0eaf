//! The daemon extension that performs the node's health-check probes: it
//! keeps each checker's [`ProbeSpec`] from the build callbacks, starts a
//! probe on `Output::Probe`, abandons it on `Output::CancelProbe`, and
//! feeds every result back as `Input::ProbeResult`. Logs a checker's
//! failures when they start and stop, and real servers' health changes.
//! Decides nothing: timing, retries and health are the core's.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use log::{info, warn};
use mio::Interest;
use mio::unix::SourceFd;
use vrlb_core::check::ProbeResult;
use vrlb_core::config::{CheckerConf, VirtualServer};
use vrlb_core::node::{CheckerId, Input, Output, ServerRef};
use vrlb_core::time::Instant;

use super::prober::{Finished, Prober, Request};
use super::spec::{ProbeSpec, SpecKind};
use crate::daemon::env::account;
use crate::daemon::event_loop::{Context, Extension};
use crate::daemon::scripts::{self, Account, RunAs};

/// The prober's epoll descriptor, in this extension's token range.
const PROBER_TOKEN: usize = 0;

/// The health-check extension for `vrlb run`.
#[derive(Default)]
pub struct Probes {
    prober: Option<Prober>,
    specs: HashMap<CheckerId, Arc<ProbeSpec>>,
    /// The `virtualhost` of the virtual server being built (the build
    /// calls `virtual_server` before its real servers' checkers).
    vs_virtualhost: Option<String>,
    /// Checkers whose last probe failed (to log changes only).
    failing: HashSet<CheckerId>,
    /// `script_user` of the build in progress (taken at `reloaded`).
    script_user: Option<Account>,
    /// Who runs each MISC_CHECK, resolved once per build.
    misc_as: HashMap<CheckerId, RunAs>,
}

impl Probes {
    /// An extension with no checkers yet (they come from the build).
    pub fn new() -> Probes {
        Probes::default()
    }

    /// `extensions` with this one appended (how `vrlb run` adds it).
    pub fn added_to(mut extensions: Vec<Box<dyn Extension>>) -> Vec<Box<dyn Extension>> {
        extensions.push(Box::new(Probes::new()));
        extensions
    }

    /// The probe settings of `checker`, if the build gave any.
    pub fn spec(&self, checker: CheckerId) -> Option<&ProbeSpec> {
        self.specs.get(&checker).map(|s| s.as_ref())
    }

    fn target(ctx: &Context<'_>, checker: CheckerId) -> Option<SocketAddr> {
        let (c, _) = ctx.node().checker(checker)?;
        let (ip, port) = c.config().target;
        Some(SocketAddr::new(ip, port))
    }

    fn describe(&self, ctx: &Context<'_>, checker: CheckerId) -> String {
        let name = self.specs.get(&checker).map_or("check", |s| s.name());
        match Self::target(ctx, checker) {
            Some(t) => format!("{name} {t}"),
            None => format!("{name} #{}", checker.0),
        }
    }

    fn start_probe(
        &mut self,
        ctx: &mut Context<'_>,
        checker: CheckerId,
        seq: u32,
        timeout: vrlb_core::time::Duration,
    ) {
        let (Some(target), Some(spec)) = (Self::target(ctx, checker), self.specs.get(&checker))
        else {
            warn!(
                "checker #{}: nothing known to probe: reported failed",
                checker.0
            );
            ctx.handle(Input::ProbeResult {
                checker,
                seq,
                result: ProbeResult::Failure,
            });
            return;
        };
        let run_as = match self.misc_as.get(&checker) {
            // Refused at the build (and said so then): a failure.
            Some(Err(_)) => {
                ctx.handle(Input::ProbeResult {
                    checker,
                    seq,
                    result: ProbeResult::Failure,
                });
                return;
            }
            Some(Ok(c)) => *c,
            None => None,
        };
        let request = Request {
            checker,
            seq,
            target,
            timeout,
            spec: spec.clone(),
            run_as,
        };
        match self.prober.as_mut() {
            Some(p) => p.start(ctx.now(), request),
            None => ctx.handle(Input::ProbeResult {
                checker,
                seq,
                result: ProbeResult::Failure,
            }),
        }
        self.report(ctx);
    }

    /// Feeds every finished probe to the node.
    fn report(&mut self, ctx: &mut Context<'_>) {
        while let Some(f) = self.prober.as_mut().and_then(Prober::poll_result) {
            self.log(ctx, &f);
            ctx.handle(Input::ProbeResult {
                checker: f.checker,
                seq: f.seq,
                result: f.result,
            });
        }
    }

    fn log(&mut self, ctx: &Context<'_>, f: &Finished) {
        // What a script's status means is the core's (misc_dynamic).
        let dynamic = ctx
            .node()
            .checker(f.checker)
            .is_some_and(|(c, _)| c.config().misc_dynamic);
        let failed = !f.result.passes(dynamic);
        let changed = if failed {
            self.failing.insert(f.checker)
        } else {
            self.failing.remove(&f.checker)
        };
        if !changed {
            return;
        }
        let what = self.describe(ctx, f.checker);
        match (failed, &f.reason) {
            (true, Some(reason)) => warn!("{what}: failed: {reason}"),
            (true, None) => warn!("{what}: failed"),
            (false, _) => info!("{what}: succeeded"),
        }
    }

    fn server_name(ctx: &Context<'_>, server: ServerRef) -> String {
        match ctx.node().server(server) {
            Some(s) => SocketAddr::new(s.config.addr, s.config.port).to_string(),
            None => format!("#{}", server.0),
        }
    }
}

impl Extension for Probes {
    fn name(&self) -> &str {
        "health checks"
    }

    fn start(&mut self, ctx: &mut Context<'_>) -> io::Result<()> {
        let prober = Prober::new()?;
        ctx.register(
            &mut SourceFd(&prober.as_raw_fd()),
            PROBER_TOKEN,
            Interest::READABLE,
        )?;
        self.prober = Some(prober);
        Ok(())
    }

    fn ready(&mut self, _local: usize, _readable: bool, _writable: bool, ctx: &mut Context<'_>) {
        if let Some(p) = self.prober.as_mut() {
            p.process(ctx.now());
        }
        self.report(ctx);
    }

    fn output(&mut self, out: &Output, ctx: &mut Context<'_>) {
        match *out {
            Output::Probe {
                checker,
                seq,
                timeout,
            } => self.start_probe(ctx, checker, seq, timeout),
            Output::CancelProbe {
                checker,
                seq,
                timed_out,
            } => {
                let Some(p) = self.prober.as_mut() else {
                    return;
                };
                // The core times probes out at the same deadline as the
                // prober, and usually first: log it as the failure it is.
                if !timed_out {
                    p.cancel(checker, seq);
                } else if let Some(failed) = p.time_out(checker, seq) {
                    self.log(ctx, &failed);
                }
            }
            Output::ServerHealth { server, up } => {
                let name = Self::server_name(ctx, server);
                match up {
                    true => info!("real server {name}: up"),
                    false => warn!("real server {name}: down"),
                }
            }
            _ => {}
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.prober.as_ref().and_then(Prober::poll_timeout)
    }

    fn handle_timeout(&mut self, ctx: &mut Context<'_>) {
        if let Some(p) = self.prober.as_mut() {
            p.process(ctx.now());
        }
        self.report(ctx);
    }

    fn reloaded(&mut self, ctx: &mut Context<'_>) {
        let live: HashSet<CheckerId> = ctx.node().checkers().map(|(id, ..)| id).collect();
        self.specs.retain(|id, _| live.contains(id));
        self.failing.retain(|id| live.contains(id));
        if let Some(p) = self.prober.as_mut() {
            p.retain(|id| live.contains(&id));
        }
        self.vs_virtualhost = None;
        // Resolved once per build; a name that does not resolve refuses
        // the script (keepalived.conf(5), `script_user`, MISC_CHECK `user`).
        // Not without a MISC_CHECK: a lookup loads the system's NSS modules.
        let script_user = self.script_user.take();
        self.misc_as.clear();
        if !self
            .specs
            .values()
            .any(|s| matches!(s.kind, SpecKind::Misc { .. }))
        {
            return;
        }
        let default = scripts::default_as(script_user.as_ref());
        for (id, spec) in &self.specs {
            let SpecKind::Misc { user, command, .. } = &spec.kind else {
                continue;
            };
            let run_as = scripts::resolve_as(user.as_ref(), &default);
            if let Err(e) = &run_as {
                warn!(
                    "MISC_CHECK #{} '{command}': {e}: the script is not run and the check fails",
                    id.0
                );
            }
            self.misc_as.insert(*id, run_as);
        }
    }

    fn global_defs(&mut self, g: &vrlb_core::config::GlobalDefs<'_>) {
        self.script_user = account(g.script_user);
    }

    fn shutdown(&mut self, _ctx: &mut Context<'_>) {
        if let Some(p) = self.prober.as_mut() {
            p.retain(|_| false);
        }
    }

    fn virtual_server(&mut self, _services: &[vrlb_core::lb::ServiceId], vs: &VirtualServer<'_>) {
        self.vs_virtualhost = vs.virtualhost.map(str::to_string);
    }

    fn checker(&mut self, id: CheckerId, _server: ServerRef, conf: &CheckerConf<'_>) {
        let spec = ProbeSpec::from_conf(conf, self.vs_virtualhost.as_deref());
        if let SpecKind::Http { urls, .. } = &spec.kind
            && urls.is_empty()
        {
            warn!(
                "{} at line {}: no url block: only the connection is checked",
                spec.name(),
                conf.pos.line
            );
        }
        if let SpecKind::Misc { command, .. } = &spec.kind
            && command.is_empty()
        {
            warn!(
                "MISC_CHECK at line {}: no misc_path: it always fails",
                conf.pos.line
            );
        }
        self.specs.insert(id, Arc::new(spec));
    }
}
