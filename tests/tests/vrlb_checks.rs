//! `vrlb run` health-checks a real server for real: a virtual_server whose
//! real server (Python's http.server in the client namespace) is checked
//! by HTTP_GET with a digest. The server comes up after its first good
//! probe (`alpha`), is marked down within the bound its check parameters
//! give once its listener goes away, comes back when it answers again,
//! goes down when its page no longer has the configured digest, and when
//! it stops answering altogether (probes time out).

use std::time::{Duration, Instant};

use vrlb_tests::netns::{run, wait_until};
use vrlb_tests::vrrp_lab::{Kind, Running, VrrpLab, log};

const SERVER: &str = "192.0.2.100";
const PORT: u16 = 8080;
/// md5("ok\n")
const OK_MD5: &str = "eff5bc1ef8ec9d03e640fc4370f5eacd";

const DELAY_LOOP_S: u64 = 2;
const CONNECT_TIMEOUT_S: u64 = 1;
const RETRY: u64 = 1;
const DELAY_BEFORE_RETRY_S: u64 = 1;
/// Scheduling, process start and log-polling slack on a busy machine.
const SLACK: Duration = Duration::from_millis(700);

fn conf() -> String {
    format!(
        "virtual_server 192.0.2.240 80 {{
  delay_loop {DELAY_LOOP_S}
  lb_algo wlc
  lb_kind DR
  protocol TCP
  alpha
  real_server {SERVER} {PORT} {{
    weight 3
    HTTP_GET {{
      url {{
        path /health.txt
        digest {OK_MD5}
      }}
      connect_timeout {CONNECT_TIMEOUT_S}
      retry {RETRY}
      delay_before_retry {DELAY_BEFORE_RETRY_S}
    }}
  }}
}}
"
    )
}

/// keepalived's bound for a healthy server that stops answering: the next
/// check comes within delay_loop, and each of its retry + 1 attempts takes
/// at most connect_timeout, with delay_before_retry between them.
fn down_bound() -> Duration {
    Duration::from_secs(
        DELAY_LOOP_S + CONNECT_TIMEOUT_S * (RETRY + 1) + DELAY_BEFORE_RETRY_S * RETRY,
    )
}

fn count(d: &Running, what: &str) -> usize {
    log(d).matches(what).count()
}

/// Waits for the `n`th `what` in the log; how long it took.
fn wait_for(d: &Running, what: &str, n: usize, timeout: Duration) -> Duration {
    wait_until(timeout, || count(d, what) >= n).unwrap_or_else(|| {
        panic!(
            "no {what:?} #{n} within {timeout:?}\n--- {}\n{}",
            d.log.display(),
            log(d)
        )
    })
}

#[test]
fn http_get_marks_a_server_down_within_its_bound_and_back_up() {
    let Some(mut lab) = VrrpLab::new(&["python3"]) else {
        return;
    };
    let www = lab.dir.path("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("health.txt"), "ok\n").unwrap();
    let client = lab.client.clone();
    let serve = |lab: &mut VrrpLab, run: u32| {
        let log = lab.dir.path(&format!("http{run}.log"));
        let port = PORT.to_string();
        let www = www.to_str().unwrap().to_string();
        lab.lab.spawn(
            &client,
            &[
                "python3",
                "-m",
                "http.server",
                &port,
                "--bind",
                SERVER,
                "--directory",
                &www,
            ],
            &log,
        )
    };
    let up = format!("real server {SERVER}:{PORT}: up");
    let down = format!("real server {SERVER}:{PORT}: down");

    let http = serve(&mut lab, 1);
    let d0 = lab.start(Kind::Vrlb, 0, &conf());
    // alpha: down until the first good probe.
    wait_for(&d0, &up, 1, Duration::from_secs(10));
    assert_eq!(count(&d0, &down), 0, "{}", log(&d0));

    // The listener goes away: down within the bound.
    lab.lab.signal(http, "KILL");
    let took = wait_for(&d0, &down, 1, down_bound() + SLACK * 2);
    eprintln!(
        "listener gone: marked down after {took:?} (bound {:?})",
        down_bound()
    );
    assert!(took <= down_bound() + SLACK, "{took:?}\n{}", log(&d0));
    assert!(
        log(&d0).contains(&format!("HTTP_GET {SERVER}:{PORT}: failed: connect to")),
        "{}",
        log(&d0)
    );

    // It answers again: one good probe brings it back, within delay_loop
    // (plus Python's start-up).
    let started = Instant::now();
    let http = serve(&mut lab, 2);
    wait_for(&d0, &up, 2, Duration::from_secs(DELAY_LOOP_S) + SLACK * 4);
    eprintln!("listener back: marked up after {:?}", started.elapsed());

    // A page that no longer matches its digest is a failure too.
    std::fs::write(www.join("health.txt"), "changed\n").unwrap();
    let took = wait_for(&d0, &down, 2, down_bound() + SLACK * 2);
    assert!(took <= down_bound() + SLACK, "{took:?}\n{}", log(&d0));
    assert!(log(&d0).contains("MD5 digest error"), "{}", log(&d0));

    // It matches again, then stops answering at all (its link goes
    // down): every attempt now lasts connect_timeout, and the full bound
    // applies.
    std::fs::write(www.join("health.txt"), "ok\n").unwrap();
    wait_for(&d0, &up, 3, Duration::from_secs(DELAY_LOOP_S) + SLACK * 4);
    let client_if = lab.client_if.clone();
    run(&["ip", "-n", &client, "link", "set", &client_if, "down"]);
    let took = wait_for(&d0, &down, 3, down_bound() + SLACK * 2);
    eprintln!(
        "server silent: marked down after {took:?} (bound {:?})",
        down_bound()
    );
    assert!(took <= down_bound() + SLACK, "{took:?}\n{}", log(&d0));
    // The checker's own connect_timeout and the prober's expire together:
    // when the checker's fires first the server goes down before the
    // prober reports (and logs) its timed-out attempt.
    let timed_out = format!(
        "HTTP_GET {SERVER}:{PORT}: failed: timed out after {} ms",
        CONNECT_TIMEOUT_S * 1000
    );
    wait_for(&d0, &timed_out, 1, SLACK * 2);

    lab.lab.signal(http, "TERM");
    lab.stop(&d0);
    let text = log(&d0);
    assert!(text.contains("vrlb stopped"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}
