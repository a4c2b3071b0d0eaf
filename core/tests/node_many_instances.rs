//! A node with many instances: an advert reaches its instance through the
//! node's (interface, VRID, family) index across adds, removals and
//! reloads; only instances with outputs are drained, in the documented
//! order; and the timer queue reports live deadlines only, so a driven
//! backup never wakes for nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vrlb_core::config::{NoIncludes, Options};
use vrlb_core::node::build::{self, Environment};
use vrlb_core::node::{
    GroupSlot, IfaceId, Input, InstanceId, InstanceSlot, Node, NodeError, NodeStorage, Output,
    ScriptSlot, TimerEntry,
};
use vrlb_core::time::{Duration, Instant};
use vrlb_core::vrrp::{self, Family, State, Version};

struct Storage {
    instances: Vec<InstanceSlot>,
    scripts: Vec<ScriptSlot>,
    groups: Vec<GroupSlot>,
    timers: Vec<TimerEntry>,
}

impl Storage {
    fn new(instances: usize) -> Self {
        Storage {
            instances: vec![InstanceSlot::default(); instances],
            scripts: vec![ScriptSlot::default(); 1],
            groups: vec![GroupSlot::default(); 1],
            timers: vec![TimerEntry::default(); 2 * instances + 6],
        }
    }

    fn node(&mut self) -> Node<'_> {
        Node::new(NodeStorage {
            instances: &mut self.instances,
            scripts: &mut self.scripts,
            groups: &mut self.groups,
            timers: &mut self.timers,
        })
    }
}

fn drain(node: &mut Node<'_>) -> Vec<Output> {
    std::iter::from_fn(|| node.poll_output()).collect()
}

fn own_addr(family: Family, n: u16) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + (n % 4) as u8)),
        Family::V6 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1 + n)),
    }
}

fn peer_addr(family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200)),
        Family::V6 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200)),
    }
}

fn vip(family: Family, n: u16) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::new(198, 51, 100, (n % 250) as u8 + 1)),
        Family::V6 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, n + 1)),
    }
}

fn config(vrid: u8, family: Family, iface: u16, priority: u8) -> vrrp::Config {
    let mut c = vrrp::Config::new(vrid, own_addr(family, iface));
    c.priority = priority;
    if family == Family::V6 {
        c.version = Version::V3;
    }
    c
}

/// Instance `i` of 1000: four interfaces, VRIDs 1..=125, both families,
/// so every VRID is used eight times on the node.
fn key_of(i: u16) -> (IfaceId, u8, Family) {
    let family = if (i / 4) % 2 == 1 {
        Family::V6
    } else {
        Family::V4
    };
    (IfaceId(i % 4), 1 + (i / 8) as u8, family)
}

/// An advert for (iface, vrid, family) at priority 254 from the peer,
/// rendered by `id` (which must be that instance) and handed to `node`.
fn advert_to(node: &mut Node<'_>, now: Instant, id: InstanceId) {
    let inst = node.instance(id).unwrap();
    let family = inst.config().family;
    let iface = node.instance_iface(id).unwrap();
    let dst = match family {
        Family::V4 => vrrp::MULTICAST,
        Family::V6 => IpAddr::V6(vrlb_core::wire::vrrp::MULTICAST_V6),
    };
    let src = peer_addr(family);
    let mut buf = [0u8; 64];
    let len = node.emit_advert(id, 254, src, dst, &mut buf).unwrap();
    node.handle(
        now,
        Input::Advert {
            iface,
            src,
            dst,
            ttl: 255,
            payload: &buf[..len],
        },
    );
}

/// Adverts each instance accepted, by id.
fn received(node: &Node<'_>) -> Vec<(u16, u32)> {
    node.instances()
        .map(|(id, i)| (id.0, i.stats().adverts_received))
        .collect()
}

/// Sends one advert to every instance, checking each lands on it alone.
fn every_advert_lands_on_its_instance(node: &mut Node<'_>, now: Instant) {
    let ids: Vec<InstanceId> = node.instances().map(|(id, _)| id).collect();
    let unknown = node.stats().adverts_unknown_vrid;
    for id in ids {
        let before = received(node);
        advert_to(node, now, id);
        drain(node);
        let after = received(node);
        let changed: Vec<u16> = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b != a)
            .map(|(b, _)| b.0)
            .collect();
        assert_eq!(changed, [id.0], "the advert for {id:?} went elsewhere");
    }
    assert_eq!(node.stats().adverts_unknown_vrid, unknown);
}

#[test]
fn adverts_find_their_instance_among_a_thousand_across_adds_and_removals() {
    let mut st = Storage::new(1000);
    let mut node = st.node();
    let mut ids = Vec::new();
    for i in 0..1000u16 {
        let (iface, vrid, family) = key_of(i);
        let id = node
            .add_instance(
                config(vrid, family, iface.0, 100),
                &[vip(family, i)],
                &[],
                iface,
                u64::from(i),
            )
            .unwrap();
        ids.push(id);
    }
    // The index still refuses a second (interface, VRID, family).
    let (iface, vrid, family) = key_of(17);
    assert_eq!(
        node.add_instance(config(vrid, family, iface.0, 100), &[], &[], iface, 5000),
        Err(NodeError::DuplicateVrid)
    );
    node.handle(Instant::ZERO, Input::Start);
    drain(&mut node);
    every_advert_lands_on_its_instance(&mut node, Instant::from_millis(10));

    // An advert for a VRID nobody has on that interface is counted.
    let now = Instant::from_millis(20);
    let mut buf = [0u8; 64];
    let len = node
        .emit_advert(
            ids[0],
            254,
            peer_addr(Family::V4),
            vrrp::MULTICAST,
            &mut buf,
        )
        .unwrap();
    buf[1] = 200; // VRID 200: unused (the checksum no longer matters).
    node.handle(
        now,
        Input::Advert {
            iface: IfaceId(0),
            src: peer_addr(Family::V4),
            dst: vrrp::MULTICAST,
            ttl: 255,
            payload: &buf[..len],
        },
    );
    assert_eq!(node.stats().adverts_unknown_vrid, 1);

    // Remove every third instance: their adverts now find nothing.
    let removed: Vec<InstanceId> = ids.iter().copied().step_by(3).collect();
    let mut rendered = Vec::new();
    for id in &removed {
        let mut buf = [0u8; 64];
        let family = node.instance(*id).unwrap().config().family;
        let dst = match family {
            Family::V4 => vrrp::MULTICAST,
            Family::V6 => IpAddr::V6(vrlb_core::wire::vrrp::MULTICAST_V6),
        };
        let len = node
            .emit_advert(*id, 254, peer_addr(family), dst, &mut buf)
            .unwrap();
        let iface = node.instance_iface(*id).unwrap();
        rendered.push((iface, family, dst, buf[..len].to_vec()));
        node.remove_instance(*id).unwrap();
    }
    drain(&mut node);
    let now = Instant::from_millis(30);
    for (iface, family, dst, bytes) in &rendered {
        node.handle(
            now,
            Input::Advert {
                iface: *iface,
                src: peer_addr(*family),
                dst: *dst,
                ttl: 255,
                payload: bytes,
            },
        );
    }
    assert_eq!(
        node.stats().adverts_unknown_vrid as usize,
        1 + removed.len(),
        "every removed instance's advert is unknown"
    );
    every_advert_lands_on_its_instance(&mut node, Instant::from_millis(40));

    // Their slots take instances with other keys (VRIDs 126..): found too.
    for (n, _) in removed.iter().enumerate() {
        let n = n as u16;
        let (iface, vrid, family) = key_of(n);
        let vrid = vrid + 125;
        node.add_instance(
            config(vrid, family, iface.0, 100),
            &[vip(family, 600 + n)],
            &[],
            iface,
            10_000 + u64::from(n),
        )
        .unwrap();
    }
    assert_eq!(node.instances().count(), 1000);
    every_advert_lands_on_its_instance(&mut node, Instant::from_millis(50));
}

#[derive(Default)]
struct Env {
    ifaces: Vec<String>,
}

impl Environment for Env {
    fn interface(&mut self, name: &str) -> IfaceId {
        let i = self
            .ifaces
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| {
                self.ifaces.push(name.to_string());
                self.ifaces.len() - 1
            });
        IfaceId(i as u16)
    }
    fn primary_address(&mut self, iface: IfaceId, family: Family) -> Option<IpAddr> {
        Some(own_addr(family, iface.0))
    }
}

/// Where instance `VI_k` lives: (interface name, VRID).
type Place = (String, u8);

/// `vrrp_instance VI_k` for each (k, place).
fn conf(places: &[(u16, Place)]) -> String {
    let mut text = String::new();
    for (k, (iface, vrid)) in places {
        text.push_str(&format!(
            "vrrp_instance VI_{k} {{\n interface {iface}\n virtual_router_id {vrid}\n \
             priority 100\n advert_int 1\n virtual_ipaddress {{\n  198.51.100.{} \n }}\n}}\n",
            1 + k % 250
        ));
    }
    text
}

/// 800 instances: `VI_k` on `eth(k % 4)` with VRID `1 + k / 4`.
fn base() -> Vec<(u16, Place)> {
    (0..800u16)
        .map(|k| (k, (format!("eth{}", k % 4), 1 + (k / 4) as u8)))
        .collect()
}

fn build_into(node: &mut Node<'_>, env: &mut Env, places: &[(u16, Place)], now: Instant) {
    // The build reads the node's clock: bring it to `now`.
    node.handle_timeout(now);
    drain(node);
    build::build(
        node,
        env,
        "keepalived.conf",
        &conf(places),
        &Options::default(),
        &mut NoIncludes,
    )
    .unwrap();
    drain(node);
    // The node has exactly the configured (interface, VRID) pairs.
    let mut have: Vec<Place> = node
        .instances()
        .map(|(id, i)| {
            let iface = node.instance_iface(id).unwrap();
            (env.ifaces[usize::from(iface.0)].clone(), i.config().vrid)
        })
        .collect();
    let mut want: Vec<Place> = places.iter().map(|(_, p)| p.clone()).collect();
    have.sort();
    want.sort();
    assert_eq!(have, want);
    if node.started() {
        every_advert_lands_on_its_instance(node, now);
    }
}

#[test]
fn adverts_find_their_instance_after_reloads_that_move_and_drop_instances() {
    // Room for the instances a reload replaces while their goodbyes wait
    // to be drained.
    let mut st = Storage::new(1600);
    let mut node = st.node();
    let mut env = Env::default();
    build_into(&mut node, &mut env, &base(), Instant::ZERO);
    node.handle(Instant::ZERO, Input::Start);
    drain(&mut node);
    every_advert_lands_on_its_instance(&mut node, Instant::from_millis(10));

    // Reload: drop a tenth; move every seventh to another interface (a
    // new instance there); give every fifth other a new VRID (201..=240,
    // unused so far: also a new instance).
    let changed: Vec<(u16, Place)> = base()
        .into_iter()
        .filter(|(k, _)| k % 10 != 3)
        .map(|(k, (iface, vrid))| {
            let m = k / 4;
            if k % 7 == 0 {
                (k, (format!("eth{}", 4 + k % 4), vrid))
            } else if k % 5 == 0 {
                (k, (iface, 201 + (m / 5) as u8))
            } else {
                (k, (iface, vrid))
            }
        })
        .collect();
    build_into(&mut node, &mut env, &changed, Instant::from_millis(20));
    assert_eq!(node.instances().count(), 720);

    // And back: everything where it started.
    build_into(&mut node, &mut env, &base(), Instant::from_millis(30));
    assert_eq!(node.instances().count(), 800);
}

/// Two nodes, one director each, whose instances share VRIDs; adverts are
/// delivered at once. Counts every `handle_timeout` the driver makes and
/// every one that produced nothing.
struct Pair<'a> {
    nodes: [Node<'a>; 2],
    up: [bool; 2],
    now: Instant,
    wakeups: [u32; 2],
    idle_wakeups: [u32; 2],
    /// (time, instance) of every advert node 1 heard.
    heard: Vec<(Instant, u16)>,
}

impl Pair<'_> {
    fn deliver(&mut self, outs: [Vec<Output>; 2]) {
        for (from, outs) in outs.into_iter().enumerate() {
            let to = 1 - from;
            for o in outs {
                let Output::Vrrp {
                    instance,
                    event: vrrp::Output::Advert { priority },
                } = o
                else {
                    continue;
                };
                if !self.up[to] {
                    continue;
                }
                let src = self.nodes[from]
                    .instance(instance)
                    .unwrap()
                    .config()
                    .primary_addr;
                let iface = self.nodes[from].instance_iface(instance).unwrap();
                let mut buf = [0u8; 64];
                let len = self.nodes[from]
                    .emit_advert(instance, priority, src, vrrp::MULTICAST, &mut buf)
                    .unwrap();
                self.nodes[to].handle(
                    self.now,
                    Input::Advert {
                        iface,
                        src,
                        dst: vrrp::MULTICAST,
                        ttl: 255,
                        payload: &buf[..len],
                    },
                );
                if to == 1 {
                    self.heard.push((self.now, instance.0));
                }
                // Backups answer nothing, but drain all the same.
                let back = drain(&mut self.nodes[to]);
                assert!(
                    back.iter().all(|o| !matches!(
                        o,
                        Output::Vrrp {
                            event: vrrp::Output::Advert { .. },
                            ..
                        }
                    )),
                    "an advert answered with an advert"
                );
            }
        }
    }

    /// Runs the driver loop until `end`: jump to the earliest deadline,
    /// call `handle_timeout` on each node whose deadline it is, drain,
    /// deliver.
    fn run_until(&mut self, end: Instant) {
        loop {
            let next = (0..2)
                .filter(|n| self.up[*n])
                .filter_map(|n| self.nodes[n].poll_timeout())
                .min();
            let Some(t) = next.filter(|t| *t <= end) else {
                break;
            };
            self.now = t;
            let outs = [0, 1].map(|n| {
                if !self.up[n] || self.nodes[n].poll_timeout().is_none_or(|d| d > t) {
                    return Vec::new();
                }
                self.nodes[n].handle_timeout(t);
                self.wakeups[n] += 1;
                let out = drain(&mut self.nodes[n]);
                if out.is_empty() {
                    self.idle_wakeups[n] += 1;
                }
                out
            });
            self.deliver(outs);
        }
        self.now = end;
    }
}

#[test]
fn a_backup_wakes_only_when_a_live_deadline_is_due() {
    // 40 instances at VRRPv3 intervals of 1.00 to 1.39 s, so deadlines
    // interleave and adverts replace master-down deadlines out of order.
    let mut st = [Storage::new(40), Storage::new(40)];
    let [a, b] = &mut st;
    let mut nodes = [a.node(), b.node()];
    for (n, node) in nodes.iter_mut().enumerate() {
        for i in 0..40u16 {
            let mut c = config(1 + i as u8, Family::V4, n as u16, [200, 100][n]);
            c.version = Version::V3;
            c.advert_interval_cs = 100 + i;
            node.add_instance(c, &[vip(Family::V4, i)], &[], IfaceId(0), u64::from(i))
                .unwrap();
        }
        node.handle(Instant::ZERO, Input::Start);
        drain(node);
    }
    let mut pair = Pair {
        nodes,
        up: [true, true],
        now: Instant::ZERO,
        wakeups: [0; 2],
        idle_wakeups: [0; 2],
        heard: Vec::new(),
    };
    pair.run_until(Instant::from_secs(120));
    assert!(
        pair.nodes[0]
            .instances()
            .all(|(_, i)| i.state() == State::Master),
        "director 0 masters every instance"
    );
    assert!(
        pair.nodes[1]
            .instances()
            .all(|(_, i)| i.state() == State::Backup)
    );
    assert_eq!(pair.idle_wakeups, [0, 0], "a wake-up with nothing to do");
    // The backup's only wake-ups: none (every master-down deadline is
    // replaced by an advert before it comes).
    assert_eq!(pair.wakeups[1], 0);
    let sent: u32 = pair.nodes[0]
        .instances()
        .map(|(_, i)| i.stats().adverts_sent)
        .sum();
    assert_eq!(pair.heard.len() as u32, sent, "every advert was delivered");
    assert!(pair.wakeups[0] > 0);

    // After all those adverts the backup's next deadline is exactly the
    // earliest master-down deadline: last advert heard + its interval.
    let backup = &pair.nodes[1];
    let expected = backup
        .instances()
        .map(|(id, inst)| {
            let last = pair
                .heard
                .iter()
                .rev()
                .find(|(_, i)| *i == id.0)
                .map(|(t, _)| *t)
                .unwrap();
            last + inst.master_down_interval()
        })
        .min();
    assert_eq!(backup.poll_timeout(), expected);
}

#[test]
fn after_n_adverts_a_backups_next_deadline_is_its_master_down_deadline() {
    let mut st = Storage::new(1);
    let mut node = st.node();
    let id = node
        .add_instance(
            config(51, Family::V4, 0, 100),
            &[vip(Family::V4, 0)],
            &[],
            IfaceId(0),
            1,
        )
        .unwrap();
    node.handle(Instant::ZERO, Input::Start);
    drain(&mut node);
    let mdi = node.instance(id).unwrap().master_down_interval();
    assert_eq!(node.poll_timeout(), Some(Instant::ZERO + mdi));
    let mut last = Instant::ZERO;
    for n in 1..=50u64 {
        last = Instant::from_millis(n * 1000 + n % 7);
        advert_to(&mut node, last, id);
        drain(&mut node);
        assert_eq!(
            node.poll_timeout(),
            Some(last + mdi),
            "after advert {n}: a stale deadline is reported"
        );
    }
    // Silence: it takes over exactly then, with one wake-up.
    let t = node.poll_timeout().unwrap();
    assert_eq!(t, last + mdi);
    node.handle_timeout(t);
    let out = drain(&mut node);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Vrrp {
            event: vrrp::Output::StateChanged {
                to: State::Master,
                ..
            },
            ..
        }
    )));
    // A master's next deadline is its next advert.
    assert_eq!(node.poll_timeout(), Some(t + Duration::from_secs(1)));
    assert_eq!(node.stats().timer_rebuilds, 0);
}

#[test]
fn outputs_come_per_instance_in_the_order_instances_got_them() {
    let mut st = Storage::new(8);
    let mut node = st.node();
    // Owners (priority 255) become master at Start: each emits several
    // outputs. Add them in slot order 0..8.
    for i in 0..8u16 {
        let mut c = config(1 + i as u8, Family::V4, 0, 255);
        c.garp.delay = Duration::ZERO;
        node.add_instance(c, &[vip(Family::V4, i)], &[], IfaceId(0), u64::from(i))
            .unwrap();
    }
    node.handle(Instant::ZERO, Input::Start);
    let order: Vec<u16> = drain(&mut node)
        .into_iter()
        .filter_map(|o| match o {
            Output::Vrrp { instance, .. } => Some(instance.0),
            _ => None,
        })
        .collect();
    // Start marks them in slot order; each one's outputs come together.
    let mut runs: Vec<u16> = order.clone();
    runs.dedup();
    assert_eq!(runs, (0..8).collect::<Vec<_>>(), "{order:?}");

    // Adverts due at one time, then a link change that affects 5, 2 and 6
    // only through tracking order: the order the instances were touched.
    let t = Instant::from_secs(1);
    node.handle_timeout(t);
    let advertised: Vec<u16> = drain(&mut node)
        .into_iter()
        .filter_map(|o| match o {
            Output::Vrrp {
                instance,
                event: vrrp::Output::Advert { .. },
            } => Some(instance.0),
            _ => None,
        })
        .collect();
    assert_eq!(advertised, (0..8).collect::<Vec<_>>());

    // Remove 6, then 2, then 5: each master resigns (priority 0 and its
    // VIPs released), in the order they were removed, and nothing else
    // is visited.
    for i in [6u16, 2, 5] {
        node.remove_instance(InstanceId(i)).unwrap();
    }
    let resigned: Vec<(u16, vrrp::Output)> = drain(&mut node)
        .into_iter()
        .filter_map(|o| match o {
            Output::Vrrp { instance, event } => Some((instance.0, event)),
            _ => None,
        })
        .collect();
    let mut who: Vec<u16> = resigned.iter().map(|(i, _)| *i).collect();
    who.dedup();
    assert_eq!(who, [6, 2, 5], "{resigned:?}");
    assert!(
        resigned
            .iter()
            .any(|(i, e)| *i == 6 && *e == vrrp::Output::Advert { priority: 0 })
    );
    // Their slots are free once drained: three new instances fit.
    for i in 0..3u16 {
        node.add_instance(
            config(100 + i as u8, Family::V4, 0, 100),
            &[vip(Family::V4, 50 + i)],
            &[],
            IfaceId(0),
            100 + u64::from(i),
        )
        .unwrap();
    }
    assert_eq!(node.instances().count(), 8);
}
