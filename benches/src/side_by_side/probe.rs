//! The service behind the VIP and the client that probes it: a UDP echo
//! responder on each director (bound to the wildcard address, so it answers
//! through whichever VIP the director holds) and a prober in the client
//! namespace that sends numbered datagrams to the VIP every few
//! milliseconds and reports when one is answered again. Sockets are
//! opened inside a namespace by a short-lived thread that enters it
//! (`setns`); a socket stays in the namespace it was made in.
//!
//! The prober waits with `ppoll` (an hrtimer, microseconds), not
//! `SO_RCVTIMEO`: the kernel turns a socket timeout into jiffies and
//! rounds it up, so at HZ=250 a 1 ms timeout sleeps 8 ms, and probes meant
//! to go out every millisecond went out every 8 (measured on this
//! machine's kernel; `sock_rcvtimeo` in net/core/sock.c).
//!
//! Owns sockets and the responder threads; never touches the daemons.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::io::Read;

use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::time::TimeSpec;
use socket2::{Domain, Protocol, Socket, Type};

/// First bytes of every probe, so stray datagrams are ignored.
const MAGIC: [u8; 4] = *b"vrlb";
/// Probe datagram: magic + sequence number.
const PROBE_LEN: usize = 12;

/// Runs `f` on a thread that has entered network namespace `ns`
/// (`/run/netns/NS`, as `ip netns add` makes it) and returns its result.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path)?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| io::Error::other(format!("setns {path}: {e}")))?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?
}

/// A UDP echo responder in one director's namespace. While silenced it
/// reads and drops (the director is "down" as far as the service goes).
pub struct Responder {
    silenced: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    /// Binds `0.0.0.0:port` in `ns` and starts answering.
    pub fn start(ns: &str, port: u16) -> io::Result<Responder> {
        let socket = in_netns(ns, move || {
            let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
            s.set_read_timeout(Some(Duration::from_millis(50)))?;
            Ok(s)
        })?;
        let silenced = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (silenced.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf)
                    && !q.load(Ordering::Relaxed)
                {
                    let _ = socket.send_to(&buf[..n], from);
                }
            }
        });
        Ok(Responder {
            silenced,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops or resumes answering.
    pub fn silence(&self, on: bool) {
        self.silenced.store(on, Ordering::SeqCst);
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The client's view of the VRRP adverts on its segment (a raw socket
/// joined to 224.0.0.18), so a crash can be timed from a known phase: just
/// after the master's advert, when the backup's whole
/// Master_Down_Interval is still ahead.
pub struct AdvertWatch {
    socket: Socket,
}

impl AdvertWatch {
    /// Listens in `ns`, joined to the VRRP group on the interface that has
    /// `local`.
    pub fn new(ns: &str, local: Ipv4Addr) -> io::Result<AdvertWatch> {
        let socket = in_netns(ns, move || {
            let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112)))?;
            s.join_multicast_v4(&Ipv4Addr::new(224, 0, 0, 18), &local)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })?;
        Ok(AdvertWatch { socket })
    }

    /// Forgets what is queued, then waits up to `timeout` for an advert
    /// from `src` (a VRRP packet whose IP source it is); returns whether
    /// one came.
    pub fn next_from(&mut self, src: Ipv4Addr, timeout: Duration) -> bool {
        let mut buf = [0u8; 128];
        while self.socket.read(&mut buf).is_ok() {}
        let deadline = Instant::now() + timeout;
        loop {
            // Raw IPv4 sockets deliver the IP header: the source is at 12.
            while let Ok(n) = self.socket.read(&mut buf) {
                if n >= 20 && buf[12..16] == src.octets() {
                    return true;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
            let _ = ppoll(
                &mut fds,
                Some(TimeSpec::from_duration(deadline - now)),
                None,
            );
        }
    }
}

/// The client's prober.
pub struct Prober {
    socket: UdpSocket,
    target: SocketAddr,
    seq: u64,
}

impl Prober {
    /// A socket in `ns` aimed at `target` (not connected: replies come
    /// from the director's own address, not the VIP).
    pub fn new(ns: &str, target: SocketAddr) -> io::Result<Prober> {
        let socket = in_netns(ns, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))?;
        socket.set_nonblocking(true)?;
        Ok(Prober {
            socket,
            target,
            seq: 0,
        })
    }

    fn send(&mut self) -> u64 {
        self.seq += 1;
        let mut p = [0u8; PROBE_LEN];
        p[..4].copy_from_slice(&MAGIC);
        p[4..].copy_from_slice(&self.seq.to_be_bytes());
        // A send error (no route, no neighbour yet) is a failed probe.
        let _ = self.socket.send_to(&p, self.target);
        self.seq
    }

    /// Waits until `deadline` for an answer to a probe numbered at least
    /// `first`; returns when it arrived.
    fn answer_since(&mut self, first: u64, deadline: Instant) -> Option<Instant> {
        let mut buf = [0u8; 64];
        loop {
            // Everything already queued first: a late wake-up must not
            // hide an answer that came in time.
            match self.socket.recv_from(&mut buf) {
                Ok((n, _)) => {
                    if n == PROBE_LEN && buf[..4] == MAGIC {
                        let seq = u64::from_be_bytes(buf[4..12].try_into().ok()?);
                        if seq >= first {
                            return Some(Instant::now());
                        }
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // Any other error is a failed probe, not the end of the
                // wait (bounded by the deadline).
                Err(_) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let wait = deadline - now;
            let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
            let spec = TimeSpec::from_duration(wait);
            match ppoll(&mut fds, Some(spec), None) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return None,
            }
        }
    }

    /// Whether one probe is answered within `timeout`.
    pub fn once(&mut self, timeout: Duration) -> bool {
        let seq = self.send();
        self.answer_since(seq, Instant::now() + timeout).is_some()
    }

    /// Probes every `every` from now; returns how long after `since` the
    /// first probe sent after `since` was answered, or `None` if none was
    /// by `since + limit`.
    pub fn outage(&mut self, since: Instant, every: Duration, limit: Duration) -> Option<Duration> {
        let first = self.seq + 1;
        let end = since + limit;
        let mut next = Instant::now();
        while next < end {
            self.send();
            next += every;
            if let Some(at) = self.answer_since(first, next.min(end)) {
                return Some(at - since);
            }
            // Running late (a slow wake-up): send now rather than in a burst.
            let now = Instant::now();
            if next < now {
                next = now;
            }
        }
        None
    }
}
