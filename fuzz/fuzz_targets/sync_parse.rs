//! Arbitrary bytes as a connection sync message: `wire::sync::parse` never
//! panics; whatever parses has exactly the entries its header counts and
//! re-emits (through `Writer`) to a message that parses the same; and a
//! receiving sync machine takes the bytes, applying them to a balancer
//! whose services and servers the entries can name, without panicking.
//! A set low bit of the first byte patches the header into a valid one
//! (version 1, the right length) so the fuzzer spends its time on entries.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use vrlb_core::lb::{
    Balancer, ConnSlot, Layout, LbConfig, Protocol, RealServer, Scheduler, ServerSlot,
    ServiceConfig, ServiceKey, ServiceSlot, Storage,
};
use vrlb_core::sync::{ConnSync, Input, Role, SyncConfig};
use vrlb_core::time::Instant;
use vrlb_core::wire::sync::{self, HEADER_LEN, MESSAGE_LEN_MAX, Writer};

const LAYOUT: Layout = Layout {
    services: 2,
    servers_per_service: 4,
    mh_table_max: 0,
    connections: 64,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if selector & 1 == 1 && bytes.len() >= HEADER_LEN && bytes.len() <= MESSAGE_LEN_MAX {
        bytes[0] = sync::VERSION;
        let len = bytes.len() as u16;
        bytes[2..4].copy_from_slice(&len.to_be_bytes());
    }

    if let Ok((repr, entries)) = sync::parse(&bytes) {
        let list: Vec<_> = entries.collect();
        assert_eq!(
            list.len(),
            usize::from(repr.count),
            "checked messages yield every entry"
        );
        let mut out = vec![0u8; MESSAGE_LEN_MAX];
        let mut w = Writer::new(&mut out, MESSAGE_LEN_MAX).expect("a header fits");
        for e in &list {
            assert!(w.push(e), "what fit once fits again");
        }
        let len = w.finish(repr.sync_id, repr.session, repr.sequence);
        let (again, entries) = sync::parse(&out[..len]).expect("a re-emitted message parses");
        assert_eq!(again, repr);
        assert!(
            entries.eq(list.iter().copied()),
            "entries survive the round trip"
        );
    }

    // A receiver whose balancer has a TCP and a persistent UDP service on
    // 192.0.2.10, so well-formed entries reach `sync_apply`.
    let mut services = vec![ServiceSlot::EMPTY; LAYOUT.service_slots()];
    let mut servers = vec![ServerSlot::EMPTY; LAYOUT.server_slots()];
    let mut tree = vec![0u16; LAYOUT.tree_nodes()];
    let mut mh = vec![0u16; LAYOUT.mh_entries()];
    let mut conns = vec![ConnSlot::EMPTY; LAYOUT.conn_slots()];
    let mut index = vec![0u8; LAYOUT.index_bytes()];
    let mut wheel = vec![0u32; LAYOUT.wheel_buckets()];
    let storage = Storage {
        services: &mut services,
        servers: &mut servers,
        tree: &mut tree,
        mh: &mut mh,
        conns: &mut conns,
        index: &mut index,
        wheel: &mut wheel,
    };
    let mut lb = Balancer::new(LAYOUT, storage, LbConfig::DEFAULT, 1, Instant::ZERO).unwrap();
    let vip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
    for (protocol, port, persistence_s) in [(Protocol::Tcp, 80, 0), (Protocol::Udp, 53, 300)] {
        let mut cfg = ServiceConfig::new(
            ServiceKey::Addr {
                protocol,
                vip,
                port,
            },
            Scheduler::Wlc,
        );
        cfg.persistence_timeout_s = persistence_s;
        let s = lb.add_service(cfg).unwrap();
        for i in 1..=2 {
            let rs = RealServer::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, i)), port);
            lb.add_server(s, rs).unwrap();
        }
    }
    let mut machine = ConnSync::new(
        SyncConfig {
            sync_id: bytes.get(1).copied().unwrap_or(0),
            ..SyncConfig::DEFAULT
        },
        2,
        Instant::ZERO,
    )
    .unwrap();
    machine.handle(Instant::ZERO, Input::SetRole(Role::Receiver), &mut lb);
    machine.handle(Instant::from_millis(1), Input::Receive(&bytes), &mut lb);
    // The same bytes again are a replay; both paths must hold.
    machine.handle(Instant::from_millis(2), Input::Receive(&bytes), &mut lb);
    lb.handle_timeout(Instant::from_secs(3600));
    while machine.poll_output().is_some() {}
});
