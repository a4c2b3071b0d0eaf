//! E-mail alerts, as keepalived's smtp.c sends them: on a VRRP instance's
//! or sync group's change of state, on a real server going up or down and
//! on a virtual server gaining or losing its quorum, to every
//! `notification_email` address through `smtp_server`, for the instances
//! and real servers whose `smtp_alert` (or its `global_defs` default) is
//! on. keepalived's subjects and bodies, `[router_id]` first.
//!
//! Sending never blocks the event loop: alerts go through a bounded queue
//! to a thread of their own, which resolves the server and speaks SMTP
//! with lettre. A full queue drops the alert, counted and logged; a
//! failed send is logged with the reason.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::extension::ClientId;
use lettre::{Message, SmtpTransport, Transport};
use log::{info, warn};
use vrlb_core::config::{GlobalDefs, MailDefs, VsKey};
use vrlb_core::lb::ServiceId;
use vrlb_core::node::{InstanceId, ServerRef};
use vrlb_core::vrrp::State;

use super::sync_groups::GroupInfo;

/// Alerts waiting to be sent; more are dropped (and counted).
pub const QUEUE: usize = 64;
/// Why alerts that are on go nowhere.
const NO_SERVER: &str = "smtp_alert is on but smtp_server is not set: no e-mail alert is sent";
/// keepalived's `smtp_connect_timeout` default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how alerts are sent: `global_defs`, checked and owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConf {
    /// `smtp_server`, a name or an address.
    pub server: String,
    /// Its port (default 25).
    pub port: u16,
    /// `notification_email_from` (default `keepalived@HOST`).
    pub from: Mailbox,
    /// `notification_email`.
    pub to: Vec<Mailbox>,
    /// `smtp_helo_name` (default: the host name).
    pub helo_name: String,
    /// `smtp_connect_timeout`: bounds each step of the dialogue.
    pub timeout: Duration,
    /// `router_id` (default: the host name), first in every subject.
    pub router_id: String,
}

impl MailConf {
    /// The settings of `g`, if alerts can be sent; `host` is the host
    /// name the defaults use. Why not, or which address was left out, is
    /// pushed onto `warnings` (worth saying only if some alert is on:
    /// keepalived sends none otherwise).
    pub fn from_defs(
        g: &MailDefs<'_>,
        router_id: Option<&str>,
        host: &str,
        warnings: &mut Vec<String>,
    ) -> Option<MailConf> {
        let mut to = Vec::new();
        for addr in &g.to {
            match addr.parse::<Mailbox>() {
                Ok(m) => to.push(m),
                Err(e) => warnings.push(format!(
                    "notification_email '{addr}': {e}: no alert is sent to it"
                )),
            }
        }
        let from = g
            .from
            .map_or_else(|| format!("keepalived@{host}"), str::to_string);
        let from = match from.parse::<Mailbox>() {
            Ok(m) => m,
            Err(e) => {
                warnings.push(format!(
                    "notification_email_from '{from}': {e}: no e-mail alert is sent"
                ));
                return None;
            }
        };
        let Some(server) = g.server else {
            warnings.push(NO_SERVER.into());
            return None;
        };
        if to.is_empty() {
            warnings.push(
                "smtp_alert is on but notification_email has no address: no e-mail alert is sent"
                    .into(),
            );
            return None;
        }
        Some(MailConf {
            server: server.to_string(),
            port: g.port.unwrap_or(25),
            from,
            to,
            helo_name: g.helo_name.unwrap_or(host).to_string(),
            timeout: g
                .connect_timeout
                .map_or(DEFAULT_TIMEOUT, |d| Duration::from_micros(d.as_micros())),
            router_id: router_id.unwrap_or(host).to_string(),
        })
    }
}

/// What decides a real server's (or a virtual server's quorum) alerts,
/// before `global_defs`' defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAlert {
    /// As alerts name it (`Realserver ... of virtual server ...`).
    pub name: String,
    /// The real server's `smtp_alert`.
    pub own: Option<bool>,
    /// Its virtual server's.
    pub service: Option<bool>,
}

/// What one build gathers for the alerts: `global_defs`' settings, and
/// the `smtp_alert` each instance and real server writes.
#[derive(Debug, Default)]
pub struct AlertSettings {
    /// Where and how, if alerts could be sent.
    pub conf: Option<MailConf>,
    /// Why not, or to whom not: worth saying only if some alert is on.
    pub warnings: Vec<String>,
    /// `global_defs`' `smtp_alert*` and `no_email_faults` (no addresses).
    pub policy: MailDefs<'static>,
    /// Instances' `smtp_alert`, where one is written (most have none).
    pub instances: HashMap<InstanceId, bool>,
    /// Every real server's alert name and `smtp_alert`, with its virtual
    /// server's.
    pub servers: HashMap<ServerRef, ServerAlert>,
    /// Every service's alert name and its virtual server's `smtp_alert`
    /// (as `own`).
    pub services: HashMap<ServiceId, ServerAlert>,
}

impl AlertSettings {
    /// Takes `g`'s mail settings; `host` is the host name defaults use.
    pub fn global_defs(&mut self, g: &GlobalDefs<'_>, host: &str) {
        self.conf = MailConf::from_defs(&g.mail, g.router_id, host, &mut self.warnings);
        self.policy = g.mail.switches();
    }

    /// Why alerts that are on would not all be sent: what reading
    /// `global_defs` found, or that there was no `global_defs` to name a
    /// server.
    pub fn unsendable(&self) -> Vec<String> {
        if self.conf.is_none() && self.warnings.is_empty() {
            return vec![NO_SERVER.to_string()];
        }
        self.warnings.clone()
    }
}

/// One alert: keepalived's subject (without the `[router_id]` prefix)
/// and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The subject after `[router_id] `.
    pub subject: String,
    /// The body.
    pub body: &'static str,
}

/// The end of keepalived's subject for an instance or group entering
/// `to` (INIT after a start is a stop).
fn entering(to: State) -> &'static str {
    match to {
        State::Master => "Entering MASTER state",
        State::Backup => "Entering BACKUP state",
        State::Fault => "Entering FAULT state",
        State::Init => "Stopping",
    }
}

/// keepalived's alert for instance `name` entering `to` (vrrp_notify.c).
pub fn vrrp_alert(name: &str, to: State) -> Alert {
    Alert {
        subject: format!("VRRP Instance {name} - {}", entering(to)),
        body: match to {
            State::Master => "=> VRRP Instance is now owning VRRP VIPs <=",
            State::Backup | State::Fault => "=> VRRP Instance is no longer owning VRRP VIPs <=",
            State::Init => "=> VRRP Instance stopping <=",
        },
    }
}

/// keepalived's alert for sync group `name` entering `to`
/// (vrrp_notify.c `vrrp_sync_smtp_notifier`).
pub fn group_alert(name: &str, to: State) -> Alert {
    Alert {
        subject: format!("VRRP Group {name} - {}", entering(to)),
        body: match to {
            State::Master => "=> All VRRP group instances are now in MASTER state <=",
            State::Backup => "=> All VRRP group instances are now in BACKUP state <=",
            State::Fault => "=> All VRRP group instances are now in FAULT state <=",
            State::Init => "=> All VRRP group instances are now stopping <=",
        },
    }
}

/// keepalived's alert for a real server going up or down (smtp.c
/// `SMTP_MSG_RS`); `server` names it, as [`server_name`] does.
pub fn server_alert(server: &str, up: bool) -> Alert {
    Alert {
        subject: format!("{server} - {}", if up { "UP" } else { "DOWN" }),
        body: if up {
            "=> CHECK succeed on service <="
        } else {
            "=> CHECK failed on service <="
        },
    }
}

/// A virtual server as alerts name it: `192.0.2.1:80`, `FWM 7`,
/// `group NAME`.
pub fn service_name(vs: &VsKey<'_>) -> String {
    match vs {
        VsKey::Addr(ip, port) => SocketAddr::new(*ip, *port).to_string(),
        VsKey::Fwmark(mark) => format!("FWM {mark}"),
        VsKey::Group(name) => format!("group {name}"),
    }
}

/// keepalived's alert for a virtual server's quorum (ipwrapper.c
/// `do_vs_notifies`, without its weight figures); `name` as
/// [`service_name`] gives it.
pub fn quorum_alert(name: &str, up: bool, stopping: bool) -> Alert {
    Alert {
        subject: format!("Virtualserver {name} - {}", if up { "UP" } else { "DOWN" }),
        body: match (stopping, up) {
            (true, _) => "=> Shutting down <=",
            (false, true) => "=> Gained quorum <=",
            (false, false) => "=> Lost quorum <=",
        },
    }
}

/// `Realserver 192.0.2.10:80 of virtual server 192.0.2.1:80`.
pub fn server_name(rs: SocketAddr, service: &str) -> String {
    format!("Realserver {rs} of virtual server {service}")
}

/// The host name the defaults use (`localhost` if it cannot be read).
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether an instance entering `to` is worth an alert: keepalived sends
/// one per state (never twice the same in a row), none for INIT at
/// start-up, and none for FAULT under `no_email_faults`.
pub fn worth_sending(last: Option<State>, to: State, no_email_faults: bool) -> bool {
    last != Some(to)
        && !(to == State::Fault && no_email_faults)
        && !(to == State::Init && last.is_none())
}

/// The alert thread and its queue.
pub struct Mailer {
    queue: SyncSender<Alert>,
    /// Disconnected when the thread ends.
    ended: mpsc::Receiver<()>,
    conf: MailConf,
    dropped: u64,
}

impl Mailer {
    /// Starts the thread that sends with `conf`.
    pub fn start(conf: MailConf) -> std::io::Result<Mailer> {
        let (queue, alerts) = mpsc::sync_channel::<Alert>(QUEUE);
        let (alive, ended) = mpsc::channel::<()>();
        let worker = conf.clone();
        std::thread::Builder::new()
            .name("vrlb-mail".into())
            .spawn(move || {
                let _alive = alive;
                // Ends when the daemon drops the Mailer (a reload with
                // other settings, or exit), after what is queued.
                for alert in alerts {
                    let subject = format!("[{}] {}", worker.router_id, alert.subject);
                    match send(&worker, &subject, alert.body) {
                        Ok(()) => info!("e-mail alert sent: {subject}"),
                        Err(e) => warn!(
                            "e-mail alert '{subject}' not sent through {}:{}: {e}",
                            worker.server, worker.port
                        ),
                    }
                }
            })?;
        Ok(Mailer {
            queue,
            ended,
            conf,
            dropped: 0,
        })
    }

    /// Lets the thread send what is queued, waiting at most `within`
    /// (at exit: the last alerts say the instances stop).
    pub fn finish(self, within: Duration) {
        let Mailer { queue, ended, .. } = self;
        drop(queue);
        if let Err(mpsc::RecvTimeoutError::Timeout) = ended.recv_timeout(within) {
            warn!("e-mail alerts still being sent after {within:?}: given up");
        }
    }

    /// Queues `alert`; when the queue is full it is dropped, and said so.
    pub fn send(&mut self, alert: Alert) {
        match self.queue.try_send(alert) {
            Ok(()) => {}
            Err(TrySendError::Full(a)) => {
                self.dropped += 1;
                warn!(
                    "e-mail alert '{}' dropped: {QUEUE} are waiting for {} ({} dropped so far)",
                    a.subject, self.conf.server, self.dropped
                );
            }
            Err(TrySendError::Disconnected(a)) => {
                warn!(
                    "e-mail alert '{}' dropped: the mail thread has ended",
                    a.subject
                )
            }
        }
    }
}

/// The names of those of `alerts` whose alerts are on.
fn switched_on<K: std::hash::Hash + Eq>(
    policy: &MailDefs<'_>,
    alerts: HashMap<K, ServerAlert>,
) -> HashMap<K, String> {
    alerts
        .into_iter()
        .filter(|(_, a)| policy.checker_alerts(a.own, a.service))
        .map(|(k, a)| (k, a.name))
        .collect()
}

/// One message, on a connection of its own (keepalived's way: alerts are
/// rare, and a connection kept open would time out between them).
fn send(conf: &MailConf, subject: &str, body: &str) -> Result<(), String> {
    let mut message = Message::builder().from(conf.from.clone()).subject(subject);
    for to in &conf.to {
        message = message.to(to.clone());
    }
    let message = message
        .body(format!("{body}\r\n"))
        .map_err(|e| e.to_string())?;
    let transport = SmtpTransport::builder_dangerous(&conf.server)
        .port(conf.port)
        .timeout(Some(conf.timeout))
        .hello_name(ClientId::Domain(conf.helo_name.clone()))
        .build();
    transport.send(&message).map_err(|e| e.to_string())?;
    Ok(())
}

/// Who gets alerts, and the mailer, for one configuration.
pub struct Alerts {
    mailer: Mailer,
    no_email_faults: bool,
    /// Instances whose alerts are on, with the last state mailed.
    instances: HashMap<InstanceId, Option<State>>,
    /// Sync groups whose alerts are on, by name, with the last state
    /// mailed.
    groups: HashMap<String, Option<State>>,
    /// Real servers whose alerts are on, by name.
    servers: HashMap<ServerRef, String>,
    /// Services whose quorum alerts are on, by name.
    services: HashMap<ServiceId, String>,
}

impl Alerts {
    /// The alerts of a new configuration: what `settings` turn on, by
    /// keepalived's rules ([`MailDefs::vrrp_alerts`],
    /// [`MailDefs::checker_alerts`]), of `instances`, `groups`, the real
    /// servers and the virtual servers. Instances and groups that stay
    /// keep the last state mailed; the old mailer is kept if its settings
    /// are the same. Why alerts that are on cannot be sent is logged
    /// (unless `quiet`).
    pub fn rebuild(
        old: Option<Alerts>,
        settings: AlertSettings,
        instances: impl Iterator<Item = InstanceId>,
        groups: &[GroupInfo],
        quiet: bool,
    ) -> Option<Alerts> {
        let unsendable = settings.unsendable();
        let policy = &settings.policy;
        let mut instances: HashMap<InstanceId, Option<State>> = instances
            .filter(|id| policy.vrrp_alerts(settings.instances.get(id).copied()))
            .map(|id| (id, None))
            .collect();
        let mut groups: HashMap<String, Option<State>> = groups
            .iter()
            .filter(|g| policy.vrrp_alerts(g.smtp_alert))
            .map(|g| (g.name.clone(), None))
            .collect();
        let servers = switched_on(policy, settings.servers);
        let services = switched_on(policy, settings.services);
        if instances.is_empty() && groups.is_empty() && servers.is_empty() && services.is_empty() {
            return None;
        }
        for w in unsendable.iter().filter(|_| !quiet) {
            warn!("{w}");
        }
        let no_email_faults = policy.no_email_faults;
        let conf = settings.conf?;
        if let Some(old) = &old {
            for (id, last) in instances.iter_mut() {
                *last = old.instances.get(id).copied().flatten();
            }
            for (name, last) in groups.iter_mut() {
                *last = old.groups.get(name).copied().flatten();
            }
        }
        let mailer = match old {
            Some(old) if old.mailer.conf == conf => old.mailer,
            _ => match Mailer::start(conf) {
                Ok(m) => m,
                Err(e) => {
                    warn!("e-mail alerts: cannot start their thread: {e}");
                    return None;
                }
            },
        };
        info!(
            "e-mail alerts for {} instance(s), {} sync group(s), {} real server(s) and {} service(s) to {} address(es) through {}:{}",
            instances.len(),
            groups.len(),
            servers.len(),
            services.len(),
            mailer.conf.to.len(),
            mailer.conf.server,
            mailer.conf.port
        );
        Some(Alerts {
            mailer,
            no_email_faults,
            instances,
            groups,
            servers,
            services,
        })
    }

    /// Sends what is queued, waiting at most `within`.
    pub fn finish(self, within: Duration) {
        self.mailer.finish(within);
    }

    /// Instance `id` (`name`) entered `to`.
    pub fn instance_changed(&mut self, id: InstanceId, name: &str, to: State) {
        let Some(last) = self.instances.get_mut(&id) else {
            return;
        };
        if worth_sending(*last, to, self.no_email_faults) {
            *last = Some(to);
            self.mailer.send(vrrp_alert(name, to));
        }
    }

    /// Sync group `name` entered `to`.
    pub fn group_changed(&mut self, name: &str, to: State) {
        let Some(last) = self.groups.get_mut(name) else {
            return;
        };
        if worth_sending(*last, to, self.no_email_faults) {
            *last = Some(to);
            self.mailer.send(group_alert(name, to));
        }
    }

    /// Real server `server` went up or down.
    pub fn server_changed(&mut self, server: ServerRef, up: bool) {
        if let Some(name) = self.servers.get(&server) {
            let alert = server_alert(name, up);
            self.mailer.send(alert);
        }
    }

    /// Service `service` gained or lost its quorum (or, `stopping`, is
    /// shut down).
    pub fn quorum_changed(&mut self, service: ServiceId, up: bool, stopping: bool) {
        if let Some(name) = self.services.get(&service) {
            let alert = quorum_alert(name, up, stopping);
            self.mailer.send(alert);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrlb_core::time;

    #[test]
    fn subjects_and_bodies_are_keepalived_s() {
        let a = vrrp_alert("VI_1", State::Master);
        assert_eq!(a.subject, "VRRP Instance VI_1 - Entering MASTER state");
        assert_eq!(a.body, "=> VRRP Instance is now owning VRRP VIPs <=");
        assert_eq!(
            vrrp_alert("VI_1", State::Init).subject,
            "VRRP Instance VI_1 - Stopping"
        );
        let g = group_alert("G1", State::Fault);
        assert_eq!(g.subject, "VRRP Group G1 - Entering FAULT state");
        assert_eq!(
            g.body,
            "=> All VRRP group instances are now in FAULT state <="
        );
        let vs = service_name(&VsKey::Addr("192.0.2.1".parse().unwrap(), 80));
        let name = server_name("192.0.2.10:80".parse().unwrap(), &vs);
        let q = quorum_alert(&vs, false, false);
        assert_eq!(
            (q.subject.as_str(), q.body),
            ("Virtualserver 192.0.2.1:80 - DOWN", "=> Lost quorum <=")
        );
        assert_eq!(quorum_alert(&vs, false, true).body, "=> Shutting down <=");
        assert_eq!(
            server_alert(&name, false).subject,
            "Realserver 192.0.2.10:80 of virtual server 192.0.2.1:80 - DOWN"
        );
        assert_eq!(
            server_alert(&name, true).body,
            "=> CHECK succeed on service <="
        );
    }

    #[test]
    fn a_state_is_mailed_once_and_faults_not_under_no_email_faults() {
        assert!(worth_sending(None, State::Backup, false));
        assert!(!worth_sending(Some(State::Backup), State::Backup, false));
        assert!(worth_sending(Some(State::Backup), State::Master, false));
        assert!(worth_sending(Some(State::Master), State::Fault, false));
        assert!(!worth_sending(Some(State::Master), State::Fault, true));
        // Stopping is mailed after a state was, not for a start-up INIT.
        assert!(!worth_sending(None, State::Init, false));
        assert!(worth_sending(Some(State::Master), State::Init, false));
    }

    fn defs() -> MailDefs<'static> {
        let mut g = MailDefs::default();
        g.to.push("ops@example.com").unwrap();
        g.to.push("\"On call\" <oncall@example.com>").unwrap();
        g.server = Some("192.0.2.25");
        g
    }

    #[test]
    fn settings_default_to_keepalived_s_and_bad_addresses_are_named() {
        let mut w = Vec::new();
        let c = MailConf::from_defs(&defs(), None, "lb1", &mut w).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!((c.port, c.timeout), (25, DEFAULT_TIMEOUT));
        assert_eq!(c.from.to_string(), "keepalived@lb1");
        assert_eq!((c.helo_name.as_str(), c.router_id.as_str()), ("lb1", "lb1"));
        assert_eq!(c.to[1].name.as_deref(), Some("On call"));

        let mut g = defs();
        g.to.push("not an address").unwrap();
        g.port = Some(2525);
        g.connect_timeout = Some(time::Duration::from_secs(5));
        let c = MailConf::from_defs(&g, Some("LVS_DEVEL"), "lb1", &mut w).unwrap();
        assert_eq!(
            (c.port, c.timeout, c.to.len()),
            (2525, Duration::from_secs(5), 2)
        );
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("notification_email 'not an address': "),
            "{w:?}"
        );

        let mut w = Vec::new();
        g.server = None;
        assert!(MailConf::from_defs(&g, None, "lb1", &mut w).is_none());
        assert!(w[1].contains("smtp_server is not set"), "{w:?}");
    }
}

#[cfg(test)]
mod sending {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use super::*;

    /// Takes one SMTP session on `listener`; returns what the client said.
    fn one_session(listener: TcpListener) -> std::thread::JoinHandle<Vec<String>> {
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut out = stream.try_clone().unwrap();
            let mut input = BufReader::new(stream);
            let mut said = Vec::new();
            out.write_all(b"220 sink.example\r\n").unwrap();
            let mut in_data = false;
            let mut line = String::new();
            while input.read_line(&mut line).unwrap() > 0 {
                let l = line.trim_end().to_string();
                line.clear();
                let reply: &[u8] = if in_data {
                    if l == "." {
                        in_data = false;
                        b"250 queued\r\n"
                    } else {
                        said.push(l);
                        continue;
                    }
                } else if l == "DATA" {
                    in_data = true;
                    b"354 go on\r\n"
                } else if l == "QUIT" {
                    said.push(l);
                    out.write_all(b"221 bye\r\n").unwrap();
                    break;
                } else {
                    b"250 ok\r\n"
                };
                if !in_data || l == "DATA" {
                    said.push(l);
                }
                out.write_all(reply).unwrap();
            }
            said
        })
    }

    fn conf(port: u16) -> MailConf {
        MailConf {
            server: "127.0.0.1".into(),
            port,
            from: "vrlb@example.com".parse().unwrap(),
            to: vec![
                "ops@example.com".parse().unwrap(),
                "On call <oncall@example.com>".parse().unwrap(),
            ],
            helo_name: "lb1.example.com".into(),
            timeout: Duration::from_secs(5),
            router_id: "LB1".into(),
        }
    }

    #[test]
    fn an_alert_goes_to_every_recipient_with_keepalived_s_subject() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let session = one_session(listener);
        let mut mailer = Mailer::start(conf(port)).unwrap();
        mailer.send(vrrp_alert("VI_1", State::Master));
        mailer.finish(Duration::from_secs(10));
        let said = session.join().unwrap();
        let has = |w: &str| said.iter().any(|l| l == w);
        assert!(has("EHLO lb1.example.com"), "{said:?}");
        assert!(has("MAIL FROM:<vrlb@example.com>"), "{said:?}");
        assert!(has("RCPT TO:<ops@example.com>"), "{said:?}");
        assert!(has("RCPT TO:<oncall@example.com>"), "{said:?}");
        assert!(
            has("Subject: [LB1] VRRP Instance VI_1 - Entering MASTER state"),
            "{said:?}"
        );
        assert!(
            has("=> VRRP Instance is now owning VRRP VIPs <="),
            "{said:?}"
        );
        assert_eq!(said.last().map(String::as_str), Some("QUIT"));
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_an_unreachable_server_is_no_hang() {
        // Accepts (the backlog) and never greets: the first send waits
        // out its timeout while the rest fill the queue.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = conf(silent.local_addr().unwrap().port());
        c.timeout = Duration::from_millis(300);
        let mut mailer = Mailer::start(c).unwrap();
        for _ in 0..QUEUE + 10 {
            mailer.send(vrrp_alert("VI_1", State::Backup));
        }
        assert!(mailer.dropped >= 9, "{}", mailer.dropped);
        let started = std::time::Instant::now();
        mailer.finish(Duration::from_millis(500));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}

#[cfg(test)]
mod reloading {
    use std::net::TcpListener;

    use super::*;

    /// Settings with alerts on for every instance, sending to `port`.
    fn settings(port: u16) -> AlertSettings {
        AlertSettings {
            conf: Some(MailConf {
                server: "127.0.0.1".into(),
                port,
                from: "vrlb@example.com".parse().unwrap(),
                to: vec!["ops@example.com".parse().unwrap()],
                helo_name: "lb1.example.com".into(),
                timeout: Duration::from_millis(200),
                router_id: "LB1".into(),
            }),
            policy: MailDefs {
                alert: Some(true),
                ..MailDefs::default()
            },
            ..AlertSettings::default()
        }
    }

    #[test]
    fn a_reload_keeps_the_last_state_mailed_even_with_other_settings() {
        // Nothing listens: each send fails at once, which is logged.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let id = InstanceId(3);
        let mut a = Alerts::rebuild(None, settings(closed.port()), [id].into_iter(), &[], true)
            .expect("alerts on");
        a.instance_changed(id, "VI_1", State::Master);
        let other = Alerts::rebuild(
            Some(a),
            settings(closed.port() ^ 1),
            [id, InstanceId(4)].into_iter(),
            &[],
            true,
        )
        .unwrap();
        assert_eq!(
            other.instances[&id],
            Some(State::Master),
            "no second MASTER"
        );
        assert_eq!(other.instances[&InstanceId(4)], None);
        // Nothing on: no alerts, no thread.
        let mut off = settings(closed.port());
        off.policy = MailDefs::default();
        assert!(Alerts::rebuild(Some(other), off, [id].into_iter(), &[], true).is_none());
    }

    #[test]
    fn alerts_on_without_a_global_defs_say_why_none_is_sent() {
        let mut s = AlertSettings::default();
        assert_eq!(s.unsendable(), [NO_SERVER]);
        s.warnings.push("notification_email 'x': bad".into());
        assert_eq!(s.unsendable(), ["notification_email 'x': bad"]);
    }
}
