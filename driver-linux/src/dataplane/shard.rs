//! One worker's share of the data plane: a core [`Balancer`] of its own
//! (connections and persistence templates of the clients the fanout sends
//! to this worker), the real servers' MAC addresses, and which VIPs this
//! director holds. The node's balancer stays the authority on services,
//! weights and health; [`Shard::mirror`] copies them here after every
//! change. Never does I/O.
//!
//! Why shards: the core balancer is single-threaded (`&mut` per packet),
//! so N workers get N balancers. The fanout hashes the client address
//! masked to the coarsest persistence granularity, so a client's
//! connections and its template always meet in the same shard and
//! persistence holds. The price: each shard's wlc/lc counts only its own
//! connections, so the split between servers is balanced per shard, and
//! a connection table per worker (the layout's size each).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use vrlb_core::lb::{
    self, Balancer, Layout, LbConfig, RealServer, ServiceConfig, ServiceId, ServiceKey,
};
use vrlb_core::time::Instant;

use super::zeroed::leak_zeroed;

/// What a DR service looks like in the node, for [`Shard::mirror`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Its configuration.
    pub config: ServiceConfig,
    /// Its listed real servers, head first (the node's balancer order).
    pub servers: Vec<RealServer>,
    /// `sorry_server`, and whether new flows go to it (quorum lost).
    pub sorry: Option<RealServer>,
    /// Quorum lost and a sorry server set.
    pub sorry_active: bool,
}

/// A shard: a balancer with its storage (leaked: shards live as long as
/// the process), MACs, held VIPs and MACs workers missed.
pub struct Shard {
    /// Its balancer.
    pub balancer: Balancer<'static>,
    /// Real server address -> MAC.
    pub macs: HashMap<IpAddr, [u8; 6]>,
    /// VIPs this director holds (packets to others are not forwarded).
    pub held: HashSet<IpAddr>,
    /// MACs of this host's `use_vmac` instances: a frame to one arrives
    /// on the base interface as another host's (`PACKET_OTHERHOST`) and
    /// is this director's all the same.
    pub vmacs: HashSet<[u8; 6]>,
    /// Servers a worker chose but had no MAC for (the loop resolves them).
    pub missing: HashSet<IpAddr>,
    /// The sorry server last applied per service (ServiceKey is not Hash).
    sorry: Vec<(ServiceKey, Option<RealServer>)>,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("tracked", &self.balancer.tracked())
            .field("macs", &self.macs.len())
            .finish_non_exhaustive()
    }
}

fn leak<T: Clone>(value: T, n: usize) -> &'static mut [T] {
    Box::leak(vec![value; n].into_boxed_slice())
}

/// What went wrong mirroring (a shard is sized like the node's balancer,
/// so this means a layout the node itself could not hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorError(pub lb::LbError);

impl std::fmt::Display for MirrorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "copying the services into a worker's balancer: {}",
            self.0
        )
    }
}

impl Shard {
    /// An empty shard with `layout` (the node balancer's), `cfg`, and
    /// `seed` keying its hashes.
    pub fn new(
        layout: Layout,
        cfg: LbConfig,
        seed: u64,
        now: Instant,
    ) -> Result<Shard, lb::LbError> {
        let storage = lb::Storage {
            services: leak(lb::ServiceSlot::EMPTY, layout.service_slots()),
            servers: leak(lb::ServerSlot::EMPTY, layout.server_slots()),
            tree: leak(0u16, layout.tree_nodes()),
            mh: leak(0u16, layout.mh_entries()),
            // Zeroed and untouched: resident only as connections arrive.
            conns: leak_zeroed(layout.conn_slots()),
            index: leak_zeroed(layout.index_bytes()),
            wheel: leak_zeroed(layout.wheel_buckets()),
        };
        Ok(Shard {
            balancer: Balancer::new(layout, storage, cfg, seed, now)?,
            macs: HashMap::new(),
            held: HashSet::new(),
            vmacs: HashSet::new(),
            missing: HashSet::new(),
            sorry: Vec::new(),
        })
    }

    /// Makes this shard's services and servers those of `specs`: services
    /// and servers that went away are removed (their connections live on
    /// as IPVS keeps them), new ones added, changed ones updated in place
    /// so their connection counts stay.
    pub fn mirror(&mut self, cfg: LbConfig, specs: &[ServiceSpec]) -> Result<(), MirrorError> {
        let b = &mut self.balancer;
        if *b.config() != cfg {
            b.set_config(cfg);
        }
        let gone: Vec<ServiceId> = b
            .services()
            .filter(|(_, c)| !specs.iter().any(|s| s.config.key == c.key))
            .map(|(id, _)| id)
            .collect();
        for id in gone {
            let key = b.service(id).map_err(MirrorError)?.key;
            b.remove_service(id).map_err(MirrorError)?;
            self.sorry.retain(|(k, _)| *k != key);
        }
        for spec in specs {
            let id = match b.service_by_key(&spec.config.key) {
                Some(id) => {
                    if b.service(id).map_err(MirrorError)? != &spec.config {
                        b.edit_service(id, spec.config).map_err(MirrorError)?;
                    }
                    id
                }
                None => b.add_service(spec.config).map_err(MirrorError)?,
            };
            let have: Vec<lb::ServerInfo> = b.servers(id).collect();
            for h in &have {
                let wanted = spec
                    .servers
                    .iter()
                    .find(|w| w.addr == h.server.addr && w.port == h.server.port);
                match wanted {
                    None => b.remove_server(id, h.id).map_err(MirrorError)?,
                    Some(w) if *w != h.server => {
                        b.update_server(id, h.id, *w).map_err(MirrorError)?
                    }
                    Some(_) => {}
                }
            }
            // Added at the head, so add the node's tail first: the same
            // list order gives the same tie-breaks.
            for w in spec.servers.iter().rev() {
                if b.find_server(id, w.addr, w.port).is_none() {
                    b.add_server(id, *w).map_err(MirrorError)?;
                }
            }
            let last = self.sorry.iter().find(|(k, _)| *k == spec.config.key);
            if last.is_none_or(|(_, s)| *s != spec.sorry) {
                b.set_sorry_server(id, spec.sorry).map_err(MirrorError)?;
                self.sorry.retain(|(k, _)| *k != spec.config.key);
                self.sorry.push((spec.config.key, spec.sorry));
            }
            b.set_sorry_active(id, spec.sorry_active)
                .map_err(MirrorError)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrlb_core::lb::{Flow, Protocol, Scheduler, TcpFlags, Verdict};

    fn spec(servers: &[(u8, u32)]) -> ServiceSpec {
        let mut config = ServiceConfig::new(
            ServiceKey::Addr {
                protocol: Protocol::Tcp,
                vip: IpAddr::from([192, 0, 2, 240]),
                port: 80,
            },
            Scheduler::Wlc,
        );
        config.persistence_timeout_s = 60;
        ServiceSpec {
            config,
            servers: servers
                .iter()
                .map(|(last, w)| {
                    RealServer::new(IpAddr::from([192, 0, 2, *last]), 80).with_weight(*w)
                })
                .collect(),
            sorry: None,
            sorry_active: false,
        }
    }

    fn shard() -> Shard {
        let layout = Layout {
            services: 4,
            servers_per_service: 8,
            mh_table_max: 0,
            connections: 256,
        };
        Shard::new(layout, LbConfig::default(), 7, Instant::ZERO).unwrap()
    }

    fn servers(s: &Shard) -> Vec<(IpAddr, u32)> {
        let id = s.balancer.services().next().unwrap().0;
        s.balancer
            .servers(id)
            .map(|i| (i.server.addr, i.server.weight))
            .collect()
    }

    #[test]
    fn mirroring_follows_the_node_and_keeps_connections() {
        let mut s = shard();
        s.mirror(LbConfig::default(), &[spec(&[(21, 3), (22, 3)])])
            .unwrap();
        assert_eq!(
            servers(&s),
            vec![
                (IpAddr::from([192, 0, 2, 21]), 3),
                (IpAddr::from([192, 0, 2, 22]), 3)
            ]
        );
        let flow = Flow::tcp(
            IpAddr::from([198, 51, 100, 7]),
            4000,
            IpAddr::from([192, 0, 2, 240]),
            80,
            TcpFlags::SYN,
        );
        let Verdict::Forward { addr, .. } = s.balancer.classify(Instant::from_secs(1), &flow)
        else {
            panic!("not forwarded");
        };
        // A weight change keeps the connection and its count.
        s.mirror(LbConfig::default(), &[spec(&[(21, 1), (22, 3)])])
            .unwrap();
        assert_eq!(servers(&s)[0].1, 1);
        let total: u32 = {
            let id = s.balancer.services().next().unwrap().0;
            s.balancer.servers(id).map(|i| i.inactive + i.active).sum()
        };
        assert_eq!(total, 1);
        // The chosen server goes down: removed here too; the other stays.
        let other = if addr == IpAddr::from([192, 0, 2, 21]) {
            22
        } else {
            21
        };
        s.mirror(LbConfig::default(), &[spec(&[(other, 3)])])
            .unwrap();
        assert_eq!(servers(&s), vec![(IpAddr::from([192, 0, 2, other]), 3)]);
        // And the service itself goes.
        s.mirror(LbConfig::default(), &[]).unwrap();
        assert_eq!(s.balancer.services().count(), 0);
    }

    #[test]
    fn the_sorry_server_follows_quorum() {
        let mut s = shard();
        let mut sp = spec(&[]);
        sp.sorry = Some(RealServer::new(IpAddr::from([192, 0, 2, 99]), 80));
        sp.sorry_active = true;
        s.mirror(LbConfig::default(), &[sp.clone()]).unwrap();
        let flow = Flow::tcp(
            IpAddr::from([198, 51, 100, 7]),
            4000,
            IpAddr::from([192, 0, 2, 240]),
            80,
            TcpFlags::SYN,
        );
        let v = s.balancer.classify(Instant::from_secs(1), &flow);
        assert!(
            matches!(v, Verdict::Forward { addr, .. } if addr == IpAddr::from([192, 0, 2, 99])),
            "{v:?}"
        );
        // Mirroring again the same state does not reset the sorry slot.
        s.mirror(LbConfig::default(), &[sp]).unwrap();
    }

    #[test]
    fn a_server_s_forwarding_method_reaches_the_verdict() {
        let mut s = shard();
        let mut sp = spec(&[(21, 1)]);
        sp.servers[0] = sp.servers[0].with_method(lb::ForwardMethod::Nat);
        s.mirror(LbConfig::default(), &[sp.clone()]).unwrap();
        let flow = Flow::tcp(
            IpAddr::from([198, 51, 100, 7]),
            4000,
            IpAddr::from([192, 0, 2, 240]),
            80,
            TcpFlags::SYN,
        );
        let v = s.balancer.classify(Instant::from_secs(1), &flow);
        assert!(
            matches!(
                v,
                Verdict::Forward {
                    method: lb::ForwardMethod::Nat,
                    ..
                }
            ),
            "{v:?}"
        );
        // Changed to DR in the node: updated in place. The connection keeps
        // the method it was made with, as in IPVS; new ones get DR.
        sp.servers[0] = sp.servers[0].with_method(lb::ForwardMethod::Dr);
        s.mirror(LbConfig::default(), &[sp]).unwrap();
        let method = |v: Verdict| match v {
            Verdict::Forward {
                method,
                tracked: true,
                ..
            } => method,
            other => panic!("{other:?}"),
        };
        let ack = Flow {
            tcp_flags: TcpFlags::ACK,
            ..flow
        };
        let v = s.balancer.classify(Instant::from_secs(1), &ack);
        assert_eq!(method(v), lb::ForwardMethod::Nat);
        let other = Flow {
            src_port: 4001,
            ..flow
        };
        let v = s.balancer.classify(Instant::from_secs(1), &other);
        assert_eq!(method(v), lb::ForwardMethod::Dr);
    }
}
