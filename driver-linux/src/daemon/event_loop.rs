//! The hook other parts of the daemon plug into its single event loop
//! (the data plane, health probes, a status socket): an [`Extension`]
//! registers its own file descriptors, is called when they are ready or
//! when its deadline passes, feeds the node through a [`Context`], and is
//! handed every node output the daemon does not handle itself (`Probe`,
//! `CancelProbe`, `ServerHealth`, `Announce`, `Quorum`) plus, to observe,
//! the ones it does (VRRP and script events).
//!
//! ```no_run
//! use vrlb_linux::daemon::event_loop::{Context, Extension};
//! use vrlb_core::node::Output;
//!
//! /// Answers every probe at once with success (a stand-in for a checker).
//! struct Prober(Vec<(vrlb_core::node::CheckerId, u32)>);
//! impl Extension for Prober {
//!     fn name(&self) -> &str { "prober" }
//!     fn output(&mut self, out: &Output, ctx: &mut Context<'_>) {
//!         if let Output::Probe { checker, seq, .. } = *out {
//!             ctx.handle(vrlb_core::node::Input::ProbeResult {
//!                 checker, seq, result: vrlb_core::check::ProbeResult::Success,
//!             });
//!         }
//!     }
//! }
//! ```
//!
//! Tokens: the daemon owns `mio::Token`s below [`TOKEN_SPAN`]; extension
//! number `k` owns `(k + 1) * TOKEN_SPAN ..`; [`Context::register`] adds
//! the offset, and [`Extension::ready`] receives the extension's own
//! number back. Everything runs on the loop's thread: an extension must
//! not block (use non-blocking sockets and deadlines).

use std::collections::VecDeque;
use std::io;

use mio::{Interest, Registry, Token, event::Source};
use vrlb_core::node::{Input, Output};
use vrlb_core::time::Instant;

/// Tokens per owner.
pub const TOKEN_SPAN: usize = 1 << 24;

/// The node the daemon runs (its VIP lists sized per instance).
pub type DaemonNode = crate::node_memory::LinuxNode<'static>;

/// What an extension acts through while it is called.
pub struct Context<'c> {
    pub(crate) node: &'c mut DaemonNode,
    pub(crate) now: Instant,
    pub(crate) outputs: &'c mut VecDeque<Output>,
    pub(crate) registry: &'c Registry,
    pub(crate) token_base: usize,
}

impl Context<'_> {
    /// The loop's current time (the core's clock: monotonic, from start).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The node, to read (instances, checkers, balancer, stats).
    pub fn node(&self) -> &DaemonNode {
        self.node
    }

    /// Feeds the node one input at the current time. Its outputs are
    /// dispatched when the extension returns (the ones the daemon does not
    /// handle come back to the extensions' [`Extension::output`]).
    pub fn handle(&mut self, input: Input<'_>) {
        self.node.handle(self.now, input);
        while let Some(out) = self.node.poll_output() {
            self.outputs.push_back(out);
        }
    }

    /// Registers `source` under this extension's token `local`
    /// (`local < TOKEN_SPAN`).
    pub fn register(
        &self,
        source: &mut impl Source,
        local: usize,
        interest: Interest,
    ) -> io::Result<()> {
        assert!(local < TOKEN_SPAN, "extension token out of range");
        self.registry
            .register(source, Token(self.token_base + local), interest)
    }

    /// Changes a registration made with [`Context::register`].
    pub fn reregister(
        &self,
        source: &mut impl Source,
        local: usize,
        interest: Interest,
    ) -> io::Result<()> {
        assert!(local < TOKEN_SPAN, "extension token out of range");
        self.registry
            .reregister(source, Token(self.token_base + local), interest)
    }

    /// Removes a registration.
    pub fn deregister(&self, source: &mut impl Source) -> io::Result<()> {
        self.registry.deregister(source)
    }
}

/// A part of the daemon that runs on its loop. Every method has a default
/// that does nothing.
#[allow(unused_variables)]
pub trait Extension {
    /// For log lines.
    fn name(&self) -> &str;

    /// Once, after the node is built and before it starts: register file
    /// descriptors here.
    fn start(&mut self, ctx: &mut Context<'_>) -> io::Result<()> {
        Ok(())
    }

    /// A descriptor registered as `local` is ready (`readable`/`writable`
    /// as mio reports them).
    fn ready(&mut self, local: usize, readable: bool, writable: bool, ctx: &mut Context<'_>) {}

    /// A node output the daemon does not handle itself.
    fn output(&mut self, out: &Output, ctx: &mut Context<'_>) {}

    /// A node output the daemon handled (VRRP events, scripts): for
    /// extensions that follow mastership or publish status.
    fn observe(&mut self, out: &Output) {}

    /// When to call [`Extension::handle_timeout`] next.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// The deadline from [`Extension::poll_timeout`] passed.
    fn handle_timeout(&mut self, ctx: &mut Context<'_>) {}

    /// The configuration was rebuilt (start or SIGHUP): the config
    /// callbacks below were just called for every item it has.
    fn reloaded(&mut self, ctx: &mut Context<'_>) {}

    /// The daemon is stopping (after `Input::Shutdown` was handled).
    fn shutdown(&mut self, ctx: &mut Context<'_>) {}

    /// Build callback: the `global_defs` block.
    fn global_defs(&mut self, g: &vrlb_core::config::GlobalDefs<'_>) {}

    /// Build callback: a VRRP instance was added or reconfigured.
    fn instance(
        &mut self,
        id: vrlb_core::node::InstanceId,
        conf: &vrlb_core::config::VrrpInstance<'_>,
    ) {
    }

    /// Build callback: a `vrrp_track_process` was added or kept (what to
    /// count).
    fn process(
        &mut self,
        id: vrlb_core::node::ProcessId,
        conf: &vrlb_core::config::TrackProcessConf<'_>,
    ) {
    }

    /// Build callback: a virtual server became these services.
    fn virtual_server(
        &mut self,
        services: &[vrlb_core::lb::ServiceId],
        vs: &vrlb_core::config::VirtualServer<'_>,
    ) {
    }

    /// Build callback: a real server was added or updated.
    fn real_server(
        &mut self,
        server: vrlb_core::node::ServerRef,
        rs: &vrlb_core::config::RealServer<'_>,
    ) {
    }

    /// Build callback: a checker was added or kept (what to probe).
    fn checker(
        &mut self,
        id: vrlb_core::node::CheckerId,
        server: vrlb_core::node::ServerRef,
        conf: &vrlb_core::config::CheckerConf<'_>,
    ) {
    }
}

/// Which extension owns `token`, and its local number; `None` for the
/// daemon's own tokens.
pub fn owner(token: Token) -> Option<(usize, usize)> {
    let k = token.0 / TOKEN_SPAN;
    (k > 0).then(|| (k - 1, token.0 % TOKEN_SPAN))
}

/// The first token of extension `k`.
pub fn token_base(k: usize) -> usize {
    (k + 1) * TOKEN_SPAN
}

/// For extension tests: a daemon node built from `text`, the build's
/// callbacks going to `extensions` as in the daemon (no interfaces exist,
/// so none is up). Panics on a parse error or a warning.
#[cfg(test)]
pub(crate) fn test_node(
    text: &str,
    extensions: &mut [Box<dyn Extension>],
    now: Instant,
) -> DaemonNode {
    use std::path::Path;
    use vrlb_core::config::Options;
    use vrlb_core::node::build;

    let options = Options::default();
    let mut includer = crate::config_file::FsIncluder::new(Path::new("/nonexistent/test.conf"));
    let counts = build::count("test.conf", text, &options, &mut includer).unwrap();
    let memory = Box::leak(Box::new(crate::node_memory::NodeMemory::for_counts(
        &counts, 0, 64,
    )));
    let mut node = memory.node(now, 1).unwrap();
    let mut ifaces = crate::daemon::interfaces::Interfaces::default();
    let mut env = crate::daemon::env::Env::new(&mut ifaces, &[], extensions);
    build::build(
        &mut node,
        &mut env,
        "test.conf",
        text,
        &options,
        &mut includer,
    )
    .unwrap();
    assert!(env.warnings.is_empty(), "{:?}", env.warnings);
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::{IpAddr, Ipv4Addr};
    use vrlb_core::node::{
        GroupSlot, IfaceId, InstanceSlot, Node, NodeStorage, ScriptSlot, TimerEntry,
    };
    use vrlb_core::vrrp;

    fn leak<T: Clone>(n: usize, v: T) -> &'static mut [T] {
        Box::leak(vec![v; n].into_boxed_slice())
    }

    #[test]
    fn a_context_feeds_the_node_and_queues_its_outputs_and_registers_in_its_range() {
        let mut node = Node::new(NodeStorage {
            instances: leak(1, InstanceSlot::default()),
            scripts: leak(0, ScriptSlot::default()),
            groups: leak(0, GroupSlot::default()),
            timers: leak(4, TimerEntry::default()),
        });
        let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        node.add_instance(vrrp::Config::new(51, addr), &[], &[], IfaceId(0), 1)
            .unwrap();
        let mut poll = mio::Poll::new().unwrap();
        let mut outputs = VecDeque::new();
        let mut ctx = Context {
            node: &mut node,
            now: Instant::from_secs(1),
            outputs: &mut outputs,
            registry: poll.registry(),
            token_base: token_base(2),
        };
        ctx.handle(Input::Start);
        assert!(ctx.node().started());
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut source = mio::net::UnixDatagram::from_std(a);
        ctx.register(&mut source, 5, Interest::READABLE).unwrap();
        assert!(
            outputs.iter().any(|o| matches!(
                o,
                Output::Vrrp {
                    event: vrrp::Output::StateChanged { .. },
                    ..
                }
            )),
            "{outputs:?}"
        );
        // The registration fires with the extension's token.
        b.send(b"x").unwrap();
        let mut events = mio::Events::with_capacity(4);
        poll.poll(&mut events, Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let token = events.iter().next().unwrap().token();
        assert_eq!(owner(token), Some((2, 5)));
    }

    #[test]
    fn tokens_split_between_the_daemon_and_extensions() {
        assert_eq!(owner(Token(5)), None);
        assert_eq!(owner(Token(token_base(0) + 7)), Some((0, 7)));
        assert_eq!(owner(Token(token_base(3))), Some((3, 0)));
    }
}
