//! The sync journal: a bounded ring, in caller storage, of the connection
//! slots that are new or changed since the sync machine last drained it.
//! Knows nothing of what a slot holds: `lb::sync` fills and reads it.

/// Counters of the journal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct JournalStats {
    /// Entries put in the journal.
    pub queued: u64,
    /// Changes lost because the journal was full.
    pub overflows: u64,
}

/// A ring of slot numbers in caller storage.
pub(crate) struct Journal<'a> {
    pub(super) ring: &'a mut [u32],
    pub(super) head: usize,
    pub(super) len: usize,
    /// Journaling on (this director sends).
    pub on: bool,
    /// log2 of the refresh window in ticks.
    pub shift: u32,
    pub stats: JournalStats,
}

impl Journal<'_> {
    pub(crate) fn empty() -> Self {
        Journal {
            ring: &mut [],
            head: 0,
            len: 0,
            on: false,
            shift: 31,
            stats: JournalStats::default(),
        }
    }

    #[inline]
    pub(super) fn push(&mut self, s: u32) -> bool {
        if self.len == self.ring.len() {
            self.stats.overflows += 1;
            return false;
        }
        let at = (self.head + self.len) % self.ring.len();
        self.ring[at] = s;
        self.len += 1;
        self.stats.queued += 1;
        true
    }

    pub(super) fn pop(&mut self) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let s = self.ring[self.head];
        self.head = (self.head + 1) % self.ring.len();
        self.len -= 1;
        Some(s)
    }
}
