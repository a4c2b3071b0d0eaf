//! One HTTP request and its reply over a connected, non-blocking socket,
//! in clear or through a rustls session. [`Exchange::step`] does all it
//! can without blocking each time the socket is ready (mio is
//! edge-triggered: every read and write goes on until `WouldBlock`), and
//! reports the reply once the server has closed or the announced body is
//! complete. Never waits and keeps no clock: the prober bounds it.

use std::io::{self, Read, Write};

use mio::net::TcpStream;
use rustls::ClientConnection;

use super::http::{HttpError, Reply, Response};

/// Why an exchange failed.
#[derive(Debug)]
pub enum ExchangeError {
    /// Reading or writing the socket.
    Io(io::Error),
    /// The TLS session (handshake, alert, bad record).
    Tls(rustls::Error),
    /// The reply.
    Http(HttpError),
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::Io(e) => write!(f, "{e}"),
            ExchangeError::Tls(e) => write!(f, "TLS: {e}"),
            ExchangeError::Http(e) => write!(f, "{e}"),
        }
    }
}

/// Where an exchange stands after a step.
#[derive(Debug)]
pub enum Step {
    /// Waiting for the socket.
    Pending,
    /// The reply, or why there is none.
    Done(Result<Reply, ExchangeError>),
}

/// The request and reply on one connection.
pub struct Exchange {
    stream: TcpStream,
    tls: Option<ClientConnection>,
    /// Request bytes not yet written (clear text only: rustls keeps its own).
    out: Vec<u8>,
    out_pos: usize,
    response: Option<Response>,
}

const READ_CHUNK: usize = 16 * 1024;

impl Exchange {
    /// An exchange sending `request` over `stream` (connected), through
    /// `tls` when given.
    pub fn new(stream: TcpStream, tls: Option<ClientConnection>, request: Vec<u8>) -> Self {
        let mut tls = tls;
        let out = match tls.as_mut() {
            Some(conn) => {
                // rustls holds plain text written before the handshake ends
                // and sends it right after.
                let _ = conn.writer().write_all(&request);
                Vec::new()
            }
            None => request,
        };
        Exchange {
            stream,
            tls,
            out,
            out_pos: 0,
            response: Some(Response::new()),
        }
    }

    /// The socket, to (de)register.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Does what the socket allows now.
    pub fn step(&mut self) -> Step {
        let result = match self.tls.is_some() {
            true => self.step_tls(),
            false => self.step_plain(),
        };
        match result {
            Ok(false) => Step::Pending,
            Ok(true) => Step::Done(
                self.response
                    .take()
                    .unwrap_or_default()
                    .finish()
                    .map_err(ExchangeError::Http),
            ),
            Err(e) => Step::Done(Err(e)),
        }
    }

    fn feed(&mut self, data: &[u8]) -> Result<bool, ExchangeError> {
        let response = self.response.get_or_insert_with(Response::new);
        response.feed(data).map_err(ExchangeError::Http)?;
        Ok(response.complete())
    }

    /// `Ok(true)`: the reply is complete.
    fn step_plain(&mut self) -> Result<bool, ExchangeError> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ExchangeError::Io(e)),
            }
        }
        let mut buf = [0u8; READ_CHUNK];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(true),
                Ok(n) => {
                    if self.feed(&buf[..n])? {
                        return Ok(true);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ExchangeError::Io(e)),
            }
        }
    }

    fn step_tls(&mut self) -> Result<bool, ExchangeError> {
        let mut buf = [0u8; READ_CHUNK];
        loop {
            let Some(conn) = self.tls.as_mut() else {
                return Ok(true);
            };
            let mut write_blocked = false;
            while conn.wants_write() {
                match conn.write_tls(&mut self.stream) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        write_blocked = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(ExchangeError::Io(e)),
                }
            }
            let (eof, blocked) = match conn.read_tls(&mut self.stream) {
                Ok(0) => (true, false),
                Ok(_) => (false, false),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => (false, true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => (false, false),
                Err(e) => return Err(ExchangeError::Io(e)),
            };
            conn.process_new_packets().map_err(ExchangeError::Tls)?;
            // Plain text the records carried.
            loop {
                let Some(conn) = self.tls.as_mut() else {
                    return Ok(true);
                };
                match conn.reader().read(&mut buf) {
                    // close_notify.
                    Ok(0) => return Ok(true),
                    Ok(n) => {
                        if self.feed(&buf[..n])? {
                            return Ok(true);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // Closed without close_notify: most HTTPS servers do
                    // that after an HTTP/1.0 reply; keepalived reads it as
                    // the end too.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(true),
                    Err(e) => return Err(ExchangeError::Io(e)),
                }
            }
            if eof {
                let handshaking = self.tls.as_ref().is_some_and(|c| c.is_handshaking());
                if handshaking {
                    return Err(ExchangeError::Tls(rustls::Error::General(
                        "connection closed during the handshake".into(),
                    )));
                }
                return Ok(true);
            }
            let wants_write = self.tls.as_ref().is_some_and(|c| c.wants_write());
            // Both directions wait for the socket: the next event resumes.
            if blocked && (write_blocked || !wants_write) {
                return Ok(false);
            }
        }
    }
}
