//! Non-blocking TCP connects for probes: a socket bound where `bindto` /
//! `bind_port` say, a connect that returns at once, and the test that
//! tells, on a readiness event, whether it finished. Never blocks, never
//! waits: the prober's loop calls [`connected`] when mio reports the
//! socket writable.

use std::io;
use std::net::SocketAddr;

use mio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};

/// A non-blocking socket of `ty` for `target`'s family, bound to `bind`
/// (`bindto` / `bind_port`) if given: what every probe's socket starts as.
pub fn bound_socket(
    target: SocketAddr,
    bind: Option<SocketAddr>,
    ty: Type,
    protocol: Protocol,
) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(target),
        ty.nonblocking().cloexec(),
        Some(protocol),
    )?;
    if let Some(local) = bind {
        if local.port() != 0 {
            // A fixed source port is reused every delay_loop while the
            // last connection may sit in TIME_WAIT.
            socket.set_reuse_address(true)?;
        }
        socket.bind(&local.into())?;
    }
    Ok(socket)
}

/// Starts connecting to `target` from `bind` (if given). The connect
/// completes later: see [`connected`].
pub fn connect(target: SocketAddr, bind: Option<SocketAddr>) -> io::Result<TcpStream> {
    let socket = bound_socket(target, bind, Type::STREAM, Protocol::TCP)?;
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(std::net::TcpStream::from(socket)))
}

/// Whether the connect finished: `Ok(true)` connected, `Ok(false)` still
/// in progress (a spurious or early event), `Err` refused, unreachable...
/// (mio's documented test: `take_error`, then `peer_addr`).
pub fn connected(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
        Err(e) => Err(e),
    }
}
