//! VRRP advertisements on the wire: VRRPv2 (RFC 3768, IPv4, auth none or
//! PASS) and VRRPv3 (RFC 9568, IPv4 and IPv6).
//!
//! [`Packet`] is a zero-copy view over the VRRP message (the IP payload);
//! [`Repr`] is the parsed value the state machine works with. The checksum
//! covers an IP pseudo-header for v3, so parsing and emitting take the IP
//! source and destination. Nothing here allocates or keeps state.
//!
//! Length: the message must be exactly what its address count implies, no
//! trailing bytes, as keepalived's `vrrp_in_chk` (vrrp.c, "vrrp packet too
//! long/short") requires. An IP payload carries no padding: a short frame's
//! link-layer padding lies beyond the IP total length, which drivers cut at.
//!
//! ```text
//!  0                   1                   2                   3
//! |Version| Type  | Virtual Rtr ID|   Priority    | Count IPvX Addr|
//! v2: | Auth Type | Adver Int |   Checksum   |   v3: |Rsvd| Max Adver Int | Checksum |
//! |                  IPvX address(es) ...                          |
//! v2 only: |            Authentication Data (8 octets)             |
//! ```

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use smoltcp::wire::{IpProtocol, checksum};

/// IP protocol number of VRRP.
pub const PROTOCOL: u8 = 112;
/// IPv4 multicast group of VRRP (RFC 9568 5.1.1.2).
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP (RFC 9568 5.1.2.2).
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// TTL / hop limit every VRRP packet is sent with and must arrive with.
pub const TTL: u8 = 255;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 8;
/// Length of the v2 authentication data trailer.
pub const AUTH_LEN: usize = 8;
/// The only VRRP message type.
pub const TYPE_ADVERTISEMENT: u8 = 1;

mod field {
    pub const VERSION_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    /// v2: auth type; v3: reserved nibble + high bits of the interval.
    pub const AUTH_TYPE: usize = 4;
    /// v2: interval in seconds; v3: low byte of the interval.
    pub const ADVER_INT: usize = 5;
    pub const CHECKSUM: core::ops::Range<usize> = 6..8;
    pub const ADDRS: usize = 8;
}

/// Why a packet was not accepted. Each maps to a drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// Shorter than the 8-byte fixed header; on emit, a buffer shorter
    /// than [`Repr::buffer_len`].
    Truncated,
    /// Version is neither 2 nor 3, or v2 over IPv6.
    BadVersion,
    /// Type is not ADVERTISEMENT.
    BadType,
    /// Length is not exactly the header plus the address count's addresses
    /// (plus v2's 8-byte authentication data): too short or too long.
    BadLength,
    /// The checksum does not verify in any accepted form.
    BadChecksum,
    /// v2 authentication type other than none (0) or PASS (1).
    BadAuthType,
    /// The source and destination addresses are of different families, or
    /// (on emit) an address to advertise is of the other family.
    FamilyMismatch,
    /// An advertisement interval of 0, which would make the receiver's
    /// Master_Down_Interval zero.
    ZeroInterval,
    /// More than 255 addresses to emit: the count field is one byte.
    TooManyAddresses,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "VRRP packet shorter than its header (or buffer too small)",
            Error::BadVersion => "VRRP version not 2 or 3 (or v2 over IPv6)",
            Error::BadType => "VRRP type is not ADVERTISEMENT",
            Error::BadLength => "VRRP length is not what the address count implies",
            Error::BadChecksum => "VRRP checksum does not verify",
            Error::BadAuthType => "VRRPv2 authentication type not none or PASS",
            Error::FamilyMismatch => "IP source, destination and VRRP addresses not of one family",
            Error::ZeroInterval => "VRRP advertisement interval is 0",
            Error::TooManyAddresses => "more than 255 VRRP addresses",
        })
    }
}

impl core::error::Error for Error {}

/// VRRP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Version {
    /// RFC 3768.
    V2,
    /// RFC 9568.
    V3,
}

/// Address family of an instance and of the addresses in its adverts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Family {
    /// IPv4: 4-byte addresses.
    V4,
    /// IPv6: 16-byte addresses.
    V6,
}

impl Family {
    /// Bytes per address.
    pub const fn addr_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }
    /// The family of `addr`.
    pub const fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// VRRPv2 authentication (RFC 3768 5.3.6). AH (type 2) is not supported:
/// keepalived deprecated it and RFC 9568 removed authentication.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Auth {
    /// Type 0.
    None,
    /// Type 1: an 8-byte password, zero padded.
    Pass([u8; AUTH_LEN]),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            // Never print a password.
            Auth::Pass(_) => f.write_str("Pass(..)"),
        }
    }
}

impl Auth {
    /// PASS authentication with `password`, truncated to 8 bytes and zero
    /// padded as keepalived does (keepalived.conf(5) `auth_pass`).
    pub fn pass(password: &[u8]) -> Auth {
        let mut data = [0u8; AUTH_LEN];
        let n = password.len().min(AUTH_LEN);
        data[..n].copy_from_slice(&password[..n]);
        Auth::Pass(data)
    }

    const fn type_code(&self) -> u8 {
        match self {
            Auth::None => 0,
            Auth::Pass(_) => 1,
        }
    }

    /// Compares in constant time, so the time a reject takes says nothing
    /// about how much of the password matched.
    pub fn matches(&self, other: &Auth) -> bool {
        match (self, other) {
            (Auth::None, Auth::None) => true,
            (Auth::Pass(a), Auth::Pass(b)) => {
                let diff = a
                    .iter()
                    .zip(b.iter())
                    .fold(0u8, |acc, (x, y)| acc | (x ^ y));
                core::hint::black_box(diff) == 0
            }
            _ => false,
        }
    }
}

/// How the checksum of a VRRPv3 packet over IPv4 is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ChecksumMode {
    /// With the IPv4 pseudo-header, as RFC 9568 and keepalived by default.
    #[default]
    PseudoHeader,
    /// Over the VRRP message only, as VRRPv2 does: keepalived's
    /// `v3_checksum_as_v2`, for peers that predate the RFC's fix.
    AsV2,
}

/// A read/write view over a VRRP message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking that every accessor is in bounds.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that every accessor is in bounds: the fixed header, and at
    /// least the address count's IPv4 addresses (plus v2's authentication
    /// data). The view does not know the family, so the exact length is
    /// checked by [`Repr::parse`].
    pub fn check_len(&self) -> Result<(), Error> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let version = self.version_field();
        if data.len() < self.required_len(version, Family::V4) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    fn required_len(&self, version: u8, family: Family) -> usize {
        let auth = if version == 2 { AUTH_LEN } else { 0 };
        HEADER_LEN + usize::from(self.addr_count()) * family.addr_len() + auth
    }

    /// The raw version nibble.
    pub fn version_field(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION_TYPE] >> 4
    }
    /// The raw type nibble.
    pub fn type_field(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION_TYPE] & 0x0f
    }
    /// Virtual router ID.
    pub fn vrid(&self) -> u8 {
        self.buffer.as_ref()[field::VRID]
    }
    /// Priority.
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }
    /// Number of addresses.
    pub fn addr_count(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }
    /// v2 authentication type.
    pub fn auth_type(&self) -> u8 {
        self.buffer.as_ref()[field::AUTH_TYPE]
    }
    /// The advertisement interval in centiseconds: v2's seconds field
    /// scaled, or v3's 12-bit Max Adver Int.
    pub fn advert_interval_cs(&self) -> u16 {
        let data = self.buffer.as_ref();
        if self.version_field() == 2 {
            u16::from(data[field::ADVER_INT]) * 100
        } else {
            u16::from_be_bytes([data[field::AUTH_TYPE], data[field::ADVER_INT]]) & 0x0fff
        }
    }
    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([data[field::CHECKSUM.start], data[field::CHECKSUM.start + 1]])
    }

    /// The message the checksum covers: header, addresses and v2's auth
    /// data, without trailing padding. Call only after `check_len`.
    fn message(&self, family: Family) -> &[u8] {
        let len = self.required_len(self.version_field(), family);
        &self.buffer.as_ref()[..len]
    }

    /// Whether the checksum verifies for this packet sent from `src` to
    /// `dst`, in `mode` (v3 over IPv4 only; otherwise ignored).
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr, mode: ChecksumMode) -> bool {
        let family = Family::of(&src);
        if self.buffer.as_ref().len() < self.required_len(self.version_field(), family) {
            return false;
        }
        compute_checksum(self.message(family), self.version_field(), src, dst, mode) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }
}

/// The one's-complement checksum of `message` (checksum field included),
/// with the pseudo-header where the version and mode call for one. A packet
/// verifies when this is zero; to fill the field, compute it with the field
/// zeroed.
fn compute_checksum(
    message: &[u8],
    version: u8,
    src: IpAddr,
    dst: IpAddr,
    mode: ChecksumMode,
) -> u16 {
    let len = message.len() as u32;
    let pseudo = match (version, src, dst, mode) {
        (2, ..) | (_, IpAddr::V4(_), _, ChecksumMode::AsV2) => None,
        (_, IpAddr::V4(s), IpAddr::V4(d), _) => Some(checksum::pseudo_header_v4(
            &s,
            &d,
            IpProtocol::Unknown(PROTOCOL),
            len,
        )),
        (_, IpAddr::V6(s), IpAddr::V6(d), _) => Some(checksum::pseudo_header_v6(
            &s,
            &d,
            IpProtocol::Unknown(PROTOCOL),
            len,
        )),
        // Mixed families never reach here (parse rejects them); a zero
        // pseudo-header keeps this total.
        _ => Some(0),
    };
    let body = checksum::data(message);
    !match pseudo {
        Some(p) => checksum::combine(&[p, body]),
        None => body,
    }
}

/// The addresses carried in an advert.
#[derive(Clone, Copy)]
pub enum Addrs<'a> {
    /// As they are on the wire (what `parse` gives): `family.addr_len()`
    /// bytes each.
    Wire {
        /// Family of every address.
        family: Family,
        /// Concatenated addresses.
        bytes: &'a [u8],
    },
    /// A list to emit (what an instance gives).
    List(&'a [IpAddr]),
}

impl<'a> Addrs<'a> {
    /// Number of addresses.
    pub fn len(&self) -> usize {
        match self {
            Addrs::Wire { family, bytes } => bytes.len() / family.addr_len(),
            Addrs::List(list) => list.len(),
        }
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The `i`th address.
    pub fn get(&self, i: usize) -> Option<IpAddr> {
        match self {
            Addrs::Wire {
                family: Family::V4,
                bytes,
            } => {
                let b: [u8; 4] = bytes.get(i * 4..i * 4 + 4)?.try_into().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(b)))
            }
            Addrs::Wire {
                family: Family::V6,
                bytes,
            } => {
                let b: [u8; 16] = bytes.get(i * 16..i * 16 + 16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(b)))
            }
            Addrs::List(list) => list.get(i).copied(),
        }
    }
    /// Every address in order.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + 'a {
        let this = *self;
        (0..this.len()).filter_map(move |i| this.get(i))
    }
}

impl PartialEq for Addrs<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl Eq for Addrs<'_> {}

impl fmt::Debug for Addrs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A parsed (or to-be-emitted) VRRP advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Protocol version.
    pub version: Version,
    /// Virtual router ID, 1..=255.
    pub vrid: u8,
    /// Sender's priority; 0 means "master is leaving", 255 "address owner".
    pub priority: u8,
    /// Advertisement interval in centiseconds (v2 carries whole seconds).
    pub advert_interval_cs: u16,
    /// v2 authentication; always `Auth::None` for v3.
    pub auth: Auth,
    /// The virtual addresses.
    pub addrs: Addrs<'a>,
}

/// How a received checksum verified, for v3 over IPv4 where both forms are
/// accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ChecksumForm {
    /// With the pseudo-header (RFC 9568), or the only form there is.
    Standard,
    /// Without the pseudo-header (`v3_checksum_as_v2` peers).
    AsV2,
}

impl<'a> Repr<'a> {
    /// Parses and validates a message received from `src` to `dst` (the IP
    /// header's addresses). Both checksum forms are accepted for v3 over
    /// IPv4; the second value says which one verified.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &'a Packet<&'a T>,
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<(Repr<'a>, ChecksumForm), Error> {
        let family = match (src, dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => Family::V4,
            (IpAddr::V6(_), IpAddr::V6(_)) => Family::V6,
            _ => return Err(Error::FamilyMismatch),
        };
        let data = packet.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let version = match (packet.version_field(), family) {
            (2, Family::V4) => Version::V2,
            (3, _) => Version::V3,
            _ => return Err(Error::BadVersion),
        };
        if packet.type_field() != TYPE_ADVERTISEMENT {
            return Err(Error::BadType);
        }
        let required = packet.required_len(packet.version_field(), family);
        // Exactly, as keepalived (see the module doc).
        if data.len() != required {
            return Err(Error::BadLength);
        }
        let message = data;
        let raw_version = packet.version_field();
        let form =
            if compute_checksum(message, raw_version, src, dst, ChecksumMode::PseudoHeader) == 0 {
                ChecksumForm::Standard
            } else if version == Version::V3
                && family == Family::V4
                && compute_checksum(message, raw_version, src, dst, ChecksumMode::AsV2) == 0
            {
                ChecksumForm::AsV2
            } else {
                return Err(Error::BadChecksum);
            };
        if packet.advert_interval_cs() == 0 {
            return Err(Error::ZeroInterval);
        }
        let addrs_end = field::ADDRS + usize::from(packet.addr_count()) * family.addr_len();
        let auth = match version {
            Version::V3 => Auth::None,
            Version::V2 => match packet.auth_type() {
                0 => Auth::None,
                1 => {
                    let mut pass = [0u8; AUTH_LEN];
                    pass.copy_from_slice(&data[addrs_end..addrs_end + AUTH_LEN]);
                    Auth::Pass(pass)
                }
                _ => return Err(Error::BadAuthType),
            },
        };
        Ok((
            Repr {
                version,
                vrid: packet.vrid(),
                priority: packet.priority(),
                advert_interval_cs: packet.advert_interval_cs(),
                auth,
                addrs: Addrs::Wire {
                    family,
                    bytes: &data[field::ADDRS..addrs_end],
                },
            },
            form,
        ))
    }

    /// Whether every address is of `family`.
    fn addrs_are(&self, family: Family) -> bool {
        match self.addrs {
            Addrs::Wire { family: f, bytes } => bytes.is_empty() || f == family,
            Addrs::List(list) => list.iter().all(|a| Family::of(a) == family),
        }
    }

    /// Bytes `emit` writes for a packet from an address of `family`.
    pub fn buffer_len(&self, family: Family) -> usize {
        let auth = if self.version == Version::V2 {
            AUTH_LEN
        } else {
            0
        };
        HEADER_LEN + self.addrs.len() * family.addr_len() + auth
    }

    /// Writes the advert into `buffer` (at least `buffer_len` bytes) for
    /// sending from `src` to `dst`, checksum included, and returns its
    /// length. Refused, with nothing written: `dst` or any address of
    /// another family than `src`'s ([`Error::FamilyMismatch`]), v2 from
    /// IPv6 ([`Error::BadVersion`]), more than 255 addresses
    /// ([`Error::TooManyAddresses`]), a short buffer ([`Error::Truncated`]).
    pub fn emit(
        &self,
        buffer: &mut [u8],
        src: IpAddr,
        dst: IpAddr,
        mode: ChecksumMode,
    ) -> Result<usize, Error> {
        let family = Family::of(&src);
        if Family::of(&dst) != family || !self.addrs_are(family) {
            return Err(Error::FamilyMismatch);
        }
        if self.version == Version::V2 && family == Family::V6 {
            return Err(Error::BadVersion);
        }
        let Ok(count) = u8::try_from(self.addrs.len()) else {
            return Err(Error::TooManyAddresses);
        };
        let len = self.buffer_len(family);
        if buffer.len() < len {
            return Err(Error::Truncated);
        }
        let buf = &mut buffer[..len];
        let raw_version = match self.version {
            Version::V2 => 2u8,
            Version::V3 => 3u8,
        };
        buf[field::VERSION_TYPE] = (raw_version << 4) | TYPE_ADVERTISEMENT;
        buf[field::VRID] = self.vrid;
        buf[field::PRIORITY] = self.priority;
        buf[field::COUNT] = count;
        match self.version {
            Version::V2 => {
                buf[field::AUTH_TYPE] = self.auth.type_code();
                // v2 carries whole seconds; round up so a sub-second
                // interval is never sent as 0.
                buf[field::ADVER_INT] = self.advert_interval_cs.div_ceil(100).clamp(1, 255) as u8;
            }
            Version::V3 => {
                let int = (self.advert_interval_cs & 0x0fff).to_be_bytes();
                buf[field::AUTH_TYPE] = int[0];
                buf[field::ADVER_INT] = int[1];
            }
        }
        buf[field::CHECKSUM].fill(0);
        let mut at = field::ADDRS;
        // Every address is of `family` (checked above), so each fits the
        // `buffer_len` computed for it.
        for addr in self.addrs.iter() {
            match addr {
                IpAddr::V4(a) => buf[at..at + 4].copy_from_slice(&a.octets()),
                IpAddr::V6(a) => buf[at..at + 16].copy_from_slice(&a.octets()),
            }
            at += family.addr_len();
        }
        if self.version == Version::V2 {
            let data = match self.auth {
                Auth::None => [0u8; AUTH_LEN],
                Auth::Pass(p) => p,
            };
            buf[at..at + AUTH_LEN].copy_from_slice(&data);
        }
        let sum = compute_checksum(buf, raw_version, src, dst, mode);
        Packet::new_unchecked(&mut *buf).set_checksum(sum);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const DST4: IpAddr = IpAddr::V4(MULTICAST_V4);
    const SRC6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1));
    const DST6: IpAddr = IpAddr::V6(MULTICAST_V6);

    fn roundtrip(repr: &Repr<'_>, src: IpAddr, dst: IpAddr, mode: ChecksumMode) {
        let mut buf = [0u8; 512];
        let len = repr.emit(&mut buf, src, dst, mode).unwrap();
        let packet = Packet::new_checked(&buf[..len]).unwrap();
        let (parsed, _) = Repr::parse(&packet, src, dst).unwrap();
        assert_eq!(&parsed, repr);
    }

    #[test]
    fn v2_pass_roundtrip() {
        let vips = [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 240))];
        let repr = Repr {
            version: Version::V2,
            vrid: 51,
            priority: 100,
            advert_interval_cs: 500,
            auth: Auth::pass(b"1111"),
            addrs: Addrs::List(&vips),
        };
        roundtrip(&repr, SRC4, DST4, ChecksumMode::PseudoHeader);
        assert_eq!(repr.buffer_len(Family::V4), 20);
    }

    #[test]
    fn v3_both_families_and_checksum_forms() {
        let v4 = [
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11)),
        ];
        let repr = Repr {
            version: Version::V3,
            vrid: 7,
            priority: 200,
            advert_interval_cs: 1,
            auth: Auth::None,
            addrs: Addrs::List(&v4),
        };
        roundtrip(&repr, SRC4, DST4, ChecksumMode::PseudoHeader);
        roundtrip(&repr, SRC4, DST4, ChecksumMode::AsV2);

        let mut buf = [0u8; 64];
        let len = repr.emit(&mut buf, SRC4, DST4, ChecksumMode::AsV2).unwrap();
        let packet = Packet::new_checked(&buf[..len]).unwrap();
        assert_eq!(
            Repr::parse(&packet, SRC4, DST4).unwrap().1,
            ChecksumForm::AsV2
        );

        let v6 = [IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))];
        let repr6 = Repr {
            addrs: Addrs::List(&v6),
            ..repr
        };
        roundtrip(&repr6, SRC6, DST6, ChecksumMode::PseudoHeader);
    }

    #[test]
    fn rejects_bad_packets() {
        let vips = [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 240))];
        let repr = Repr {
            version: Version::V3,
            vrid: 1,
            priority: 100,
            advert_interval_cs: 100,
            auth: Auth::None,
            addrs: Addrs::List(&vips),
        };
        let mut buf = [0u8; 64];
        let len = repr
            .emit(&mut buf, SRC4, DST4, ChecksumMode::PseudoHeader)
            .unwrap();

        let parse = |bytes: &[u8], src, dst| {
            let p = Packet::new_unchecked(bytes);
            Repr::parse(&p, src, dst).map(|_| ())
        };
        assert_eq!(parse(&buf[..4], SRC4, DST4), Err(Error::Truncated));
        assert_eq!(parse(&buf[..len - 1], SRC4, DST4), Err(Error::BadLength));
        assert_eq!(parse(&buf[..len], SRC4, DST6), Err(Error::FamilyMismatch));
        let mut bad = buf;
        bad[2] ^= 1;
        assert_eq!(parse(&bad[..len], SRC4, DST4), Err(Error::BadChecksum));
        let mut bad = buf;
        bad[0] = 0x41;
        assert_eq!(parse(&bad[..len], SRC4, DST4), Err(Error::BadVersion));
        let mut bad = buf;
        bad[0] = 0x32;
        assert_eq!(parse(&bad[..len], SRC4, DST4), Err(Error::BadType));
        // Trailing bytes are refused, as keepalived does: an IP payload has
        // no padding.
        assert_eq!(parse(&buf[..len + 1], SRC4, DST4), Err(Error::BadLength));
        assert_eq!(parse(&buf[..len + 6], SRC4, DST4), Err(Error::BadLength));
        // The address count says 1: 8 + 4 bytes and not a byte more or less.
        assert_eq!(parse(&buf[..HEADER_LEN], SRC4, DST4), Err(Error::BadLength));
        assert_eq!(parse(&buf[..len], SRC4, DST4), Ok(()));
        // Interval 0 (checksum fixed up so only the interval is wrong).
        let zero = Repr {
            advert_interval_cs: 0,
            ..repr
        };
        let mut buf0 = [0u8; 64];
        let n = zero
            .emit(&mut buf0, SRC4, DST4, ChecksumMode::PseudoHeader)
            .unwrap();
        assert_eq!(parse(&buf0[..n], SRC4, DST4), Err(Error::ZeroInterval));
    }

    #[test]
    fn v2_length_includes_the_auth_data() {
        let vips = [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 240))];
        let repr = Repr {
            version: Version::V2,
            vrid: 51,
            priority: 100,
            advert_interval_cs: 100,
            auth: Auth::pass(b"1111"),
            addrs: Addrs::List(&vips),
        };
        let mut buf = [0u8; 64];
        let len = repr
            .emit(&mut buf, SRC4, DST4, ChecksumMode::PseudoHeader)
            .unwrap();
        assert_eq!(len, 8 + 4 + 8);
        let parse =
            |n: usize| Repr::parse(&Packet::new_unchecked(&buf[..n]), SRC4, DST4).map(|_| ());
        assert_eq!(parse(len), Ok(()));
        assert_eq!(
            parse(len - AUTH_LEN),
            Err(Error::BadLength),
            "auth data missing"
        );
        assert_eq!(parse(len + 1), Err(Error::BadLength));
    }

    #[test]
    fn emit_refuses_addresses_of_the_other_family() {
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 240));
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        let mut buf = [0u8; 128];
        for (list, src, dst) in [
            (&[v4, v6][..], SRC4, DST4),
            (&[v6, v4][..], SRC4, DST4),
            (&[v4, v6][..], SRC6, DST6),
            (&[v6, v4][..], SRC6, DST6),
            (&[v6][..], SRC4, DST4),
        ] {
            let repr = Repr {
                version: Version::V3,
                vrid: 1,
                priority: 100,
                advert_interval_cs: 100,
                auth: Auth::None,
                addrs: Addrs::List(list),
            };
            buf.fill(0xaa);
            assert_eq!(
                repr.emit(&mut buf, src, dst, ChecksumMode::PseudoHeader),
                Err(Error::FamilyMismatch),
                "{list:?} from {src}"
            );
            assert!(buf.iter().all(|b| *b == 0xaa), "nothing written");
        }
        // Wire-form addresses of the other family too.
        let bytes = [0u8; 16];
        let repr = Repr {
            version: Version::V3,
            vrid: 1,
            priority: 100,
            advert_interval_cs: 100,
            auth: Auth::None,
            addrs: Addrs::Wire {
                family: Family::V6,
                bytes: &bytes,
            },
        };
        assert_eq!(
            repr.emit(&mut buf, SRC4, DST4, ChecksumMode::PseudoHeader),
            Err(Error::FamilyMismatch)
        );
    }

    #[test]
    fn emit_refuses_too_many_addresses_and_short_buffers() {
        let many: [IpAddr; 256] =
            core::array::from_fn(|i| IpAddr::V4(Ipv4Addr::from(0xc000_0200 + i as u32)));
        let repr = Repr {
            version: Version::V3,
            vrid: 1,
            priority: 100,
            advert_interval_cs: 100,
            auth: Auth::None,
            addrs: Addrs::List(&many),
        };
        let mut buf = [0u8; 2048];
        assert_eq!(
            repr.emit(&mut buf, SRC4, DST4, ChecksumMode::PseudoHeader),
            Err(Error::TooManyAddresses)
        );
        let repr = Repr {
            addrs: Addrs::List(&many[..255]),
            ..repr
        };
        let need = repr.buffer_len(Family::V4);
        assert_eq!(need, 8 + 255 * 4);
        assert_eq!(
            repr.emit(&mut buf[..need - 1], SRC4, DST4, ChecksumMode::PseudoHeader),
            Err(Error::Truncated)
        );
        assert_eq!(
            repr.emit(&mut buf[..need], SRC4, DST4, ChecksumMode::PseudoHeader),
            Ok(need)
        );
    }

    #[test]
    fn pass_compare_and_truncation() {
        assert!(Auth::pass(b"1111").matches(&Auth::pass(b"1111")));
        assert!(!Auth::pass(b"1111").matches(&Auth::pass(b"1112")));
        assert!(!Auth::pass(b"1111").matches(&Auth::None));
        assert!(Auth::pass(b"123456789").matches(&Auth::pass(b"12345678")));
        assert_eq!(
            heapless::format!(16; "{:?}", Auth::pass(b"secret")).unwrap(),
            "Pass(..)"
        );
    }

    #[test]
    fn v2_interval_rounds_up_to_whole_seconds() {
        let repr = Repr {
            version: Version::V2,
            vrid: 1,
            priority: 1,
            advert_interval_cs: 50,
            auth: Auth::None,
            addrs: Addrs::List(&[]),
        };
        let mut buf = [0u8; 32];
        let len = repr
            .emit(&mut buf, SRC4, DST4, ChecksumMode::PseudoHeader)
            .unwrap();
        assert_eq!(
            Packet::new_checked(&buf[..len])
                .unwrap()
                .advert_interval_cs(),
            100
        );
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), v6 in any::<bool>()) {
                let (src, dst) = if v6 { (SRC6, DST6) } else { (SRC4, DST4) };
                let packet = Packet::new_unchecked(&bytes[..]);
                let _ = packet.check_len();
                if let Ok((repr, _)) = Repr::parse(&packet, src, dst) {
                    let _ = repr.addrs.iter().count();
                }
                if let Ok(p) = Packet::new_checked(&bytes[..]) {
                    let _ = (p.vrid(), p.priority(), p.advert_interval_cs(), p.checksum());
                    let _ = p.verify_checksum(src, dst, ChecksumMode::AsV2);
                }
            }

            /// Any address list, any families, any buffer: emit answers
            /// Ok or an error, never panics, and what it emits parses back.
            #[test]
            fn emit_never_panics(
                addrs in proptest::collection::vec((any::<bool>(), any::<u128>()), 0..6),
                v6_src in any::<bool>(),
                v3 in any::<bool>(),
                buf_len in 0usize..128,
            ) {
                let list: heapless::Vec<IpAddr, 6> = addrs
                    .iter()
                    .map(|(v6, bits)| if *v6 {
                        IpAddr::V6(Ipv6Addr::from(*bits))
                    } else {
                        IpAddr::V4(Ipv4Addr::from(*bits as u32))
                    })
                    .collect();
                let (src, dst) = if v6_src { (SRC6, DST6) } else { (SRC4, DST4) };
                let repr = Repr {
                    version: if v3 { Version::V3 } else { Version::V2 },
                    vrid: 9,
                    priority: 100,
                    advert_interval_cs: 100,
                    auth: Auth::None,
                    addrs: Addrs::List(&list),
                };
                let mut storage = [0u8; 128];
                let buf = &mut storage[..buf_len];
                if let Ok(n) = repr.emit(buf, src, dst, ChecksumMode::PseudoHeader) {
                    let packet = Packet::new_unchecked(&buf[..n]);
                    let (parsed, _) = Repr::parse(&packet, src, dst).unwrap();
                    prop_assert_eq!(parsed, repr);
                }
            }
        }
    }
}
