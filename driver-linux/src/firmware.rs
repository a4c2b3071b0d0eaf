//! A firmware-style driver: vrlb-core's VRRP node on the smoltcp TCP/IP
//! stack, as an appliance board would run it, with a Linux TAP device
//! standing in for the board's MAC.
//!
//! Everything a board would have is here and nothing else: one loop, no
//! threads, no allocation after start (capacities fixed at compile time:
//! [`MAX_VIPS`] VIPs, one instance), all timing from the core's
//! `poll_timeout` and smoltcp's `poll_delay`. VRRP goes through a smoltcp
//! raw socket; VIPs become smoltcp interface addresses (so smoltcp answers
//! ARP for them); gratuitous ARP frames are built with `smoltcp::wire` and
//! sent through the device. IPv4 only, as smoltcp's raw sockets here.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::phy::{Device, Medium, TunTapInterface, TxToken, wait};
use smoltcp::socket::raw;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, HardwareAddress, IpCidr, IpProtocol, IpVersion, Ipv4Cidr, Ipv4Packet, Ipv4Repr,
};
use vrlb_core::node::{
    GroupSlot, IfaceId, Input, InstanceId, InstanceSlot, Node, NodeStorage, Output, ScriptSlot,
    TimerEntry,
};
use vrlb_core::time::{Duration, Instant};
use vrlb_core::vrrp::{self, Auth, InlineVips, Version};

/// VIPs the firmware holds: smoltcp keeps at most 8 addresses per
/// interface (`iface-max-addr-count-8`), one of them the board's own.
pub const MAX_VIPS: usize = 7;
/// Raw socket buffer: packets and bytes, fixed at compile time.
const RAW_PACKETS: usize = 8;
const RAW_BYTES: usize = 2048;
/// The IPv4 header vrlb writes in front of an advert.
const IPV4_HEADER: usize = 20;

/// What the board is configured with (firmware constants, here flags).
#[derive(Debug, Clone)]
pub struct FirmwareConfig {
    /// The TAP device standing in for the MAC.
    pub tap: String,
    /// The board's MAC address.
    pub mac: [u8; 6],
    /// The board's own address and prefix.
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
    pub password: Option<String>,
    /// Preempt a lower-priority master.
    pub preempt: bool,
    /// The VIPs.
    pub vips: Vec<Ipv4Addr>,
}

/// What went wrong.
#[derive(Debug)]
pub enum FirmwareError {
    /// The TAP device could not be opened.
    Tap(std::io::Error),
    /// The configuration does not fit the firmware's capacities or the
    /// protocol's ranges.
    Config(String),
}

impl std::fmt::Display for FirmwareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FirmwareError::Tap(e) => write!(
                f,
                "cannot open the TAP device: {e} (needs CAP_NET_ADMIN and /dev/net/tun)"
            ),
            FirmwareError::Config(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FirmwareError {}

fn to_smol(t: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(t.as_micros() as i64)
}

/// Runs the board until `stop` is set, then resigns (priority 0) and
/// returns. `log` receives one line per state change.
pub fn run(
    cfg: &FirmwareConfig,
    stop: Arc<AtomicBool>,
    mut log: impl FnMut(&str),
) -> Result<(), FirmwareError> {
    if cfg.vips.len() > MAX_VIPS {
        return Err(FirmwareError::Config(format!(
            "at most {MAX_VIPS} VIPs fit this firmware"
        )));
    }
    let mut device =
        TunTapInterface::new(&cfg.tap, Medium::Ethernet).map_err(FirmwareError::Tap)?;
    let clock = std::time::Instant::now();
    let now = || Instant::from_micros(clock.elapsed().as_micros() as u64);

    let mac = EthernetAddress(cfg.mac);
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(mac)),
        &mut device,
        to_smol(now()),
    );
    let own = IpCidr::Ipv4(Ipv4Cidr::new(cfg.addr, cfg.prefix_len));
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(own);
    });
    iface
        .join_multicast_group(vrlb_core::wire::vrrp::MULTICAST_V4)
        .map_err(|e| FirmwareError::Config(format!("cannot join the VRRP group: {e}")))?;

    let mut rx_meta = [raw::PacketMetadata::EMPTY; RAW_PACKETS];
    let mut rx_data = [0u8; RAW_BYTES];
    let mut tx_meta = [raw::PacketMetadata::EMPTY; RAW_PACKETS];
    let mut tx_data = [0u8; RAW_BYTES];
    let socket = raw::Socket::new(
        Some(IpVersion::Ipv4),
        Some(IpProtocol::Unknown(vrlb_core::wire::vrrp::PROTOCOL)),
        raw::PacketBuffer::new(&mut rx_meta[..], &mut rx_data[..]),
        raw::PacketBuffer::new(&mut tx_meta[..], &mut tx_data[..]),
    );
    let mut socket_storage = [SocketStorage::EMPTY];
    let mut sockets = SocketSet::new(&mut socket_storage[..]);
    let handle = sockets.add(socket);

    // The core, with storage sized at compile time.
    let mut instances = [InstanceSlot::<InlineVips<MAX_VIPS>>::default()];
    let mut timers = [TimerEntry::default(); 4];
    let mut node = Node::new(NodeStorage {
        instances: &mut instances,
        scripts: &mut [] as &mut [ScriptSlot],
        groups: &mut [] as &mut [GroupSlot],
        timers: &mut timers,
    });
    let primary = IpAddr::V4(cfg.addr);
    let mut config = vrrp::Config::new(cfg.vrid, primary);
    config.version = cfg.version;
    config.priority = cfg.priority;
    config.advert_interval_cs = cfg.advert_interval_cs;
    config.preempt = cfg.preempt;
    if let Some(p) = &cfg.password {
        config.auth = Auth::pass(p.as_bytes());
    }
    let vips: Vec<IpAddr> = cfg.vips.iter().map(|v| IpAddr::V4(*v)).collect();
    let id = node
        .add_instance(config, &vips, &[], IfaceId(0), 0)
        .map_err(|e| FirmwareError::Config(e.to_string()))?;
    node.handle(now(), Input::Start);

    let mut shutting_down = false;
    loop {
        let t = now();
        iface.poll(to_smol(t), &mut device, &mut sockets);
        // Received adverts.
        let socket = sockets.get_mut::<raw::Socket>(handle);
        while let Ok(packet) = socket.recv() {
            let Ok(ip) = Ipv4Packet::new_checked(packet) else {
                continue;
            };
            let (src, dst, ttl) = (ip.src_addr(), ip.dst_addr(), ip.hop_limit());
            let payload = ip.payload();
            node.handle(
                t,
                Input::Advert {
                    iface: IfaceId(0),
                    src: IpAddr::V4(src),
                    dst: IpAddr::V4(dst),
                    ttl,
                    payload,
                },
            );
        }
        if stop.load(Ordering::Relaxed) && !shutting_down {
            shutting_down = true;
            node.handle(t, Input::Shutdown);
        }
        if node.poll_timeout().is_some_and(|d| d <= t) {
            node.handle_timeout(t);
        }
        while let Some(out) = node.poll_output() {
            let Output::Vrrp { event, .. } = out else {
                continue;
            };
            match event {
                vrrp::Output::Advert { priority } => {
                    send_advert(
                        &node,
                        id,
                        priority,
                        primary,
                        sockets.get_mut::<raw::Socket>(handle),
                    );
                }
                vrrp::Output::AddVips => iface.update_ip_addrs(|addrs| {
                    addrs.retain(|a| *a == own);
                    for v in &cfg.vips {
                        let _ = addrs.push(IpCidr::Ipv4(Ipv4Cidr::new(*v, 32)));
                    }
                }),
                vrrp::Output::RemoveVips => {
                    iface.update_ip_addrs(|addrs| addrs.retain(|a| *a == own))
                }
                vrrp::Output::Garp { repeat } => {
                    for _ in 0..repeat {
                        for vip in &cfg.vips {
                            send_garp(&mut device, t, mac, *vip);
                        }
                    }
                }
                vrrp::Output::StateChanged { from, to, reason } => {
                    log(&format!("vrid {}: {from} -> {to} ({reason:?})", cfg.vrid));
                }
            }
        }
        // Flush what the outputs queued.
        iface.poll(to_smol(now()), &mut device, &mut sockets);
        if shutting_down {
            return Ok(());
        }
        let core_wait = node
            .poll_timeout()
            .map(|d| d.saturating_duration_since(now()));
        let smol_wait = iface
            .poll_delay(to_smol(now()), &sockets)
            .map(|d| Duration::from_micros(d.total_micros()));
        // Wake at least every 100 ms to notice `stop`.
        let wait_for = [core_wait, smol_wait, Some(Duration::from_millis(100))]
            .into_iter()
            .flatten()
            .min();
        let _ = wait(
            std::os::fd::AsRawFd::as_raw_fd(&device),
            wait_for.map(|d| smoltcp::time::Duration::from_micros(d.as_micros())),
        );
    }
}

/// Wraps the advert in an IPv4 header (TTL 255) and queues it on the raw
/// socket; smoltcp maps the group address to its multicast MAC.
fn send_advert(
    node: &Node<'_, InlineVips<MAX_VIPS>>,
    id: InstanceId,
    priority: u8,
    primary: IpAddr,
    socket: &mut raw::Socket<'_>,
) {
    let mut vrrp_buf = [0u8; 128];
    let group = vrlb_core::wire::vrrp::MULTICAST_V4;
    let Some(len) = node.emit_advert(id, priority, primary, IpAddr::V4(group), &mut vrrp_buf)
    else {
        return;
    };
    let IpAddr::V4(src) = primary else { return };
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: group,
        next_header: IpProtocol::Unknown(vrlb_core::wire::vrrp::PROTOCOL),
        payload_len: len,
        hop_limit: vrlb_core::wire::vrrp::TTL,
    };
    let Ok(buf) = socket.send(IPV4_HEADER + len) else {
        return;
    };
    let mut packet = Ipv4Packet::new_unchecked(&mut buf[..]);
    repr.emit(&mut packet, &smoltcp::phy::ChecksumCapabilities::default());
    packet.payload_mut()[..len].copy_from_slice(&vrrp_buf[..len]);
}

/// A gratuitous ARP request for `vip` from `mac`, as keepalived sends it
/// (sender and target address both the VIP, broadcast destination).
fn send_garp(device: &mut TunTapInterface, now: Instant, mac: EthernetAddress, vip: Ipv4Addr) {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: vip,
        target_hardware_addr: EthernetAddress::BROADCAST,
        target_protocol_addr: vip,
    };
    let eth = EthernetRepr {
        src_addr: mac,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let Some(token) = device.transmit(to_smol(now)) else {
        return;
    };
    token.consume(eth.buffer_len() + arp.buffer_len(), |buf| {
        let mut frame = EthernetFrame::new_unchecked(buf);
        eth.emit(&mut frame);
        arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    });
}
