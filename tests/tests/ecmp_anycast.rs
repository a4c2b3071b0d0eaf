//! Active-active directors behind ECMP, end to end (docs/anycast.md, issue
//! 10): real TCP through a BIRD router with layer-4 multipath hashing to
//! three directors, each running `vrlb run` (the shipped
//! `examples/anycast/keepalived.conf`: mh with mh-port, DR, `anycast`) and
//! BIRD (the shipped configs), forwarding to three real servers.
//!
//! Topology (documentation addresses only):
//!
//! ```text
//! client 203.0.113.2, .10-.49 --- 203.0.113.1 router 198.51.100.1 --+-- bridge
//!   directors 198.51.100.11-13 (VIP on vrlb-anycast, BIRD)           |
//!   real servers 198.51.100.21-23 (VIP on lo, arp_ignore/announce)  -+
//! ```
//!
//! The real servers are threads of this test in the servers' namespaces
//! (a line in, `<server name> <line>` back), so a reply names the server a
//! flow reached. Which director carried a flow is read from the
//! directors' connection tables (`vrlb conns --json`) and must be the one
//! the router's kernel picks for it (`ip route get ... iif ... sport ...
//! dport`, the multipath hash its forwarding uses); the directors'
//! forwarding and mid-flow adoption counters come from `vrlb status
//! --json`.
//!
//! What each test shows (issue 10's "must show"):
//! - `ecmp_spreads_...`: flows from 40 client addresses spread over all
//!   three directors and servers; the same client address and port
//!   reaches the same server through each director (the router pinned to
//!   one at a time); a director crashing (link silent, kill -9) has its
//!   route withdrawn by the BGP hold time while at least 95% of 160
//!   long-lived connections, its own included, keep working (mh mid-flow
//!   adoption by the others) and new connections flow; when it returns,
//!   its flows come back to it, still working; then another director's
//!   vrlb and BIRD are killed (kill -9 alone, machine up), with the same
//!   bounds.
//! - `a_stopped_real_server_...`: a real server's listener closes; every
//!   director's TCP_CHECK marks it down and no director sends it a new
//!   flow, while flows of the live servers keep their server.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use vrlb_tests::netns::{Lab, TempDir, binary, in_ns, run, wait_until};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 240);
const PORT: u16 = 80;
/// The router's interface towards the client.
const ROUTER_CLIENT_IF: &str = "eth1";
/// Client source addresses: 203.0.113.10 and up.
const CLIENT_BASE: u8 = 10;
const CLIENTS: u8 = 40;
/// How long one connection attempt may take (a SYN lost while a director
/// learns a server's MAC is sent again after 1 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/anycast")
        .join(name)
}

fn director_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 11 + i as u8)
}

fn server_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 21 + i as u8)
}

/// The address of real server `s1`, `s2`, `s3`.
fn server_addr_of(name: &str) -> Ipv4Addr {
    let n: usize = name[1..].parse().expect("a server name");
    server_addr(n - 1)
}

fn client_addr(k: u8) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, CLIENT_BASE + k)
}

/// Runs `f` on a thread inside network namespace `ns` (sockets made there
/// stay there, and may be used from any thread afterwards).
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(ns);
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Moves the calling thread into `ns`.
fn enter(ns: &str) {
    let file = std::fs::File::open(format!("/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("namespace {ns}: {e}"));
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {ns}: {e}"));
}

/// A real server: a TCP listener on port 80 (the VIP is on its `lo`) that
/// answers each line with `<name> <line>`.
struct RealServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RealServer {
    fn start(ns: &str, name: &str) -> RealServer {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (ns, name, flag) = (ns.to_string(), name.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            enter(&ns);
            let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, PORT)).expect("bind :80");
            listener.set_nonblocking(true).expect("nonblocking");
            ready_tx.send(()).expect("test alive");
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let name = name.clone();
                        std::thread::spawn(move || serve(stream, &name));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("{name}: accept: {e}"),
                }
            }
            // The listener closes here: new SYNs get a RST, established
            // connections carry on.
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("real server listening");
        RealServer {
            stop,
            thread: Some(thread),
        }
    }

    /// Closes the listener (the server "stops"; its process would be gone).
    fn stop_listening(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        self.stop_listening();
    }
}

fn serve(stream: TcpStream, name: &str) {
    let _ = stream.set_nonblocking(false);
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = io::BufReader::new(stream);
    let mut line = String::new();
    while io::BufRead::read_line(&mut reader, &mut line).is_ok_and(|n| n > 0) {
        if writeln!(out, "{name} {}", line.trim_end()).is_err() {
            return;
        }
        line.clear();
    }
}

/// A client connection to VIP:80 and the real server that answered it.
struct Conn {
    stream: TcpStream,
    local: SocketAddrV4,
    server: String,
}

impl Conn {
    /// Connects from `src:port` (port 0: any) and says hello; call inside
    /// the client's namespace.
    fn open(src: Ipv4Addr, port: u16) -> io::Result<Conn> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&SocketAddr::from((src, port)).into())?;
        socket.connect_timeout(&SocketAddr::from((VIP, PORT)).into(), CONNECT_TIMEOUT)?;
        let stream: TcpStream = socket.into();
        let SocketAddr::V4(local) = stream.local_addr()? else {
            unreachable!("an IPv4 socket");
        };
        let mut conn = Conn {
            stream,
            local,
            server: String::new(),
        };
        conn.send("hello")?;
        let reply = conn.recv(Instant::now() + CONNECT_TIMEOUT)?;
        conn.server = reply.split(' ').next().unwrap_or_default().to_string();
        Ok(conn)
    }

    fn send(&mut self, msg: &str) -> io::Result<()> {
        self.stream.write_all(format!("{msg}\n").as_bytes())
    }

    /// One reply line, by `deadline`.
    fn recv(&mut self, deadline: Instant) -> io::Result<String> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut byte)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                _ if byte[0] == b'\n' => break,
                _ => line.push(byte[0]),
            }
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// Whether `msg` comes back from the same server by `deadline` (after
    /// [`Conn::send`]).
    fn echoed(&mut self, msg: &str, deadline: Instant) -> bool {
        self.recv(deadline)
            .is_ok_and(|r| r == format!("{} {msg}", self.server))
    }

    /// Closes with a RST (no TIME_WAIT anywhere: the same source port can
    /// connect again at once).
    fn reset(self) {
        let socket = Socket::from(self.stream);
        let _ = socket.set_linger(Some(Duration::ZERO));
    }
}

/// Resets every connection, and lets the RSTs pass the directors before
/// their counters are read again.
fn reset_all(conns: Vec<Conn>) {
    conns.into_iter().for_each(Conn::reset);
    std::thread::sleep(Duration::from_millis(200));
}

/// A director's `vrlb status` counters this test reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    /// Frames forwarded to a real server.
    forwarded: u64,
    /// Mid-flow packets of unknown flows scheduled by mh.
    adopted: u64,
}

struct Director {
    ns: String,
    vrlb: Option<u32>,
    bird: Option<u32>,
    conf: PathBuf,
    bird_conf: PathBuf,
    runs: u32,
}

/// The whole lab. Fields drop in order: servers stop, then the lab
/// removes namespaces and processes.
struct Ecmp {
    servers: Vec<RealServer>,
    directors: Vec<Director>,
    router: String,
    client: String,
    vrlb: PathBuf,
    dir: TempDir,
    lab: Lab,
}

fn sysctl(ns: &str, settings: &[&str]) {
    let mut args = vec!["ip", "netns", "exec", ns, "sysctl", "-qw"];
    args.extend_from_slice(settings);
    run(&args);
}

impl Ecmp {
    /// Builds everything and waits until the router has an ECMP route over
    /// the three directors and each of them forwards.
    fn build(tag: &str) -> Option<Ecmp> {
        let mut lab = Lab::new(&["bird", "nft"])?;
        let started = Instant::now();
        let dir = TempDir::new(tag);
        let vrlb = binary("vrlb");
        let seg = lab.netns("s");
        let router = lab.netns("r");
        let client = lab.netns("c");
        let br = lab.name("br");
        lab.bridge(&seg, &br);
        let attach = |lab: &mut Lab, ns: &str, port: &str, addr: String| {
            lab.veth(ns, "eth0", &seg, port);
            run(&["ip", "-n", &seg, "link", "set", port, "master", &br]);
            run(&["ip", "-n", ns, "addr", "add", &addr, "dev", "eth0"]);
        };

        // Router: the segment on eth0, the client on eth1.
        let port = lab.name("pr");
        attach(&mut lab, &router, &port, "198.51.100.1/24".into());
        lab.veth(&router, ROUTER_CLIENT_IF, &client, "eth0");
        run(&[
            "ip",
            "-n",
            &router,
            "addr",
            "add",
            "203.0.113.1/24",
            "dev",
            ROUTER_CLIENT_IF,
        ]);
        // Layer-4 multipath hashing. Policy 3 with fields 0x37 hashes the
        // packet's own addresses, protocol and ports (ip-sysctl.rst), as
        // policy 1 does for frames from a NIC. Policy 1 would not do here:
        // a veth hands the router the client socket's own random flow hash
        // and policy 1 takes it as it is (route.c fib_multipath_hash:
        // "short-circuit if we already have L4 hash present"), and TCP
        // picks a new one when it retransmits, so flows would hop between
        // directors in a way no router in front of real NICs makes them.
        sysctl(
            &router,
            &[
                "net.ipv4.ip_forward=1",
                "net.ipv4.fib_multipath_hash_policy=3",
                "net.ipv4.fib_multipath_hash_fields=0x0037",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
            ],
        );
        // Tables that pin the VIP to one director (see `pin`).
        for i in 0..3 {
            run(&[
                "ip",
                "-n",
                &router,
                "route",
                "add",
                &format!("{VIP}/32"),
                "via",
                &director_addr(i).to_string(),
                "table",
                &(101 + i).to_string(),
            ]);
        }

        // Client: many source addresses.
        run(&[
            "ip",
            "-n",
            &client,
            "addr",
            "add",
            "203.0.113.2/24",
            "dev",
            "eth0",
        ]);
        for k in 0..CLIENTS {
            run(&[
                "ip",
                "-n",
                &client,
                "addr",
                "add",
                &format!("{}/24", client_addr(k)),
                "dev",
                "eth0",
            ]);
        }
        run(&[
            "ip",
            "-n",
            &client,
            "route",
            "add",
            "default",
            "via",
            "203.0.113.1",
        ]);

        // Real servers: DR needs the VIP on lo, and must not answer ARP
        // for it (ipvsadm(8), "direct routing"; ip-sysctl.rst arp_ignore).
        let mut servers = Vec::new();
        for i in 0..3 {
            let ns = lab.netns(&format!("h{i}"));
            let port = lab.name(&format!("ph{i}"));
            attach(&mut lab, &ns, &port, format!("{}/24", server_addr(i)));
            sysctl(
                &ns,
                &[
                    "net.ipv4.conf.all.arp_ignore=1",
                    "net.ipv4.conf.all.arp_announce=2",
                    "net.ipv4.conf.eth0.arp_ignore=1",
                    "net.ipv4.conf.eth0.arp_announce=2",
                ],
            );
            run(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{VIP}/32"),
                "dev",
                "lo",
            ]);
            run(&[
                "ip",
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                "198.51.100.1",
            ]);
            servers.push(RealServer::start(&ns, &format!("s{}", i + 1)));
        }

        // Directors: the shipped configs, director 1's address and id
        // replaced by each one's own.
        let conf = std::fs::read_to_string(example("keepalived.conf")).expect("example");
        let bird_conf = std::fs::read_to_string(example("bird-director.conf")).expect("example");
        let mut directors = Vec::new();
        for i in 0..3 {
            let ns = lab.netns(&format!("d{i}"));
            let port = lab.name(&format!("pd{i}"));
            attach(&mut lab, &ns, &port, format!("{}/24", director_addr(i)));
            let path = dir.path(&format!("d{i}.conf"));
            std::fs::write(
                &path,
                conf.replace("director1", &format!("director{}", i + 1)),
            )
            .expect("config");
            let bird_path = dir.path(&format!("d{i}.bird"));
            std::fs::write(
                &bird_path,
                bird_conf.replace("198.51.100.11", &director_addr(i).to_string()),
            )
            .expect("config");
            directors.push(Director {
                ns,
                vrlb: None,
                bird: None,
                conf: path,
                bird_conf: bird_path,
                runs: 0,
            });
        }

        // The shipped router config, but a failed session may start again
        // after 1 s instead of BIRD's default `error wait time` of 60 s, so
        // a returning director is seen within the test's time.
        let router_conf = dir.path("router.bird");
        let text = std::fs::read_to_string(example("bird-router.conf")).expect("example");
        assert!(
            text.contains("    hold time 3;\n"),
            "bird-router.conf changed"
        );
        std::fs::write(
            &router_conf,
            text.replace(
                "    hold time 3;\n",
                "    hold time 3;\n    error wait time 1, 5;\n",
            ),
        )
        .expect("config");
        let sock = dir.path("router.ctl");
        lab.spawn(
            &router,
            &[
                "bird",
                "-f",
                "-c",
                router_conf.to_str().unwrap(),
                "-s",
                sock.to_str().unwrap(),
            ],
            &dir.path("router.log"),
        );
        let mut ecmp = Ecmp {
            servers,
            directors,
            router,
            client,
            vrlb,
            dir,
            lab,
        };
        for i in 0..3 {
            ecmp.start_director(i);
        }
        ecmp.wait_for_hops(&[0, 1, 2], Duration::from_secs(30));
        // Each director forwards (its first SYNs may wait for a MAC).
        for i in 0..3 {
            ecmp.pin(Some(i));
            let ok = wait_until(Duration::from_secs(15), || {
                ecmp.connect(&[(client_addr(0), 0)]).is_ok()
            });
            assert!(ok.is_some(), "director {} never forwarded", i + 1);
        }
        ecmp.pin(None);
        eprintln!("lab up in {:?}", started.elapsed());
        Some(ecmp)
    }

    /// Starts (or restarts) director `i`'s vrlb, then its BIRD.
    fn start_director(&mut self, i: usize) {
        let d = &mut self.directors[i];
        d.runs += 1;
        let file = |what: &str| self.dir.path(&format!("d{i}.{what}"));
        let log = file(&format!("vrlb{}.log", d.runs));
        let pid_file = file(&format!("pid{}", d.runs));
        let (state, ctl, socket) = (file("vips"), file("ctl"), file("sock"));
        let vrlb = self.vrlb.to_str().unwrap().to_string();
        d.vrlb = Some(self.lab.spawn(
            &d.ns,
            &[
                &vrlb,
                "run",
                "-f",
                d.conf.to_str().unwrap(),
                "-p",
                pid_file.to_str().unwrap(),
                "--state-file",
                state.to_str().unwrap(),
                "--dataplane-iface",
                "eth0",
                "--control-socket",
                socket.to_str().unwrap(),
            ],
            &log,
        ));
        let bird_log = file(&format!("bird{}.log", d.runs));
        d.bird = Some(self.lab.spawn(
            &d.ns,
            &[
                "bird",
                "-f",
                "-c",
                d.bird_conf.to_str().unwrap(),
                "-s",
                ctl.to_str().unwrap(),
            ],
            &bird_log,
        ));
    }

    /// Director `i` crashes: its link goes silent (as a dead machine's
    /// would: no FIN ends its BGP session, the router's hold time does),
    /// then [`Ecmp::kill_director`].
    fn crash_director(&mut self, i: usize) {
        let ns = self.directors[i].ns.clone();
        run(&["ip", "-n", &ns, "link", "set", "eth0", "down"]);
        self.kill_director(i);
    }

    /// kill -9 of director `i`'s vrlb and BIRD (vrlb's interface goes with
    /// it; its drop rule stays behind).
    fn kill_director(&mut self, i: usize) {
        for pid in [self.directors[i].vrlb.take(), self.directors[i].bird.take()]
            .into_iter()
            .flatten()
        {
            self.lab.signal(pid, "KILL");
        }
    }

    /// Director `i` boots again: link up, vrlb and BIRD started.
    fn restart_director(&mut self, i: usize) {
        let ns = self.directors[i].ns.clone();
        run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        self.start_director(i);
    }

    /// The router's next hops for the VIP, as director indexes.
    fn hops(&self) -> Vec<usize> {
        let text = in_ns(&self.router, &["ip", "route", "show", &VIP.to_string()]);
        let mut hops: Vec<usize> = text
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                w.position(|x| x == "via")?;
                let addr: Ipv4Addr = w.next()?.parse().ok()?;
                (0..3).find(|i| director_addr(*i) == addr)
            })
            .collect();
        hops.sort_unstable();
        hops
    }

    fn wait_for_hops(&self, want: &[usize], timeout: Duration) -> Duration {
        wait_until(timeout, || self.hops() == want).unwrap_or_else(|| {
            panic!(
                "router's next hops {:?}, want {want:?} (0-based directors)",
                self.hops()
            )
        })
    }

    /// Sends the client's traffic to the VIP through director `i` only
    /// (a policy rule on the router), or back to ECMP (`None`).
    fn pin(&self, director: Option<usize>) {
        let _ = in_ns(&self.router, &["ip", "rule", "del", "priority", "100"]);
        if let Some(i) = director {
            run(&[
                "ip",
                "-n",
                &self.router,
                "rule",
                "add",
                "priority",
                "100",
                "iif",
                ROUTER_CLIENT_IF,
                "to",
                &format!("{VIP}/32"),
                "lookup",
                &(101 + i).to_string(),
            ]);
        }
    }

    /// The director the router's multipath hash sends `flow` to, asked of
    /// the router's kernel.
    fn director_of(&self, flow: SocketAddrV4) -> Option<usize> {
        let text = in_ns(
            &self.router,
            &[
                "ip",
                "route",
                "get",
                &VIP.to_string(),
                "from",
                &flow.ip().to_string(),
                "iif",
                ROUTER_CLIENT_IF,
                "ipproto",
                "tcp",
                "sport",
                &flow.port().to_string(),
                "dport",
                &PORT.to_string(),
            ],
        );
        let mut w = text.split_whitespace();
        w.position(|x| x == "via")?;
        let addr: Ipv4Addr = w.next()?.parse().ok()?;
        (0..3).find(|i| director_addr(*i) == addr)
    }

    /// For each connection, the directors among `which` whose connection
    /// table holds it (checking that they send it to the server the
    /// client reached).
    fn carriers(&self, which: &[usize], conns: &[Conn]) -> Vec<Vec<usize>> {
        let tables: Vec<_> = which.iter().map(|i| (*i, self.tracked(*i))).collect();
        conns
            .iter()
            .map(|c| {
                let mut by = Vec::new();
                for (i, table) in &tables {
                    if let Some(server) = table.get(&c.local) {
                        assert_eq!(
                            *server,
                            server_addr_of(&c.server),
                            "director {} sends {} to {server}, the client reached {}",
                            i + 1,
                            c.local,
                            c.server
                        );
                        by.push(*i);
                    }
                }
                by
            })
            .collect()
    }

    /// Opens a connection from each `(address, port)`, from the client;
    /// stops at the first that fails (a few seconds each).
    fn connect(&self, from: &[(Ipv4Addr, u16)]) -> io::Result<Vec<Conn>> {
        in_netns(&self.client, || {
            from.iter()
                .map(|(a, p)| {
                    Conn::open(*a, *p)
                        .map_err(|e| io::Error::new(e.kind(), format!("from {a}:{p}: {e}")))
                })
                .collect()
        })
    }

    /// Asks director `i`'s vrlb (`vrlb status --json` or `conns`).
    fn ask(&self, i: usize, what: &str) -> serde_json::Value {
        let socket = self.dir.path(&format!("d{i}.sock"));
        let out = run(&[
            self.vrlb.to_str().unwrap(),
            what,
            "--control-socket",
            socket.to_str().unwrap(),
            "--json",
        ]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("director {}: `vrlb {what} --json`: {e}", i + 1))
    }

    /// Director `i`'s data-plane counters from `vrlb status`.
    fn counters(&self, i: usize) -> Counters {
        let status = self.ask(i, "status");
        let f = &status["dataplane"]["forwarding"];
        let get = |key: &str| {
            f[key].as_u64().unwrap_or_else(|| {
                panic!(
                    "director {}: no dataplane.forwarding.{key} in {status}",
                    i + 1
                )
            })
        };
        Counters {
            forwarded: get("forwarded"),
            adopted: get("adopted_mid_flow"),
        }
    }

    /// Whether director `i` holds real server `addr` healthy.
    fn healthy(&self, i: usize, addr: Ipv4Addr) -> bool {
        let status = self.ask(i, "status");
        let servers = status["services"][0]["servers"].as_array().cloned();
        servers
            .unwrap_or_default()
            .iter()
            .find(|s| s["addr"].as_str() == Some(&addr.to_string()))
            .unwrap_or_else(|| panic!("director {}: {addr} not in {status}", i + 1))["healthy"]
            .as_bool()
            .expect("healthy is a bool")
    }

    /// The flows director `i` tracks: (client address, port) -> real
    /// server address, from `vrlb conns`.
    fn tracked(&self, i: usize) -> HashMap<SocketAddrV4, Ipv4Addr> {
        let conns = self.ask(i, "conns");
        let mut out = HashMap::new();
        for e in conns["entries"].as_array().into_iter().flatten() {
            if e["template"].as_bool() == Some(true) {
                continue;
            }
            let client = e["client"].as_str().and_then(|a| a.parse().ok());
            let port = e["client_port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok());
            let server = e["server"].as_str().and_then(|a| a.parse().ok());
            if let (Some(c), Some(p), Some(s)) = (client, port, server) {
                out.insert(SocketAddrV4::new(c, p), s);
            }
        }
        out
    }

    fn all_counters(&self) -> Vec<Counters> {
        (0..3).map(|i| self.counters(i)).collect()
    }
}

/// Every client address with two source ports each: one port fixed per
/// address, so a flow can be made again from the same address and port.
fn fixed_flows() -> Vec<(Ipv4Addr, u16)> {
    (0..CLIENTS)
        .flat_map(|k| [(client_addr(k), 41000), (client_addr(k), 42000)])
        .collect()
}

fn servers_of(conns: &[Conn]) -> Vec<String> {
    conns.iter().map(|c| c.server.clone()).collect()
}

fn count<T: PartialEq>(items: &[T], item: &T) -> usize {
    items.iter().filter(|x| *x == item).count()
}

fn all_ok(results: io::Result<Vec<Conn>>, what: &str) -> Vec<Conn> {
    results.unwrap_or_else(|e| panic!("{what}: a connection failed: {e}"))
}

#[test]
fn ecmp_spreads_flows_keeps_their_server_and_survives_a_dead_director() {
    let Some(mut net) = Ecmp::build("ecmp") else {
        return;
    };
    let start = Instant::now();

    // 1. Spread: flows from many clients over all three directors, and
    // all three servers.
    let before = net.all_counters();
    let flows = fixed_flows();
    let conns = all_ok(net.connect(&flows), "ECMP");
    let after = net.all_counters();
    // Which director carried each flow: the one the router's hash picks
    // (asked of its kernel) holds it in its connection table, with the
    // server the client reached.
    let carriers = net.carriers(&[0, 1, 2], &conns);
    for (c, by) in conns.iter().zip(&carriers) {
        let hashed = net.director_of(c.local).expect("a next hop");
        assert_eq!(by, &vec![hashed], "flow {}: tracked by {by:?}", c.local);
    }
    for i in 0..3 {
        let carried = carriers.iter().filter(|by| by.contains(&i)).count();
        let forwarded = after[i].forwarded - before[i].forwarded;
        eprintln!(
            "director {}: carried {carried} of {} flows, forwarded {forwarded} frames",
            i + 1,
            flows.len()
        );
        assert!(
            carried >= flows.len() / 6,
            "director {} carries {carried} of {} flows",
            i + 1,
            flows.len()
        );
        // Each flow's SYN, ACK and hello pass its director.
        assert!(
            forwarded >= 3 * carried as u64,
            "director {}: {forwarded} frames forwarded for {carried} flows",
            i + 1
        );
    }
    let chosen = servers_of(&conns);
    for s in ["s1", "s2", "s3"] {
        assert!(
            count(&chosen, &s.to_string()) >= flows.len() / 6,
            "server {s} got {} of {} flows",
            count(&chosen, &s.to_string()),
            flows.len()
        );
    }
    reset_all(conns);

    eprintln!("{:?}: spread checked", start.elapsed());

    // 2. The same client address and port reaches the same server through
    // each director.
    for i in 0..3 {
        net.pin(Some(i));
        let before = net.all_counters();
        let again = all_ok(net.connect(&flows), &format!("through director {}", i + 1));
        let after = net.all_counters();
        net.pin(None);
        for j in 0..3 {
            let forwarded = after[j].forwarded - before[j].forwarded;
            if j == i {
                assert!(
                    forwarded >= 3 * flows.len() as u64,
                    "pinned director forwarded {forwarded}"
                );
            } else {
                assert_eq!(
                    forwarded,
                    0,
                    "director {} forwarded while pinned to {}",
                    j + 1,
                    i + 1
                );
            }
        }
        let differs: Vec<_> = flows
            .iter()
            .zip(servers_of(&again))
            .zip(&chosen)
            .filter(|((_, now), first)| now != *first)
            .map(|((f, now), first)| format!("{}:{} {first} -> {now}", f.0, f.1))
            .collect();
        assert!(
            differs.is_empty(),
            "through director {}, {} flows reached another server: {differs:?}",
            i + 1,
            differs.len()
        );
        reset_all(again);
    }

    eprintln!(
        "{:?}: servers agree through every director",
        start.elapsed()
    );

    // 3. Long-lived connections, then director 3 crashes.
    let long: Vec<(Ipv4Addr, u16)> = (0..CLIENTS)
        .flat_map(|k| [(client_addr(k), 0); 4])
        .collect();
    let mut conns = all_ok(net.connect(&long), "long-lived");
    let victim = 2;
    let loss = lose_director(&mut net, &mut conns, &[0, 1, 2], victim, true);

    // New connections keep flowing, over both remaining directors.
    let before = net.all_counters_of(&[0, 1]);
    let fresh = all_ok(
        net.connect(
            &(0..CLIENTS)
                .map(|k| (client_addr(k), 0))
                .collect::<Vec<_>>(),
        ),
        "new after the crash",
    );
    let after = net.all_counters_of(&[0, 1]);
    for i in [0, 1] {
        assert!(
            after[i].forwarded > before[i].forwarded,
            "director {} took no new flows",
            i + 1
        );
    }
    for (c, by) in fresh.iter().zip(net.carriers(&[0, 1], &fresh)) {
        assert!(
            !by.is_empty(),
            "no live director tracks new flow {}",
            c.local
        );
    }
    reset_all(fresh);
    eprintln!("{:?}: director crash checked", start.elapsed());

    // 4. It returns: the route comes back, its flows move back to it, and
    // the connections still work.
    let mut conns = survivors(conns, &loss.alive);
    let on_victim = survivors_of(&loss.on_victim, &loss.alive);
    net.restart_director(victim);
    net.wait_for_hops(&[0, 1, 2], Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(10);
    let alive: Vec<bool> = conns
        .iter_mut()
        .map(|c| c.send("ping3").is_ok() && c.echoed("ping3", deadline))
        .collect();
    let back = count(&alive, &true);
    // The router's hash gives the returned director the same flows back
    // (hash-threshold); it adopts them mid-flow.
    let adopted_back = net.counters(victim).adopted;
    let returned = net
        .carriers(&[victim], &conns)
        .iter()
        .zip(&on_victim)
        .filter(|(by, was)| **was && !by.is_empty())
        .count();
    let victims = count(&on_victim, &true);
    eprintln!(
        "after the return: {back}/{} connections work, {returned}/{victims} of its flows back \
         on the returned director, {adopted_back} mid-flow packets adopted there",
        conns.len()
    );
    assert!(
        back * 100 >= conns.len() * 95,
        "{back}/{} survived the return",
        conns.len()
    );
    assert!(
        returned * 100 >= victims * 95,
        "{returned} of {victims} flows came back to the returned director"
    );
    assert!(
        adopted_back >= returned as u64,
        "{adopted_back} adoptions for {returned} flows moved back"
    );

    // 5. Director 1's vrlb and BIRD are killed (kill -9) on a machine that
    // stays up: its kernel closes the BGP session, the route goes at once.
    let mut conns = survivors(conns, &alive);
    lose_director(&mut net, &mut conns, &[0, 1, 2], 0, false);
    eprintln!("{:?} in all", start.elapsed());
}

/// What [`lose_director`] saw, per connection.
struct Loss {
    /// Carried by the lost director.
    on_victim: Vec<bool>,
    /// Still working afterwards.
    alive: Vec<bool>,
}

/// Director `victim` of the `live` ones goes while `conns` are open (with
/// `silent`, its link too, as a crashed machine's would): its route must be
/// withdrawn and at least 95% of the connections, and of its own, keep
/// working, adopted by the others.
fn lose_director(
    net: &mut Ecmp,
    conns: &mut [Conn],
    live: &[usize],
    victim: usize,
    silent: bool,
) -> Loss {
    let on_victim: Vec<bool> = conns
        .iter()
        .map(|c| net.director_of(c.local) == Some(victim))
        .collect();
    let victims = count(&on_victim, &true);
    assert!(
        victims >= conns.len() / 6,
        "only {victims} of {} flows on director {}",
        conns.len(),
        victim + 1
    );
    let rest: Vec<usize> = live.iter().copied().filter(|i| *i != victim).collect();
    let before = net.all_counters_of(&rest);
    let lost = Instant::now();
    if silent {
        net.crash_director(victim);
    } else {
        net.kill_director(victim);
    }
    // In flight at once: some of these wait in the dead director's black
    // hole until the route goes and TCP retransmits them.
    let sent: Vec<bool> = conns.iter_mut().map(|c| c.send("ping1").is_ok()).collect();
    let withdrawn = net.wait_for_hops(&rest, Duration::from_secs(8));
    let deadline = lost + Duration::from_secs(25);
    let mut alive: Vec<bool> = conns
        .iter_mut()
        .zip(sent)
        .map(|(c, sent)| sent && c.echoed("ping1", deadline))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    for (c, ok) in conns.iter_mut().zip(alive.iter_mut()) {
        *ok = *ok && c.send("ping2").is_ok() && c.echoed("ping2", deadline);
    }
    let after = net.all_counters_of(&rest);
    let survived = count(&alive, &true);
    let victim_survived = alive
        .iter()
        .zip(&on_victim)
        .filter(|(a, v)| **a && **v)
        .count();
    let adopted: u64 = rest
        .iter()
        .map(|i| after[*i].adopted - before[*i].adopted)
        .sum();
    eprintln!(
        "director {} {}: route withdrawn after {withdrawn:?}; {survived}/{} connections work, \
         {victim_survived}/{victims} of its own; {adopted} mid-flow packets adopted",
        victim + 1,
        if silent { "crashed" } else { "killed" },
        conns.len()
    );
    assert!(
        survived * 100 >= conns.len() * 95,
        "{survived}/{} long-lived connections survived",
        conns.len()
    );
    assert!(
        victim_survived * 100 >= victims * 95,
        "{victim_survived}/{victims} of the lost director's connections survived"
    );
    assert!(
        adopted >= victim_survived as u64,
        "{adopted} adoptions for {victim_survived} moved flows"
    );
    Loss { on_victim, alive }
}

/// The connections still alive.
fn survivors(conns: Vec<Conn>, alive: &[bool]) -> Vec<Conn> {
    conns
        .into_iter()
        .zip(alive)
        .filter_map(|(c, ok)| ok.then_some(c))
        .collect()
}

/// `values` of the connections still alive.
fn survivors_of(values: &[bool], alive: &[bool]) -> Vec<bool> {
    values
        .iter()
        .zip(alive)
        .filter_map(|(v, ok)| ok.then_some(*v))
        .collect()
}

impl Ecmp {
    /// Counters of the given directors (indexes stay the directors').
    fn all_counters_of(&self, which: &[usize]) -> Vec<Counters> {
        (0..3)
            .map(|i| {
                if which.contains(&i) {
                    self.counters(i)
                } else {
                    Counters::default()
                }
            })
            .collect()
    }
}

#[test]
fn a_stopped_real_server_gets_no_new_flows() {
    let Some(mut net) = Ecmp::build("ecmpstop") else {
        return;
    };
    let flows = fixed_flows();
    let conns = all_ok(net.connect(&flows), "before the stop");
    let first = servers_of(&conns);
    reset_all(conns);
    let gone = "s2".to_string();
    assert!(count(&first, &gone) > 0);
    net.servers[1].stop_listening();

    // Every director's TCP_CHECK notices (delay_loop 2 s, connect_timeout
    // 1 s, retry 1: a few seconds) ...
    let stopped = Instant::now();
    for i in 0..3 {
        let took = wait_until(Duration::from_secs(20), || !net.healthy(i, server_addr(1)));
        assert!(
            took.is_some(),
            "director {} still holds {gone} healthy",
            i + 1
        );
    }
    eprintln!(
        "every director saw {gone} down {:?} after it stopped",
        stopped.elapsed()
    );
    // ... and sends no new flow to it: through each director, every flow
    // connects (one sent to the stopped server would be refused).
    for i in 0..3 {
        net.pin(Some(i));
        let now = all_ok(net.connect(&flows), &format!("through director {}", i + 1));
        let servers = servers_of(&now);
        assert_eq!(count(&servers, &gone), 0, "director {} used {gone}", i + 1);
        // Maglev keeps almost every flow of the live servers where it was
        // (its table changes little when one server leaves).
        let live = first.iter().filter(|s| **s != gone).count();
        let moved = first
            .iter()
            .zip(&servers)
            .filter(|(a, b)| **a != gone && a != b)
            .count();
        eprintln!(
            "through director {}: {moved} of {live} flows of live servers moved",
            i + 1
        );
        assert!(
            moved * 10 <= live,
            "director {}: {moved} of {live} flows of live servers moved",
            i + 1
        );
        reset_all(now);
    }
    net.pin(None);
}
