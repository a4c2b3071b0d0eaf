//! The control socket: `vrlb status` and `vrlb conns` ask the running
//! daemon over a Unix stream socket and print its answer as `ipvsadm -L -n`
//! and `ipvsadm -L -c -n` do, or as JSON. Owns the socket, the request
//! and answer formats and their text layouts; decides nothing and never
//! changes the node (read-only).
//!
//! Protocol: the client sends one request line (`status` or `conns`), the
//! daemon answers with one JSON document and closes. Only root (the
//! daemon's user) may connect: the socket is 0600 in a 0700 directory.

pub mod client;
pub mod layout;
pub mod report;
pub mod server;

pub use server::Control;

/// Where `vrlb run` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/vrlb/control.sock";

/// Longest request line the daemon reads.
pub const MAX_REQUEST: usize = 64;

/// What a client asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Services, servers, counters: [`report::Status`].
    Status,
    /// Connections and templates: [`report::Conns`].
    Conns,
}

impl Request {
    /// The request line's word.
    pub fn word(self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Conns => "conns",
        }
    }

    /// The request a line names, if any.
    pub fn parse(line: &str) -> Option<Request> {
        match line.trim() {
            "status" => Some(Request::Status),
            "conns" => Some(Request::Conns),
            _ => None,
        }
    }
}
