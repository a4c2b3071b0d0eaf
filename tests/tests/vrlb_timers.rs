//! Timers fire on time under load (issue 6, Build 2): a lone `vrlb run`
//! master advertises every `advert_int` while busy loops keep every CPU of
//! the machine busy; the client's capture (tcpdump `-tt`) shows each
//! interval within [`JITTER`] of `advert_int` and every advert within
//! [`DRIFT`] of one schedule (first + N x advert_int), so lateness does
//! not add up from one advert to the next.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vrlb_tests::netns::have;
use vrlb_tests::vrrp_lab::{Instance, Kind, VrrpLab, expect, log, state, v4};

const LONG: Duration = Duration::from_secs(12);
/// advert_int: VRRPv3 allows centiseconds; short enough for many adverts
/// in a few seconds.
const INTERVAL: Duration = Duration::from_millis(200);
/// How long the CPU hogs run.
const HOG: Duration = Duration::from_secs(6);
/// One interval may be this much longer or shorter than advert_int: a
/// wake-up delayed by the scheduler on a loaded 2-core machine (4-44 ms
/// seen at nice 0 against busy loops; other engineers' builds add more)
/// and tcpdump's own timestamping.
const JITTER: Duration = Duration::from_millis(100);
/// Every advert's lateness against the schedule the most punctual one
/// keeps (first + n x advert_int): one late wake-up, never their sum. A
/// loop that re-arms from its wake-up drifted 220-240 ms over these 30
/// adverts.
const DRIFT: Duration = Duration::from_millis(100);

/// Times (seconds since the epoch) of the adverts from `src`.
fn advert_times(capture: &str, src: &str) -> Vec<f64> {
    capture
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some(src) && l.contains("VRRP"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

fn epoch_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn adverts_stay_on_time_without_drift_while_every_cpu_is_busy() {
    let Some(mut lab) = VrrpLab::new(&["tcpdump", "timeout"]) else {
        return;
    };
    let capture = lab.dir.path("vrrp.txt");
    let (client, client_if) = (lab.client.clone(), lab.client_if.clone());
    lab.lab.spawn(
        &client,
        &[
            "tcpdump",
            "-i",
            &client_if,
            "-n",
            "-l",
            "-tt",
            "ip proto 112",
        ],
        &capture,
    );
    expect(LONG, "tcpdump listens", &[], || {
        std::fs::read_to_string(&capture).is_ok_and(|t| t.contains("listening on"))
    });
    let conf = Instance {
        name: "VI_1",
        vrid: 51,
        priority: 150,
        version: 3,
        advert_int: "0.2",
        password: None,
        vips: vec!["192.0.2.240/24".into()],
        nopreempt: false,
        unicast: None,
    };
    let d0 = lab.start(Kind::Vrlb, 0, &conf.conf(&lab.ifs[0].clone()));
    expect(LONG, "director 0 master", &[&d0], || {
        state(&d0, "VI_1").as_deref() == Some("MASTER")
    });
    std::thread::sleep(Duration::from_secs(1));

    // One busy loop per CPU and one more, in the director's namespace,
    // at the daemon's own niceness.
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    assert!(have("sh"));
    let hog_s = HOG.as_secs().to_string();
    let ns = lab.ns[0].clone();
    let from = epoch_s();
    for i in 0..=cpus {
        let out = lab.dir.path(&format!("hog{i}.log"));
        lab.lab.spawn(
            &ns,
            &["timeout", &hog_s, "sh", "-c", "while :; do :; done"],
            &out,
        );
    }
    std::thread::sleep(HOG);
    let to = epoch_s();
    std::thread::sleep(INTERVAL * 3);

    let text = std::fs::read_to_string(&capture).unwrap();
    // The adverts sent while the hogs ran (the first one a little after
    // they started, so that it too was sent under load).
    let times: Vec<f64> = advert_times(&text, &v4(0))
        .into_iter()
        .filter(|t| *t >= from + 0.1 && *t <= to)
        .collect();
    let i = INTERVAL.as_secs_f64();
    let expected = ((to - from - 0.1) / i) as usize;
    assert!(
        times.len() + 1 >= expected,
        "{} adverts under load, {expected} expected:\n{text}\n{}",
        times.len(),
        log(&d0)
    );
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let worst_gap = gaps.iter().map(|g| (g - i).abs()).fold(0.0, f64::max);
    // Offsets from a perfect schedule; adverts are only ever late, so the
    // smallest offset is the schedule itself.
    let offsets: Vec<f64> = times
        .iter()
        .enumerate()
        .map(|(n, t)| t - n as f64 * i)
        .collect();
    let punctual = offsets.iter().copied().fold(f64::MAX, f64::min);
    let drift: Vec<f64> = offsets.iter().map(|o| o - punctual).collect();
    let worst_drift = drift.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "{} adverts under load on {cpus} CPUs: worst interval error {:.1} ms, latest {:.1} ms behind schedule, last {:.1} ms",
        times.len(),
        worst_gap * 1e3,
        worst_drift * 1e3,
        drift.last().unwrap_or(&0.0) * 1e3
    );
    assert!(
        worst_gap <= JITTER.as_secs_f64(),
        "an interval off by {:.1} ms (tolerance {JITTER:?}): {gaps:?}",
        worst_gap * 1e3
    );
    assert!(
        worst_drift <= DRIFT.as_secs_f64(),
        "adverts drift by {:.1} ms (tolerance {DRIFT:?}): {drift:?}",
        worst_drift * 1e3
    );
    assert_eq!(state(&d0, "VI_1").as_deref(), Some("MASTER"));
}
