//! Which notify scripts a state change runs, with keepalived's arguments
//! (keepalived.conf(5), "notify"): `notify_master`, `notify_backup`,
//! `notify_fault` and `notify_stop` as written; `notify` with
//! `INSTANCE NAME STATE PRIORITY` appended (`GROUP NAME STATE 0` for a
//! sync group). Pure.

use vrlb_core::config;
use vrlb_core::vrrp::State;

/// Notify scripts, owned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyInfo {
    /// `notify_master`.
    pub master: Option<String>,
    /// `notify_backup`.
    pub backup: Option<String>,
    /// `notify_fault`.
    pub fault: Option<String>,
    /// `notify_stop`.
    pub stop: Option<String>,
    /// `notify`.
    pub any: Option<String>,
}

impl From<&config::Notify<'_>> for NotifyInfo {
    fn from(n: &config::Notify<'_>) -> Self {
        NotifyInfo {
            master: n.master.map(str::to_string),
            backup: n.backup.map(str::to_string),
            fault: n.fault.map(str::to_string),
            stop: n.stop.map(str::to_string),
            any: n.any.map(str::to_string),
        }
    }
}

impl NotifyInfo {
    /// Out of line, if any script is set (most instances have none).
    pub fn boxed(self) -> Option<Box<NotifyInfo>> {
        self.any_set().then(|| Box::new(self))
    }

    /// Whether any notify script is set.
    pub fn any_set(&self) -> bool {
        [
            &self.master,
            &self.backup,
            &self.fault,
            &self.stop,
            &self.any,
        ]
        .iter()
        .any(|s| s.is_some())
    }
}

/// keepalived's state word for `to`: INIT after a shutdown is STOP.
pub fn state_word(to: State) -> &'static str {
    match to {
        State::Init => "STOP",
        s => s.name(),
    }
}

/// Whose notify scripts run: keepalived's first argument to `notify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// A `vrrp_instance`.
    Instance,
    /// A `vrrp_sync_group` (its priority is given as 0).
    Group,
}

/// The command lines to run (each with its extra arguments) when instance
/// or group `name` moves to `to` with `priority`.
pub fn commands(
    notify: &NotifyInfo,
    whose: Whose,
    name: &str,
    to: State,
    priority: u8,
) -> Vec<(String, Vec<String>)> {
    let specific = match to {
        State::Master => &notify.master,
        State::Backup => &notify.backup,
        State::Fault => &notify.fault,
        State::Init => &notify.stop,
    };
    let mut out = Vec::new();
    if let Some(line) = specific {
        out.push((line.clone(), Vec::new()));
    }
    if let Some(line) = &notify.any {
        let (kind, priority) = match whose {
            Whose::Instance => ("INSTANCE", priority),
            Whose::Group => ("GROUP", 0),
        };
        out.push((
            line.clone(),
            vec![
                kind.to_string(),
                name.to_string(),
                state_word(to).to_string(),
                priority.to_string(),
            ],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_script_then_generic_with_keepalived_arguments() {
        let n = NotifyInfo {
            master: Some("/etc/m.sh up".into()),
            stop: Some("/etc/s.sh".into()),
            any: Some("/etc/n.sh".into()),
            ..NotifyInfo::default()
        };
        assert_eq!(
            commands(&n, Whose::Instance, "VI_1", State::Master, 150),
            [
                ("/etc/m.sh up".to_string(), vec![]),
                (
                    "/etc/n.sh".to_string(),
                    vec![
                        "INSTANCE".into(),
                        "VI_1".into(),
                        "MASTER".into(),
                        "150".into()
                    ]
                ),
            ]
        );
        let stop = commands(&n, Whose::Instance, "VI_1", State::Init, 100);
        assert_eq!(stop[0].0, "/etc/s.sh");
        assert_eq!(stop[1].1[2], "STOP");
        assert_eq!(
            commands(&n, Whose::Instance, "VI_1", State::Backup, 1).len(),
            1
        );
        let group = commands(&n, Whose::Group, "G1", State::Master, 100);
        assert_eq!(group[1].1, ["GROUP", "G1", "MASTER", "0"]);
        assert!(
            commands(
                &NotifyInfo::default(),
                Whose::Instance,
                "x",
                State::Fault,
                1
            )
            .is_empty()
        );
    }
}
