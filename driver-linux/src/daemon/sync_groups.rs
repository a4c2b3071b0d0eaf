//! Sync groups' own state, for their notify scripts and e-mail alerts
//! (keepalived's `send_group_notifies`): a group enters a state once all
//! its members are in it. The core moves the members together; this only
//! tells when the move is complete. Pure.

use vrlb_core::node::InstanceId;
use vrlb_core::vrrp::State;

use super::notify::NotifyInfo;

/// What the daemon keeps about one `vrrp_sync_group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// `vrrp_sync_group NAME`.
    pub name: String,
    /// Its members, by name.
    pub members: Vec<String>,
    /// Its notify scripts, only when one is set.
    pub notify: Option<Box<NotifyInfo>>,
    /// `smtp_alert`, as written.
    pub smtp_alert: Option<bool>,
}

struct Tracked {
    info: GroupInfo,
    members: Vec<InstanceId>,
    state: Option<State>,
}

/// Every group and the state it last entered.
#[derive(Default)]
pub struct SyncGroups {
    groups: Vec<Tracked>,
}

impl SyncGroups {
    /// The groups of a new configuration; `id_of` finds a member by name.
    /// A group the old configuration had (by name) keeps its state, so a
    /// reload does not notify again.
    pub fn new(
        groups: Vec<GroupInfo>,
        id_of: impl Fn(&str) -> Option<InstanceId>,
        old: &SyncGroups,
    ) -> SyncGroups {
        let groups = groups
            .into_iter()
            .map(|info| Tracked {
                members: info.members.iter().filter_map(|m| id_of(m)).collect(),
                state: old
                    .groups
                    .iter()
                    .find(|g| g.info.name == info.name)
                    .and_then(|g| g.state),
                info,
            })
            .collect();
        SyncGroups { groups }
    }

    /// Instance `id` changed state; `state_of` gives a member's state.
    /// The groups of `id` that have now entered a state, with it.
    pub fn changed(
        &mut self,
        id: InstanceId,
        state_of: impl Fn(InstanceId) -> Option<State>,
    ) -> Vec<(&GroupInfo, State)> {
        let mut entered = Vec::new();
        for g in self.groups.iter_mut().filter(|g| g.members.contains(&id)) {
            let Some(to) = state_of(id) else { continue };
            let all = g.members.iter().all(|m| state_of(*m) == Some(to));
            // The start (every member INIT) is no state entered.
            if all && g.state != Some(to) && !(to == State::Init && g.state.is_none()) {
                g.state = Some(to);
                entered.push((&g.info, to));
            }
        }
        entered
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn group(name: &str, members: &[&str]) -> GroupInfo {
        GroupInfo {
            name: name.into(),
            members: members.iter().map(|m| m.to_string()).collect(),
            notify: None,
            smtp_alert: None,
        }
    }

    #[test]
    fn a_group_enters_a_state_once_all_its_members_are_in_it() {
        let ids = |n: &str| {
            n.strip_prefix('I')
                .and_then(|d| d.parse().ok())
                .map(InstanceId)
        };
        let mut g = SyncGroups::new(
            vec![group("G", &["I1", "I2"]), group("H", &["I3"])],
            ids,
            &SyncGroups::default(),
        );
        let mut states: HashMap<InstanceId, State> = HashMap::new();
        let mut step = |g: &mut SyncGroups, id: u16, to: State| -> Vec<(String, State)> {
            states.insert(InstanceId(id), to);
            let s = states.clone();
            g.changed(InstanceId(id), |m| s.get(&m).copied())
                .into_iter()
                .map(|(i, st)| (i.name.clone(), st))
                .collect()
        };
        assert!(step(&mut g, 1, State::Backup).is_empty(), "I2 not yet");
        assert_eq!(
            step(&mut g, 2, State::Backup),
            [("G".into(), State::Backup)]
        );
        assert!(step(&mut g, 1, State::Master).is_empty());
        assert_eq!(
            step(&mut g, 2, State::Master),
            [("G".into(), State::Master)]
        );
        // H is its own.
        assert_eq!(step(&mut g, 3, State::Fault), [("H".into(), State::Fault)]);
        // A reload keeps what was entered: no second MASTER.
        let mut g = SyncGroups::new(vec![group("G", &["I1", "I2"])], ids, &g);
        assert!(step(&mut g, 2, State::Master).is_empty());
        assert!(step(&mut g, 1, State::Init).is_empty());
        assert_eq!(step(&mut g, 2, State::Init), [("G".into(), State::Init)]);
    }

    #[test]
    fn members_that_do_not_exist_are_left_out_and_the_start_is_no_state() {
        let mut g = SyncGroups::new(
            vec![group("G", &["A", "gone"])],
            |n| (n == "A").then_some(InstanceId(0)),
            &SyncGroups::default(),
        );
        assert!(g.changed(InstanceId(0), |_| Some(State::Init)).is_empty());
        let got = g.changed(InstanceId(0), |_| Some(State::Backup));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, State::Backup);
    }
}
