//! What one checker probes, owned: the parts of a `TCP_CHECK`, `HTTP_GET`,
//! `SSL_GET`, `MISC_CHECK`, `SMTP_CHECK`, `UDP_CHECK`, `PING_CHECK` or
//! `DNS_CHECK` block the core does not keep (URLs, digests, virtual hosts,
//! `bindto`/`bind_port`, the script, UDP payloads and patterns, the DNS
//! query). Taken from the build
//! callbacks; the target address and the timing stay in the core's
//! `CheckerConfig`. No I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use vrlb_core::config::{
    CheckKind, CheckerConf, DEFAULT_DNS_NAME, DEFAULT_HELO_NAME, DnsType, UdpConf, UrlConf,
};

use crate::daemon::env::account;
use crate::daemon::scripts::Account;

/// One `url { }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlSpec {
    /// `path`, sent as is.
    pub path: String,
    /// `digest`: MD5 of the body.
    pub digest: Option<[u8; 16]>,
    /// `status_code` values and inclusive ranges.
    pub status_codes: Vec<(u16, u16)>,
    /// The `Host` header's value when a virtual host applies (the URL's,
    /// else the checker's, else the virtual server's); `None`: the
    /// target's `address:port`.
    pub virtualhost: Option<String>,
}

/// keepalived's default when a URL sets no `status_code`: any 2xx
/// (check_http.c, `HTTP_DEFAULT_STATUS_CODE_MIN..=MAX`).
pub const DEFAULT_STATUS_CODES: (u16, u16) = (200, 299);

impl UrlSpec {
    /// Whether `status` is one this URL accepts.
    pub fn accepts(&self, status: u16) -> bool {
        if self.status_codes.is_empty() {
            return (DEFAULT_STATUS_CODES.0..=DEFAULT_STATUS_CODES.1).contains(&status);
        }
        self.status_codes
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }
}

/// What kind of probe, with its own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecKind {
    /// `TCP_CHECK`: the connection is accepted.
    Tcp,
    /// `HTTP_GET` (`tls: false`) or `SSL_GET`: every URL answers as
    /// configured.
    Http {
        /// Over TLS (`SSL_GET`).
        tls: bool,
        /// The URLs, checked in order, each on its own connection.
        urls: Vec<UrlSpec>,
    },
    /// `MISC_CHECK`: the script's exit status.
    Misc {
        /// `misc_path`: the command line.
        command: String,
        /// `user USER [GROUP]`, as written (default: `script_user`).
        user: Option<Account>,
    },
    /// `SMTP_CHECK`: the server greets, answers `HELO` and `QUIT`.
    Smtp {
        /// `helo_name` (default: keepalived's).
        helo_name: String,
    },
    /// `UDP_CHECK`: a datagram draws no ICMP error (or a matching reply).
    Udp(Box<UdpConf>),
    /// `PING_CHECK`: an ICMP/ICMPv6 echo is answered.
    Ping,
    /// `DNS_CHECK`: one query is answered without error.
    Dns {
        /// `type`.
        qtype: DnsType,
        /// `name` (default `.`).
        name: String,
    },
}

/// One checker's probe settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// The kind and its settings.
    pub kind: SpecKind,
    /// `bindto` address.
    pub bind_to: Option<IpAddr>,
    /// `bind_port`.
    pub bind_port: Option<u16>,
}

impl ProbeSpec {
    /// From a checker block; `vs_virtualhost` is its virtual server's
    /// `virtualhost`.
    pub fn from_conf(conf: &CheckerConf<'_>, vs_virtualhost: Option<&str>) -> ProbeSpec {
        let kind = match conf.kind {
            CheckKind::Tcp => SpecKind::Tcp,
            CheckKind::Http | CheckKind::Ssl => SpecKind::Http {
                tls: conf.kind == CheckKind::Ssl,
                urls: conf
                    .urls
                    .iter()
                    .map(|u| url(u, conf.virtualhost.or(vs_virtualhost)))
                    .collect(),
            },
            CheckKind::Misc => SpecKind::Misc {
                command: conf.misc_path.unwrap_or_default().to_string(),
                user: account(conf.user),
            },
            CheckKind::Smtp => SpecKind::Smtp {
                helo_name: conf.helo_name.unwrap_or(DEFAULT_HELO_NAME).to_string(),
            },
            CheckKind::Udp => SpecKind::Udp(Box::new(conf.udp.clone())),
            CheckKind::Ping => SpecKind::Ping,
            CheckKind::Dns => SpecKind::Dns {
                qtype: conf.dns_type,
                name: conf.dns_name.unwrap_or(DEFAULT_DNS_NAME).to_string(),
            },
        };
        ProbeSpec {
            kind,
            bind_to: conf.bind_to,
            bind_port: conf.bind_port,
        }
    }

    /// The local address to bind before connecting to `target`, if any:
    /// `bindto` and/or `bind_port` (the other part unspecified).
    pub fn bind_addr(&self, target: SocketAddr) -> Option<SocketAddr> {
        if self.bind_to.is_none() && self.bind_port.is_none() {
            return None;
        }
        let ip = self.bind_to.unwrap_or(match target {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        });
        Some(SocketAddr::new(ip, self.bind_port.unwrap_or(0)))
    }

    /// A short name for log lines: `TCP_CHECK`, `HTTP_GET`, ...
    pub fn name(&self) -> &'static str {
        match self.kind {
            SpecKind::Tcp => "TCP_CHECK",
            SpecKind::Http { tls: false, .. } => "HTTP_GET",
            SpecKind::Http { tls: true, .. } => "SSL_GET",
            SpecKind::Misc { .. } => "MISC_CHECK",
            SpecKind::Smtp { .. } => "SMTP_CHECK",
            SpecKind::Udp(_) => "UDP_CHECK",
            SpecKind::Ping => "PING_CHECK",
            SpecKind::Dns { .. } => "DNS_CHECK",
        }
    }
}

fn url(u: &UrlConf<'_>, fallback_vhost: Option<&str>) -> UrlSpec {
    UrlSpec {
        path: u.path.to_string(),
        // The parser accepted exactly 32 hex digits.
        digest: u.digest.and_then(parse_digest),
        status_codes: u.status_codes.iter().copied().collect(),
        // keepalived: the url's virtualhost, else the checker's, else the
        // virtual server's (check_http.c, http_request_thread).
        virtualhost: u.virtualhost.or(fallback_vhost).map(str::to_string),
    }
}

/// 32 hex digits as 16 bytes.
pub fn parse_digest(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrlb_core::config::Pos;

    #[test]
    fn urls_take_the_nearest_virtualhost_and_default_to_2xx() {
        let mut c = CheckerConf::new(CheckKind::Ssl, Pos::default());
        let mut a = UrlConf {
            path: "/a",
            digest: Some("d41d8cd98f00b204e9800998ecf8427e"),
            status_codes: Default::default(),
            virtualhost: Some("a.example"),
        };
        c.urls.push(a.clone()).unwrap();
        a.path = "/b";
        a.virtualhost = None;
        a.status_codes.push((301, 302)).unwrap();
        c.urls.push(a).unwrap();
        c.bind_port = Some(4000);
        let spec = ProbeSpec::from_conf(&c, Some("vs.example"));
        let SpecKind::Http { tls: true, urls } = &spec.kind else {
            panic!("{spec:?}")
        };
        assert_eq!(urls[0].virtualhost.as_deref(), Some("a.example"));
        assert_eq!(urls[1].virtualhost.as_deref(), Some("vs.example"));
        assert_eq!(urls[0].digest.unwrap()[..2], [0xd4, 0x1d]);
        assert!(urls[0].accepts(204) && !urls[0].accepts(301));
        assert!(urls[1].accepts(302) && !urls[1].accepts(200));
        let target: SocketAddr = "192.0.2.7:443".parse().unwrap();
        assert_eq!(
            spec.bind_addr(target),
            Some("0.0.0.0:4000".parse().unwrap())
        );
        assert_eq!(spec.name(), "SSL_GET");
    }

    #[test]
    fn digests_need_32_hex_digits() {
        assert!(parse_digest("d41d8cd98f00b204e9800998ecf8427").is_none());
        assert!(parse_digest("x41d8cd98f00b204e9800998ecf8427e").is_none());
        assert_eq!(
            parse_digest("000102030405060708090a0b0c0d0eff").unwrap()[15],
            0xff
        );
    }

    #[test]
    fn udp_ping_and_dns_checks_carry_their_settings() {
        let mut c = CheckerConf::new(CheckKind::Dns, Pos::default());
        let dns = |c: &CheckerConf<'_>| ProbeSpec::from_conf(c, None).kind;
        assert_eq!(
            dns(&c),
            SpecKind::Dns {
                qtype: DnsType::Soa,
                name: ".".into()
            }
        );
        c.dns_type = DnsType::Mx;
        c.dns_name = Some("example.com");
        assert_eq!(
            dns(&c),
            SpecKind::Dns {
                qtype: DnsType::Mx,
                name: "example.com".into()
            }
        );
        let mut u = CheckerConf::new(CheckKind::Udp, Pos::default());
        u.udp.payload.extend_from_slice(&[1, 2]).unwrap();
        u.udp.require_reply = true;
        let spec = ProbeSpec::from_conf(&u, None);
        assert_eq!(spec.kind, SpecKind::Udp(Box::new(u.udp.clone())));
        assert_eq!(spec.name(), "UDP_CHECK");
        let p = ProbeSpec::from_conf(&CheckerConf::new(CheckKind::Ping, Pos::default()), None);
        assert_eq!((p.name(), p.kind), ("PING_CHECK", SpecKind::Ping));
    }

    #[test]
    fn an_smtp_check_greets_as_helo_name_or_as_keepalived_does() {
        let mut c = CheckerConf::new(CheckKind::Smtp, Pos::default());
        let helo = |c: &CheckerConf<'_>| match ProbeSpec::from_conf(c, None).kind {
            SpecKind::Smtp { helo_name } => helo_name,
            other => panic!("{other:?}"),
        };
        assert_eq!(helo(&c), "smtpchecker.keepalived.org");
        c.helo_name = Some("lb1.example.net");
        assert_eq!(helo(&c), "lb1.example.net");
        assert_eq!(ProbeSpec::from_conf(&c, None).name(), "SMTP_CHECK");
    }
}
