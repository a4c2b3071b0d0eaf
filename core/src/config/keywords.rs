//! The keywords of each block, the ones vrlb accepts but does not act on,
//! and the "did you mean" lookup for unknown ones.

/// The kinds of block, for keyword lookup and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// The top level of the file.
    Top,
    /// `global_defs`.
    Global,
    /// `vrrp_script`.
    Script,
    /// `track_file` (`vrrp_track_file`).
    TrackFile,
    /// `FILE_CHECK` in a real server.
    FileCheck,
    /// `vrrp_instance`.
    Instance,
    /// `vrrp_sync_group`.
    SyncGroup,
    /// `virtual_server`.
    VirtualServer,
    /// `real_server`.
    RealServer,
    /// A checker block.
    Checker,
    /// `url` inside a checker.
    Url,
    /// `host` inside an SMTP_CHECK.
    SmtpHost,
    /// `authentication`.
    Auth,
    /// `garp_group`.
    GarpGroup,
    /// `vrrp_track_process`.
    TrackProcess,
}

impl Block {
    /// The name used in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Block::Top => "the top level",
            Block::Global => "global_defs",
            Block::Script => "vrrp_script",
            Block::TrackFile => "track_file",
            Block::FileCheck => "FILE_CHECK",
            Block::Instance => "vrrp_instance",
            Block::SyncGroup => "vrrp_sync_group",
            Block::VirtualServer => "virtual_server",
            Block::RealServer => "real_server",
            Block::Checker => "a checker block",
            Block::Url => "url",
            Block::SmtpHost => "an SMTP_CHECK host block",
            Block::Auth => "authentication",
            Block::GarpGroup => "garp_group",
            Block::TrackProcess => "vrrp_track_process",
        }
    }

    /// Keywords vrlb understands in this block.
    pub const fn known(self) -> &'static [&'static str] {
        match self {
            Block::Top => &[
                "global_defs",
                "vrrp_script",
                "track_file",
                "vrrp_track_file",
                "vrrp_instance",
                "vrrp_sync_group",
                "virtual_server_group",
                "virtual_server",
                "include",
                "static_routes",
                "garp_group",
                "vrrp_track_process",
            ],
            Block::Global => &[
                "router_id",
                "notification_email",
                "notification_email_from",
                "smtp_server",
                "smtp_helo_name",
                "smtp_connect_timeout",
                "smtp_alert",
                "smtp_alert_vrrp",
                "smtp_alert_checker",
                "no_email_faults",
                "vrrp_version",
                "vrrp_garp_master_delay",
                "vrrp_garp_master_repeat",
                "vrrp_garp_master_refresh",
                "vrrp_garp_master_refresh_repeat",
                "vrrp_garp_interval",
                "vrrp_gna_interval",
                "vrrp_lower_prio_no_advert",
                "vrrp_strict",
                "lvs_sync_daemon",
                "enable_script_security",
                "script_user",
                "lvs_timeouts",
                "vrrp_check_unicast_src",
            ],
            Block::Script => &[
                "script",
                "interval",
                "timeout",
                "weight",
                "rise",
                "fall",
                "user",
                "init_fail",
            ],
            Block::TrackFile => &["file", "weight", "init_file"],
            Block::FileCheck => &["track_file", "weight"],
            Block::Instance => &[
                "state",
                "smtp_alert",
                "interface",
                "virtual_router_id",
                "priority",
                "advert_int",
                "version",
                "nopreempt",
                "preempt",
                "preempt_delay",
                "authentication",
                "virtual_ipaddress",
                "virtual_ipaddress_excluded",
                "virtual_routes",
                "unicast_src_ip",
                "unicast_peer",
                "mcast_src_ip",
                "track_interface",
                "track_script",
                "track_process",
                "track_file",
                "garp_master_delay",
                "garp_master_repeat",
                "garp_master_refresh",
                "garp_master_refresh_repeat",
                "lower_prio_no_advert",
                "down_timer_adverts",
                "v3_checksum_as_v2",
                "dont_track_primary",
                "native_ipv6",
                "use_vmac",
                "vmac_xmit_base",
                "lvs_sync_daemon_interface",
                "notify_master",
                "notify_backup",
                "notify_fault",
                "notify_stop",
                "notify",
            ],
            Block::SyncGroup => &[
                "group",
                "smtp_alert",
                "notify_master",
                "notify_backup",
                "notify_fault",
                "notify_stop",
                "notify",
            ],
            Block::VirtualServer => &[
                "delay_loop",
                "smtp_alert",
                "lb_algo",
                "lvs_sched",
                "lb_kind",
                "lvs_method",
                "persistence_timeout",
                "persistence_granularity",
                "protocol",
                "sorry_server",
                "sorry_server_inhibit",
                "sorry_server_lvs_method",
                "quorum",
                "hysteresis",
                "quorum_up",
                "quorum_down",
                "alpha",
                "omega",
                "ha_suspend",
                "inhibit_on_failure",
                "virtualhost",
                "ops",
                "anycast",
                "sh-port",
                "sh-fallback",
                "mh-port",
                "mh-fallback",
                "real_server",
                "connect_timeout",
                "retry",
                "nb_get_retry",
                "delay_before_retry",
                "warmup",
            ],
            Block::RealServer => &[
                "weight",
                "smtp_alert",
                "lvs_method",
                "uthreshold",
                "lthreshold",
                "inhibit_on_failure",
                "notify_up",
                "notify_down",
                "connect_timeout",
                "retry",
                "nb_get_retry",
                "delay_before_retry",
                "delay_loop",
                "warmup",
                "TCP_CHECK",
                "HTTP_GET",
                "SSL_GET",
                "MISC_CHECK",
                "SMTP_CHECK",
                "FILE_CHECK",
                "UDP_CHECK",
                "PING_CHECK",
                "DNS_CHECK",
            ],
            Block::Checker => &[
                "connect_ip",
                "connect_port",
                "bindto",
                "bind_port",
                "connect_timeout",
                "retry",
                "nb_get_retry",
                "delay_before_retry",
                "delay_loop",
                "warmup",
                "alpha",
                "url",
                "misc_path",
                "misc_timeout",
                "misc_dynamic",
                "user",
                "virtualhost",
                "helo_name",
                "host",
                "payload",
                "require_reply",
                "min_reply_length",
                "max_reply_length",
                "type",
                "name",
            ],
            Block::Url => &["path", "digest", "status_code", "virtualhost"],
            Block::SmtpHost => &[
                "connect_ip",
                "connect_port",
                "bindto",
                "bind_port",
                "connect_timeout",
            ],
            Block::Auth => &["auth_type", "auth_pass"],
            Block::GarpGroup => &["garp_interval", "gna_interval", "interface", "interfaces"],
            Block::TrackProcess => &[
                "process",
                "param_match",
                "weight",
                "quorum",
                "quorum_max",
                "fork_delay",
                "terminate_delay",
                "delay",
                "full_command",
            ],
        }
    }

    /// Keywords keepalived knows that vrlb accepts without acting on them,
    /// with the reason given to the user.
    pub fn ignored(self, keyword: &str) -> Option<&'static str> {
        self.ignored_table()
            .iter()
            .find(|(k, _)| *k == keyword)
            .map(|(_, why)| *why)
    }

    fn ignored_table(self) -> &'static [(&'static str, &'static str)] {
        const NO_EFFECT: &str = "accepted and ignored";
        const RULES: &str = "vrlb manages addresses and routes, not routing rules";
        match self {
            Block::Top => &[
                ("static_ipaddress", "vrlb does not manage static addresses"),
                ("static_rules", RULES),
                ("linkbeat_interfaces", NO_EFFECT),
                ("net_namespace", "run vrlb inside the namespace instead"),
                ("instance", NO_EFFECT),
                ("use_pid_dir", NO_EFFECT),
                ("bfd_instance", "BFD is not implemented"),
            ],
            Block::Global => &[
                ("lvs_id", NO_EFFECT),
                ("vrrp_mcast_group4", "vrlb uses the RFC group 224.0.0.18"),
                ("vrrp_mcast_group6", "vrlb uses the RFC group ff02::12"),
                (
                    "vrrp_skip_check_adv_addr",
                    "address list mismatches are counted, never dropped",
                ),
                ("vrrp_iptables", "vrlb installs nftables rules of its own"),
                ("vrrp_ipsets", "vrlb installs nftables rules of its own"),
                ("nftables", "vrlb installs nftables rules of its own"),
                ("vrrp_no_swap", NO_EFFECT),
                ("checker_no_swap", NO_EFFECT),
                ("vrrp_priority", NO_EFFECT),
                ("checker_priority", NO_EFFECT),
                ("dynamic_interfaces", NO_EFFECT),
                ("default_interface", NO_EFFECT),
                ("lvs_flush", NO_EFFECT),
                ("max_auto_priority", NO_EFFECT),
            ],
            Block::Script => &[],
            Block::TrackFile => &[],
            Block::FileCheck => &[],
            Block::Instance => &[
                (
                    "use_vmac_addr",
                    "a VMAC is made for the instance's interface only",
                ),
                ("use_ipvlan", "IPVLAN interfaces are not made"),
                ("virtual_rules", RULES),
                ("accept", NO_EFFECT),
                ("no_accept", NO_EFFECT),
                ("debug", NO_EFFECT),
                ("garp_lower_prio_delay", NO_EFFECT),
                ("garp_lower_prio_repeat", NO_EFFECT),
                ("strict_mode", NO_EFFECT),
                (
                    "skip_check_adv_addr",
                    "address list mismatches are counted, never dropped",
                ),
                ("check_unicast_src", NO_EFFECT),
                ("unicast_ttl", NO_EFFECT),
            ],
            Block::SyncGroup => &[
                ("track_interface", "track interfaces in each instance"),
                ("track_script", "track scripts in each instance"),
                ("track_process", "track processes in each instance"),
                ("track_file", "track files in each instance"),
                ("global_tracking", NO_EFFECT),
                ("sync_group_tracking_weight", NO_EFFECT),
            ],
            Block::VirtualServer => &[("lvs_sync_daemon_interface", NO_EFFECT)],
            Block::RealServer => &[(
                "BFD_CHECK",
                "BFD is not implemented: the server is not checked by it",
            )],
            Block::Checker => &[
                ("fwmark", "probes go out unmarked"),
                ("bind_if", "probes leave by the route to the target"),
            ],
            Block::Url => &[],
            Block::SmtpHost => &[],
            Block::Auth => &[],
            Block::GarpGroup => &[],
            Block::TrackProcess => &[],
        }
    }
}

/// The known keyword of `block` (or of any block) closest to `word`, if
/// close enough to be a likely typo; `key=value` suggests `key`.
pub fn suggest(block: Block, word: &str) -> Option<&'static str> {
    // global_defs spells instance settings with a `vrrp_` prefix.
    if block == Block::Global
        && let Some(hit) = block
            .known()
            .iter()
            .find(|k| k.strip_prefix("vrrp_") == Some(word))
    {
        return Some(hit);
    }
    if let Some((key, _)) = word.split_once('=')
        && let Some(hit) = block.known().iter().find(|k| k.eq_ignore_ascii_case(key))
    {
        return Some(hit);
    }
    let all = [
        block,
        Block::Top,
        Block::Global,
        Block::Instance,
        Block::VirtualServer,
        Block::RealServer,
        Block::Checker,
    ];
    let mut best: Option<(&'static str, usize)> = None;
    for b in all {
        for known in b
            .known()
            .iter()
            .chain(b.ignored_table().iter().map(|(k, _)| k))
        {
            let Some(d) = distance(word, known) else {
                continue;
            };
            // Up to one edit per four characters, at most three.
            let limit = (known.len() / 4).clamp(1, 3);
            if d <= limit && best.is_none_or(|(_, bd)| d < bd) {
                best = Some((known, d));
            }
        }
        if best.is_some() && b == block {
            break;
        }
    }
    best.map(|(k, _)| k).or_else(|| by_parts(&all, word))
}

/// A known keyword whose `_`-separated words begin or end with all of
/// `word`'s, or the other way round, sharing at least two words
/// (`script_security` -> `enable_script_security`, `sorry_server_ip` ->
/// `sorry_server`). Only an answer no other keyword shares is given.
fn by_parts(blocks: &[Block], word: &str) -> Option<&'static str> {
    if word.split('_').count() < 2 || word.split('_').any(str::is_empty) {
        return None;
    }
    let mut found: Option<&'static str> = None;
    for b in blocks {
        for known in b
            .known()
            .iter()
            .chain(b.ignored_table().iter().map(|(k, _)| k))
        {
            if !affix(known, word) || found == Some(*known) {
                continue;
            }
            if found.is_some() {
                return None;
            }
            found = Some(known);
        }
        if found.is_some() {
            break;
        }
    }
    found
}

/// Whether the words of the shorter of `a` and `b` are the first or the
/// last words of the longer one (case-insensitive), at least two of them.
fn affix(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.len() == long.len() || short.split('_').count() < 2 {
        return false;
    }
    let starts = long
        .get(..short.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(short))
        && long.as_bytes().get(short.len()) == Some(&b'_');
    let ends = long
        .get(long.len() - short.len()..)
        .is_some_and(|p| p.eq_ignore_ascii_case(short))
        && long.as_bytes().get(long.len() - short.len() - 1) == Some(&b'_');
    starts || ends
}

/// Optimal string alignment distance (Levenshtein plus adjacent swaps),
/// case-insensitive; `None` for words too long to be keywords.
fn distance(a: &str, b: &str) -> Option<usize> {
    const MAX: usize = 40;
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() > MAX || b.len() > MAX {
        return None;
    }
    let mut prev2 = [0usize; MAX + 1];
    let mut prev: [usize; MAX + 1] = core::array::from_fn(|j| j);
    let mut cur = [0usize; MAX + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(!a[i - 1].eq_ignore_ascii_case(&b[j - 1]));
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1
                && j > 1
                && a[i - 1].eq_ignore_ascii_case(&b[j - 2])
                && a[i - 2].eq_ignore_ascii_case(&b[j - 1])
            {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
        }
        prev2 = prev;
        prev = cur;
    }
    Some(prev[b.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_from_the_corpus() {
        assert_eq!(
            suggest(Block::Top, "lvs_sync_daemon_inteface"),
            Some("lvs_sync_daemon_interface")
        );
        assert_eq!(
            suggest(Block::Checker, "connetc_port"),
            Some("connect_port")
        );
        assert_eq!(suggest(Block::RealServer, "weigth"), Some("weight"));
        assert_eq!(suggest(Block::RealServer, "SMTP_CHEKC"), Some("SMTP_CHECK"));
        assert_eq!(
            suggest(Block::Instance, "mcast_src_ip=192.168.10.80"),
            Some("mcast_src_ip")
        );
        assert_eq!(suggest(Block::VirtualServer, "nat_mask"), None);
        assert_eq!(suggest(Block::Top, "OS:"), None);
        assert_eq!(
            suggest(Block::Global, "garp_master_delay"),
            Some("vrrp_garp_master_delay")
        );
    }

    /// Misspellings seen in real configurations, and words that must not
    /// get a silly suggestion.
    #[test]
    fn a_table_of_misspellings() {
        let table: &[(Block, &str, Option<&str>)] = &[
            (
                Block::Global,
                "script_security",
                Some("enable_script_security"),
            ),
            (
                Block::Global,
                "vrrp_garp_master_repeats",
                Some("vrrp_garp_master_repeat"),
            ),
            (
                Block::Global,
                "notification_emails",
                Some("notification_email"),
            ),
            (Block::Global, "smtp_server_ip", Some("smtp_server")),
            (Block::Global, "routerid", Some("router_id")),
            (
                Block::Instance,
                "virtual_ipadress",
                Some("virtual_ipaddress"),
            ),
            (
                Block::Instance,
                "virtual_routerid",
                Some("virtual_router_id"),
            ),
            (Block::Instance, "notify_masters", Some("notify_master")),
            (Block::Instance, "unicast_peers", Some("unicast_peer")),
            (Block::Instance, "advert_interval", None),
            (Block::Instance, "track_interfaces", Some("track_interface")),
            (Block::Instance, "preemt_delay", Some("preempt_delay")),
            (
                Block::VirtualServer,
                "sorry_server_ip",
                Some("sorry_server"),
            ),
            (
                Block::VirtualServer,
                "persistence_time",
                Some("persistence_timeout"),
            ),
            (Block::VirtualServer, "lb_algorithm", None),
            (
                Block::RealServer,
                "inhibit_on_fail",
                Some("inhibit_on_failure"),
            ),
            (
                Block::Checker,
                "delay_before_retries",
                Some("delay_before_retry"),
            ),
            (Block::Checker, "nb_get_retries", Some("nb_get_retry")),
            (
                Block::Checker,
                "connect_timeout_ms",
                Some("connect_timeout"),
            ),
            (Block::Checker, "misc_script", None),
            // Nothing close: no suggestion rather than a silly one.
            (Block::Top, "hello", None),
            (Block::Instance, "ip", None),
            (Block::Global, "check", None),
            (Block::VirtualServer, "real", None),
            (Block::Instance, "my_custom_setting", None),
        ];
        // Room for every row of the table (collect panics past it).
        let wrong: heapless::Vec<heapless::String<128>, 32> = table
            .iter()
            .filter(|(b, w, want)| suggest(*b, w) != *want)
            .map(|(b, w, want)| {
                let got = suggest(*b, w);
                heapless::format!("{w} in {b:?}: want {want:?}, got {got:?}").unwrap()
            })
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}
