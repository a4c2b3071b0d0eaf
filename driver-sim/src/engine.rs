//! The discrete-event core: a queue of events ordered by (time, sequence),
//! so events at the same instant run in the order they were scheduled.
//! Nothing here reads a clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A queued event.
#[derive(Debug)]
struct Entry<E> {
    time_us: u64,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time_us, self.seq) == (other.time_us, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time_us, self.seq).cmp(&(other.time_us, other.seq))
    }
}

/// The event queue.
#[derive(Debug)]
pub struct Queue<E> {
    heap: BinaryHeap<Reverse<Entry<E>>>,
    seq: u64,
    /// Most events ever queued at once (a bound every run checks).
    pub high_water: usize,
}

impl<E> Default for Queue<E> {
    fn default() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            seq: 0,
            high_water: 0,
        }
    }
}

impl<E> Queue<E> {
    /// Schedules `event` at `time_us`.
    pub fn push(&mut self, time_us: u64, event: E) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            time_us,
            seq: self.seq,
            event,
        }));
        self.high_water = self.high_water.max(self.heap.len());
    }

    /// The next event, if it is due by `until_us`.
    pub fn pop_until(&mut self, until_us: u64) -> Option<(u64, E)> {
        if self.heap.peek()?.0.time_us > until_us {
            return None;
        }
        self.heap.pop().map(|Reverse(e)| (e.time_us, e.event))
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_then_insertion_order() {
        let mut q = Queue::default();
        q.push(5, "c");
        q.push(1, "a");
        q.push(5, "d");
        q.push(1, "b");
        let order: Vec<_> = std::iter::from_fn(|| q.pop_until(10))
            .map(|e| e.1)
            .collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
        q.push(20, "late");
        assert_eq!(q.pop_until(10), None);
    }
}
