//! What `start` leaves beside the pidfile (`PIDFILE.json`): how the daemon was started, so that
//! `restart`, `status` and `list` need only the name. Written atomically, mode 0600 (it holds the
//! environment the daemon was started with).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Failure;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The daemon's name, if started with --name.
    pub name: Option<String>,
    pub pidfile: PathBuf,
    /// `start`'s arguments after the subcommand, to run it again.
    pub args: Vec<String>,
    /// The directory `start` ran in (relative paths in `args` are relative to it).
    pub cwd: PathBuf,
    /// The environment `start` ran with.
    pub env: Vec<(String, String)>,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Seconds since the epoch when start began.
    pub started_at: f64,
    /// "exec", "notify", or "fd N".
    pub readiness: String,
}

/// The record's path for a pidfile.
pub fn path_for(pidfile: &Path) -> PathBuf {
    let mut name = pidfile.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

impl Record {
    pub fn load(pidfile: &Path) -> Option<Record> {
        let text = std::fs::read_to_string(path_for(pidfile)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn save(&self) -> Result<(), Failure> {
        let path = path_for(&self.pidfile);
        let temp = {
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".{}.tmp", std::process::id()));
            PathBuf::from(name)
        };
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Failure::new(1, format!("record {}: {e}", path.display())))?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&temp)?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            // Unlink first: ext4 flushes a file renamed over an existing one (auto_da_alloc),
            // which costs a start ~0.2 ms; a reader meanwhile sees no record, as before a start.
            let _ = std::fs::remove_file(&path);
            std::fs::rename(&temp, &path)
        };
        write().map_err(|err| {
            let _ = std::fs::remove_file(&temp);
            Failure::io(format!("record {}", path.display()), &err)
        })
    }
}

/// Removes the record for a pidfile, if any.
pub fn remove(pidfile: &Path) {
    let _ = std::fs::remove_file(path_for(pidfile));
}

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
