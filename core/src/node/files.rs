//! The node's tracked files (`track_file`): which exist, by key, and the
//! last value the driver read from each. A value goes to every VRRP
//! instance tracking the file ([`vrrp::Input::TrackValue`]) and, with the
//! balancer, to every real server's `FILE_CHECK` on it. The driver reads
//! the files (at start and when they change) and reports with
//! [`Input::TrackFile`](super::Input::TrackFile); what the value means is
//! [`crate::track_file::Effect`].

use super::{Node, NodeError};
use crate::vrrp::{self, TrackId, TrackKind, VipStore};

/// Most `track_file` blocks a node tracks.
pub const MAX_TRACK_FILES: usize = 32;

/// Files' track ids: this bit and the next set (scripts have only the
/// first, interfaces neither).
pub(super) const FILE_TRACK_BASE: u16 = 0xC000;

/// A tracked file of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FileId(pub u16);

impl FileId {
    /// The id an instance's config uses to track this file.
    pub const fn track_id(self) -> TrackId {
        TrackId(FILE_TRACK_BASE | self.0)
    }
}

/// One tracked file: its key (a name hash, for reloads) and last value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct FileEntry {
    key: u64,
    value: i32,
}

/// The node's table of tracked files, held inline (a few words each).
pub(super) type Files = [Option<FileEntry>; MAX_TRACK_FILES];

impl<S: VipStore> Node<'_, S> {
    /// The tracked file with `key`, added (value 0) if new. Its value
    /// survives a reload that keeps it.
    pub fn set_track_file(&mut self, key: u64) -> Result<FileId, NodeError> {
        if let Some(id) = self.track_file_by_key(key) {
            return Ok(id);
        }
        let index = self
            .files
            .iter()
            .position(Option::is_none)
            .ok_or(NodeError::Full("track_file"))?;
        self.files[index] = Some(FileEntry { key, value: 0 });
        Ok(FileId(index as u16))
    }

    /// Removes a tracked file (nothing may track it any more).
    pub fn remove_track_file(&mut self, id: FileId) -> Result<(), NodeError> {
        self.files
            .get_mut(usize::from(id.0))
            .and_then(Option::take)
            .map(|_| ())
            .ok_or(NodeError::NoSuch("track_file"))
    }

    /// The tracked file added with `key`.
    pub fn track_file_by_key(&self, key: u64) -> Option<FileId> {
        self.files
            .iter()
            .position(|f| f.is_some_and(|f| f.key == key))
            .map(|i| FileId(i as u16))
    }

    /// Every tracked file, with its key.
    pub fn track_files(&self) -> impl Iterator<Item = (FileId, u64)> + '_ {
        self.files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.map(|f| (FileId(i as u16), f.key)))
    }

    /// A tracked file's last value.
    pub fn track_file_value(&self, id: FileId) -> Option<i32> {
        self.files.get(usize::from(id.0))?.map(|f| f.value)
    }

    /// The file a track id names, if it is a file's.
    pub(super) fn file_of(id: TrackId) -> Option<FileId> {
        (id.0 & FILE_TRACK_BASE == FILE_TRACK_BASE).then_some(FileId(id.0 & !FILE_TRACK_BASE))
    }

    /// `Input::TrackFile`: records the value and hands it to every tracker.
    pub(super) fn track_file_input(&mut self, file: FileId, value: i32) {
        let Some(entry) = self
            .files
            .get_mut(usize::from(file.0))
            .and_then(Option::as_mut)
        else {
            self.stats.results_unknown_file = self.stats.results_unknown_file.saturating_add(1);
            return;
        };
        entry.value = value;
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

    /// Hands an instance the current value of each file it tracks (after
    /// it was added or reconfigured).
    pub(super) fn feed_file_values(&mut self, index: usize) {
        let Some(entry) = self.instances.get(index).and_then(|s| s.live()) else {
            return;
        };
        let mut values: heapless::Vec<(TrackId, i32), { vrrp::MAX_TRACKS }> = heapless::Vec::new();
        for t in &entry.vrrp.config().tracks {
            if let TrackKind::Value = t.kind
                && let Some(value) = Self::file_of(t.id).and_then(|f| self.track_file_value(f))
            {
                let _ = values.push((t.id, value));
            }
        }
        if values.is_empty() {
            return;
        }
        self.with_instance(index, |i, now| {
            for (id, value) in values {
                i.handle(now, vrrp::Input::TrackValue { id, value });
            }
        });
    }
}
