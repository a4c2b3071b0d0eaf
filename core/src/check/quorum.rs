//! A virtual service's quorum: whether the live weight is enough, with
//! keepalived's hysteresis (keepalived.conf(5) "quorum", "hysteresis";
//! ipwrapper.c `set_quorum_states` and `update_quorum_state`): a service
//! starts with quorum when its live weight is at least `quorum +
//! hysteresis`, gains it when the weight reaches `quorum + hysteresis`, and
//! loses it when the weight falls below `quorum - hysteresis` or to zero.
//! What a change does (the sorry server, `quorum_up` / `quorum_down`) is the
//! node's business.

/// The quorum state of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    quorum: u64,
    hysteresis: u64,
    up: bool,
    /// Whether the first judgment (the starting state) was made.
    judged: bool,
}

impl Quorum {
    /// A service needing `quorum` live weight. It counts as up until the
    /// first [`update`](Self::update) judges its starting state.
    pub fn new(quorum: u32, hysteresis: u32) -> Self {
        Quorum {
            quorum: u64::from(quorum.max(1)),
            hysteresis: u64::from(hysteresis),
            up: true,
            judged: false,
        }
    }

    /// These thresholds with `other`'s, keeping whether quorum is held (a
    /// reload re-evaluates against the new thresholds on the next update).
    pub fn with_settings(self, other: &Quorum) -> Quorum {
        Quorum {
            up: self.up,
            judged: self.judged,
            ..*other
        }
    }

    /// The weight needed (`quorum`).
    pub fn threshold(&self) -> u64 {
        self.quorum
    }

    /// `hysteresis`.
    pub fn hysteresis(&self) -> u64 {
        self.hysteresis
    }

    /// Whether the service has quorum.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Whether the starting state has been judged.
    pub fn judged(&self) -> bool {
        self.judged
    }

    /// The live weight is now `alive_weight`. The first call sets the
    /// starting state and reports no change; later calls return the new
    /// state when it flipped.
    pub fn update(&mut self, alive_weight: u64) -> Option<bool> {
        if !self.judged {
            self.judged = true;
            self.up = alive_weight >= self.quorum + self.hysteresis;
            return None;
        }
        let next = if self.up {
            alive_weight > 0 && alive_weight >= self.quorum.saturating_sub(self.hysteresis)
        } else {
            alive_weight >= self.quorum + self.hysteresis
        };
        (next != self.up).then(|| {
            self.up = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_keeps_it_from_flapping() {
        let mut q = Quorum::new(4, 1);
        assert!(q.is_up() && !q.judged());
        assert_eq!(q.update(6), None, "starts up: 6 >= 4 + 1");
        assert_eq!(q.update(3), None, "3 >= 4 - 1");
        assert_eq!(q.update(2), Some(false));
        assert_eq!(q.update(4), None, "needs 4 + 1 to come back");
        assert_eq!(q.update(5), Some(true));
        let mut q = Quorum::new(1, 0);
        assert_eq!(q.update(1), None);
        assert_eq!(q.update(0), Some(false));
        assert_eq!(q.update(1), Some(true));
    }

    #[test]
    fn starting_state_and_zero_weight() {
        // Starting needs quorum + hysteresis, without reporting a change.
        let mut q = Quorum::new(4, 1);
        assert_eq!(q.update(4), None);
        assert!(!q.is_up(), "4 < 4 + 1: starts without quorum");
        assert_eq!(q.update(5), Some(true));
        // keepalived loses quorum at zero weight even when quorum -
        // hysteresis is zero.
        let mut q = Quorum::new(2, 2);
        assert_eq!(q.update(4), None);
        assert_eq!(q.update(1), None, "1 >= 2 - 2");
        assert_eq!(q.update(0), Some(false));
        // A reload keeps the state and takes the new thresholds.
        let kept = q.with_settings(&Quorum::new(1, 0));
        assert!(!kept.is_up() && kept.judged());
        assert_eq!(kept.threshold(), 1);
    }
}
