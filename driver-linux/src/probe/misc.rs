//! What a `MISC_CHECK` script's ending means. Owns only that mapping: the
//! prober starts, times out and reaps the script (through the daemon's
//! [`Runner`](crate::daemon::scripts::Runner)).

use vrlb_core::check::ProbeResult;

/// The result of a script that ended with `code` (`None`: killed at its
/// `misc_timeout`, by a signal, or not waitable).
///
/// keepalived.conf(5), MISC_CHECK `misc_dynamic`: exit 0 is up with the
/// weight unchanged, 1 is down, 2..=255 is up with weight `code - 2`.
/// Without `misc_dynamic` every status but 0 is down.
pub fn script_result(code: Option<i32>, dynamic: bool) -> ProbeResult {
    match (code, dynamic) {
        (Some(0), _) => ProbeResult::Success,
        (Some(c @ 2..=255), true) => ProbeResult::Weight(c as u32 - 2),
        _ => ProbeResult::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_as_keepalived_s_misc_dynamic() {
        assert_eq!(script_result(Some(0), false), ProbeResult::Success);
        assert_eq!(script_result(Some(0), true), ProbeResult::Success);
        assert_eq!(script_result(Some(1), true), ProbeResult::Failure);
        assert_eq!(script_result(Some(2), true), ProbeResult::Weight(0));
        assert_eq!(script_result(Some(7), true), ProbeResult::Weight(5));
        assert_eq!(script_result(Some(255), true), ProbeResult::Weight(253));
        assert_eq!(script_result(Some(7), false), ProbeResult::Failure);
        assert_eq!(script_result(None, true), ProbeResult::Failure);
        assert_eq!(script_result(None, false), ProbeResult::Failure);
    }
}
