//! SMTP_CHECK's dialogue over a connected, non-blocking socket: the
//! server's greeting must be 220, its answer to `HELO <helo_name>` 250,
//! and it must answer `QUIT` (with any code, as keepalived's check_smtp.c
//! accepts). [`Dialogue::step`] does all it can without blocking each
//! time the socket is ready; the prober bounds it in time.
//!
//! Written here rather than taken from an SMTP crate: the check is three
//! replies on a socket the prober's own edge-triggered poll drives, and
//! the SMTP clients on crates.io (lettre, async-smtp) send mail over
//! blocking or async-runtime transports.
//!
//! Unlike keepalived, which reads one line per reply, a multi-line reply
//! (`220-...` lines, then `220 ...`, RFC 5321 4.2.1) is read whole, so a
//! long greeting is not taken for the answer to `HELO`.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

/// The longest reply accepted, continuation lines included (RFC 5321
/// allows 512 bytes a line; a greeting of eight such lines fits).
pub const MAX_REPLY: usize = 4096;

/// Why the dialogue failed.
#[derive(Debug)]
pub enum SmtpError {
    /// Reading or writing the socket.
    Io(io::Error),
    /// The server closed the connection while a reply was awaited.
    Closed(Awaiting),
    /// A reply with another code than the one the check wants.
    Code {
        /// What it answered.
        awaiting: Awaiting,
        /// The code it sent.
        code: u16,
    },
    /// A line that does not start with a three-digit code.
    Malformed(Awaiting),
    /// A reply longer than [`MAX_REPLY`].
    TooLong(Awaiting),
}

impl std::fmt::Display for SmtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SmtpError::Io(e) => write!(f, "{e}"),
            SmtpError::Closed(a) => write!(f, "connection closed before the {a}"),
            SmtpError::Code { awaiting, code } => {
                write!(f, "{awaiting} was {code}")?;
                match awaiting.expected() {
                    Some(want) => write!(f, ", expected {want}"),
                    None => Ok(()),
                }
            }
            SmtpError::Malformed(a) => write!(f, "the {a} has no three-digit code"),
            SmtpError::TooLong(a) => write!(f, "the {a} is longer than {MAX_REPLY} bytes"),
        }
    }
}

/// The reply the dialogue waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaiting {
    /// The greeting (220).
    Greeting,
    /// The answer to `HELO` (250).
    Helo,
    /// The answer to `QUIT` (any).
    Quit,
}

impl Awaiting {
    /// The code the check wants, if one.
    fn expected(self) -> Option<u16> {
        match self {
            Awaiting::Greeting => Some(220),
            Awaiting::Helo => Some(250),
            Awaiting::Quit => None,
        }
    }
}

impl std::fmt::Display for Awaiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Awaiting::Greeting => "greeting",
            Awaiting::Helo => "reply to HELO",
            Awaiting::Quit => "reply to QUIT",
        })
    }
}

/// The first complete reply in `buf`: its code and its length in bytes;
/// `None` while it is incomplete.
pub fn reply(buf: &[u8], awaiting: Awaiting) -> Result<Option<(u16, usize)>, SmtpError> {
    let mut start = 0;
    while let Some(end) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + end];
        start += end + 1;
        let (code, rest) = match line {
            [a, b, c, rest @ ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
                let digit = |d: &u8| u16::from(d - b'0');
                (digit(a) * 100 + digit(b) * 10 + digit(c), rest)
            }
            _ => return Err(SmtpError::Malformed(awaiting)),
        };
        // `NNN-text` continues the reply; `NNN text` or `NNN` ends it.
        if rest.first() != Some(&b'-') {
            return Ok(Some((code, start)));
        }
    }
    if buf.len() > MAX_REPLY {
        return Err(SmtpError::TooLong(awaiting));
    }
    Ok(None)
}

/// Where a dialogue stands after a step.
#[derive(Debug)]
pub enum Step {
    /// Waiting for the socket.
    Pending,
    /// The check passed, or why not.
    Done(Result<(), SmtpError>),
}

/// The dialogue on one connection.
pub struct Dialogue {
    stream: TcpStream,
    helo: Vec<u8>,
    awaiting: Awaiting,
    input: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
}

impl Dialogue {
    /// A dialogue over `stream` (connected), greeting as `helo_name`.
    pub fn new(stream: TcpStream, helo_name: &str) -> Self {
        Dialogue {
            stream,
            helo: format!("HELO {helo_name}\r\n").into_bytes(),
            awaiting: Awaiting::Greeting,
            input: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
        }
    }

    /// The socket, to (de)register.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Writes and reads until the socket would block or the check is
    /// decided.
    pub fn step(&mut self) -> Step {
        match self.run() {
            Ok(true) => Step::Done(Ok(())),
            Ok(false) => Step::Pending,
            Err(e) => Step::Done(Err(e)),
        }
    }

    fn run(&mut self) -> Result<bool, SmtpError> {
        loop {
            while self.out_pos < self.out.len() {
                match self.stream.write(&self.out[self.out_pos..]) {
                    Ok(0) => return Err(SmtpError::Closed(self.awaiting)),
                    Ok(n) => self.out_pos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(SmtpError::Io(e)),
                }
            }
            if let Some((code, len)) = reply(&self.input, self.awaiting)? {
                self.input.drain(..len);
                let next = match (self.awaiting, code) {
                    (Awaiting::Greeting, 220) => (Awaiting::Helo, self.helo.clone()),
                    (Awaiting::Helo, 250) => (Awaiting::Quit, b"QUIT\r\n".to_vec()),
                    (Awaiting::Quit, _) => return Ok(true),
                    (awaiting, code) => return Err(SmtpError::Code { awaiting, code }),
                };
                (self.awaiting, self.out, self.out_pos) = (next.0, next.1, 0);
                continue;
            }
            let mut chunk = [0u8; 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(SmtpError::Closed(self.awaiting)),
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SmtpError::Io(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(buf: &[u8]) -> Option<(u16, usize)> {
        reply(buf, Awaiting::Greeting).unwrap()
    }

    #[test]
    fn a_reply_ends_at_its_last_line_and_may_span_reads() {
        assert_eq!(code(b"220 mx.example ESMTP\r\n"), Some((220, 22)));
        assert_eq!(code(b"250\r\nnext"), Some((250, 5)));
        assert_eq!(code(b"220-mx.example\r\n220-more\r\n"), None);
        assert_eq!(code(b"220-mx.example\r\n220 ready\r\n"), Some((220, 27)));
        assert_eq!(code(b"220 no end yet"), None);
        // A bare LF ends a line too (servers that send one are common).
        assert_eq!(code(b"554 go away\n"), Some((554, 12)));
    }

    #[test]
    fn a_line_without_a_code_or_an_endless_reply_is_an_error() {
        let err = reply(b"hello\r\n", Awaiting::Helo).unwrap_err();
        assert_eq!(err.to_string(), "the reply to HELO has no three-digit code");
        let long = [b'x'; MAX_REPLY + 1];
        let err = reply(&long, Awaiting::Greeting).unwrap_err();
        assert_eq!(err.to_string(), "the greeting is longer than 4096 bytes");
    }

    #[test]
    fn errors_name_the_reply_and_the_code_wanted() {
        let e = SmtpError::Code {
            awaiting: Awaiting::Greeting,
            code: 554,
        };
        assert_eq!(e.to_string(), "greeting was 554, expected 220");
        let e = SmtpError::Closed(Awaiting::Quit);
        assert_eq!(e.to_string(), "connection closed before the reply to QUIT");
    }
}
