//! The VIPs this daemon holds: which instance added which address where,
//! carried out through rtnetlink and recorded in the [`VipState`] file.
//! Only addresses this daemon added are ever removed (one the
//! administrator configured by hand stays). Changes reach the kernel at
//! once and the state file at [`Addresses::flush`].

use std::collections::HashMap;

use vrlb_core::node::InstanceId;

use super::netlink::{Rtnl, VipSpec};
use super::vip_state::{Entry, VipState};

/// A VIP to hold, with the device name it goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// What rtnetlink is told.
    pub spec: VipSpec,
    /// The device's name (for the state file and logs).
    pub dev: String,
}

impl Wanted {
    fn entry(&self) -> Entry {
        Entry {
            addr: self.spec.addr,
            prefix_len: self.spec.prefix_len,
            dev: self.dev.clone(),
        }
    }
}

/// VIPs held, per instance.
pub struct Addresses {
    held: HashMap<InstanceId, Vec<Wanted>>,
    state: VipState,
}

impl Addresses {
    /// Nothing held yet; `state` records what gets added.
    pub fn new(state: VipState) -> Addresses {
        Addresses {
            held: HashMap::new(),
            state,
        }
    }

    /// Removes what an earlier run recorded and left (a crash), resolving
    /// device names with `index_of`. Returns one line per removed VIP.
    pub fn clean_leftovers(
        &mut self,
        rtnl: &mut Rtnl,
        index_of: impl Fn(&str) -> Option<u32>,
    ) -> Vec<String> {
        let mut log = Vec::new();
        for e in self.state.leftovers() {
            let Some(index) = index_of(&e.dev) else {
                continue;
            };
            let spec = VipSpec {
                addr: e.addr,
                prefix_len: e.prefix_len,
                index,
                label: None,
                scope: 0,
                broadcast: None,
            };
            match rtnl.del_addr(&spec) {
                Ok(true) => log.push(format!(
                    "removed {}/{} from {}: left by an earlier run",
                    e.addr, e.prefix_len, e.dev
                )),
                Ok(false) => {}
                Err(err) => log.push(format!(
                    "cannot remove leftover {}/{} from {}: {err}",
                    e.addr, e.prefix_len, e.dev
                )),
            }
        }
        if let Err(err) = self.state.save() {
            log.push(format!("cannot write the VIP state file: {err}"));
        }
        log
    }

    /// Makes `instance` hold exactly `wanted`: adds what is missing,
    /// removes what it added before and no longer wants. Returns log lines
    /// for failures.
    pub fn hold(
        &mut self,
        rtnl: &mut Rtnl,
        instance: InstanceId,
        wanted: Vec<Wanted>,
    ) -> Vec<String> {
        let mut log = Vec::new();
        let old = self.held.remove(&instance).unwrap_or_default();
        for w in &old {
            if !wanted.contains(w) {
                self.delete(rtnl, w, &mut log);
            }
        }
        // Sized once: a Vec grown from empty takes room for four.
        let mut now_held = Vec::with_capacity(wanted.len());
        for w in wanted {
            if old.contains(&w) {
                now_held.push(w);
                continue;
            }
            match rtnl.add_addr(&w.spec) {
                // Already present (configured by hand): not ours to remove
                // later, so neither held nor recorded.
                Ok(added) => {
                    if added {
                        self.state.record(w.entry());
                        now_held.push(w);
                    }
                }
                Err(e) => log.push(format!(
                    "cannot add {}/{} to {}: {e}",
                    w.spec.addr, w.spec.prefix_len, w.dev
                )),
            }
        }
        if !now_held.is_empty() {
            self.held.insert(instance, now_held);
        }
        log
    }

    /// Removes every VIP `instance` added.
    pub fn release(&mut self, rtnl: &mut Rtnl, instance: InstanceId) -> Vec<String> {
        let mut log = Vec::new();
        for w in self.held.remove(&instance).unwrap_or_default() {
            self.delete(rtnl, &w, &mut log);
        }
        log
    }

    /// Removes every VIP any instance added.
    pub fn release_all(&mut self, rtnl: &mut Rtnl) -> Vec<String> {
        let ids: Vec<InstanceId> = self.held.keys().copied().collect();
        ids.into_iter()
            .flat_map(|id| self.release(rtnl, id))
            .collect()
    }

    /// Writes the state file if a change since the last flush is not in
    /// it yet; returns a line for the log if that failed.
    pub fn flush(&mut self) -> Option<String> {
        self.state
            .flush()
            .err()
            .map(|e| format!("cannot write the VIP state file: {e}"))
    }

    /// The VIPs `instance` holds.
    pub fn held(&self, instance: InstanceId) -> &[Wanted] {
        self.held.get(&instance).map_or(&[], Vec::as_slice)
    }

    /// Every address held by any instance.
    pub fn all(&self) -> impl Iterator<Item = &Wanted> {
        self.held.values().flatten()
    }

    fn delete(&mut self, rtnl: &mut Rtnl, w: &Wanted, log: &mut Vec<String>) {
        if let Err(e) = rtnl.del_addr(&w.spec) {
            log.push(format!(
                "cannot remove {}/{} from {}: {e}",
                w.spec.addr, w.spec.prefix_len, w.dev
            ));
        }
        self.state.forget(&w.entry());
    }
}
