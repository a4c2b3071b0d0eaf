//! Duplicate and loss detection for received messages: per sender session
//! the highest sequence number seen and a 64-message window behind it (the
//! scheme of RFC 4303 3.4.3's anti-replay window), in a small table that
//! forgets the session heard from least recently. Never applies anything.

use heapless::Vec;

use crate::time::Instant;

/// Sender sessions remembered at once.
pub const PEERS_MAX: usize = 8;
const WINDOW: u32 = 64;

#[derive(Clone, Copy, Debug)]
struct Peer {
    session: u32,
    top: u32,
    /// Bit i: sequence `top - i` was seen.
    seen: u64,
    last_heard: Instant,
}

/// What a sequence number means for its session.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Verdict {
    /// New; `lost` messages were skipped over (a gap).
    Fresh { lost: u32 },
    /// An old one that fills a gap counted earlier.
    Late,
    /// Seen before, or too old to tell.
    Replay,
}

#[derive(Debug, Default)]
pub(crate) struct Replay {
    peers: Vec<Peer, PEERS_MAX>,
}

impl Replay {
    /// Classifies `seq` from `session` without recording it.
    pub fn check(&self, session: u32, seq: u32) -> Verdict {
        let Some(p) = self.peers.iter().find(|p| p.session == session) else {
            return Verdict::Fresh { lost: 0 };
        };
        let ahead = seq.wrapping_sub(p.top) as i32;
        if ahead > 0 {
            return Verdict::Fresh {
                lost: ahead as u32 - 1,
            };
        }
        let behind = (-(ahead as i64)) as u32;
        if behind >= WINDOW || p.seen & (1u64 << behind) != 0 {
            Verdict::Replay
        } else {
            Verdict::Late
        }
    }

    /// Records `seq` from `session` as seen (after [`Self::check`]).
    pub fn record(&mut self, session: u32, seq: u32, now: Instant) {
        if let Some(p) = self.peers.iter_mut().find(|p| p.session == session) {
            let ahead = seq.wrapping_sub(p.top) as i32;
            if ahead > 0 {
                let shift = ahead as u32;
                p.seen = if shift >= WINDOW { 0 } else { p.seen << shift };
                p.seen |= 1;
                p.top = seq;
            } else {
                let behind = (-(ahead as i64)) as u32;
                if behind < WINDOW {
                    p.seen |= 1u64 << behind;
                }
            }
            p.last_heard = now;
            return;
        }
        let peer = Peer {
            session,
            top: seq,
            seen: 1,
            last_heard: now,
        };
        if self.peers.is_full() {
            // Forget the session heard from least recently.
            if let Some(i) = (0..self.peers.len()).min_by_key(|&i| self.peers[i].last_heard) {
                self.peers.swap_remove(i);
            }
        }
        let _ = self.peers.push(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_duplicates_and_late_arrivals() {
        let mut r = Replay::default();
        let t = Instant::ZERO;
        let see = |r: &mut Replay, s: u32, q: u32| {
            let v = r.check(s, q);
            if v != Verdict::Replay {
                r.record(s, q, t);
            }
            v
        };
        assert_eq!(see(&mut r, 1, u32::MAX), Verdict::Fresh { lost: 0 });
        assert_eq!(see(&mut r, 1, 0), Verdict::Fresh { lost: 0 }, "wraps");
        assert_eq!(see(&mut r, 1, 0), Verdict::Replay);
        assert_eq!(see(&mut r, 1, 4), Verdict::Fresh { lost: 3 });
        assert_eq!(see(&mut r, 1, 2), Verdict::Late);
        assert_eq!(see(&mut r, 1, 2), Verdict::Replay);
        assert_eq!(see(&mut r, 1, 200), Verdict::Fresh { lost: 195 });
        assert_eq!(see(&mut r, 1, 100), Verdict::Replay, "outside the window");
        assert_eq!(
            see(&mut r, 2, 100),
            Verdict::Fresh { lost: 0 },
            "own window"
        );
        for s in 10..10 + PEERS_MAX as u32 {
            see(&mut r, s, 0);
        }
        assert_eq!(r.peers.len(), PEERS_MAX);
    }
}
