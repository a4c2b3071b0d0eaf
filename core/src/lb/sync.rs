//! The balancer's side of connection sync: a bounded journal of the
//! connections and templates that are new or changed (filled by
//! `classify`, drained by the sync machine), and applying entries a peer
//! sent to this balancer's own table. Never builds messages, talks to the
//! network or decides when to send: `crate::sync` does.
//!
//! What gets journaled (the sending director's `classify`):
//! - a new connection or template;
//! - a TCP state change;
//! - a packet that extends a connection's (or a template's) timeout when
//!   the previous use lies in an earlier *refresh window* (a power-of-two
//!   number of expiry ticks, at least the configured refresh period). So
//!   a busy connection is re-sent at most once per window, and one that is
//!   used at all is re-sent at least once per window. Entries carry the
//!   remaining timeout plus one window, so the backup's copy outlives the
//!   sender's (IPVS instead re-sends every `sync_period` packets, which
//!   never refreshes a quiet long-lived connection).
//!
//! A slot is in the journal at most once (a flag bit in the slot), so the
//! journal never holds more live entries than the table has slots; when it
//! is full the change is counted and lost, and the next use of the entry in
//! a later window sends it again.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::addr::from16;
use super::balancer::{Balancer, conn_key};
use super::classify::{Flow, TcpFlags};
use super::conn::{
    F_INACTIVE, F_LATE, F_QUEUED, KIND_CONN, KIND_MASK, KIND_TEMPLATE, KIND_V6, NIL, TICK_SHIFT,
    method_flags, tick_of,
};
use super::journal::Journal;
pub use super::journal::JournalStats;
use super::persist::template_key;
use super::server::SlotState;
use super::service::ServiceKey;
use super::tcp::TcpState;
use crate::time::{Duration, Instant};
use crate::wire::sync::{EntryKind, EntryRepr};

/// Microseconds per expiry tick.
const TICK_US: u64 = 1 << TICK_SHIFT;

/// Why a received entry was not applied. Each maps to a drop counter.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ApplyError {
    /// No virtual service here matches the entry's protocol, VIP and port
    /// (or fwmark).
    NoService,
    /// A template for a service that is not persistent here.
    NotPersistent,
    /// The service has no real server (listed or sorry) with the entry's
    /// address and port.
    NoServer,
    /// The connection table has no free slot.
    TableFull,
}

impl core::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ApplyError::NoService => "no virtual service matches the sync entry",
            ApplyError::NotPersistent => "sync template for a service without persistence",
            ApplyError::NoServer => "sync entry names a real server the service does not have",
            ApplyError::TableFull => "connection table full",
        })
    }
}

impl core::error::Error for ApplyError {}

/// `ms` as whole ticks, rounded up.
fn ticks_for_ms(ms: u32) -> u64 {
    (u64::from(ms) * 1000).div_ceil(TICK_US)
}

impl<'a> Balancer<'a> {
    /// Gives the balancer a journal of `ring.len()` entries for the
    /// connections and templates to sync, and the refresh period (rounded
    /// up to a power of two of 16.384 ms ticks; see the module doc).
    /// Journaling starts off: see [`Self::set_sync_journal`]. Size the ring
    /// for the changes of one flush interval (new flows per second times
    /// the interval, and some more); 0 entries disables journaling.
    pub fn attach_sync_journal(&mut self, ring: &'a mut [u32], refresh: Duration) {
        self.set_sync_journal(false);
        let ticks = refresh.as_micros().div_ceil(TICK_US).max(1);
        let shift = ticks.next_power_of_two().trailing_zeros().min(31);
        self.journal = Journal {
            ring,
            head: 0,
            len: 0,
            on: false,
            shift,
            stats: self.journal.stats,
        };
    }

    /// Takes the journal's ring back (journaling stops): for an in-place
    /// restart, before [`Self::into_storage`], which does not return it.
    pub fn detach_sync_journal(&mut self) -> &'a mut [u32] {
        self.set_sync_journal(false);
        self.journal.head = 0;
        core::mem::take(&mut self.journal.ring)
    }

    /// Turns journaling on (this director holds the VIP and sends) or off
    /// (what is queued is forgotten).
    pub fn set_sync_journal(&mut self, on: bool) {
        if !on {
            while let Some(s) = self.journal.pop() {
                if self.table.is_live(s) {
                    self.table.slots[s as usize].flags &= !F_QUEUED;
                }
            }
        }
        self.journal.on = on && !self.journal.ring.is_empty();
    }

    /// Whether journaling is on.
    pub fn sync_journal_on(&self) -> bool {
        self.journal.on
    }

    /// The refresh window (see the module doc).
    pub fn sync_refresh_window(&self) -> Duration {
        Duration::from_micros(TICK_US << self.journal.shift)
    }

    /// Journal entries waiting (some may be stale and are skipped).
    pub fn sync_pending(&self) -> usize {
        self.journal.len
    }

    /// Journal counters.
    pub fn sync_journal_stats(&self) -> JournalStats {
        self.journal.stats
    }

    /// `s` is new or changed: journal it unless it already is.
    #[inline]
    pub(super) fn sync_note(&mut self, s: u32) {
        let slot = &mut self.table.slots[s as usize];
        if slot.flags & F_QUEUED == 0 && self.journal.push(s) {
            slot.flags |= F_QUEUED;
        }
    }

    /// A use of `s` whose previous expiry was `old_expires` for a timeout
    /// of `old_timeout_ticks`: journal it when the previous use was in an
    /// earlier refresh window.
    #[inline]
    pub(super) fn sync_on_use(
        &mut self,
        s: u32,
        old_expires: u32,
        old_timeout_ticks: u64,
        now_tick: u64,
    ) {
        let last_use = old_expires.wrapping_sub(old_timeout_ticks as u32);
        let shift = self.journal.shift;
        if (now_tick as u32) >> shift != last_use >> shift {
            self.sync_note(s);
        }
    }

    /// Journals every connection and persistence template, templates
    /// first (so a backup links the connections to them): a full resync
    /// for a director that just started sending, whose peers lack what it
    /// tracked before (vrlb's addition; IPVS re-sends only as packets
    /// come, ip_vs_sync.c `sync_threshold`). Does nothing while
    /// journaling is off. What the journal has no room for is counted in
    /// `overflows` and goes out on its next use in a later refresh window.
    pub fn sync_journal_all(&mut self, now: Instant) {
        if !self.journal.on {
            return;
        }
        let now = self.clamp(now);
        self.expire(tick_of(now.as_micros()));
        for kind in [KIND_TEMPLATE, KIND_CONN] {
            let mut next = self.table.next_live(0);
            while let Some(s) = next {
                if self.table.slots[s as usize].kind & KIND_MASK == kind {
                    self.sync_note(s);
                }
                next = self.table.next_live(s + 1);
            }
        }
    }

    /// The next journaled connection or template as a sync entry, its
    /// timeout being what is left of it at `now` plus one refresh window.
    pub fn sync_pop(&mut self, now: Instant) -> Option<EntryRepr> {
        let now = self.clamp(now);
        let now_tick = tick_of(now.as_micros());
        while let Some(s) = self.journal.pop() {
            if !self.table.is_live(s) {
                continue; // freed since it was queued
            }
            let slot = &mut self.table.slots[s as usize];
            if slot.flags & F_QUEUED == 0 {
                continue; // freed (and maybe reused) since it was queued
            }
            slot.flags &= !F_QUEUED;
            let window_ticks = 1u64 << self.journal.shift;
            if let Some(e) = self.entry_of(s, now_tick, window_ticks) {
                return Some(e);
            }
        }
        None
    }

    /// Every connection and (usable) template as a sync entry with timeout
    /// 0, for a full resync or to compare two tables.
    pub fn for_each_sync_entry(&self, mut f: impl FnMut(EntryRepr)) {
        for s in self.table.live_slots() {
            if let Some(mut e) = self.entry_of(s, 0, 0) {
                e.timeout_ms = 0;
                f(e);
            }
        }
    }

    /// Live slot `s` as an entry; `None` for orphan templates.
    fn entry_of(&self, s: u32, now_tick: u64, extra_ticks: u64) -> Option<EntryRepr> {
        let slot = &self.table.slots[s as usize];
        let kind = slot.kind & KIND_MASK;
        let v6 = slot.kind & KIND_V6 != 0;
        let server = &self.pools.servers[slot.server as usize].cfg;
        // Ticks left, 0 when already due (wrapping tick arithmetic).
        let left = slot.expires.wrapping_sub(now_tick as u32) as i32;
        let left = u64::from(left.max(0) as u32);
        let timeout_ms = ((left + extra_ticks) * TICK_US / 1000).min(u64::from(u32::MAX)) as u32;
        let (svc, _) = self.pools.split(slot.server);
        let key = self.pools.services[svc as usize].cfg.key;
        let fwmark = match key {
            ServiceKey::Fwmark { mark, .. } => mark,
            ServiceKey::Addr { .. } => 0,
        };
        match kind {
            KIND_CONN => Some(EntryRepr {
                kind: EntryKind::Connection,
                protocol: slot.proto,
                state: if slot.proto == 6 { slot.state } else { 0 },
                late: false,
                client: from16(slot.caddr, v6),
                client_port: slot.cport,
                vip: from16(slot.vaddr, v6),
                vport: slot.vport,
                server: server.addr,
                server_port: server.port,
                fwmark,
                timeout_ms,
            }),
            KIND_TEMPLATE => {
                let (protocol, vip, vport) = match key {
                    ServiceKey::Addr {
                        protocol,
                        vip,
                        port,
                    } => (protocol.number(), vip, port),
                    ServiceKey::Fwmark { .. } => (0, unspecified(v6), 0),
                };
                Some(EntryRepr {
                    kind: EntryKind::Template,
                    protocol,
                    state: 0,
                    late: slot.flags & F_LATE != 0,
                    client: from16(slot.caddr, v6),
                    client_port: 0,
                    vip,
                    vport,
                    server: server.addr,
                    server_port: server.port,
                    fwmark,
                    timeout_ms,
                })
            }
            _ => None,
        }
    }

    /// The service and (global) server an entry names, by the service's
    /// key and the server's address and port (listed or sorry).
    fn resolve(&self, e: &EntryRepr, protocol: u8) -> Result<(u16, u16), ApplyError> {
        let flow = Flow {
            src: e.client,
            dst: e.vip,
            src_port: e.client_port,
            dst_port: e.vport,
            protocol,
            tcp_flags: TcpFlags::NONE,
            fwmark: e.fwmark,
        };
        let svc = self.lookup_service(&flow).ok_or(ApplyError::NoService)?;
        let local = self
            .find_local(svc, e.server, e.server_port, SlotState::Listed)
            .or_else(|| self.find_local(svc, e.server, e.server_port, SlotState::Sorry))
            .ok_or(ApplyError::NoServer)?;
        Ok((svc, self.global(svc, local)))
    }

    /// Applies one entry a peer sent: creates or refreshes the connection
    /// or template, bound to this balancer's server with the same address
    /// and port in the matching service, with the entry's state and
    /// timeout. An entry naming another server than the one here wins (the
    /// sender holds the VIP). Never journals what it applies.
    pub fn sync_apply(&mut self, now: Instant, e: &EntryRepr) -> Result<(), ApplyError> {
        let now = self.clamp(now);
        let now_tick = tick_of(now.as_micros());
        self.expire(now_tick);
        let expires = (now_tick + ticks_for_ms(e.timeout_ms)) as u32;
        match e.kind {
            EntryKind::Connection => self.apply_conn(e, expires),
            EntryKind::Template => self.apply_template(e, expires),
        }
    }

    fn apply_conn(&mut self, e: &EntryRepr, expires: u32) -> Result<(), ApplyError> {
        let (svc, server) = self.resolve(e, e.protocol)?;
        let flow = Flow {
            src: e.client,
            dst: e.vip,
            src_port: e.client_port,
            dst_port: e.vport,
            protocol: e.protocol,
            tcp_flags: TcpFlags::NONE,
            fwmark: e.fwmark,
        };
        let key = conn_key(&flow);
        let hash = self.table.hash(&key);
        let state = if e.protocol == 6 {
            TcpState::from_u8(e.state)
        } else {
            TcpState::None
        };
        let inactive = e.protocol != 6 || !state.is_active();
        let mut found = self.table.find(hash, &key);
        if let Some(s) = found {
            if self.table.slots[s as usize].server != server {
                self.expire_conn(s);
                found = None;
            }
        }
        let s = match found {
            Some(s) => {
                let slot = &mut self.table.slots[s as usize];
                let was_inactive = slot.flags & F_INACTIVE != 0;
                slot.state = state as u8;
                if was_inactive != inactive {
                    // Moves between the counters as a state change does.
                    slot.flags ^= F_INACTIVE;
                    let sv = &mut self.pools.servers[server as usize];
                    if inactive {
                        sv.active -= 1;
                        sv.inactive += 1;
                    } else {
                        sv.inactive -= 1;
                        sv.active += 1;
                    }
                    let (svc, local) = self.pools.split(server);
                    self.pools.view(svc).on_counts(local);
                }
                self.table.set_expiry(s, expires);
                s
            }
            None => {
                let s = self
                    .table
                    .insert(hash, &key, expires)
                    .ok_or(ApplyError::TableFull)?;
                // The wire carries no method: this director's for the server.
                let method = self.pools.servers[server as usize].cfg.method;
                let slot = &mut self.table.slots[s as usize];
                slot.server = server;
                slot.svc = svc;
                slot.state = state as u8;
                slot.flags = method_flags(method) | if inactive { F_INACTIVE } else { 0 };
                slot.control = NIL;
                self.pools.bind(server, false, inactive);
                self.stats.conns_created += 1;
                s
            }
        };
        // Link to the client's template when it names the same server, so
        // the template lives while the connection does.
        let cfg = self.pools.services[svc as usize].cfg;
        if self.table.slots[s as usize].control == NIL && cfg.persistence_timeout_s != 0 {
            let tkey = template_key(svc, &cfg, e.client, e.vport);
            if let Some(t) = self.table.find(self.table.hash(&tkey), &tkey) {
                if self.table.slots[t as usize].server == server {
                    self.table.slots[s as usize].control = t;
                    self.table.slots[t as usize].control += 1;
                }
            }
        }
        Ok(())
    }

    fn apply_template(&mut self, e: &EntryRepr, expires: u32) -> Result<(), ApplyError> {
        let (svc, server) = self.resolve(e, e.protocol)?;
        let cfg = self.pools.services[svc as usize].cfg;
        if cfg.persistence_timeout_s == 0 {
            return Err(ApplyError::NotPersistent);
        }
        // The service's port gives the same key the sender used.
        let tkey = template_key(svc, &cfg, e.client, cfg.port());
        let thash = self.table.hash(&tkey);
        if let Some(t) = self.table.find(thash, &tkey) {
            if self.table.slots[t as usize].server == server {
                let slot = &mut self.table.slots[t as usize];
                slot.flags = (slot.flags & !F_LATE) | if e.late { F_LATE } else { 0 };
                self.table.set_expiry(t, expires);
                return Ok(());
            }
            if self.table.slots[t as usize].control > 0 {
                // Its connections keep it; it no longer answers lookups.
                self.table.orphan(t);
            } else {
                self.free_template(t);
            }
        }
        let t = self
            .table
            .insert(thash, &tkey, expires)
            .ok_or(ApplyError::TableFull)?;
        let slot = &mut self.table.slots[t as usize];
        slot.server = server;
        slot.svc = svc;
        slot.control = 0;
        slot.flags = if e.late { F_LATE } else { 0 };
        self.pools.bind(server, true, false);
        self.stats.templates_created += 1;
        Ok(())
    }
}

fn unspecified(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}
