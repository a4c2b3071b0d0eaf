//! The run's trace: every processed event is folded into a 64-bit FNV-1a
//! hash (fixed and documented, unlike Rust's randomised hasher), and the
//! last few are kept as compact records for failure reports. Two runs of
//! one seed must end with the same hash. Nothing is formatted unless read.

use std::collections::VecDeque;

/// How many events a failure report shows.
pub const TAIL: usize = 48;

/// One traced event: when, what (a static description whose `{a}`/`{b}`
/// name the two numbers), and two numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Simulated time, microseconds.
    pub time_us: u64,
    /// What happened, e.g. "director {a} vrrp -> MASTER".
    pub what: &'static str,
    /// First number.
    pub a: u64,
    /// Second number.
    pub b: u64,
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self
            .what
            .replace("{a}", &self.a.to_string())
            .replace("{b}", &self.b.to_string());
        write!(f, "{:>12.6}s  {text}", self.time_us as f64 / 1e6)
    }
}

/// The running hash and the tail of events.
#[derive(Debug, Clone)]
pub struct Trace {
    hash: u64,
    events: u64,
    tail: VecDeque<Record>,
    /// Keep every record (for `--json` and the demo's timeline).
    pub keep_all: bool,
    /// Every record, when `keep_all`.
    pub all: Vec<Record>,
    /// Each description's text hash, by its address (found again in a few
    /// comparisons instead of hashing the text per event).
    texts: Vec<(usize, u64)>,
}

impl Default for Trace {
    fn default() -> Self {
        Trace {
            hash: 0xcbf2_9ce4_8422_2325,
            events: 0,
            tail: VecDeque::with_capacity(TAIL),
            keep_all: false,
            all: Vec::new(),
            texts: Vec::new(),
        }
    }
}

impl Trace {
    fn mix(&mut self, v: u64) {
        for b in v.to_le_bytes() {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Records one event.
    pub fn event(&mut self, time_us: u64, what: &'static str, a: u64, b: u64) {
        self.events += 1;
        self.mix(time_us);
        // The description's address is not stable across builds; its text
        // is, so the text's hash goes in (looked up by address).
        let ptr = what.as_ptr() as usize;
        let text = match self.texts.iter().find(|(p, _)| *p == ptr) {
            Some((_, h)) => *h,
            None => {
                let h = what.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
                self.texts.push((ptr, h));
                h
            }
        };
        self.mix(text);
        self.mix(a);
        self.mix(b);
        let r = Record {
            time_us,
            what,
            a,
            b,
        };
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(r);
        if self.keep_all {
            self.all.push(r);
        }
    }

    /// The hash so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Events recorded.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The last events.
    pub fn tail(&self) -> impl Iterator<Item = &Record> {
        self.tail.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_events_same_hash() {
        let run = || {
            let mut t = Trace::default();
            t.event(1, "x {a}", 2, 3);
            t.event(5, "y", 0, 0);
            t.hash()
        };
        assert_eq!(run(), run());
        let mut t = Trace::default();
        t.event(1, "x {a}", 2, 4);
        assert_ne!(t.hash(), run());
        assert_eq!(
            Record {
                time_us: 1_500_000,
                what: "d{a} -> {b}",
                a: 1,
                b: 2
            }
            .to_string(),
            "    1.500000s  d1 -> 2"
        );
    }
}
