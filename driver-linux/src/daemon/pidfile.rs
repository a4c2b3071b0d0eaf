//! The pid file: written at start, removed at a clean exit. A file left by
//! a process that is still alive stops the start (two daemons would fight
//! over the same VIPs); one left by a dead process is replaced.

use std::path::{Path, PathBuf};

/// A pid file this process wrote; removed on drop.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's pid to `path`.
    pub fn create(path: &Path) -> Result<PidFile, String> {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse::<i32>()
            && pid != std::process::id() as i32
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            return Err(format!(
                "{}: another vrlb (pid {pid}) is running",
                path.display()
            ));
        }
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("{}: cannot write the pid file: {e}", path.display()))?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_live_owner_and_replaces_a_dead_one() {
        let dir = std::env::temp_dir().join(format!("vrlb-pid-{}", std::process::id()));
        let path = dir.join("vrlb.pid");
        {
            let _pid = PidFile::create(&path).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text.trim(), std::process::id().to_string());
        }
        assert!(!path.exists(), "removed on drop");
        // pid 1 is alive.
        std::fs::write(&path, "1\n").unwrap();
        assert!(PidFile::create(&path).unwrap_err().contains("pid 1"));
        // A pid that cannot exist.
        std::fs::write(&path, "2147483646\n").unwrap();
        drop(PidFile::create(&path).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
