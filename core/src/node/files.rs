//! The node's tracked files (`track_file`): which exist, by key, and the
//! last value the driver read from each. A value goes to every VRRP
//! instance tracking the file ([`vrrp::Input::TrackValue`]) and, with the
//! balancer, to every real server's `FILE_CHECK` on it. The driver reads
//! the files (at start and when they change) and reports with
//! [`Input::TrackFile`](super::Input::TrackFile); what the value means is
//! [`crate::track_file::Effect`].

use super::{Node, NodeError, SCRIPT_TRACK_BASE, ScriptEntry, Tracker};
use crate::vrrp::{self, TrackId, VipStore};

/// Most `track_file` blocks a configuration may track.
pub const MAX_TRACK_FILES: usize = 32;

/// A tracked file of this node: like scripts and processes it lives in a
/// tracker slot ([`super::ScriptSlot`]), whose number it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FileId(pub u16);

impl FileId {
    /// The id an instance's config uses to track this file.
    pub const fn track_id(self) -> TrackId {
        TrackId(SCRIPT_TRACK_BASE | self.0)
    }
}

impl<S: VipStore> Node<'_, S> {
    /// The tracked file with `key`, added (value 0) if new. Its value
    /// survives a reload that keeps it.
    pub fn set_track_file(&mut self, key: u64) -> Result<FileId, NodeError> {
        if let Some(id) = self.track_file_by_key(key) {
            return Ok(id);
        }
        let index = self.add_tracker(Tracker::File { value: 0 }, key, "track_file")?;
        Ok(FileId(index))
    }

    /// Removes a tracked file (nothing may track it any more).
    pub fn remove_track_file(&mut self, id: FileId) -> Result<(), NodeError> {
        let slot = self
            .scripts
            .get_mut(usize::from(id.0))
            .filter(|s| {
                s.entry
                    .as_ref()
                    .is_some_and(|e| matches!(e.tracker, Tracker::File { .. }))
            })
            .ok_or(NodeError::NoSuch("track_file"))?;
        slot.entry = None;
        self.prune_timers();
        Ok(())
    }

    /// The tracked file added with `key`.
    pub fn track_file_by_key(&self, key: u64) -> Option<FileId> {
        self.track_files().find(|f| f.1 == key).map(|f| f.0)
    }

    /// Every tracked file, with its key.
    pub fn track_files(&self) -> impl Iterator<Item = (FileId, u64)> + '_ {
        self.scripts
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.entry.as_ref()? {
                ScriptEntry {
                    tracker: Tracker::File { .. },
                    key,
                    ..
                } => Some((FileId(i as u16), *key)),
                _ => None,
            })
    }

    /// A tracked file's last value.
    pub fn track_file_value(&self, id: FileId) -> Option<i32> {
        match self.scripts.get(usize::from(id.0))?.entry.as_ref()?.tracker {
            Tracker::File { value } => Some(value),
            _ => None,
        }
    }

    /// `Input::TrackFile`: records the value and hands it to every tracker.
    pub(super) fn track_file_input(&mut self, file: FileId, value: i32) {
        let Some(Tracker::File { value: held }) = self
            .scripts
            .get_mut(usize::from(file.0))
            .and_then(|s| s.entry.as_mut())
            .map(|e| &mut e.tracker)
        else {
            self.stats.results_unknown_file = self.stats.results_unknown_file.saturating_add(1);
            return;
        };
        *held = value;
        let id = file.track_id();
        for index in 0..self.instances.len() {
            let tracks = self.instances[index]
                .live()
                .is_some_and(|e| e.vrrp.config().tracks.iter().any(|t| t.id == id));
            if tracks {
                self.with_instance(index, |i, now| {
                    i.handle(now, vrrp::Input::TrackValue { id, value })
                });
            }
        }
        #[cfg(all(feature = "lb", feature = "check"))]
        self.file_check_value(file, value);
    }
}
