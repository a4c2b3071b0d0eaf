//! The build environment the core asks while it reads keepalived.conf
//! ([`Environment`]): interface ids and primary addresses from
//! [`Interfaces`], and a record of what the core does not keep (instance
//! names, VIP dev/label/scope/prefix/brd, notify scripts, `vrrp_script`
//! command lines and users). Balancing items go to the extensions. No
//! I/O: user names are resolved by the daemon after the build.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use vrlb_core::config::{self, Diagnostic, VrrpInstance, VrrpScript};
use vrlb_core::node::build::{self, Environment};
use vrlb_core::node::{FileId, IfaceId, InstanceId, ScriptId};
use vrlb_core::vrrp::Family;

use super::event_loop::Extension;
use super::garp_pacer::PacerSettings;
use super::interfaces::Interfaces;
use super::mail::{self, AlertSettings, ServerAlert};
use super::notify::NotifyInfo;
use super::routes::RouteInfo;
use super::scripts::{Account, RunAs};
use super::sync_groups::GroupInfo;
use super::track_files::FileInfo;
use super::vmacs::{self, VmacInfo};

/// One VIP line, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipInfo {
    /// The address.
    pub addr: IpAddr,
    /// `/prefix` (default /32 or /128).
    pub prefix_len: u8,
    /// `dev`, else the instance's interface.
    pub dev: String,
    /// `label`.
    pub label: Option<String>,
    /// `scope` as written.
    pub scope: Option<String>,
    /// `brd`.
    pub broadcast: Option<Ipv4Addr>,
}

/// What the daemon keeps about one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    /// `vrrp_instance NAME`.
    pub name: String,
    /// `interface`.
    pub iface: String,
    /// Every VIP, advertised then excluded.
    pub vips: Vec<VipInfo>,
    /// Notify scripts, out of line and only when one is set: most
    /// instances have none, and inline they were 120 of this record's 200
    /// bytes (a 400 KiB table at 1000 instances).
    pub notify: Option<Box<NotifyInfo>>,
    /// `virtual_routes` (a boxed slice: most instances have none).
    pub routes: Box<[RouteInfo]>,
    /// `use_vmac`: the VMAC its VIPs (and adverts) use.
    pub vmac: Option<Box<VmacInfo>>,
}

impl InstanceInfo {
    /// The line for `addr`.
    pub fn vip(&self, addr: IpAddr) -> Option<&VipInfo> {
        self.vips.iter().find(|v| v.addr == addr)
    }
}

/// What the daemon keeps about one tracking script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptInfo {
    /// `vrrp_script NAME`.
    pub name: String,
    /// `script`: the command line.
    pub command: String,
    /// `user USER [GROUP]`, as written.
    pub user: Option<Account>,
    /// Who runs it, resolved after the build (`Ok(None)` until then).
    pub run_as: RunAs,
}

/// A real server's `notify_up` / `notify_down` or a virtual server's
/// `quorum_up` / `quorum_down` (keepalived.conf(5)), owned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpDownScripts {
    /// What they are for, for logs (`real server 192.0.2.1:80`).
    pub name: String,
    /// Run on going up (`notify_up`, `quorum_up`).
    pub up: Option<String>,
    /// Run on going down (`notify_down`, `quorum_down`).
    pub down: Option<String>,
}

impl UpDownScripts {
    /// The command line for `up` (or down), if one is set.
    pub fn command(&self, up: bool) -> Option<&str> {
        if up { &self.up } else { &self.down }.as_deref()
    }
}

/// `USER [GROUP]`, owned.
pub fn account(r: Option<config::RunAs<'_>>) -> Option<Account> {
    r.map(|r| (r.user.to_string(), r.group.map(str::to_string)))
}

/// The environment of one build.
pub struct Env<'a> {
    /// Interfaces, numbered here.
    pub ifaces: &'a mut Interfaces,
    /// Addresses never chosen as a primary address (every VIP).
    pub exclude: &'a [IpAddr],
    /// Extensions that see balancing items.
    pub extensions: &'a mut [Box<dyn Extension>],
    /// Instances the configuration has.
    pub instances: HashMap<InstanceId, InstanceInfo>,
    /// Scripts the configuration has.
    pub scripts: HashMap<ScriptId, ScriptInfo>,
    /// Instances the build removed.
    pub removed: Vec<InstanceId>,
    /// Tracked files (those something tracks).
    pub files: HashMap<FileId, FileInfo>,
    /// Warnings, formatted.
    pub warnings: Vec<String>,
    /// `global_defs { script_user USER [GROUP] }`, as written.
    pub script_user: Option<Account>,
    /// Real servers' `notify_up` / `notify_down`.
    pub server_scripts: HashMap<vrlb_core::node::ServerRef, UpDownScripts>,
    /// Services' `quorum_up` / `quorum_down`.
    pub service_scripts: HashMap<vrlb_core::lb::ServiceId, UpDownScripts>,
    /// `static_routes`.
    pub static_routes: Vec<RouteInfo>,
    /// `vrrp_sync_group`s.
    pub groups: Vec<GroupInfo>,
    /// What e-mail alerts need of the configuration.
    pub alerts: AlertSettings,
    /// How gratuitous ARPs and NAs are spaced.
    pub garp: PacerSettings,
    /// The VMAC of the instance the core reports next.
    pending_vmac: Option<VmacInfo>,
    /// The virtual server whose real servers are being read.
    current_service: ServerAlertOf,
    host_name: String,
}

/// A virtual server as its real servers' alerts need it.
#[derive(Debug, Clone, Default)]
struct ServerAlertOf {
    key: String,
    smtp_alert: Option<bool>,
}

impl<'a> Env<'a> {
    /// An environment over `ifaces`.
    pub fn new(
        ifaces: &'a mut Interfaces,
        exclude: &'a [IpAddr],
        extensions: &'a mut [Box<dyn Extension>],
    ) -> Self {
        Env {
            ifaces,
            exclude,
            extensions,
            instances: HashMap::new(),
            scripts: HashMap::new(),
            removed: Vec::new(),
            files: HashMap::new(),
            warnings: Vec::new(),
            script_user: None,
            server_scripts: HashMap::new(),
            service_scripts: HashMap::new(),
            static_routes: Vec::new(),
            groups: Vec::new(),
            alerts: AlertSettings::default(),
            garp: PacerSettings::default(),
            pending_vmac: None,
            current_service: ServerAlertOf::default(),
            host_name: mail::host_name(),
        }
    }
}

impl Env<'_> {
    /// Numbers the devices of `routes`, so their links' changes are
    /// reported (the kernel drops a route whose device goes down, and the
    /// daemon adds it back when the device comes up).
    fn watch_devices(&mut self, routes: &[config::RouteConf<'_>]) {
        for dev in routes.iter().filter_map(|r| r.dev) {
            self.ifaces.id(dev);
        }
    }
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_string)
}

impl Environment for Env<'_> {
    fn interface(&mut self, name: &str) -> IfaceId {
        self.ifaces.id(name)
    }

    fn primary_address(&mut self, iface: IfaceId, family: Family) -> Option<IpAddr> {
        self.ifaces
            .primary(iface, family == Family::V6, self.exclude)
    }

    fn vmac(&mut self, _id: InstanceId, v: &build::vmac::Vmac<'_>) {
        // Numbered so its disappearance is reported (the daemon makes it
        // again), also when only the VIPs use it (vmac_xmit_base).
        self.ifaces.id(v.name);
        self.pending_vmac = Some(VmacInfo {
            name: v.name.to_string(),
            base: v.base.to_string(),
            mac: v.mac,
            v6: v.family == Family::V6,
        });
    }

    fn instance(&mut self, id: InstanceId, conf: &VrrpInstance<'_>) {
        let iface = conf.interface.unwrap_or_default().to_string();
        let vmac = self.pending_vmac.take();
        let vips = conf
            .vips
            .iter()
            .chain(conf.excluded_vips.iter())
            .map(|v| VipInfo {
                addr: v.addr,
                prefix_len: v
                    .prefix_len
                    .unwrap_or(if v.addr.is_ipv4() { 32 } else { 128 }),
                dev: match (v.dev, &vmac) {
                    (Some(dev), _) => dev.to_string(),
                    (None, Some(m)) if vmacs::carries(m, v.addr) => m.name.clone(),
                    (None, _) => iface.clone(),
                },
                label: owned(v.label),
                scope: owned(v.scope),
                broadcast: match v.broadcast {
                    Some(IpAddr::V4(b)) => Some(b),
                    _ => None,
                },
            })
            .collect();
        self.watch_devices(&conf.virtual_routes);
        if let Some(on) = conf.smtp_alert {
            self.alerts.instances.insert(id, on);
        }
        for e in self.extensions.iter_mut() {
            e.instance(id, conf);
        }
        let notify = NotifyInfo::from(&conf.notify);
        self.instances.insert(
            id,
            InstanceInfo {
                name: conf.name.to_string(),
                iface,
                vips,
                notify: notify.boxed(),
                routes: conf.virtual_routes.iter().map(RouteInfo::from).collect(),
                vmac: vmac.map(Box::new),
            },
        );
    }

    fn script(&mut self, id: ScriptId, conf: &VrrpScript<'_>) {
        self.scripts.insert(
            id,
            ScriptInfo {
                name: conf.name.to_string(),
                command: conf.script.to_string(),
                user: account(conf.user),
                run_as: Ok(None),
            },
        );
    }

    fn process(&mut self, id: vrlb_core::node::ProcessId, conf: &config::TrackProcessConf<'_>) {
        for e in self.extensions.iter_mut() {
            e.process(id, conf);
        }
    }

    fn track_file(&mut self, id: FileId, conf: &config::TrackFileConf<'_>) {
        self.files.insert(id, FileInfo::from(conf));
    }

    fn static_routes(&mut self, routes: &[config::RouteConf<'_>]) {
        self.watch_devices(routes);
        self.static_routes
            .extend(routes.iter().map(RouteInfo::from));
    }

    fn global_defs(&mut self, g: &config::GlobalDefs<'_>) {
        self.garp.global_defs(g);
        self.script_user = account(g.script_user);
        self.alerts.global_defs(g, &self.host_name);
        for e in self.extensions.iter_mut() {
            e.global_defs(g);
        }
    }

    fn garp_group(&mut self, g: &config::GarpGroupConf<'_>) {
        self.garp.garp_group(g);
    }

    fn sync_group(&mut self, conf: &config::SyncGroupConf<'_>) {
        self.groups.push(GroupInfo {
            name: conf.name.to_string(),
            members: conf.members.iter().map(|m| m.name.to_string()).collect(),
            notify: NotifyInfo::from(&conf.notify).boxed(),
            smtp_alert: conf.smtp_alert,
        });
    }

    fn removed_instance(&mut self, id: InstanceId) {
        self.instances.remove(&id);
        self.alerts.instances.remove(&id);
        self.removed.push(id);
    }

    fn virtual_server(
        &mut self,
        services: &[vrlb_core::lb::ServiceId],
        vs: &config::VirtualServer<'_>,
    ) {
        if vs.quorum_up.is_some() || vs.quorum_down.is_some() {
            for id in services {
                self.service_scripts.insert(
                    *id,
                    UpDownScripts {
                        name: format!("virtual_server at line {}", vs.pos.line),
                        up: owned(vs.quorum_up),
                        down: owned(vs.quorum_down),
                    },
                );
            }
        }
        self.current_service = ServerAlertOf {
            key: mail::service_name(&vs.key),
            smtp_alert: vs.smtp_alert,
        };
        for id in services {
            self.alerts.services.insert(
                *id,
                ServerAlert {
                    name: self.current_service.key.clone(),
                    own: vs.smtp_alert,
                    service: None,
                },
            );
        }
        for e in self.extensions.iter_mut() {
            e.virtual_server(services, vs);
        }
    }

    fn real_server(&mut self, server: vrlb_core::node::ServerRef, rs: &config::RealServer<'_>) {
        if rs.notify_up.is_some() || rs.notify_down.is_some() {
            self.server_scripts.insert(
                server,
                UpDownScripts {
                    name: format!(
                        "real server {}",
                        std::net::SocketAddr::new(rs.addr, rs.port)
                    ),
                    up: owned(rs.notify_up),
                    down: owned(rs.notify_down),
                },
            );
        }
        self.alerts.servers.insert(
            server,
            ServerAlert {
                name: mail::server_name(
                    std::net::SocketAddr::new(rs.addr, rs.port),
                    &self.current_service.key,
                ),
                own: rs.smtp_alert,
                service: self.current_service.smtp_alert,
            },
        );
        for e in self.extensions.iter_mut() {
            e.real_server(server, rs);
        }
    }

    fn checker(
        &mut self,
        id: vrlb_core::node::CheckerId,
        server: vrlb_core::node::ServerRef,
        conf: &config::CheckerConf<'_>,
    ) {
        for e in self.extensions.iter_mut() {
            e.checker(id, server, conf);
        }
    }

    fn diagnostic(&mut self, d: &Diagnostic) {
        self.warnings.push(d.to_string());
    }
}

/// Test support: builds `text` into a fresh node and environment (no
/// interfaces, no extensions) and hands both to `f`.
#[cfg(test)]
pub(crate) fn built_for_test<R>(
    text: &str,
    f: impl FnOnce(&crate::node_memory::LinuxNode<'static>, &Env<'_>) -> R,
) -> R {
    use vrlb_core::config::{NoIncludes, Options};
    use vrlb_core::node::build;
    let opts = Options::default();
    let counts = build::count("t.conf", text, &opts, &mut NoIncludes).unwrap();
    let memory = Box::leak(Box::new(crate::node_memory::NodeMemory::for_counts(
        &counts, 0, 16,
    )));
    let mut node = memory.node(vrlb_core::time::Instant::ZERO, 1).unwrap();
    let mut ifaces = Interfaces::default();
    let mut exts: Vec<Box<dyn Extension>> = Vec::new();
    let mut env = Env::new(&mut ifaces, &[], &mut exts);
    build::build(&mut node, &mut env, "t.conf", text, &opts, &mut NoIncludes).unwrap();
    f(&node, &env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_notify_scripts_are_kept_per_server_and_service() {
        let text = "virtual_server 192.0.2.100 80 {
  lb_kind DR
  quorum_up \"/etc/q.sh up\"
  quorum_down /etc/q-down.sh
  real_server 192.0.2.1 80 {
    notify_up /etc/up.sh
    notify_down \"/etc/down.sh 'a b'\"
    TCP_CHECK {
    }
  }
  real_server 192.0.2.2 80 {
    TCP_CHECK {
    }
  }
}
";
        built_for_test(text, |node, env| {
            let (rs1, _) = node
                .servers()
                .find(|(_, s)| s.config.port == 80 && s.config.addr.to_string() == "192.0.2.1")
                .unwrap();
            let s = &env.server_scripts[&rs1];
            assert_eq!(s.name, "real server 192.0.2.1:80");
            assert_eq!(s.command(true), Some("/etc/up.sh"));
            assert_eq!(s.command(false), Some("/etc/down.sh 'a b'"));
            assert_eq!(env.server_scripts.len(), 1, "the other server has none");
            let service = node.servers().next().unwrap().1.service;
            let q = &env.service_scripts[&service];
            assert_eq!(
                (q.command(true), q.command(false)),
                (Some("/etc/q.sh up"), Some("/etc/q-down.sh"))
            );
        });
    }

    #[test]
    fn notify_scripts_are_kept_out_of_line_and_only_when_set() {
        let text = "vrrp_instance A {
  interface eth0
  virtual_router_id 1
  virtual_ipaddress {
    192.0.2.10
  }
  notify_master \"/etc/m.sh a\"
  notify /etc/any.sh
}
vrrp_instance B {
  interface eth0
  virtual_router_id 2
  virtual_ipaddress {
    192.0.2.11
  }
}
";
        built_for_test(text, |_, env| {
            let by_name = |n: &str| env.instances.values().find(|i| i.name == n).unwrap();
            let a = by_name("A").notify.as_deref().unwrap();
            assert_eq!(a.master.as_deref(), Some("/etc/m.sh a"));
            assert_eq!(a.any.as_deref(), Some("/etc/any.sh"));
            assert_eq!((&a.backup, &a.fault, &a.stop), (&None, &None, &None));
            assert!(by_name("B").notify.is_none(), "no scripts, no record");
            // Name, interface and VIP list, one pointer each for the
            // scripts and the VMAC, and a (pointer, length) for the routes.
            assert_eq!(
                std::mem::size_of::<InstanceInfo>(),
                3 * std::mem::size_of::<String>() + 4 * std::mem::size_of::<usize>()
            );
        });
    }
}
