//! Where named daemons live: `/run/daemonic` for root, `$XDG_RUNTIME_DIR/daemonic`, or a private
//! directory under /tmp; `--rundir` and `$DAEMONIC_RUNDIR` move it.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Failure, Target};

/// The run directory for this user, honouring `--rundir` / `$DAEMONIC_RUNDIR` (clap fills both).
pub fn rundir(explicit: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    let uid = rustix::process::geteuid().as_raw();
    if uid == 0 {
        return PathBuf::from("/run/daemonic");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("daemonic"),
        _ => std::env::temp_dir().join(format!("daemonic-{uid}")),
    }
}

/// The names of the daemons `dir` knows: those with a pidfile (`NAME.pid`) or a status record
/// (`NAME.pid.status`), sorted. A missing directory knows none.
pub fn names(dir: &Path) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            file.strip_suffix(".pid.status")
                .or_else(|| file.strip_suffix(".pid"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Creates the run directory if needed: mode 0755 for root's, 0700 for a user's, and refuses a
/// directory under /tmp that someone else owns or that is a symlink.
pub fn ensure(dir: &Path) -> Result<(), Failure> {
    let uid = rustix::process::geteuid().as_raw();
    let mode = if uid == 0 { 0o755 } else { 0o700 };
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
    {
        Ok(()) => {}
        Err(err) => {
            return Err(Failure::io(
                format!("run directory {}", dir.display()),
                &err,
            ));
        }
    }
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|err| Failure::io(format!("run directory {}", dir.display()), &err))?;
    if !meta.is_dir() || (meta.uid() != uid && uid != 0) {
        return Err(Failure::new(
            1,
            format!(
                "run directory {} is not a directory owned by uid {uid} (mode {:o}); remove it or choose another with --rundir",
                dir.display(),
                meta.permissions().mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Checks a daemon name: it becomes a file name.
pub fn check_name(name: &str) -> Result<(), Failure> {
    if name.len() > 200 {
        return Err(Failure::new(
            2,
            format!("--name: {} bytes long; at most 200", name.len()),
        ));
    }
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-+".contains(c));
    if valid {
        Ok(())
    } else {
        Err(Failure::new(
            2,
            format!("--name {name:?}: use letters, digits and . _ @ - + (not starting with a dot)"),
        ))
    }
}

impl Target {
    /// The pidfile this target names.
    pub fn pidfile(&self) -> Result<PathBuf, Failure> {
        match (&self.name, &self.pidfile) {
            (_, Some(path)) => Ok(path.clone()),
            (Some(name), None) => {
                check_name(name)?;
                Ok(rundir(self.rundir.as_deref()).join(format!("{name}.pid")))
            }
            (None, None) => Err(Failure::new(2, "give --name NAME or --pidfile PATH")),
        }
    }

    /// How messages call this daemon.
    pub fn label(&self) -> String {
        match (&self.name, &self.pidfile) {
            (Some(name), _) => name.clone(),
            (None, Some(path)) => path.display().to_string(),
            (None, None) => "daemon".into(),
        }
    }
}
