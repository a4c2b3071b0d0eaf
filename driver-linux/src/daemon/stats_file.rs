//! `--stats-file`: every instance's state and counters, one line each,
//! rewritten (write then rename) when they change, at most once a second.
//! `NAME state=S priority=P rx=N tx=N became_master=N drop.REASON=N ...`
//! with every drop reason of [`DropReason::ALL`], so a reader can grep one.

use std::fmt::Write;

use vrlb_core::vrrp::{DropReason, State, Stats};

/// One instance's line.
pub fn line(name: &str, state: State, priority: u8, stats: &Stats) -> String {
    let mut s = format!(
        "{name} state={state} priority={priority} rx={} tx={} became_master={}",
        stats.adverts_received, stats.adverts_sent, stats.became_master
    );
    for reason in DropReason::ALL {
        let _ = write!(s, " drop.{}={}", reason.name(), stats.dropped(reason));
    }
    s
}

/// Writes `text` to `path` whole.
pub fn write(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drop_reason_is_listed() {
        let stats = Stats::default();
        let l = line("VI_1", State::Backup, 100, &stats);
        assert!(
            l.starts_with("VI_1 state=BACKUP priority=100 rx=0 tx=0"),
            "{l}"
        );
        assert!(l.contains(" drop.auth=0"));
        assert_eq!(l.matches(" drop.").count(), DropReason::ALL.len());
    }
}
