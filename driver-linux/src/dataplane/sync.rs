//! Connection sync for the DR data plane: the job of keepalived's
//! `lvs_sync_daemon INTERFACE INSTANCE` (IPVS's sync daemons). While that
//! VRRP instance is MASTER, the connections and persistence templates the
//! workers' shards create or change go out as the core's sync messages
//! ([`vrlb_core::sync`]) to the sync group on INTERFACE
//! ([`crate::sync_transport`]); in every other state the messages received
//! there are applied, each entry to the shard that owns its client: the
//! one the fanout hands that client's packets to ([`shard_of`]), so the
//! workers find the connection when this director takes the VIP over.
//!
//! One sending machine per shard (each drains its own balancer's journal,
//! under the shard's lock, every [`PUMP`]) and one receiving machine (one
//! sequence and duplicate check for the whole director). keepalived runs
//! the IPVS master daemon while the instance is MASTER and the backup
//! daemon otherwise, never both (keepalived vrrp.c,
//! `ipvs_syncd_master`/`ipvs_syncd_backup`); so does this. On becoming
//! the sender each machine first sends everything its shard tracks
//! (`Balancer::sync_journal_all`), so what this director learnt as a
//! backup reaches the others.
//!
//! Owns the sync machines and the sockets; never forwards a packet and
//! never changes services or servers (the data plane mirrors those).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use log::{debug, error, info, warn};
use mio::{Interest, unix::SourceFd};
use serde::{Deserialize, Serialize};
use vrlb_core::config::{GlobalDefs, VrrpInstance};
use vrlb_core::lb::ApplyError;
use vrlb_core::node::build::name_key;
use vrlb_core::node::{InstanceId, Output};
use vrlb_core::sync::{
    ConnSync, Input, MESSAGE_BYTES_MAX, MESSAGE_BYTES_MIN, Output as SyncOutput, Role, SyncConfig,
    SyncStats,
};
use vrlb_core::time::{Duration, Instant};
use vrlb_core::vrrp::State;

use super::shard::{ServiceSpec, Shard};
use super::worker::JournalKick;
use super::{DataPlane, DataPlaneView};
use crate::daemon::clock::Clock;
use crate::daemon::event_loop::{Context, Extension};
use crate::sync_transport::{Endpoint, Transport};

/// How often the shards' journals are drained into messages while
/// sending. Full messages leave at once; a partly filled one waits for
/// [`FLUSH`].
pub const PUMP: Duration = Duration::from_millis(50);
/// Longest a new connection waits before a partly filled message takes
/// it to the backups. IPVS waits up to 2 s (`IPVS_SYNC_FLUSH_TIME`), so a
/// failover loses the connections of the last two seconds; vrlb flushes
/// sooner, at the cost of at most ten small messages a second per worker
/// (under load messages fill and leave at once anyway).
pub const FLUSH: Duration = Duration::from_millis(100);
/// How long to wait before trying to open the sockets again after a
/// failure (the interface may appear later).
const RETRY: Duration = Duration::from_secs(5);
/// The refresh window of the journal: a connection in use is sent again
/// at least this often (rounded up by the core to a power of two ticks).
const REFRESH: Duration = Duration::from_secs(30);
/// Journal entries per shard at most (one `u32` each).
const JOURNAL_MAX: usize = 1 << 16;
/// Datagrams read per turn of the event loop at most.
const RX_BATCH: usize = 256;
/// The extension's token for the receiving socket.
const RX_TOKEN: usize = 0;
/// The extension's token for the workers' journal kick.
const KICK_TOKEN: usize = 1;
/// While sending, pumping goes on this long after the journals were last
/// seen non-empty (so a partly filled message leaves on its flush), then
/// stops until a worker journals an entry again.
/// Two [`FLUSH`] intervals and a [`PUMP`].
const BUSY_FOR: Duration = Duration::from_millis(250);

/// The shard that owns `client`: the fanout program's hash of the client
/// address masked to (`v4_prefix`, `v6_prefix`) modulo the number of
/// shards (the kernel takes the cBPF result modulo the fanout group's
/// size, af_packet.c `fanout_demux_bpf`). Must stay equal to
/// [`super::filter::fanout`]: a test runs both.
pub fn shard_of(client: IpAddr, (v4_prefix, v6_prefix): (u8, u8), shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    const GOLDEN: u32 = 0x9e37_79b1;
    let mask = |p: u8| {
        if p == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(p.min(32)))
        }
    };
    let key = match client {
        IpAddr::V4(a) => u32::from(a) & mask(v4_prefix),
        IpAddr::V6(a) => {
            let o = a.octets();
            let w0 = u32::from_be_bytes([o[0], o[1], o[2], o[3]]) & mask(v6_prefix);
            let w1 =
                u32::from_be_bytes([o[4], o[5], o[6], o[7]]) & mask(v6_prefix.saturating_sub(32));
            w0 ^ w1
        }
    };
    (key.wrapping_mul(GOLDEN) >> 16) as usize % shards
}

/// What `lvs_sync_daemon` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    endpoint: Endpoint,
    instance: String,
    sync_id: u8,
    maxlen: Option<u16>,
}

/// What the status socket can show.
#[derive(Debug, Clone, Default)]
pub struct SyncStatus {
    /// Interface, group and port, while configured.
    pub endpoint: Option<Endpoint>,
    /// The instance that decides the role.
    pub instance: String,
    /// The sync id.
    pub sync_id: u8,
    /// Largest message in bytes.
    pub maxlen: u16,
    /// Current role.
    pub role: Option<Role>,
    /// Counters of each shard's sending machine.
    pub senders: Vec<SyncStats>,
    /// Counters of the receiving machine.
    pub receiver: SyncStats,
    /// Datagrams the socket refused to send (buffer full, no route).
    pub send_errors: u64,
    /// Datagrams received.
    pub datagrams: u64,
}

/// The sync line of `vrlb status`: [`SyncStatus`] summed up, as the
/// control socket's JSON carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSummary {
    /// `lvs_sync_daemon`'s interface.
    pub iface: String,
    /// Multicast group and port.
    pub group: Option<(IpAddr, u16)>,
    /// The VRRP instance followed.
    pub instance: String,
    /// The sync id.
    pub sync_id: u8,
    /// Largest message in bytes.
    pub maxlen: u16,
    /// Multicast TTL / hop limit.
    pub ttl: u8,
    /// sending, receiving or off.
    pub role: String,
    /// Messages and entries sent.
    pub sent_messages: u64,
    /// Entries sent.
    pub sent_entries: u64,
    /// Messages accepted.
    pub received_messages: u64,
    /// Entries applied to the shards.
    pub applied_entries: u64,
    /// Messages dropped (malformed, other sync id, replayed, or received
    /// while sending).
    pub dropped_messages: u64,
    /// Entries not applied (no such service or server here, table full).
    pub dropped_entries: u64,
    /// Messages lost in transit (sequence gaps).
    pub lost_messages: u64,
    /// Datagrams the socket refused.
    pub send_errors: u64,
}

impl SyncStatus {
    /// The summary `vrlb status` shows.
    pub fn summary(&self) -> SyncSummary {
        let r = &self.receiver;
        let mut s = SyncSummary {
            iface: self
                .endpoint
                .as_ref()
                .map(|e| e.iface.clone())
                .unwrap_or_default(),
            group: self.endpoint.as_ref().map(|e| (e.group, e.port)),
            instance: self.instance.clone(),
            sync_id: self.sync_id,
            maxlen: self.maxlen,
            ttl: self.endpoint.as_ref().map_or(0, |e| e.ttl),
            role: match self.role {
                Some(Role::Sender) => "sending",
                Some(Role::Receiver) => "receiving",
                Some(Role::Both) => "sending and receiving",
                Some(Role::Off) | None => "off",
            }
            .to_string(),
            received_messages: r.rx_messages,
            applied_entries: r.rx_applied,
            dropped_messages: r.rx_truncated
                + r.rx_bad_version
                + r.rx_bad_length
                + r.rx_bad_entry
                + r.rx_wrong_sync_id
                + r.rx_replayed
                + r.rx_not_receiving,
            dropped_entries: r.rx_no_service
                + r.rx_not_persistent
                + r.rx_no_server
                + r.rx_table_full,
            lost_messages: r.rx_lost,
            send_errors: self.send_errors,
            ..SyncSummary::default()
        };
        for t in &self.senders {
            s.sent_messages += t.tx_messages;
            s.sent_entries += t.tx_entries;
        }
        s
    }
}

impl SyncSummary {
    /// The lines `vrlb status` prints: the daemon as `ipvsadm -L
    /// --daemon` shows it (ipvsadm.c `list_daemon`, with the options of
    /// Linux 4.3 and later), then the counters.
    pub fn text(&self) -> String {
        let daemon = match self.role.as_str() {
            "sending" => "master sync daemon",
            "receiving" => "backup sync daemon",
            _ => "sync daemon (off)",
        };
        let group = self
            .group
            .map(|(g, p)| format!(", group={g}, port={p}"))
            .unwrap_or_default();
        format!(
            "{daemon} (mcast={}, syncid={}, maxlen={}{group}, ttl={}), following {}\n  \
             sent {} entries in {} messages; received {} messages, applied {} entries\n  \
             dropped {} messages and {} entries, {} messages lost, {} send errors\n",
            self.iface,
            self.sync_id,
            self.maxlen,
            self.ttl,
            self.instance,
            self.sent_entries,
            self.sent_messages,
            self.received_messages,
            self.applied_entries,
            self.dropped_messages,
            self.dropped_entries,
            self.lost_messages,
            self.send_errors
        )
    }
}

/// A read-only handle for `vrlb status`.
#[derive(Debug, Clone, Default)]
pub struct SyncView(Arc<Mutex<SyncStatus>>);

impl SyncView {
    /// A copy of the current status.
    pub fn status(&self) -> SyncStatus {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The summary for `vrlb status`, while `lvs_sync_daemon` is set.
    pub fn summary(&self) -> Option<SyncSummary> {
        let st = self.status();
        st.endpoint.is_some().then(|| st.summary())
    }
}

struct Sender {
    shard: Arc<Mutex<Shard>>,
    sync: ConnSync,
}

struct Active {
    settings: Settings,
    cfg: SyncConfig,
    transport: Transport,
    senders: Vec<Sender>,
    receiver: ConnSync,
    role: Role,
    next_pump: Instant,
    /// Pump on the [`PUMP`] tick until then (the loop's time; `None`:
    /// until a pump finds the journals empty).
    busy_until: Option<Instant>,
    /// The kick is armed and the [`PUMP`] tick stopped.
    idle: bool,
    buf: Vec<u8>,
    send_errors: u64,
    datagrams: u64,
}

/// The sync extension. Add it to `vrlb run`'s extensions after the
/// [`DataPlane`] whose shards it fills.
pub struct DataPlaneSync {
    view: DataPlaneView,
    /// Wakes the loop when a worker journals (none: pump on the tick).
    kick: Option<Arc<JournalKick>>,
    kick_registered: bool,
    clock: Clock,
    status: SyncView,
    /// From the configuration being built: global `lvs_sync_daemon`.
    building: Option<Settings>,
    /// From the configuration being built: the first instance with the
    /// deprecated `lvs_sync_daemon_interface` (interface, instance).
    building_instance: Option<(String, String)>,
    /// From the configuration being built: `lvs_sync_daemon ... id` was given.
    building_sync_id_set: bool,
    /// From the configuration being built: each instance's VRID, the sync
    /// id when none is given.
    building_vrids: HashMap<String, u8>,
    settings: Option<Settings>,
    active: Option<Active>,
    /// Shards whose balancer has a journal (by address: shards live as
    /// long as the process).
    journaled: Vec<usize>,
    /// When to try the sockets again (the loop's time).
    next_retry: Instant,
    /// When to look for new shards and check the role again (the loop's
    /// time; VRRP changes also do at once).
    next_refresh: Instant,
    /// VRRP changed: recompute the role.
    dirty: bool,
    /// Datagrams may be waiting: read on (the socket is edge-triggered).
    rx_pending: bool,
    warned_instance: bool,
}

impl DataPlaneSync {
    /// Sync for the shards of `dataplane` (sharing its clock, the shards'
    /// time base).
    pub fn new(dataplane: &DataPlane) -> Self {
        DataPlaneSync {
            view: dataplane.view(),
            kick: dataplane.journal_kick.clone(),
            kick_registered: false,
            clock: dataplane.clock,
            status: SyncView::default(),
            building: None,
            building_instance: None,
            building_sync_id_set: false,
            building_vrids: HashMap::new(),
            settings: None,
            active: None,
            journaled: Vec::new(),
            next_retry: Instant::ZERO,
            next_refresh: Instant::ZERO,
            dirty: false,
            rx_pending: false,
            warned_instance: false,
        }
    }

    /// A handle for the status socket.
    pub fn view(&self) -> SyncView {
        self.status.clone()
    }

    fn shards(&self) -> Vec<Arc<Mutex<Shard>>> {
        self.view
            .0
            .read()
            .map(|s| s.shards.clone())
            .unwrap_or_default()
    }

    /// Gives every new shard's balancer a journal.
    fn adopt_shards(&mut self) {
        for shard in self.shards() {
            let key = Arc::as_ptr(&shard) as usize;
            if self.journaled.contains(&key) {
                continue;
            }
            let Ok(mut sh) = shard.lock() else { continue };
            let n = (sh.balancer.layout().connections as usize).clamp(1, JOURNAL_MAX);
            // Leaked like the shard's own storage: both live as long as
            // the process.
            let ring: &'static mut [u32] = Box::leak(vec![0u32; n].into_boxed_slice());
            sh.balancer.attach_sync_journal(ring, REFRESH);
            self.journaled.push(key);
        }
    }

    /// Opens the sockets and machines for `self.settings` (closing the
    /// old ones when the settings changed).
    fn activate(&mut self, ctx: &mut Context<'_>) {
        let now = self.clock.now();
        let loop_now = ctx.now();
        if self
            .active
            .as_ref()
            .is_some_and(|a| Some(&a.settings) != self.settings.as_ref())
        {
            self.deactivate(ctx);
        }
        let Some(settings) = self.settings.clone() else {
            return;
        };
        if self.active.is_some() || loop_now < self.next_retry {
            return;
        }
        self.next_retry = loop_now + RETRY;
        let cfg = sync_config(&settings);
        let transport = match Transport::open(&settings.endpoint) {
            Ok(t) => t,
            Err(e) => {
                error!(
                    "lvs_sync_daemon {}: cannot open the sync sockets ({e}); retrying",
                    settings.endpoint.iface
                );
                return;
            }
        };
        if let Err(e) = ctx.register(
            &mut SourceFd(&transport.rx_fd()),
            RX_TOKEN,
            Interest::READABLE,
        ) {
            error!("lvs_sync_daemon: epoll: {e}");
            return;
        }
        if let Some(k) = self.kick.as_ref().filter(|_| !self.kick_registered) {
            match ctx.register(&mut SourceFd(&k.waker.fd()), KICK_TOKEN, Interest::READABLE) {
                Ok(()) => self.kick_registered = true,
                Err(e) => error!("lvs_sync_daemon: epoll: {e}"),
            }
        }
        let receiver = match ConnSync::new(cfg, random_seed(), now) {
            Ok(m) => m,
            Err(e) => {
                error!("lvs_sync_daemon: {e}");
                return;
            }
        };
        info!(
            "lvs_sync_daemon: {} group {} port {} ttl {} sync id {}, {}-byte messages, following {}",
            settings.endpoint.iface,
            settings.endpoint.group,
            settings.endpoint.port,
            settings.endpoint.ttl,
            settings.sync_id,
            cfg.max_message_bytes,
            settings.instance
        );
        self.active = Some(Active {
            settings,
            cfg,
            transport,
            senders: Vec::new(),
            receiver,
            role: Role::Off,
            next_pump: loop_now,
            busy_until: None,
            idle: false,
            buf: vec![0u8; 65536],
            send_errors: 0,
            datagrams: 0,
        });
        self.dirty = true;
    }

    fn deactivate(&mut self, ctx: &mut Context<'_>) {
        let Some(mut a) = self.active.take() else {
            return;
        };
        let now = self.clock.now();
        for s in &mut a.senders {
            if let Ok(mut sh) = s.shard.lock() {
                s.sync
                    .handle(now, Input::SetRole(Role::Off), &mut sh.balancer);
            }
        }
        let _ = ctx.deregister(&mut SourceFd(&a.transport.rx_fd()));
        info!("lvs_sync_daemon stopped");
        self.publish_status();
    }

    /// The role the VRRP state asks for.
    fn wanted_role(&mut self, ctx: &Context<'_>) -> Role {
        let Some(a) = self.active.as_ref() else {
            return Role::Off;
        };
        let node = ctx.node();
        let Some(id) = node.instance_by_key(name_key(&a.settings.instance)) else {
            if !self.warned_instance {
                self.warned_instance = true;
                warn!(
                    "lvs_sync_daemon: no vrrp_instance {}: connection sync is off",
                    a.settings.instance
                );
            }
            return Role::Off;
        };
        self.warned_instance = false;
        match node.instance(id).map(|i| i.state()) {
            Some(State::Master) => Role::Sender,
            _ => Role::Receiver,
        }
    }

    /// Sets every machine's role; new shards get a sending machine.
    fn set_role(&mut self, role: Role) {
        let now = self.clock.now();
        let shards = self.shards();
        let Some(a) = self.active.as_mut() else {
            return;
        };
        for shard in shards.iter().skip(a.senders.len()) {
            match ConnSync::new(a.cfg, random_seed(), now) {
                Ok(sync) => a.senders.push(Sender {
                    shard: shard.clone(),
                    sync,
                }),
                Err(e) => error!("lvs_sync_daemon: {e}"),
            }
        }
        let send = if role.sends() {
            Role::Sender
        } else {
            Role::Off
        };
        for s in &mut a.senders {
            if let Ok(mut sh) = s.shard.lock() {
                s.sync.handle(now, Input::SetRole(send), &mut sh.balancer);
            }
        }
        a.receiver
            .handle_routed(now, Input::SetRole(role), |_, _| Ok(()));
        let changed = a.role != role;
        a.role = role;
        if changed {
            // Taking over may journal every connection at once.
            a.busy_until = None;
            a.idle = false;
        }
        if changed {
            self.publish_status();
            let s = self.status.status().summary();
            info!(
                "lvs_sync_daemon: {} (so far: sent {} entries in {} messages; applied {} \
                 entries of {} messages, {} messages dropped, {} lost)",
                match role {
                    Role::Sender => "sending this director's connections (MASTER)",
                    Role::Receiver => "receiving the master's connections",
                    _ => "off",
                },
                s.sent_entries,
                s.sent_messages,
                s.applied_entries,
                s.received_messages,
                s.dropped_messages,
                s.lost_messages
            );
        }
    }

    /// Drains every shard's journal into messages and sends them (every
    /// [`PUMP`] of the loop's time `loop_now` while sending).
    fn pump(&mut self, loop_now: Instant) {
        let now = self.clock.now();
        let Some(a) = self.active.as_mut() else {
            return;
        };
        if !a.role.sends() || loop_now < a.next_pump {
            return;
        }
        a.next_pump = loop_now + PUMP;
        let mut out = Vec::new();
        let mut pending = 0;
        for s in &mut a.senders {
            {
                let Ok(mut sh) = s.shard.lock() else { continue };
                pending += sh.balancer.sync_pending();
                s.sync.handle_timeout(now, &mut sh.balancer);
            }
            while let Some(SyncOutput::Transmit(m)) = s.sync.poll_output() {
                out.push(m);
            }
        }
        if pending > 0 || !out.is_empty() || a.busy_until.is_none() {
            a.busy_until = Some(loop_now + BUSY_FOR);
            a.idle = false;
        } else if let Some(k) = &self.kick
            && self.kick_registered
            && a.busy_until.is_some_and(|t| loop_now >= t)
        {
            // Idle: arm the kick, then look again, so an entry journaled
            // in between either kicks or is seen here.
            k.armed.store(true, Ordering::SeqCst);
            let again: usize = a
                .senders
                .iter()
                .filter_map(|s| s.shard.lock().ok().map(|sh| sh.balancer.sync_pending()))
                .sum();
            if again > 0 {
                k.armed.store(false, Ordering::SeqCst);
                a.busy_until = Some(loop_now + BUSY_FOR);
            } else {
                a.idle = true;
            }
        }
        for m in out {
            if let Err(e) = a.transport.send(m.as_bytes()) {
                a.send_errors += 1;
                debug!("lvs_sync_daemon: send: {e}");
            }
        }
    }

    /// Reads the waiting datagrams and applies them: all of them (the
    /// socket is edge-triggered), or [`RX_BATCH`] and the rest on the next
    /// turn of the loop, so a flood cannot starve it.
    fn receive(&mut self) {
        let mut woken = Vec::new();
        self.receive_batch(&mut woken);
        // Applied entries carry expiry times: a worker sleeps until its
        // shard's next expiry as it was (for ever when it was empty), so
        // wake those whose shard now expires something sooner.
        if !woken.is_empty() {
            self.view.wake_workers(&woken);
        }
    }

    /// Applies up to [`RX_BATCH`] datagrams; `woken` gets the shards whose
    /// next expiry moved earlier (or that had no entries before).
    fn receive_batch(&mut self, woken: &mut Vec<usize>) {
        let now = self.clock.now();
        let shards = self.shards();
        self.rx_pending = false;
        let Some(a) = self.active.as_mut() else {
            return;
        };
        for _ in 0..RX_BATCH {
            let n = match a.transport.recv(&mut a.buf) {
                Ok(Some((n, _from))) => n,
                Ok(None) => return,
                Err(e) => {
                    warn!("lvs_sync_daemon: receive: {e}");
                    continue;
                }
            };
            a.datagrams += 1;
            let mut guards: Vec<MutexGuard<'_, Shard>> =
                shards.iter().filter_map(|s| s.lock().ok()).collect();
            if guards.len() != shards.len() {
                continue;
            }
            let prefixes = guards.first().map_or((32, 128), |g| fanout_prefixes(g));
            let count = guards.len();
            let next: Vec<Option<Instant>> =
                guards.iter().map(|g| g.balancer.next_expiry()).collect();
            a.receiver
                .handle_routed(now, Input::Receive(&a.buf[..n]), |now, e| {
                    match guards.get_mut(shard_of(e.client, prefixes, count)) {
                        Some(g) => g.balancer.sync_apply(now, e),
                        None => Err(ApplyError::NoService),
                    }
                });
            for (i, g) in guards.iter().enumerate() {
                let sooner = match (g.balancer.next_expiry(), next[i]) {
                    (Some(is), Some(was)) => is < was,
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                if sooner && !woken.contains(&i) {
                    woken.push(i);
                }
            }
        }
        self.rx_pending = true;
    }

    fn publish_status(&self) {
        let Ok(mut st) = self.status.0.lock() else {
            return;
        };
        *st = match &self.active {
            Some(a) => SyncStatus {
                endpoint: Some(a.settings.endpoint.clone()),
                instance: a.settings.instance.clone(),
                sync_id: a.settings.sync_id,
                maxlen: a.cfg.max_message_bytes,
                role: Some(a.role),
                senders: a.senders.iter().map(|s| *s.sync.stats()).collect(),
                receiver: *a.receiver.stats(),
                send_errors: a.send_errors,
                datagrams: a.datagrams,
            },
            None => SyncStatus::default(),
        };
    }

    /// What the configuration just built asks for: the global
    /// `lvs_sync_daemon`, else an instance's `lvs_sync_daemon_interface`.
    fn built_settings(&mut self) -> Option<Settings> {
        let global = self.building.take();
        let legacy = self
            .building_instance
            .take()
            .map(|(iface, instance)| Settings {
                endpoint: Endpoint::new(&iface),
                instance,
                sync_id: 0,
                maxlen: None,
            });
        let vrids = std::mem::take(&mut self.building_vrids);
        let id_set = std::mem::take(&mut self.building_sync_id_set);
        let mut settings = global.or(legacy)?;
        if !id_set {
            // Without `id`, keepalived uses the instance's VRID
            // (global_parser.c `lvs_syncd_handler`, vrrp.c).
            settings.sync_id = vrids.get(&settings.instance).copied().unwrap_or(0);
        }
        Some(settings)
    }

    fn refresh(&mut self, ctx: &mut Context<'_>) {
        if self.settings.is_some() {
            self.adopt_shards();
        }
        self.activate(ctx);
        let role = self.wanted_role(ctx);
        let senders = self.active.as_ref().map_or(0, |a| a.senders.len());
        let changed = self
            .active
            .as_ref()
            .is_some_and(|a| a.role != role || senders != self.journaled.len());
        if changed {
            self.set_role(role);
        }
        self.publish_status();
    }
}

/// A seed for a machine's session id: differs per machine and per run.
fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0u8)
}

/// The sync knobs for `s`: keepalived's `id` and `maxlen`, the message no
/// larger than the interface's MTU carries (IPVS sizes its messages the
/// same way, ip_vs_sync.c `get_mcast_sockopt`/`sync_maxlen`).
fn sync_config(s: &Settings) -> SyncConfig {
    let mut max = MESSAGE_BYTES_MAX;
    if let Some(m) = s.maxlen {
        max = max.min(usize::from(m));
    }
    if let Some(m) = s.endpoint.max_payload() {
        max = max.min(m);
    }
    let mut cfg = SyncConfig {
        sync_id: s.sync_id,
        flush_interval: FLUSH,
        ..SyncConfig::DEFAULT
    };
    cfg.max_message_bytes = cfg.max_message_bytes.min(max.max(MESSAGE_BYTES_MIN) as u16);
    cfg
}

/// The prefixes the fanout masks client addresses with, as the data plane
/// computes them from the services `shard` mirrors.
fn fanout_prefixes(shard: &Shard) -> (u8, u8) {
    let specs: Vec<ServiceSpec> = shard
        .balancer
        .services()
        .map(|(_, c)| ServiceSpec {
            config: *c,
            servers: Vec::new(),
            sorry: None,
            sorry_active: false,
        })
        .collect();
    super::prefixes_of(&specs)
}

impl Extension for DataPlaneSync {
    fn name(&self) -> &str {
        "connection sync"
    }

    fn global_defs(&mut self, g: &GlobalDefs<'_>) {
        let Some(iface) = g.lvs_sync_daemon_interface else {
            return;
        };
        let Some(instance) = g.lvs_sync_daemon_instance else {
            // keepalived would run both IPVS daemons at once; the data
            // plane sends only under one instance's mastership.
            warn!(
                "lvs_sync_daemon {iface}: no vrrp_instance named, so connection sync is off \
                 (name the instance whose MASTER sends)"
            );
            return;
        };
        let o = g.lvs_sync_daemon_options;
        let mut endpoint = Endpoint::new(iface);
        if let Some(group) = o.group {
            endpoint.group = group;
        }
        if let Some(port) = o.port {
            endpoint.port = port;
        }
        if let Some(ttl) = o.ttl {
            endpoint.ttl = ttl;
        }
        self.building = Some(Settings {
            endpoint,
            instance: instance.to_string(),
            sync_id: o.sync_id.unwrap_or(0),
            maxlen: o.maxlen,
        });
        self.building_sync_id_set = o.sync_id.is_some();
    }

    fn instance(&mut self, _id: InstanceId, conf: &VrrpInstance<'_>) {
        self.building_vrids.insert(conf.name.to_string(), conf.vrid);
        // keepalived 1.x's form, still accepted: the instance that names
        // the interface is the one that decides.
        if let (None, Some(iface)) = (&self.building_instance, conf.lvs_sync_daemon_interface) {
            self.building_instance = Some((iface.to_string(), conf.name.to_string()));
        }
    }

    fn reloaded(&mut self, ctx: &mut Context<'_>) {
        let settings = self.built_settings();
        if settings != self.settings {
            self.settings = settings;
            self.next_retry = Instant::ZERO;
            self.warned_instance = false;
            if self.settings.is_none() {
                self.deactivate(ctx);
            }
        }
        self.refresh(ctx);
    }

    fn ready(&mut self, local: usize, _readable: bool, _writable: bool, ctx: &mut Context<'_>) {
        if local == RX_TOKEN {
            self.receive();
            self.publish_status();
        }
        if local == KICK_TOKEN {
            if let Some(k) = &self.kick {
                k.waker.clear();
            }
            let loop_now = ctx.now();
            if let Some(a) = self.active.as_mut() {
                a.busy_until = Some(loop_now + BUSY_FOR);
                a.idle = false;
                a.next_pump = a.next_pump.min(loop_now);
            }
            self.pump(loop_now);
        }
    }

    fn observe(&mut self, out: &Output) {
        if super::mastership_may_change(out) {
            self.dirty = true;
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.dirty || self.rx_pending {
            return Some(Instant::ZERO);
        }
        self.settings.as_ref()?;
        let mut t = self.next_refresh;
        if let Some(a) = self.active.as_ref().filter(|a| a.role.sends()) {
            // Idle with a kick: no tick; a worker's kick wakes the loop.
            if !a.idle {
                t = t.min(a.next_pump);
            }
        }
        Some(t)
    }

    fn handle_timeout(&mut self, ctx: &mut Context<'_>) {
        let now = ctx.now();
        if self.dirty || now >= self.next_refresh {
            self.dirty = false;
            self.next_refresh = now + RETRY;
            self.refresh(ctx);
        }
        if self.rx_pending {
            self.receive();
        }
        self.pump(now);
        self.publish_status();
    }

    fn shutdown(&mut self, ctx: &mut Context<'_>) {
        self.deactivate(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::filter::{self, tests::run, tests::tcp4};
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The kernel's choice for a frame from `client`: the fanout program's
    /// result modulo the group's size.
    fn kernel_choice(client: IpAddr, prefixes: (u8, u8), shards: usize) -> usize {
        let prog = filter::fanout(prefixes.0, prefixes.1);
        let r = match client {
            IpAddr::V4(a) => run(&prog, &tcp4(a.octets(), [192, 0, 2, 240], 80, 0), 14, 0x800),
            IpAddr::V6(a) => {
                let mut f = vec![0u8; 14 + 40];
                f[22..38].copy_from_slice(&a.octets());
                run(&prog, &f, 14, 0x86dd)
            }
        };
        r as usize % shards
    }

    #[test]
    fn the_owner_of_a_client_is_the_shard_the_fanout_picks() {
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for prefixes in [(32, 128), (24, 64), (16, 48), (0, 0), (8, 40)] {
            for shards in 1..=5 {
                for _ in 0..200 {
                    let r = next();
                    let v4 = IpAddr::V4(Ipv4Addr::from(r as u32));
                    let v6 = IpAddr::V6(Ipv6Addr::from(u128::from(r) << 64 | u128::from(!r)));
                    for c in [v4, v6] {
                        assert_eq!(
                            shard_of(c, prefixes, shards),
                            kernel_choice(c, prefixes, shards),
                            "{c} {prefixes:?} {shards}"
                        );
                    }
                }
            }
        }
        // A template's (masked) client lands where its clients do.
        let a: IpAddr = "198.51.100.77".parse().unwrap();
        let t: IpAddr = "198.51.100.0".parse().unwrap();
        assert_eq!(shard_of(a, (24, 128), 4), shard_of(t, (24, 128), 4));
    }

    #[test]
    fn the_summary_adds_up_the_machines() {
        let tx = |m, e| SyncStats {
            tx_messages: m,
            tx_entries: e,
            ..SyncStats::default()
        };
        let st = SyncStatus {
            endpoint: Some(Endpoint::new("eth1")),
            instance: "VI_1".into(),
            sync_id: 7,
            maxlen: 1452,
            role: Some(Role::Receiver),
            senders: vec![tx(2, 30), tx(3, 40)],
            receiver: SyncStats {
                rx_messages: 7,
                rx_applied: 90,
                rx_replayed: 1,
                rx_wrong_sync_id: 2,
                rx_no_server: 4,
                rx_lost: 5,
                ..SyncStats::default()
            },
            send_errors: 6,
            datagrams: 10,
        };
        let s = st.summary();
        assert_eq!(s.iface, "eth1");
        assert_eq!(s.group, Some(("224.0.0.81".parse().unwrap(), 8848)));
        assert_eq!(s.role, "receiving");
        assert_eq!((s.sent_messages, s.sent_entries), (5, 70));
        assert_eq!((s.received_messages, s.applied_entries), (7, 90));
        assert_eq!((s.dropped_messages, s.dropped_entries), (3, 4));
        assert_eq!((s.lost_messages, s.send_errors), (5, 6));
        assert_eq!(SyncStatus::default().summary().role, "off");
        assert_eq!(
            s.text(),
            "backup sync daemon (mcast=eth1, syncid=7, maxlen=1452, group=224.0.0.81, port=8848, ttl=1), following VI_1\n  \
             sent 70 entries in 5 messages; received 7 messages, applied 90 entries\n  \
             dropped 3 messages and 4 entries, 5 messages lost, 6 send errors\n"
        );
        assert!(SyncView::default().summary().is_none());
    }

    /// Feeds a configuration's items to the extension's build hooks.
    struct Hooks<'s>(&'s mut DataPlaneSync);

    impl vrlb_core::config::Sink for Hooks<'_> {
        fn global_defs(&mut self, g: &GlobalDefs<'_>) -> Result<(), vrlb_core::config::Kind> {
            Extension::global_defs(self.0, g);
            Ok(())
        }
        fn vrrp_instance(&mut self, i: &VrrpInstance<'_>) -> Result<(), vrlb_core::config::Kind> {
            Extension::instance(self.0, InstanceId(0), i);
            Ok(())
        }
    }

    fn built(text: &str) -> Option<Settings> {
        let dp = DataPlane::new(super::super::DataPlaneOptions::default());
        let mut sync = DataPlaneSync::new(&dp);
        vrlb_core::config::parse(
            "k.conf",
            text,
            &vrlb_core::config::Options::default(),
            &mut Hooks(&mut sync),
            &mut vrlb_core::config::NoIncludes,
        )
        .unwrap();
        sync.built_settings()
    }

    #[test]
    fn settings_come_from_lvs_sync_daemon_or_an_instance() {
        let instance = |name: &str, extra: &str| {
            format!("vrrp_instance {name} {{\n virtual_router_id 51\n{extra}}}\n")
        };
        assert_eq!(built(&instance("VI_1", "")), None);
        // keepalived 1.x: the instance naming the interface decides.
        let legacy = built(&format!(
            "{}{}",
            instance("VI_1", ""),
            instance("VI_2", " lvs_sync_daemon_interface eth2\n")
        ))
        .unwrap();
        assert_eq!(legacy.instance, "VI_2");
        assert_eq!(legacy.endpoint, Endpoint::new("eth2"));
        // No `id`: the instance's VRID, as keepalived.
        assert_eq!((legacy.sync_id, legacy.maxlen), (51, None));
        // The global keyword wins, with keepalived's options.
        let text = format!(
            "global_defs {{\n lvs_sync_daemon eth1 VI_1 id 3 group ff02::1:81 port 9000 ttl 2 maxlen 800\n}}\n{}",
            instance("VI_2", " lvs_sync_daemon_interface eth2\n")
        );
        let s = built(&text).unwrap();
        assert_eq!(s.instance, "VI_1");
        assert_eq!(
            s.endpoint,
            Endpoint {
                iface: "eth1".into(),
                group: "ff02::1:81".parse().unwrap(),
                port: 9000,
                ttl: 2,
            }
        );
        assert_eq!((s.sync_id, s.maxlen), (3, Some(800)));
    }

    fn settings(maxlen: Option<u16>, iface: &str) -> Settings {
        Settings {
            endpoint: Endpoint::new(iface),
            instance: "VI_1".into(),
            sync_id: 9,
            maxlen,
        }
    }

    #[test]
    fn messages_fit_maxlen_and_the_interface() {
        // No such interface: the core's default size.
        let c = sync_config(&settings(None, "vrlb-no-such0"));
        assert_eq!((c.sync_id, c.max_message_bytes), (9, 1452));
        assert_eq!(c.flush_interval, FLUSH);
        assert!(c.validate().is_ok());
        let c = sync_config(&settings(Some(600), "vrlb-no-such0"));
        assert_eq!(c.max_message_bytes, 600);
        // Smaller than one IPv6 entry: one entry still fits.
        let c = sync_config(&settings(Some(10), "vrlb-no-such0"));
        assert_eq!(usize::from(c.max_message_bytes), MESSAGE_BYTES_MIN);
        assert!(c.validate().is_ok());
        // lo's MTU (65536 here) does not raise it past the default.
        let c = sync_config(&settings(Some(60000), "lo"));
        assert_eq!(c.max_message_bytes, 1452);
    }
}
