//! One forwarding thread: waits on its receive ring (and its waker, with
//! no timeout while its shard has nothing to expire, else until its next
//! expiry, [`idle_timeout_ms`]), copies up to a batch of frames out of
//! the ring, classifies them together in its [`Shard`], rewrites the MACs
//! of the ones to forward, and sends them with one `sendmmsg`. Owns its
//! ring and sender; shares only its shard (a mutex the event loop takes
//! to mirror configuration and read status) and its counters.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use log::{debug, warn};
use vrlb_core::lb::{Flow, ForwardMethod, Verdict};
use vrlb_core::time::Instant;

use super::counters::{Counters, bump};
use super::frame;
use super::shard::Shard;
use super::sys::{RxRing, TxSocket, Waker};
use crate::daemon::clock::Clock;

/// Most frames taken from the ring per lock and per `sendmmsg`.
pub const BATCH: usize = 64;
/// How a worker tells the sync extension that its journal has entries,
/// so the event loop drains journals only then instead of on a tick.
#[derive(Debug)]
pub struct JournalKick {
    /// Registered in the event loop by the sync extension.
    pub waker: Waker,
    /// Set by the sync extension when it goes idle; the first worker that
    /// journals an entry after that clears it and wakes `waker`.
    pub armed: AtomicBool,
}

/// Whether a packet for a NAT or TUN real server was logged (once per run).
static NOT_DR_LOGGED: AtomicBool = AtomicBool::new(false);

/// Sleep after a failed `poll`, so an error cannot spin.
const POLL_ERROR_SLEEP_MS: u64 = 100;

/// Whether a frame the kernel calls another host's is addressed to one of
/// this host's VMACs (`use_vmac`).
fn to_vmac(pkttype: u8, frame: &[u8], vmacs: &HashSet<[u8; 6]>) -> bool {
    pkttype == libc::PACKET_OTHERHOST
        && frame
            .get(..6)
            .and_then(|d| <[u8; 6]>::try_from(d).ok())
            .is_some_and(|dst| vmacs.contains(&dst))
}

/// How long a worker waits for a frame: for ever (-1) with nothing to
/// expire (whoever adds entries to an idle shard wakes it: the sync
/// extension, when they expire before the worker would wake), else until
/// the balancer's next expiry (`next_expiry`, from
/// [`vrlb_core::lb::Balancer::next_expiry`]: never late, so a worker wakes
/// at most once per wheel bucket that comes due), rounded up to whole
/// milliseconds so it never wakes before the bucket is due.
pub fn idle_timeout_ms(next_expiry: Option<Instant>, now: Instant) -> i32 {
    match next_expiry {
        None => -1,
        Some(t) => {
            let ms = t.saturating_duration_since(now).as_micros().div_ceil(1000);
            i32::try_from(ms).unwrap_or(i32::MAX)
        }
    }
}

/// What a worker needs.
pub struct Worker {
    /// Its number, for log lines.
    pub index: usize,
    /// Its receive ring (in the fanout group when there are several).
    pub ring: RxRing,
    /// Its sender.
    pub tx: TxSocket,
    /// Its shard.
    pub shard: Arc<Mutex<Shard>>,
    /// Its counters.
    pub counters: Arc<Counters>,
    /// Set to stop (then `waker` is woken).
    pub stop: Arc<AtomicBool>,
    /// Woken on stop and when the event loop changed the shard.
    pub waker: Arc<Waker>,
    /// Wakes the sync extension (none: it drains on its own tick).
    pub journal_kick: Option<Arc<JournalKick>>,
    /// The daemon's clock (the shard's time base).
    pub clock: Clock,
    /// The director's MAC on the interface: the forwarded frames' source.
    pub own_mac: [u8; 6],
}

impl Worker {
    /// Runs until `stop` is set.
    pub fn run(mut self) {
        let mut batch = Batch::new();
        debug!("data plane worker {} running", self.index);
        while !self.stop.load(Ordering::Relaxed) {
            let timeout_ms = self.idle_timeout_ms();
            if let Err(e) = self.ring.wait(&self.waker, timeout_ms) {
                warn!("data plane worker {}: poll: {e}", self.index);
                std::thread::sleep(std::time::Duration::from_millis(POLL_ERROR_SLEEP_MS));
            }
            bump(&self.counters.wakeups, 1);
            loop {
                let n = self.step(&mut batch);
                if n == 0 {
                    break;
                }
            }
            bump(&self.counters.drop_ring_full, self.ring.take_drops());
        }
        debug!("data plane worker {} stopped", self.index);
    }

    /// How long to sleep with no frame ([`idle_timeout_ms`]).
    fn idle_timeout_ms(&self) -> i32 {
        let Ok(shard) = self.shard.lock() else {
            return -1;
        };
        idle_timeout_ms(shard.balancer.next_expiry(), self.clock.now())
    }

    /// One batch; returns how many frames it took from the ring. Frames
    /// for a held VIP are copied out of the ring and classified together
    /// ([`vrlb_core::lb::Balancer::classify_batch`]: their table lookups
    /// overlap), then the ones to forward are rewritten and sent.
    fn step(&mut self, batch: &mut Batch) -> usize {
        let now = self.clock.now();
        batch.clear();
        let c = &*self.counters;
        let taken = {
            let Ok(mut shard) = self.shard.lock() else {
                return 0;
            };
            let shard = &mut *shard;
            if shard.balancer.poll_timeout().is_some_and(|t| t <= now) {
                shard.balancer.handle_timeout(now);
            }
            let taken = self.ring.drain(BATCH, |f| {
                if f.pkttype == libc::PACKET_OUTGOING {
                    // Our own frames, on kernels whose fanout cannot skip them.
                    bump(&c.seen_outgoing, 1);
                    return;
                }
                bump(&c.received, 1);
                if f.pkttype != libc::PACKET_HOST && !to_vmac(f.pkttype, f.data, &shard.vmacs) {
                    bump(&c.drop_not_host, 1);
                    return;
                }
                if f.wire_len > f.data.len() {
                    bump(&c.drop_oversize, 1);
                    return;
                }
                let parsed = match frame::parse(f.data) {
                    Ok(p) => p,
                    Err(why) => return c.unfit(why),
                };
                if !shard.held.contains(&parsed.flow.dst) {
                    bump(&c.drop_vip_not_held, 1);
                    return;
                }
                batch.push(f.data, parsed, f.csum_not_ready);
            });
            let n = batch.flows.len();
            batch.verdicts.resize(n, Verdict::NotVirtual);
            shard
                .balancer
                .classify_batch(now, &batch.flows, &mut batch.verdicts);
            for i in 0..n {
                match batch.verdicts[i] {
                    Verdict::Forward { addr, method, .. } if method != ForwardMethod::Dr => {
                        bump(&c.drop_not_dr, 1);
                        if !NOT_DR_LOGGED.swap(true, Ordering::Relaxed) {
                            warn!(
                                "data plane: real server {addr} has lvs_method {} \
                                 and vrlb forwards DR only: its packets are dropped \
                                 (counted as not_dr; logged once)",
                                method.ipvsadm_name()
                            );
                        }
                    }
                    Verdict::Forward { addr, .. } => {
                        let Some(mac) = shard.macs.get(&addr).copied() else {
                            bump(&c.drop_no_mac, 1);
                            shard.missing.insert(addr);
                            continue;
                        };
                        let frame = &mut batch.frames[i];
                        let (parsed, csum_not_ready) = batch.parsed[i];
                        if csum_not_ready {
                            frame::finish_checksum(frame, &parsed);
                            bump(&c.checksums_finished, 1);
                        }
                        frame::rewrite(frame, mac, self.own_mac);
                        batch.send.push(i);
                    }
                    Verdict::NotVirtual => bump(&c.drop_not_virtual, 1),
                    Verdict::Drop(reason) => c.dropped(reason),
                }
            }
            if let Some(k) = &self.journal_kick
                && taken > 0
                && shard.balancer.sync_pending() > 0
                && k.armed.swap(false, Ordering::SeqCst)
            {
                k.waker.wake();
            }
            taken
        };
        let out = batch.send.len();
        if out > 0 {
            let mut frames: [&[u8]; BATCH] = [&[]; BATCH];
            for (slot, &i) in frames.iter_mut().zip(&batch.send) {
                *slot = &batch.frames[i];
            }
            let frames = &frames[..out];
            let mut sent = 0;
            // sendmmsg may stop early (a full queue): retry the rest once.
            for _ in 0..2 {
                match self.tx.send_batch(&frames[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) => {
                        debug!("data plane worker {}: send: {e}", self.index);
                        break;
                    }
                }
                if sent == out {
                    break;
                }
            }
            bump(&c.forwarded, sent as u64);
            bump(&c.drop_tx_error, (out - sent) as u64);
        }
        taken
    }
}

/// One step's frames, copied out of the ring, with what classifying them
/// needs; allocated once per worker, reused every step.
struct Batch {
    /// The frames' bytes (each buffer's capacity kept across steps); the
    /// first `flows.len()` are this step's.
    frames: Vec<Vec<u8>>,
    flows: Vec<Flow>,
    /// Where each frame's headers are, and whether its checksum is left
    /// to finish (`TP_STATUS_CSUMNOTREADY`).
    parsed: Vec<(frame::Parsed, bool)>,
    verdicts: Vec<Verdict>,
    /// Indices of the frames to send.
    send: Vec<usize>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            frames: (0..BATCH).map(|_| Vec::with_capacity(2048)).collect(),
            flows: Vec::with_capacity(BATCH),
            parsed: Vec::with_capacity(BATCH),
            verdicts: Vec::with_capacity(BATCH),
            send: Vec::with_capacity(BATCH),
        }
    }

    fn clear(&mut self) {
        self.flows.clear();
        self.parsed.clear();
        self.verdicts.clear();
        self.send.clear();
    }

    /// Copies a frame in; at most [`BATCH`] per step (the ring drain's
    /// limit).
    fn push(&mut self, data: &[u8], parsed: frame::Parsed, csum_not_ready: bool) {
        let buf = &mut self.frames[self.flows.len()];
        buf.clear();
        buf.extend_from_slice(data);
        self.flows.push(parsed.flow);
        self.parsed.push((parsed, csum_not_ready));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::filter::{self, Match};
    use crate::dataplane::shard::ServiceSpec;
    use crate::dataplane::sys::RingSize;
    use crate::test_netns::in_private_netns;
    use std::net::{IpAddr, UdpSocket};
    use std::time::Duration as StdDuration;
    use vrlb_core::lb::{
        Layout, LbConfig, Protocol, RealServer, Scheduler, ServiceConfig, ServiceKey,
    };

    #[test]
    fn frames_to_another_host_are_taken_only_for_a_vmac() {
        let vmac = [0, 0, 0x5e, 0, 1, 51];
        let vmacs: HashSet<[u8; 6]> = [vmac].into();
        let mut frame = [0u8; 14];
        frame[..6].copy_from_slice(&vmac);
        assert!(to_vmac(libc::PACKET_OTHERHOST, &frame, &vmacs));
        assert!(!to_vmac(libc::PACKET_BROADCAST, &frame, &vmacs));
        frame[5] = 52;
        assert!(!to_vmac(libc::PACKET_OTHERHOST, &frame, &vmacs));
        assert!(!to_vmac(libc::PACKET_OTHERHOST, &frame[..4], &vmacs));
    }

    #[test]
    fn an_idle_worker_sleeps_for_ever_without_entries_and_until_the_next_expiry_with() {
        let now = Instant::from_secs(10);
        assert_eq!(idle_timeout_ms(None, now), -1);
        let later = Instant::from_secs(15);
        assert_eq!(idle_timeout_ms(Some(later), now), 5000);
        // Rounded up: never awake before the bucket is due.
        let tick = Instant::from_micros(now.as_micros() + 16_384);
        assert_eq!(idle_timeout_ms(Some(tick), now), 17);
        // Already due: no wait at all.
        assert_eq!(idle_timeout_ms(Some(Instant::ZERO), now), 0);
    }

    /// A running worker on ifindex `ifindex` whose shard forwards UDP to
    /// 192.0.2.240:7000 (held) with a 5 s UDP timeout; its one real server
    /// has no MAC, so nothing is sent, but connections are tracked.
    struct UdpWorker {
        shard: Arc<Mutex<Shard>>,
        counters: Arc<Counters>,
        stop: Arc<AtomicBool>,
        waker: Arc<Waker>,
        handle: std::thread::JoinHandle<()>,
    }

    const UDP_VIP: &str = "192.0.2.240";

    impl UdpWorker {
        fn start(ifindex: u32, clock: Clock, vmacs: HashSet<[u8; 6]>) -> UdpWorker {
            let vip: IpAddr = UDP_VIP.parse().unwrap();
            // 1024 slots: a wheel of 1024 ticks (16.8 s), longer than 5 s.
            let layout = Layout {
                services: 1,
                servers_per_service: 2,
                mh_table_max: 0,
                connections: 1024,
            };
            let cfg = LbConfig {
                udp_timeout_s: 5,
                ..LbConfig::default()
            };
            let mut shard = Shard::new(layout, cfg, 7, clock.now()).unwrap();
            let config = ServiceConfig::new(
                ServiceKey::Addr {
                    protocol: Protocol::Udp,
                    vip,
                    port: 7000,
                },
                Scheduler::Wlc,
            );
            let server = RealServer::new("192.0.2.21".parse().unwrap(), 7000);
            shard
                .mirror(
                    cfg,
                    &[ServiceSpec {
                        config,
                        servers: vec![server],
                        sorry: None,
                        sorry_active: false,
                    }],
                )
                .unwrap();
            shard.held.insert(vip);
            shard.vmacs = vmacs;
            let shard = Arc::new(Mutex::new(shard));
            let program = filter::services(&[Match {
                vip,
                protocol: 17,
                port: 7000,
            }])
            .unwrap();
            let ring = RxRing::open(ifindex, RingSize::from_kib(64), &program, None).unwrap();
            let counters = Arc::new(Counters::default());
            let stop = Arc::new(AtomicBool::new(false));
            let waker = Arc::new(Waker::new().unwrap());
            let w = Worker {
                index: 0,
                ring,
                tx: TxSocket::open(ifindex).unwrap(),
                shard: shard.clone(),
                counters: counters.clone(),
                stop: stop.clone(),
                waker: waker.clone(),
                journal_kick: None,
                clock,
                own_mac: [2, 0, 0, 0, 0, 1],
            };
            let handle = std::thread::spawn(move || w.run());
            UdpWorker {
                shard,
                counters,
                stop,
                waker,
                handle,
            }
        }

        fn tracked(&self) -> u32 {
            self.shard.lock().unwrap().balancer.tracked()
        }

        fn stop(self) {
            self.stop.store(true, Ordering::Relaxed);
            self.waker.wake();
            self.handle.join().unwrap();
        }
    }

    fn ip(args: &[&str]) {
        let status = std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "ip {args:?}: {status}");
    }

    /// A frame to a `use_vmac` MAC reaches a worker on the VMAC's base as
    /// another host's (`PACKET_OTHERHOST`): dropped as such until the
    /// shard knows the VMAC, then tracked.
    #[test]
    fn a_worker_on_the_base_takes_frames_to_a_vmac_it_knows() {
        in_private_netns(|| {
            ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
            ip(&[
                "link",
                "add",
                "vm",
                "link",
                "va",
                "address",
                "00:00:5e:00:01:33",
                "type",
                "macvlan",
                "mode",
                "private",
            ]);
            for dev in ["va", "vb", "vm"] {
                ip(&["link", "set", dev, "up"]);
            }
            ip(&["addr", "add", "192.0.2.99/24", "dev", "vb"]);
            ip(&[
                "neigh",
                "add",
                UDP_VIP,
                "lladdr",
                "00:00:5e:00:01:33",
                "dev",
                "vb",
            ]);
            let va = nix::net::if_::if_nametoindex("va").unwrap();
            let client = UdpSocket::bind("192.0.2.99:0").unwrap();
            let send_until = |w: &UdpWorker, done: &dyn Fn(&UdpWorker) -> bool| {
                let start = std::time::Instant::now();
                while !done(w) && start.elapsed() < StdDuration::from_secs(5) {
                    client.send_to(b"hello", (UDP_VIP, 7000)).unwrap();
                    std::thread::sleep(StdDuration::from_millis(20));
                }
            };

            let unknown = UdpWorker::start(va, Clock::new(), HashSet::new());
            send_until(&unknown, &|w| {
                w.counters.drop_not_host.load(Ordering::Relaxed) > 0
            });
            assert!(unknown.counters.drop_not_host.load(Ordering::Relaxed) > 0);
            assert_eq!(unknown.tracked(), 0);
            unknown.stop();

            let vmac = [0, 0, 0x5e, 0, 1, 0x33];
            let known = UdpWorker::start(va, Clock::new(), [vmac].into());
            send_until(&known, &|w| w.tracked() > 0);
            assert_eq!(
                known.tracked(),
                1,
                "the frame to the VMAC made no connection"
            );
            assert_eq!(known.counters.drop_not_host.load(Ordering::Relaxed), 0);
            known.stop();
        });
    }

    /// A worker on `lo` (see [`UdpWorker`]): with one live entry and no
    /// traffic it sleeps until that entry is due, wakes once to expire it,
    /// then sleeps for ever.
    #[test]
    fn a_worker_with_one_entry_sleeps_until_it_expires() {
        in_private_netns(|| {
            let up = std::process::Command::new("ip")
                .args(["addr", "add", "192.0.2.240/32", "dev", "lo"])
                .status()
                .unwrap();
            assert!(up.success());
            let vip: IpAddr = UDP_VIP.parse().unwrap();
            let clock = Clock::new();
            let worker = UdpWorker::start(1, clock, HashSet::new());
            let shard = worker.shard.clone();
            let counters = worker.counters.clone();
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            let sent = clock.now();
            client.send_to(b"hello", (vip, 7000)).unwrap();
            let tracked = |s: &Arc<Mutex<Shard>>| s.lock().unwrap().balancer.tracked();
            let start = std::time::Instant::now();
            while tracked(&shard) == 0 && start.elapsed() < StdDuration::from_secs(5) {
                std::thread::sleep(StdDuration::from_millis(10));
            }
            assert_eq!(tracked(&shard), 1, "the datagram made no connection");
            assert_eq!(counters.drop_no_mac.load(Ordering::Relaxed), 1);
            // The entry is due 5 s after the datagram (two 16 ms ticks of
            // rounding at most): that is when the worker will wake.
            let next = shard.lock().unwrap().balancer.next_expiry().unwrap();
            let five = sent + vrlb_core::time::Duration::from_secs(5);
            let tick = vrlb_core::time::Duration::from_micros(1 << vrlb_core::lb::TICK_SHIFT);
            let seen = clock.now();
            assert!(
                next > five && next <= seen + vrlb_core::time::Duration::from_secs(5) + tick + tick,
                "next expiry {next:?}, datagram sent at {sent:?}"
            );
            let before = counters.wakeups.load(Ordering::Relaxed);
            let window = StdDuration::from_secs(3);
            std::thread::sleep(window);
            let woke = counters.wakeups.load(Ordering::Relaxed) - before;
            // A worker on a 1 s bound would have woken 3 times, at the
            // 16 ms tick about 180.
            assert!(
                woke <= 1,
                "woke {woke} times in {window:?} before the entry was due"
            );
            while tracked(&shard) == 1 && start.elapsed() < StdDuration::from_secs(12) {
                std::thread::sleep(StdDuration::from_millis(20));
            }
            assert_eq!(tracked(&shard), 0, "the entry was never expired");
            let expired_at = clock.now();
            assert!(expired_at >= five, "expired early, at {expired_at:?}");
            let woke = counters.wakeups.load(Ordering::Relaxed) - before;
            assert!(
                (1..=2).contains(&woke),
                "woke {woke} times to expire one entry"
            );
            // Nothing left: it sleeps for ever.
            let settled = counters.wakeups.load(Ordering::Relaxed);
            std::thread::sleep(StdDuration::from_secs(1));
            assert_eq!(counters.wakeups.load(Ordering::Relaxed), settled);
            worker.stop();
        });
    }
}
