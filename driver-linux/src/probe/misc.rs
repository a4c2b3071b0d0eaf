//! How a `MISC_CHECK` script's ending is reported. Owns only that: the
//! prober starts, times out and reaps the script (through the daemon's
//! [`Runner`](crate::daemon::scripts::Runner)), and the core's checker
//! decides what an exit status means (keepalived's `misc_dynamic`
//! weights included).

use vrlb_core::check::ProbeResult;

/// The result of a script that ended with `code` (`None`: killed at its
/// `misc_timeout`, by a signal, or not waitable: a failure).
pub fn script_result(code: Option<i32>) -> ProbeResult {
    match code.and_then(|c| u8::try_from(c).ok()) {
        Some(status) => ProbeResult::Exit(status),
        None => ProbeResult::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_are_reported_for_the_core_to_judge() {
        assert_eq!(script_result(Some(0)), ProbeResult::Exit(0));
        assert_eq!(script_result(Some(7)), ProbeResult::Exit(7));
        assert_eq!(script_result(Some(255)), ProbeResult::Exit(255));
        assert_eq!(script_result(None), ProbeResult::Failure);
        assert_eq!(script_result(Some(-1)), ProbeResult::Failure);
        // What they mean is the core's: 7 passes only under misc_dynamic.
        assert!(ProbeResult::Exit(7).passes(true));
        assert!(!ProbeResult::Exit(7).passes(false));
        assert!(!ProbeResult::Exit(1).passes(true));
    }
}
