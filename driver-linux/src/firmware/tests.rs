//! The firmware driver without a TAP device: boards on an in-memory
//! Ethernet hub under a simulated clock, every frame they send recorded.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::rc::Rc;

use smoltcp::iface::SocketStorage;
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpCidr, IpProtocol, Ipv4Cidr, Ipv4Packet,
};
use vrlb_core::time::{Duration, Instant};
use vrlb_core::vrrp::{GarpConfig, State, Version};

use super::garp::{self, Garp};
use super::{Board, BoardStorage, FirmwareConfig, MAX_VIPS, from_smol};

/// A frame one port sent, and when.
struct Sent {
    port: usize,
    at: Instant,
    frame: Vec<u8>,
}

/// Every port's receive queue, what was sent, and how many more frames
/// each port may transmit (`None`: no limit).
#[derive(Default)]
struct Hub {
    queues: Vec<VecDeque<Vec<u8>>>,
    budget: Vec<Option<usize>>,
    log: Vec<Sent>,
}

type Shared = Rc<RefCell<Hub>>;

fn hub(ports: usize) -> Shared {
    Rc::new(RefCell::new(Hub {
        queues: vec![VecDeque::new(); ports],
        budget: vec![None; ports],
        log: Vec::new(),
    }))
}

struct Port {
    id: usize,
    hub: Shared,
}

struct Rx(Vec<u8>);

struct Tx {
    id: usize,
    at: Instant,
    hub: Shared,
}

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        let mut hub = self.hub.borrow_mut();
        for (i, q) in hub.queues.iter_mut().enumerate() {
            if i != self.id {
                q.push_back(frame.clone());
            }
        }
        hub.log.push(Sent {
            port: self.id,
            at: self.at,
            frame,
        });
        r
    }
}

impl Device for Port {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;

    fn receive(&mut self, timestamp: smoltcp::time::Instant) -> Option<(Rx, Tx)> {
        let frame = self.hub.borrow_mut().queues[self.id].pop_front()?;
        Some((Rx(frame), self.tx(timestamp)))
    }

    fn transmit(&mut self, timestamp: smoltcp::time::Instant) -> Option<Tx> {
        if let Some(budget) = self.hub.borrow_mut().budget[self.id].as_mut() {
            if *budget == 0 {
                return None;
            }
            *budget -= 1;
        }
        Some(self.tx(timestamp))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

impl Port {
    fn tx(&self, timestamp: smoltcp::time::Instant) -> Tx {
        Tx {
            id: self.id,
            at: from_smol(timestamp),
            hub: Rc::clone(&self.hub),
        }
    }
}

fn vip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 240 + i as u8)
}

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

/// Board `n` (192.0.2.n) with the budget case's eight VIPs.
fn config(n: u8, priority: u8) -> FirmwareConfig {
    FirmwareConfig {
        tap: heapless::String::try_from("tap0").unwrap(),
        mac: mac(n),
        addr: Ipv4Addr::new(192, 0, 2, n),
        prefix_len: 24,
        vrid: 51,
        priority,
        version: Version::V2,
        advert_interval_cs: 100,
        password: Some(heapless::Vec::from_slice(b"1111").unwrap()),
        preempt: true,
        vips: (0..MAX_VIPS).map(vip).collect(),
        garp: GarpConfig::default(),
        garp_interval: Duration::ZERO,
    }
}

/// What a recorded frame is.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Advert {
        priority: u8,
    },
    Garp(Ipv4Addr),
    ArpReply {
        from: Ipv4Addr,
        mac: EthernetAddress,
    },
    Other,
}

fn kind(frame: &[u8]) -> Kind {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Kind::Other;
    };
    match eth.ethertype() {
        EthernetProtocol::Arp => {
            let Ok(arp) = ArpPacket::new_checked(eth.payload()) else {
                return Kind::Other;
            };
            match ArpRepr::parse(&arp) {
                Ok(ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Request,
                    source_protocol_addr,
                    target_protocol_addr,
                    ..
                }) if source_protocol_addr == target_protocol_addr => {
                    Kind::Garp(source_protocol_addr)
                }
                Ok(ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Reply,
                    source_protocol_addr,
                    source_hardware_addr,
                    ..
                }) => Kind::ArpReply {
                    from: source_protocol_addr,
                    mac: source_hardware_addr,
                },
                _ => Kind::Other,
            }
        }
        EthernetProtocol::Ipv4 => match Ipv4Packet::new_checked(eth.payload()) {
            Ok(ip) if ip.next_header() == IpProtocol::Unknown(112) => Kind::Advert {
                // VRRPv2: version/type, vrid, priority.
                priority: ip.payload()[2],
            },
            _ => Kind::Other,
        },
        _ => Kind::Other,
    }
}

/// Turns every board until `until`: at once while frames wait for one,
/// otherwise at the earliest deadline any board asks for.
fn run(hub: &Shared, boards: &mut [&mut Board<'_, Port>], now: &mut Instant, until: Instant) {
    loop {
        let mut next = Instant::MAX;
        for b in boards.iter_mut() {
            if let Some(t) = b.poll(*now) {
                next = next.min(t);
            }
        }
        let in_flight = boards
            .iter_mut()
            .any(|b| !hub.borrow().queues[b.device_mut().id].is_empty());
        if in_flight {
            continue;
        }
        if next > until {
            *now = until;
            return;
        }
        // A deadline already reached (smoltcp asks to be polled "now"):
        // step the clock so the loop moves.
        *now = if next > *now {
            next
        } else {
            *now + Duration::from_micros(100)
        };
    }
}

/// The frames `port` sent, with their time.
fn sent_by(hub: &Shared, port: usize) -> Vec<(Instant, Kind)> {
    hub.borrow()
        .log
        .iter()
        .filter(|s| s.port == port)
        .map(|s| (s.at, kind(&s.frame)))
        .collect()
}

fn arp_request(from: u8, target: Ipv4Addr) -> Vec<u8> {
    let eth = EthernetRepr {
        src_addr: EthernetAddress(mac(from)),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(mac(from)),
        source_protocol_addr: Ipv4Addr::new(192, 0, 2, from),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let mut buf = vec![0; eth.buffer_len() + arp.buffer_len()];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    buf
}

#[test]
fn eight_vips_and_the_board_address_all_answer_arp_once_master() {
    let hub = hub(2);
    let cfg = config(1, 150);
    let mut storage = BoardStorage::default();
    let mut sockets = [SocketStorage::EMPTY];
    let port = Port {
        id: 0,
        hub: Rc::clone(&hub),
    };
    let mut board = Board::new(&cfg, &mut storage, &mut sockets, port, Instant::ZERO).unwrap();
    let mut now = Instant::ZERO;
    // Alone: master after Master_Down_Interval (3 s + 106/256 s).
    run(&hub, &mut [&mut board], &mut now, Instant::from_secs(5));
    assert_eq!(board.state(), State::Master);
    let mut want = vec![IpCidr::Ipv4(Ipv4Cidr::new(cfg.addr, 24))];
    want.extend((0..MAX_VIPS).map(|i| IpCidr::Ipv4(Ipv4Cidr::new(vip(i), 32))));
    assert_eq!(board.addresses(), &want[..]);

    // A host (192.0.2.99, port 1) asks for each address: the board answers.
    let targets: Vec<Ipv4Addr> = std::iter::once(cfg.addr)
        .chain((0..MAX_VIPS).map(vip))
        .collect();
    for target in &targets {
        hub.borrow_mut().queues[0].push_back(arp_request(99, *target));
        let until = now;
        run(&hub, &mut [&mut board], &mut now, until);
    }
    let replies: Vec<Kind> = sent_by(&hub, 0)
        .into_iter()
        .map(|(_, k)| k)
        .filter(|k| matches!(k, Kind::ArpReply { .. }))
        .collect();
    let want: Vec<Kind> = targets
        .iter()
        .map(|t| Kind::ArpReply {
            from: *t,
            mac: EthernetAddress(cfg.mac),
        })
        .collect();
    assert_eq!(replies, want);
    assert_eq!(board.stats().vips_refused, 0);

    // The whole board's fixed RAM on the TAP (ci/footprint.sh prints it).
    let storage = std::mem::size_of::<BoardStorage>();
    let sockets = std::mem::size_of::<[SocketStorage<'static>; 1]>();
    let board = std::mem::size_of::<Board<'static, smoltcp::phy::TunTapInterface>>();
    println!(
        "figure ram board {} board storage {storage} (node slots and the raw socket's buffers) + socket set {sockets} + node and smoltcp interface {board}",
        storage + sockets + board
    );
}

#[test]
fn garp_bursts_follow_the_cores_timing_after_the_advert() {
    let hub = hub(1);
    let mut cfg = config(1, 150);
    cfg.garp = GarpConfig {
        delay: Duration::from_secs(2),
        repeat: 3,
        refresh: Duration::ZERO,
        refresh_repeat: 1,
    };
    let mut storage = BoardStorage::default();
    let mut sockets = [SocketStorage::EMPTY];
    let port = Port {
        id: 0,
        hub: Rc::clone(&hub),
    };
    let mut board = Board::new(&cfg, &mut storage, &mut sockets, port, Instant::ZERO).unwrap();
    let mut now = Instant::ZERO;
    run(&hub, &mut [&mut board], &mut now, Instant::from_secs(10));

    let frames = sent_by(&hub, 0);
    let garps: Vec<(Instant, Ipv4Addr)> = frames
        .iter()
        .filter_map(|(t, k)| match k {
            Kind::Garp(a) => Some((*t, *a)),
            _ => None,
        })
        .collect();
    let first_advert = frames
        .iter()
        .position(|(_, k)| matches!(k, Kind::Advert { .. }))
        .unwrap();
    let first_garp = frames
        .iter()
        .position(|(_, k)| matches!(k, Kind::Garp(_)))
        .unwrap();
    assert!(first_advert < first_garp, "the advert leaves first");
    // The transition: Master_Down_Interval at priority 150 (3 s + 106/256 s).
    let takeover = frames[first_advert].0;
    assert_eq!(takeover.as_millis(), 3_414);
    // Two bursts of 3 per VIP, round after round over the eight VIPs: at
    // the transition and garp_master_delay (2 s) later; none after.
    assert_eq!(garps.len(), 2 * 3 * MAX_VIPS, "{garps:?}");
    for (i, (t, a)) in garps.iter().enumerate() {
        let burst = i / (3 * MAX_VIPS);
        assert_eq!(
            *t,
            takeover + Duration::from_secs(2 * burst as u64),
            "frame {i}"
        );
        assert_eq!(*a, vip(i % MAX_VIPS), "frame {i}");
    }
    assert_eq!(board.stats().garp.sent, 48);
}

#[test]
fn garp_interval_spaces_every_message() {
    let hub = hub(1);
    let mut cfg = config(1, 150);
    cfg.garp.delay = Duration::ZERO;
    cfg.garp_interval = Duration::from_millis(10);
    let mut storage = BoardStorage::default();
    let mut sockets = [SocketStorage::EMPTY];
    let port = Port {
        id: 0,
        hub: Rc::clone(&hub),
    };
    let mut board = Board::new(&cfg, &mut storage, &mut sockets, port, Instant::ZERO).unwrap();
    let mut now = Instant::ZERO;
    run(&hub, &mut [&mut board], &mut now, Instant::from_secs(10));
    let garps: Vec<Instant> = sent_by(&hub, 0)
        .into_iter()
        .filter_map(|(t, k)| matches!(k, Kind::Garp(_)).then_some(t))
        .collect();
    // keepalived's default garp_master_repeat (5) for each of 8 VIPs.
    assert_eq!(garps.len(), 5 * MAX_VIPS);
    let takeover = garps[0];
    assert_eq!(takeover.as_millis(), 3_414);
    for (i, t) in garps.iter().enumerate() {
        assert_eq!(
            *t,
            takeover + Duration::from_millis(10 * i as u64),
            "frame {i}"
        );
    }
}

#[test]
fn two_boards_elect_by_priority_and_fail_over_both_ways() {
    let hub = hub(2);
    let (cfg_a, cfg_b) = (config(1, 150), config(2, 100));
    let mut storage = [
        BoardStorage::default(),
        BoardStorage::default(),
        BoardStorage::default(),
    ];
    let mut sockets = [
        [SocketStorage::EMPTY],
        [SocketStorage::EMPTY],
        [SocketStorage::EMPTY],
    ];
    let [st_a, st_b, st_a2] = &mut storage;
    let [so_a, so_b, so_a2] = &mut sockets;
    let port = |id| Port {
        id,
        hub: Rc::clone(&hub),
    };
    let mut a = Board::new(&cfg_a, st_a, so_a, port(0), Instant::ZERO).unwrap();
    let mut b = Board::new(&cfg_b, st_b, so_b, port(1), Instant::ZERO).unwrap();
    let mut now = Instant::ZERO;
    run(
        &hub,
        &mut [&mut a, &mut b],
        &mut now,
        Instant::from_secs(10),
    );
    assert_eq!((a.state(), b.state()), (State::Master, State::Backup));
    assert_eq!(
        b.addresses().len(),
        1,
        "a backup holds only its own address"
    );

    // A resigns (priority 0): B takes over after Skew_Time (156/256 s).
    a.shutdown(now);
    let resigned = now;
    assert!(
        sent_by(&hub, 0)
            .iter()
            .any(|(t, k)| *t == resigned && *k == Kind::Advert { priority: 0 })
    );
    assert_eq!(a.addresses().len(), 1, "a resigned board released its VIPs");
    run(&hub, &mut [&mut b], &mut now, Instant::from_secs(11));
    assert_eq!(b.state(), State::Master);
    let b_garp = sent_by(&hub, 1)
        .into_iter()
        .find(|(_, k)| matches!(k, Kind::Garp(_)))
        .unwrap();
    assert_eq!(b_garp.0, resigned + Duration::from_micros(609_375));
    drop(a);

    // A comes back at 150 and preempts B (what reached its port while it
    // was down is gone with it).
    hub.borrow_mut().queues[0].clear();
    let mut a2 = Board::new(&cfg_a, st_a2, so_a2, port(0), now).unwrap();
    run(
        &hub,
        &mut [&mut a2, &mut b],
        &mut now,
        Instant::from_secs(20),
    );
    assert_eq!((a2.state(), b.state()), (State::Master, State::Backup));
    assert_eq!(b.addresses().len(), 1);
    assert_eq!(a2.addresses().len(), 1 + MAX_VIPS);
    assert_eq!(b.stats().adverts_dropped + a2.stats().adverts_dropped, 0);
}

#[test]
fn garp_frame_is_laid_out_as_keepalived_sends_it() {
    let mut buf = [0u8; garp::FRAME_LEN];
    let mac = EthernetAddress(mac(1));
    garp::emit(&mut buf, mac, vip(3));
    let eth = EthernetFrame::new_checked(&buf[..]).unwrap();
    assert_eq!(eth.dst_addr(), EthernetAddress::BROADCAST);
    assert_eq!(eth.src_addr(), mac);
    assert_eq!(eth.ethertype(), EthernetProtocol::Arp);
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
    assert_eq!(
        arp,
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: mac,
            source_protocol_addr: vip(3),
            target_hardware_addr: EthernetAddress::BROADCAST,
            target_protocol_addr: vip(3),
        }
    );
}

#[test]
fn a_device_without_room_defers_garps_and_loses_none() {
    let hub = hub(1);
    let mut port = Port {
        id: 0,
        hub: Rc::clone(&hub),
    };
    let vips = [vip(0), vip(1)];
    let mut g = Garp::new(Duration::ZERO);
    let t = Instant::from_secs(1);
    g.request(5, vips.len(), t);
    hub.borrow_mut().budget[0] = Some(3);
    g.poll(t, &mut port, EthernetAddress(mac(1)), &vips);
    assert_eq!(hub.borrow().log.len(), 3);
    assert_eq!(g.poll_at(), Some(t), "the rest is due at once");
    assert_eq!(g.stats().deferred, 1);
    hub.borrow_mut().budget[0] = None;
    g.poll(
        t + Duration::from_millis(1),
        &mut port,
        EthernetAddress(mac(1)),
        &vips,
    );
    let sent: Vec<Kind> = hub.borrow().log.iter().map(|s| kind(&s.frame)).collect();
    let want: Vec<Kind> = (0..10).map(|i| Kind::Garp(vips[i % 2])).collect();
    assert_eq!(sent, want);
    assert_eq!(g.poll_at(), None);
    assert_eq!((g.stats().sent, g.stats().cancelled), (10, 0));
}

#[test]
fn released_vips_cancel_what_is_left_and_a_new_burst_adds_up() {
    let hub = hub(1);
    let mut port = Port {
        id: 0,
        hub: Rc::clone(&hub),
    };
    let vips = [vip(0), vip(1), vip(2)];
    let mut g = Garp::new(Duration::from_millis(100));
    let t = Instant::from_secs(1);
    g.request(2, vips.len(), t);
    g.poll(t, &mut port, EthernetAddress(mac(1)), &vips);
    assert_eq!(g.poll_at(), Some(t + Duration::from_millis(100)));
    // Nothing before its time.
    g.poll(
        t + Duration::from_millis(50),
        &mut port,
        EthernetAddress(mac(1)),
        &vips,
    );
    assert_eq!(hub.borrow().log.len(), 1);
    // Another burst while one is going: owed on top, same pace.
    g.request(1, vips.len(), t + Duration::from_millis(60));
    assert_eq!(g.poll_at(), Some(t + Duration::from_millis(100)));
    g.cancel();
    assert_eq!(g.poll_at(), None);
    assert_eq!(g.stats().cancelled, 5 + 3);
    g.poll(
        t + Duration::from_secs(5),
        &mut port,
        EthernetAddress(mac(1)),
        &vips,
    );
    assert_eq!(hub.borrow().log.len(), 1);
}
