//! The kernel's process events connector (`NETLINK_CONNECTOR`,
//! `CN_IDX_PROC`): a non-blocking netlink socket that hears every fork,
//! exec, name change and exit, as keepalived's track_process does.
//! Written by hand on `netlink-sys`'s socket: no crate we use parses
//! connector messages, and the format is four fixed C structs
//! (linux/connector.h, linux/cn_proc.h).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_CONNECTOR};

/// The process events connector's index and value (linux/connector.h).
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
/// `enum proc_cn_mcast_op`.
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_CN_MCAST_IGNORE: u32 = 2;
/// `NLMSG_DONE`: what the connector's messages are sent as.
const NLMSG_DONE: u16 = 3;
const NLMSG_HDR: usize = 16;
const CN_MSG: usize = 20;
/// `struct proc_event`'s header: what, cpu, timestamp.
const EVENT_HDR: usize = 16;
/// `enum what` values.
const PROC_EVENT_FORK: u32 = 0x1;
const PROC_EVENT_EXEC: u32 = 0x2;
const PROC_EVENT_COMM: u32 = 0x200;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;
/// Events queued in the kernel before it drops some (then we rescan).
const RECV_BUFFER: usize = 4 << 20;

/// A process event, for thread group leaders and threads alike (`pid`
/// is the thread, `tgid` its process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `parent_tgid` forked `child_pid` of process `child_tgid`.
    Fork {
        parent_tgid: u32,
        child_pid: u32,
        child_tgid: u32,
    },
    /// The process ran a new program.
    Exec { pid: u32, tgid: u32 },
    /// The thread's name became `comm`.
    Comm { pid: u32, tgid: u32, comm: String },
    /// The thread exited.
    Exit { pid: u32, tgid: u32 },
}

/// A subscribed connector socket.
pub struct Connector {
    socket: Socket,
    /// Where datagrams are read (kept: the loop reads on every event).
    buf: Vec<u8>,
}

impl Connector {
    /// Opens and subscribes (needs CAP_NET_ADMIN in the initial user and
    /// PID namespaces).
    pub fn open() -> io::Result<Connector> {
        let mut socket = Socket::new(NETLINK_CONNECTOR)?;
        socket.bind(&SocketAddr::new(0, CN_IDX_PROC))?;
        socket.set_non_blocking(true)?;
        socket.set_rx_buf_sz(RECV_BUFFER)?;
        let c = Connector {
            socket,
            buf: Vec::with_capacity(8192),
        };
        c.send_op(PROC_CN_MCAST_LISTEN)?;
        Ok(c)
    }

    fn send_op(&self, op: u32) -> io::Result<()> {
        let mut msg = Vec::with_capacity(NLMSG_HDR + CN_MSG + 4);
        msg.extend_from_slice(&((NLMSG_HDR + CN_MSG + 4) as u32).to_ne_bytes());
        msg.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
        msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
        msg.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel's business
        msg.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        msg.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
        msg.extend_from_slice(&0u32.to_ne_bytes()); // ack
        msg.extend_from_slice(&4u16.to_ne_bytes()); // len
        msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
        msg.extend_from_slice(&op.to_ne_bytes());
        self.socket.send(&msg, 0)?;
        Ok(())
    }

    /// Reads every event waiting into `out`. `Ok(false)`: the kernel
    /// dropped events (its queue filled), so counts must be rebuilt from
    /// `/proc`.
    pub fn read(&mut self, out: &mut Vec<Event>) -> io::Result<bool> {
        let mut complete = true;
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(_) => parse(&self.buf, out),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(complete),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => complete = false,
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsRawFd for Connector {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        // The kernel counts listeners and stops building events at zero.
        let _ = self.send_op(PROC_CN_MCAST_IGNORE);
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The events in one datagram (short or foreign messages are skipped).
pub fn parse(mut buf: &[u8], out: &mut Vec<Event>) {
    while let Some(len) = u32_at(buf, 0).map(|l| l as usize) {
        if len < NLMSG_HDR || len > buf.len() {
            return;
        }
        let msg = &buf[..len];
        // Messages are 4-byte aligned (NLMSG_ALIGN).
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
        let cn = &msg[NLMSG_HDR..];
        if u32_at(cn, 0) != Some(CN_IDX_PROC) || u32_at(cn, 4) != Some(CN_VAL_PROC) {
            continue;
        }
        let Some(ev) = cn.get(CN_MSG..) else { continue };
        let (Some(what), Some(data)) = (u32_at(ev, 0), ev.get(EVENT_HDR..)) else {
            continue;
        };
        let field = |i: usize| u32_at(data, 4 * i);
        let event = match what {
            PROC_EVENT_FORK => (|| {
                Some(Event::Fork {
                    parent_tgid: field(1)?,
                    child_pid: field(2)?,
                    child_tgid: field(3)?,
                })
            })(),
            PROC_EVENT_EXEC => (|| {
                Some(Event::Exec {
                    pid: field(0)?,
                    tgid: field(1)?,
                })
            })(),
            PROC_EVENT_COMM => (|| {
                let name = data.get(8..24)?;
                let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
                Some(Event::Comm {
                    pid: field(0)?,
                    tgid: field(1)?,
                    comm: String::from_utf8_lossy(&name[..end]).into_owned(),
                })
            })(),
            PROC_EVENT_EXIT => (|| {
                Some(Event::Exit {
                    pid: field(0)?,
                    tgid: field(1)?,
                })
            })(),
            _ => None,
        };
        out.extend(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One connector message carrying event `what` with `data`.
    fn message(what: u32, data: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDR + CN_MSG + EVENT_HDR + data.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        m.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&((EVENT_HDR + data.len()) as u16).to_ne_bytes());
        m.extend_from_slice(&[0; 2]);
        m.extend_from_slice(&what.to_ne_bytes());
        m.extend_from_slice(&[0; 12]);
        m.extend_from_slice(data);
        m
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_ne_bytes()).collect()
    }

    #[test]
    fn the_kernel_events_parse_and_others_are_skipped() {
        let mut buf = message(PROC_EVENT_FORK, &words(&[10, 10, 11, 11]));
        buf.extend(message(PROC_EVENT_EXEC, &words(&[11, 11])));
        let mut comm = words(&[12, 11]);
        comm.extend_from_slice(b"worker\0\0\0\0\0\0\0\0\0\0");
        buf.extend(message(PROC_EVENT_COMM, &comm));
        buf.extend(message(0x4, &words(&[11, 11, 0, 0]))); // a uid change
        buf.extend(message(PROC_EVENT_EXIT, &words(&[11, 11, 0, 9, 10, 10])));
        let mut out = Vec::new();
        parse(&buf, &mut out);
        assert_eq!(
            out,
            [
                Event::Fork {
                    parent_tgid: 10,
                    child_pid: 11,
                    child_tgid: 11
                },
                Event::Exec { pid: 11, tgid: 11 },
                Event::Comm {
                    pid: 12,
                    tgid: 11,
                    comm: "worker".into()
                },
                Event::Exit { pid: 11, tgid: 11 },
            ]
        );
        let mut short = Vec::new();
        parse(&buf[..30], &mut short);
        assert!(short.is_empty(), "a cut message is dropped whole");
    }
}
