//! Reads a real server's checker blocks: `TCP_CHECK`, `HTTP_GET`,
//! `SSL_GET`, `MISC_CHECK`, `SMTP_CHECK`, `UDP_CHECK`, `PING_CHECK` and
//! `DNS_CHECK`, with HTTP's `url` blocks and SMTP_CHECK's `host` blocks.

use core::net::IpAddr;

use heapless::Vec;

use super::diag::{Kind, Snippet};
use super::global::MAX_TIMER_US;
use super::hex::{self, HexError};
use super::keywords::Block;
use super::lexer::Token;
use super::model::{
    CheckKind, CheckerConf, DnsType, MAX_CHECKERS, MAX_STATUS_CODES, MAX_UDP_DATA, Pos, UrlConf,
};
use super::parser::{Parser, Res, Stmt};
use super::value;
use crate::time::Duration;

/// The connection options a checker block and an SMTP_CHECK `host` block
/// share; what one block set.
#[derive(Debug, Clone, Copy, Default)]
struct Connect {
    ip: Option<IpAddr>,
    port: Option<u16>,
    bind_to: Option<IpAddr>,
    bind_port: Option<u16>,
    timeout: Option<Duration>,
}

impl Connect {
    /// `c` with what this block set in place of its own.
    fn apply_to(&self, c: &mut CheckerConf<'_>) {
        c.connect_ip = self.ip.or(c.connect_ip);
        c.connect_port = self.port.or(c.connect_port);
        c.bind_to = self.bind_to.or(c.bind_to);
        c.bind_port = self.bind_port.or(c.bind_port);
        c.connect_timeout = self.timeout.or(c.connect_timeout);
    }
}

impl<'t> Parser<'t, '_> {
    /// A checker block, pushed onto `checkers`: nothing (with a warning)
    /// for one that cannot check anything, such as an empty
    /// `MISC_CHECK {}`; one checker per `host` block of an `SMTP_CHECK`
    /// (keepalived deprecates them in favour of one checker per host, and
    /// a real server is up only while all its checkers pass, as it is
    /// while all of keepalived's hosts pass).
    pub(super) fn checker(
        &mut self,
        head: &Stmt<'t>,
        checkers: &mut Vec<CheckerConf<'t>, MAX_CHECKERS>,
    ) -> Res<()> {
        let kind = match head.keyword() {
            "TCP_CHECK" => CheckKind::Tcp,
            "HTTP_GET" => CheckKind::Http,
            "SSL_GET" => CheckKind::Ssl,
            "SMTP_CHECK" => CheckKind::Smtp,
            "UDP_CHECK" => CheckKind::Udp,
            "PING_CHECK" => CheckKind::Ping,
            "DNS_CHECK" => CheckKind::Dns,
            _ => CheckKind::Misc,
        };
        self.require_block(head)?;
        let mut c = CheckerConf::new(kind, head.pos());
        let mut connect = Connect::default();
        let mut hosts: Vec<(Token<'t>, Connect), MAX_CHECKERS> = Vec::new();
        // The first min/max_reply_length, for a warning without require_reply.
        let mut lengths: Option<Token<'t>> = None;
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            if self.connect_option(&stmt, &mut connect)? {
                if kind == CheckKind::Misc && stmt.keyword() == "connect_timeout" {
                    // keepalived.conf(5): MISC_CHECK's script is bounded
                    // by misc_timeout only.
                    self.warn_at(
                        &stmt.kw,
                        Kind::Assumed {
                            keyword: Snippet::new("connect_timeout"),
                            note: "does not apply to MISC_CHECK: misc_timeout (default: the virtual server's delay_loop) bounds the script",
                        },
                    );
                }
                if kind == CheckKind::Ping && matches!(stmt.keyword(), "connect_port" | "bind_port")
                {
                    // An echo has no port: keepalived accepts both and uses neither.
                    self.warn_at(
                        &stmt.kw,
                        Kind::Assumed {
                            keyword: Snippet::new(stmt.keyword()),
                            note: "does not apply to PING_CHECK: an ICMP echo has no port",
                        },
                    );
                }
                continue;
            }
            match stmt.keyword() {
                "retry" => {
                    c.retry = Some(self.number(&stmt, 0, u64::from(u32::MAX), "0 or more")? as u32)
                }
                "nb_get_retry" => {
                    self.warn_at(
                        &stmt.kw,
                        Kind::Deprecated {
                            keyword: Snippet::new("nb_get_retry"),
                            instead: "retry",
                        },
                    );
                    c.retry = Some(self.number(&stmt, 0, u64::from(u32::MAX), "0 or more")? as u32);
                }
                "delay_before_retry" => {
                    c.delay_before_retry =
                        Some(self.seconds(&stmt, 0, MAX_TIMER_US, "0 or more seconds")?)
                }
                "delay_loop" => {
                    c.delay_loop = Some(self.seconds(&stmt, 1, MAX_TIMER_US, "more than 0 s")?)
                }
                "warmup" => {
                    c.warmup = Some(self.seconds(&stmt, 0, MAX_TIMER_US, "0 or more seconds")?)
                }
                "alpha" => c.alpha = Some(self.flag(&stmt)?),
                "virtualhost" => c.virtualhost = Some(self.single(&stmt, "a host name")?.text),
                "url" if matches!(kind, CheckKind::Http | CheckKind::Ssl) => {
                    let url = self.url(&stmt)?;
                    self.push(&mut c.urls, url, &stmt.kw, "url blocks in one checker")?;
                }
                "misc_path" if kind == CheckKind::Misc => c.misc_path = Some(self.script(&stmt)?),
                "misc_timeout" if kind == CheckKind::Misc => {
                    c.misc_timeout = Some(self.seconds(&stmt, 1, MAX_TIMER_US, "more than 0 s")?)
                }
                "misc_dynamic" if kind == CheckKind::Misc => c.misc_dynamic = self.flag(&stmt)?,
                "user" if kind == CheckKind::Misc => c.user = Some(self.run_as(&stmt)?),
                "helo_name" if kind == CheckKind::Smtp => {
                    let tok = self.single(&stmt, "a host name")?;
                    c.helo_name = Some(self.plain_text(
                        "helo_name",
                        &tok,
                        "a host name without control characters",
                    )?);
                }
                "host" if kind == CheckKind::Smtp => {
                    if hosts.is_empty() {
                        self.warn_at(
                            &stmt.kw,
                            Kind::Assumed {
                                keyword: Snippet::new("host"),
                                note: "deprecated by keepalived: each host block is checked as an SMTP_CHECK of its own, and the real server is up while all of them pass",
                            },
                        );
                    }
                    let host = self.smtp_host(&stmt)?;
                    self.push(
                        &mut hosts,
                        (stmt.kw, host),
                        &stmt.kw,
                        "host blocks in one SMTP_CHECK",
                    )?;
                }
                "payload" if kind == CheckKind::Udp => {
                    self.no_block(&stmt)?;
                    self.arg(&stmt, 0, "a hex string")?;
                    let mut mask = heapless::Vec::<u8, MAX_UDP_DATA>::new();
                    let read = hex::read(
                        stmt.args.iter().map(|t| t.text),
                        false,
                        &mut c.udp.payload,
                        &mut mask,
                    );
                    self.hex_result(&stmt, read, "hex digits such as 'Ab12 f3'")?;
                }
                "require_reply" if kind == CheckKind::Udp => {
                    self.no_block(&stmt)?;
                    c.udp.require_reply = true;
                    let read = hex::read(
                        stmt.args.iter().map(|t| t.text),
                        true,
                        &mut c.udp.reply,
                        &mut c.udp.reply_mask,
                    );
                    self.hex_result(&stmt, read, "hex digits, X for any nibble")?;
                }
                "min_reply_length" if kind == CheckKind::Udp => {
                    c.udp.min_reply_len = self.number(&stmt, 0, 65535, "0..65535")? as u16;
                    lengths = Some(lengths.unwrap_or(stmt.kw));
                }
                "max_reply_length" if kind == CheckKind::Udp => {
                    c.udp.max_reply_len = self.number(&stmt, 0, 65535, "0..65535")? as u16;
                    lengths = Some(lengths.unwrap_or(stmt.kw));
                }
                "type" if kind == CheckKind::Dns => c.dns_type = self.dns_type(&stmt)?,
                "name" if kind == CheckKind::Dns => c.dns_name = Some(self.dns_name(&stmt)?),
                _ => self.unknown(Block::Checker, &stmt)?,
            }
        }
        if kind == CheckKind::Udp {
            self.udp_lengths(head, &c, lengths)?;
        }
        connect.apply_to(&mut c);
        let missing = match kind {
            CheckKind::Misc if c.misc_path.is_none() => {
                Some("has no misc_path: this checker is ignored")
            }
            CheckKind::Http | CheckKind::Ssl if c.urls.is_empty() => {
                Some("has no url: this checker is ignored")
            }
            _ => None,
        };
        if let Some(note) = missing {
            self.warn_at(
                &head.kw,
                Kind::Assumed {
                    keyword: Snippet::new(head.keyword()),
                    note,
                },
            );
            return Ok(());
        }
        if hosts.is_empty() {
            return self.push(checkers, c, &head.kw, "checkers on one real server");
        }
        for (at, host) in hosts {
            let mut one = c.clone();
            host.apply_to(&mut one);
            one.pos = Pos {
                line: at.line,
                col: at.col,
            };
            self.push(checkers, one, &at, "checkers on one real server")?;
        }
        Ok(())
    }

    /// A hex string's error, worded for `stmt`'s keyword.
    fn hex_result(
        &self,
        stmt: &Stmt<'t>,
        read: Result<(), HexError>,
        what: &'static str,
    ) -> Res<()> {
        match read {
            // Words that read as no byte at all (`""`): keepalived's
            // "Invalid hex string" too.
            Ok(())
                if stmt.args.iter().all(|t| t.text.trim().is_empty()) && !stmt.args.is_empty() =>
            {
                Err(self.error_at(
                    &stmt.args[0],
                    Kind::Invalid {
                        what: match stmt.keyword() {
                            "payload" => "payload",
                            _ => "require_reply",
                        },
                        note: "the hex string has no digits",
                    },
                ))
            }
            Ok(()) => Ok(()),
            Err(HexError::BadDigit { word }) => {
                let tok = stmt.args.get(word).unwrap_or(&stmt.kw);
                Err(self.expected_in(stmt.keyword(), tok, what))
            }
            Err(HexError::TooLong) => Err(self.error_at(
                &stmt.kw,
                Kind::TooMany {
                    what: "bytes in a UDP_CHECK hex string",
                    max: MAX_UDP_DATA,
                },
            )),
        }
    }

    /// UDP_CHECK's reply lengths, checked once the block is read.
    fn udp_lengths(
        &mut self,
        head: &Stmt<'t>,
        c: &CheckerConf<'t>,
        lengths: Option<Token<'t>>,
    ) -> Res<()> {
        if c.udp.min_reply_len > c.udp.max_reply_len {
            // keepalived says so too ("will always fail"); vrlb refuses it.
            return Err(self.error_at(
                &head.kw,
                Kind::Invalid {
                    what: "UDP_CHECK",
                    note: "min_reply_length is greater than max_reply_length: no reply could pass",
                },
            ));
        }
        if let Some(at) = lengths.filter(|_| !c.udp.require_reply) {
            self.warn_at(
                &at,
                Kind::Assumed {
                    keyword: Snippet::new(at.text),
                    note: "has no effect without require_reply: no reply is awaited",
                },
            );
        }
        Ok(())
    }

    /// DNS_CHECK's `type`: one of keepalived's seven, any case.
    fn dns_type(&mut self, stmt: &Stmt<'t>) -> Res<DnsType> {
        let tok = self.single(stmt, "a DNS type")?;
        DnsType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(tok.text))
            .ok_or_else(|| {
                self.error_at(
                    &tok,
                    Kind::UnknownValue {
                        keyword: Snippet::new("type"),
                        value: Snippet::new(tok.text),
                        expected: "A, NS, CNAME, SOA, MX, TXT or AAAA",
                    },
                )
            })
    }

    /// DNS_CHECK's `name`: `.` or a domain name whose labels are not empty
    /// (keepalived check_dns.c refuses empty labels) and fit a query
    /// (RFC 1035 2.3.4: labels of 63 bytes, names of 255 on the wire).
    fn dns_name(&mut self, stmt: &Stmt<'t>) -> Res<&'t str> {
        let tok = self.single(stmt, "a domain name")?;
        let name = tok.text;
        let labels = name.strip_suffix('.').unwrap_or(name);
        let fits = name == "."
            || (!labels.is_empty()
                && labels.len() <= 253
                && labels.split('.').all(|l| {
                    (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_graphic())
                }));
        if !fits {
            return Err(self.expected_in(
                "name",
                &tok,
                "a domain name such as example.com: no empty labels, labels up to 63 characters, 253 in all",
            ));
        }
        Ok(name)
    }

    /// Reads `stmt` into `connect` if it is a connection option; whether
    /// it was one.
    fn connect_option(&mut self, stmt: &Stmt<'t>, connect: &mut Connect) -> Res<bool> {
        match stmt.keyword() {
            "connect_ip" => {
                let tok = self.single(stmt, "an address")?;
                connect.ip = Some(self.address(&tok)?);
            }
            "connect_port" => connect.port = Some(self.number(stmt, 1, 65535, "1..65535")? as u16),
            "bindto" => {
                let tok = self.single(stmt, "an address")?;
                connect.bind_to = Some(self.address(&tok)?);
            }
            "bind_port" => {
                connect.bind_port = Some(self.number(stmt, 1, 65535, "1..65535")? as u16)
            }
            "connect_timeout" => {
                connect.timeout = Some(self.seconds(stmt, 1, MAX_TIMER_US, "more than 0 s")?)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// An SMTP_CHECK `host { }` block: its connection options.
    fn smtp_host(&mut self, head: &Stmt<'t>) -> Res<Connect> {
        self.require_block(head)?;
        let mut connect = Connect::default();
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            if !self.connect_option(&stmt, &mut connect)? {
                self.unknown(Block::SmtpHost, &stmt)?;
            }
        }
        Ok(connect)
    }

    /// `status_code 200-299 400-499 503`: codes and inclusive ranges.
    fn status_codes(
        &mut self,
        stmt: &Stmt<'t>,
        codes: &mut Vec<(u16, u16), MAX_STATUS_CODES>,
    ) -> Res<()> {
        self.no_block(stmt)?;
        self.arg(stmt, 0, "an HTTP status code")?;
        for tok in stmt.args.iter() {
            let (lo, hi) = tok.text.split_once('-').unwrap_or((tok.text, tok.text));
            let code = |t: &str| {
                value::uint(t)
                    .filter(|c| (100..=599).contains(c))
                    .map(|c| c as u16)
            };
            match (code(lo), code(hi)) {
                (Some(lo), Some(hi)) if lo <= hi => {
                    self.push(codes, (lo, hi), tok, "status codes in one url")?
                }
                _ => {
                    return Err(
                        self.expected(tok, "a status code 100..599 or a range such as 200-299")
                    );
                }
            }
        }
        Ok(())
    }

    fn url(&mut self, head: &Stmt<'t>) -> Res<UrlConf<'t>> {
        self.require_block(head)?;
        let mut url = UrlConf {
            path: "",
            digest: None,
            status_codes: Vec::new(),
            virtualhost: None,
        };
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            match stmt.keyword() {
                "path" => url.path = self.single(&stmt, "a URL path")?.text,
                "digest" => {
                    let tok = self.single(&stmt, "an MD5 digest in hex")?;
                    if tok.text.len() != 32 || !tok.text.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(self.expected(&tok, "an MD5 digest (32 hex digits)"));
                    }
                    url.digest = Some(tok.text);
                }
                "status_code" => self.status_codes(&stmt, &mut url.status_codes)?,
                "virtualhost" => url.virtualhost = Some(self.single(&stmt, "a host name")?.text),
                _ => self.unknown(Block::Url, &stmt)?,
            }
        }
        if url.path.is_empty() {
            return Err(self.diag(
                head.kw.line,
                head.kw.col,
                Kind::Missing {
                    block: Snippet::new("url"),
                    keyword: "path",
                },
            ));
        }
        Ok(url)
    }
}
