//! `lvs_sync_daemon` into the node's connection sync: reads the global
//! keyword (or the deprecated per-instance `lvs_sync_daemon_interface`),
//! and once every instance exists, checks the instance it names and
//! starts (or changes, or stops) sync. Never parses text itself.

use super::{Builder, Environment, name_key, node_error};
use crate::config::{Diagnostic, GlobalDefs, Kind, Snippet, VrrpInstance};
use crate::node::{Node, SyncSettings};
use crate::sync::{MESSAGE_BYTES_MAX, MESSAGE_BYTES_MIN};
use crate::vrrp::VipStore;

/// What the configuration asked for, waiting for its instance to exist.
pub(super) struct PendingSync {
    settings: SyncSettings,
    /// The named instance, with the line that names it.
    instance: Option<(u64, Snippet)>,
    /// `id` was given (else keepalived uses the instance's VRID).
    sync_id_set: bool,
    line: u32,
}

impl<E: Environment, S: VipStore> Builder<'_, '_, E, S> {
    /// `global_defs { lvs_sync_daemon ... }`.
    pub(super) fn sync_global(&mut self, g: &GlobalDefs<'_>) {
        let Some(if_name) = g.lvs_sync_daemon_interface else {
            return;
        };
        if self.sync.is_some() {
            // keepalived keeps the first and ignores the rest.
            self.warn(
                g.pos.line,
                Kind::Assumed {
                    keyword: Snippet::new("lvs_sync_daemon"),
                    note: "given more than once: the first one counts",
                },
            );
            return;
        }
        let iface = self.env.interface(if_name);
        let instance = g
            .lvs_sync_daemon_instance
            .map(|name| (name_key(name), Snippet::new(name)));
        let mut settings = SyncSettings::new(iface, instance.as_ref().map(|i| i.0));
        if let Some(id) = g.lvs_sync_daemon_options.sync_id {
            settings.config.sync_id = id;
        }
        if let Some(maxlen) = g.lvs_sync_daemon_options.maxlen {
            let clamped = usize::from(maxlen).clamp(MESSAGE_BYTES_MIN, MESSAGE_BYTES_MAX);
            if clamped != usize::from(maxlen) {
                self.warn(
                    g.pos.line,
                    Kind::Assumed {
                        keyword: Snippet::new("lvs_sync_daemon maxlen"),
                        note: "vrlb sends sync messages of 84..1472 bytes: clamped to that",
                    },
                );
            }
            settings.config.max_message_bytes = clamped as u16;
        }
        if let Some(port) = g.lvs_sync_daemon_options.port {
            settings.port = port;
        }
        if let Some(ttl) = g.lvs_sync_daemon_options.ttl {
            settings.ttl = ttl;
        }
        if let Some(group) = g.lvs_sync_daemon_options.group {
            settings.group = group;
        }
        self.sync = Some(PendingSync {
            settings,
            instance,
            sync_id_set: g.lvs_sync_daemon_options.sync_id.is_some(),
            line: g.pos.line,
        });
    }

    /// A `vrrp_instance` with the deprecated `lvs_sync_daemon_interface`
    /// (keepalived's vrrp_parser.c: it sets the global daemon to this
    /// instance unless one is already set).
    pub(super) fn sync_instance(&mut self, i: &VrrpInstance<'_>) {
        let Some(if_name) = i.lvs_sync_daemon_interface else {
            return;
        };
        self.warn(
            i.pos.line,
            Kind::Deprecated {
                keyword: Snippet::new("lvs_sync_daemon_interface"),
                instead: "global_defs { lvs_sync_daemon INTERFACE INSTANCE }",
            },
        );
        if self.sync.is_some() {
            return;
        }
        let iface = self.env.interface(if_name);
        let key = name_key(i.name);
        self.sync = Some(PendingSync {
            settings: SyncSettings::new(iface, Some(key)),
            instance: Some((key, Snippet::new(i.name))),
            sync_id_set: false,
            line: i.pos.line,
        });
    }

    fn warn(&mut self, line: u32, kind: Kind) {
        self.env
            .diagnostic(&Diagnostic::new(self.file, line, 1, kind));
    }
}

/// Starts, changes or stops the node's sync as the configuration says. A
/// node without sync storage leaves sync to its driver (the Linux daemon
/// syncs in its data plane) and ignores the keyword.
pub(super) fn apply<E: Environment, S: VipStore>(
    node: &mut Node<'_, S>,
    _env: &mut E,
    file: &str,
    pending: Option<PendingSync>,
) -> Result<(), Diagnostic> {
    let Some(mut p) = pending else {
        node.clear_sync();
        return Ok(());
    };
    if let Some((key, name)) = &p.instance {
        let Some(id) = node.instance_by_key(*key) else {
            return Err(Diagnostic::new(
                file,
                p.line,
                1,
                Kind::Undefined {
                    what: "vrrp_instance",
                    name: name.clone(),
                },
            ));
        };
        // keepalived: without `id`, the sync id is the instance's VRID.
        if !p.sync_id_set
            && let Some(i) = node.instance(id)
        {
            p.settings.config.sync_id = i.config().vrid;
        }
    }
    if !node.has_sync_storage() {
        debug!("lvs_sync_daemon: this node has no sync storage; the driver syncs");
        return Ok(());
    }
    node.set_sync(p.settings)
        .map_err(|e| Diagnostic::new(file, p.line, 1, node_error(e)))
}
