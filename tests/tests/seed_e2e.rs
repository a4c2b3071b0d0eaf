//! The seed scenario end to end, on the topology `vrlb lab up` builds
//! (a client, two directors running `vrlb run` with the seed's
//! keepalived.conf and the userspace DR data plane, two real servers with
//! the VIP on `lo`, arp_ignore=1, arp_announce=2, serving HTTP):
//!
//! - many client addresses reach both real servers in the proportion wlc
//!   and the seed's weights (3 and 3) give, and, reweighted to 1 and 3 by
//!   a SIGHUP, one in four to the lighter one;
//! - each client keeps its real server (persistence_timeout 60);
//! - no director answers a client itself (no frame from the VIP and no
//!   ICMP with a director's MAC as source, seen by a capture at the
//!   client; the directors' nftables drop rule counted what it stopped);
//! - `vrlb status` and `vrlb conns` (text and JSON) show the services,
//!   weights, counts, every client's persistence template, the data
//!   plane's counters;
//! - stopping rs1's HTTP listener (its `vrlb lab serve` killed) marks it
//!   down on both directors (`vrlb status --json`) within the bound the
//!   seed's TCP_CHECK gives for a refused connection (delay_loop 6 +
//!   retry 3 x delay_before_retry 3, and no sooner than the retries take),
//!   removed as keepalived removes it; then every client, the persistent
//!   ones that were on rs1 included, reaches rs2 and has a template there;
//!   started again, rs1 is up within delay_loop and nearly all new
//!   clients reach it (wlc: it carries far fewer connections than rs2);
//! - rs2's MAC changes (its kernel announces it: `arp_notify`): both
//!   directors' data planes take the new MAC within `MAC_BOUND` and rs2
//!   keeps its flows, an open connection and new ones;
//! - a SIGHUP reload with other weights (1 and 3) reaches the backup's
//!   workers;
//! - killing the master director (SIGKILL, then its link down: the host
//!   is gone) moves the VIP to the backup, which serves every client, each
//!   keeping its real server: the lab syncs connections
//!   (`lvs_sync_daemon`), so the backup has every template, and a
//!   keep-alive connection opened long before the failover carries on
//!   through the backup;
//! - the killed director, started again with its link still down, is in
//!   FAULT (`vrlb status`), removes the VIP and replaces the nftables
//!   table its crash left; reloaded with weights 1 and 3 it takes the VIP
//!   back once its link is up and forwards with a fresh table, in the new
//!   proportion; a director stopped with SIGTERM removes its table;
//! - `vrlb lab down` leaves no namespace, process, address, rule or file.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use vrlb_tests::netns::{has_addr, in_netns, in_ns, run, wait_until};
use vrlb_tests::seed_lab::Seed;

const VIP: &str = "192.0.2.240";
const SERVERS: [&str; 2] = ["192.0.2.212", "192.0.2.213"];
/// Client addresses: 64 of them, none of the lab's own.
const CLIENTS: std::ops::RangeInclusive<u8> = 101..=164;
/// Clients first seen after rs1 returns.
const NEW_CLIENTS: std::ops::RangeInclusive<u8> = 165..=196;
/// Connections per client after the first (persistence).
const REPEATS: usize = 3;
/// The whole test must end within this.
const BUDGET: Duration = Duration::from_secs(240);
/// Failover bound: Master_Down_Interval (3 x advert_int 1 s + skew
/// (256 - 90) / 256 s) and slack for a loaded machine.
const FAILOVER_BOUND: Duration = Duration::from_secs(8);
/// A real server whose MAC changed announces it at once (a gratuitous
/// ARP); the directors' kernels update their neighbour entries, whose
/// monitor the data plane reads: well under a second, plus slack for a
/// loaded machine.
const MAC_BOUND: Duration = Duration::from_secs(2);
/// rs2's new MAC (locally administered).
const NEW_MAC: &str = "02:00:5e:10:02:13";
/// An answer on the long-lived connection after the failover: TCP
/// retransmits back off (0.2, 0.4, ... s), so a segment lost while the VIP
/// moved may wait some seconds for its next try.
const LONG_ANSWER: Duration = Duration::from_secs(20);
/// A director at rest uses at most this share of one CPU (it wakes for
/// adverts, checks and sync: a few ms a second).
const IDLE_CPU: f64 = 0.1;
/// Data-plane workers per director (`vrlb lab up`'s default).
const WORKERS: usize = 2;

/// Slack on the check bounds: the status poll (200 ms), a probe's own
/// time, scheduling on a loaded machine.
const CHECK_MARGIN: Duration = Duration::from_secs(3);

/// How long after a listener stops (or starts) the checkers may see it.
struct CheckBounds {
    /// Refused connections: a failed probe and `retry` failed retries
    /// `delay_before_retry` apart, so never sooner than this.
    least: Duration,
    /// Refused connections: the first probe at most `delay_loop` after
    /// the stop, then the retries: delay_loop + retry * delay_before_retry.
    refused: Duration,
    /// Probes that time out: delay_loop + (retry + 1) * connect_timeout +
    /// retry * delay_before_retry (`Checker::down_bound` in the core).
    worst: Duration,
    /// Back up: a down checker probes every delay_loop; one success.
    back: Duration,
}

/// The bounds from the check parameters in the directors' configuration
/// (`conf`, the lab's d1.conf), each written once per real server.
fn check_bounds(conf: &str) -> CheckBounds {
    let param = |key: &str| -> u32 {
        let values: Vec<u32> = conf
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(key)).then(|| w.next()?.parse().ok())?
            })
            .collect();
        assert!(
            !values.is_empty() && values.iter().all(|v| *v == values[0]),
            "{key} in the lab's configuration: {values:?}\n{conf}"
        );
        values[0]
    };
    let s = |secs: u32| Duration::from_secs(u64::from(secs));
    let delay_loop = s(param("delay_loop"));
    let connect_timeout = s(param("connect_timeout"));
    let retry = param("retry");
    let delay_before_retry = s(param("delay_before_retry"));
    CheckBounds {
        least: delay_before_retry * retry,
        refused: delay_loop + delay_before_retry * retry,
        worst: delay_loop + connect_timeout * (retry + 1) + delay_before_retry * retry,
        back: delay_loop,
    }
}

/// Real server `addr` in a `vrlb status --json`.
fn server_status<'a>(st: &'a Value, addr: &str) -> &'a Value {
    st["services"][0]["servers"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["addr"] == addr))
        .unwrap_or_else(|| panic!("{addr} in status: {st}"))
}

/// Polls director `n`'s status until `addr`'s health is `healthy`;
/// returns the time since `since`, or None after `timeout` from `since`.
fn wait_health(
    seed: &Seed,
    n: usize,
    addr: &str,
    healthy: bool,
    since: Instant,
    timeout: Duration,
) -> Option<Duration> {
    loop {
        let st = seed.json("status", n);
        if server_status(&st, addr)["healthy"] == healthy {
            return Some(since.elapsed());
        }
        if since.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Which real server (0 or 1) answered with `body`.
fn server_of(body: &str) -> Option<usize> {
    SERVERS.iter().position(|s| body.contains(s))
}

/// Every client address makes `1 + repeats` connections to the VIP, one
/// after another; returns the servers each reached (None: no answer).
fn fetch(
    client_ns: &str,
    clients: &[String],
    repeats: usize,
) -> BTreeMap<String, Vec<Option<usize>>> {
    let script = format!(
        "for a in {}; do for i in $(seq 0 {repeats}); do \
         echo \"$a $(curl -s --max-time 3 --interface $a http://{VIP}/ | head -c 64 | tr -d '\\n')\"; \
         done; done",
        clients.join(" ")
    );
    let out = in_ns(client_ns, &["sh", "-c", &script]);
    let mut got: BTreeMap<String, Vec<Option<usize>>> = BTreeMap::new();
    for line in out.lines() {
        let (addr, body) = line.split_once(' ').unwrap_or((line, ""));
        got.entry(addr.to_string())
            .or_default()
            .push(server_of(body));
    }
    got
}

/// The MAC of `eth0` in `ns`.
fn mac(ns: &str) -> String {
    let text = in_ns(ns, &["ip", "-o", "link", "show", "eth0"]);
    let mut w = text.split_whitespace();
    w.position(|x| x == "link/ether");
    w.next().expect("a MAC").to_string()
}

/// The nftables drop counter of the `vrlb` table in `ns` (packets).
fn nft_dropped(ns: &str) -> Option<u64> {
    let text = in_ns(ns, &["nft", "list", "table", "inet", "vrlb"]);
    let mut w = text.split_whitespace();
    w.position(|x| x == "packets")?;
    w.next()?.parse().ok()
}

/// IP frames of the capture whose source MAC is `mac`.
fn frames_from(capture: &str, mac: &str) -> Vec<String> {
    capture
        .lines()
        .filter(|l| l.contains("ethertype IPv4"))
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|src| src.eq_ignore_ascii_case(mac))
        })
        .map(str::to_string)
        .collect()
}

/// Pids whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(format!("{name}: {cmd}"));
            }
        }
    }
    found
}

fn host_has_vrlb_table() -> bool {
    Command::new("nft")
        .args(["list", "table", "inet", "vrlb"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Checks each client's answers: all answered, all from one server.
fn persistent(
    phase: &str,
    got: &BTreeMap<String, Vec<Option<usize>>>,
    clients: &[String],
) -> BTreeMap<String, usize> {
    let mut chosen = BTreeMap::new();
    for c in clients {
        let answers = got
            .get(c)
            .unwrap_or_else(|| panic!("{phase}: no output for {c}"));
        assert_eq!(answers.len(), 1 + REPEATS, "{phase}: {c}: {answers:?}");
        assert!(
            answers.iter().all(Option::is_some),
            "{phase}: {c} got no answer to some requests: {answers:?}"
        );
        let first = answers[0].expect("checked");
        assert!(
            answers.iter().all(|a| *a == Some(first)),
            "{phase}: {c} changed server within persistence_timeout: {answers:?}"
        );
        chosen.insert(c.clone(), first);
    }
    chosen
}

fn split(chosen: &BTreeMap<String, usize>) -> [usize; 2] {
    let mut n = [0; 2];
    for s in chosen.values() {
        n[*s] += 1;
    }
    n
}

/// A keep-alive HTTP connection from one client address to the VIP.
struct LongConn {
    stream: TcpStream,
    local: SocketAddr,
}

impl LongConn {
    /// Connects from `from` inside `ns`.
    fn open(ns: &str, from: &str) -> Result<LongConn, String> {
        let from: SocketAddr = format!("{from}:0").parse().unwrap();
        let vip: SocketAddr = format!("{VIP}:80").parse().unwrap();
        let stream = in_netns(ns, || -> std::io::Result<TcpStream> {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            s.bind(&from.into())?;
            s.connect_timeout(&vip.into(), Duration::from_secs(5))?;
            Ok(s.into())
        })
        .map_err(|e| format!("connect from {from}: {e}"))?;
        let local = stream.local_addr().map_err(|e| e.to_string())?;
        Ok(LongConn { stream, local })
    }

    /// One GET on the connection; which real server answered.
    fn get(&mut self, timeout: Duration) -> Result<usize, String> {
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        self.stream
            .write_all(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
            .map_err(|e| format!("send: {e}"))?;
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|n| n.trim().parse().ok())
                    .ok_or_else(|| format!("no Content-Length: {text:?}"))?;
                if body.len() >= len {
                    return server_of(body).ok_or_else(|| format!("answer: {text:?}"));
                }
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(format!("closed after {got:?}")),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("read: {e} after {got:?}")),
            }
        }
    }
}

/// The entry for the long-lived connection in `conns`, if listed.
fn long_entry(conns: &Value, local: SocketAddr) -> Option<Value> {
    conns["entries"].as_array()?.iter().find_map(|e| {
        (e["template"] == false
            && e["client"] == local.ip().to_string().as_str()
            && e["client_port"] == local.port())
        .then(|| e.clone())
    })
}

/// CPU time (user + system, all threads) process `pid` has used, in
/// seconds: /proc/PID/stat fields 14 and 15, in USER_HZ (100) ticks.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // After the command: field 3 is index 0, so 14 and 15 are 11 and 12.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

/// Active plus inactive connections of real server `addr` (status).
fn load(st: &Value, addr: &str) -> u64 {
    let rs = server_status(st, addr);
    rs["active"].as_u64().unwrap_or(0) + rs["inactive"].as_u64().unwrap_or(0)
}

#[test]
fn seed_scenario_wlc_persistence_no_director_answers_status_failover_cleanup() {
    let Some(mut seed) = Seed::new(&["curl", "nft", "tcpdump", "sysctl"]) else {
        return;
    };
    let start = Instant::now();
    let host_table_before = host_has_vrlb_table();

    // One command builds it and the VIP answers.
    let up = seed.lab_cmd("up");
    if !up.status.success() {
        seed.fail(&format!(
            "vrlb lab up: {}",
            String::from_utf8_lossy(&up.stderr)
        ));
    }
    let client = seed.ns("client");
    let (d1, d2) = (seed.ns("d1"), seed.ns("d2"));
    assert!(has_addr(&d1, VIP) && !has_addr(&d2, VIP), "VIP only on d1");
    for rs in ["rs1", "rs2"] {
        let ns = seed.ns(rs);
        assert!(has_addr(&ns, VIP), "{ns}: VIP on lo");
        assert_eq!(
            in_ns(&ns, &["sysctl", "-n", "net.ipv4.conf.lo.arp_ignore"]).trim(),
            "1"
        );
        assert_eq!(
            in_ns(&ns, &["sysctl", "-n", "net.ipv4.conf.all.arp_announce"]).trim(),
            "2"
        );
    }
    let status = String::from_utf8_lossy(&seed.lab_cmd("status").stdout).into_owned();
    assert!(
        status.contains(&format!("{d1:<16} 192.0.2.210   holds the VIP")),
        "{status}"
    );
    assert!(
        status.contains("TCP  192.0.2.240:80 wlc persistent 60"),
        "{status}"
    );

    // Watch, at the client, everything sent from the VIP and every ICMP
    // and RST, with MACs.
    let capture = seed.dir.join("client.pcap.txt");
    seed.lab.spawn(
        &client,
        &[
            "tcpdump",
            "-i",
            "eth0",
            "-nn",
            "-e",
            "-l",
            "(ip and src host 192.0.2.240) or icmp or (tcp[tcpflags] & tcp-rst != 0)",
        ],
        &capture,
    );
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&capture)
            .is_ok_and(|t| t.contains("listening on")))
        .is_some(),
        "tcpdump did not start"
    );
    let clients: Vec<String> = CLIENTS.map(|i| format!("192.0.2.{i}")).collect();
    for c in &clients {
        run(&[
            "ip",
            "-n",
            &client,
            "addr",
            "add",
            &format!("{c}/24"),
            "dev",
            "eth0",
        ]);
    }

    // Phase 1: many clients, each four connections.
    let t = Instant::now();
    let got = fetch(&client, &clients, REPEATS);
    eprintln!(
        "{} requests through d1 in {:?}",
        clients.len() * (1 + REPEATS),
        t.elapsed()
    );
    let before = persistent("through d1", &got, &clients);
    let n = split(&before);
    eprintln!("wlc, weights 3 and 3, {} clients: {n:?}", clients.len());
    // Each worker's wlc alternates between the two equal servers, so the
    // totals differ by at most one per worker (two) plus slack.
    assert!(n[0] > 0 && n[1] > 0, "both servers reached: {n:?}");
    assert!(
        n[0].abs_diff(n[1]) <= 4,
        "wlc with equal weights splits evenly: {n:?}"
    );

    // What vrlb status and vrlb conns show on d1.
    let st = seed.json("status", 0);
    let svc = &st["services"][0];
    assert_eq!(svc["vip"], VIP, "{st}");
    assert_eq!(svc["scheduler"], "wlc");
    assert_eq!(svc["forward"], "Route");
    assert_eq!(svc["persistence_timeout_s"], 60);
    let total_conns = clients.len() * (1 + REPEATS);
    let conns = seed.json("conns", 0);
    let entries = conns["entries"].as_array().expect("entries").clone();
    // `vrlb lab up` made one request from the client's own address.
    let warm_up = entries
        .iter()
        .filter(|e| e["template"] == false && e["client"] == "192.0.2.100")
        .count();
    for addr in SERVERS {
        let rs = svc["servers"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["addr"] == addr))
            .unwrap_or_else(|| panic!("{addr} in status: {st}"));
        assert_eq!(rs["weight"], 3);
        assert_eq!(rs["healthy"], true);
        let counted = rs["active"].as_u64().unwrap() + rs["inactive"].as_u64().unwrap();
        let listed = entries
            .iter()
            .filter(|e| e["template"] == false && e["server"] == addr)
            .count();
        let templates = entries
            .iter()
            .filter(|e| e["template"] == true && e["server"] == addr)
            .count();
        assert_eq!(
            counted as usize, listed,
            "{addr}: status and conns agree: {rs}"
        );
        assert_eq!(
            rs["persistent"].as_u64().unwrap() as usize,
            templates,
            "{addr}: {rs}"
        );
    }
    let fwd = &st["dataplane"]["forwarding"];
    assert_eq!(st["dataplane"]["workers"], 2);
    assert_eq!(
        fwd["flows_created"].as_u64().unwrap() as usize,
        total_conns + warm_up,
        "{fwd}"
    );
    assert_eq!(
        fwd["templates_created"].as_u64().unwrap() as usize,
        clients.len() + usize::from(warm_up > 0),
        "{fwd}"
    );
    assert!(
        fwd["forwarded"].as_u64().unwrap() as usize >= total_conns * 3,
        "{fwd}"
    );
    for reason in [
        "drop_malformed",
        "drop_oversize",
        "drop_vip_not_held",
        "drop_table_full",
    ] {
        assert_eq!(fwd[reason], 0, "{reason}: {fwd}");
    }
    let text = seed.ask("status", 0, false);
    assert!(
        text.starts_with("IP Virtual Server version 1.2.1 (size="),
        "{text}"
    );
    assert!(
        text.contains("TCP  192.0.2.240:80 wlc persistent 60\n"),
        "{text}"
    );
    assert!(
        text.contains("  -> 192.0.2.212:80               Route   3      "),
        "{text}"
    );
    assert!(text.contains("vrid 51  MASTER"), "{text}");
    for (c, s) in &before {
        let tpl: Vec<&Value> = entries
            .iter()
            .filter(|e| e["template"] == true && e["client"] == c.as_str())
            .collect();
        assert_eq!(tpl.len(), 1, "{c}: one template: {tpl:?}");
        assert_eq!(tpl[0]["server"], SERVERS[*s], "{c}: template to its server");
        assert_eq!(tpl[0]["vip"], VIP);
        assert_eq!(tpl[0]["vport"], 80);
        assert!(tpl[0]["expires_s"].as_u64().unwrap() <= 60);
        let flows = entries
            .iter()
            .filter(|e| e["template"] == false && e["client"] == c.as_str())
            .inspect(|e| assert_eq!(e["server"], SERVERS[*s], "{c}: connection to its server"))
            .count();
        assert_eq!(flows, 1 + REPEATS, "{c}: its connections");
    }
    let text = seed.ask("conns", 0, false);
    assert!(text.starts_with("IPVS connection entries\npro expire state       source             virtual            destination\n"), "{text}");
    assert!(
        text.contains(&format!("NONE        {}:0 ", clients[0])),
        "{text}"
    );

    // d1's stack saw the frames it forwarded and dropped them (the rule
    // works), and nothing left a director for a client.
    let dropped = nft_dropped(&d1).unwrap_or(0);
    assert!(
        dropped as usize >= total_conns,
        "nft drop counter on d1: {dropped}"
    );
    let macs = [mac(&d1), mac(&d2)];
    // The lab's directors sync connections (lvs_sync_daemon): the
    // failover below relies on it.
    assert!(
        seed.read("d1.conf").contains("lvs_sync_daemon"),
        "the lab syncs connections"
    );

    // Phase 1a: a keep-alive connection from a client persistent on rs2,
    // used again after rs2's MAC changes and after the failover.
    let long_client = before
        .iter()
        .find_map(|(c, s)| (*s == 1).then(|| c.clone()))
        .expect("a client on rs2");
    let mut long = LongConn::open(&client, &long_client).unwrap_or_else(|e| seed.fail(&e));
    assert_eq!(
        long.get(Duration::from_secs(5)),
        Ok(1),
        "the long-lived connection reaches rs2"
    );
    eprintln!("long-lived connection from {} to rs2", long.local);

    // rs2's MAC changes; its kernel announces the new one (a gratuitous
    // ARP: arp_notify). Both directors' data planes take it, and rs2
    // keeps its flows: the open connection and new ones.
    let rs2 = seed.ns("rs2");
    run(&[
        "ip",
        "netns",
        "exec",
        &rs2,
        "sysctl",
        "-qw",
        "net.ipv4.conf.eth0.arp_notify=1",
    ]);
    let changed = Instant::now();
    run(&[
        "ip", "-n", &rs2, "link", "set", "dev", "eth0", "address", NEW_MAC,
    ]);
    let learnt = format!("data plane: real server {} is at {NEW_MAC}", SERVERS[1]);
    for n in [1, 2] {
        let Some(took) = wait_until(MAC_BOUND * 2, || {
            seed.read(&format!("d{n}.log")).contains(&learnt)
        }) else {
            seed.fail(&format!("d{n} did not learn rs2's new MAC"));
        };
        let took = took.max(changed.elapsed());
        eprintln!("rs2's new MAC on d{n}'s data plane after {took:?} (bound {MAC_BOUND:?})");
        assert!(
            took <= MAC_BOUND,
            "d{n} learnt rs2's new MAC after {took:?}"
        );
    }
    assert_eq!(
        long.get(Duration::from_secs(5)),
        Ok(1),
        "the long-lived connection after rs2's MAC changed"
    );
    let on_rs2: Vec<String> = before
        .iter()
        .filter(|(_, s)| **s == 1)
        .map(|(c, _)| c.clone())
        .collect();
    let got = fetch(&client, &on_rs2, 0);
    for c in &on_rs2 {
        assert_eq!(
            got.get(c).map(Vec::as_slice),
            Some(&[Some(1)][..]),
            "{c} reaches rs2 at its new MAC: {got:?}"
        );
    }

    // Phase 1b: rs1's HTTP listener stops (its `vrlb lab serve` killed).
    // Both directors' TCP_CHECKs see refused connections and remove rs1
    // within the checker's bound; then every client, the persistent ones
    // that were on rs1 included, reaches rs2. The listener comes back and
    // rs1 returns within delay_loop; new clients reach it again.
    let rs1 = seed.ns("rs1");
    let serve_pid: u32 = seed.read("rs1.pid").trim().parse().expect("rs1.pid");
    let owner = run(&["ip", "netns", "identify", &serve_pid.to_string()]);
    assert_eq!(
        String::from_utf8_lossy(&owner.stdout).trim(),
        rs1,
        "rs1.pid names a process in {rs1}"
    );
    // Until a checker's first probe reports, one failure takes its server
    // down (as keepalived); the bounds below are for checked servers, and
    // the first probe comes within the warmup (delay_loop) of the start.
    let conf1 = seed.read("d1.conf");
    let bound = check_bounds(&conf1);
    let first_probes = bound.back + CHECK_MARGIN;
    for n in [0, 1] {
        let checked = wait_until(first_probes, || {
            let st = seed.json("status", n);
            let mut checks = st["services"][0]["servers"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s["checks"].as_array().into_iter().flatten());
            checks.clone().count() > 0 && checks.all(|c| c["checked"] == true)
        });
        if checked.is_none() {
            seed.fail(&format!(
                "d{}'s checkers did not all report within {first_probes:?}",
                n + 1
            ));
        }
    }
    let stopped = Instant::now();
    run(&["kill", "-KILL", &serve_pid.to_string()]);
    let url = format!("http://{}/", SERVERS[0]);
    assert!(
        wait_until(Duration::from_secs(5), || !Command::new("ip")
            .args([
                "netns",
                "exec",
                &client,
                "curl",
                "-s",
                "--max-time",
                "1",
                &url
            ])
            .status()
            .is_ok_and(|s| s.success()))
        .is_some(),
        "rs1 still answers after its listener was killed"
    );
    assert_eq!(conf1.matches("TCP_CHECK").count(), 2, "{conf1}");
    let down = [0, 1].map(|n| {
        wait_health(
            &seed,
            n,
            SERVERS[0],
            false,
            stopped,
            bound.worst + CHECK_MARGIN,
        )
        .unwrap_or_else(|| seed.fail(&format!("d{} did not mark rs1 down", n + 1)))
    });
    eprintln!(
        "rs1 stopped: down on d1 after {:?}, on d2 after {:?} (refused: {:?} to {:?} + {CHECK_MARGIN:?}; worst case {:?})",
        down[0], down[1], bound.least, bound.refused, bound.worst
    );
    for (n, took) in down.iter().enumerate() {
        // Before: a first failed probe, then `retry` failed retries
        // `delay_before_retry` apart. After: the first probe comes at most
        // delay_loop after the stop.
        assert!(
            *took + Duration::from_millis(100) >= bound.least
                && *took <= bound.refused + CHECK_MARGIN,
            "d{}: rs1 down after {took:?}, expected {:?}..={:?} (+ {CHECK_MARGIN:?})",
            n + 1,
            bound.least,
            bound.refused
        );
    }
    let st = seed.json("status", 0);
    let rs = server_status(&st, SERVERS[0]);
    assert_eq!(rs["healthy"], false, "{st}");
    assert_eq!(
        rs["weight"],
        Value::Null,
        "removed as keepalived removes it: {st}"
    );
    assert_eq!(rs["checks"][0]["kind"], "TCP_CHECK", "{st}");
    assert_eq!(rs["checks"][0]["up"], false, "{st}");
    assert_eq!(server_status(&st, SERVERS[1])["healthy"], true, "{st}");
    let text = seed.ask("status", 0, false);
    assert!(
        text.lines().any(|l| l.contains("-> 192.0.2.212:80 ")
            && l.contains(" Route   - ")
            && l.ends_with("TCP_CHECK:down")),
        "rs1 shown down, weight -: {text}"
    );
    let on_rs1 = before.values().filter(|s| **s == 0).count();
    let t = Instant::now();
    let got = fetch(&client, &clients, REPEATS);
    eprintln!(
        "{} requests with rs1 down in {:?} ({on_rs1} clients were on rs1)",
        clients.len() * (1 + REPEATS),
        t.elapsed()
    );
    let during = persistent("rs1 down", &got, &clients);
    assert_eq!(
        split(&during),
        [0, clients.len()],
        "with rs1 down every client reaches rs2: {during:?}"
    );
    let conns = seed.json("conns", 0);
    for c in &clients {
        let tpl: Vec<&Value> = conns["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["template"] == true && e["client"] == c.as_str())
            .collect();
        assert!(
            tpl.iter().any(|e| e["server"] == SERVERS[1]),
            "{c}: a template to rs2: {tpl:?}"
        );
    }
    // From here on each of these clients is remembered on rs2.
    let before = during;

    let restarted = Instant::now();
    let exe = seed.vrlb.display().to_string();
    let name = format!("rs1 {}", SERVERS[0]);
    let serve_log = seed.dir.join("rs1-restart.log");
    seed.lab.spawn(
        &rs1,
        &[
            &exe,
            "lab",
            "serve",
            "--listen",
            "0.0.0.0:80",
            "--name",
            &name,
        ],
        &serve_log,
    );
    let up_again = [0, 1].map(|n| {
        wait_health(
            &seed,
            n,
            SERVERS[0],
            true,
            restarted,
            bound.back + CHECK_MARGIN,
        )
        .unwrap_or_else(|| seed.fail(&format!("d{} did not mark rs1 up again", n + 1)))
    });
    eprintln!(
        "rs1 restarted: up on d1 after {:?}, on d2 after {:?} (bound {:?} + {CHECK_MARGIN:?})",
        up_again[0], up_again[1], bound.back
    );
    let st = seed.json("status", 0);
    let rs = server_status(&st, SERVERS[0]);
    assert_eq!(rs["healthy"], true, "{st}");
    assert_eq!(rs["weight"], 3, "{st}");
    assert_eq!(rs["checks"][0]["up"], true, "{st}");
    let fresh: Vec<String> = NEW_CLIENTS.map(|i| format!("192.0.2.{i}")).collect();
    for c in &fresh {
        run(&[
            "ip",
            "-n",
            &client,
            "addr",
            "add",
            &format!("{c}/24"),
            "dev",
            "eth0",
        ]);
    }
    // wlc with equal weights gives each new client to the server with
    // fewer connections (active x 256 + inactive), each worker counting
    // its own. rs2 leads by the connections it took while rs1 was down:
    // each worker sends its new clients to rs1 until its share of that
    // lead is used up, then alternates. The fanout splits clients by a
    // hash of their address, so the lead and the new clients each split
    // binomially between the two workers; with a lead of at least twice
    // the new clients' connections, even both splits 3 sigma off (31% of
    // the lead and 77% of the new clients on one worker) leave rs1 at
    // least 29 of 32: 7/8 is the bound.
    let st = seed.json("status", 0);
    let (l1, l2) = (load(&st, SERVERS[0]), load(&st, SERVERS[1]));
    let new_conns = (fresh.len() * (1 + REPEATS)) as u64;
    assert!(
        l2 >= l1 + 2 * new_conns,
        "rs2 leads rs1 by at least twice the new connections: {l1} and {l2}\n{st}"
    );
    let got = fetch(&client, &fresh, REPEATS);
    let returned = persistent("rs1 back", &got, &fresh);
    let n_back = split(&returned);
    eprintln!("rs1 back: new clients {n_back:?} (connections before: rs1 {l1}, rs2 {l2})");
    assert!(
        n_back[0] * 8 >= fresh.len() * 7,
        "wlc sends nearly every new client to the returning rs1: {n_back:?}"
    );

    // Before it takes over, d2 is reloaded (SIGHUP) with other weights,
    // 1 and 3: the change must reach its data plane's workers. (Its split
    // is not checked: it holds every synced template. d1's is, after its
    // restart.)
    let conf2 = seed.dir.join("d2.conf");
    let text2 = std::fs::read_to_string(&conf2).expect("d2.conf");
    assert_eq!(text2.matches("weight 3").count(), 2, "{text2}");
    std::fs::write(&conf2, text2.replacen("weight 3", "weight 1", 1)).expect("d2.conf");
    run(&["kill", "-HUP", &seed.pid(1).to_string()]);
    let reweighted = wait_until(Duration::from_secs(10), || {
        let st = seed.json("status", 1);
        let w = |i: usize| st["services"][0]["servers"][i]["weight"].as_u64();
        w(0) == Some(1) && w(1) == Some(3)
    });
    if reweighted.is_none() {
        seed.fail("d2 did not apply the new weights");
    }

    // Phase 2: the master dies (process killed, then its link: the host
    // is gone). The backup takes the VIP and serves every client, and
    // carries the long-lived connection on: sync gave it the entry.
    let synced_long = wait_until(Duration::from_secs(5), || {
        long_entry(&seed.json("conns", 1), long.local)
            .is_some_and(|e| e["server"] == SERVERS[1] && e["state"] == "ESTABLISHED")
    });
    if synced_long.is_none() {
        seed.fail(&format!(
            "d2 does not have the long-lived connection: {}",
            seed.json("conns", 1)
        ));
    }
    let killed = Instant::now();
    run(&["kill", "-9", &seed.pid(0).to_string()]);
    run(&["ip", "-n", &d1, "link", "set", "eth0", "down"]);
    let Some(took) = wait_until(FAILOVER_BOUND, || has_addr(&d2, VIP)) else {
        seed.fail("d2 did not take the VIP");
    };
    eprintln!("failover: VIP on d2 {took:?} after the kill");
    assert!(killed.elapsed() < FAILOVER_BOUND + Duration::from_secs(1));
    eprintln!("{:?}: failed over", start.elapsed());
    let answered = Instant::now();
    assert_eq!(
        long.get(LONG_ANSWER),
        Ok(1),
        "the long-lived connection through d2, after the failover"
    );
    eprintln!(
        "the long-lived connection answered through d2 {:?} after the failover",
        answered.elapsed()
    );
    assert!(
        long_entry(&seed.json("conns", 1), long.local).is_some(),
        "d2 lists the long-lived connection"
    );
    // Closed now (through d2): the restarted d1 must start empty below.
    drop(long);
    let got = fetch(&client, &clients, REPEATS);
    eprintln!("{:?}: fetched through d2", start.elapsed());
    let after = persistent("through d2", &got, &clients);
    let n2 = split(&after);
    let kept = before
        .iter()
        .filter(|(c, s)| after.get(*c) == Some(s))
        .count();
    eprintln!(
        "after failover: {n2:?}; {kept} of {} clients kept their server",
        clients.len()
    );
    let st2 = seed.json("status", 1);
    assert_eq!(st2["instances"][0]["state"], "MASTER", "{st2}");
    let conns2 = seed.json("conns", 1);
    let templates = conns2["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["template"] == true)
        .count();
    // With connection sync d2 had every template before the failover:
    // each persistent client reaches the same server.
    assert_eq!(
        kept,
        clients.len(),
        "with lvs_sync_daemon every client keeps its server"
    );
    assert!(templates >= clients.len(), "d2's templates: {conns2}");
    assert!(
        nft_dropped(&d2).unwrap_or(0) as usize >= total_conns,
        "nft drop counter on d2"
    );

    // Phase 3: d1 comes back, as after a reboot: its crashed run left the
    // VIP on eth0 and its nftables table. The new run clears both at
    // start (link still down), and once the link is up takes the VIP back
    // (priority 100, preempt) and forwards with a fresh table.
    let leftover = nft_dropped(&d1);
    assert!(
        leftover.is_some_and(|n| n as usize >= total_conns),
        "the crash left d1's table: {leftover:?}"
    );
    assert!(has_addr(&d1, VIP), "the crash left the VIP on d1");
    let file = |name: &str| seed.dir.join(name).display().to_string();
    let (conf, pid_file, vips, sock) = (
        file("d1.conf"),
        file("d1.pid"),
        file("d1.vips"),
        file("d1.sock"),
    );
    let restart_log = seed.dir.join("d1-restart.log");
    let exe = seed.vrlb.display().to_string();
    seed.lab.spawn(
        &d1,
        &[
            &exe,
            "run",
            "-f",
            &conf,
            "-p",
            &pid_file,
            "--state-file",
            &vips,
            "--control-socket",
            &sock,
            "--workers",
            "2",
            "--dataplane-iface",
            "eth0",
        ],
        &restart_log,
    );
    let started = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&restart_log).is_ok_and(|t| t.contains("vrlb started"))
    });
    if started.is_none() {
        seed.fail(&format!(
            "d1 did not restart: {}",
            std::fs::read_to_string(&restart_log).unwrap_or_default()
        ));
    }
    assert!(
        !has_addr(&d1, VIP),
        "the restart removed the VIP the crash left"
    );
    assert_eq!(
        nft_dropped(&d1),
        Some(0),
        "the restart replaced the table the crash left"
    );
    // With its link down the instance is in FAULT: that is why it takes
    // no VIP, not a slow election.
    let st = seed.json("status", 0);
    assert_eq!(st["instances"][0]["state"], "FAULT", "{st}");
    assert_eq!(st["instances"][0]["vips"], serde_json::json!([VIP]), "{st}");

    // Still without its link, d1 is reloaded (SIGHUP) with rs1 at weight
    // 1 and rs2 at 3.
    let conf1 = seed.dir.join("d1.conf");
    let text1 = std::fs::read_to_string(&conf1).expect("d1.conf");
    assert_eq!(text1.matches("weight 3").count(), 2, "{text1}");
    std::fs::write(&conf1, text1.replacen("weight 3", "weight 1", 1)).expect("d1.conf");
    run(&["kill", "-HUP", &seed.pid(0).to_string()]);
    // The configured weights: with its link down d1's checks fail, and
    // a server whose first check fails is down at once (not listed, so
    // no live weight), whenever its random warmup lets that check run.
    let reweighted = wait_until(Duration::from_secs(10), || {
        let st = seed.json("status", 0);
        server_status(&st, SERVERS[0])["configured_weight"] == 1
            && server_status(&st, SERVERS[1])["configured_weight"] == 3
    });
    if reweighted.is_none() {
        seed.fail("d1 did not apply the new weights");
    }
    let st = seed.json("status", 0);
    assert_eq!(
        st["instances"][0]["state"], "FAULT",
        "FAULT across the reload: {st}"
    );
    assert!(!has_addr(&d1, VIP), "d1 took the VIP in FAULT");

    run(&["ip", "-n", &d1, "link", "set", "eth0", "up"]);
    if wait_until(FAILOVER_BOUND, || has_addr(&d1, VIP) && !has_addr(&d2, VIP)).is_none() {
        seed.fail("d1 did not take the VIP back");
    }
    eprintln!("{:?}: d1 back", start.elapsed());
    // Its checks failed while the link was down: both servers must be up
    // again (one passing check each) before wlc can split the clients.
    let linked = Instant::now();
    for addr in SERVERS {
        if wait_health(&seed, 0, addr, true, linked, bound.back + CHECK_MARGIN).is_none() {
            seed.fail(&format!(
                "d1 did not mark {addr} up after its link came back"
            ));
        }
    }
    // Idle, it sleeps: its workers' rings were bound while the link was
    // down, and a socket error left pending would wake them for ever.
    let pid1 = seed.pid(0);
    let (cpu0, t0) = (cpu_seconds(pid1), Instant::now());
    std::thread::sleep(Duration::from_millis(1500));
    let busy = (cpu_seconds(pid1) - cpu0) / t0.elapsed().as_secs_f64();
    eprintln!("the restarted d1 at rest: {:.1}% of a CPU", busy * 100.0);
    assert!(
        busy <= IDLE_CPU,
        "the restarted d1 spins at rest: {:.0}% of a CPU",
        busy * 100.0
    );
    // A fresh table: no client has a template on d1, so wlc alone decides.
    let conns1 = seed.json("conns", 0);
    assert_eq!(
        conns1["entries"].as_array().map(Vec::len),
        Some(0),
        "d1 starts empty: {conns1}"
    );
    let got = fetch(&client, &clients, REPEATS);
    eprintln!("{:?}: fetched through d1 again", start.elapsed());
    let back = persistent("through d1 again", &got, &clients);
    let n3 = split(&back);
    eprintln!("after d1's return, weights 1 and 3: {n3:?}");
    // wlc with weights 1 and 3 from empty tables gives rs1 one client in
    // four (each client's four connections count): each worker hands rs1
    // n_k / 4 of its n_k clients, rounded either way, so the total is
    // within one per worker of n / 4, however the fanout splits them.
    let quarter = clients.len() / 4;
    assert!(
        n3[0].abs_diff(quarter) <= WORKERS && n3[0] + n3[1] == clients.len(),
        "wlc with weights 1 and 3 through d1: {n3:?} (expected {quarter} +- {WORKERS} on rs1)"
    );
    let st3 = seed.json("status", 0);
    assert_eq!(st3["instances"][0]["state"], "MASTER", "{st3}");
    assert_eq!(
        st3["dataplane"]["forwarding"]["flows_created"]
            .as_u64()
            .unwrap() as usize,
        total_conns,
        "{st3}"
    );

    // A director stopped with SIGTERM removes its table.
    run(&["kill", "-TERM", &seed.pid(1).to_string()]);
    let removed = wait_until(Duration::from_secs(10), || {
        !in_ns(&d2, &["nft", "list", "tables"]).contains("vrlb")
    });
    assert!(removed.is_some(), "d2 stopped and left its table");
    eprintln!("{:?}: d2 stopped", start.elapsed());

    // No director ever answered a client: nothing from a director's MAC
    // in the capture (it holds the VIP's frames, ICMP and RSTs).
    std::thread::sleep(Duration::from_millis(300));
    let cap = std::fs::read_to_string(&capture).unwrap_or_default();
    assert!(
        cap.lines()
            .filter(|l| l.contains(&format!("{VIP}.80 >")))
            .count()
            >= 3 * total_conns,
        "the capture saw the real servers' answers:\n{cap}"
    );
    for m in &macs {
        let bad = frames_from(&cap, m);
        assert!(
            bad.is_empty(),
            "a director ({m}) answered a client:\n{}",
            bad.join("\n")
        );
    }

    // Down: nothing left behind.
    eprintln!("{:?}: taking the lab down", start.elapsed());
    let down = seed.lab_cmd("down");
    eprintln!("{:?}: down", start.elapsed());
    seed.up = false;
    assert!(
        down.status.success(),
        "vrlb lab down: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    let namespaces = String::from_utf8(run(&["ip", "netns", "list"]).stdout).unwrap();
    assert!(
        !namespaces.contains(&format!("{}-", seed.prefix)),
        "namespaces left: {namespaces}"
    );
    let dir_text = seed.dir.display().to_string();
    let left = processes_mentioning(&dir_text);
    assert!(left.is_empty(), "processes left: {left:?}");
    assert!(!Path::new(&seed.dir).exists(), "lab files left");
    let host = String::from_utf8(run(&["ip", "-o", "addr", "show"]).stdout).unwrap();
    assert!(!host.contains(VIP), "VIP on the host: {host}");
    assert_eq!(
        host_has_vrlb_table(),
        host_table_before,
        "nft table on the host"
    );
    assert!(start.elapsed() < BUDGET, "took {:?}", start.elapsed());
}
