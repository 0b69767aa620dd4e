//! A race-free pidfile (daemon(7) step 12): created without following symlinks, locked with
//! `flock` for the daemon's whole life, written with the final pid only, never clobbered while a
//! live daemon holds it, taken over when its owner died, removed on clean exit.
//!
//! The lock, not the file's existence, says whether a daemon runs: a stale file left by a killed
//! daemon is unlocked, so the next start takes it over. The lock lives on an open file
//! description opened read-only; the pid is written through a second, write-only descriptor that
//! is closed before the daemon runs user code or executes a program, so the daemon cannot
//! scribble on its own pidfile by accident.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};

use crate::error::{Error, ErrorKind, Step};

/// How long a start waits for a locked pidfile that names no live pid (a start or stop in
/// progress) before it gives up.
const BUSY_GRACE: Duration = Duration::from_millis(200);

/// A pidfile locked by this process (and, after forks, its daemon).
#[derive(Debug)]
pub(crate) struct Pidfile {
    path: PathBuf,
    lock: File,
    writer: Option<File>,
    dev: u64,
    ino: u64,
    /// How long the content written through `writer` is (a Cell: written between fork and
    /// exec without allocating, through a shared reference).
    length: std::cell::Cell<usize>,
}

impl Pidfile {
    /// Creates or opens `path` without following symlinks, locks it, and empties it.
    ///
    /// Fails with [`ErrorKind::AlreadyRunning`] when a live process holds the lock.
    pub(crate) fn acquire(path: &Path) -> Result<Pidfile, Error> {
        check_directory(path)?;
        let started = Instant::now();
        loop {
            // Read-only: the lock must live on a description the daemon cannot write through.
            // A new file is created by this same call (std's OpenOptions refuses `create`
            // without write access); whatever is there already (a stale pidfile, or a link,
            // directory or FIFO someone planted) is opened as it is, and the checks below say
            // what is wrong with it.
            let flags = OFlags::RDONLY
                | OFlags::NOFOLLOW
                | OFlags::CLOEXEC
                | OFlags::NONBLOCK
                | OFlags::NOCTTY;
            let mode = Mode::from_bits_truncate(0o644);
            let (lock, created) =
                match rustix::fs::open(path, flags | OFlags::CREATE | OFlags::EXCL, mode) {
                    Ok(fd) => (Ok(fd), true),
                    Err(rustix::io::Errno::EXIST) => (rustix::fs::open(path, flags, mode), false),
                    Err(err) => (Err(err), false),
                };
            let lock = lock
                .map(File::from)
                .map_err(|e| pidfile_error(path, e.into()))?;
            match lock.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let pid = read_pid(path);
                    if pid.is_some_and(crate::process::is_alive) || started.elapsed() > BUSY_GRACE {
                        return Err(already_running(path, pid));
                    }
                    // Locked, but by a start that has not written its pid yet or a stop that is
                    // removing the file: look again shortly.
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                Err(TryLockError::Error(err)) => return Err(pidfile_error(path, err)),
            }
            let meta = lock.metadata().map_err(|e| pidfile_error(path, e))?;
            if !meta.is_file() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    Step::Pidfile,
                    format!(
                        "pidfile {}: not a regular file; remove it or choose another pidfile",
                        path.display()
                    ),
                ));
            }
            // In a shared (sticky) directory, a file another user left there is theirs: never
            // take it over.
            let me = rustix::process::geteuid().as_raw();
            if meta.uid() != me && meta.uid() != 0 {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    Step::Pidfile,
                    format!(
                        "pidfile {}: owned by uid {}, not by this user or root; not taken over (remove it, or choose another pidfile)",
                        path.display(),
                        meta.uid()
                    ),
                ));
            }
            // The file we locked must still be the one at `path`: a stop may have unlinked it
            // between our open and our lock.
            match std::fs::symlink_metadata(path) {
                Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => {}
                _ => continue,
            }
            if !meta.is_file() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    Step::Pidfile,
                    format!("pidfile {}: not a regular file", path.display()),
                ));
            }
            // Another name for the same file could be anyone's file (a hard link planted in a
            // shared directory where fs.protected_hardlinks is off): never emptied or written.
            if meta.nlink() != 1 {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    Step::Pidfile,
                    format!(
                        "pidfile {}: has {} hard links; not taken over (remove it, or choose another pidfile)",
                        path.display(),
                        meta.nlink()
                    ),
                ));
            }
            // The umask may have narrowed the new file's mode: readers (status, stop) must be
            // able to read it. An existing file keeps the mode it was given.
            if created && meta.permissions().mode() & 0o777 != 0o644 {
                lock.set_permissions(std::fs::Permissions::from_mode(0o644))
                    .map_err(|e| pidfile_error(path, e))?;
            }
            let writer = OpenOptions::new()
                .write(true)
                .custom_flags(
                    libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY,
                )
                .open(path)
                .map_err(|e| pidfile_error(path, e))?;
            // A stale file is emptied; a new, empty one is not truncated (on ext4 that arms a
            // flush at its last close: NOTES §7).
            if meta.len() > 0 {
                writer.set_len(0).map_err(|e| pidfile_error(path, e))?;
            }
            return Ok(Pidfile {
                path: path.to_path_buf(),
                lock,
                writer: Some(writer),
                dev: meta.dev(),
                ino: meta.ino(),
                length: std::cell::Cell::new(0),
            });
        }
    }

    /// The pidfile's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor that holds the lock.
    pub(crate) fn lock_fd(&self) -> RawFd {
        self.lock.as_raw_fd()
    }

    /// The write-only descriptor, while it is open.
    pub(crate) fn writer_fd(&self) -> Option<RawFd> {
        self.writer.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Writes `pid` and a newline at offset 0. Async-signal-safe: formats on the stack and makes
    /// two system calls.
    ///
    /// References: ftruncate(2), pwrite(2).
    pub(crate) fn write_pid(&self, pid: u32) -> io::Result<()> {
        let Some(writer) = &self.writer else {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        };
        let mut buf = [0u8; 12];
        let len = format_decimal(pid, &mut buf);
        // Written over the old content, then cut to length only if it got shorter: a truncate
        // costs a journal transaction on ext4, on every restart otherwise.
        match rustix::io::pwrite(writer, &buf[..len], 0) {
            Ok(n) if n == len => {}
            // A short write (a full disk) sets no errno: say EIO.
            Ok(_) => return Err(io::Error::from_raw_os_error(libc::EIO)),
            Err(err) => return Err(err.into()),
        }
        if len < self.length.get() {
            rustix::fs::ftruncate(writer, len as u64)?;
        }
        self.length.set(len);
        Ok(())
    }

    /// Empties the file (a keeper's program is between runs), keeping it and its lock.
    pub(crate) fn clear(&self) -> io::Result<()> {
        let Some(writer) = &self.writer else {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        };
        if self.length.get() == 0 {
            return Ok(());
        }
        rustix::fs::ftruncate(writer, 0)?;
        self.length.set(0);
        Ok(())
    }

    /// Encodes this pidfile for a keeper's re-exec; its descriptors must stay open across it.
    pub(crate) fn encode(&self, e: &mut crate::handoff::Encoder) {
        use std::os::unix::ffi::OsStrExt;
        e.bytes(self.path.as_os_str().as_bytes());
        e.i32(self.lock.as_raw_fd());
        e.option(self.writer_fd(), crate::handoff::Encoder::i32);
        e.u64(self.dev);
        e.u64(self.ino);
        e.u64(self.length.get() as u64);
    }

    /// The pidfile a former image of this keeper encoded; takes ownership of its descriptors.
    ///
    /// # Safety
    /// The descriptors must be the ones [`encode`](Pidfile::encode) wrote, inherited across
    /// exec and owned by nothing else in this process.
    pub(crate) unsafe fn decode(d: &mut crate::handoff::Decoder<'_>) -> Option<Pidfile> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(d.bytes()?));
        let lock = d.i32()?;
        let writer = d.option(crate::handoff::Decoder::i32)?;
        let (dev, ino) = (d.u64()?, d.u64()?);
        let length = usize::try_from(d.u64()?).ok()?;
        // SAFETY: the caller guarantees these descriptors are ours alone.
        Some(unsafe {
            Pidfile {
                path,
                lock: File::from_raw_fd(lock),
                writer: writer.map(|fd| File::from_raw_fd(fd)),
                dev,
                ino,
                length: std::cell::Cell::new(length),
            }
        })
    }

    /// Closes the write-only descriptor: the daemon keeps only the lock.
    pub(crate) fn close_writer(&mut self) {
        self.writer = None;
    }

    /// Removes the file if `path` still names the file we lock. Called on clean exit and when a
    /// start fails; the lock is held while unlinking, so no other daemon's file is removed.
    pub(crate) fn remove(&self) -> io::Result<()> {
        match std::fs::symlink_metadata(&self.path) {
            Ok(now) if now.dev() == self.dev && now.ino() == self.ino => {
                std::fs::remove_file(&self.path)
            }
            Ok(_) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        }
    }
}

/// The pidfile's directory must not be another user's to rearrange (see [`safe_directory`]).
fn check_directory(path: &Path) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.exists() {
        // Missing: the open reports it, with its hint.
        return Ok(());
    }
    safe_directory(dir).map_err(|why| {
        Error::new(
            ErrorKind::PermissionDenied,
            Step::Pidfile,
            format!(
                "pidfile {}: {why}; choose a directory only you (or root) can change",
                path.display()
            ),
        )
    })
}

/// Whether nobody but this user and root can rearrange `dir`: every symlink met on the way to it
/// belongs to this user or root, and every directory from `/` to it (links resolved) belongs to
/// this user or root and may be written by others only if it is sticky (as /tmp is; then each
/// file in it is checked for its owner, and none is followed). Otherwise another user could
/// swap a component between our check and our use, and have us write where they like (as
/// OpenSSH's `safe_path` rules). Returns why not.
pub(crate) fn safe_directory(dir: &Path) -> Result<(), String> {
    let me = rustix::process::geteuid().as_raw();
    let trusted = |uid: u32| uid == me || uid == 0;
    let absolute = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("the current directory: {e}"))?
            .join(dir)
    };
    // The owner and mode of each directory from `/` down, while no link or `..` is on the way:
    // then the path is its own resolution, and no second walk is needed. Only numbers are kept
    // (a keeper checks its log directory this way, and what it allocates stays its memory).
    let mut plain = std::fs::metadata("/")
        .ok()
        .map(|m| vec![(m.uid(), m.permissions().mode())]);
    let mut walked = PathBuf::from("/");
    for component in absolute.components().skip(1) {
        walked.push(component);
        let meta = std::fs::symlink_metadata(&walked).ok();
        if let Some(meta) = &meta
            && meta.file_type().is_symlink()
            && !trusted(meta.uid())
        {
            return Err(format!(
                "{} is a symlink owned by uid {}",
                walked.display(),
                meta.uid()
            ));
        }
        match (&mut plain, meta) {
            (Some(list), Some(meta))
                if !meta.file_type().is_symlink()
                    && matches!(component, std::path::Component::Normal(_)) =>
            {
                list.push((meta.uid(), meta.permissions().mode()));
            }
            _ => plain = None,
        }
    }
    let check = |dir: &dyn Fn() -> PathBuf, uid: u32, mode: u32| {
        if !trusted(uid) {
            return Err(format!(
                "its directory {} belongs to uid {uid}",
                dir().display()
            ));
        }
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(format!(
                "its directory {} may be written by others (mode {:o}) and is not sticky",
                dir().display(),
                mode & 0o7777
            ));
        }
        Ok(())
    };
    match plain {
        // The deepest first, as below.
        Some(list) => {
            for (depth, &(uid, mode)) in list.iter().enumerate().rev() {
                check(
                    &|| absolute.components().take(depth + 1).collect(),
                    uid,
                    mode,
                )?;
            }
        }
        None => {
            let resolved = std::fs::canonicalize(&absolute)
                .map_err(|e| format!("{}: {e}", absolute.display()))?;
            for ancestor in resolved.ancestors() {
                let meta = std::fs::metadata(ancestor)
                    .map_err(|e| format!("{}: {e}", ancestor.display()))?;
                check(
                    &|| ancestor.to_path_buf(),
                    meta.uid(),
                    meta.permissions().mode(),
                )?;
            }
        }
    }
    Ok(())
}

fn pidfile_error(path: &Path, err: io::Error) -> Error {
    let hint = match err.raw_os_error() {
        Some(libc::ELOOP) => Some("it is a symlink; pidfiles are never followed through links"),
        Some(libc::ENOENT) => Some("create the directory first"),
        Some(libc::EACCES) | Some(libc::EPERM) => Some("choose a directory you can write to"),
        _ => None,
    };
    let error = Error::os(Step::Pidfile, path.display(), err);
    match hint {
        Some(hint) => error.with_hint(hint),
        None => error,
    }
}

fn already_running(path: &Path, pid: Option<u32>) -> Error {
    let who = match pid {
        Some(pid) => format!("a running daemon (pid {pid})"),
        None => "another process that is starting or stopping a daemon".to_string(),
    };
    Error::new(
        ErrorKind::AlreadyRunning(pid),
        Step::Pidfile,
        format!(
            "pidfile {} is locked by {who}; stop it first or choose another pidfile",
            path.display()
        ),
    )
}

/// Formats `value` in decimal followed by a newline into `buf`; returns the length used.
pub(crate) fn format_decimal(mut value: u32, buf: &mut [u8; 12]) -> usize {
    let mut digits = [0u8; 10];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (value % 10) as u8;
        n += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for i in 0..n {
        buf[i] = digits[n - 1 - i];
    }
    buf[n] = b'\n';
    n + 1
}

/// The pid written in the file at `path`, if it holds one. Only a regular file is read: a FIFO
/// planted at the name never blocks the reader, and a device is never opened as a terminal.
pub(crate) fn read_pid(path: &Path) -> Option<u32> {
    let mut text = String::new();
    crate::status::open_regular(path)
        .ok()?
        .take(64)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok().filter(|&pid| pid > 0)
}

/// What a pidfile says from the outside, without taking its lock.
///
/// # Example
/// ```
/// let dir = tempfile::tempdir()?;
/// let state = daemonic::PidfileState::read(&dir.path().join("none.pid"))?;
/// assert!(!state.exists() && !state.is_locked());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidfileState {
    exists: bool,
    locked: bool,
    locker: Option<u32>,
    pid: Option<u32>,
    dev: u64,
    ino: u64,
}

impl PidfileState {
    /// Reads the pidfile at `path`: whether it exists, whether a process holds its lock, and the
    /// pid it names. On Linux the lock is looked up in `/proc/locks`, so reading never takes the
    /// lock (and never makes a concurrent start fail); elsewhere it is tested with a brief
    /// `flock`.
    pub fn read(path: &Path) -> Result<PidfileState, Error> {
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
        {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Ok(PidfileState {
                    exists: false,
                    locked: false,
                    locker: None,
                    pid: None,
                    dev: 0,
                    ino: 0,
                });
            }
            Err(err) => return Err(pidfile_error(path, err)),
        };
        let meta = file.metadata().map_err(|e| pidfile_error(path, e))?;
        let (locked, locker) =
            lock_holder(&file, meta.dev(), meta.ino()).map_err(|e| pidfile_error(path, e))?;
        Ok(PidfileState {
            exists: true,
            locked,
            locker,
            pid: read_pid(path),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Whether the file exists.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// Whether a process holds the file's lock: a daemon runs (or is being started).
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// The pid written in the file.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The process that took the lock, as `/proc/locks` names it (Linux): the launcher that
    /// started the daemon, which may have exited since.
    pub(crate) fn locker(&self) -> Option<u32> {
        self.locker
    }

    /// The file's device and inode, which identify it in `/proc/PID/fd`.
    pub(crate) fn identity(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

/// Whether a process holds a flock on the file, and which process took it: looked up in
/// `/proc/locks` on Linux, which takes no lock (a concurrent start never sees it held by us);
/// elsewhere, or where `/proc/locks` is hidden, a brief shared `flock` probe (no locker).
fn lock_holder(file: &File, dev: u64, ino: u64) -> io::Result<(bool, Option<u32>)> {
    #[cfg(target_os = "linux")]
    if let Ok(locks) = std::fs::read_to_string("/proc/locks") {
        // Each line: "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; blocked waiters "->".
        let want = format!("{:02x}:{:02x}:{ino}", libc::major(dev), libc::minor(dev));
        for line in locks.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&want.as_str()) {
                return Ok((true, fields.get(4).and_then(|p| p.parse().ok())));
            }
        }
        // Not found there proves nothing: on btrfs `stat()`'s device is not the one
        // /proc/locks names. The lock itself answers.
    }
    let _ = (dev, ino);
    match file.try_lock_shared() {
        Ok(()) => {
            file.unlock()?;
            Ok((false, None))
        }
        Err(TryLockError::WouldBlock) => Ok((true, None)),
        Err(TryLockError::Error(err)) => Err(err),
    }
}

/// Takes the lock of an existing pidfile and removes it, when no daemon holds it any more.
/// Returns whether a file was removed.
pub(crate) fn remove_stale(path: &Path) -> Result<bool, Error> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(pidfile_error(path, err)),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(false),
        Err(TryLockError::Error(err)) => return Err(pidfile_error(path, err)),
    }
    let meta = file.metadata().map_err(|e| pidfile_error(path, e))?;
    let pidfile = Pidfile {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
        lock: file,
        writer: None,
        length: std::cell::Cell::new(0),
    };
    pidfile.remove().map_err(|e| pidfile_error(path, e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_decimal_with_newline() {
        let mut buf = [0u8; 12];
        let n = format_decimal(0, &mut buf);
        assert_eq!(&buf[..n], b"0\n");
        let n = format_decimal(u32::MAX, &mut buf);
        assert_eq!(&buf[..n], b"4294967295\n");
    }

    #[test]
    fn second_acquire_is_refused_and_stale_file_taken_over() {
        let _no_fork = crate::forks_excluded();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pid");
        let first = Pidfile::acquire(&path).unwrap();
        first.write_pid(std::process::id()).unwrap();
        let err = Pidfile::acquire(&path).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::AlreadyRunning(Some(std::process::id()))
        );
        let state = PidfileState::read(&path).unwrap();
        assert!(state.is_locked());
        assert_eq!(state.pid(), Some(std::process::id()));
        drop(first);
        let state = PidfileState::read(&path).unwrap();
        assert!(state.exists() && !state.is_locked());
        let second = Pidfile::acquire(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "",
            "taken over and emptied"
        );
        second.remove().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn symlinks_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("link.pid");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = Pidfile::acquire(&link).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
