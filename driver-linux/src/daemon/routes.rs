//! The routes this daemon holds: an instance's `virtual_routes` while it
//! is master (added after its VIPs, which they may use as source, and
//! removed before them), and `static_routes` from start to stop. Routes
//! are added with keepalived's protocol number and removed by it: a route
//! the administrator added by hand is never replaced nor taken away, and
//! those a crashed run left are removed at the next start.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use vrlb_core::config::{RouteConf, RouteType};
use vrlb_core::node::InstanceId;

use super::netlink::{RouteSpec, Rtnl, scope_number};

/// A configured route, owned (the configuration text is reread on reload);
/// the fields are [`RouteConf`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub kind: RouteType,
    pub dst: IpAddr,
    pub prefix_len: u8,
    pub via: Option<IpAddr>,
    pub src: Option<IpAddr>,
    pub dev: Option<String>,
    pub scope: Option<String>,
    pub table: Option<u32>,
    pub metric: Option<u32>,
    pub onlink: bool,
}

impl From<&RouteConf<'_>> for RouteInfo {
    fn from(r: &RouteConf<'_>) -> Self {
        RouteInfo {
            kind: r.kind,
            dst: r.dst,
            prefix_len: r.prefix_len,
            via: r.via,
            src: r.src,
            dev: r.dev.map(str::to_string),
            scope: r.scope.map(str::to_string),
            table: r.table,
            metric: r.metric,
            onlink: r.onlink,
        }
    }
}

impl fmt::Display for RouteInfo {
    /// As `ip route` would print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RouteType::Unicast => {}
            RouteType::Blackhole => f.write_str("blackhole ")?,
            RouteType::Unreachable => f.write_str("unreachable ")?,
            RouteType::Prohibit => f.write_str("prohibit ")?,
            RouteType::Throw => f.write_str("throw ")?,
        }
        if self.prefix_len == 0 {
            f.write_str("default")?;
        } else {
            write!(f, "{}/{}", self.dst, self.prefix_len)?;
        }
        if let Some(via) = self.via {
            write!(f, " via {via}")?;
        }
        if let Some(dev) = &self.dev {
            write!(f, " dev {dev}")?;
        }
        if let Some(src) = self.src {
            write!(f, " src {src}")?;
        }
        if let Some(table) = self.table {
            write!(f, " table {table}")?;
        }
        if let Some(metric) = self.metric {
            write!(f, " metric {metric}")?;
        }
        if let Some(scope) = &self.scope {
            write!(f, " scope {scope}")?;
        }
        if self.onlink {
            f.write_str(" onlink")?;
        }
        Ok(())
    }
}

impl RouteInfo {
    /// What rtnetlink is told, with `dev` resolved by `index_of`; an error
    /// line when the device does not exist.
    pub fn spec(&self, index_of: impl Fn(&str) -> Option<u32>) -> Result<RouteSpec, String> {
        let oif = match &self.dev {
            Some(dev) => Some(
                index_of(dev)
                    .ok_or_else(|| format!("route {self}: interface {dev} does not exist"))?,
            ),
            None => None,
        };
        // ip-route(8)'s default: link scope for a direct unicast route,
        // universe otherwise. The parser checked a written scope.
        let scope = match &self.scope {
            Some(s) => scope_number(s).unwrap_or(0),
            None if self.kind == RouteType::Unicast && self.via.is_none() => 253,
            None => 0,
        };
        Ok(RouteSpec {
            kind: self.kind,
            dst: self.dst,
            prefix_len: self.prefix_len,
            via: self.via,
            src: self.src,
            oif,
            scope,
            table: self.table.unwrap_or(254),
            metric: self.metric,
            onlink: self.onlink,
        })
    }
}

/// Who holds a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    /// `static_routes`.
    Static,
    /// An instance's `virtual_routes`, while it is master.
    Instance(InstanceId),
}

/// A route in the kernel, and how it reads in logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub spec: RouteSpec,
    pub line: String,
}

/// The routes held, per owner.
#[derive(Default)]
pub struct Routes {
    held: HashMap<Owner, Vec<Held>>,
}

impl Routes {
    /// Makes `owner` hold exactly `wanted`: adds what is missing, removes
    /// what is no longer wanted. Returns a line per failure.
    pub fn hold(&mut self, rtnl: &mut Rtnl, owner: Owner, wanted: Vec<Held>) -> Vec<String> {
        let mut log = Vec::new();
        let old = self.held.remove(&owner).unwrap_or_default();
        for h in old.iter().filter(|h| !wanted.contains(h)) {
            if let Err(e) = rtnl.del_route(&h.spec) {
                log.push(format!("cannot remove route {}: {e}", h.line));
            }
        }
        let mut now = Vec::new();
        for h in wanted {
            // Added again even when held: the kernel drops a route whose
            // device went down.
            let held = old.contains(&h);
            match rtnl.add_route(&h.spec) {
                Ok(true) => now.push(h),
                Ok(false) if held => now.push(h),
                // Not vrlb's (those a crash left were removed at start):
                // never taken, so never removed either.
                Ok(false) => log.push(format!(
                    "route {} is already there, not added by vrlb: left as it is",
                    h.line
                )),
                Err(e) => log.push(format!("cannot add route {}: {e}", h.line)),
            }
        }
        if !now.is_empty() {
            self.held.insert(owner, now);
        }
        log
    }

    /// Removes every route `owner` holds.
    pub fn release(&mut self, rtnl: &mut Rtnl, owner: Owner) -> Vec<String> {
        self.hold(rtnl, owner, Vec::new())
    }

    /// Removes every route held (shutdown).
    pub fn release_all(&mut self, rtnl: &mut Rtnl) -> Vec<String> {
        let owners: Vec<Owner> = self.held.keys().copied().collect();
        owners
            .into_iter()
            .flat_map(|o| self.release(rtnl, o))
            .collect()
    }

    /// The instances holding routes now.
    pub fn instances(&self) -> impl Iterator<Item = InstanceId> + '_ {
        self.held.keys().filter_map(|o| match o {
            Owner::Instance(id) => Some(*id),
            Owner::Static => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(text: &str) -> RouteInfo {
        // One route through the real parser, so the forms stay keepalived's.
        struct One(Option<RouteInfo>);
        impl vrlb_core::config::Sink for One {
            fn static_routes(
                &mut self,
                routes: &[RouteConf<'_>],
            ) -> Result<(), vrlb_core::config::Kind> {
                self.0 = routes.first().map(RouteInfo::from);
                Ok(())
            }
        }
        let mut one = One(None);
        let conf = format!("static_routes {{\n {text}\n}}\n");
        vrlb_core::config::parse(
            "k",
            &conf,
            &vrlb_core::config::Options::default(),
            &mut one,
            &mut vrlb_core::config::NoIncludes,
        )
        .unwrap();
        one.0.unwrap()
    }

    #[test]
    fn specs_take_ip_routes_defaults() {
        let index = |dev: &str| (dev == "eth1").then_some(7);
        let direct = info("192.0.2.0/24 dev eth1").spec(index).unwrap();
        assert_eq!(
            (direct.oif, direct.scope, direct.table),
            (Some(7), 253, 254)
        );
        let gw = info("default via 198.51.100.1 table 100 metric 5")
            .spec(index)
            .unwrap();
        assert_eq!(
            (gw.prefix_len, gw.scope, gw.table, gw.metric, gw.oif),
            (0, 0, 100, Some(5), None)
        );
        let hole = info("blackhole 203.0.113.0/24").spec(index).unwrap();
        assert_eq!((hole.kind, hole.scope), (RouteType::Blackhole, 0));
        let site = info("192.0.2.0/24 dev eth1 scope site")
            .spec(index)
            .unwrap();
        assert_eq!(site.scope, 200);
        let err = info("192.0.2.0/24 dev eth9").spec(index).unwrap_err();
        assert_eq!(
            err,
            "route 192.0.2.0/24 dev eth9: interface eth9 does not exist"
        );
    }

    #[test]
    fn routes_print_as_ip_route_would() {
        assert_eq!(
            info("src 192.0.2.1 to 198.51.100.0/24 via 192.0.2.254 dev eth1 onlink").to_string(),
            "198.51.100.0/24 via 192.0.2.254 dev eth1 src 192.0.2.1 onlink"
        );
        assert_eq!(
            info("default via inet6 2001:db8::1 metric 1024").to_string(),
            "default via 2001:db8::1 metric 1024"
        );
        assert_eq!(
            info("unreachable 192.0.2.7").to_string(),
            "unreachable 192.0.2.7/32"
        );
    }
}
