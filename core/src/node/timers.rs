//! The node's single timer queue: a binary min-heap of (deadline, owner)
//! over caller storage, with lazy deletion.
//!
//! When an owner's deadline changes, a new entry is pushed and the old one
//! goes stale; a popped entry counts only if it still equals the owner's
//! current deadline (the caller checks). The caller also pops stale
//! entries off the top whenever a deadline changes ([`TimerQueue::pop`]),
//! so the top is always a live deadline. When the heap fills with stale
//! entries it is rebuilt from the owners' current deadlines, so its size
//! stays within the storage it was given. Entries due at the same time
//! come out in [`Owner`] order (instances by index, then scripts,
//! checkers, the balancer, sync), so a step's order never depends on the
//! heap's history. Owns no clock and no owners.

use crate::time::Instant;

/// Who a deadline belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Owner {
    /// A VRRP instance, by index.
    Instance(u16),
    /// A tracking script, by index.
    Script(u16),
    /// A health checker, by index.
    Checker(u32),
    /// The load balancer's expiry.
    Balancer,
    /// Connection sync (flush and rate timers).
    Sync,
}

/// One heap entry. `Default` gives an unused one for storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerEntry {
    at: Instant,
    owner: Owner,
}

impl TimerEntry {
    /// Heap order: deadline, then owner.
    fn before(&self, other: &TimerEntry) -> bool {
        (self.at, self.owner) < (other.at, other.owner)
    }
}

impl Default for TimerEntry {
    fn default() -> Self {
        TimerEntry {
            at: Instant::MAX,
            owner: Owner::Balancer,
        }
    }
}

/// A min-heap of deadlines in caller storage.
#[derive(Debug)]
pub struct TimerQueue<'a> {
    heap: &'a mut [TimerEntry],
    len: usize,
}

impl<'a> TimerQueue<'a> {
    /// An empty queue over `storage`; it should hold at least twice the
    /// number of owners so rebuilds stay rare.
    pub fn new(storage: &'a mut [TimerEntry]) -> Self {
        TimerQueue {
            heap: storage,
            len: 0,
        }
    }

    /// Gives the storage back.
    pub fn into_storage(self) -> &'a mut [TimerEntry] {
        self.heap
    }

    /// Entries in the heap, stale ones included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the heap is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room for entries.
    pub fn capacity(&self) -> usize {
        self.heap.len()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Adds a deadline. Returns false when full: the caller then rebuilds
    /// (clear, then push every owner's current deadline).
    #[must_use]
    pub fn push(&mut self, at: Instant, owner: Owner) -> bool {
        if at == Instant::MAX {
            return true;
        }
        if self.len == self.heap.len() {
            return false;
        }
        let mut i = self.len;
        self.heap[i] = TimerEntry { at, owner };
        self.len += 1;
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.heap[i].before(&self.heap[parent]) {
                break;
            }
            self.heap.swap(parent, i);
            i = parent;
        }
        true
    }

    /// The earliest deadline, stale or not.
    pub fn peek(&self) -> Option<(Instant, Owner)> {
        (self.len > 0).then(|| (self.heap[0].at, self.heap[0].owner))
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, Owner)> {
        if self.peek()?.0 > now {
            return None;
        }
        self.pop()
    }

    /// Removes and returns the earliest entry (a stale one, say).
    pub fn pop(&mut self) -> Option<(Instant, Owner)> {
        let (at, owner) = self.peek()?;
        self.len -= 1;
        self.heap[0] = self.heap[self.len];
        let mut i = 0;
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut min = i;
            if l < self.len && self.heap[l].before(&self.heap[min]) {
                min = l;
            }
            if r < self.len && self.heap[r].before(&self.heap[min]) {
                min = r;
            }
            if min == i {
                break;
            }
            self.heap.swap(i, min);
            i = min;
        }
        Some((at, owner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let mut storage = [TimerEntry::default(); 8];
        let mut q = TimerQueue::new(&mut storage);
        for (t, i) in [(5, 0), (1, 1), (3, 2), (1, 3), (9, 4)] {
            assert!(q.push(Instant::from_secs(t), Owner::Instance(i)));
        }
        assert!(
            q.push(Instant::MAX, Owner::Balancer),
            "never-deadlines are not stored"
        );
        assert_eq!(q.len(), 5);
        assert_eq!(q.pop_due(Instant::from_secs(0)), None);
        let mut order = [0u64; 4];
        for slot in &mut order {
            *slot = q.pop_due(Instant::from_secs(5)).unwrap().0.as_millis() / 1000;
        }
        assert_eq!(order, [1, 1, 3, 5]);
        assert_eq!(q.pop_due(Instant::from_secs(5)), None);
        assert_eq!(q.peek().map(|p| p.0), Some(Instant::from_secs(9)));
    }

    #[test]
    fn equal_deadlines_pop_in_owner_order() {
        let mut storage = [TimerEntry::default(); 8];
        let mut q = TimerQueue::new(&mut storage);
        let t = Instant::from_secs(1);
        for owner in [
            Owner::Sync,
            Owner::Instance(3),
            Owner::Script(0),
            Owner::Instance(1),
            Owner::Balancer,
            Owner::Instance(2),
        ] {
            assert!(q.push(t, owner));
        }
        let mut order = [Owner::Balancer; 6];
        for slot in &mut order {
            *slot = q.pop_due(t).unwrap().1;
        }
        assert_eq!(q.pop_due(t), None);
        assert_eq!(
            order,
            [
                Owner::Instance(1),
                Owner::Instance(2),
                Owner::Instance(3),
                Owner::Script(0),
                Owner::Balancer,
                Owner::Sync
            ]
        );
    }

    #[test]
    fn full_queue_refuses() {
        let mut storage = [TimerEntry::default(); 2];
        let mut q = TimerQueue::new(&mut storage);
        assert!(q.push(Instant::from_secs(1), Owner::Script(0)));
        assert!(q.push(Instant::from_secs(2), Owner::Script(1)));
        assert!(!q.push(Instant::from_secs(3), Owner::Script(2)));
    }
}
