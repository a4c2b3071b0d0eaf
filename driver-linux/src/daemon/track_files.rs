//! Tracked files (`track_file`): writes `init_file` values, watches each
//! file's directory with inotify (so a file written, replaced by a rename
//! or deleted is seen, as keepalived's track_file.c watches), and reads
//! the number a changed file holds. The daemon registers [`TrackFiles`]'s
//! descriptor in its event loop and feeds the values it returns to the
//! node as `Input::TrackFile`. What a value means is the core's
//! (`vrlb_core::track_file`).

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use vrlb_core::config::{InitFile, TrackFileConf};
use vrlb_core::node::FileId;
use vrlb_core::track_file::{READ_MAX, parse_value};

/// What the daemon keeps about one tracked file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// `track_file NAME`.
    pub name: String,
    /// `file`, as written.
    pub path: PathBuf,
    /// `init_file`.
    pub init: Option<InitFile>,
}

impl FileInfo {
    /// From the configuration.
    pub fn from(conf: &TrackFileConf<'_>) -> Self {
        FileInfo {
            name: conf.name.to_string(),
            path: PathBuf::from(conf.path),
            init: conf.init,
        }
    }
}

/// A file being watched: where its directory's watch is and its name in it.
#[derive(Debug)]
struct Watched {
    info: FileInfo,
    wd: Option<WatchDescriptor>,
    file_name: OsString,
}

/// The daemon's tracked files and their inotify instance.
#[derive(Debug)]
pub struct TrackFiles {
    inotify: Inotify,
    files: HashMap<FileId, Watched>,
}

/// One value read, for the node and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Which file.
    pub id: FileId,
    /// Its number.
    pub value: i32,
    /// How it came to be, when it is not simply the file's number (a
    /// missing file, text without a number).
    pub note: Option<String>,
}

/// How a file's text read.
enum FileText {
    /// A number (text without one reads as 0, with a note).
    Value(i32, Option<String>),
    /// Outside `i32`: keepalived ignores it, the last value stays.
    Ignored(String),
}

/// inotify events that concern a watched file: written and closed, moved
/// in or out, deleted.
fn watch_flags() -> AddWatchFlags {
    AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
}

impl TrackFiles {
    /// An inotify instance with nothing watched yet.
    pub fn new() -> io::Result<Self> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        Ok(TrackFiles {
            inotify,
            files: HashMap::new(),
        })
    }

    /// The descriptor to register for reading.
    pub fn raw_fd(&self) -> RawFd {
        self.inotify.as_fd().as_raw_fd()
    }

    /// Whether any file is tracked.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// A tracked file's settings.
    pub fn info(&self, id: FileId) -> Option<&FileInfo> {
        self.files.get(&id).map(|w| &w.info)
    }

    /// Takes a build's tracked files: writes `init_file` values (a reload
    /// only creates missing files, as keepalived does), watches their
    /// directories, and reads every file. Problems are returned as log
    /// lines with the values.
    pub fn configure(
        &mut self,
        files: HashMap<FileId, FileInfo>,
        reload: bool,
    ) -> (Vec<Reading>, Vec<String>) {
        let mut warnings = Vec::new();
        for w in self.files.values() {
            if let Some(wd) = w.wd {
                // Gone already if its directory was removed.
                let _ = self.inotify.rm_watch(wd);
            }
        }
        self.files.clear();
        for (id, info) in files {
            if let Some(init) = info.init
                && let Err(e) = init_file(&info.path, init, reload)
            {
                warnings.push(format!(
                    "track_file {}: cannot initialise {}: {e}",
                    info.name,
                    info.path.display()
                ));
            }
            let (dir, file_name) = split(&info.path);
            let wd = match self.inotify.add_watch(&dir, watch_flags()) {
                Ok(wd) => Some(wd),
                Err(e) => {
                    warnings.push(format!(
                        "track_file {}: cannot watch directory {}: {e}: the file reads as 0 and changes are not seen",
                        info.name,
                        dir.display()
                    ));
                    None
                }
            };
            self.files.insert(
                id,
                Watched {
                    info,
                    wd,
                    file_name,
                },
            );
        }
        let mut readings = Vec::new();
        let ids: Vec<FileId> = self.files.keys().copied().collect();
        for id in ids {
            self.read(id, &mut readings, &mut warnings);
        }
        (readings, warnings)
    }

    /// Reads the inotify events waiting; returns the values of the files
    /// they concern (a file deleted or moved away reads as 0, as keepalived
    /// takes it) and log lines.
    pub fn events(&mut self) -> (Vec<Reading>, Vec<String>) {
        let mut readings = Vec::new();
        let mut warnings = Vec::new();
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) => events,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    warnings.push(format!("inotify: {e}"));
                    break;
                }
            };
            for event in events {
                if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    // Events were lost: read every file again.
                    let ids: Vec<FileId> = self.files.keys().copied().collect();
                    for id in ids {
                        self.read(id, &mut readings, &mut warnings);
                    }
                    continue;
                }
                if event.mask.contains(AddWatchFlags::IN_ISDIR) {
                    continue;
                }
                let Some(name) = &event.name else {
                    continue;
                };
                let ids: Vec<FileId> = self
                    .files
                    .iter()
                    .filter(|(_, w)| w.wd == Some(event.wd) && &w.file_name == name)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    let gone = event
                        .mask
                        .intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM);
                    if gone {
                        readings.push(Reading {
                            id,
                            value: 0,
                            note: Some("the file is gone: reads as 0".to_string()),
                        });
                    } else {
                        self.read(id, &mut readings, &mut warnings);
                    }
                }
            }
        }
        (readings, warnings)
    }

    fn read(&self, id: FileId, readings: &mut Vec<Reading>, warnings: &mut Vec<String>) {
        let Some(w) = self.files.get(&id) else {
            return;
        };
        match read_value(&w.info.path) {
            FileText::Value(value, note) => readings.push(Reading { id, value, note }),
            FileText::Ignored(why) => warnings.push(format!(
                "track_file {} ({}): {why}: ignored, the last value stays",
                w.info.name,
                w.info.path.display()
            )),
        }
    }
}

/// The directory to watch and the file's name in it. A relative path is
/// taken from the working directory, as keepalived resolves it.
fn split(path: &Path) -> (PathBuf, OsString) {
    let file_name = path.file_name().map(OsString::from).unwrap_or_default();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    (dir, file_name)
}

/// Reads a tracked file's number as keepalived does: the first bytes of
/// the file through `parse_value`; a file that cannot be opened reads as 0.
fn read_value(path: &Path) -> FileText {
    let mut buf = [0u8; READ_MAX];
    let read = std::fs::File::open(path).and_then(|mut f| {
        let mut len = 0;
        // Short reads are rare on regular files; read until full or EOF.
        while len < buf.len() {
            match f.read(&mut buf[len..])? {
                0 => break,
                n => len += n,
            }
        }
        Ok(len)
    });
    let len = match read {
        Ok(len) => len,
        Err(e) => return FileText::Value(0, Some(format!("cannot read it ({e}): reads as 0"))),
    };
    let text = &buf[..len];
    match parse_value(text) {
        Some(value) => {
            let has_digit = text
                .iter()
                .find(|b| !b.is_ascii_whitespace() && **b != b'+' && **b != b'-')
                .is_some_and(u8::is_ascii_digit);
            let note = (!has_digit && !text.iter().all(u8::is_ascii_whitespace))
                .then(|| "holds no number: reads as 0".to_string());
            FileText::Value(value, note)
        }
        None => FileText::Ignored(format!(
            "{:?} is outside -2147483648..2147483647",
            String::from_utf8_lossy(text).trim()
        )),
    }
}

/// `init_file`: writes the value when the file is missing, or always with
/// `overwrite` except on a reload (keepalived track_file.c
/// `track_file_end_handler`); only a regular file is overwritten.
fn init_file(path: &Path, init: InitFile, reload: bool) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(_) if !init.overwrite || reload => return Ok(()),
        Ok(meta) if !meta.is_file() => {
            return Err(io::Error::other("it is not a regular file"));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::write(path, format!("{}\n", init.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, path: &Path, init: Option<InitFile>) -> FileInfo {
        FileInfo {
            name: name.to_string(),
            path: path.to_path_buf(),
            init,
        }
    }

    /// Waits (bounded) for readable events and returns what they read.
    fn wait_events(files: &mut TrackFiles) -> Vec<Reading> {
        let mut all = Vec::new();
        for _ in 0..100 {
            let (readings, warnings) = files.events();
            assert!(warnings.is_empty(), "{warnings:?}");
            all.extend(readings);
            if !all.is_empty() {
                // Let the rest of a burst arrive.
                std::thread::sleep(std::time::Duration::from_millis(20));
                all.extend(files.events().0);
                return all;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        all
    }

    #[test]
    fn values_are_read_at_start_and_on_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prio");
        std::fs::write(&path, "5\n").unwrap();
        let missing = dir.path().join("missing");
        let mut files = TrackFiles::new().unwrap();
        let (readings, warnings) = files.configure(
            HashMap::from([
                (FileId(0), info("a", &path, None)),
                (FileId(1), info("b", &missing, None)),
            ]),
            false,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let mut values: Vec<(FileId, i32)> = readings.iter().map(|r| (r.id, r.value)).collect();
        values.sort();
        assert_eq!(values, [(FileId(0), 5), (FileId(1), 0)]);
        assert!(
            readings.iter().any(|r| r.id == FileId(1)
                && r.note.as_deref().is_some_and(|n| n.contains("reads as 0"))),
            "{readings:?}"
        );

        // Written in place.
        std::fs::write(&path, "-7\n").unwrap();
        let seen = wait_events(&mut files);
        assert_eq!(seen.last().map(|r| (r.id, r.value)), Some((FileId(0), -7)));

        // Replaced by a rename, as editors and `mv` do.
        let tmp = dir.path().join(".prio.tmp");
        std::fs::write(&tmp, "0x10").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let seen = wait_events(&mut files);
        assert_eq!(seen.last().map(|r| (r.id, r.value)), Some((FileId(0), 16)));

        // Created.
        std::fs::write(&missing, "3").unwrap();
        let seen = wait_events(&mut files);
        assert_eq!(seen.last().map(|r| (r.id, r.value)), Some((FileId(1), 3)));

        // Deleted: 0.
        std::fs::remove_file(&path).unwrap();
        let seen = wait_events(&mut files);
        assert_eq!(seen.last().map(|r| (r.id, r.value)), Some((FileId(0), 0)));

        // Other files in the directory are nobody's business.
        std::fs::write(dir.path().join("other"), "9").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(files.events().0, []);
    }

    #[test]
    fn a_number_out_of_range_is_ignored_and_text_reads_as_0() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "99999999999").unwrap();
        let mut files = TrackFiles::new().unwrap();
        let (readings, warnings) =
            files.configure(HashMap::from([(FileId(0), info("f", &path, None))]), false);
        assert_eq!(readings, []);
        assert!(
            warnings[0].contains("outside") && warnings[0].contains("track_file f"),
            "{warnings:?}"
        );
        std::fs::write(&path, "up").unwrap();
        let seen = wait_events(&mut files);
        assert_eq!(seen.last().map(|r| r.value), Some(0));
        assert!(seen.last().unwrap().note.as_deref() == Some("holds no number: reads as 0"));
    }

    #[test]
    fn init_file_creates_or_overwrites_as_keepalived_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let create = InitFile {
            value: 4,
            overwrite: false,
        };
        init_file(&path, create, false).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "4\n");
        std::fs::write(&path, "9\n").unwrap();
        init_file(&path, create, false).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "9\n", "kept");
        let overwrite = InitFile {
            value: -2,
            overwrite: true,
        };
        init_file(&path, overwrite, true).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "9\n",
            "not on reload"
        );
        init_file(&path, overwrite, false).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "-2\n");
        let err = init_file(dir.path(), overwrite, false).unwrap_err();
        assert!(err.to_string().contains("regular"), "{err}");
    }
}
