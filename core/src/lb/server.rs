//! Real servers: their configuration (with the forwarding method), connection
//! counters and the flags the schedulers read (available, overloaded). Also
//! the upper/lower threshold rule that sets and clears IPVS's
//! `IP_VS_DEST_F_OVERLOAD`. Never decides which server gets a flow.

use core::net::IpAddr;

/// "No server" in local indices and list links.
pub(crate) const NONE: u16 = u16::MAX;

/// How the director hands a real server its packets: IPVS's per-destination
/// forwarding method (`IP_VS_CONN_F_FWD_MASK` in the dest's `conn_flags`),
/// keepalived's `lb_kind` of the virtual server or `lvs_method` of the real
/// server. The balancer only carries it to the [`super::Verdict`]; the driver
/// forwards (vrlb's Linux data plane does DR only).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ForwardMethod {
    /// Direct routing (`IP_VS_CONN_F_DROUTE`): the frame goes to the
    /// server's MAC, the IP header untouched.
    #[default]
    Dr,
    /// Masquerading, NAT (`IP_VS_CONN_F_MASQ`): destination rewritten to
    /// the server's address and port, replies through the director.
    Nat,
    /// IP-in-IP tunnel (`IP_VS_CONN_F_TUNNEL`).
    Tun,
}

impl ForwardMethod {
    /// ipvsadm's name for it (`Route`, `Masq`, `Tunnel`).
    pub const fn ipvsadm_name(self) -> &'static str {
        match self {
            ForwardMethod::Dr => "Route",
            ForwardMethod::Nat => "Masq",
            ForwardMethod::Tun => "Tunnel",
        }
    }
}

/// Configuration of a real server, as keepalived's `real_server` block
/// gives it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RealServer {
    /// Address the director forwards to (DR: the MAC is resolved from it).
    pub addr: IpAddr,
    /// Port (for DR, the service port).
    pub port: u16,
    /// Relative weight; 0 quiesces the server (no new flows). At most
    /// `i32::MAX`, as IPVS.
    pub weight: u32,
    /// `uthreshold`: with this many connections the server is overloaded
    /// and takes no new flows; 0 = no limit.
    pub uthreshold: u32,
    /// `lthreshold`: an overloaded server takes flows again below this;
    /// 0 = below 3/4 of `uthreshold` (ip_vs_conn.c `ip_vs_unbind_dest`).
    pub lthreshold: u32,
    /// Forwarding method. A change applies to the server's existing
    /// connections too (IPVS keeps the method a connection was created
    /// with; vrlb's connection slots do not store it).
    pub method: ForwardMethod,
}

impl RealServer {
    /// A DR server with weight 1 and no thresholds.
    pub const fn new(addr: IpAddr, port: u16) -> Self {
        RealServer {
            addr,
            port,
            weight: 1,
            uthreshold: 0,
            lthreshold: 0,
            method: ForwardMethod::Dr,
        }
    }
    /// The same server with `weight`.
    pub const fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }
    /// The same server with forwarding `method`.
    pub const fn with_method(mut self, method: ForwardMethod) -> Self {
        self.method = method;
        self
    }
}

/// A real server's identity inside one [`super::Balancer`]: a slot index,
/// stable while the server is configured or still referenced by
/// connections.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ServerId(pub u16);

/// Slot life cycle: listed in its service, removed but still referenced
/// (IPVS's "trash"), or the service's sorry server.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SlotState {
    Free,
    Listed,
    Trash,
    Sorry,
}

/// Storage for one real server (caller-provided, see [`super::Storage`]).
#[derive(Clone, Debug)]
pub struct ServerSlot {
    pub(crate) state: SlotState,
    pub(crate) cfg: RealServer,
    /// Latest non-zero weight (mh builds its table from it, ip_vs_ctl.c).
    pub(crate) last_weight: u32,
    pub(crate) overloaded: bool,
    pub(crate) active: u32,
    pub(crate) inactive: u32,
    /// Persistence templates pointing here.
    pub(crate) persist: u32,
    /// List links (local indices), newest first.
    pub(crate) prev: u16,
    pub(crate) next: u16,
    /// Insertion sequence: a higher value is nearer the list head.
    pub(crate) seq: u64,
    /// mh permutation: offset, skip, next position, turns (ip_vs_mh.c).
    pub(crate) mh_offset: u32,
    pub(crate) mh_skip: u32,
    pub(crate) mh_perm: u32,
    pub(crate) mh_turns: u32,
    /// The owner's tag (a reload's generation), never read by the balancer.
    pub(crate) mark: u8,
}

impl ServerSlot {
    /// An unused slot, for static arrays.
    pub const EMPTY: ServerSlot = ServerSlot {
        state: SlotState::Free,
        cfg: RealServer::new(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED), 0),
        last_weight: 0,
        overloaded: false,
        active: 0,
        inactive: 0,
        persist: 0,
        prev: NONE,
        next: NONE,
        seq: 0,
        mh_offset: 0,
        mh_skip: 0,
        mh_perm: 0,
        mh_turns: 0,
        mark: 0,
    };

    /// IPVS `IP_VS_DEST_F_AVAILABLE`: configured (not removed).
    #[inline]
    pub(crate) fn available(&self) -> bool {
        matches!(self.state, SlotState::Listed | SlotState::Sorry)
    }

    /// Connections and templates still pointing here.
    #[inline]
    pub(crate) fn refs(&self) -> u64 {
        u64::from(self.active) + u64::from(self.inactive) + u64::from(self.persist)
    }

    /// `ip_vs_dest_conn_overhead`: active connections cost 256 inactive ones.
    #[inline]
    pub(crate) fn overhead(&self) -> u64 {
        (u64::from(self.active) << 8) + u64::from(self.inactive)
    }

    /// `ip_vs_dest_totalconns`.
    #[inline]
    fn total(&self) -> u64 {
        u64::from(self.active) + u64::from(self.inactive)
    }

    /// After a connection or template was bound here (ip_vs_bind_dest).
    #[inline]
    pub(crate) fn after_bind(&mut self) {
        if self.cfg.uthreshold != 0 && self.total() >= u64::from(self.cfg.uthreshold) {
            self.overloaded = true;
        }
    }

    /// After one was unbound (ip_vs_unbind_dest): below `lthreshold`, or
    /// below 3/4 of `uthreshold` without one, clears the overload.
    #[inline]
    pub(crate) fn after_unbind(&mut self) {
        let total = self.total();
        if self.cfg.lthreshold != 0 {
            if total < u64::from(self.cfg.lthreshold) {
                self.overloaded = false;
            }
        } else if self.cfg.uthreshold != 0 {
            if total * 4 < u64::from(self.cfg.uthreshold) * 3 {
                self.overloaded = false;
            }
        } else {
            self.overloaded = false;
        }
    }
}

impl Default for ServerSlot {
    fn default() -> Self {
        ServerSlot::EMPTY
    }
}
