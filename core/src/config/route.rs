//! `virtual_routes` and `static_routes`: one route a line, in keepalived's
//! (and ip-route(8)'s) words. Options that change where packets go are
//! read; a word vrlb does not know is an error naming it, since a route
//! installed without it would send traffic elsewhere than the file says.
//! Options that only tune a route's TCP behaviour (`mtu`, `advmss`, ...)
//! are warned about and left out.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use heapless::Vec;

use super::diag::{Diagnostic, Kind, Snippet};
use super::lexer::Token;
use super::model::{MAX_ROUTES, RouteConf, RouteType};
use super::parser::{Parser, Res, Stmt};
use super::value;

/// Route options that take a value and that vrlb leaves out (with a
/// warning): they tune the route, they do not choose the path.
const TUNING: &[&str] = &[
    "proto",
    "protocol",
    "tos",
    "dsfield",
    "mtu",
    "advmss",
    "realms",
    "rtt",
    "rttvar",
    "reordering",
    "window",
    "cwnd",
    "ssthresh",
    "initcwnd",
    "initrwnd",
    "rto_min",
    "features",
    "quickack",
    "congctl",
    "pref",
    "fastopen_no_cookie",
    "hoplimit",
    "expires",
    "ttl-propagate",
];

const OPTIONS: &str =
    "a prefix, 'default', src, to, via, gw, dev, scope, table, metric, onlink or no_track";

/// The destination as read: `default` takes the family of the addresses
/// beside it.
#[derive(Clone, Copy)]
enum Dst {
    Prefix(IpAddr, u8),
    Default,
}

impl<'t> Parser<'t, '_> {
    /// `virtual_routes { ... }` or `static_routes { ... }` into `routes`.
    pub(super) fn routes_block(
        &mut self,
        head: &Stmt<'t>,
        routes: &mut Vec<RouteConf<'t>, MAX_ROUTES>,
    ) -> Res<()> {
        self.require_block(head)?;
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            self.no_block(&stmt)?;
            let route = self.route(head.keyword(), &stmt)?;
            self.push(routes, route, &stmt.kw, "routes in one block")?;
        }
        Ok(())
    }

    /// One route line of block `block`.
    #[inline(never)]
    fn route(&mut self, block: &str, stmt: &Stmt<'t>) -> Res<RouteConf<'t>> {
        let words = stmt.args.len() + 1;
        let word = |i: usize| if i == 0 { stmt.kw } else { stmt.args[i - 1] };
        let value = |p: &Self, i: usize, what: &'static str| p.route_value(stmt, i, what);
        let mut dst = None;
        let mut route = RouteConf {
            kind: RouteType::Unicast,
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            prefix_len: 0,
            via: None,
            src: None,
            dev: None,
            scope: None,
            table: None,
            metric: None,
            onlink: false,
            pos: stmt.pos(),
        };
        let mut i = 0;
        while i < words {
            let w = word(i);
            match w.text {
                "src" => {
                    route.src = Some(self.route_address(&value(self, i, "an address")?)?);
                    i += 2;
                }
                "via" | "gw" => {
                    let mut at = value(self, i, "an address")?;
                    // `via inet6 ADDR`: the family is written out.
                    if matches!(at.text, "inet" | "inet6") {
                        at = value(self, i + 1, "an address")?;
                        i += 1;
                    }
                    if w.text == "gw" {
                        self.warn_at(
                            &w,
                            Kind::Deprecated {
                                keyword: Snippet::new("gw"),
                                instead: "via",
                            },
                        );
                    }
                    route.via = Some(self.route_address(&at)?);
                    i += 2;
                }
                "or" => {
                    self.route_warning(
                        &w,
                        "multipath routes are not implemented: only the first gateway is used",
                    );
                    value(self, i, "an address")?;
                    i += 2;
                }
                "dev" | "oif" => {
                    route.dev = Some(value(self, i, "an interface name")?.text);
                    i += 2;
                }
                "scope" => {
                    let v = value(self, i, "a scope")?;
                    if !valid_scope(v.text) {
                        return Err(self.unknown_value(
                            "scope",
                            &v,
                            "global, universe, site, link, host, nowhere or 0 to 255",
                        ));
                    }
                    route.scope = Some(v.text);
                    i += 2;
                }
                "table" => {
                    let v = value(self, i, "a table")?;
                    route.table = Some(table_number(v.text).ok_or_else(|| {
                        self.unknown_value("table", &v, "main, local, default or 1 to 4294967295")
                    })?);
                    i += 2;
                }
                "metric" | "preference" | "priority" => {
                    let v = value(self, i, "a number")?;
                    let n = value::uint(v.text)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| {
                            self.expected_in(w.text, &v, "a number (0 to 4294967295)")
                        })?;
                    route.metric = Some(n);
                    i += 2;
                }
                "onlink" => {
                    route.onlink = true;
                    i += 1;
                }
                "no_track" => i += 1,
                "to" if dst.is_none() => {
                    let v = value(self, i, "a destination prefix")?;
                    dst = Some(self.destination(&v)?);
                    i += 2;
                }
                t if TUNING.contains(&t) => {
                    value(self, i, "a value")?;
                    self.route_warning(
                        &w,
                        "route tuning is not implemented: the route is added without it",
                    );
                    i += 2;
                }
                t => {
                    if dst.is_none() {
                        if let Some(kind) = route_type(t) {
                            if route.kind != RouteType::Unicast {
                                return Err(self.unknown_value(block, &w, OPTIONS));
                            }
                            route.kind = kind;
                            i += 1;
                            continue;
                        }
                        if let Ok(d) = self.destination(&w) {
                            dst = Some(d);
                            i += 1;
                            continue;
                        }
                    }
                    return Err(self.unknown_value(block, &w, OPTIONS));
                }
            }
        }
        let Some(dst) = dst else {
            return Err(self.missing(stmt, block, "a destination prefix"));
        };
        let v6 = match dst {
            Dst::Prefix(addr, len) => {
                (route.dst, route.prefix_len) = (addr, len);
                addr.is_ipv6()
            }
            Dst::Default => {
                let v6 = route.via.or(route.src).is_some_and(|a| a.is_ipv6());
                route.dst = if v6 {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                };
                v6
            }
        };
        if [route.via, route.src]
            .into_iter()
            .flatten()
            .any(|a| a.is_ipv6() != v6)
        {
            return Err(self.error_at(
                &stmt.kw,
                Kind::Invalid {
                    what: "route",
                    note: "its destination, gateway and source must be of one family",
                },
            ));
        }
        Ok(route)
    }

    /// The value after word `i` of a route line (the words are the
    /// keyword, then `stmt.args`); missing, the error names the option it
    /// belongs to. Out of line: a route line has a dozen options, and each
    /// inlined error path costs firmware text.
    #[inline(never)]
    fn route_value(&self, stmt: &Stmt<'t>, i: usize, what: &'static str) -> Res<Token<'t>> {
        stmt.args.get(i).copied().ok_or_else(|| {
            let option = if i == 0 { stmt.kw } else { stmt.args[i - 1] };
            self.missing(stmt, option.text, what)
        })
    }

    /// `tok` as an address (out of line, as [`Self::route_value`]).
    #[inline(never)]
    fn route_address(&self, tok: &Token<'t>) -> Res<IpAddr> {
        self.address(tok)
    }

    /// A warning about route option `tok`.
    #[inline(never)]
    fn route_warning(&mut self, tok: &Token<'t>, note: &'static str) {
        self.warn_at(
            tok,
            Kind::Unsupported {
                keyword: Snippet::new(tok.text),
                note,
            },
        );
    }

    /// `PREFIX`, a bare address (a host route) or `default`.
    fn destination(&self, tok: &Token<'t>) -> Res<Dst> {
        if tok.text == "default" {
            return Ok(Dst::Default);
        }
        let (addr, len) =
            value::ip_prefix(tok.text).ok_or_else(|| self.expected(tok, "a destination prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        Ok(Dst::Prefix(addr, len.unwrap_or(max)))
    }

    fn unknown_value(&self, keyword: &str, tok: &Token<'_>, expected: &'static str) -> Diagnostic {
        self.error_at(
            tok,
            Kind::UnknownValue {
                keyword: Snippet::new(keyword),
                value: Snippet::new(tok.text),
                expected,
            },
        )
    }
}

fn route_type(word: &str) -> Option<RouteType> {
    Some(match word {
        "unicast" => RouteType::Unicast,
        "blackhole" => RouteType::Blackhole,
        "unreachable" => RouteType::Unreachable,
        "prohibit" => RouteType::Prohibit,
        "throw" => RouteType::Throw,
        _ => return None,
    })
}

/// ip-route(8)'s reserved table names, or a number (0 is "unspecified").
fn table_number(text: &str) -> Option<u32> {
    Some(match text {
        "main" => 254,
        "local" => 255,
        "default" => 253,
        t => u32::try_from(value::uint(t)?).ok().filter(|&n| n != 0)?,
    })
}

fn valid_scope(text: &str) -> bool {
    matches!(
        text,
        "global" | "universe" | "site" | "link" | "host" | "nowhere"
    ) || value::uint(text).is_some_and(|n| n <= 255)
}
