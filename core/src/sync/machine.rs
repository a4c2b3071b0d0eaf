//! The sync state machine: batching journaled changes into messages under
//! the size and rate bounds, and checking and applying received ones.
//! Never does I/O or reads a clock.

use heapless::{Deque, Vec};

use super::config::{MESSAGE_BYTES_MAX, Role, SyncConfig, SyncConfigError};
use super::rate::Gcra;
use super::replay::{Replay, Verdict};
use super::stats::SyncStats;
use crate::lb::{ApplyError, Balancer};
use crate::rand::Prng;
use crate::time::Instant;
use crate::wire::sync::{self as wire, EntryRepr, HEADER_LEN};

/// Outputs waiting at most: one message released by the rate limit while
/// another is still undrained.
pub const OUTPUT_QUEUE: usize = 2;

/// One sync message, ready to send as a UDP payload.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    bytes: Vec<u8, MESSAGE_BYTES_MAX>,
}

impl Message {
    /// The bytes to send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl core::fmt::Debug for Message {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Message({} bytes)", self.bytes.len())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Message {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "Message({} bytes)", self.bytes.len())
    }
}

/// What the machine is told.
#[derive(Clone, Copy, Debug)]
pub enum Input<'b> {
    /// A datagram received on the sync socket (the UDP payload).
    Receive(&'b [u8]),
    /// Start or stop sending and receiving (the VRRP state changed).
    SetRole(Role),
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Output {
    /// Send this message to the sync group (multicast or the peers).
    Transmit(Message),
}

/// The sync machine of one director. See the module doc.
pub struct ConnSync {
    cfg: SyncConfig,
    role: Role,
    now: Instant,
    session: u32,
    next_sequence: u32,
    /// The message being filled: header space, then entries.
    buf: [u8; MESSAGE_BYTES_MAX],
    len: usize,
    count: u16,
    /// An entry taken from the journal that did not fit the last message.
    carry: Option<EntryRepr>,
    /// A finished message waiting for the rate limit or queue room.
    held: Option<Message>,
    /// The held message was already counted as rate limited.
    held_counted: bool,
    rate: Gcra,
    /// When a partly filled message is sent and the journal is read.
    next_flush: Instant,
    replay: Replay,
    outputs: Deque<Output, OUTPUT_QUEUE>,
    stats: SyncStats,
}

impl ConnSync {
    /// A machine in role [`Role::Off`]. `seed` picks the session id that
    /// tells this run's messages apart from a restarted sender's.
    pub fn new(cfg: SyncConfig, seed: u64, now: Instant) -> Result<Self, SyncConfigError> {
        cfg.validate()?;
        let mut prng = Prng::new(seed);
        Ok(ConnSync {
            cfg,
            role: Role::Off,
            now,
            session: prng.next_u32(),
            next_sequence: prng.next_u32(),
            buf: [0; MESSAGE_BYTES_MAX],
            len: HEADER_LEN,
            count: 0,
            carry: None,
            held: None,
            held_counted: false,
            rate: Gcra::new(cfg.messages_per_s, cfg.burst_messages),
            next_flush: now + cfg.flush_interval,
            replay: Replay::default(),
            outputs: Deque::new(),
            stats: SyncStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SyncConfig {
        &self.cfg
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// This run's session id (in every message sent).
    pub fn session(&self) -> u32 {
        self.session
    }

    /// Counters.
    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    fn clamp(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    /// One input. Received datagrams are applied to `lb` (never an error:
    /// bad ones are counted in [`Self::stats`] and logged); a role change
    /// turns `lb`'s journal on or off.
    pub fn handle(&mut self, now: Instant, input: Input<'_>, lb: &mut Balancer<'_>) {
        let now = self.clamp(now);
        match input {
            Input::Receive(bytes) => self.receive(now, bytes, lb),
            Input::SetRole(role) => self.set_role(now, role, lb),
        }
    }

    fn set_role(&mut self, now: Instant, role: Role, lb: &mut Balancer<'_>) {
        if role == self.role {
            return;
        }
        info!("sync: role {:?} -> {:?}", self.role, role);
        if !role.sends() {
            self.stats.tx_discarded += u64::from(self.count) + u64::from(self.carry.is_some());
            self.len = HEADER_LEN;
            self.count = 0;
            self.carry = None;
            if let Some(m) = self.held.take() {
                let n = wire::Packet::new_unchecked(m.as_bytes()).count();
                self.stats.tx_discarded += u64::from(n);
            }
        }
        if role.sends() != self.role.sends() {
            lb.set_sync_journal(role.sends());
            self.next_flush = now + self.cfg.flush_interval;
        }
        self.role = role;
    }

    fn receive(&mut self, now: Instant, bytes: &[u8], lb: &mut Balancer<'_>) {
        if !self.role.receives() {
            self.stats.rx_not_receiving += 1;
            return;
        }
        let (repr, entries) = match wire::parse(bytes) {
            Ok(v) => v,
            Err(e) => {
                match e {
                    wire::Error::Truncated => self.stats.rx_truncated += 1,
                    wire::Error::BadVersion(_) => self.stats.rx_bad_version += 1,
                    wire::Error::BadLength => self.stats.rx_bad_length += 1,
                    wire::Error::BadEntry { .. } => self.stats.rx_bad_entry += 1,
                }
                debug!("sync: dropped a message: {}", e);
                return;
            }
        };
        if repr.sync_id != self.cfg.sync_id {
            self.stats.rx_wrong_sync_id += 1;
            trace!("sync: dropped a message of sync id {}", repr.sync_id);
            return;
        }
        if repr.session == self.session {
            self.stats.rx_own += 1;
            return;
        }
        match self.replay.check(repr.session, repr.sequence) {
            Verdict::Replay => {
                self.stats.rx_replayed += 1;
                debug!(
                    "sync: dropped duplicate message {} of session {}",
                    repr.sequence, repr.session
                );
                return;
            }
            Verdict::Late => {
                self.stats.rx_reordered += 1;
                self.stats.rx_lost = self.stats.rx_lost.saturating_sub(1);
            }
            Verdict::Fresh { lost } => {
                if lost > 0 {
                    warn!("sync: {} messages of session {} lost", lost, repr.session);
                }
                self.stats.rx_lost += u64::from(lost);
            }
        }
        self.replay.record(repr.session, repr.sequence, now);
        self.stats.rx_messages += 1;
        for e in entries {
            match lb.sync_apply(now, &e) {
                Ok(()) => self.stats.rx_applied += 1,
                Err(ApplyError::NoService) => self.stats.rx_no_service += 1,
                Err(ApplyError::NotPersistent) => self.stats.rx_not_persistent += 1,
                Err(ApplyError::NoServer) => self.stats.rx_no_server += 1,
                Err(ApplyError::TableFull) => self.stats.rx_table_full += 1,
            }
        }
    }

    /// Reads `lb`'s journal into messages: full ones go out as the rate
    /// allows, a partly filled one when the flush interval has passed.
    /// Idempotent and cheap: a node may call it after every batch of
    /// packets to keep the journal short.
    pub fn handle_timeout(&mut self, now: Instant, lb: &mut Balancer<'_>) {
        let now = self.clamp(now);
        if !self.role.sends() {
            return;
        }
        self.pump(now, lb);
        if now >= self.next_flush {
            if self.held.is_none() && self.count > 0 {
                self.finish();
                self.pump(now, lb);
            }
            self.next_flush = now + self.cfg.flush_interval;
        }
    }

    /// Releases the held message when allowed, then fills messages from
    /// the journal until one is held back (by the rate or a full output
    /// queue) or the journal is empty.
    fn pump(&mut self, now: Instant, lb: &mut Balancer<'_>) {
        loop {
            if let Some(m) = self.held.take() {
                if self.outputs.is_full() || !self.rate.take(now) {
                    if !self.held_counted {
                        self.held_counted = true;
                        self.stats.tx_rate_limited += 1;
                    }
                    self.held = Some(m);
                    return;
                }
                self.stats.tx_messages += 1;
                self.stats.tx_bytes += m.bytes.len() as u64;
                // Room checked above.
                let _ = self.outputs.push_back(Output::Transmit(m));
            }
            let Some(e) = self.carry.take().or_else(|| lb.sync_pop(now)) else {
                return;
            };
            let n = e.buffer_len();
            if self.len + n > usize::from(self.cfg.max_message_bytes) {
                // A message holds at least one entry (config validation),
                // so this one is not empty.
                self.carry = Some(e);
                self.finish();
                continue;
            }
            self.len += e.emit(&mut self.buf[self.len..]);
            self.count += 1;
        }
    }

    /// Closes the message being filled into `held`.
    fn finish(&mut self) {
        let repr = wire::Repr {
            sync_id: self.cfg.sync_id,
            session: self.session,
            sequence: self.next_sequence,
            count: self.count,
        };
        self.next_sequence = self.next_sequence.wrapping_add(1);
        // `len <= max_message_bytes <= MESSAGE_BYTES_MAX`.
        repr.emit(
            &mut wire::Packet::new_unchecked(&mut self.buf[..]),
            self.len as u16,
        );
        let mut bytes = Vec::new();
        let _ = bytes.extend_from_slice(&self.buf[..self.len]);
        self.stats.tx_entries += u64::from(self.count);
        self.held = Some(Message { bytes });
        self.held_counted = false;
        self.len = HEADER_LEN;
        self.count = 0;
    }

    /// The next output; call until `None` after every `handle` and
    /// `handle_timeout`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call [`Self::handle_timeout`] next: the flush tick while
    /// sending, sooner when a held message may go.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.role.sends() {
            return None;
        }
        let mut t = self.next_flush;
        if self.held.is_some() && self.outputs.is_empty() {
            t = t.min(self.rate.ready_at().max(self.now));
        }
        Some(t)
    }
}
