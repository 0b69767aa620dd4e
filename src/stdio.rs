//! Where the daemon's standard input, output and error go (daemon(7) step 9).
//!
//! Files are opened before the first fork, as the launching user and relative to the launching
//! directory, so that a missing directory or a permission problem is reported by the launcher
//! instead of being lost after stderr is gone (the seed's `open(redirect_to)` fails exactly
//! there). After the fork they are only `dup2`ed into place.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Step};

/// A target for one of the standard streams.
///
/// # Example
/// ```
/// use daemonic::{Daemon, Stdio};
/// let daemon = Daemon::new()
///     .stdout(Stdio::append("/var/log/app.log"))
///     .stderr(Stdio::Inherit);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Stdio {
    /// `/dev/null`.
    #[default]
    Null,
    /// Keep the descriptor the launcher had.
    Inherit,
    /// A file, created if missing (mode 0644 less the umask), written at its end. For stdin: a
    /// file read from the start.
    Append(PathBuf),
    /// A file, created if missing and emptied. For stdin: same as `Append`.
    Truncate(PathBuf),
}

impl Stdio {
    /// A file appended to.
    pub fn append(path: impl Into<PathBuf>) -> Stdio {
        Stdio::Append(path.into())
    }

    /// A file emptied first.
    pub fn truncate(path: impl Into<PathBuf>) -> Stdio {
        Stdio::Truncate(path.into())
    }

    /// The same target with a relative file path made absolute from the current directory
    /// (no file system access beyond `getcwd`): the daemon works in `/`, and its keeper reopens
    /// the file by this path long after.
    pub(crate) fn absolute(self) -> Stdio {
        match self {
            Stdio::Append(p) => Stdio::Append(absolute(p)),
            Stdio::Truncate(p) => Stdio::Truncate(absolute(p)),
            other => other,
        }
    }

    /// The file path, when the target is a file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Stdio::Append(p) | Stdio::Truncate(p) => Some(p),
            Stdio::Null | Stdio::Inherit => None,
        }
    }
}

/// A stream target opened before the fork.
#[derive(Debug)]
pub(crate) enum Prepared {
    Inherit,
    /// A descriptor to `dup2` onto the stream (a file, or the shared `/dev/null`).
    Fd(RawFd),
}

/// The three streams, opened.
#[derive(Debug)]
pub(crate) struct PreparedStdio {
    /// Owns every descriptor the `Prepared::Fd` values point at.
    owned: Vec<OwnedFd>,
    pub streams: [Prepared; 3],
}

impl PreparedStdio {
    /// Opens the targets (outputs first, so that `redirect_to` creates the file stdin reads).
    pub(crate) fn open(targets: [&Stdio; 3]) -> Result<PreparedStdio, Error> {
        let mut owned: Vec<OwnedFd> = Vec::new();
        let mut null: Option<RawFd> = None;
        let mut streams = [Prepared::Inherit, Prepared::Inherit, Prepared::Inherit];
        for index in [1usize, 2, 0] {
            let step = [Step::Stdin, Step::Stdout, Step::Stderr][index];
            streams[index] = match targets[index] {
                Stdio::Inherit => Prepared::Inherit,
                Stdio::Null => {
                    let fd = match null {
                        Some(fd) => fd,
                        None => {
                            // The system's own device: no link to check, nothing to block on.
                            let file = rustix::fs::open(
                                c"/dev/null",
                                rustix::fs::OFlags::RDWR
                                    | rustix::fs::OFlags::CLOEXEC
                                    | rustix::fs::OFlags::NOCTTY,
                                rustix::fs::Mode::empty(),
                            )
                            .map_err(|e| Error::os(step, "/dev/null", e.into()))?;
                            let fd = file.as_raw_fd();
                            owned.push(file);
                            null = Some(fd);
                            fd
                        }
                    };
                    Prepared::Fd(fd)
                }
                Stdio::Append(path) | Stdio::Truncate(path) if index == 0 => {
                    let file = open_file(path, step, |o| {
                        o.read(true);
                    })?;
                    let fd = file.as_raw_fd();
                    owned.push(file);
                    Prepared::Fd(fd)
                }
                target @ (Stdio::Append(path) | Stdio::Truncate(path)) => {
                    let truncate = matches!(target, Stdio::Truncate(_));
                    let file = open_file(path, step, |o| {
                        o.write(true).create(true).mode(0o644);
                        if truncate {
                            o.truncate(true);
                        } else {
                            o.append(true);
                        }
                    })?;
                    let fd = file.as_raw_fd();
                    owned.push(file);
                    Prepared::Fd(fd)
                }
            };
        }
        Ok(PreparedStdio { owned, streams })
    }

    /// Takes stderr's target out (when it is relayed until readiness), so it outlives the rest.
    pub(crate) fn take_stderr_for_relay(&mut self, relayed: bool) -> Option<OwnedFd> {
        let Prepared::Fd(fd) = self.streams[2] else {
            return None;
        };
        if !relayed {
            return None;
        }
        let index = self.owned.iter().position(|o| o.as_raw_fd() == fd)?;
        // /dev/null may also serve stdin or stdout; they were dup2ed already, so taking the
        // descriptor away from them is fine.
        Some(self.owned.swap_remove(index))
    }

    /// The descriptors that must survive the closing of inherited descriptors.
    pub(crate) fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.streams.iter().filter_map(|p| match p {
            Prepared::Fd(fd) => Some(*fd),
            Prepared::Inherit => None,
        })
    }
}

/// Opens an output (or input) file. A symlink is followed only if it belongs to this user or to
/// root: one that another user planted in a shared directory is refused, so it can never make us
/// append to (or truncate) its target. Where there is no link, the file is opened with
/// `O_NOFOLLOW`, so a link planted between the check and the open is refused too. Never blocks
/// on a FIFO while opening.
fn open_file(
    path: &Path,
    step: Step,
    set: impl FnOnce(&mut OpenOptions),
) -> Result<OwnedFd, Error> {
    use std::os::unix::fs::MetadataExt;
    let mut options = OpenOptions::new();
    set(&mut options);
    let mut flags = libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let me = rustix::process::geteuid().as_raw();
            if meta.uid() != me && meta.uid() != 0 {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    step,
                    format!(
                        "{step} {}: a symlink owned by uid {}, not by this user or root; refused (it could point anywhere)",
                        path.display(),
                        meta.uid()
                    ),
                ));
            }
        }
        _ => flags |= libc::O_NOFOLLOW,
    }
    options.custom_flags(flags);
    let file = options
        .open(path)
        .map_err(|e| Error::os(step, path.display(), e))?;
    // The descriptor is for writing (or reading) normally: back to blocking.
    if let Ok(flags) = rustix::fs::fcntl_getfl(&file) {
        let _ = rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK);
    }
    Ok(OwnedFd::from(file))
}

/// `path` made absolute from the current directory (no file system access beyond `getcwd`):
/// a daemon works in `/`, and its keeper uses the paths it was given long after.
pub(crate) fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}
