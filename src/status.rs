//! The service's status on disk: a small fixed-size binary record the keeper rewrites in place
//! (one `pwrite`) at every transition, beside the pidfile as `PIDFILE.status`, and the lock probe
//! that tells whether its keeper still lives. A checksum over the record makes each read atomic
//! in effect: a reader that caught a write half done sees the checksum fail and reads again. (A
//! new file renamed over the old one would be atomic too, but on ext4 each rename over a file
//! forces a flush: 0.2-0.4 ms on every restart.)
//!
//! Readers need no IPC, no `/proc/PID/fd` and no `/proc/locks`: any user who may read the run
//! directory gets the whole state in two `open`s, one `read` and one `flock` probe. The record is
//! fixed-size little-endian fields followed by the last `STATUS=` text, encoded by hand so that
//! the keeper carries no formatting or serialisation machinery (its memory is a goal).

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, ErrorKind, Step};
use crate::launcher::Readiness;
use crate::signals::signal_name;

const MAGIC: &[u8; 4] = b"DKS2";
const HEADER: usize = 76;
/// The longest log directory a record names.
pub(crate) const LOG_DIR_MAX: usize = 1024;
/// Where the log directory's length sits: after the header and the whole text area.
const DIR_AT: usize = HEADER + STATUS_TEXT_MAX;
const SYSLOG_AT: usize = DIR_AT + 2 + LOG_DIR_MAX;
const CHECKSUM_AT: usize = SYSLOG_AT + 8;
/// Every record has this size: it is written in place, in one write, over the last one.
const RECORD: usize = CHECKSUM_AT + 8;
/// The longest `STATUS=` text kept; longer texts are cut at a character boundary.
pub(crate) const STATUS_TEXT_MAX: usize = 512;

/// Where a supervised service stands.
///
/// # Example
/// ```
/// use daemonic::ServiceState;
/// assert_eq!(ServiceState::Backoff.as_str(), "backoff");
/// assert!(ServiceState::Ready.is_up());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServiceState {
    /// The program runs and has not said it is ready yet.
    Starting,
    /// The program runs; it speaks no readiness protocol.
    Running,
    /// The program runs and said it is ready.
    Ready,
    /// The program exited; the keeper waits before starting it again.
    Backoff,
    /// The keeper is stopping the service (on request, or the leftovers of an exited program).
    Stopping,
    /// The program exited and was not restarted (its policy said so); the keeper has left.
    Exited,
    /// The keeper gave up (or could not start the program); the keeper has left.
    Failed,
    /// The service was stopped on request; the keeper has left.
    Stopped,
}

impl ServiceState {
    pub(crate) const ALL: [ServiceState; 8] = [
        ServiceState::Starting,
        ServiceState::Running,
        ServiceState::Ready,
        ServiceState::Backoff,
        ServiceState::Stopping,
        ServiceState::Exited,
        ServiceState::Failed,
        ServiceState::Stopped,
    ];

    /// The state's name, as `status --json` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Starting => "starting",
            ServiceState::Running => "running",
            ServiceState::Ready => "ready",
            ServiceState::Backoff => "backoff",
            ServiceState::Stopping => "stopping",
            ServiceState::Exited => "exited",
            ServiceState::Failed => "failed",
            ServiceState::Stopped => "stopped",
        }
    }

    /// Whether the program runs in this state.
    pub fn is_up(self) -> bool {
        matches!(
            self,
            ServiceState::Starting | ServiceState::Running | ServiceState::Ready
        )
    }

    /// Whether the keeper has left in this state (the record is its last word).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ServiceState::Exited | ServiceState::Failed | ServiceState::Stopped
        )
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Option<ServiceState> {
        ServiceState::ALL.get(usize::from(code)).copied()
    }
}

/// How a program ended: an exit code or a signal.
///
/// # Example
/// ```
/// use daemonic::Exit;
/// assert_eq!(Exit::from_wait_status(0), Exit::Code(0));
/// assert_eq!(Exit::from_wait_status(9), Exit::Signal { signal: 9, core: false });
/// assert_eq!(Exit::Signal { signal: 15, core: false }.shell_code(), 143);
/// assert_eq!(Exit::Code(3).to_string(), "exit status 3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Exit {
    /// `exit(code)`.
    Code(i32),
    /// Killed by a signal; `core` when it dumped core.
    Signal {
        /// The signal number.
        signal: i32,
        /// Whether a core dump was written.
        core: bool,
    },
}

impl Exit {
    /// Decodes a `waitpid` status.
    pub fn from_wait_status(status: i32) -> Exit {
        if libc::WIFSIGNALED(status) {
            Exit::Signal {
                signal: libc::WTERMSIG(status),
                core: libc::WCOREDUMP(status),
            }
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }
    }

    /// Whether this is exit code 0.
    pub fn is_success(self) -> bool {
        self == Exit::Code(0)
    }

    /// The status a shell reports: the code, or 128 + the signal.
    pub fn shell_code(self) -> u8 {
        match self {
            Exit::Code(code) => (code & 0xff) as u8,
            Exit::Signal { signal, .. } => (128 + (signal & 0x7f)) as u8,
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit status {code}"),
            Exit::Signal { signal, core } => {
                write!(f, "signal {}", signal_name(*signal))?;
                if *core {
                    f.write_str(" (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

/// Why a keeper ended in [`ServiceState::Failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailReason {
    /// Too many failures within the give-up window.
    GaveUp,
    /// The program could not be started (its setup or `execve` failed).
    SpawnFailed,
    /// The program did not become ready (it exited or was stopped before).
    NotReady,
}

impl FailReason {
    /// A short phrase for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::GaveUp => "gave up after too many failures",
            FailReason::SpawnFailed => "the program could not be started",
            FailReason::NotReady => "the program did not become ready",
        }
    }

    fn code(self) -> u8 {
        match self {
            FailReason::GaveUp => 1,
            FailReason::SpawnFailed => 2,
            FailReason::NotReady => 3,
        }
    }

    fn from_code(code: u8) -> Option<FailReason> {
        match code {
            1 => Some(FailReason::GaveUp),
            2 => Some(FailReason::SpawnFailed),
            3 => Some(FailReason::NotReady),
            _ => None,
        }
    }
}

/// What the keeper last wrote, as a reader sees it.
///
/// # Example
/// ```no_run
/// match daemonic::ServiceStatus::read(std::path::Path::new("/run/daemonic/web.pid"))? {
///     Some(status) => println!("{} (pid {:?}, {} restarts)", status.state().as_str(), status.pid(), status.restarts()),
///     None => println!("never started under a keeper"),
/// }
/// # Ok::<(), daemonic::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    pub(crate) state: ServiceState,
    pub(crate) ready: bool,
    pub(crate) keeper_pid: u32,
    pub(crate) pid: Option<u32>,
    pub(crate) since: SystemTime,
    pub(crate) started: SystemTime,
    pub(crate) restarts: u32,
    pub(crate) failures: u32,
    pub(crate) last_exit: Option<(Exit, Duration)>,
    pub(crate) next_restart: Option<SystemTime>,
    pub(crate) reason: Option<FailReason>,
    pub(crate) status_text: String,
    pub(crate) readiness: Readiness,
    pub(crate) log_dropped: u64,
    pub(crate) log_dir: Option<PathBuf>,
    pub(crate) syslog_dropped: u64,
    pub(crate) keeper_alive: bool,
}

impl ServiceStatus {
    /// Reads the status of the service behind `pidfile`: `Ok(None)` when no keeper ever wrote a
    /// record there. Liveness comes from a lock probe on the pidfile (never from `/proc`); a
    /// record whose keeper is gone without a final word reads as [`ServiceState::Failed`].
    ///
    /// Never blocks: a FIFO or device at either path is refused at once.
    pub fn read(pidfile: &Path) -> Result<Option<ServiceStatus>, Error> {
        let path = path_for(pidfile);
        let keeper_alive = is_locked(pidfile)?;
        let file = match open_regular(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(read_error(&path, err)),
        };
        // A record is believed only if it belongs to root, to the reader, or to whoever owns
        // the pidfile: another user may plant files in a shared directory.
        let owner = file.metadata().map_err(|e| read_error(&path, e))?.uid();
        let pidfile_owner = std::fs::symlink_metadata(pidfile).ok().map(|m| m.uid());
        let me = rustix::process::geteuid().as_raw();
        if owner != 0 && owner != me && Some(owner) != pidfile_owner {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                Step::Status,
                format!(
                    "status record {}: owned by uid {owner}, who owns neither the pidfile nor this process; not believed (remove it)",
                    path.display()
                ),
            ));
        }
        // A read that raced the keeper's write fails the checksum: read again (a write takes
        // microseconds; a record that never checks out is not a record).
        let mut bytes = Vec::with_capacity(RECORD + 1);
        let mut decoded = None;
        for _ in 0..1000 {
            bytes.clear();
            use std::os::unix::fs::FileExt;
            bytes.resize(RECORD + 1, 0);
            let n = file
                .read_at(&mut bytes, 0)
                .map_err(|e| read_error(&path, e))?;
            bytes.truncate(n);
            decoded = decode(&bytes);
            if decoded.is_some() || bytes.len() != RECORD {
                break;
            }
            std::thread::yield_now();
        }
        let Some(mut status) = decoded else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                Step::Status,
                format!(
                    "status record {}: not a daemonic status record; remove it",
                    path.display()
                ),
            ));
        };
        status.keeper_alive = keeper_alive;
        if !keeper_alive && !status.state.is_final() {
            // The keeper died without its last word (SIGKILL): its program died with it.
            status.state = ServiceState::Failed;
            status.pid = None;
            status.next_restart = None;
        }
        Ok(Some(status))
    }

    /// The state.
    pub fn state(&self) -> ServiceState {
        self.state
    }

    /// Whether the current run of the program has been ready.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The program's pid while it runs (the one in the pidfile).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The keeper's pid.
    pub fn keeper_pid(&self) -> u32 {
        self.keeper_pid
    }

    /// Whether the keeper still runs (it holds the pidfile's lock).
    pub fn keeper_alive(&self) -> bool {
        self.keeper_alive
    }

    /// When the service entered its state.
    pub fn since(&self) -> SystemTime {
        self.since
    }

    /// When the keeper started.
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// How many times the program was started again.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Consecutive quick failures (the backoff's exponent).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// How the previous run ended and how long it ran.
    pub fn last_exit(&self) -> Option<(Exit, Duration)> {
        self.last_exit
    }

    /// When the next start is due, in [`ServiceState::Backoff`].
    pub fn next_restart(&self) -> Option<SystemTime> {
        self.next_restart
    }

    /// Why the keeper failed, in [`ServiceState::Failed`]; `None` there means its keeper was
    /// killed.
    pub fn reason(&self) -> Option<FailReason> {
        self.reason
    }

    /// Lines of the program's output the log dropped because the disk was full (and nothing was
    /// left to evict), over the keeper's life.
    pub fn log_dropped(&self) -> u64 {
        self.log_dropped
    }

    /// Lines that could not be forwarded to syslog (`--syslog`): its socket was full or absent.
    pub fn syslog_dropped(&self) -> u64 {
        self.syslog_dropped
    }

    /// The log directory the program's output goes to, if it is logged (`--log`).
    pub fn log_dir(&self) -> Option<&Path> {
        self.log_dir.as_deref()
    }

    /// How the program says it is ready.
    pub fn readiness(&self) -> Readiness {
        self.readiness
    }

    /// The program's last `STATUS=` text (sd_notify), empty if none.
    pub fn status_text(&self) -> &str {
        &self.status_text
    }
}

/// The record's path for a pidfile: `PIDFILE.status`.
pub(crate) fn path_for(pidfile: &Path) -> PathBuf {
    sibling(pidfile, ".status")
}

/// `PIDFILE` + `suffix`.
pub(crate) fn sibling(pidfile: &Path, suffix: &str) -> PathBuf {
    let mut name = pidfile.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn read_error(path: &Path, err: io::Error) -> Error {
    Error::os(Step::Status, format!("record {}", path.display()), err)
}

/// Opens `path` for reading without following a symlink and without blocking on a FIFO, and
/// refuses anything but a regular file.
pub(crate) fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// Whether some process holds the pidfile's lock, probed with a shared `flock` that is released
/// at once. A missing pidfile is unlocked.
pub(crate) fn is_locked(pidfile: &Path) -> Result<bool, Error> {
    let file = match open_regular(pidfile) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => {
            return Err(Error::os(
                Step::Status,
                format!("pidfile {}", pidfile.display()),
                err,
            ));
        }
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(false)
        }
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(err)) => Err(Error::os(
            Step::Status,
            format!("pidfile {}", pidfile.display()),
            err,
        )),
    }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn time(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// Encodes a record into `out` (cleared first).
pub(crate) fn encode(status: &ServiceStatus, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(MAGIC);
    let (kind, value, ran) = match status.last_exit {
        None => (0u8, 0i32, 0u64),
        Some((Exit::Code(code), ran)) => (1, code, ran.as_nanos() as u64),
        Some((Exit::Signal { signal, core }, ran)) => {
            (if core { 3 } else { 2 }, signal, ran.as_nanos() as u64)
        }
    };
    out.push(status.state.code());
    out.push(u8::from(status.ready));
    out.push(kind);
    out.push(status.reason.map_or(0, FailReason::code));
    out.extend_from_slice(&value.to_le_bytes());
    out.extend_from_slice(&status.keeper_pid.to_le_bytes());
    out.extend_from_slice(&status.pid.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&status.restarts.to_le_bytes());
    out.extend_from_slice(&status.failures.to_le_bytes());
    out.extend_from_slice(&nanos(status.since).to_le_bytes());
    out.extend_from_slice(&ran.to_le_bytes());
    out.extend_from_slice(&status.next_restart.map_or(0, nanos).to_le_bytes());
    out.extend_from_slice(&nanos(status.started).to_le_bytes());
    out.extend_from_slice(&status.log_dropped.to_le_bytes());
    let text = status.status_text.as_bytes();
    let len = text.len().min(STATUS_TEXT_MAX);
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    let (kind, fd) = match status.readiness {
        Readiness::Exec => (0u8, 0i32),
        Readiness::Notify => (1, 0),
        Readiness::Fd(fd) => (2, fd),
    };
    out.push(kind);
    out.extend_from_slice(&(fd.clamp(0, 0xff_ffff) as u32).to_le_bytes()[..3]);
    out.extend_from_slice(&text[..len]);
    out.resize(DIR_AT, 0);
    let dir = status.log_dir.as_ref().map_or(&[][..], |d| {
        std::os::unix::ffi::OsStrExt::as_bytes(d.as_os_str())
    });
    let dir = &dir[..dir.len().min(LOG_DIR_MAX)];
    out.extend_from_slice(&(dir.len() as u16).to_le_bytes());
    out.extend_from_slice(dir);
    out.resize(SYSLOG_AT, 0);
    out.extend_from_slice(&status.syslog_dropped.to_le_bytes());
    let sum = checksum(&out[..CHECKSUM_AT]);
    out.extend_from_slice(&sum.to_le_bytes());
}

/// FNV-1a over the record: catches a read that raced a write (not an attacker: the record is
/// believed only from its owner anyway).
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Decodes a record; `None` if it is not one.
pub(crate) fn decode(bytes: &[u8]) -> Option<ServiceStatus> {
    if bytes.len() != RECORD || &bytes[..4] != MAGIC {
        return None;
    }
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&bytes[CHECKSUM_AT..RECORD]);
    if u64::from_le_bytes(sum) != checksum(&bytes[..CHECKSUM_AT]) {
        return None;
    }
    let u32_at =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let u64_at = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    let value = u32_at(8) as i32;
    let ran = Duration::from_nanos(u64_at(36));
    let last_exit = match bytes[6] {
        0 => None,
        1 => Some((Exit::Code(value), ran)),
        2 | 3 => Some((
            Exit::Signal {
                signal: value,
                core: bytes[6] == 3,
            },
            ran,
        )),
        _ => return None,
    };
    let len = usize::from(u16::from_le_bytes([bytes[68], bytes[69]])).min(STATUS_TEXT_MAX);
    let text = bytes.get(HEADER..HEADER + len)?;
    let n = usize::from(u16::from_le_bytes([bytes[DIR_AT], bytes[DIR_AT + 1]])).min(LOG_DIR_MAX);
    let dir = bytes.get(DIR_AT + 2..DIR_AT + 2 + n)?;
    let log_dir = (n > 0)
        .then(|| PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(dir)));
    let syslog_dropped = u64_at(SYSLOG_AT);
    let pid = u32_at(16);
    let next = u64_at(44);
    Some(ServiceStatus {
        state: ServiceState::from_code(bytes[4])?,
        ready: bytes[5] & 1 != 0,
        reason: FailReason::from_code(bytes[7]),
        keeper_pid: u32_at(12),
        pid: (pid != 0).then_some(pid),
        restarts: u32_at(20),
        failures: u32_at(24),
        since: time(u64_at(28)),
        last_exit,
        next_restart: (next != 0).then(|| time(next)),
        started: time(u64_at(52)),
        status_text: String::from_utf8_lossy(text).into_owned(),
        readiness: match bytes[72] {
            0 => Readiness::Exec,
            1 => Readiness::Notify,
            2 => Readiness::Fd(u32::from_le_bytes([bytes[73], bytes[74], bytes[75], 0]) as i32),
            _ => return None,
        },
        log_dropped: u64_at(60),
        log_dir,
        syslog_dropped,
        keeper_alive: true,
    })
}

/// The keeper's writer: rewrites the record in place with one `pwrite` (see the module's docs),
/// reusing its buffer and its open file.
#[derive(Debug)]
pub(crate) struct Writer {
    path: PathBuf,
    file: Option<File>,
    buffer: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(pidfile: &Path) -> Writer {
        Writer {
            path: path_for(pidfile),
            file: None,
            buffer: Vec::with_capacity(RECORD),
        }
    }

    /// Writes `status`. The file is opened once: an existing record of ours (an earlier keeper's,
    /// or this keeper's before its re-exec) is reused; anything else at the name is removed and the
    /// file created anew (`O_EXCL`, never followed), so nothing planted is written through.
    pub(crate) fn write(&mut self, status: &ServiceStatus) -> io::Result<()> {
        encode(status, &mut self.buffer);
        if self.file.is_none() {
            self.file = Some(self.open()?);
        }
        let Some(file) = &self.file else {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        };
        use std::os::unix::fs::FileExt;
        file.write_all_at(&self.buffer, 0)
    }

    fn open(&self) -> io::Result<File> {
        let me = rustix::process::geteuid().as_raw();
        if let Ok(file) = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&self.path)
            && let Ok(meta) = file.metadata()
            && meta.is_file()
            && meta.uid() == me
            && meta.len() == RECORD as u64
        {
            return Ok(file);
        }
        let _ = std::fs::remove_file(&self.path);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY)
            .open(&self.path)
    }

    /// Removes the record (a stop that wants nothing left behind).
    pub(crate) fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ServiceStatus {
        ServiceStatus {
            state: ServiceState::Backoff,
            ready: true,
            keeper_pid: 77,
            pid: Some(1234),
            since: time(1_700_000_000_123_456_789),
            started: time(1_700_000_000_000_000_000),
            restarts: 5,
            failures: 2,
            last_exit: Some((
                Exit::Signal {
                    signal: 11,
                    core: true,
                },
                Duration::from_millis(1500),
            )),
            next_restart: Some(time(1_700_000_002_000_000_000)),
            reason: None,
            status_text: "serving 3 clients".into(),
            readiness: Readiness::Fd(3),
            log_dropped: 17,
            log_dir: Some(PathBuf::from("/var/log/svc")),
            syslog_dropped: 3,
            keeper_alive: true,
        }
    }

    #[test]
    fn records_round_trip() {
        let mut bytes = Vec::new();
        encode(&sample(), &mut bytes);
        assert_eq!(decode(&bytes), Some(sample()));
        let mut other = sample();
        other.last_exit = Some((Exit::Code(-1), Duration::ZERO));
        other.pid = None;
        other.next_restart = None;
        other.state = ServiceState::Failed;
        other.reason = Some(FailReason::GaveUp);
        encode(&other, &mut bytes);
        assert_eq!(decode(&bytes), Some(other));
    }

    #[test]
    fn a_torn_record_fails_its_checksum() {
        let mut bytes = Vec::new();
        encode(&sample(), &mut bytes);
        assert_eq!(bytes.len(), RECORD);
        let mut torn = bytes.clone();
        torn[20] ^= 1;
        assert_eq!(decode(&torn), None);
    }

    #[test]
    fn garbage_is_not_a_record() {
        assert_eq!(decode(b"DKS2"), None);
        assert_eq!(decode(&[0u8; 100]), None);
        let mut bytes = Vec::new();
        encode(&sample(), &mut bytes);
        bytes[4] = 99;
        assert_eq!(decode(&bytes), None);
    }

    #[test]
    fn a_written_record_is_read_back_with_liveness_from_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("svc.pid");
        std::fs::write(&pidfile, "1234\n").unwrap();
        let mut writer = Writer::new(&pidfile);
        writer.write(&sample()).unwrap();
        // Nobody holds the lock: a keeper that left without its last word.
        let read = ServiceStatus::read(&pidfile).unwrap().unwrap();
        assert_eq!(read.state(), ServiceState::Failed);
        assert!(!read.keeper_alive());
        let lock = File::open(&pidfile).unwrap();
        lock.lock().unwrap();
        let read = ServiceStatus::read(&pidfile).unwrap().unwrap();
        assert_eq!(read.state(), ServiceState::Backoff);
        assert!(read.keeper_alive());
        assert_eq!(read.restarts(), 5);
    }
}
