//! The IPVS schedulers and the per-service view they work on: the server
//! list (newest first, as the kernel's `list_add_rcu`), and the hooks the
//! kernel calls on add, delete and update of a server. One file per
//! scheduler or family. Never touches connections: the balancer binds and
//! unbinds them and reports count changes through [`View::on_counts`].

use core::net::IpAddr;

use super::server::{NONE, ServerSlot, SlotState};
use super::service::ServiceSlot;

pub(crate) mod hash;
pub(crate) mod least;
pub(crate) mod mh;
pub(crate) mod rr;
pub(crate) mod wrr;

pub use crate::scheduler::Scheduler;

/// What a hashing scheduler reads from the packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PickInput {
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
}

/// One service and its own slices of the shared storage.
pub(crate) struct View<'s> {
    pub svc: &'s mut ServiceSlot,
    pub servers: &'s mut [ServerSlot],
    /// lc/wlc/sed/nq/fo/ovf: the tournament tree; mh: scratch for the
    /// canonical server order it builds its table in.
    pub tree: &'s mut [u16],
    pub mh: &'s mut [u16],
    /// Keep the tournament tree current (off in the reference benchmark).
    pub tree_on: bool,
}

impl View<'_> {
    /// The server IPVS's scheduler would pick now, as a local index.
    pub fn schedule(&mut self, input: &PickInput) -> Option<u16> {
        match self.svc.cfg.scheduler {
            Scheduler::Rr => rr::schedule(self),
            Scheduler::Wrr => wrr::schedule(self),
            Scheduler::Sh => hash::sh_schedule(self, input),
            Scheduler::Dh => hash::dh_schedule(self, input),
            Scheduler::Mh => mh::schedule(self, input),
            _ if self.tree_on => least::pick(self),
            _ => least::linear_pick(self),
        }
    }

    /// Local indices of the listed servers, head first.
    #[cfg_attr(not(any(test, feature = "reference")), allow(dead_code))]
    pub fn list(&self) -> ListIter<'_> {
        ListIter {
            servers: self.servers,
            at: self.svc.head,
        }
    }

    /// Puts `local` at the head of the list (ip_vs_ctl.c adds with
    /// `list_add_rcu`) and tells the scheduler.
    pub fn link_head(&mut self, local: u16, seq: u64) {
        let old = self.svc.head;
        let s = &mut self.servers[local as usize];
        s.state = SlotState::Listed;
        s.prev = NONE;
        s.next = old;
        s.seq = seq;
        if old != NONE {
            self.servers[old as usize].prev = local;
        }
        self.svc.head = local;
        self.svc.count += 1;
        self.on_change(local);
    }

    /// Takes `local` off the list and tells the scheduler.
    pub fn unlink(&mut self, local: u16) {
        let (prev, next) = {
            let s = &self.servers[local as usize];
            (s.prev, s.next)
        };
        rr::on_del(self, local, prev);
        if prev == NONE {
            self.svc.head = next;
        } else {
            self.servers[prev as usize].next = next;
        }
        if next != NONE {
            self.servers[next as usize].prev = prev;
        }
        let s = &mut self.servers[local as usize];
        s.prev = NONE;
        s.next = NONE;
        s.state = SlotState::Trash;
        self.svc.count -= 1;
        self.on_change(local);
    }

    /// After a server was added, removed or edited: the kernel's
    /// `add_dest`/`del_dest`/`upd_dest` hooks. Rebuilds the hash tables.
    pub fn on_change(&mut self, local: u16) {
        wrr::dest_changed(self);
        hash::reassign(self);
        if self.svc.cfg.scheduler == Scheduler::Mh {
            mh::dest_changed(self);
        }
        self.on_counts(local);
    }

    /// After `local`'s counters, weight or overload flag changed.
    #[inline]
    pub fn on_counts(&mut self, local: u16) {
        if self.tree_on && self.svc.cfg.scheduler.uses_tree() {
            least::update(self.svc.cfg.scheduler, self.tree, self.servers, local);
        }
    }

    /// Rebuilds everything (scheduler change, reset).
    pub fn rebuild(&mut self) {
        self.svc.rr_cursor = NONE;
        self.svc.wrr = crate::lb::service::WrrMark::EMPTY;
        wrr::dest_changed(self);
        hash::reassign(self);
        if self.svc.cfg.scheduler == Scheduler::Mh {
            mh::dest_changed(self);
        }
        if self.svc.cfg.scheduler.uses_tree() {
            least::rebuild(self.svc.cfg.scheduler, self.tree, self.servers);
        }
    }
}

/// Iterator over a service's list, head first.
#[cfg_attr(not(any(test, feature = "reference")), allow(dead_code))]
pub(crate) struct ListIter<'a> {
    servers: &'a [ServerSlot],
    at: u16,
}

impl Iterator for ListIter<'_> {
    type Item = u16;
    #[inline]
    fn next(&mut self) -> Option<u16> {
        if self.at == NONE {
            return None;
        }
        let cur = self.at;
        self.at = self.servers[cur as usize].next;
        Some(cur)
    }
}
