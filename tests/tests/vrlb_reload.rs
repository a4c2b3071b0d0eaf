//! SIGHUP reloads `vrlb run` in place: a changed priority moves mastership
//! as the new priority says (both ways); an unchanged configuration causes
//! no transition on either director and no gap in the master's adverts
//! (timestamps from tcpdump at the client); removing a master instance
//! sends its priority-0 goodbye, so the peer takes over after Skew_Time.

use std::time::Duration;

use vrlb_tests::vrrp_lab::{Instance, Kind, Running, VrrpLab, expect, log, state, v4};

const VIP: &str = "192.0.2.240";
const LONG: Duration = Duration::from_secs(12);

fn conf(priority: u8) -> Instance<'static> {
    Instance {
        name: "VI_1",
        vrid: 51,
        priority,
        version: 2,
        advert_int: "1",
        password: Some("secret"),
        vips: vec![format!("{VIP}/24")],
        nopreempt: false,
        unicast: None,
    }
}

fn is(d: &Running, want: &str) -> bool {
    state(d, "VI_1").as_deref() == Some(want)
}

fn transitions(d: &Running) -> usize {
    log(d).lines().filter(|l| l.contains("VI_1: ")).count()
}

fn reloads(d: &Running) -> usize {
    log(d).matches("reloaded: ").count()
}

/// Times (seconds) of the adverts from `src` in a tcpdump `-tt` capture.
fn advert_times(capture: &str, src: &str) -> Vec<f64> {
    capture
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some(src) && l.contains("VRRP"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn sighup_moves_mastership_on_a_new_priority_and_changes_nothing_otherwise() {
    let Some(mut lab) = VrrpLab::new(&["tcpdump"]) else {
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
    let d0 = lab.start(Kind::Vrlb, 0, &conf(150).conf(&lab.ifs[0].clone()));
    let d1 = lab.start(Kind::Vrlb, 1, &conf(100).conf(&lab.ifs[1].clone()));
    expect(LONG, "director 0 master", &[&d0, &d1], || {
        is(&d0, "MASTER") && is(&d1, "BACKUP") && lab.holds(0, VIP)
    });

    // Unchanged configuration, both directors reloaded: nothing moves and
    // the master keeps its advert rhythm.
    let (t0, t1) = (transitions(&d0), transitions(&d1));
    std::thread::sleep(Duration::from_millis(1500));
    let before = advert_times(&std::fs::read_to_string(&capture).unwrap(), &v4(0)).len();
    d0.hup();
    d1.hup();
    expect(LONG, "both reloaded", &[&d0, &d1], || {
        reloads(&d0) == 1 && reloads(&d1) == 1
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(transitions(&d0), t0, "master flapped:\n{}", log(&d0));
    assert_eq!(transitions(&d1), t1, "backup flapped:\n{}", log(&d1));
    assert!(lab.holds(0, VIP) && !lab.holds(1, VIP));
    let times = advert_times(&std::fs::read_to_string(&capture).unwrap(), &v4(0));
    assert!(
        times.len() >= before + 3,
        "adverts stopped: {before} before, {} after",
        times.len()
    );
    let gap = times[before.saturating_sub(1)..]
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(0.0, f64::max);
    eprintln!("largest advert gap across the reload: {gap:.3} s");
    assert!(gap <= 1.15, "advert gap of {gap:.3} s across the reload");

    // Director 0 drops to 50: director 1 (100) takes over.
    std::fs::write(&d0.conf, conf(50).conf(&lab.ifs[0])).unwrap();
    d0.hup();
    expect(
        LONG,
        "director 1 takes over after director 0's reload to 50",
        &[&d0, &d1],
        || is(&d1, "MASTER") && is(&d0, "BACKUP"),
    );
    expect(LONG, "VIP follows", &[&d0, &d1], || {
        lab.holds(1, VIP) && !lab.holds(0, VIP)
    });

    // Director 0 rises to 200: it preempts.
    std::fs::write(&d0.conf, conf(200).conf(&lab.ifs[0])).unwrap();
    d0.hup();
    expect(
        LONG,
        "director 0 preempts after its reload to 200",
        &[&d0, &d1],
        || is(&d0, "MASTER") && is(&d1, "BACKUP"),
    );
    expect(LONG, "VIP back on director 0", &[&d0, &d1], || {
        lab.holds(0, VIP) && !lab.holds(1, VIP)
    });

    // Director 0 reloads without VI_1 (a new instance takes its place):
    // its goodbye (priority 0) lets director 1 take over after Skew_Time
    // (0.61 s at priority 100), not Master_Down_Interval (3.61 s), and the
    // new instance in the freed slot sends no priority 0 of its own.
    let replacement = Instance {
        name: "VI_2",
        vrid: 52,
        vips: vec!["192.0.2.241/24".to_string()],
        ..conf(200)
    };
    std::fs::write(&d0.conf, replacement.conf(&lab.ifs[0])).unwrap();
    let hup = std::time::Instant::now();
    d0.hup();
    expect(LONG, "director 1 takes over VI_1", &[&d0, &d1], || {
        is(&d1, "MASTER")
    });
    let took = hup.elapsed();
    eprintln!("director 1 master {took:?} after the reload removed VI_1");
    assert!(
        took < Duration::from_millis(2000),
        "no goodbye: director 1 took {took:?} (Master_Down_Interval is 3.61 s)"
    );
    expect(LONG, "VI_1's VIP moves to director 1", &[&d0, &d1], || {
        lab.holds(1, VIP) && !lab.holds(0, VIP)
    });
}
