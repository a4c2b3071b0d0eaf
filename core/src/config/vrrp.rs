//! Reads `vrrp_script`, `vrrp_instance` and `vrrp_sync_group`.

use core::net::IpAddr;

use heapless::Vec;

use super::diag::{Kind, Snippet};
use super::global::MAX_TIMER_US;
use super::keywords::Block;
use super::lexer::Token;
use super::model::{
    AuthConf, GroupMember, InitialState, MAX_PEERS, MAX_TRACKS, MAX_VIPS, Notify, SyncGroupConf,
    TrackConf, VipConf, VmacAddress, VmacConf, VrrpInstance, VrrpScript,
};
use super::parser::{Parser, Res, Stmt};
use super::value;
use crate::time::Duration;

impl<'t> Parser<'t, '_> {
    /// The name after a block keyword (`vrrp_instance VI_1 {`).
    pub(super) fn block_name(&mut self, head: &Stmt<'t>, what: &'static str) -> Res<&'t str> {
        let name = self.arg(head, 0, what)?;
        self.require_block(head)?;
        self.extra_args(head, 1);
        Ok(name.text)
    }

    /// One of the notify keywords, if `stmt` is one.
    fn notify(&mut self, notify: &mut Notify<'t>, stmt: &Stmt<'t>) -> Res<bool> {
        let slot = match stmt.keyword() {
            "notify_master" => &mut notify.master,
            "notify_backup" => &mut notify.backup,
            "notify_fault" => &mut notify.fault,
            "notify_stop" => &mut notify.stop,
            "notify" => &mut notify.any,
            _ => return Ok(false),
        };
        *slot = Some(self.script(stmt)?);
        Ok(true)
    }

    pub(super) fn vrrp_script(&mut self, head: &Stmt<'t>) -> Res<()> {
        let name = self.block_name(head, "a script name")?;
        let mut s = VrrpScript {
            name,
            script: "",
            interval: Duration::from_secs(1),
            timeout: None,
            weight: 0,
            reverse: false,
            rise: 1,
            fall: 1,
            user: None,
            init_fail: false,
            pos: head.pos(),
        };
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            match stmt.keyword() {
                "script" => s.script = self.script(&stmt)?,
                "interval" => s.interval = self.seconds(&stmt, 1, MAX_TIMER_US, "more than 0 s")?,
                "timeout" => {
                    s.timeout = Some(self.seconds(&stmt, 1, MAX_TIMER_US, "more than 0 s")?)
                }
                "weight" => {
                    let (weight, reverse) =
                        self.weight_reverse(&stmt, (-253, 253, "-253..253"), false)?;
                    (s.weight, s.reverse) = (weight, reverse.unwrap_or(false));
                }
                "rise" => s.rise = self.number(&stmt, 1, u64::from(u32::MAX), "1 or more")? as u32,
                "fall" => s.fall = self.number(&stmt, 1, u64::from(u32::MAX), "1 or more")? as u32,
                "user" => s.user = Some(self.run_as(&stmt)?),
                "init_fail" => s.init_fail = self.flag(&stmt)?,
                _ => self.unknown(Block::Script, &stmt)?,
            }
        }
        if s.script.is_empty() {
            // Often the script line is conditional (`@id script ...`).
            self.warn(
                s.pos.line,
                s.pos.col,
                Kind::Assumed {
                    keyword: Snippet::new(name),
                    note: "no 'script' line: the script is disabled and tracking it has no effect",
                },
            );
        }
        let result = self.sink.vrrp_script(&s);
        self.summary.items += 1;
        self.sink_result(s.pos, result)
    }

    pub(super) fn vrrp_instance(&mut self, head: &Stmt<'t>) -> Res<()> {
        let name = self.block_name(head, "an instance name")?;
        let mut i = VrrpInstance {
            name,
            state: InitialState::Backup,
            interface: None,
            vrid: 0,
            priority: 100,
            advert_interval_cs: 100,
            version: None,
            preempt: true,
            preempt_delay: Duration::ZERO,
            auth: None,
            vips: Vec::new(),
            excluded_vips: Vec::new(),
            virtual_routes: Vec::new(),
            unicast_src_ip: None,
            unicast_peers: Vec::new(),
            mcast_src_ip: None,
            track_interfaces: Vec::new(),
            track_scripts: Vec::new(),
            track_processes: Vec::new(),
            track_files: Vec::new(),
            garp_master_delay: None,
            garp_master_repeat: None,
            garp_master_refresh: None,
            garp_master_refresh_repeat: None,
            lower_prio_no_advert: None,
            down_timer_adverts: 3,
            v3_checksum_as_v2: false,
            dont_track_primary: false,
            native_ipv6: false,
            use_vmac: None,
            vmac_xmit_base: false,
            lvs_sync_daemon_interface: None,
            notify: Notify::default(),
            smtp_alert: None,
            pos: head.pos(),
        };
        let mut advert_tok: Option<Token<'t>> = None;
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            if self.notify(&mut i.notify, &stmt)? {
                continue;
            }
            match stmt.keyword() {
                "state" => {
                    let tok = self.single(&stmt, "MASTER or BACKUP")?;
                    i.state = match tok.text.to_ascii_uppercase_fixed().as_str() {
                        "MASTER" => InitialState::Master,
                        "BACKUP" | "EQUAL" => InitialState::Backup,
                        _ => {
                            return Err(self.error_at(
                                &tok,
                                Kind::UnknownValue {
                                    keyword: Snippet::new("state"),
                                    value: Snippet::new(tok.text),
                                    expected: "MASTER, BACKUP",
                                },
                            ));
                        }
                    };
                }
                "interface" => i.interface = Some(self.single(&stmt, "an interface name")?.text),
                "virtual_router_id" => i.vrid = self.number(&stmt, 1, 255, "1..255")? as u8,
                "priority" => i.priority = self.number(&stmt, 1, 255, "1..255")? as u8,
                "advert_int" => {
                    // Centisecond resolution, VRRPv3's unit. keepalived
                    // takes 0.01..255 s (vrrp_parser.c); v3 holds at most
                    // 40.95 s and v2 whole seconds, checked once the
                    // version is known.
                    let d = self.seconds(
                        &stmt,
                        10_000,
                        255_000_000,
                        "0.01..255 s (at most 40.95 s for VRRPv3)",
                    )?;
                    advert_tok = stmt.args.first().copied();
                    if d.as_micros() % 10_000 != 0 {
                        let tok = stmt.args[0];
                        return Err(self.error_at(
                            &tok,
                            Kind::OutOfRange {
                                keyword: Snippet::new("advert_int"),
                                value: Snippet::new(tok.text),
                                range: "a multiple of 0.01 s",
                            },
                        ));
                    }
                    i.advert_interval_cs = d.as_centis() as u16;
                }
                "version" => i.version = Some(self.number(&stmt, 2, 3, "2 or 3")? as u8),
                "nopreempt" => i.preempt = !self.flag(&stmt)?,
                "preempt" => i.preempt = self.flag(&stmt)?,
                "preempt_delay" => {
                    i.preempt_delay = self.seconds(&stmt, 0, 1_000_000_000, "0..1000 s")?
                }
                "authentication" => i.auth = self.authentication(&stmt)?,
                "virtual_ipaddress" => self.vip_block(&stmt, &mut i.vips)?,
                "virtual_ipaddress_excluded" => self.vip_block(&stmt, &mut i.excluded_vips)?,
                "virtual_routes" => self.routes_block(&stmt, &mut i.virtual_routes)?,
                "unicast_src_ip" => i.unicast_src_ip = Some(self.peer_address(&stmt)?),
                "mcast_src_ip" => {
                    let tok = self.single(&stmt, "an address")?;
                    i.mcast_src_ip = Some(self.address(&tok)?);
                }
                "unicast_peer" => self.peers(&stmt, &mut i.unicast_peers)?,
                "track_interface" => self.tracks(&stmt, &mut i.track_interfaces)?,
                "track_script" => self.tracks(&stmt, &mut i.track_scripts)?,
                "track_process" => self.tracks(&stmt, &mut i.track_processes)?,
                "track_file" => self.tracks(&stmt, &mut i.track_files)?,
                "garp_master_delay" => {
                    i.garp_master_delay =
                        Some(self.seconds(&stmt, 0, 1_000_000_000, "0..1000 s")?)
                }
                "garp_master_repeat" => {
                    i.garp_master_repeat = Some(self.number(&stmt, 1, 255, "1..255")? as u8)
                }
                "garp_master_refresh" => {
                    i.garp_master_refresh =
                        Some(self.seconds(&stmt, 0, MAX_TIMER_US, "0 or more seconds")?)
                }
                "garp_master_refresh_repeat" => {
                    i.garp_master_refresh_repeat = Some(self.number(&stmt, 1, 255, "1..255")? as u8)
                }
                "lower_prio_no_advert" => i.lower_prio_no_advert = Some(self.flag(&stmt)?),
                "down_timer_adverts" => {
                    i.down_timer_adverts = self.number(&stmt, 1, 100, "1..100")? as u8
                }
                "v3_checksum_as_v2" => i.v3_checksum_as_v2 = self.flag(&stmt)?,
                "dont_track_primary" => i.dont_track_primary = self.flag(&stmt)?,
                "smtp_alert" => i.smtp_alert = Some(self.flag(&stmt)?),
                "native_ipv6" => i.native_ipv6 = self.flag(&stmt)?,
                "use_vmac" => i.use_vmac = Some(self.vmac(&stmt)?),
                "vmac_xmit_base" => i.vmac_xmit_base = self.flag(&stmt)?,
                "lvs_sync_daemon_interface" => {
                    i.lvs_sync_daemon_interface =
                        Some(self.single(&stmt, "an interface name")?.text)
                }
                _ => self.unknown(Block::Instance, &stmt)?,
            }
        }
        if i.vrid == 0 {
            return Err(self.diag(
                i.pos.line,
                i.pos.col,
                Kind::Missing {
                    block: Snippet::new(name),
                    keyword: "virtual_router_id",
                },
            ));
        }
        if let Some(v) = i.use_vmac
            && !i.unicast_peers.is_empty()
            && !i.vmac_xmit_base
        {
            // keepalived.conf(5): unicast with use_vmac needs vmac_xmit_base,
            // which keepalived then sets itself.
            self.warn(
                v.pos.line,
                v.pos.col,
                Kind::Assumed {
                    keyword: Snippet::new("use_vmac"),
                    note: "with unicast_peer, adverts go out on the base interface (vmac_xmit_base), as keepalived does",
                },
            );
            i.vmac_xmit_base = true;
        }
        if let Some(tok) = advert_tok {
            let range = match i.version {
                Some(2) if i.advert_interval_cs % 100 != 0 => Some("whole seconds for VRRPv2"),
                Some(3) if i.advert_interval_cs > 4095 => Some("0.01..40.95 s for VRRPv3"),
                _ => None,
            };
            if let Some(range) = range {
                return Err(self.error_at(
                    &tok,
                    Kind::OutOfRange {
                        keyword: Snippet::new("advert_int"),
                        value: Snippet::new(tok.text),
                        range,
                    },
                ));
            }
        }
        if i.vips.is_empty() {
            // keepalived: "No VIP specified; at least one is sensible".
            self.warn(
                i.pos.line,
                i.pos.col,
                Kind::Assumed {
                    keyword: Snippet::new("virtual_ipaddress"),
                    note: "none given: the instance elects a master but moves no address",
                },
            );
        }
        let result = self.sink.vrrp_instance(&i);
        self.summary.items += 1;
        self.sink_result(i.pos, result)
    }

    fn authentication(&mut self, head: &Stmt<'t>) -> Res<Option<AuthConf<'t>>> {
        self.require_block(head)?;
        let mut kind: Option<Token<'t>> = None;
        let mut pass: Option<Token<'t>> = None;
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            match stmt.keyword() {
                "auth_type" => kind = Some(self.single(&stmt, "PASS or AH")?),
                "auth_pass" => {
                    let tok = self.single(&stmt, "a password")?;
                    // RFC 3768 5.3.7: the authentication data field is 8 bytes.
                    if tok.text.len() > 8 {
                        self.warn_at(
                            &tok,
                            Kind::Assumed {
                                keyword: Snippet::new("auth_pass"),
                                note: "longer than 8 characters: only the first 8 are used, as keepalived does",
                            },
                        );
                    }
                    pass = Some(tok);
                }
                _ => self.unknown(Block::Auth, &stmt)?,
            }
        }
        let Some(kind) = kind else {
            if pass.is_some() {
                return Err(self.diag(
                    head.kw.line,
                    head.kw.col,
                    Kind::Missing {
                        block: Snippet::new("authentication"),
                        keyword: "auth_type",
                    },
                ));
            }
            return Ok(None);
        };
        match kind.text.to_ascii_uppercase_fixed().as_str() {
            "PASS" => match pass {
                Some(p) => Ok(Some(AuthConf::Pass(p.text))),
                None => Err(self.diag(
                    head.kw.line,
                    head.kw.col,
                    Kind::Missing {
                        block: Snippet::new("authentication"),
                        keyword: "auth_pass",
                    },
                )),
            },
            "AH" => Ok(Some(AuthConf::Ah)),
            _ => Err(self.error_at(
                &kind,
                Kind::UnknownValue {
                    keyword: Snippet::new("auth_type"),
                    value: Snippet::new(kind.text),
                    expected: "PASS, AH",
                },
            )),
        }
    }

    /// `virtual_ipaddress { ADDR[/LEN] [brd A] [dev IF] [scope S] [label L] ... }`
    fn vip_block(&mut self, head: &Stmt<'t>, vips: &mut Vec<VipConf<'t>, MAX_VIPS>) -> Res<()> {
        self.require_block(head)?;
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            self.no_block(&stmt)?;
            let (addr, prefix_len) = value::ip_prefix(stmt.keyword())
                .ok_or_else(|| self.expected(&stmt.kw, "an address[/prefix]"))?;
            let mut vip = VipConf {
                addr,
                prefix_len,
                dev: None,
                label: None,
                scope: None,
                broadcast: None,
                pos: stmt.pos(),
            };
            let mut k = 0;
            while k < stmt.args.len() {
                let opt = stmt.args[k];
                match opt.text {
                    "dev" | "label" | "scope" | "brd" | "broadcast" | "preferred_lft"
                    | "track_group" => {
                        let v = self.arg(&stmt, k + 1, "a value")?;
                        match opt.text {
                            "dev" => vip.dev = Some(v.text),
                            "label" => vip.label = Some(v.text),
                            "scope" => vip.scope = Some(v.text),
                            "brd" | "broadcast" => vip.broadcast = Some(self.address(&v)?),
                            _ => {}
                        }
                        k += 2;
                    }
                    "no_track" | "home" | "-nodad" | "nodad" | "noprefixroute" | "autojoin" => {
                        k += 1
                    }
                    _ => {
                        self.extra_args(&stmt, k);
                        break;
                    }
                }
            }
            self.push(
                vips,
                vip,
                &stmt.kw,
                "addresses in one virtual_ipaddress block",
            )?;
        }
        Ok(())
    }

    /// An address that keepalived also accepts with a `/prefix`, which is
    /// meaningless for a peer and ignored.
    fn peer_address_token(&mut self, tok: &Token<'t>) -> Res<IpAddr> {
        let (addr, prefix) = value::ip_prefix(tok.text)
            .ok_or_else(|| self.expected(tok, "an IPv4 or IPv6 address"))?;
        if prefix.is_some() {
            self.warn_at(
                tok,
                Kind::Assumed {
                    keyword: Snippet::new(tok.text),
                    note: "a prefix length means nothing for a peer address: ignored",
                },
            );
        }
        Ok(addr)
    }

    fn peer_address(&mut self, stmt: &Stmt<'t>) -> Res<IpAddr> {
        let tok = self.single(stmt, "an address")?;
        self.peer_address_token(&tok)
    }

    fn peers(&mut self, head: &Stmt<'t>, peers: &mut Vec<IpAddr, MAX_PEERS>) -> Res<()> {
        self.require_block(head)?;
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            self.no_block(&stmt)?;
            let addr = self.peer_address_token(&stmt.kw)?;
            // `min_ttl`/`max_ttl` options are keepalived's; not used.
            self.extra_args(&stmt, 0);
            self.push(peers, addr, &stmt.kw, "unicast peers")?;
        }
        Ok(())
    }

    /// `use_vmac [[name] NAME] [MAC] [netlink_notify_msg] [group ID]`
    /// (keepalived.conf(5)); `group` and `netlink_notify_msg` are warned
    /// about and ignored.
    fn vmac(&mut self, stmt: &Stmt<'t>) -> Res<VmacConf<'t>> {
        self.no_block(stmt)?;
        let mut conf = VmacConf {
            name: None,
            mac: None,
            pos: stmt.pos(),
        };
        let mut args = stmt.args.iter().copied();
        while let Some(tok) = args.next() {
            match tok.text {
                "name" => {
                    let name = args
                        .next()
                        .ok_or_else(|| self.missing(stmt, "use_vmac", "an interface name"))?;
                    conf.name = Some(self.vmac_name(&name)?);
                }
                "netlink_notify_msg" => self.warn_at(
                    &tok,
                    Kind::Unsupported {
                        keyword: Snippet::new(tok.text),
                        note: "vrlb follows its own VMACs' netlink messages",
                    },
                ),
                "group" => {
                    args.next()
                        .ok_or_else(|| self.missing(stmt, "use_vmac", "a link group"))?;
                    self.warn_at(
                        &tok,
                        Kind::Unsupported {
                            keyword: Snippet::new(tok.text),
                            note: "the VMAC is made in the kernel's default link group",
                        },
                    );
                }
                text => match value::mac_octets(text) {
                    Some(_) if conf.mac.is_some() => {
                        return Err(self.expected_in("use_vmac", &tok, "one MAC address"));
                    }
                    Some((octets, len)) => {
                        // A multicast MAC is no address for an interface.
                        if octets[0] & 1 != 0 {
                            return Err(self.expected_in(
                                "use_vmac",
                                &tok,
                                "a unicast MAC address",
                            ));
                        }
                        conf.mac = Some(if len == 6 {
                            VmacAddress::Full(octets)
                        } else {
                            let [a, b, c, d, e, _] = octets;
                            VmacAddress::Prefix([a, b, c, d, e])
                        });
                    }
                    None if conf.name.is_none() => conf.name = Some(self.vmac_name(&tok)?),
                    None => {
                        return Err(self.expected_in(
                            "use_vmac",
                            &tok,
                            "a MAC address, netlink_notify_msg or group",
                        ));
                    }
                },
            }
        }
        Ok(conf)
    }

    /// A name Linux takes for an interface: 1 to 15 bytes, not `.` or
    /// `..`, without `/`, `:` or white space (`dev_valid_name`).
    fn vmac_name(&self, tok: &Token<'t>) -> Res<&'t str> {
        let t = tok.text;
        let valid = (1..16).contains(&t.len())
            && t != "."
            && t != ".."
            && !t
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
        if valid {
            Ok(t)
        } else {
            Err(self.expected_in(
                "use_vmac",
                tok,
                "an interface name (1 to 15 characters, no '/', ':' or spaces)",
            ))
        }
    }

    /// `track_interface`, `track_script`, `track_process` and `track_file`
    /// blocks: `NAME [weight N] [reverse|noreverse]` a line. A name given
    /// twice is warned and its first entry kept (keepalived: "duplicate
    /// ... - ignoring"); other words are warned and skipped, as keepalived
    /// reports them and goes on.
    pub(super) fn tracks(
        &mut self,
        head: &Stmt<'t>,
        tracks: &mut Vec<TrackConf<'t>, MAX_TRACKS>,
    ) -> Res<()> {
        self.require_block(head)?;
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            self.no_block(&stmt)?;
            let mut track = TrackConf {
                name: stmt.keyword(),
                weight: None,
                reverse: None,
                pos: stmt.pos(),
            };
            let mut k = 0;
            while let Some(opt) = stmt.args.get(k).copied() {
                match opt.text {
                    "weight" => {
                        let tok = self.arg(&stmt, k + 1, "a weight")?;
                        let v = self.signed_token(&stmt, &tok, -254, 254, "-254..254")?;
                        track.weight = Some(v as i32);
                        k += 2;
                    }
                    "reverse" | "noreverse" => {
                        track.reverse = Some(opt.text == "reverse");
                        k += 1;
                    }
                    _ => {
                        self.extra_args(&stmt, k);
                        break;
                    }
                }
            }
            if tracks.iter().any(|t| t.name == track.name) {
                self.warn_at(
                    &stmt.kw,
                    Kind::Assumed {
                        keyword: Snippet::new(track.name),
                        note: "tracked twice in this block: the first entry is used",
                    },
                );
                continue;
            }
            self.push(tracks, track, &stmt.kw, "tracked objects in one block")?;
        }
        Ok(())
    }

    pub(super) fn sync_group(&mut self, head: &Stmt<'t>) -> Res<()> {
        let name = self.block_name(head, "a group name")?;
        let mut g = SyncGroupConf {
            name,
            members: Vec::new(),
            notify: Notify::default(),
            smtp_alert: None,
            pos: head.pos(),
        };
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            if self.notify(&mut g.notify, &stmt)? {
                continue;
            }
            match stmt.keyword() {
                // Before the 1.x member list below, which a bare
                // `smtp_alert` would otherwise join.
                "smtp_alert" => g.smtp_alert = Some(self.flag(&stmt)?),
                "group" => {
                    self.require_block(&stmt)?;
                    while let Some(m) = self.next_stmt(Some(&stmt.kw))? {
                        self.no_block(&m)?;
                        self.extra_args(&m, 0);
                        let member = GroupMember {
                            name: m.keyword(),
                            pos: m.pos(),
                        };
                        self.push(&mut g.members, member, &m.kw, "members of a sync group")?;
                    }
                }
                // keepalived 1.x listed members directly in the block.
                kw if !stmt.block
                    && stmt.args.is_empty()
                    && Block::SyncGroup.ignored(kw).is_none() =>
                {
                    self.warn_at(
                        &stmt.kw,
                        Kind::Deprecated {
                            keyword: Snippet::new(kw),
                            instead: "group { NAME ... } around the member names",
                        },
                    );
                    let member = GroupMember {
                        name: kw,
                        pos: stmt.pos(),
                    };
                    self.push(&mut g.members, member, &stmt.kw, "members of a sync group")?;
                }
                _ => self.unknown(Block::SyncGroup, &stmt)?,
            }
        }
        if g.members.is_empty() {
            return Err(self.diag(
                g.pos.line,
                g.pos.col,
                Kind::Missing {
                    block: Snippet::new(name),
                    keyword: "group",
                },
            ));
        }
        let result = self.sink.vrrp_sync_group(&g);
        self.summary.items += 1;
        self.sink_result(g.pos, result)
    }
}

/// Upper-casing into a small fixed buffer (no allocation).
pub(super) trait UpperFixed {
    fn to_ascii_uppercase_fixed(&self) -> heapless::String<16>;
}

impl UpperFixed for str {
    fn to_ascii_uppercase_fixed(&self) -> heapless::String<16> {
        let mut s = heapless::String::new();
        for c in self.chars() {
            if s.push(c.to_ascii_uppercase()).is_err() {
                return heapless::String::new();
            }
        }
        s
    }
}
