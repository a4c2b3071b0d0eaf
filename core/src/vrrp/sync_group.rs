//! `vrrp_sync_group`: instances that move between Master, Backup and Fault
//! together, so a router's inside and outside addresses never split across
//! two nodes (keepalived.conf(5) "VRRP synchronization group").
//!
//! Owns only the membership; the instances live with their owner (`Node`),
//! which reports each state change here and applies what comes back.

use heapless::Vec;

use super::instance::State;

/// Most instances in one group.
pub const MAX_MEMBERS: usize = 16;

/// A set of instance indices that follow each other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncGroup {
    members: Vec<u16, MAX_MEMBERS>,
}

impl SyncGroup {
    /// A group of the instances at these indices (duplicates ignored).
    /// Returns `None` if there are more than [`MAX_MEMBERS`].
    pub fn new(members: &[u16]) -> Option<SyncGroup> {
        let mut group = SyncGroup::default();
        for m in members {
            if !group.members.contains(m) {
                group.members.push(*m).ok()?;
            }
        }
        Some(group)
    }

    /// The member indices.
    pub fn members(&self) -> &[u16] {
        &self.members
    }

    /// Whether `instance` belongs to the group.
    pub fn contains(&self, instance: u16) -> bool {
        self.members.contains(&instance)
    }

    /// The state every other member must move to after `changed` moved to
    /// `to`, or `None` when the others need not follow (a member leaving
    /// for Init, e.g. at shutdown, does not drag the rest along).
    pub fn follow(&self, changed: u16, to: State) -> Option<State> {
        if !self.contains(changed) {
            return None;
        }
        match to {
            State::Master | State::Backup | State::Fault => Some(to),
            State::Init => None,
        }
    }
}
