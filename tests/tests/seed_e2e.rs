//! The seed scenario end to end, on the topology `vrlb lab up` builds
//! (a client, two directors running `vrlb run` with the seed's
//! keepalived.conf and the userspace DR data plane, two real servers with
//! the VIP on `lo`, arp_ignore=1, arp_announce=2, serving HTTP):
//!
//! - many client addresses reach both real servers in the proportion wlc
//!   and the seed's weights (3 and 3) give;
//! - each client keeps its real server (persistence_timeout 60);
//! - no director answers a client itself (no frame from the VIP and no
//!   ICMP with a director's MAC as source, seen by a capture at the
//!   client; the directors' nftables drop rule counted what it stopped);
//! - `vrlb status` and `vrlb conns` (text and JSON) show the services,
//!   weights, counts, every client's persistence template, the data
//!   plane's counters;
//! - killing the master director (SIGKILL, then its link down: the host
//!   is gone) moves the VIP to the backup, which serves every client, and
//!   each client again keeps one real server there;
//! - `vrlb lab down` leaves no namespace, process, address, rule or file.
//!
//! Not covered here, because they need parts built on other branches:
//! a stopped HTTP listener marked down by its `TCP_CHECK` within the
//! checker's bound and back after it answers (real probes, branch
//! `checks`; the lab runs without checkers until then, see
//! `vrlb_linux::lab::config::WITH_CHECKS`), and a long-lived connection
//! surviving the failover, as well as a persistent client reaching the
//! *same* server on the new master (connection and template sync, branch
//! `dpsync`). The failover phase prints how many clients kept their
//! server, so the difference sync makes is visible.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use vrlb_tests::netns::{Lab, TempDir, binary, has_addr, in_ns, run, wait_until};

const VIP: &str = "192.0.2.240";
const SERVERS: [&str; 2] = ["192.0.2.212", "192.0.2.213"];
/// Client addresses: 64 of them, none of the lab's own.
const CLIENTS: std::ops::RangeInclusive<u8> = 101..=164;
/// Connections per client after the first (persistence).
const REPEATS: usize = 3;
/// The whole test must end within this.
const BUDGET: Duration = Duration::from_secs(180);
/// Failover bound: Master_Down_Interval (3 x advert_int 1 s + skew
/// (256 - 90) / 256 s) and slack for a loaded machine.
const FAILOVER_BOUND: Duration = Duration::from_secs(8);

/// The lab `vrlb lab up` built, taken down on drop (then the harness
/// kills anything left in its namespaces and deletes them).
struct Seed {
    lab: Lab,
    _files: TempDir,
    vrlb: PathBuf,
    prefix: String,
    dir: PathBuf,
    up: bool,
}

impl Seed {
    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// `vrlb lab ACTION --prefix P --dir D`.
    fn lab_cmd(&self, action: &str) -> std::process::Output {
        Command::new(&self.vrlb)
            .args(["lab", action, "--prefix", &self.prefix, "--dir"])
            .arg(&self.dir)
            .output()
            .expect("vrlb lab")
    }

    /// `vrlb status|conns [--json]` against director `n` (0 or 1).
    fn ask(&self, what: &str, n: usize, json: bool) -> String {
        let sock = self.dir.join(format!("d{}.sock", n + 1));
        let mut c = Command::new(&self.vrlb);
        c.arg(what).arg("--control-socket").arg(&sock);
        if json {
            c.arg("--json");
        }
        let out = c.output().expect("vrlb status");
        assert!(
            out.status.success(),
            "vrlb {what} on d{}: {}",
            n + 1,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    fn json(&self, what: &str, n: usize) -> Value {
        serde_json::from_str(&self.ask(what, n, true)).expect("JSON")
    }

    fn pid(&self, n: usize) -> u32 {
        let path = self.dir.join(format!("d{}.pid", n + 1));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .parse()
            .expect("pid")
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Fails with the directors' logs.
    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n--- d1.log\n{}\n--- d2.log\n{}",
            self.log("d1.log"),
            self.log("d2.log")
        );
    }
}

impl Drop for Seed {
    fn drop(&mut self) {
        if self.up {
            let _ = self.lab_cmd("down");
        }
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

#[test]
fn seed_scenario_wlc_persistence_no_director_answers_status_failover_cleanup() {
    let Some(lab) = Lab::new(&["curl", "nft", "tcpdump", "sysctl"]) else {
        return;
    };
    let start = Instant::now();
    let files = TempDir::new("seed");
    let vrlb = binary("vrlb");
    let prefix = lab.tag.clone();
    let dir = files.path("lab");
    let host_table_before = host_has_vrlb_table();
    let mut seed = Seed {
        lab,
        _files: files,
        vrlb,
        prefix,
        dir,
        up: true,
    };
    for role in ["client", "d1", "d2", "rs1", "rs2", "sw"] {
        let ns = seed.ns(role);
        seed.lab.adopt_netns(&ns);
    }

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

    // Phase 2: the master dies (process killed, then its link: the host
    // is gone). The backup takes the VIP and serves every client.
    let killed = Instant::now();
    run(&["kill", "-9", &seed.pid(0).to_string()]);
    run(&["ip", "-n", &d1, "link", "set", "eth0", "down"]);
    let Some(took) = wait_until(FAILOVER_BOUND, || has_addr(&d2, VIP)) else {
        seed.fail("d2 did not take the VIP");
    };
    eprintln!("failover: VIP on d2 {took:?} after the kill");
    assert!(killed.elapsed() < FAILOVER_BOUND + Duration::from_secs(1));
    let got = fetch(&client, &clients, REPEATS);
    let after = persistent("through d2", &got, &clients);
    let n2 = split(&after);
    let kept = before
        .iter()
        .filter(|(c, s)| after.get(*c) == Some(s))
        .count();
    eprintln!(
        "after failover: {n2:?}; {kept} of {} clients kept their server (without connection sync, by chance)",
        clients.len()
    );
    assert!(
        n2[0] > 0 && n2[1] > 0,
        "both servers reached through d2: {n2:?}"
    );
    let st2 = seed.json("status", 1);
    assert_eq!(st2["instances"][0]["state"], "MASTER", "{st2}");
    let fwd2 = &st2["dataplane"]["forwarding"];
    assert_eq!(
        fwd2["templates_created"].as_u64().unwrap() as usize,
        clients.len(),
        "{fwd2}"
    );
    let conns2 = seed.json("conns", 1);
    let templates = conns2["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["template"] == true)
        .count();
    assert_eq!(templates, clients.len(), "d2's templates: {conns2}");
    assert!(
        nft_dropped(&d2).unwrap_or(0) as usize >= total_conns,
        "nft drop counter on d2"
    );

    // No director ever answered a client: nothing from a director's MAC
    // in the capture (it holds the VIP's frames, ICMP and RSTs).
    std::thread::sleep(Duration::from_millis(300));
    let cap = std::fs::read_to_string(&capture).unwrap_or_default();
    assert!(
        cap.lines()
            .filter(|l| l.contains(&format!("{VIP}.80 >")))
            .count()
            >= 2 * total_conns,
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
    let down = seed.lab_cmd("down");
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
