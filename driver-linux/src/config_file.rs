//! Reading keepalived.conf from disk: the main file and every `include`,
//! with glob patterns resolved relative to the including file's directory
//! (absolute patterns as they are). Owns file access for the parser; the
//! parsing itself is the core's.

use std::path::{Path, PathBuf};

use vrlb_core::config::{EachFile, IncludeError, Includer};

/// Reads a configuration file as text. Invalid UTF-8 is replaced (and
/// reported by the parser where it matters) rather than refused.
pub fn read_config(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// keepalived's default config id (its `-i`, which selects `@id` lines
/// and is `${_INSTANCE}`): the host name up to its first dot. `None` when
/// the host name cannot be read.
pub fn default_config_id() -> Option<String> {
    let name = nix::unistd::gethostname().ok()?.into_string().ok()?;
    let id = name.split('.').next().unwrap_or_default();
    (!id.is_empty()).then(|| id.to_string())
}

/// What `${_RANDOM}` and `${_ENV NAME}` read during one load of the
/// configuration: drawn once and kept for every parse of that load (the
/// daemon reads a file several times to count, check and build it, and
/// each must see the same numbers); a reload draws a new seed, as
/// keepalived seeds afresh at each read.
#[derive(Debug, Clone)]
pub struct Builtins {
    /// `${_RANDOM}`'s seed.
    pub seed: u64,
    /// The process environment, as read at the load.
    pub env: Vec<(String, String)>,
}

impl Builtins {
    /// A new seed (the clock and the process id, as keepalived seeds from
    /// the clock) and the environment now.
    pub fn now() -> Builtins {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Builtins {
            seed: nanos ^ u64::from(std::process::id()) << 32,
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// The environment as [`vrlb_core::config::Options::env`] takes it.
    pub fn env_pairs(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// Resolves `include` patterns on the local filesystem.
#[derive(Debug, Clone)]
pub struct FsIncluder {
    /// Directories of the files being read, innermost last.
    dirs: Vec<PathBuf>,
    /// Every file read, main one first (for `vrlb check` and reload).
    pub files: Vec<PathBuf>,
}

impl FsIncluder {
    /// An includer for the configuration at `main`.
    pub fn new(main: &Path) -> Self {
        let dir = main.parent().map(Path::to_path_buf).unwrap_or_default();
        FsIncluder {
            dirs: vec![dir],
            files: vec![main.to_path_buf()],
        }
    }
}

impl Includer for FsIncluder {
    fn include(&mut self, pattern: &str, each: &mut EachFile<'_>) -> Result<(), IncludeError> {
        let base = self.dirs.last().cloned().unwrap_or_default();
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let Some(full) = full.to_str() else {
            return Err(IncludeError::Failed("the path is not valid UTF-8"));
        };
        let paths = glob::glob(full)
            .map_err(|_| IncludeError::Failed("the pattern is not a valid glob"))?;
        let mut matched: Vec<PathBuf> = paths
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        // keepalived reads a glob's matches in sorted order.
        matched.sort();
        for path in matched {
            let text = read_config(&path)
                .map_err(|_| IncludeError::Failed("a matching file could not be read"))?;
            let name = path.display().to_string();
            self.dirs
                .push(path.parent().map(Path::to_path_buf).unwrap_or_default());
            self.files.push(path);
            let result = each(self, &name, &text);
            self.dirs.pop();
            result.map_err(IncludeError::Parse)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrlb_core::config::{self, Options, Sink};

    #[derive(Default)]
    struct Names(Vec<String>);
    impl Sink for Names {
        fn vrrp_instance(&mut self, i: &config::VrrpInstance<'_>) -> Result<(), config::Kind> {
            self.0.push(i.name.to_string());
            Ok(())
        }
    }

    #[test]
    fn the_default_config_id_is_the_host_name_up_to_its_first_dot() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        let want = host.trim().split('.').next().unwrap();
        assert_eq!(default_config_id().as_deref(), Some(want));
    }

    #[test]
    fn includes_resolve_relative_to_the_including_file_in_sorted_order() {
        let dir = std::env::temp_dir().join(format!("vrlb-include-{}", std::process::id()));
        let sub = dir.join("conf.d");
        std::fs::create_dir_all(&sub).unwrap();
        let inst = |n: &str, id: u8| format!("vrrp_instance {n} {{\n virtual_router_id {id}\n}}\n");
        std::fs::write(sub.join("b.conf"), inst("B", 2)).unwrap();
        std::fs::write(
            sub.join("a.conf"),
            format!("{}include nested/*.conf\n", inst("A", 1)),
        )
        .unwrap();
        std::fs::create_dir_all(sub.join("nested")).unwrap();
        std::fs::write(sub.join("nested/c.conf"), inst("C", 3)).unwrap();
        let main = dir.join("keepalived.conf");
        std::fs::write(&main, "include conf.d/*.conf\ninclude missing/*.conf\n").unwrap();

        let mut inc = FsIncluder::new(&main);
        let mut names = Names::default();
        let text = read_config(&main).unwrap();
        config::parse(
            "keepalived.conf",
            &text,
            &Options::default(),
            &mut names,
            &mut inc,
        )
        .unwrap();
        assert_eq!(names.0, ["A", "C", "B"]);
        assert_eq!(inc.files.len(), 4);

        std::fs::write(
            sub.join("nested/c.conf"),
            "vrrp_instance C {\n priority 0\n}\n",
        )
        .unwrap();
        let err = config::parse(
            "keepalived.conf",
            &text,
            &Options::default(),
            &mut Names::default(),
            &mut FsIncluder::new(&main),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("nested/c.conf:2:11: error: 'priority'"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
