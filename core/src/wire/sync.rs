//! Connection-sync messages on the wire: what the director holding the VIP
//! tells its backups about connections and persistence templates, so a
//! backup that takes over keeps established flows and persistent clients
//! on their servers (the job of IPVS's sync daemon, ip_vs_sync.c).
//!
//! vrlb's own format, not IPVS's: IPVS v1 has no sequence number, so a
//! receiver cannot drop duplicates or count losses, and carries the full
//! state timeout rather than what is left of it. The two do not interwork.
//! Carried in one UDP datagram per message; nothing here does I/O, keeps
//! state or allocates.
//!
//! All integers are big-endian. A message is a 16-byte header and `count`
//! entries:
//!
//! ```text
//! offset size  header field
//!  0      1    version: 1
//!  1      1    sync id: only receivers configured with the same id apply it
//!              (IPVS `syncid`), so several clusters can share a segment
//!  2      2    length: bytes of the whole message, header included
//!  4      4    session: the sender's id for this run (random at start)
//!  8      4    sequence: +1 per message within a session (wrapping)
//! 12      2    count: entries that follow
//! 14      2    reserved: 0 on send, ignored on receipt
//!
//! offset size  entry field (A = 4 or 16, S = 4 or 16)
//!  0      1    kind: 1 connection, 2 persistence template
//!  1      1    family: bit 0 client and VIP are IPv6 (A = 16),
//!              bit 1 server is IPv6 (S = 16), other bits 0
//!  2      1    protocol: IP protocol number (6, 17, 132); templates of
//!              fwmark services: 0
//!  3      1    state: TCP state in IPVS's numbering (0 NONE .. 10 SYNACK),
//!              0 for other protocols and templates
//!  4      1    flags: bit 0 template kept alive by its connections
//!              (IPVS expire_later); other bits 0, ignored on receipt
//!  5      1    reserved: 0
//!  6      2    client port (templates: 0)
//!  8      2    virtual port (templates: the service's port)
//! 10      2    server port
//! 12      4    fwmark of the service, 0 for address services
//! 16      4    timeout in milliseconds the receiver gives the entry
//! 20      A    client address (templates: masked by the granularity)
//! 20+A    A    virtual address (templates of fwmark services: 0)
//! 20+2A   S    server address
//! ```
//!
//! An IPv4 entry is 32 bytes, an IPv6 one 68. [`Packet::new_checked`]
//! validates the header and every entry once, so a message is either
//! applied whole or dropped whole, and no accessor can panic afterwards.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The only version this module reads and writes.
pub const VERSION: u8 = 1;
/// Length of the message header.
pub const HEADER_LEN: usize = 16;
/// Length of an entry without its addresses.
pub const ENTRY_FIXED_LEN: usize = 20;
/// Length of an entry with IPv4 client, VIP and server.
pub const ENTRY_V4_LEN: usize = ENTRY_FIXED_LEN + 3 * 4;
/// Length of an entry with IPv6 client, VIP and server (the largest).
pub const ENTRY_V6_LEN: usize = ENTRY_FIXED_LEN + 3 * 16;
/// Largest message: `u16` length field.
pub const MESSAGE_LEN_MAX: usize = u16::MAX as usize;

const KIND_CONNECTION: u8 = 1;
const KIND_TEMPLATE: u8 = 2;
const FAMILY_V6: u8 = 0x01;
const FAMILY_SERVER_V6: u8 = 0x02;
const FLAG_LATE: u8 = 0x01;
/// TCP states are numbered 0..=10 (IPVS `IP_VS_TCP_S_*` up to SYNACK).
const TCP_STATE_MAX: u8 = 10;

mod field {
    use core::ops::Range;
    pub const VERSION: usize = 0;
    pub const SYNC_ID: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const SESSION: Range<usize> = 4..8;
    pub const SEQUENCE: Range<usize> = 8..12;
    pub const COUNT: Range<usize> = 12..14;
    pub const RESERVED: Range<usize> = 14..16;

    // Entry fields, relative to the entry.
    pub const E_KIND: usize = 0;
    pub const E_FAMILY: usize = 1;
    pub const E_PROTOCOL: usize = 2;
    pub const E_STATE: usize = 3;
    pub const E_FLAGS: usize = 4;
    pub const E_RESERVED: usize = 5;
    pub const E_CPORT: Range<usize> = 6..8;
    pub const E_VPORT: Range<usize> = 8..10;
    pub const E_SPORT: Range<usize> = 10..12;
    pub const E_FWMARK: Range<usize> = 12..16;
    pub const E_TIMEOUT: Range<usize> = 16..20;
    pub const E_ADDRS: usize = 20;
}

/// What is wrong with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EntryProblem {
    /// The entry runs past the message's length.
    Truncated,
    /// Kind is neither 1 (connection) nor 2 (template).
    Kind(u8),
    /// Family has bits other than 0 and 1 set.
    Family(u8),
    /// A connection's protocol is not TCP, UDP or SCTP (a template's not
    /// one of those or 0).
    Protocol(u8),
    /// TCP state above 10, or a non-zero state where none applies.
    State(u8),
}

/// Why a message was not accepted. Each maps to a drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// Shorter than the header, or than the header's length field.
    Truncated,
    /// A version this module does not speak.
    BadVersion(u8),
    /// The length field is below the header's size, the datagram is
    /// longer than it, or the entries do not fill it exactly.
    BadLength,
    /// Entry number `index` (from 0) is malformed.
    BadEntry {
        /// Position of the entry in the message.
        index: u16,
        /// What is wrong with it.
        problem: EntryProblem,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("sync message truncated"),
            Error::BadVersion(v) => write!(f, "sync message version {v}, expected {VERSION}"),
            Error::BadLength => {
                f.write_str("sync message length field does not match the datagram or its entries")
            }
            Error::BadEntry { index, problem } => {
                write!(f, "sync message entry {index}: ")?;
                match problem {
                    EntryProblem::Truncated => f.write_str("runs past the message length"),
                    EntryProblem::Kind(k) => write!(f, "unknown kind {k}"),
                    EntryProblem::Family(b) => write!(f, "invalid family bits {b:#04x}"),
                    EntryProblem::Protocol(p) => write!(f, "unsupported protocol {p}"),
                    EntryProblem::State(s) => write!(f, "invalid state {s}"),
                }
            }
        }
    }
}

impl core::error::Error for Error {}

type Result<T> = core::result::Result<T, Error>;

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Address length for a family bit.
const fn alen(v6: bool) -> usize {
    if v6 { 16 } else { 4 }
}

/// Entry length from its family byte (valid bits only).
const fn entry_len(family: u8) -> usize {
    ENTRY_FIXED_LEN + 2 * alen(family & FAMILY_V6 != 0) + alen(family & FAMILY_SERVER_V6 != 0)
}

/// Validates the entry at the start of `b`; its length on success.
fn check_entry(b: &[u8]) -> core::result::Result<usize, EntryProblem> {
    if b.len() < ENTRY_FIXED_LEN {
        return Err(EntryProblem::Truncated);
    }
    let kind = b[field::E_KIND];
    let family = b[field::E_FAMILY];
    let protocol = b[field::E_PROTOCOL];
    let state = b[field::E_STATE];
    if kind != KIND_CONNECTION && kind != KIND_TEMPLATE {
        return Err(EntryProblem::Kind(kind));
    }
    if family & !(FAMILY_V6 | FAMILY_SERVER_V6) != 0 {
        return Err(EntryProblem::Family(family));
    }
    match protocol {
        6 | 17 | 132 => {}
        0 if kind == KIND_TEMPLATE => {}
        p => return Err(EntryProblem::Protocol(p)),
    }
    let state_ok = if kind == KIND_CONNECTION && protocol == 6 {
        state <= TCP_STATE_MAX
    } else {
        state == 0
    };
    if !state_ok {
        return Err(EntryProblem::State(state));
    }
    let len = entry_len(family);
    if b.len() < len {
        return Err(EntryProblem::Truncated);
    }
    Ok(len)
}

/// A zero-copy view of a sync message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// A view without checks; accessors may panic on short buffers.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// A view of a whole message, validated: header, version, length
    /// against the buffer, and every entry (kind, family, protocol, state,
    /// size). After this no accessor panics.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// The checks of [`Self::new_checked`].
    pub fn check(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VERSION] != VERSION {
            return Err(Error::BadVersion(b[field::VERSION]));
        }
        let len = usize::from(be16(&b[field::LENGTH]));
        if len < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if b.len() < len {
            return Err(Error::Truncated);
        }
        if b.len() > len {
            return Err(Error::BadLength);
        }
        let count = be16(&b[field::COUNT]);
        let mut at = HEADER_LEN;
        for index in 0..count {
            match check_entry(&b[at..len]) {
                Ok(n) => at += n,
                Err(problem) => return Err(Error::BadEntry { index, problem }),
            }
        }
        if at != len {
            return Err(Error::BadLength);
        }
        Ok(())
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version byte.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }
    /// Sync id.
    pub fn sync_id(&self) -> u8 {
        self.buffer.as_ref()[field::SYNC_ID]
    }
    /// Length field.
    pub fn length(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }
    /// Sender session.
    pub fn session(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SESSION])
    }
    /// Sequence number.
    pub fn sequence(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SEQUENCE])
    }
    /// Number of entries.
    pub fn count(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::COUNT])
    }

    /// The entries, in order. Stops early (never panics) on a buffer that
    /// [`Self::check`] would reject.
    pub fn entries(&self) -> Entries<'_> {
        let b = self.buffer.as_ref();
        let len = usize::from(self.length()).min(b.len());
        Entries {
            bytes: &b[HEADER_LEN.min(len)..len],
            left: self.count(),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_header(&mut self, repr: &Repr, length: u16) {
        let b = self.buffer.as_mut();
        b[field::VERSION] = VERSION;
        b[field::SYNC_ID] = repr.sync_id;
        b[field::LENGTH].copy_from_slice(&length.to_be_bytes());
        b[field::SESSION].copy_from_slice(&repr.session.to_be_bytes());
        b[field::SEQUENCE].copy_from_slice(&repr.sequence.to_be_bytes());
        b[field::COUNT].copy_from_slice(&repr.count.to_be_bytes());
        b[field::RESERVED].fill(0);
    }
}

/// Iterator over a message's entries (see [`Packet::entries`]).
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    bytes: &'a [u8],
    left: u16,
}

impl Iterator for Entries<'_> {
    type Item = EntryRepr;

    fn next(&mut self) -> Option<EntryRepr> {
        if self.left == 0 {
            return None;
        }
        let (e, n) = EntryRepr::parse(self.bytes).ok()?;
        self.bytes = &self.bytes[n..];
        self.left -= 1;
        Some(e)
    }
}

/// A message header as a plain value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Repr {
    /// Sync id (IPVS `syncid`).
    pub sync_id: u8,
    /// The sender's session id.
    pub session: u32,
    /// Sequence number within the session.
    pub sequence: u32,
    /// Entries in the message.
    pub count: u16,
}

impl Repr {
    /// The header of a checked packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check()?;
        Ok(Repr {
            sync_id: packet.sync_id(),
            session: packet.session(),
            sequence: packet.sequence(),
            count: packet.count(),
        })
    }

    /// Header bytes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header for a message of `length` bytes in total (the
    /// entries are written with [`EntryRepr::emit`] or a [`Writer`]).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>, length: u16) {
        packet.set_header(self, length);
    }
}

/// Connection or template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EntryKind {
    /// A connection: client address and port to VIP and port.
    Connection,
    /// A persistence template: a (masked) client's server for a service.
    Template,
}

/// One entry as a plain value. The client and VIP share a family (an
/// IPv4 one is written as IPv4-mapped IPv6 when the other is IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EntryRepr {
    /// Connection or template.
    pub kind: EntryKind,
    /// IP protocol number (templates of fwmark services: 0).
    pub protocol: u8,
    /// TCP state (IPVS numbering), 0 otherwise.
    pub state: u8,
    /// Template kept alive by its connections (IPVS expire_later).
    pub late: bool,
    /// Client address (templates: masked).
    pub client: IpAddr,
    /// Client port (templates: 0).
    pub client_port: u16,
    /// Virtual address (templates of fwmark services: unspecified).
    pub vip: IpAddr,
    /// Virtual port (templates: the service's port).
    pub vport: u16,
    /// Real server address.
    pub server: IpAddr,
    /// Real server port.
    pub server_port: u16,
    /// The service's fwmark, 0 for address services.
    pub fwmark: u32,
    /// Timeout the receiver gives the entry, in milliseconds.
    pub timeout_ms: u32,
}

fn write_addr(b: &mut [u8], addr: IpAddr, v6: bool) -> usize {
    if v6 {
        let o = match addr {
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            IpAddr::V6(a) => a.octets(),
        };
        b[..16].copy_from_slice(&o);
        16
    } else {
        let o = match addr {
            IpAddr::V4(a) => a.octets(),
            // Unreachable through `family()`: a v6 address makes the
            // family v6.
            IpAddr::V6(_) => [0; 4],
        };
        b[..4].copy_from_slice(&o);
        4
    }
}

fn read_addr(b: &[u8], v6: bool) -> IpAddr {
    if v6 {
        let mut o = [0u8; 16];
        o.copy_from_slice(&b[..16]);
        IpAddr::V6(Ipv6Addr::from(o))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }
}

impl EntryRepr {
    fn family(&self) -> u8 {
        let mut f = 0;
        if self.client.is_ipv6() || self.vip.is_ipv6() {
            f |= FAMILY_V6;
        }
        if self.server.is_ipv6() {
            f |= FAMILY_SERVER_V6;
        }
        f
    }

    /// Bytes this entry takes.
    pub fn buffer_len(&self) -> usize {
        entry_len(self.family())
    }

    /// Parses the entry at the start of `b`; the entry and its length.
    pub fn parse(b: &[u8]) -> Result<(EntryRepr, usize)> {
        let len = check_entry(b).map_err(|problem| Error::BadEntry { index: 0, problem })?;
        let family = b[field::E_FAMILY];
        let v6 = family & FAMILY_V6 != 0;
        let a = alen(v6);
        let at = field::E_ADDRS;
        let e = EntryRepr {
            kind: if b[field::E_KIND] == KIND_CONNECTION {
                EntryKind::Connection
            } else {
                EntryKind::Template
            },
            protocol: b[field::E_PROTOCOL],
            state: b[field::E_STATE],
            late: b[field::E_FLAGS] & FLAG_LATE != 0,
            client: read_addr(&b[at..], v6),
            client_port: be16(&b[field::E_CPORT]),
            vip: read_addr(&b[at + a..], v6),
            vport: be16(&b[field::E_VPORT]),
            server: read_addr(&b[at + 2 * a..], family & FAMILY_SERVER_V6 != 0),
            server_port: be16(&b[field::E_SPORT]),
            fwmark: be32(&b[field::E_FWMARK]),
            timeout_ms: be32(&b[field::E_TIMEOUT]),
        };
        Ok((e, len))
    }

    /// Writes the entry at the start of `b`, which must hold at least
    /// [`Self::buffer_len`] bytes (panics otherwise, like smoltcp's emit).
    /// Returns the bytes written.
    pub fn emit(&self, b: &mut [u8]) -> usize {
        let family = self.family();
        let v6 = family & FAMILY_V6 != 0;
        b[field::E_KIND] = match self.kind {
            EntryKind::Connection => KIND_CONNECTION,
            EntryKind::Template => KIND_TEMPLATE,
        };
        b[field::E_FAMILY] = family;
        b[field::E_PROTOCOL] = self.protocol;
        b[field::E_STATE] = self.state;
        b[field::E_FLAGS] = if self.late { FLAG_LATE } else { 0 };
        b[field::E_RESERVED] = 0;
        b[field::E_CPORT].copy_from_slice(&self.client_port.to_be_bytes());
        b[field::E_VPORT].copy_from_slice(&self.vport.to_be_bytes());
        b[field::E_SPORT].copy_from_slice(&self.server_port.to_be_bytes());
        b[field::E_FWMARK].copy_from_slice(&self.fwmark.to_be_bytes());
        b[field::E_TIMEOUT].copy_from_slice(&self.timeout_ms.to_be_bytes());
        let mut at = field::E_ADDRS;
        at += write_addr(&mut b[at..], self.client, v6);
        at += write_addr(&mut b[at..], self.vip, v6);
        at += write_addr(&mut b[at..], self.server, family & FAMILY_SERVER_V6 != 0);
        at
    }
}

/// Builds one message in a caller buffer: entries are appended while they
/// fit under a size limit, then [`Writer::finish`] writes the header.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    limit: usize,
    len: usize,
    count: u16,
}

impl<'a> Writer<'a> {
    /// A writer whose message will be at most `limit` bytes (and at most
    /// the buffer's and the format's size). `None` when not even the
    /// header fits.
    pub fn new(buf: &'a mut [u8], limit: usize) -> Option<Writer<'a>> {
        let limit = limit.min(buf.len()).min(MESSAGE_LEN_MAX);
        (limit >= HEADER_LEN).then_some(Writer {
            buf,
            limit,
            len: HEADER_LEN,
            count: 0,
        })
    }

    /// Appends `e` if it fits; false (nothing written) when it does not.
    pub fn push(&mut self, e: &EntryRepr) -> bool {
        let n = e.buffer_len();
        if self.len + n > self.limit || self.count == u16::MAX {
            return false;
        }
        self.len += e.emit(&mut self.buf[self.len..]);
        self.count += 1;
        true
    }

    /// Whether an entry of `n` bytes would still fit.
    pub fn fits(&self, n: usize) -> bool {
        self.len + n <= self.limit && self.count < u16::MAX
    }

    /// Entries so far.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// Bytes so far, header included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Writes the header (with the count and length) and returns the
    /// message's length.
    pub fn finish(self, sync_id: u8, session: u32, sequence: u32) -> usize {
        let repr = Repr {
            sync_id,
            session,
            sequence,
            count: self.count,
        };
        // `len <= limit <= u16::MAX`.
        let len = self.len as u16;
        repr.emit(&mut Packet::new_unchecked(&mut self.buf[..]), len);
        self.len
    }
}

/// Parses a whole message: its header and entries. The fuzz entry point:
/// any input gives a value or an error, never a panic.
pub fn parse(bytes: &[u8]) -> Result<(Repr, Entries<'_>)> {
    let p = Packet::new_checked(bytes)?;
    let repr = Repr::parse(&p)?;
    let len = usize::from(p.length());
    Ok((
        repr,
        Entries {
            bytes: &bytes[HEADER_LEN..len],
            left: repr.count,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use heapless::Vec;
    use proptest::prelude::*;

    /// A message as the tests build it: at most 1500 bytes.
    type Message = Vec<u8, 1500>;

    fn conn_v4() -> EntryRepr {
        EntryRepr {
            kind: EntryKind::Connection,
            protocol: 6,
            state: 1,
            late: false,
            client: "203.0.113.7".parse().unwrap(),
            client_port: 40000,
            vip: "192.0.2.10".parse().unwrap(),
            vport: 80,
            server: "198.51.100.2".parse().unwrap(),
            server_port: 80,
            fwmark: 0,
            timeout_ms: 900_000,
        }
    }

    fn template_v6() -> EntryRepr {
        EntryRepr {
            kind: EntryKind::Template,
            protocol: 0,
            state: 0,
            late: true,
            client: "2001:db8:1::".parse().unwrap(),
            client_port: 0,
            vip: "::".parse().unwrap(),
            vport: 0,
            server: "2001:db8:2::5".parse().unwrap(),
            server_port: 443,
            fwmark: 7,
            timeout_ms: 60_000,
        }
    }

    fn message(entries: &[EntryRepr]) -> Message {
        let mut buf = Message::new();
        buf.resize(1500, 0).unwrap();
        let mut w = Writer::new(&mut buf, 1500).unwrap();
        for e in entries {
            assert!(w.push(e));
        }
        let n = w.finish(9, 0xdead_beef, 42);
        buf.truncate(n);
        buf
    }

    #[test]
    fn round_trip_and_layout() {
        let es = [conn_v4(), template_v6()];
        let m = message(&es);
        assert_eq!(m.len(), HEADER_LEN + ENTRY_V4_LEN + ENTRY_V6_LEN);
        // Header bytes as the module doc lays them out.
        assert_eq!(m[0], 1);
        assert_eq!(m[1], 9);
        assert_eq!(u16::from_be_bytes([m[2], m[3]]) as usize, m.len());
        assert_eq!(&m[4..8], &0xdead_beefu32.to_be_bytes());
        assert_eq!(&m[8..12], &42u32.to_be_bytes());
        assert_eq!(&m[12..14], &2u16.to_be_bytes());
        // First entry: kind, family, protocol, state, ports, addresses.
        let e = &m[HEADER_LEN..];
        assert_eq!(&e[..4], &[1, 0, 6, 1]);
        assert_eq!(&e[6..8], &40000u16.to_be_bytes());
        assert_eq!(&e[16..20], &900_000u32.to_be_bytes());
        assert_eq!(&e[20..24], &[203, 0, 113, 7]);
        assert_eq!(&e[24..28], &[192, 0, 2, 10]);
        assert_eq!(&e[28..32], &[198, 51, 100, 2]);
        let (repr, entries) = parse(&m).unwrap();
        assert_eq!(
            repr,
            Repr {
                sync_id: 9,
                session: 0xdead_beef,
                sequence: 42,
                count: 2
            }
        );
        assert_eq!(entries.collect::<Vec<_, 8>>(), es);
    }

    #[test]
    fn writer_respects_limit() {
        let mut buf = [0u8; 1500];
        let mut w = Writer::new(&mut buf, HEADER_LEN + 2 * ENTRY_V4_LEN + 10).unwrap();
        assert!(w.push(&conn_v4()));
        assert!(w.push(&conn_v4()));
        assert!(!w.push(&conn_v4()), "third entry exceeds the limit");
        assert_eq!(w.finish(0, 0, 0), HEADER_LEN + 2 * ENTRY_V4_LEN);
        assert!(Writer::new(&mut buf, HEADER_LEN - 1).is_none());
    }

    #[test]
    fn rejects_malformed_with_specific_errors() {
        let m = message(&[conn_v4()]);
        assert_eq!(parse(&m[..10]).unwrap_err(), Error::Truncated);
        assert_eq!(parse(&m[..m.len() - 1]).unwrap_err(), Error::Truncated);
        let mut long = m.clone();
        long.push(0).unwrap();
        assert_eq!(parse(&long).unwrap_err(), Error::BadLength);
        let mut v = m.clone();
        v[0] = 2;
        assert_eq!(parse(&v).unwrap_err(), Error::BadVersion(2));
        let mut c = m.clone();
        c[13] = 2; // count 2, one entry's worth of bytes
        assert_eq!(
            parse(&c).unwrap_err(),
            Error::BadEntry {
                index: 1,
                problem: EntryProblem::Truncated
            }
        );
        let mut c0 = m.clone();
        c0[13] = 0; // entries left over
        assert_eq!(parse(&c0).unwrap_err(), Error::BadLength);
        let bad = |off: usize, val: u8| {
            let mut x = m.clone();
            x[HEADER_LEN + off] = val;
            parse(&x).unwrap_err()
        };
        let entry0 = |problem| Error::BadEntry { index: 0, problem };
        assert_eq!(bad(0, 3), entry0(EntryProblem::Kind(3)));
        assert_eq!(bad(1, 4), entry0(EntryProblem::Family(4)));
        assert_eq!(bad(2, 1), entry0(EntryProblem::Protocol(1)));
        assert_eq!(bad(3, 11), entry0(EntryProblem::State(11)));
        // A v6 family makes the entry longer than the message.
        assert_eq!(bad(1, 1), entry0(EntryProblem::Truncated));
        let mut short = m.clone();
        short[2..4].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(parse(&short).unwrap_err(), Error::BadLength);
    }

    fn entry() -> impl Strategy<Value = EntryRepr> {
        let v4 = any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o)));
        let v6 = any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o)));
        let pair = prop_oneof![(v4.clone(), v4.clone()), (v6.clone(), v6.clone())];
        let server = prop_oneof![v4, v6];
        (
            any::<bool>(),
            prop_oneof![Just(6u8), Just(17), Just(132)],
            0u8..=10,
            pair,
            server,
            any::<(u16, u16, u16, u32, u32, bool)>(),
        )
            .prop_map(|(conn, protocol, state, (client, vip), server, p)| {
                let (cport, vport, sport, fwmark, timeout_ms, late) = p;
                EntryRepr {
                    kind: if conn {
                        EntryKind::Connection
                    } else {
                        EntryKind::Template
                    },
                    protocol,
                    state: if conn && protocol == 6 { state } else { 0 },
                    late,
                    client,
                    client_port: cport,
                    vip,
                    vport,
                    server,
                    server_port: sport,
                    fwmark,
                    timeout_ms,
                }
            })
    }

    proptest! {
        #[test]
        fn any_entries_round_trip(es in prop::collection::vec(entry(), 0..40)) {
            let mut buf = [0u8; 4000];
            let mut w = Writer::new(&mut buf, 4000).unwrap();
            let mut pushed = Vec::<EntryRepr, 40>::new();
            for e in &es {
                if w.push(e) {
                    pushed.push(*e).unwrap();
                }
            }
            let n = w.finish(1, 2, 3);
            let (repr, entries) = parse(&buf[..n]).unwrap();
            prop_assert_eq!(usize::from(repr.count), pushed.len());
            prop_assert_eq!(entries.collect::<Vec<_, 40>>(), pushed);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            if let Ok((repr, entries)) = parse(&bytes) {
                prop_assert_eq!(entries.count(), usize::from(repr.count));
            }
            // The unchecked view's iterator is safe on anything too.
            let p = Packet::new_unchecked(&bytes[..]);
            if bytes.len() >= HEADER_LEN {
                let _ = p.entries().count();
            }
        }

        #[test]
        fn mutated_messages_never_panic(
            flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut m = message(&[conn_v4(), template_v6(), conn_v4()]);
            for (at, v) in flips {
                let i = at % m.len();
                m[i] = v;
            }
            let cut = cut % (m.len() + 1);
            let _ = parse(&m[..cut]);
            if let Ok((repr, entries)) = parse(&m) {
                prop_assert_eq!(entries.count(), usize::from(repr.count));
            }
        }
    }
}
