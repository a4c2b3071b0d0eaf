//! A virtual service's quorum: whether the live weight is enough, with
//! keepalived's hysteresis (keepalived.conf(5) "quorum", "hysteresis"):
//! quorum is gained when the weight of live servers reaches
//! `quorum + hysteresis` and lost when it falls below `quorum - hysteresis`.
//! While it is lost, the `sorry_server` takes new flows and `quorum_down`
//! runs; when it returns, `quorum_up`.

/// The quorum state of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    quorum: u64,
    hysteresis: u64,
    up: bool,
}

impl Quorum {
    /// A service needing `quorum` live weight; starts with quorum (as
    /// keepalived, whose servers start up unless `alpha`).
    pub fn new(quorum: u32, hysteresis: u32) -> Self {
        Quorum {
            quorum: u64::from(quorum.max(1)),
            hysteresis: u64::from(hysteresis),
            up: true,
        }
    }

    /// These thresholds with `other`'s, keeping whether quorum is held (a
    /// reload re-evaluates against the new thresholds on the next update).
    pub fn with_settings(self, other: &Quorum) -> Quorum {
        Quorum {
            up: self.up,
            ..*other
        }
    }

    /// Whether the service has quorum.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The live weight changed to `alive_weight`; returns the new state
    /// when it flipped.
    pub fn update(&mut self, alive_weight: u64) -> Option<bool> {
        let next = if self.up {
            alive_weight >= self.quorum.saturating_sub(self.hysteresis)
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
        assert!(q.is_up());
        assert_eq!(q.update(3), None, "3 >= 4 - 1");
        assert_eq!(q.update(2), Some(false));
        assert_eq!(q.update(4), None, "needs 4 + 1 to come back");
        assert_eq!(q.update(5), Some(true));
        let mut q = Quorum::new(1, 0);
        assert_eq!(q.update(0), Some(false));
        assert_eq!(q.update(1), Some(true));
    }
}
