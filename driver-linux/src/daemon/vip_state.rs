//! The record of VIPs this daemon added, kept in a file (default under
//! /run/vrlb/) so that a start after a crash removes what the crashed run
//! left behind. One line per VIP: `ADDRESS/PREFIX DEVICE`. Changes are
//! recorded in memory and written by [`VipState::flush`], once per batch
//! of changes (the daemon flushes after a batch's gratuitous ARPs are
//! out, so the file is not on the takeover's path); the file is rewritten
//! whole (write then rename), so a crash mid-write leaves the old or the
//! new list, never half of one.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// One VIP as recorded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The device it was added to.
    pub dev: String,
}

/// The state file.
#[derive(Debug)]
pub struct VipState {
    path: PathBuf,
    entries: BTreeSet<Entry>,
    /// Changed since the file was last written.
    dirty: bool,
}

impl VipState {
    /// The state at `path`, empty in memory; call [`VipState::leftovers`]
    /// to read what an earlier run left.
    pub fn new(path: &Path) -> VipState {
        VipState {
            path: path.to_path_buf(),
            entries: BTreeSet::new(),
            dirty: false,
        }
    }

    /// What the file lists now (an earlier run's VIPs). Lines that do not
    /// parse are skipped.
    pub fn leftovers(&self) -> Vec<Entry> {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Vec::new();
        };
        text.lines().filter_map(parse_line).collect()
    }

    /// Records an added VIP and writes the file.
    pub fn add(&mut self, e: Entry) -> std::io::Result<()> {
        self.record(e);
        self.flush()
    }

    /// Forgets a removed VIP and writes the file.
    pub fn remove(&mut self, e: &Entry) -> std::io::Result<()> {
        self.forget(e);
        self.flush()
    }

    /// Records an added VIP, in memory until [`VipState::flush`].
    pub fn record(&mut self, e: Entry) {
        self.dirty |= self.entries.insert(e);
    }

    /// Forgets a removed VIP, in memory until [`VipState::flush`].
    pub fn forget(&mut self, e: &Entry) {
        self.dirty |= self.entries.remove(e);
    }

    /// Writes the list if it changed since the last write. A failed write
    /// is tried again at the next flush.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if self.dirty {
            self.save()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Writes the current list (an empty one after cleaning up).
    pub fn save(&self) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut text = String::new();
        for e in &self.entries {
            text.push_str(&format!("{}/{} {}\n", e.addr, e.prefix_len, e.dev));
        }
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)
    }
}

fn parse_line(line: &str) -> Option<Entry> {
    let mut words = line.split_whitespace();
    let (addr, prefix) = words.next()?.split_once('/')?;
    let dev = words.next()?.to_string();
    Some(Entry {
        addr: addr.parse().ok()?,
        prefix_len: prefix.parse().ok()?,
        dev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_restart_and_bad_lines_are_skipped() {
        let dir = std::env::temp_dir().join(format!("vrlb-vips-{}", std::process::id()));
        let path = dir.join("state");
        let a = Entry {
            addr: "192.0.2.240".parse().unwrap(),
            prefix_len: 32,
            dev: "eth0".into(),
        };
        let b = Entry {
            addr: "2001:db8::10".parse().unwrap(),
            prefix_len: 64,
            dev: "eth1".into(),
        };
        let mut s = VipState::new(&path);
        s.record(a.clone());
        // Nothing is written before a flush.
        assert!(!path.exists());
        s.record(b.clone());
        s.forget(&a);
        s.record(a.clone());
        s.flush().unwrap();
        // A flush with no change since leaves the file alone.
        std::fs::remove_file(&path).unwrap();
        s.flush().unwrap();
        assert!(!path.exists());
        // add and remove write at once.
        s.remove(&b).unwrap();
        s.add(b.clone()).unwrap();
        // "Crash": a new run reads the file.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("garbage\n");
        std::fs::write(&path, text).unwrap();
        let again = VipState::new(&path);
        let mut left = again.leftovers();
        left.sort();
        assert_eq!(left, [a, b]);
        again.save().unwrap();
        assert!(VipState::new(&path).leftovers().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
