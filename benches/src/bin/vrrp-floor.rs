//! `vrrp-floor`: the least a VRRP router can do at rest, for the footprint
//! measurement's floor rows. `send` sleeps and sends one VRRPv2 advert
//! every interval (two system calls an advert: the sleep and `sendto`);
//! `recv` blocks reading adverts (one `recvfrom` each) and does nothing
//! with them. No state machine, no timers, no logging: what any daemon
//! that sends or reads every advert pays at least, so a goal below it is
//! out of any implementation's reach on that machine.
//!
//! ```sh
//! vrrp-floor send IFACE SRC VIP VRID PRIORITY INTERVAL_S PASS
//! vrrp-floor recv IFACE
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vrlb_core::wire::vrrp::{
    Addrs, Auth, ChecksumMode, MULTICAST_V4, PROTOCOL, Repr, TTL, Version,
};

fn raw_socket(iface: &str) -> std::io::Result<Socket> {
    let socket = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(PROTOCOL))),
    )?;
    socket.bind_device(Some(iface.as_bytes()))?;
    Ok(socket)
}

fn send(args: &[String]) -> Result<(), String> {
    let [iface, src, vip, vrid, priority, interval, pass] = args else {
        return Err("send IFACE SRC VIP VRID PRIORITY INTERVAL_S PASS".into());
    };
    let parse_ip = |s: &str| s.parse::<Ipv4Addr>().map_err(|e| format!("{s}: {e}"));
    let (src, vip) = (parse_ip(src)?, parse_ip(vip)?);
    let vrid: u8 = vrid.parse().map_err(|e| format!("VRID {vrid}: {e}"))?;
    let priority: u8 = priority
        .parse()
        .map_err(|e| format!("PRIORITY {priority}: {e}"))?;
    let interval_s: u16 = interval
        .parse()
        .map_err(|e| format!("INTERVAL_S {interval}: {e}"))?;
    let vips = [IpAddr::V4(vip)];
    let advert = Repr {
        version: Version::V2,
        vrid,
        priority,
        advert_interval_cs: interval_s.saturating_mul(100),
        auth: Auth::pass(pass.as_bytes()),
        addrs: Addrs::List(&vips),
    };
    let mut bytes = [0u8; 64];
    let len = advert
        .emit(
            &mut bytes,
            IpAddr::V4(src),
            IpAddr::V4(MULTICAST_V4),
            ChecksumMode::default(),
        )
        .map_err(|e| format!("advert: {e:?}"))?;
    let socket = raw_socket(iface).map_err(|e| format!("socket: {e}"))?;
    socket
        .set_multicast_ttl_v4(u32::from(TTL))
        .and_then(|()| socket.set_multicast_loop_v4(false))
        .and_then(|()| socket.set_multicast_if_v4(&src))
        .map_err(|e| format!("socket options: {e}"))?;
    let to = SockAddr::from(SocketAddr::V4(SocketAddrV4::new(MULTICAST_V4, 0)));
    let every = Duration::from_secs(u64::from(interval_s));
    let mut next = Instant::now();
    loop {
        socket
            .send_to(&bytes[..len], &to)
            .map_err(|e| format!("send: {e}"))?;
        next += every;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

fn recv(args: &[String]) -> Result<(), String> {
    let [iface] = args else {
        return Err("recv IFACE".into());
    };
    let index = nix::net::if_::if_nametoindex(iface.as_str())
        .map_err(|e| format!("interface {iface}: {e}"))?;
    let socket = raw_socket(iface).map_err(|e| format!("socket: {e}"))?;
    socket
        .join_multicast_v4_n(
            &MULTICAST_V4,
            &socket2::InterfaceIndexOrAddress::Index(index),
        )
        .map_err(|e| format!("join: {e}"))?;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
    loop {
        socket.recv(&mut buf).map_err(|e| format!("recv: {e}"))?;
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("send") => send(&args[1..]),
        Some("recv") => recv(&args[1..]),
        _ => Err("usage: vrrp-floor send IFACE SRC VIP VRID PRIORITY INTERVAL_S PASS | vrrp-floor recv IFACE".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vrrp-floor: {e}");
            ExitCode::FAILURE
        }
    }
}
