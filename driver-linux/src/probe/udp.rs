//! UDP_CHECK as keepalived's check_udp.c does it: a connected UDP socket
//! sends the payload (random bytes when none is set); an ICMP error
//! (port, host or network unreachable), which a connected socket reports
//! as a receive error, fails the check at once. Without `require_reply`
//! the check passes when the datagram drew no error; with it, the first
//! reply decides: its length within the bounds and its bytes matching the
//! pattern. [`UdpProbe::step`] reads what the socket has without blocking;
//! the prober ends the quiet wait (see [`quiet_wait`]).

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;
use socket2::{Protocol, Type};
use vrlb_core::check::UDP_QUIET_GRACE;
use vrlb_core::config::{ReplyMismatch, UdpConf};
use vrlb_core::time::Duration;

/// How many random bytes go out when no `payload` is set.
pub const RANDOM_PAYLOAD: usize = 16;

/// One UDP_CHECK probe in flight.
pub struct UdpProbe {
    socket: UdpSocket,
    conf: UdpConf,
}

/// A non-blocking UDP socket bound where `bind` says (if given) and
/// connected to `target`.
pub fn connected_socket(target: SocketAddr, bind: Option<SocketAddr>) -> io::Result<UdpSocket> {
    let socket = super::tcp::bound_socket(target, bind, Type::DGRAM, Protocol::UDP)?;
    socket.connect(&target.into())?;
    Ok(UdpSocket::from_std(std::net::UdpSocket::from(socket)))
}

impl UdpProbe {
    /// Sends `conf`'s payload (or `random` when it has none) to `target`.
    pub fn start(
        target: SocketAddr,
        bind: Option<SocketAddr>,
        conf: &UdpConf,
        random: [u8; RANDOM_PAYLOAD],
    ) -> io::Result<UdpProbe> {
        let socket = connected_socket(target, bind)?;
        let payload: &[u8] = match conf.payload.is_empty() {
            true => &random,
            false => &conf.payload,
        };
        socket.send(payload)?;
        Ok(UdpProbe {
            socket,
            conf: conf.clone(),
        })
    }

    /// The socket, to (de)register.
    pub fn socket(&mut self) -> &mut UdpSocket {
        &mut self.socket
    }

    /// Whether the check passes when the wait ends quietly.
    pub fn passes_when_quiet(&self) -> bool {
        !self.conf.require_reply
    }

    /// What the socket has now: `None` while nothing decides.
    pub fn step(&mut self) -> Option<Result<(), String>> {
        // One byte more than the longest reply allowed tells a longer one.
        let mut buf = vec![0u8; usize::from(self.conf.max_reply_len) + 1];
        let n = loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(icmp_error(&e))),
            }
        };
        // Without require_reply any answer passes, as no error did.
        if !self.conf.require_reply {
            return Some(Ok(()));
        }
        Some(
            self.conf
                .judge(&buf[..n])
                .map_err(|e| mismatch(e, &self.conf)),
        )
    }
}

/// A connected socket's error, named by the ICMP error it stands for
/// when it is one.
pub fn icmp_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "port unreachable (ICMP error)".to_string(),
        Some(libc::EHOSTUNREACH) => "host unreachable (ICMP error)".to_string(),
        Some(libc::ENETUNREACH) => "network unreachable (ICMP error)".to_string(),
        _ => e.to_string(),
    }
}

fn mismatch(e: ReplyMismatch, conf: &UdpConf) -> String {
    match e {
        ReplyMismatch::TooShort { len } => format!(
            "reply too short: {len} bytes, min_reply_length {}",
            conf.min_reply_len
        ),
        ReplyMismatch::TooLong { .. } => format!(
            "reply too long: more than max_reply_length {} bytes",
            conf.max_reply_len
        ),
        ReplyMismatch::Byte { at } => format!("reply mismatch at byte {at}"),
    }
}

/// How long a probe that passes on silence waits, from the timeout the
/// checker gave it: `connect_timeout`, the checker having added
/// [`UDP_QUIET_GRACE`] so that this pass always reaches it first.
pub fn quiet_wait(timeout: Duration) -> Duration {
    timeout.saturating_sub(UDP_QUIET_GRACE)
}
