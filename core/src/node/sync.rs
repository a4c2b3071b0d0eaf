//! The node's connection sync, keepalived's `lvs_sync_daemon`: the sync
//! machine ([`ConnSync`]) in caller storage, its role following the VRRP
//! instance the configuration names, its timer in the node's queue, the
//! datagrams received (`Input::SyncReceive`) and the one handed out with
//! `Output::SyncTransmit`. Never opens a socket or picks an address: the
//! driver carries the datagrams, to the group, port and TTL in
//! [`SyncSettings`].
//!
//! Roles, as keepalived drives the IPVS sync daemons (vrrp.c
//! `vrrp_state_become_master` calls `ipvs_syncd_master`, which stops the
//! backup daemon and starts the master one; `vrrp_state_leave_master` calls
//! `ipvs_syncd_backup`, the reverse; at start and reload the daemon runs in
//! the instance's state, master or backup):
//!
//! | named instance | role |
//! |---|---|
//! | MASTER | [`Role::Sender`] |
//! | INIT, BACKUP, FAULT | [`Role::Receiver`] |
//! | none named | [`Role::Both`] (keepalived's checker then starts both daemons, check_daemon.c `IPVS_MASTER_BACKUP`) |
//! | node stopped | [`Role::Off`] (keepalived stops the daemon on shutdown) |

use core::net::{IpAddr, Ipv4Addr};

use super::{IfaceId, Node, NodeError, Output, Owner};
use crate::mutation::{self, Mutation};
use crate::sync::{self, ConnSync, Message, Role, SyncConfig};
use crate::time::{Duration, Instant};
use crate::vrrp::{State, VipStore};

/// IPVS's default sync port (ip_vs_sync.c `IP_VS_SYNC_PORT`).
pub const DEFAULT_SYNC_PORT: u16 = 8848;
/// IPVS's default sync group (ip_vs_sync.c `IP_VS_SYNC_GROUP`).
pub const DEFAULT_SYNC_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// IPVS's default multicast TTL for sync messages.
pub const DEFAULT_SYNC_TTL: u8 = 1;
/// How often a connection in use is sent again (see `lb::sync`): IPVS
/// resends by packet count instead, so this is vrlb's choice.
pub const DEFAULT_SYNC_REFRESH: Duration = Duration::from_secs(30);

/// What a node's connection sync does and where its datagrams go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SyncSettings {
    /// The sync machine's knobs.
    pub config: SyncConfig,
    /// The name key ([`super::build::name_key`]) of the VRRP instance
    /// whose state picks the role; `None` sends and receives at once.
    pub instance: Option<u64>,
    /// The interface the driver sends and receives on.
    pub iface: IfaceId,
    /// The multicast group.
    pub group: IpAddr,
    /// The UDP port.
    pub port: u16,
    /// The multicast TTL.
    pub ttl: u8,
    /// How often a connection in use is sent again.
    pub refresh: Duration,
}

impl SyncSettings {
    /// IPVS's defaults on `iface`, following `instance`.
    pub const fn new(iface: IfaceId, instance: Option<u64>) -> Self {
        SyncSettings {
            config: SyncConfig::DEFAULT,
            instance,
            iface,
            group: IpAddr::V4(DEFAULT_SYNC_GROUP),
            port: DEFAULT_SYNC_PORT,
            ttl: DEFAULT_SYNC_TTL,
            refresh: DEFAULT_SYNC_REFRESH,
        }
    }
}

struct SyncEntry {
    machine: ConnSync,
    settings: SyncSettings,
    /// The deadline last put in the timer queue.
    deadline: Instant,
    /// The message of the last `Output::SyncTransmit`, until the next
    /// `poll_output`.
    pending: Option<Message>,
}

/// Storage for a node's connection sync (about 8 KiB: the message being
/// filled, the queue of finished ones, the peers' replay windows).
/// `Default` is empty.
#[derive(Default)]
pub struct SyncSlot {
    entry: Option<SyncEntry>,
    seed: u64,
    /// Machines built in this slot: each gets its own session id.
    lives: u64,
    journal_len: usize,
}

impl core::fmt::Debug for SyncSlot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SyncSlot")
            .field("configured", &self.entry.is_some())
            .field("journal_len", &self.journal_len)
            .finish_non_exhaustive()
    }
}

/// What [`Node::with_sync`] takes.
#[derive(Debug)]
pub struct SyncStorage<'a> {
    /// The machine's slot.
    pub slot: &'a mut SyncSlot,
    /// The balancer's journal of changes to send: room for the new and
    /// changed connections of one flush interval (see
    /// `Balancer::attach_sync_journal`).
    pub journal: &'a mut [u32],
    /// Seed of the session ids.
    pub seed: u64,
}

impl<'a, S: VipStore> Node<'a, S> {
    /// Gives the node connection sync storage (after
    /// [`Node::with_balancing`]: the journal goes to the balancer). Sync
    /// starts with [`Node::set_sync`], or when a configuration with
    /// `lvs_sync_daemon` is built.
    pub fn with_sync(mut self, storage: SyncStorage<'a>) -> Self {
        let SyncStorage {
            slot,
            journal,
            seed,
        } = storage;
        *slot = SyncSlot {
            entry: None,
            seed,
            lives: 0,
            journal_len: journal.len(),
        };
        if let Some(b) = self.balancing.as_mut() {
            b.balancer
                .attach_sync_journal(journal, DEFAULT_SYNC_REFRESH);
        }
        self.sync = Some(slot);
        self
    }

    /// Takes the sync storage back (sync stops), to rebuild a node in the
    /// same memory: call before [`Node::into_storage_with_balancing`].
    pub fn take_sync_storage(&mut self) -> Option<SyncStorage<'a>> {
        let slot = self.sync.take()?;
        let journal = match self.balancing.as_mut() {
            Some(b) => b.balancer.detach_sync_journal(),
            None => &mut [],
        };
        slot.entry = None;
        let seed = slot.seed;
        self.prune_timers();
        Some(SyncStorage {
            slot,
            journal,
            seed,
        })
    }

    /// Starts connection sync, or changes its settings. Unchanged machine
    /// settings keep the running machine (a reload does not restart the
    /// session); changed ones start a new session.
    pub fn set_sync(&mut self, settings: SyncSettings) -> Result<(), NodeError> {
        settings.config.validate().map_err(NodeError::Sync)?;
        let now = self.now;
        let Some(b) = self.balancing.as_mut() else {
            return Err(NodeError::NoSuch("balancer"));
        };
        let Some(slot) = self.sync.as_deref_mut() else {
            return Err(NodeError::NoSuch("connection sync storage"));
        };
        if let Some(e) = slot.entry.as_mut() {
            if *e.machine.config() == settings.config && e.settings.refresh == settings.refresh {
                e.settings = settings;
                self.update_sync_role();
                return Ok(());
            }
            e.machine
                .handle(now, sync::Input::SetRole(Role::Off), &mut b.balancer);
        }
        slot.lives += 1;
        let seed = slot.seed ^ slot.lives.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let machine = ConnSync::new(settings.config, seed, now).map_err(NodeError::Sync)?;
        let ring = b.balancer.detach_sync_journal();
        b.balancer.attach_sync_journal(ring, settings.refresh);
        slot.entry = Some(SyncEntry {
            machine,
            settings,
            deadline: Instant::MAX,
            pending: None,
        });
        info!(
            "sync: session {} on interface {}",
            slot.entry.as_ref().map_or(0, |e| e.machine.session()),
            settings.iface.0
        );
        self.update_sync_role();
        self.prune_timers();
        Ok(())
    }

    /// Stops connection sync (the configuration no longer has it).
    pub fn clear_sync(&mut self) {
        let now = self.now;
        let Some(slot) = self.sync.as_deref_mut() else {
            return;
        };
        if let (Some(e), Some(b)) = (slot.entry.as_mut(), self.balancing.as_mut()) {
            e.machine
                .handle(now, sync::Input::SetRole(Role::Off), &mut b.balancer);
        }
        slot.entry = None;
        self.prune_timers();
    }

    /// Whether the node was given sync storage ([`Node::with_sync`]).
    pub fn has_sync_storage(&self) -> bool {
        self.sync.is_some()
    }

    /// The sync machine (role, session, counters), while sync runs.
    pub fn conn_sync(&self) -> Option<&ConnSync> {
        self.sync_entry().map(|e| &e.machine)
    }

    /// The sync settings, while sync runs.
    pub fn sync_settings(&self) -> Option<&SyncSettings> {
        self.sync_entry().map(|e| &e.settings)
    }

    /// The UDP payload of the last `Output::SyncTransmit`: send it to the
    /// group (or peers) before the next [`Node::poll_output`], which
    /// forgets it.
    pub fn sync_payload(&self) -> Option<&[u8]> {
        self.sync_entry()?.pending.as_ref().map(Message::as_bytes)
    }

    fn sync_entry(&self) -> Option<&SyncEntry> {
        self.sync.as_deref()?.entry.as_ref()
    }

    fn sync_entry_mut(&mut self) -> Option<&mut SyncEntry> {
        self.sync.as_deref_mut()?.entry.as_mut()
    }

    /// The role the configuration and the named instance's state ask for.
    fn wanted_sync_role(&self) -> Role {
        let Some(e) = self.sync_entry() else {
            return Role::Off;
        };
        if !self.started {
            return Role::Off;
        }
        let Some(key) = e.settings.instance else {
            return Role::Both;
        };
        match self
            .instance_by_key(key)
            .and_then(|id| self.instance(id))
            .map(|i| i.state())
        {
            Some(State::Master) => Role::Sender,
            Some(_) => Role::Receiver,
            None => Role::Off,
        }
    }

    /// Moves the machine to the role wanted now (start, stop, a state
    /// change of the named instance, a reload).
    pub(super) fn update_sync_role(&mut self) {
        let role = self.wanted_sync_role();
        let now = self.now;
        let (Some(b), Some(e)) = (
            self.balancing.as_mut(),
            self.sync.as_deref_mut().and_then(|s| s.entry.as_mut()),
        ) else {
            return;
        };
        if e.machine.role() != role {
            e.machine
                .handle(now, sync::Input::SetRole(role), &mut b.balancer);
        }
        self.schedule(Owner::Sync);
    }

    /// A datagram from the sync socket.
    pub(super) fn sync_receive(&mut self, payload: &[u8]) {
        // Mutation testing: the simulator's sync invariant must see this.
        if mutation::on(Mutation::DropSyncMessages) {
            return;
        }
        let now = self.now;
        let (Some(b), Some(e)) = (
            self.balancing.as_mut(),
            self.sync.as_deref_mut().and_then(|s| s.entry.as_mut()),
        ) else {
            self.stats.sync_unconfigured = self.stats.sync_unconfigured.saturating_add(1);
            debug!("sync: dropped a datagram: connection sync is not configured");
            return;
        };
        e.machine
            .handle(now, sync::Input::Receive(payload), &mut b.balancer);
        // Applied entries may expire before the balancer's old deadline.
        self.schedule(Owner::Balancer);
        self.schedule(Owner::Sync);
    }

    /// The sync timer fired (flush, or a message the rate held back).
    pub(super) fn sync_timeout(&mut self, at: Instant) {
        let now = self.now;
        let (Some(b), Some(e)) = (
            self.balancing.as_mut(),
            self.sync.as_deref_mut().and_then(|s| s.entry.as_mut()),
        ) else {
            return;
        };
        if e.deadline != at {
            return;
        }
        e.deadline = Instant::MAX;
        e.machine.handle_timeout(now, &mut b.balancer);
        self.schedule(Owner::Sync);
    }

    /// After `classify`: a journal half full is sent at once rather than
    /// at the next flush, so bursts of new flows are not lost to overflow.
    pub(super) fn sync_after_classify(&mut self) {
        let now = self.now;
        let Some(slot) = self.sync.as_deref_mut() else {
            return;
        };
        let half = slot.journal_len / 2;
        let (Some(b), Some(e)) = (self.balancing.as_mut(), slot.entry.as_mut()) else {
            return;
        };
        if !e.machine.role().sends() || b.balancer.sync_pending() <= half {
            return;
        }
        e.machine.handle_timeout(now, &mut b.balancer);
        self.schedule(Owner::Sync);
    }

    /// The sync machine's next deadline if it changed (for `schedule`).
    pub(super) fn sync_deadline_changed(&mut self) -> Option<Instant> {
        let e = self.sync_entry_mut()?;
        let at = e.machine.poll_timeout().unwrap_or(Instant::MAX);
        if at == e.deadline {
            return None;
        }
        e.deadline = at;
        Some(at)
    }

    /// The deadline last queued (for timer rebuilds).
    pub(super) fn sync_deadline(&self) -> Option<Instant> {
        self.sync_entry().map(|e| e.deadline)
    }

    /// Forgets the payload handed out by the last `poll_output`.
    pub(super) fn sync_forget_pending(&mut self) {
        if let Some(e) = self.sync_entry_mut() {
            e.pending = None;
        }
    }

    /// The machine's next datagram as an output.
    pub(super) fn poll_sync_output(&mut self) -> Option<Output> {
        let e = self.sync_entry_mut()?;
        let sync::Output::Transmit(m) = e.machine.poll_output()?;
        if mutation::on(Mutation::SilentSyncSender) {
            return None;
        }
        let len = m.as_bytes().len() as u16;
        e.pending = Some(m);
        // A message the rate or the queue held back may go now.
        self.schedule(Owner::Sync);
        Some(Output::SyncTransmit { len })
    }
}
