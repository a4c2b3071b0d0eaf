//! Spaces gratuitous ARPs and unsolicited NAs as keepalived's
//! `vrrp_garp_interval`, `vrrp_gna_interval` and `garp_group` ask: on an
//! interface (a VMAC's base), or across a group of interfaces behind one
//! switch, a message goes out no sooner than the interval after the one
//! before it of its kind; the others wait, in order. No I/O: the caller
//! sends what [`Pacer::due`] hands back.

use std::collections::{HashMap, VecDeque};

use vrlb_core::config::{GarpGroupConf, GlobalDefs};
use vrlb_core::time::{Duration, Instant};

/// The intervals of an interface or group (`None`: back to back).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Intervals {
    /// Between two gratuitous ARPs.
    pub garp: Option<Duration>,
    /// Between two unsolicited NAs.
    pub gna: Option<Duration>,
}

/// What a configuration says about spacing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PacerSettings {
    /// `vrrp_garp_interval` / `vrrp_gna_interval`: each interface in no
    /// group.
    pub default: Intervals,
    /// `garp_group`s: their intervals and interfaces.
    pub groups: Vec<(Intervals, Vec<String>)>,
}

impl PacerSettings {
    /// Reads `global_defs`' intervals.
    pub fn global_defs(&mut self, g: &GlobalDefs<'_>) {
        self.default = Intervals {
            garp: g.garp_interval,
            gna: g.gna_interval,
        };
    }

    /// The interval between two messages of `kind` that take `owner`'s
    /// turn.
    fn interval(&self, owner: &Owner, kind: Kind) -> Option<Duration> {
        let iv = match owner {
            Owner::Group(i) => self.groups.get(*i).map(|g| g.0).unwrap_or_default(),
            Owner::Iface(_) => self.default,
        };
        match kind {
            Kind::Arp => iv.garp,
            Kind::Na => iv.gna,
        }
    }

    /// Adds a `garp_group`.
    pub fn garp_group(&mut self, g: &GarpGroupConf<'_>) {
        let intervals = Intervals {
            garp: g.garp_interval,
            gna: g.gna_interval,
        };
        let names = g.interfaces.iter().map(|s| s.to_string()).collect();
        self.groups.push((intervals, names));
    }
}

/// ARP or NA: each has its own interval and its own turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A gratuitous ARP.
    Arp,
    /// An unsolicited neighbour advertisement.
    Na,
}

/// Who shares a turn: a `garp_group`, or one interface in none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Owner {
    Group(usize),
    Iface(String),
}

/// Messages of one kind waiting for one owner's turn.
#[derive(Debug, Default)]
struct Lane {
    /// No message before this.
    next: Option<Instant>,
    /// (ifindex, frame), oldest first.
    queue: VecDeque<(u32, Vec<u8>)>,
}

/// The pacer.
#[derive(Debug, Default)]
pub struct Pacer {
    settings: PacerSettings,
    lanes: HashMap<(Owner, Kind), Lane>,
}

impl Pacer {
    /// Takes the settings of a (re)loaded configuration; what waits keeps
    /// its place.
    pub fn configure(&mut self, settings: PacerSettings) {
        self.settings = settings;
    }

    /// Whose turn a message on `base` takes.
    fn owner(&self, base: &str) -> Owner {
        match self
            .settings
            .groups
            .iter()
            .position(|(_, names)| names.iter().any(|n| n == base))
        {
            Some(i) => Owner::Group(i),
            None => Owner::Iface(base.to_string()),
        }
    }

    /// Queues `frame` for `ifindex`, whose base interface is `base`.
    pub fn push(&mut self, base: &str, kind: Kind, ifindex: u32, frame: Vec<u8>) {
        let owner = self.owner(base);
        self.lanes
            .entry((owner, kind))
            .or_default()
            .queue
            .push_back((ifindex, frame));
    }

    /// The frames whose turn has come by `now`, in order; an owner with no
    /// interval has every frame's turn at once.
    pub fn due(&mut self, now: Instant) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        for ((owner, kind), lane) in &mut self.lanes {
            let interval = self.settings.interval(owner, *kind);
            while lane.next.is_none_or(|t| t <= now) {
                let Some(f) = lane.queue.pop_front() else {
                    break;
                };
                out.push(f);
                lane.next = interval.map(|d| now + d);
            }
        }
        // A lane whose turn has passed and that holds nothing is forgotten.
        self.lanes
            .retain(|_, l| !l.queue.is_empty() || l.next.is_some_and(|t| t > now));
        out
    }

    /// When the next waiting frame's turn comes.
    pub fn next_due(&self) -> Option<Instant> {
        self.lanes
            .values()
            .filter(|l| !l.queue.is_empty())
            .filter_map(|l| l.next)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn at(n: u64) -> Instant {
        Instant::from_micros(n * 1000)
    }

    fn pacer(default: Intervals, groups: Vec<(Intervals, Vec<String>)>) -> Pacer {
        let mut p = Pacer::default();
        p.configure(PacerSettings { default, groups });
        p
    }

    fn frames(out: &[(u32, Vec<u8>)]) -> Vec<u8> {
        out.iter().map(|(_, f)| f[0]).collect()
    }

    #[test]
    fn without_an_interval_everything_goes_at_once() {
        let mut p = pacer(Intervals::default(), vec![]);
        for i in 0..5 {
            p.push("eth0", Kind::Arp, 2, vec![i]);
        }
        assert_eq!(frames(&p.due(at(0))), vec![0, 1, 2, 3, 4]);
        assert_eq!(p.next_due(), None);
    }

    #[test]
    fn an_interval_spaces_each_kind_on_its_own() {
        let iv = Intervals {
            garp: Some(ms(100)),
            gna: Some(ms(30)),
        };
        let mut p = pacer(iv, vec![]);
        for i in 0..3 {
            p.push("eth0", Kind::Arp, 2, vec![i]);
            p.push("eth0", Kind::Na, 2, vec![10 + i]);
        }
        let mut first = frames(&p.due(at(0)));
        first.sort();
        assert_eq!(first, vec![0, 10], "one of each kind at once");
        assert_eq!(p.next_due(), Some(at(30)));
        assert_eq!(frames(&p.due(at(29))), Vec::<u8>::new());
        assert_eq!(frames(&p.due(at(30))), vec![11]);
        assert_eq!(frames(&p.due(at(60))), vec![12]);
        assert_eq!(p.next_due(), Some(at(100)));
        assert_eq!(frames(&p.due(at(100))), vec![1]);
        // Late: the next turn counts from when this one went.
        assert_eq!(frames(&p.due(at(250))), vec![2]);
        assert_eq!(p.next_due(), None);
        // A new message within the interval of the last one waits for it.
        p.push("eth0", Kind::Arp, 2, vec![3]);
        assert_eq!(frames(&p.due(at(300))), Vec::<u8>::new());
        assert_eq!(frames(&p.due(at(350))), vec![3]);
    }

    #[test]
    fn a_garp_group_shares_one_turn_and_other_interfaces_keep_their_own() {
        let group = Intervals {
            garp: Some(ms(50)),
            gna: None,
        };
        let mut p = pacer(
            Intervals::default(),
            vec![(group, vec!["eth0".into(), "eth1".into()])],
        );
        p.push("eth0", Kind::Arp, 2, vec![0]);
        p.push("eth1", Kind::Arp, 3, vec![1]);
        p.push("eth2", Kind::Arp, 4, vec![2]);
        let out = p.due(at(0));
        let mut got = frames(&out);
        got.sort();
        assert_eq!(got, vec![0, 2], "eth1 waits for eth0's turn");
        let later = p.due(at(50));
        assert_eq!(later, vec![(3, vec![1])]);
    }

    #[test]
    fn a_reload_keeps_what_waits() {
        let iv = Intervals {
            garp: Some(ms(100)),
            gna: None,
        };
        let mut p = pacer(iv, vec![]);
        p.push("eth0", Kind::Arp, 2, vec![0]);
        p.push("eth0", Kind::Arp, 2, vec![1]);
        assert_eq!(frames(&p.due(at(0))), vec![0]);
        p.configure(PacerSettings::default());
        assert_eq!(
            frames(&p.due(at(1))),
            Vec::<u8>::new(),
            "its turn was set before"
        );
        assert_eq!(frames(&p.due(at(100))), vec![1]);
    }
}
