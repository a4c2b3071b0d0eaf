//! A firmware-style driver: vrlb-core's VRRP node on the smoltcp TCP/IP
//! stack, as an appliance board would run it, with a Linux TAP device
//! standing in for the board's MAC ([`run`]) or any smoltcp `Device`
//! ([`Board`], which the tests drive over an in-memory link).
//!
//! One loop, no threads, and no allocation once it runs: every capacity is
//! a compile-time constant ([`MAX_VIPS`] VIPs, one instance, the raw
//! socket's buffers, smoltcp's address table) and everything the loop
//! touches lives in fixed arrays or `heapless` containers, the
//! configuration included ([`BoardStorage`] is what a board would make
//! `static`). All timing comes from the core's `poll_timeout`, smoltcp's
//! `poll_at` and the GARP pacer's next send.
//!
//! - VRRP goes through a smoltcp raw socket (IPv4, protocol 112); smoltcp
//!   maps the group to its multicast MAC.
//! - VIPs become smoltcp interface addresses, so smoltcp answers ARP and
//!   ping for them. Eight VIPs and the board's own address make nine
//!   entries, one more than smoltcp's `iface-max-addr-count-*` features
//!   offer (they stop at 8), so the table size comes from smoltcp's
//!   build-time variable `SMOLTCP_IFACE_MAX_ADDR_COUNT` (9, set in the
//!   repository's `.cargo/config.toml`); a build without it fails the
//!   assertion below instead of dropping a VIP at run time.
//! - GARP: smoltcp 0.14's `Interface` cannot announce an address. It sends
//!   ARP only to resolve a neighbour (never for an address of its own),
//!   sends nothing when an address is added, and has no raw Ethernet
//!   socket. So [`garp`] builds the frames with `smoltcp::wire` and hands
//!   them to the device through its transmit token, the path the
//!   interface itself transmits on, after the interface's poll so the
//!   advert announcing mastership leaves first, as keepalived sends it.
//!   Each `Garp` output is sent when the core emits it (at the
//!   transition, `garp_master_delay` later, every `garp_master_refresh`),
//!   `repeat` messages per VIP spaced by `garp_interval` (keepalived's
//!   `vrrp_garp_interval`, default 0: back to back, as keepalived). A
//!   device without transmit room gets the rest on the next turn; leaving
//!   MASTER cancels what is left (counted).
//!
//! IPv4 only, like smoltcp's raw-socket path here.

pub mod garp;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use smoltcp::iface::{Config, Interface, MulticastError, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::{ChecksumCapabilities, Device, Medium, TunTapInterface, wait};
use smoltcp::socket::raw;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpCidr, IpProtocol, IpVersion, Ipv4Cidr, Ipv4Packet, Ipv4Repr,
};
use vrlb_core::node::{
    GroupSlot, IfaceId, Input, InstanceId, InstanceSlot, Node, NodeError, NodeStorage, Output,
    ScriptSlot, TimerEntry,
};
use vrlb_core::time::{Duration, Instant};
use vrlb_core::vrrp::{self, Auth, GarpConfig, InlineVips, State, Version};
use vrlb_core::wire::vrrp::{MULTICAST_V4, PROTOCOL, TTL};

use garp::Garp;

/// VIPs the firmware holds (the budget case).
pub const MAX_VIPS: usize = 8;
/// A TAP device name: Linux's IFNAMSIZ less the NUL.
pub const TAP_NAME_MAX: usize = 15;
/// VRRPv2 PASS authentication carries 8 bytes.
pub const PASSWORD_MAX: usize = 8;

const _: () = assert!(
    smoltcp::config::IFACE_MAX_ADDR_COUNT > MAX_VIPS,
    "smoltcp's address table must hold MAX_VIPS VIPs and the board's address: \
     build from the repository, whose .cargo/config.toml sets SMOLTCP_IFACE_MAX_ADDR_COUNT"
);

/// Raw socket buffers: packets and bytes each way.
const RAW_PACKETS: usize = 8;
const RAW_BYTES: usize = 2048;
/// One instance: twice its owners, as `NodeStorage` asks, and room.
const TIMERS: usize = 4;
/// The IPv4 header vrlb writes in front of an advert.
const IPV4_HEADER: usize = 20;
/// The largest advert: 8 header bytes, the VIPs, 8 bytes of PASS.
const ADVERT_MAX: usize = 8 + 4 * MAX_VIPS + 8;
/// `run` wakes at least this often to notice its stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// What the board is configured with: firmware constants on a real board,
/// command-line flags here. Fixed capacity, so the loop never allocates.
#[derive(Debug, Clone)]
pub struct FirmwareConfig {
    /// The TAP device standing in for the MAC.
    pub tap: heapless::String<TAP_NAME_MAX>,
    /// The board's MAC address.
    pub mac: [u8; 6],
    /// The board's own address.
    pub addr: Ipv4Addr,
    /// Prefix length of `addr`.
    pub prefix_len: u8,
    /// VRRP virtual router id.
    pub vrid: u8,
    /// VRRP priority.
    pub priority: u8,
    /// VRRP version.
    pub version: Version,
    /// Advertisement interval in centiseconds.
    pub advert_interval_cs: u16,
    /// PASS authentication (v2).
    pub password: Option<heapless::Vec<u8, PASSWORD_MAX>>,
    /// Preempt a lower-priority master.
    pub preempt: bool,
    /// The VIPs.
    pub vips: heapless::Vec<Ipv4Addr, MAX_VIPS>,
    /// `garp_master_delay`, `_repeat`, `_refresh`, `_refresh_repeat`.
    pub garp: GarpConfig,
    /// `vrrp_garp_interval`: the gap between two GARP messages.
    pub garp_interval: Duration,
}

/// What went wrong at start (the loop itself cannot fail).
#[derive(Debug)]
pub enum FirmwareError {
    /// The TAP device could not be opened.
    Tap(std::io::Error),
    /// The core refused the instance configuration.
    Instance(NodeError),
    /// smoltcp could not join the VRRP group.
    Multicast(MulticastError),
}

impl std::fmt::Display for FirmwareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FirmwareError::Tap(e) => write!(
                f,
                "cannot open the TAP device: {e} (needs CAP_NET_ADMIN and /dev/net/tun)"
            ),
            FirmwareError::Instance(e) => write!(f, "the VRRP instance is refused: {e}"),
            FirmwareError::Multicast(e) => write!(f, "cannot join the VRRP group: {e}"),
        }
    }
}

impl std::error::Error for FirmwareError {}

/// What the driver counts (the core counts its own drops in
/// `Node::stats` and `Instance::stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// VRRP packets handed to the core.
    pub adverts_received: u64,
    /// Raw-socket packets that were not IPv4 (dropped).
    pub malformed: u64,
    /// Adverts queued on the raw socket.
    pub adverts_sent: u64,
    /// Adverts dropped: the core could not build one, or the socket's
    /// transmit buffer was full.
    pub adverts_dropped: u64,
    /// VIPs smoltcp's address table had no room for.
    pub vips_refused: u64,
    /// GARP counters.
    pub garp: garp::Stats,
}

/// Everything a board keeps, in one place a firmware image would make
/// `static`: the node's slots and the raw socket's buffers. The socket set
/// itself borrows these, so the caller keeps it beside (see [`run`]).
pub struct BoardStorage {
    instances: [InstanceSlot<InlineVips<MAX_VIPS>>; 1],
    timers: [TimerEntry; TIMERS],
    rx_meta: [raw::PacketMetadata; RAW_PACKETS],
    rx_data: [u8; RAW_BYTES],
    tx_meta: [raw::PacketMetadata; RAW_PACKETS],
    tx_data: [u8; RAW_BYTES],
}

impl Default for BoardStorage {
    fn default() -> Self {
        BoardStorage {
            instances: Default::default(),
            timers: [TimerEntry::default(); TIMERS],
            rx_meta: [raw::PacketMetadata::EMPTY; RAW_PACKETS],
            rx_data: [0; RAW_BYTES],
            tx_meta: [raw::PacketMetadata::EMPTY; RAW_PACKETS],
            tx_data: [0; RAW_BYTES],
        }
    }
}

/// The board: a smoltcp interface over `device` and the VRRP node, turned
/// by [`Board::poll`].
pub struct Board<'a, D: Device> {
    cfg: &'a FirmwareConfig,
    device: D,
    iface: Interface,
    sockets: SocketSet<'a>,
    raw: SocketHandle,
    node: Node<'a, InlineVips<MAX_VIPS>>,
    id: InstanceId,
    own: IpCidr,
    garp: Garp,
    stats: Stats,
}

pub(crate) fn to_smol(t: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(t.as_micros().min(i64::MAX as u64) as i64)
}

fn from_smol(t: smoltcp::time::Instant) -> Instant {
    Instant::from_micros(t.total_micros().max(0) as u64)
}

impl<'a, D: Device> Board<'a, D> {
    /// Brings the board up at `now` and starts its instance.
    pub fn new(
        cfg: &'a FirmwareConfig,
        storage: &'a mut BoardStorage,
        socket_storage: &'a mut [SocketStorage<'a>; 1],
        mut device: D,
        now: Instant,
    ) -> Result<Self, FirmwareError> {
        let mac = EthernetAddress(cfg.mac);
        let mut iface = Interface::new(
            Config::new(HardwareAddress::Ethernet(mac)),
            &mut device,
            to_smol(now),
        );
        let own = IpCidr::Ipv4(Ipv4Cidr::new(cfg.addr, cfg.prefix_len));
        iface.update_ip_addrs(|addrs| {
            // The table is empty and holds at least MAX_VIPS + 1.
            let _ = addrs.push(own);
        });
        iface
            .join_multicast_group(MULTICAST_V4)
            .map_err(FirmwareError::Multicast)?;

        let BoardStorage {
            instances,
            timers,
            rx_meta,
            rx_data,
            tx_meta,
            tx_data,
        } = storage;
        let socket = raw::Socket::new(
            Some(IpVersion::Ipv4),
            Some(IpProtocol::Unknown(PROTOCOL)),
            raw::PacketBuffer::new(&mut rx_meta[..], &mut rx_data[..]),
            raw::PacketBuffer::new(&mut tx_meta[..], &mut tx_data[..]),
        );
        let mut sockets = SocketSet::new(&mut socket_storage[..]);
        let raw = sockets.add(socket);

        let mut node = Node::new(NodeStorage {
            instances,
            scripts: &mut [] as &mut [ScriptSlot],
            groups: &mut [] as &mut [GroupSlot],
            timers,
        });
        let mut config = vrrp::Config::new(cfg.vrid, IpAddr::V4(cfg.addr));
        config.version = cfg.version;
        config.priority = cfg.priority;
        config.advert_interval_cs = cfg.advert_interval_cs;
        config.preempt = cfg.preempt;
        config.garp = cfg.garp;
        if let Some(p) = &cfg.password {
            config.auth = Auth::pass(p);
        }
        let vips: heapless::Vec<IpAddr, MAX_VIPS> =
            cfg.vips.iter().map(|v| IpAddr::V4(*v)).collect();
        let id = node
            .add_instance(config, &vips, &[], IfaceId(0), 0)
            .map_err(FirmwareError::Instance)?;
        node.handle(now, Input::Start);
        let mut board = Board {
            cfg,
            device,
            iface,
            sockets,
            raw,
            node,
            id,
            own,
            garp: Garp::new(cfg.garp_interval),
            stats: Stats::default(),
        };
        board.carry_out(now);
        Ok(board)
    }

    /// One turn at `now`: frames in, the core's timers and outputs, frames
    /// out. Returns when to turn again at the latest (`None`: only when a
    /// frame arrives).
    pub fn poll(&mut self, now: Instant) -> Option<Instant> {
        self.iface
            .poll(to_smol(now), &mut self.device, &mut self.sockets);
        self.receive(now);
        if self.node.poll_timeout().is_some_and(|t| t <= now) {
            self.node.handle_timeout(now);
            self.carry_out(now);
        }
        self.flush(now);
        [
            self.node.poll_timeout(),
            self.iface
                .poll_at(to_smol(now), &self.sockets)
                .map(from_smol),
            self.garp.poll_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Stops the instance: a master resigns (priority 0) and releases its
    /// VIPs, and the advert is sent before this returns.
    pub fn shutdown(&mut self, now: Instant) {
        self.node.handle(now, Input::Shutdown);
        self.carry_out(now);
        self.flush(now);
    }

    /// The instance's state.
    pub fn state(&self) -> State {
        self.node
            .instance(self.id)
            .map_or(State::Init, |i| i.state())
    }

    /// The driver's counters.
    pub fn stats(&self) -> Stats {
        Stats {
            garp: self.garp.stats(),
            ..self.stats
        }
    }

    /// The addresses smoltcp answers for.
    pub fn addresses(&self) -> &[IpCidr] {
        self.iface.ip_addrs()
    }

    /// The device (tests use it to inspect what was sent).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// Queued adverts out, then due GARPs (the advert goes first).
    fn flush(&mut self, now: Instant) {
        self.iface
            .poll(to_smol(now), &mut self.device, &mut self.sockets);
        self.garp.poll(
            now,
            &mut self.device,
            EthernetAddress(self.cfg.mac),
            &self.cfg.vips,
        );
    }

    /// Hands every received VRRP packet to the core, draining its outputs
    /// after each (the core's output queue is sized for one step).
    fn receive(&mut self, now: Instant) {
        loop {
            let socket = self.sockets.get_mut::<raw::Socket>(self.raw);
            let Ok(packet) = socket.recv() else { break };
            match Ipv4Packet::new_checked(packet) {
                Ok(ip) => {
                    self.stats.adverts_received += 1;
                    self.node.handle(
                        now,
                        Input::Advert {
                            iface: IfaceId(0),
                            src: IpAddr::V4(ip.src_addr()),
                            dst: IpAddr::V4(ip.dst_addr()),
                            ttl: ip.hop_limit(),
                            payload: ip.payload(),
                        },
                    );
                }
                Err(_) => {
                    self.stats.malformed += 1;
                    log::debug!("dropped a raw-socket packet that is not IPv4");
                }
            }
            self.carry_out(now);
        }
    }

    /// Carries out the core's outputs.
    fn carry_out(&mut self, now: Instant) {
        while let Some(out) = self.node.poll_output() {
            // One instance, no scripts: VRRP outputs are all there is.
            let Output::Vrrp { event, .. } = out else {
                continue;
            };
            match event {
                vrrp::Output::Advert { priority } => self.send_advert(priority),
                vrrp::Output::AddVips => self.set_vips(true),
                vrrp::Output::RemoveVips => {
                    self.set_vips(false);
                    self.garp.cancel();
                }
                vrrp::Output::Garp { repeat } => {
                    self.garp.request(repeat, self.cfg.vips.len(), now)
                }
                vrrp::Output::StateChanged { from, to, reason } => {
                    log::info!("vrid {}: {from} -> {to} ({reason:?})", self.cfg.vrid);
                }
            }
        }
    }

    /// Makes the VIPs interface addresses (or removes them), keeping the
    /// board's own.
    fn set_vips(&mut self, present: bool) {
        let (own, vips) = (self.own, &self.cfg.vips);
        let mut refused = 0;
        self.iface.update_ip_addrs(|addrs| {
            addrs.retain(|a| *a == own);
            if present {
                for v in vips {
                    if addrs.push(IpCidr::Ipv4(Ipv4Cidr::new(*v, 32))).is_err() {
                        refused += 1;
                    }
                }
            }
        });
        if refused > 0 {
            // Unreachable while the assertion on the table size holds.
            self.stats.vips_refused += refused;
            log::error!("smoltcp's address table is full: {refused} VIPs not added");
        }
    }

    /// Wraps the advert in an IPv4 header (TTL 255) and queues it on the
    /// raw socket; smoltcp maps the group address to its multicast MAC.
    fn send_advert(&mut self, priority: u8) {
        let mut advert = [0u8; ADVERT_MAX];
        let group = IpAddr::V4(MULTICAST_V4);
        let primary = IpAddr::V4(self.cfg.addr);
        let Some(len) = self
            .node
            .emit_advert(self.id, priority, primary, group, &mut advert)
        else {
            self.stats.adverts_dropped += 1;
            log::warn!("vrid {}: the core built no advert", self.cfg.vrid);
            return;
        };
        let repr = Ipv4Repr {
            src_addr: self.cfg.addr,
            dst_addr: MULTICAST_V4,
            next_header: IpProtocol::Unknown(PROTOCOL),
            payload_len: len,
            hop_limit: TTL,
        };
        let socket = self.sockets.get_mut::<raw::Socket>(self.raw);
        let Ok(buf) = socket.send(IPV4_HEADER + len) else {
            self.stats.adverts_dropped += 1;
            log::warn!(
                "vrid {}: advert dropped, the raw socket's buffer is full",
                self.cfg.vrid
            );
            return;
        };
        let mut packet = Ipv4Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut packet, &ChecksumCapabilities::default());
        packet.payload_mut()[..len].copy_from_slice(&advert[..len]);
        self.stats.adverts_sent += 1;
    }
}

/// Runs the board on `cfg.tap` until `stop` is set, then resigns
/// (priority 0) and returns the driver's counters.
pub fn run(cfg: &FirmwareConfig, stop: &AtomicBool) -> Result<Stats, FirmwareError> {
    let device = TunTapInterface::new(&cfg.tap, Medium::Ethernet).map_err(FirmwareError::Tap)?;
    let fd = device.as_raw_fd();
    let clock = std::time::Instant::now();
    let now = || Instant::from_micros(clock.elapsed().as_micros() as u64);
    // On the stack here; a firmware image would make both `static`.
    let mut storage = BoardStorage::default();
    let mut socket_storage = [SocketStorage::EMPTY];
    let mut board = Board::new(cfg, &mut storage, &mut socket_storage, device, now())?;
    loop {
        if stop.load(Ordering::Relaxed) {
            board.shutdown(now());
            return Ok(board.stats());
        }
        let next = board.poll(now());
        let t = now();
        let sleep = next.map_or(STOP_POLL, |d| d.saturating_duration_since(t).min(STOP_POLL));
        // An error here (EINTR on a signal) only ends the sleep early.
        let _ = wait(
            fd,
            Some(smoltcp::time::Duration::from_micros(sleep.as_micros())),
        );
    }
}
