//! The `embassy-time` conversions: a board on embassy passes its clock's
//! `Instant`s and `Duration`s to the core and sleeps for what
//! `poll_timeout` answers. At embassy's default tick rate (1 MHz, the rate
//! this test builds with) both ways are exact.

use embassy_time::{Duration as EDuration, Instant as EInstant, TICK_HZ};
use vrlb_core::time::{Duration, Instant};

#[test]
fn instants_and_durations_convert_both_ways_exactly() {
    assert_eq!(
        TICK_HZ, 1_000_000,
        "the test assumes embassy's default tick rate"
    );
    for micros in [0, 1, 999, 3_609_375, 86_400_000_000, u64::MAX / 2] {
        let e = EInstant::from_micros(micros);
        let t = Instant::from(e);
        assert_eq!(t.as_micros(), micros);
        assert_eq!(EInstant::from(t), e);

        let d = EDuration::from_micros(micros);
        let ours = Duration::from(d);
        assert_eq!(ours.as_micros(), micros);
        assert_eq!(EDuration::from(ours), d);
    }
    assert_eq!(Instant::from(EInstant::from_secs(5)), Instant::from_secs(5));
    assert_eq!(
        Duration::from(EDuration::from_millis(1_250)),
        Duration::from_millis(1_250)
    );
}

#[test]
fn a_core_deadline_becomes_an_embassy_sleep() {
    // What a board's loop does: now from embassy, deadline from the core,
    // the difference as an embassy Duration to sleep.
    let now = EInstant::from_millis(10_000);
    let deadline = Instant::from(now) + Duration::from_centis(100);
    let wait = deadline.saturating_duration_since(Instant::from(now));
    assert_eq!(EDuration::from(wait), EDuration::from_secs(1));
    assert_eq!(EInstant::from(deadline), now + EDuration::from_secs(1));
    // A deadline already past is no wait at all.
    let late = Instant::from(now).saturating_duration_since(deadline);
    assert_eq!(EDuration::from(late), EDuration::from_ticks(0));
}
