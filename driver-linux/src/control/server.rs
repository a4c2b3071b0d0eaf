//! The daemon side of the control socket, as an [`Extension`]: listens,
//! reads one request line per client, answers with the JSON of
//! [`super::report`] built from the node and the data plane at that
//! moment, and closes. Never blocks the loop (non-blocking sockets, a
//! deadline per client, a bounded number of clients) and never changes
//! the node.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use log::{debug, info, warn};
use mio::Interest;
use mio::net::{UnixListener, UnixStream};
use vrlb_core::config::{ForwardKind, VirtualServer};
use vrlb_core::lb::ServiceId;
use vrlb_core::time::{Duration, Instant};

use super::{MAX_REQUEST, Request, report};
use crate::daemon::event_loop::{Context, Extension};
use crate::dataplane::DataPlaneView;

/// The listener's token; clients get the ones after it.
const LISTENER: usize = 0;
/// Clients served at once; more are closed at accept.
const MAX_CLIENTS: usize = 32;
/// A client that has not sent its request or read its answer by then is
/// dropped.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

struct Client {
    stream: UnixStream,
    request: Vec<u8>,
    answer: Vec<u8>,
    written: usize,
    deadline: Instant,
}

/// The control-socket extension.
pub struct Control {
    path: PathBuf,
    view: DataPlaneView,
    listener: Option<UnixListener>,
    clients: HashMap<usize, Client>,
    next_token: usize,
    /// `lb_kind` of each service of the configuration being built.
    building: HashMap<ServiceId, ForwardKind>,
    forward: HashMap<ServiceId, ForwardKind>,
}

impl Control {
    /// A control socket at `path` showing the node and `view`.
    pub fn new(path: &Path, view: DataPlaneView) -> Control {
        Control {
            path: path.to_path_buf(),
            view,
            listener: None,
            clients: HashMap::new(),
            next_token: LISTENER + 1,
            building: HashMap::new(),
            forward: HashMap::new(),
        }
    }

    fn accept(&mut self, ctx: &mut Context<'_>) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            let mut stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!("control socket: accept: {e}");
                    return;
                }
            };
            if self.clients.len() >= MAX_CLIENTS {
                debug!("control socket: too many clients, closing one");
                continue;
            }
            // Tokens wrap far beyond any real count; skip ones in use.
            let mut token = self.next_token;
            while token == LISTENER || self.clients.contains_key(&token) {
                token = (token + 1) % (1 << 20);
            }
            self.next_token = (token + 1) % (1 << 20);
            if let Err(e) = ctx.register(&mut stream, token, Interest::READABLE) {
                warn!("control socket: epoll: {e}");
                continue;
            }
            let deadline = ctx.now() + CLIENT_TIMEOUT;
            self.clients.insert(
                token,
                Client {
                    stream,
                    request: Vec::new(),
                    answer: Vec::new(),
                    written: 0,
                    deadline,
                },
            );
        }
    }

    /// Reads what the client sent; answers once a line is complete.
    fn read(&mut self, token: usize, ctx: &mut Context<'_>) -> bool {
        let Some(c) = self.clients.get_mut(&token) else {
            return false;
        };
        let mut buf = [0u8; MAX_REQUEST];
        loop {
            match c.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    c.request.extend_from_slice(&buf[..n]);
                    if c.request.len() > MAX_REQUEST {
                        debug!("control socket: request too long");
                        return false;
                    }
                    if c.request.contains(&b'\n') {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        let line = String::from_utf8_lossy(&c.request);
        let line = line.split('\n').next().unwrap_or("");
        let answer = match Request::parse(line) {
            Some(Request::Status) => {
                serde_json::to_vec(&report::status(ctx.node(), &self.view, &self.forward))
            }
            Some(Request::Conns) => serde_json::to_vec(&report::conns(&self.view)),
            None => serde_json::to_vec(&serde_json::json!({
                "error": format!("unknown request '{}': ask status or conns", line.trim())
            })),
        };
        let Ok(mut answer) = answer else {
            return false;
        };
        answer.push(b'\n');
        c.answer = answer;
        if ctx
            .reregister(&mut c.stream, token, Interest::WRITABLE)
            .is_err()
        {
            return false;
        }
        self.write(token)
    }

    /// Writes what the socket takes; false when done or failed.
    fn write(&mut self, token: usize) -> bool {
        let Some(c) = self.clients.get_mut(&token) else {
            return false;
        };
        while c.written < c.answer.len() {
            match c.stream.write(&c.answer[c.written..]) {
                Ok(0) => return false,
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        false
    }

    fn close(&mut self, token: usize, ctx: &mut Context<'_>) {
        if let Some(mut c) = self.clients.remove(&token) {
            let _ = ctx.deregister(&mut c.stream);
        }
    }
}

/// Binds `path` as a socket only root can use: its directory is created
/// 0700 when missing (an existing one keeps its mode: it may be shared),
/// the socket is made 0600 before anyone can connect (umask around bind).
/// A socket left by a dead daemon is replaced; a live one refuses.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another daemon answers on it",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

impl Extension for Control {
    fn name(&self) -> &str {
        "control socket"
    }

    fn start(&mut self, ctx: &mut Context<'_>) -> io::Result<()> {
        let mut listener = bind(&self.path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))?;
        ctx.register(&mut listener, LISTENER, Interest::READABLE)?;
        info!("control socket on {}", self.path.display());
        self.listener = Some(listener);
        Ok(())
    }

    fn ready(&mut self, local: usize, readable: bool, writable: bool, ctx: &mut Context<'_>) {
        if local == LISTENER {
            self.accept(ctx);
            return;
        }
        let Some(c) = self.clients.get(&local) else {
            return;
        };
        let keep = if c.answer.is_empty() {
            !readable || self.read(local, ctx)
        } else {
            !writable || self.write(local)
        };
        if !keep {
            self.close(local, ctx);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.clients.values().map(|c| c.deadline).min()
    }

    fn handle_timeout(&mut self, ctx: &mut Context<'_>) {
        let now = ctx.now();
        let late: Vec<usize> = self
            .clients
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in late {
            debug!("control socket: client timed out");
            self.close(t, ctx);
        }
    }

    fn virtual_server(&mut self, services: &[ServiceId], vs: &VirtualServer<'_>) {
        for id in services {
            self.building.insert(*id, vs.kind);
        }
    }

    fn reloaded(&mut self, _ctx: &mut Context<'_>) {
        self.forward = std::mem::take(&mut self.building);
    }

    fn shutdown(&mut self, ctx: &mut Context<'_>) {
        let tokens: Vec<usize> = self.clients.keys().copied().collect();
        for t in tokens {
            self.close(t, ctx);
        }
        if let Some(mut l) = self.listener.take() {
            let _ = ctx.deregister(&mut l);
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
