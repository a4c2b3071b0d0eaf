//! Connection sync between two directors (keepalived's `lvs_sync_daemon`)
//! with the userspace DR data plane: six clients, two directors running
//! `vrlb run` (two data-plane workers each, `lvs_sync_daemon` on their
//! segment interface following VI_1), two real servers with the VIP on
//! `lo` (arp_ignore=1, arp_announce=2) serving a TCP echo that first
//! says its name. One segment (a bridge), documentation addresses only:
//!
//! ```text
//!   c0..c5 192.0.2.100-105 ─┐
//!   d0     192.0.2.1       ─┤  MASTER (priority 150)
//!   d1     192.0.2.2       ─┼─ bridge   VIP 192.0.2.240:7000, wlc, DR,
//!   rs0    192.0.2.21      ─┤           persistence_timeout 60
//!   rs1    192.0.2.22      ─┘
//! ```
//!
//! Each client opens one TCP connection through the master and echoes a
//! line (the clients cover both workers' shares); the backup shows every
//! connection (`vrlb conns`), learnt by sync alone; the master is killed
//! with SIGKILL and its link taken down (the host is gone); once the
//! backup holds the VIP every old connection still echoes (without sync,
//! or with an entry in the wrong worker's shard, the backup drops their
//! packets: wlc opens connections only on a SYN), and a new connection
//! from each client reaches its old real server (the synced persistence
//! templates).
//!
//! The echo servers and the client are this test binary run again as a
//! helper (the ignored test `helper`) inside the namespaces.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use vrlb_tests::netns::{Lab, TempDir, binary, has_addr, in_ns, run, wait_until};

const VIP: &str = "192.0.2.240";
const PORT: u16 = 7000;
const DIRECTORS: [&str; 2] = ["192.0.2.1", "192.0.2.2"];
const SERVERS: [&str; 2] = ["192.0.2.21", "192.0.2.22"];
/// Client addresses, each in its own namespace: enough that both of a
/// director's two workers own some (checked below).
const CLIENTS: [&str; 6] = [
    "192.0.2.100",
    "192.0.2.101",
    "192.0.2.102",
    "192.0.2.103",
    "192.0.2.104",
    "192.0.2.105",
];
/// Data-plane workers per director.
const WORKERS: usize = 2;
/// What the helper process is told to be.
const HELPER_ENV: &str = "VRLB_DR_SYNC_HELPER";
/// The lab, from the first namespace to the last check, must take no
/// longer than this (typically about 35 s).
const BUDGET: Duration = Duration::from_secs(120);
/// Master_Down_Interval (3 x 1 s + skew) and slack for a loaded machine.
const FAILOVER_BOUND: Duration = Duration::from_secs(10);
/// The sync flush interval is 0.1 s: the backup has the connections well
/// within this.
const SYNC_BOUND: Duration = Duration::from_secs(5);
/// TCP retransmits back off (0.2, 0.4, ... 6.4 s): after a failover of
/// about 4 s the next retransmission may come some 10 s later.
const ECHO_AFTER_FAILOVER: Duration = Duration::from_secs(25);
const ECHO: Duration = Duration::from_secs(5);

/// The helper: an echo server (`server:NAME`) or an interactive client
/// (`client`). Run only by `a_long_lived_connection_survives_...`.
#[test]
#[ignore = "a helper process the dr_sync test starts inside its namespaces"]
fn helper() {
    let Ok(what) = std::env::var(HELPER_ENV) else {
        return;
    };
    match what.split_once(':') {
        Some(("server", name)) => echo_server(name),
        _ if what == "client" => client(),
        _ => panic!("{HELPER_ENV}={what}: not server:NAME or client"),
    }
}

/// Accepts forever; each connection gets `NAME\n`, then its lines back.
fn echo_server(name: &str) {
    let listener = TcpListener::bind(("0.0.0.0", PORT)).expect("bind");
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let name = name.to_string();
        std::thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(300)));
            if writeln!(stream, "{name}").is_err() {
                return;
            }
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if stream.write_all(line.as_bytes()).is_err() {
                    return;
                }
                line.clear();
            }
        });
    }
}

/// Reads commands on stdin: `open` connects to the VIP (prints `HELLO
/// SERVER LOCAL_PORT`), `send N TEXT` writes TEXT on connection N and
/// prints `ECHO N TEXT` when it comes back (or `FAIL N why`).
fn client() {
    let vip: SocketAddr = format!("{VIP}:{PORT}").parse().unwrap();
    let mut conns: Vec<(TcpStream, BufReader<TcpStream>)> = Vec::new();
    let stdin = std::io::stdin();
    for cmd in stdin.lock().lines() {
        let Ok(cmd) = cmd else { break };
        let out = match cmd.split_once(' ').unwrap_or((cmd.as_str(), "")) {
            ("open", _) => match TcpStream::connect_timeout(&vip, ECHO) {
                Ok(s) => {
                    let _ = s.set_read_timeout(Some(ECHO_AFTER_FAILOVER));
                    let port = s.local_addr().map(|a| a.port()).unwrap_or(0);
                    let mut r = BufReader::new(s.try_clone().expect("clone"));
                    let mut name = String::new();
                    match r.read_line(&mut name) {
                        Ok(n) if n > 0 => {
                            conns.push((s, r));
                            format!("HELLO {} {port}", name.trim())
                        }
                        Ok(_) => "FAIL open closed".into(),
                        Err(e) => format!("FAIL open {e}"),
                    }
                }
                Err(e) => format!("FAIL open {e}"),
            },
            ("send", rest) => {
                let (n, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let n: usize = n.parse().unwrap_or(usize::MAX);
                match conns.get_mut(n) {
                    None => format!("FAIL {n} no such connection"),
                    Some((s, r)) => {
                        let mut back = String::new();
                        match writeln!(s, "{text}").and_then(|_| r.read_line(&mut back)) {
                            Ok(k) if k > 0 => format!("ECHO {n} {}", back.trim()),
                            Ok(_) => format!("FAIL {n} closed"),
                            Err(e) => format!("FAIL {n} {e}"),
                        }
                    }
                }
            }
            _ => format!("FAIL unknown command {cmd}"),
        };
        println!("{out}");
        let _ = std::io::stdout().flush();
    }
    for (s, _) in conns {
        let _ = s.shutdown(Shutdown::Both);
    }
}

/// The client helper, driven through its stdin and stdout.
struct ClientProc {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl ClientProc {
    fn start(ns: &str) -> ClientProc {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(exe)
            .args(["--ignored", "--exact", "helper", "--nocapture"])
            .env(HELPER_ENV, "client")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("client helper");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The test harness prints its own lines too.
                if line.starts_with("HELLO ")
                    || line.starts_with("ECHO ")
                    || line.starts_with("FAIL ")
                {
                    let _ = tx.send(line);
                }
            }
        });
        ClientProc {
            child,
            stdin,
            lines,
        }
    }

    fn ask(&mut self, cmd: &str, timeout: Duration) -> String {
        writeln!(self.stdin, "{cmd}").expect("client helper stdin");
        self.stdin.flush().unwrap();
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|_| format!("FAIL no answer to {cmd:?} within {timeout:?}"))
    }

    /// Opens a connection: (server name, local port).
    fn open(&mut self) -> Result<(String, u16), String> {
        let a = self.ask("open", ECHO * 2);
        let mut w = a.split_whitespace();
        match (w.next(), w.next(), w.next().and_then(|p| p.parse().ok())) {
            (Some("HELLO"), Some(name), Some(port)) => Ok((name.to_string(), port)),
            _ => Err(a),
        }
    }

    /// Echoes `text` on connection `n`.
    fn echo(&mut self, n: usize, text: &str, timeout: Duration) -> Result<(), String> {
        let a = self.ask(&format!("send {n} {text}"), timeout + ECHO);
        if a == format!("ECHO {n} {text}") {
            Ok(())
        } else {
            Err(a)
        }
    }
}

impl Drop for ClientProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// keepalived.conf of director `n`; `sync` follows `lvs_sync_daemon
/// IFACE VI_1`.
fn director_conf(n: usize, iface: &str, sync: &str) -> String {
    let priority = [150, 100][n];
    let mut s = format!(
        "global_defs {{
   router_id d{n}
   lvs_sync_daemon {iface} VI_1 {sync}
}}

vrrp_instance VI_1 {{
    state BACKUP
    interface {iface}
    virtual_router_id 51
    priority {priority}
    advert_int 1
    authentication {{
        auth_type PASS
        auth_pass 1111
    }}
    virtual_ipaddress {{
        {VIP}/24
    }}
}}

virtual_server {VIP} {PORT} {{
    lb_algo wlc
    lb_kind DR
    persistence_timeout 60
    protocol TCP
"
    );
    for rs in SERVERS {
        s.push_str(&format!(
            "    real_server {rs} {PORT} {{\n        weight 1\n    }}\n"
        ));
    }
    s.push_str("}\n");
    s
}

/// `vrlb conns` of a director.
fn conns(vrlb: &Path, ns: &str, sock: &Path) -> String {
    in_ns(
        ns,
        &[
            vrlb.to_str().unwrap(),
            "conns",
            "--control-socket",
            sock.to_str().unwrap(),
        ],
    )
}

/// The worker the fanout gives an IPv4 client (no persistence granularity
/// below /32 here): the data plane's classic BPF fanout program, a
/// Fibonacci hash of the address, modulo the workers
/// (`vrlb_linux::dataplane::filter::fanout`).
fn worker_of(client: &str) -> usize {
    let a: std::net::Ipv4Addr = client.parse().unwrap();
    (u32::from(a).wrapping_mul(0x9e37_79b1) >> 16) as usize % WORKERS
}

/// `vrlb status` of a director.
fn status(vrlb: &Path, ns: &str, sock: &Path) -> String {
    in_ns(
        ns,
        &[
            vrlb.to_str().unwrap(),
            "status",
            "--control-socket",
            sock.to_str().unwrap(),
        ],
    )
}

/// The number after `word ` in `text` (`sent 12 entries`).
fn count_after(text: &str, word: &str) -> Option<u64> {
    let at = text.find(&format!("{word} "))? + word.len() + 1;
    text[at..].split_whitespace().next()?.parse().ok()
}

/// Whether `conns` lists the client's connection from `port` to `server`
/// in state ESTABLISHED.
fn lists(conns: &str, client: &str, port: u16, server: &str) -> bool {
    let client = format!("{client}:{port}");
    let server = format!("{server}:{PORT}");
    conns.lines().any(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.contains(&"ESTABLISHED") && w.contains(&client.as_str()) && w.contains(&server.as_str())
    })
}

fn logs(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| {
            format!(
                "==> {} <==\n{}",
                f.display(),
                std::fs::read_to_string(f).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fails the test with the daemons' and servers' logs.
fn fail(files: &[PathBuf], what: &str) -> ! {
    panic!("{what}\n{}", logs(files))
}

/// Over IPVS's sync group and port (224.0.0.81:8848), sync id 7.
#[test]
fn a_long_lived_connection_survives_killing_the_master() {
    failover_keeps_connections("id 7");
}

/// Over an IPv6 link-scope group on another port (keepalived's `group`
/// and `port`), the services still IPv4.
#[test]
fn sync_over_an_ipv6_group_works_the_same() {
    failover_keeps_connections("id 9 group ff02::1:81 port 18848 ttl 1 maxlen 700");
}

/// The scenario of the module doc, with `sync` as the options of
/// `lvs_sync_daemon`.
fn failover_keeps_connections(sync: &str) {
    let Some(mut lab) = Lab::new(&["nft", "sysctl"]) else {
        return;
    };
    let dir = TempDir::new(&lab.tag);
    let vrlb = binary("vrlb");
    // Timed from here: the build above is not the lab's.
    let started = Instant::now();
    let exe = std::env::current_exe().unwrap();

    // The segment.
    let sw = lab.netns("sw");
    let br = lab.name("br");
    lab.bridge(&sw, &br);
    let node = |lab: &mut Lab, suffix: &str, addr: &str| -> (String, String) {
        let ns = lab.netns(suffix);
        let inner = lab.name(suffix);
        let outer = lab.name(&format!("p{suffix}"));
        lab.veth(&ns, &inner, &sw, &outer);
        run(&["ip", "-n", &sw, "link", "set", &outer, "master", &br]);
        run(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            &inner,
        ]);
        (ns, inner)
    };
    let client_ns: Vec<String> = CLIENTS
        .iter()
        .enumerate()
        .map(|(i, addr)| node(&mut lab, &format!("c{i}"), addr).0)
        .collect();
    let d: Vec<(String, String)> = (0..2)
        .map(|n| node(&mut lab, &format!("d{n}"), DIRECTORS[n]))
        .collect();
    let rs: Vec<(String, String)> = (0..2)
        .map(|n| node(&mut lab, &format!("r{n}"), SERVERS[n]))
        .collect();

    // Real servers: the VIP on lo, never answered or announced by ARP
    // (the seed's lvs_server.sh), and the echo service.
    for (n, (ns, _)) in rs.iter().enumerate() {
        run(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{VIP}/32"),
            "dev",
            "lo",
        ]);
        for key in [
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.all.arp_announce=2",
            "net.ipv4.conf.lo.arp_ignore=1",
            "net.ipv4.conf.lo.arp_announce=2",
        ] {
            run(&["ip", "netns", "exec", ns, "sysctl", "-qw", key]);
        }
        let env = format!("{HELPER_ENV}=server:rs{n}");
        lab.spawn(
            ns,
            &[
                "env",
                &env,
                exe.to_str().unwrap(),
                "--ignored",
                "--exact",
                "helper",
                "--nocapture",
            ],
            &dir.path(&format!("rs{n}.log")),
        );
    }

    // Directors.
    let mut pids = Vec::new();
    let mut socks = Vec::new();
    let mut log_files = Vec::new();
    for (n, (ns, iface)) in d.iter().enumerate() {
        let conf = dir.path(&format!("d{n}.conf"));
        std::fs::write(&conf, director_conf(n, iface, sync)).unwrap();
        let sock = dir.path(&format!("d{n}.sock"));
        let log = dir.path(&format!("d{n}.log"));
        let pid = lab.spawn(
            ns,
            &[
                vrlb.to_str().unwrap(),
                "run",
                "-f",
                conf.to_str().unwrap(),
                "-p",
                dir.path(&format!("d{n}.pid")).to_str().unwrap(),
                "--state-file",
                dir.path(&format!("d{n}.vips")).to_str().unwrap(),
                "--control-socket",
                sock.to_str().unwrap(),
                "--workers",
                &WORKERS.to_string(),
                "--dataplane-iface",
                iface,
                "--log-level",
                "debug",
            ],
            &log,
        );
        pids.push(pid);
        socks.push(sock);
        log_files.push(log);
    }
    for n in 0..2 {
        log_files.push(dir.path(&format!("rs{n}.log")));
    }

    if wait_until(Duration::from_secs(20), || has_addr(&d[0].0, VIP)).is_none() {
        fail(&log_files, "director 0 did not take the VIP");
    }
    // The servers listen before the client's first try.
    std::thread::sleep(Duration::from_millis(300));

    // Both workers of each director own some of the clients, so the
    // backup must put each synced entry in the right shard.
    let owners: std::collections::HashSet<usize> = CLIENTS.iter().map(|c| worker_of(c)).collect();
    assert_eq!(
        owners.len(),
        WORKERS,
        "the clients do not cover every worker"
    );

    // One long-lived connection per client through the master.
    let mut clients: Vec<ClientProc> = client_ns.iter().map(|ns| ClientProc::start(ns)).collect();
    // (server name, server address, local port) of each client's connection.
    let mut first = Vec::new();
    for (i, client) in clients.iter_mut().enumerate() {
        let mut opened = Err(String::new());
        // The director resolves the real servers' MACs as it starts.
        wait_until(Duration::from_secs(15), || {
            opened = client.open();
            opened.is_ok()
        });
        let (server, port) =
            opened.unwrap_or_else(|e| fail(&log_files, &format!("client {i}: no connection: {e}")));
        let addr = SERVERS[if server == "rs0" { 0 } else { 1 }];
        client.echo(0, "before-failover", ECHO).unwrap_or_else(|e| {
            fail(
                &log_files,
                &format!("client {i}: echo before the failover: {e}"),
            )
        });
        first.push((server, addr, port));
    }
    let on_master = conns(&vrlb, &d[0].0, &socks[0]);
    for (i, (_, addr, port)) in first.iter().enumerate() {
        assert!(
            lists(&on_master, CLIENTS[i], *port, addr),
            "the master tracks client {i}'s connection:\n{on_master}"
        );
    }

    // The backup learns them by sync (not by traffic: it forwards nothing).
    let synced = |n: usize| {
        let c = conns(&vrlb, &d[1].0, &socks[1]);
        first[..n]
            .iter()
            .enumerate()
            .all(|(i, (_, addr, port))| lists(&c, CLIENTS[i], *port, addr))
    };
    let Some(took) = wait_until(SYNC_BOUND, || synced(CLIENTS.len())) else {
        fail(
            &log_files,
            &format!(
                "the backup never showed every connection {first:?}:\n{}",
                conns(&vrlb, &d[1].0, &socks[1])
            ),
        );
    };
    eprintln!("the backup listed every connection {took:?} after the last echo");
    // vrlb status shows both sync daemons as ipvsadm names them, with
    // their counts: every connection and template went over.
    let st0 = status(&vrlb, &d[0].0, &socks[0]);
    let st1 = status(&vrlb, &d[1].0, &socks[1]);
    let (if0, if1) = (&d[0].1, &d[1].1);
    assert!(
        st0.contains(&format!("master sync daemon (mcast={if0}, syncid=")),
        "{st0}"
    );
    assert!(
        st1.contains(&format!("backup sync daemon (mcast={if1}, syncid=")),
        "{st1}"
    );
    let entries = 2 * CLIENTS.len() as u64;
    assert!(
        count_after(&st0, "sent").is_some_and(|n| n >= entries),
        "{st0}"
    );
    assert!(
        count_after(&st1, "applied").is_some_and(|n| n >= entries),
        "{st1}"
    );

    // The master dies: SIGKILL, and its link goes (the host is gone).
    lab.signal(pids[0], "KILL");
    run(&["ip", "-n", &d[0].0, "link", "set", &d[0].1, "down"]);
    let killed = Instant::now();
    if wait_until(FAILOVER_BOUND, || has_addr(&d[1].0, VIP)).is_none() {
        fail(&log_files, "the backup did not take the VIP");
    }
    eprintln!(
        "backup holds the VIP {:?} after the kill ({:?} into the test)",
        killed.elapsed(),
        started.elapsed()
    );

    // Every old connection still echoes, through the new master.
    for (i, client) in clients.iter_mut().enumerate() {
        client
            .echo(0, "after-failover", ECHO_AFTER_FAILOVER)
            .unwrap_or_else(|e| {
                fail(
                    &log_files,
                    &format!("client {i}: the connection broke in the failover: {e}"),
                )
            });
        client.echo(0, "still-there", ECHO).unwrap_or_else(|e| {
            fail(
                &log_files,
                &format!("client {i}: second echo after the failover: {e}"),
            )
        });
    }
    eprintln!(
        "every old connection echoed {:?} after the kill",
        killed.elapsed()
    );
    if !synced(CLIENTS.len()) {
        fail(&log_files, "the new master lost track of an old connection");
    }
    let st1 = status(&vrlb, &d[1].0, &socks[1]);
    assert!(st1.contains("master sync daemon"), "{st1}");

    // A new connection from each client: the same real server (the
    // persistence templates came over too).
    for (i, client) in clients.iter_mut().enumerate() {
        let (again, _) = client.open().unwrap_or_else(|e| {
            fail(
                &log_files,
                &format!("client {i}: new connection after the failover: {e}"),
            )
        });
        assert_eq!(again, first[i].0, "persistent client {i} changed servers");
        client.echo(1, "new-connection", ECHO).unwrap_or_else(|e| {
            fail(
                &log_files,
                &format!("client {i}: echo on the new connection: {e}"),
            )
        });
    }

    assert!(started.elapsed() < BUDGET, "took {:?}", started.elapsed());
    drop(clients);
}
