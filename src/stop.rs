//! Finding, signalling, stopping and restarting a daemon through its pidfile.
//!
//! A supervised service ([`Daemon::supervise`](crate::Daemon::supervise)) is controlled through
//! its keeper's socket: the keeper knows its program and every process beneath it, so a stop
//! ends all of them. A program that became a daemon itself ([`Daemon::start`](crate::Daemon::start))
//! has no keeper; it holds its pidfile's lock, and only the process that holds that lock and has
//! the file open is ever signalled, through a pidfd opened before that check: a pid reused by an
//! unrelated process after a crash names a process without that file, and is left alone.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Step};
use crate::pidfile::{self, PidfileState};
use crate::process::Process;
use crate::signals::{parse_signal, signal_name};

/// Who a pidfile says runs.
#[derive(Debug)]
#[non_exhaustive]
pub enum Holder {
    /// A live process holds the lock and has the file open: this is the daemon.
    Running(Process),
    /// Nobody holds the lock, but the file is there (the daemon died); the pid it names, if any.
    Dead(Option<u32>),
    /// There is no pidfile.
    Absent,
    /// The lock is held, but not by the pid the file names (a start in progress, or a child of a
    /// dead daemon that inherited the lock); the pid named, if any.
    Unverified(Option<u32>),
}

/// Looks up the daemon behind `pidfile` without disturbing it.
///
/// # Example
/// ```
/// use daemonic::stop::{holder, Holder};
/// let dir = tempfile::tempdir()?;
/// assert!(matches!(holder(&dir.path().join("x.pid"))?, Holder::Absent));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn holder(pidfile: &Path) -> Result<Holder, Error> {
    let state = PidfileState::read(pidfile)?;
    if !state.exists() {
        return Ok(Holder::Absent);
    }
    if !state.is_locked() {
        return Ok(Holder::Dead(state.pid()));
    }
    let Some(pid) = state.pid() else {
        return Ok(Holder::Unverified(None));
    };
    let Ok(process) = Process::open(pid) else {
        return Ok(Holder::Unverified(Some(pid)));
    };
    let (dev, ino) = state.identity();
    match process.holds_file(dev, ino) {
        // Checked after the pidfd was opened: if the pid had been reused in between, the new
        // process would not have our pidfile open.
        Ok(true) if process.is_alive() => Ok(Holder::Running(process)),
        Ok(_) => Ok(Holder::Unverified(Some(pid))),
        Err(err) => Err(Error::os(
            Step::Status,
            format!(
                "whether pid {pid} holds {} (reading /proc/{pid}/fd)",
                pidfile.display()
            ),
            err,
        )
        .with_hint("run as root or as the daemon's user to tell")),
    }
}

/// Whether the daemon behind `pidfile` is still being started: the launcher that took the lock
/// is alive, is not the daemon, and still has the pidfile open (it keeps it until the daemon is
/// ready or has failed). Derived from the kernel's lock table, so it needs no record. Linux.
///
/// # Example
/// ```
/// let dir = tempfile::tempdir()?;
/// assert!(!daemonic::stop::is_starting(&dir.path().join("x.pid"), std::process::id()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn is_starting(pidfile: &Path, daemon: u32) -> bool {
    let Ok(state) = PidfileState::read(pidfile) else {
        return false;
    };
    let Some(locker) = state.locker().filter(|&l| l != daemon) else {
        return false;
    };
    let (dev, ino) = state.identity();
    // The pidfd pins the locker; the file check then rules out a pid reused since it exited.
    Process::open(locker).is_ok_and(|p| p.is_alive() && p.holds_file(dev, ino).unwrap_or(false))
}

/// The least a wait right after a `KILL` lasts (see [`Schedule::step_to_run`]).
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(2);

/// One step of a stop schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Send this signal.
    Signal(libc::c_int),
    /// Wait this long for the process to exit.
    Wait(Duration),
    /// start-stop-daemon's `forever`: once the schedule's end is reached with something still
    /// running, go on from the step after this one, again and again.
    Forever,
}

/// A stop schedule in start-stop-daemon's syntax: `TERM/30/KILL/5` (signal, seconds to wait,
/// ...), or a plain number of seconds `N`, meaning `TERM/N/KILL/N`.
///
/// As in start-stop-daemon, a signal may be written `-TERM` or `-15` too, a wait may have a
/// fraction (`0.5`, to the millisecond), and `forever` repeats the steps after it until nothing
/// is left (`TERM/5/forever/KILL/5`).
///
/// # Example
/// ```
/// use daemonic::stop::Schedule;
/// let schedule: Schedule = "TERM/30/KILL/5".parse().unwrap();
/// assert_eq!(schedule.to_string(), "TERM/30/KILL/5");
/// assert_eq!("10".parse::<Schedule>().unwrap().to_string(), "TERM/10/KILL/10");
/// assert_eq!("-15/0.5/-KILL/2".parse::<Schedule>().unwrap().to_string(), "TERM/0.5/KILL/2");
/// assert_eq!("TERM/5/forever/KILL/5".parse::<Schedule>().unwrap().total_wait(), None);
/// assert!("TERM/soon".parse::<Schedule>().is_err());
/// assert!("TERM/5/forever/KILL".parse::<Schedule>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    actions: Vec<Action>,
}

impl Schedule {
    /// The most steps a schedule may have (it travels to a keeper in a fixed-size request).
    pub const MAX_ACTIONS: usize = 24;

    /// The default: `TERM/10/KILL/5`.
    pub fn default_schedule() -> Schedule {
        Schedule {
            actions: vec![
                Action::Signal(libc::SIGTERM),
                Action::Wait(Duration::from_secs(10)),
                Action::Signal(libc::SIGKILL),
                Action::Wait(Duration::from_secs(5)),
            ],
        }
    }

    /// The schedule with its first signal replaced (for `stop --signal`).
    #[must_use]
    pub fn with_first_signal(mut self, signal: libc::c_int) -> Schedule {
        if let Some(Action::Signal(first)) = self.actions.first_mut() {
            *first = signal;
        }
        self
    }

    /// The steps, in order.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// The step at position `at` and the position after it, going back round after a
    /// [`Action::Forever`] once the end is reached; `None` at the end of a schedule without one.
    /// `forever` itself is never returned.
    ///
    /// # Example
    /// ```
    /// use daemonic::stop::{Action, Schedule};
    /// let s: Schedule = "TERM/1/forever/KILL/2".parse().unwrap();
    /// assert_eq!(s.step(2), Some((Action::Signal(libc::SIGKILL), 4)));
    /// assert_eq!(s.step(5), Some((Action::Signal(libc::SIGKILL), 4)));
    /// assert_eq!("TERM/1".parse::<Schedule>().unwrap().step(2), None);
    /// ```
    pub fn step(&self, at: usize) -> Option<(Action, usize)> {
        let mut at = at;
        // Bounded: a well-formed schedule has a wait after its `forever`.
        for _ in 0..=2 * self.actions.len() {
            match self.actions.get(at) {
                Some(Action::Forever) => at += 1,
                Some(action) => return Some((*action, at + 1)),
                None => at = self.actions.iter().position(|a| *a == Action::Forever)? + 1,
            }
        }
        None
    }

    /// The step at `at` as it is carried out (by a keeper, or by [`stop`] without one): as
    /// [`step`](Schedule::step) returns it, except that a wait right after a `KILL` lasts at
    /// least [`KILL_GRACE`]: the kernel needs a moment to end a process, and a schedule such as
    /// `TERM/0/KILL/0` must not report failure for a process about to die.
    pub(crate) fn step_to_run(&self, at: usize) -> Option<(Action, usize)> {
        let (action, next) = self.step(at)?;
        let after_kill = next >= 2 && self.actions[next - 2] == Action::Signal(libc::SIGKILL);
        Some(match action {
            Action::Wait(d) if after_kill => (Action::Wait(d.max(KILL_GRACE)), next),
            other => (other, next),
        })
    }

    /// How long the whole schedule may wait; `None` with `forever`.
    ///
    /// # Example
    /// ```
    /// let s: daemonic::stop::Schedule = "TERM/1.5/KILL/2".parse().unwrap();
    /// assert_eq!(s.total_wait(), Some(std::time::Duration::from_millis(3500)));
    /// ```
    pub fn total_wait(&self) -> Option<Duration> {
        self.actions
            .iter()
            .try_fold(Duration::ZERO, |total, a| match a {
                Action::Wait(d) => Some(total.saturating_add(*d)),
                Action::Signal(_) => Some(total),
                Action::Forever => None,
            })
    }

    /// A schedule from its steps: it must start with a signal and end with a wait; after a
    /// `forever` (at most one) the steps must wait at least 0.1 s in all.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use daemonic::stop::{Action, Schedule};
    /// let s = Schedule::from_actions(vec![Action::Signal(libc::SIGINT), Action::Wait(Duration::from_secs(3))]);
    /// assert_eq!(s.unwrap().to_string(), "INT/3");
    /// assert!(Schedule::from_actions(vec![Action::Wait(Duration::from_secs(3))]).is_none());
    /// ```
    pub fn from_actions(actions: Vec<Action>) -> Option<Schedule> {
        let forever = actions.iter().position(|a| *a == Action::Forever);
        // What repeats waits long enough not to become a hot loop of signals.
        let repeats_well = forever.is_none_or(|at| {
            let waits: Duration = actions[at + 1..]
                .iter()
                .map(|a| match a {
                    Action::Wait(d) => *d,
                    _ => Duration::ZERO,
                })
                .sum();
            actions.iter().filter(|a| **a == Action::Forever).count() == 1
                && waits >= Duration::from_millis(100)
        });
        let well_formed = actions.len() <= Schedule::MAX_ACTIONS
            && matches!(actions.first(), Some(Action::Signal(_)))
            && matches!(actions.last(), Some(Action::Wait(_)))
            && repeats_well;
        well_formed.then_some(Schedule { actions })
    }
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule::default_schedule()
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Schedule, String> {
        // Seconds, to the millisecond (start-stop-daemon takes whole seconds; a fraction is
        // ours), at most what a keeper's request carries (2^32 - 1 ms, 49 days).
        let seconds = |item: &str| -> Result<Duration, String> {
            let (whole, fraction) = item.split_once('.').unwrap_or((item, ""));
            let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
            if whole.is_empty() && fraction.is_empty()
                || !digits(whole)
                || !digits(fraction)
                || fraction.len() > 3
                || (item.contains('.') && fraction.is_empty())
            {
                return Err(format!(
                    "{item:?} is neither a signal nor a number of seconds (to the millisecond, as 2 or 0.25)"
                ));
            }
            let too_long = || format!("{item:?}: a wait of at most 49 days (4294967 s)");
            let whole: u64 = match whole {
                "" => 0,
                digits => digits.parse().map_err(|_| too_long())?,
            };
            let fraction: u64 = format!("{fraction:0<3}").parse().unwrap_or(0);
            let millis = whole
                .checked_mul(1000)
                .and_then(|ms| ms.checked_add(fraction))
                .filter(|&ms| ms <= u64::from(u32::MAX))
                .ok_or_else(too_long)?;
            Ok(Duration::from_millis(millis))
        };
        if !text.contains('/') {
            let wait = seconds(text)?;
            return Ok(Schedule {
                actions: vec![
                    Action::Signal(libc::SIGTERM),
                    Action::Wait(wait),
                    Action::Signal(libc::SIGKILL),
                    Action::Wait(wait),
                ],
            });
        }
        let mut actions = Vec::new();
        for item in text.split('/') {
            if item.eq_ignore_ascii_case("forever") {
                if actions.contains(&Action::Forever) {
                    return Err("a schedule has at most one forever".into());
                }
                actions.push(Action::Forever);
            } else if item.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
                actions.push(Action::Wait(seconds(item)?));
            } else if item.starts_with('+') || item.is_empty() {
                return Err(format!(
                    "{item:?} is neither a signal nor a number of seconds"
                ));
            } else {
                // start-stop-daemon's -TERM and -15 are signals too.
                let name = item.strip_prefix('-').unwrap_or(item);
                let signal =
                    parse_signal(name).ok_or_else(|| format!("{item:?} is not a signal name"))?;
                actions.push(Action::Signal(signal));
            }
        }
        if actions.len() > Schedule::MAX_ACTIONS {
            return Err(format!(
                "a schedule has at most {} steps (this one has {})",
                Schedule::MAX_ACTIONS,
                actions.len()
            ));
        }
        if !matches!(actions.first(), Some(Action::Signal(_))) {
            return Err("a schedule starts with a signal, as in TERM/30/KILL/5".into());
        }
        if !matches!(actions.last(), Some(Action::Wait(_))) {
            return Err("a schedule ends with a number of seconds to wait".into());
        }
        Schedule::from_actions(actions).ok_or_else(|| {
            "the steps after forever must wait at least 0.1 s in all, as in TERM/5/forever/KILL/5"
                .into()
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .actions
            .iter()
            .map(|a| match a {
                // A number alone would read back as a wait.
                Action::Signal(s) => {
                    let name = signal_name(*s);
                    if name.starts_with(|c: char| c.is_ascii_digit()) {
                        format!("-{name}")
                    } else {
                        name
                    }
                }
                Action::Wait(d) if d.subsec_millis() == 0 => d.as_secs().to_string(),
                Action::Wait(d) => format!("{:.3}", d.as_secs_f64())
                    .trim_end_matches('0')
                    .to_string(),
                Action::Forever => "forever".to_string(),
            })
            .collect();
        f.write_str(&parts.join("/"))
    }
}

/// What [`stop`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stopped {
    /// The daemon with this pid was running and has exited.
    Stopped(u32),
    /// No daemon ran; `true` when a stale pidfile was removed.
    NotRunning(bool),
}

/// Stops the daemon behind `pidfile` following `schedule`, waits until it is gone, and removes
/// the pidfile.
///
/// Fails with [`ErrorKind::StillRunning`] when the daemon outlives the schedule, and with
/// [`ErrorKind::AlreadyRunning`] when the lock is held by a process the file does not name.
///
/// # Example
/// ```
/// use daemonic::stop::{stop, Schedule, Stopped};
/// let dir = tempfile::tempdir()?;
/// let outcome = stop(&dir.path().join("app.pid"), &"TERM/30/KILL/5".parse::<Schedule>()?)?;
/// assert_eq!(outcome, Stopped::NotRunning(false));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn stop(pidfile: &Path, schedule: &Schedule) -> Result<Stopped, Error> {
    reject_non_regular(pidfile)?;
    if let Some(pid) = crate::control::stop(pidfile, schedule)? {
        // The keeper removes the pidfile as it leaves; where it could not (a read-only
        // directory), try again, only under the lock: a start may have taken the name since.
        // What is left then stays, for the caller to report.
        let _ = pidfile::remove_stale(pidfile);
        return Ok(Stopped::Stopped(pid));
    }
    let process = match holder(pidfile)? {
        Holder::Running(process) => process,
        Holder::Absent => return Ok(Stopped::NotRunning(false)),
        Holder::Dead(_) => return Ok(Stopped::NotRunning(pidfile::remove_stale(pidfile)?)),
        Holder::Unverified(pid) => return Err(unverified(pidfile, pid)),
    };
    let pid = process.pid();
    let mut gone = false;
    let mut at = 0;
    while let Some((action, next)) = schedule.step_to_run(at) {
        at = next;
        match action {
            Action::Signal(signal) => {
                if let Err(err) = process.signal(signal) {
                    if err.raw_os_error() == Some(libc::ESRCH) {
                        gone = true;
                        break;
                    }
                    return Err(Error::os(
                        Step::Signal,
                        format!("{} to pid {pid}", signal_name(signal)),
                        err,
                    ));
                }
            }
            Action::Wait(duration) => {
                if process.wait_exit(duration) {
                    gone = true;
                    break;
                }
            }
            Action::Forever => {}
        }
    }
    if !gone {
        return Err(Error::new(
            ErrorKind::StillRunning,
            Step::Signal,
            format!(
                "daemon (pid {pid}) is still running after the schedule {schedule}; try a longer one or KILL"
            ),
        ));
    }
    pidfile::remove_stale(pidfile)?;
    Ok(Stopped::Stopped(pid))
}

/// Sends `signal` to the daemon behind `pidfile`; returns its pid.
///
/// Fails with [`ErrorKind::NotRunning`] when no daemon holds the pidfile.
///
/// # Example
/// ```
/// let dir = tempfile::tempdir()?;
/// let err = daemonic::stop::signal(&dir.path().join("app.pid"), libc::SIGHUP).unwrap_err();
/// assert_eq!(err.kind(), daemonic::ErrorKind::NotRunning);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn signal(pidfile: &Path, signal: libc::c_int) -> Result<u32, Error> {
    signal_to(pidfile, signal, false)
}

/// Sends `signal` to the whole process group of a supervised program; returns its pid.
///
/// # Example
/// ```
/// let dir = tempfile::tempdir()?;
/// let err = daemonic::stop::signal_group(&dir.path().join("app.pid"), libc::SIGHUP).unwrap_err();
/// assert_eq!(err.kind(), daemonic::ErrorKind::NotRunning);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn signal_group(pidfile: &Path, signal: libc::c_int) -> Result<u32, Error> {
    signal_to(pidfile, signal, true)
}

/// Restarts a supervised program in place: its keeper checks that the program can still be
/// started, stops it (the whole service) with `schedule`, and starts it again at once. Returns
/// the new pid once the program is up (ready, if it speaks a readiness protocol), or fails
/// when it is not up `timeout` after the schedule's waits (with `forever`, it waits as long as
/// the old program takes to go).
///
/// Fails with [`ErrorKind::NotRunning`] when no keeper runs: a stopped service is started with
/// [`Daemon::supervise`](crate::Daemon::supervise), which knows the program; nothing is replayed
/// from a file.
///
/// # Example
/// ```
/// use daemonic::stop::{restart, Schedule};
/// let dir = tempfile::tempdir()?;
/// let err = restart(&dir.path().join("app.pid"), &Schedule::default(), std::time::Duration::from_secs(60)).unwrap_err();
/// assert_eq!(err.kind(), daemonic::ErrorKind::NotRunning);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn restart(pidfile: &Path, schedule: &Schedule, timeout: Duration) -> Result<u32, Error> {
    reject_non_regular(pidfile)?;
    crate::control::restart(pidfile, schedule, timeout)?.ok_or_else(|| {
        Error::new(
            ErrorKind::NotRunning,
            Step::Control,
            format!("no keeper holds {}", pidfile.display()),
        )
    })
}

/// Rotates a supervised service's log (`--log`), or reopens its output file (`-o`), so that
/// logrotate can rename the file and have nothing more written to it (`postrotate daemonic
/// reopen -n NAME`, no `copytruncate`).
///
/// # Example
/// ```
/// let dir = tempfile::tempdir()?;
/// let err = daemonic::stop::reopen(&dir.path().join("app.pid")).unwrap_err();
/// assert_eq!(err.kind(), daemonic::ErrorKind::NotRunning);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn reopen(pidfile: &Path) -> Result<(), Error> {
    reject_non_regular(pidfile)?;
    crate::control::reopen(pidfile)?.ok_or_else(|| {
        Error::new(
            ErrorKind::NotRunning,
            Step::Control,
            format!("no keeper holds {}", pidfile.display()),
        )
    })
}

/// Refuses at once a FIFO, directory or device where a pidfile should be (nothing blocks on it).
fn reject_non_regular(pidfile: &Path) -> Result<(), Error> {
    match std::fs::symlink_metadata(pidfile) {
        Ok(meta) if !meta.is_file() => Err(Error::new(
            ErrorKind::InvalidInput,
            Step::Pidfile,
            format!("pidfile {}: not a regular file", pidfile.display()),
        )),
        _ => Ok(()),
    }
}

fn signal_to(pidfile: &Path, signal: libc::c_int, group: bool) -> Result<u32, Error> {
    reject_non_regular(pidfile)?;
    if let Some(pid) = crate::control::signal(pidfile, signal, group)? {
        return Ok(pid);
    }
    match holder(pidfile)? {
        // Without a keeper there is no group of ours to name: say so rather than reach one
        // process of it.
        Holder::Running(process) if group => Err(Error::new(
            ErrorKind::InvalidInput,
            Step::Signal,
            format!(
                "pid {} has no keeper, so its process group is not known; signal it alone (without --group)",
                process.pid()
            ),
        )),
        Holder::Running(process) => {
            process.signal(signal).map_err(|e| {
                Error::os(
                    Step::Signal,
                    format!("{} to pid {}", signal_name(signal), process.pid()),
                    e,
                )
            })?;
            Ok(process.pid())
        }
        Holder::Unverified(pid) => Err(unverified(pidfile, pid)),
        Holder::Absent | Holder::Dead(_) => Err(Error::new(
            ErrorKind::NotRunning,
            Step::Signal,
            format!("no daemon holds {}", pidfile.display()),
        )),
    }
}

fn unverified(pidfile: &Path, pid: Option<u32>) -> Error {
    let named = pid.map_or_else(|| "names no pid".to_string(), |p| format!("names pid {p}"));
    Error::new(
        ErrorKind::AlreadyRunning(pid),
        Step::Signal,
        format!(
            "{} is locked, but {named}, which does not hold it (a start in progress, or a leftover child of the daemon); nothing was signalled",
            pidfile.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_start_stop_daemon_schedules() {
        let s: Schedule = "HUP/1/TERM/2/KILL/3".parse().unwrap();
        assert_eq!(s.actions().len(), 6);
        assert_eq!(s.actions()[0], Action::Signal(libc::SIGHUP));
        assert_eq!(s.actions()[5], Action::Wait(Duration::from_secs(3)));
        assert!("KILL".parse::<Schedule>().is_err());
        assert!("5/KILL".parse::<Schedule>().is_err());
        assert!("NOPE/5".parse::<Schedule>().is_err());
        assert!("TERM/18446744073709551615".parse::<Schedule>().is_err());
        assert!("99999999999".parse::<Schedule>().is_err());
        let long = ["CONT/0"; 12].join("/") + "/TERM/1";
        assert!(long.parse::<Schedule>().is_err(), "25 steps");
        assert_eq!(Schedule::default().to_string(), "TERM/10/KILL/5");
    }

    #[test]
    fn waits_are_seconds_to_the_millisecond_and_signals_print_back_as_signals() {
        let ms = |text: &str| match text.parse::<Schedule>().map(|s| s.actions()[1]) {
            Ok(Action::Wait(d)) => Some(d.as_millis()),
            _ => None,
        };
        assert_eq!(ms("TERM/.5"), Some(500));
        assert_eq!(ms("TERM/0.025"), Some(25));
        assert_eq!(ms("TERM/4294967.295"), Some(4_294_967_295));
        for bad in [
            "TERM/0.0004",
            "TERM/1e3",
            "TERM/inf",
            "TERM/NaN",
            "TERM/5.",
            "TERM/.",
            "TERM/4294967.296",
            "+5/5",
            "TERM/+5",
            "TERM//5",
        ] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
        for text in [
            "-40/5",
            "-15/0.5/forever/-KILL/1.25",
            "TERM/5/forever/KILL/5",
        ] {
            let s: Schedule = text.parse().unwrap();
            assert_eq!(
                s.to_string().parse::<Schedule>().unwrap(),
                s,
                "{text} -> {s}"
            );
        }
        assert_eq!("-40/5".parse::<Schedule>().unwrap().to_string(), "-40/5");
        // What repeats must wait 0.1 s in all, or forever is a hot loop.
        assert!("TERM/forever/HUP/0.001".parse::<Schedule>().is_err());
        assert!(
            "TERM/forever/HUP/0.05/KILL/0.05"
                .parse::<Schedule>()
                .is_ok()
        );
    }
}
