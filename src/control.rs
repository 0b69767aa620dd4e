//! Talking to a keeper: a Unix stream socket beside the pidfile (`PIDFILE.sock`), one fixed-size
//! request and one fixed-size reply per connection.
//!
//! A socket, unlike runit's FIFO, fails at once when its keeper is gone (`ECONNREFUSED`), so no
//! command ever blocks on a dead service. The keeper answers only root and its own user (checked
//! with `SO_PEERCRED`); the socket's mode (0600 through the keeper's umask and an explicit
//! `chmod`) keeps everyone else out before that.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Step};
use crate::signals::signal_name;
use crate::status::{self, ServiceStatus, sibling};
use crate::stop::{Action, Schedule};

pub(crate) const REQUEST: usize = 128;
pub(crate) const REPLY: usize = 16;
const MAX_ACTIONS: usize = 24;

/// The socket's path for a pidfile.
pub(crate) fn socket_path(pidfile: &Path) -> PathBuf {
    sibling(pidfile, ".sock")
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// Stop the whole service with this schedule; the keeper then leaves.
    Stop(Schedule),
    /// Stop the program with this schedule and start it again.
    Restart(Schedule),
    /// Send a signal to the program (or its process group).
    Signal { signal: i32, group: bool },
    /// Rotate the log, or reopen the output file.
    Reopen,
}

impl Request {
    pub(crate) fn encode(&self) -> [u8; REQUEST] {
        let mut buf = [0u8; REQUEST];
        let schedule = match self {
            Request::Stop(s) => {
                buf[0] = 1;
                Some(s)
            }
            Request::Restart(s) => {
                buf[0] = 2;
                Some(s)
            }
            Request::Signal { signal, group } => {
                buf[0] = 3;
                buf[1] = u8::from(*group);
                buf[2..6].copy_from_slice(&signal.to_le_bytes());
                None
            }
            Request::Reopen => {
                buf[0] = 4;
                None
            }
        };
        if let Some(schedule) = schedule {
            let actions = &schedule.actions()[..schedule.actions().len().min(MAX_ACTIONS)];
            buf[6] = actions.len() as u8;
            for (i, action) in actions.iter().enumerate() {
                let at = 7 + i * 5;
                let (kind, value) = match *action {
                    Action::Signal(s) => (1u8, s as u32),
                    Action::Wait(d) => (2u8, u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
                    Action::Forever => (3u8, 0),
                };
                buf[at] = kind;
                buf[at + 1..at + 5].copy_from_slice(&value.to_le_bytes());
            }
        }
        buf
    }

    pub(crate) fn decode(buf: &[u8; REQUEST]) -> Option<Request> {
        let word = |at: usize| u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let schedule = || -> Option<Schedule> {
            let n = usize::from(buf[6]);
            if n == 0 || n > MAX_ACTIONS {
                return None;
            }
            let mut actions = Vec::with_capacity(n);
            for i in 0..n {
                let at = 7 + i * 5;
                let value = word(at + 1);
                actions.push(match buf[at] {
                    1 if (1..65).contains(&value) => Action::Signal(value as i32),
                    2 => Action::Wait(Duration::from_millis(u64::from(value))),
                    3 => Action::Forever,
                    _ => return None,
                });
            }
            Schedule::from_actions(actions)
        };
        match buf[0] {
            1 => Some(Request::Stop(schedule()?)),
            2 => Some(Request::Restart(schedule()?)),
            3 => {
                let signal = word(2) as i32;
                (0..65).contains(&signal).then_some(Request::Signal {
                    signal,
                    group: buf[1] != 0,
                })
            }
            4 => Some(Request::Reopen),
            _ => None,
        }
    }
}

/// The keeper's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Done; the pid concerned (the stopped, signalled or new program), 0 if none.
    Done(u32),
    /// The stop schedule ran out and something still runs; the keeper goes on waiting.
    Overrun(u32),
    /// The restarted program did not come up: how it ended (a `waitpid` status), if it ran.
    NotUp(Option<i32>),
    /// Nothing runs to signal (the service is between restarts).
    NotRunning,
    /// The program cannot be started as it was (checked before stopping anything).
    Invalid(i32),
    /// The asker may not control this keeper.
    Refused,
    /// The request made no sense.
    BadRequest,
}

impl Reply {
    pub(crate) fn encode(self) -> [u8; REPLY] {
        let mut buf = [0u8; REPLY];
        let (code, pid, value) = match self {
            Reply::Done(pid) => (0u8, pid, 0i32),
            Reply::Overrun(pid) => (1, pid, 0),
            Reply::NotUp(status) => (2, u32::from(status.is_some()), status.unwrap_or(0)),
            Reply::NotRunning => (3, 0, 0),
            Reply::Invalid(errno) => (4, 0, errno),
            Reply::Refused => (5, 0, 0),
            Reply::BadRequest => (6, 0, 0),
        };
        buf[0] = code;
        buf[4..8].copy_from_slice(&pid.to_le_bytes());
        buf[8..12].copy_from_slice(&value.to_le_bytes());
        buf
    }

    fn decode(buf: &[u8; REPLY]) -> Option<Reply> {
        let pid = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let value = i32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
        Some(match buf[0] {
            0 => Reply::Done(pid),
            1 => Reply::Overrun(pid),
            2 => Reply::NotUp((pid != 0).then_some(value)),
            3 => Reply::NotRunning,
            4 => Reply::Invalid(value),
            5 => Reply::Refused,
            6 => Reply::BadRequest,
            _ => return None,
        })
    }
}

/// Connects to the keeper of `pidfile`. `Ok(None)` when no keeper listens (no socket, or a
/// socket nobody accepts on).
fn connect(pidfile: &Path) -> Result<Option<UnixStream>, Error> {
    let path = socket_path(pidfile);
    match UnixStream::connect(&path) {
        Ok(stream) => Ok(Some(stream)),
        Err(err)
            if matches!(
                err.raw_os_error(),
                Some(libc::ENOENT) | Some(libc::ECONNREFUSED) | Some(libc::ENOTSOCK)
            ) =>
        {
            Ok(None)
        }
        Err(err) => Err(Error::os(
            Step::Control,
            format!("keeper socket {}", path.display()),
            err,
        )),
    }
}

/// Sends `request` and waits up to `timeout` for the reply; `Ok(None)` when no keeper listens.
fn ask(pidfile: &Path, request: &Request, timeout: Duration) -> Result<Option<Reply>, Error> {
    let Some(mut stream) = connect(pidfile)? else {
        return Ok(None);
    };
    let path = socket_path(pidfile);
    let io_error = |err: io::Error| {
        Error::os(
            Step::Control,
            format!("keeper socket {}", path.display()),
            err,
        )
    };
    stream.write_all(&request.encode()).map_err(io_error)?;
    let deadline = Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86400));
    let mut buf = [0u8; REPLY];
    let mut got = 0;
    while got < REPLY {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::new(
                ErrorKind::Os,
                Step::Control,
                format!(
                    "the keeper did not answer within {:.0}s ({})",
                    timeout.as_secs_f64(),
                    path.display()
                ),
            ));
        }
        stream.set_read_timeout(Some(left)).map_err(io_error)?;
        match stream.read(&mut buf[got..]) {
            // The keeper left before answering: it ended the service. For a stop that is the
            // answer (a stop racing another); anything else was not done.
            Ok(0) if matches!(request, Request::Stop(_)) => return Ok(Some(Reply::Done(0))),
            Ok(0) => {
                return Err(Error::new(
                    ErrorKind::NotRunning,
                    Step::Control,
                    format!(
                        "the keeper left before answering: the service has stopped ({})",
                        path.display()
                    ),
                ));
            }
            Ok(n) => got += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(err) => return Err(io_error(err)),
        }
    }
    Reply::decode(&buf).map(Some).ok_or_else(|| {
        Error::new(
            ErrorKind::Os,
            Step::Control,
            "the keeper sent an answer this version does not know",
        )
    })
}

fn refused(pidfile: &Path) -> Error {
    Error::new(
        ErrorKind::PermissionDenied,
        Step::Control,
        format!(
            "the keeper of {} answers only root and its own user",
            pidfile.display()
        ),
    )
}

/// Stops a supervised service through its keeper: `Ok(Some(pid))` with the program's pid (0 if
/// it was between restarts) once nothing of the service is left and the keeper has left;
/// `Ok(None)` when no keeper runs.
pub(crate) fn stop(pidfile: &Path, schedule: &Schedule) -> Result<Option<u32>, Error> {
    // With `forever`, as long as it takes.
    let total = schedule.total_wait().unwrap_or(Duration::MAX);
    let reply = ask(
        pidfile,
        &Request::Stop(schedule.clone()),
        total.saturating_add(Duration::from_secs(5)),
    )?;
    match reply {
        None => Ok(None),
        Some(Reply::Done(pid)) => {
            wait_keeper_gone(pidfile);
            Ok(Some(pid))
        }
        Some(Reply::Overrun(pid)) => Err(Error::new(
            ErrorKind::StillRunning,
            Step::Signal,
            format!(
                "service (pid {pid}) is still running after the schedule {schedule}; its keeper goes on waiting (try a longer schedule, or KILL)"
            ),
        )),
        Some(Reply::Refused) => Err(refused(pidfile)),
        Some(other) => Err(unexpected(other)),
    }
}

/// After a stop's reply the keeper removes its files and exits; wait (briefly) until its lock
/// is released, so that a `start` that follows at once does not find it held.
fn wait_keeper_gone(pidfile: &Path) {
    let deadline = Instant::now() + Duration::from_secs(2);
    if let Ok(Some(status)) = ServiceStatus::read(pidfile)
        && let Ok(keeper) = crate::process::Process::open(status.keeper_pid())
    {
        keeper.wait_exit(deadline.saturating_duration_since(Instant::now()));
    }
}

/// Restarts the program in place; returns its new pid once it is up (ready, when it speaks a
/// readiness protocol). `Ok(None)` when no keeper runs.
pub(crate) fn restart(
    pidfile: &Path,
    schedule: &Schedule,
    timeout: Duration,
) -> Result<Option<u32>, Error> {
    // The old program may take the whole schedule to stop; then the new one has `timeout`.
    let wait = schedule
        .total_wait()
        .map_or(Duration::MAX, |stop| stop.saturating_add(timeout));
    match ask(pidfile, &Request::Restart(schedule.clone()), wait)? {
        None => Ok(None),
        Some(Reply::Done(pid)) => Ok(Some(pid)),
        Some(Reply::NotUp(status)) => Err(Error::new(
            ErrorKind::NotReady,
            Step::Wait,
            match status {
                Some(s) => format!(
                    "the restarted program ended ({}) before it was up; see `daemonic status`",
                    status::Exit::from_wait_status(s)
                ),
                None => "the restarted program did not come up; see `daemonic status`".into(),
            },
        )),
        Some(Reply::Invalid(errno)) => Err(Error::os(
            Step::Program,
            "cannot be started again as it was (nothing was stopped)",
            io::Error::from_raw_os_error(errno),
        )
        .with_kind(ErrorKind::NotInstalled)),
        Some(Reply::Refused) => Err(refused(pidfile)),
        Some(other) => Err(unexpected(other)),
    }
}

/// Sends `signal` to the program (or its process group) through its keeper; returns the pid.
/// `Ok(None)` when no keeper runs.
pub(crate) fn signal(pidfile: &Path, signal: i32, group: bool) -> Result<Option<u32>, Error> {
    match ask(
        pidfile,
        &Request::Signal { signal, group },
        Duration::from_secs(5),
    )? {
        None => Ok(None),
        Some(Reply::Done(pid)) => Ok(Some(pid)),
        Some(Reply::NotRunning) => Err(Error::new(
            ErrorKind::NotRunning,
            Step::Signal,
            format!(
                "{} was not sent: the program is between restarts",
                signal_name(signal)
            ),
        )),
        Some(Reply::Refused) => Err(refused(pidfile)),
        Some(other) => Err(unexpected(other)),
    }
}

/// Rotates the service's log (or reopens its output file) through its keeper. `Ok(None)` when
/// no keeper runs.
pub(crate) fn reopen(pidfile: &Path) -> Result<Option<()>, Error> {
    match ask(pidfile, &Request::Reopen, Duration::from_secs(5))? {
        None => Ok(None),
        Some(Reply::Done(_)) => Ok(Some(())),
        Some(Reply::Invalid(libc::ENOENT)) => Err(Error::new(
            ErrorKind::InvalidInput,
            Step::Control,
            "the service writes no log and no output file (start it with --log DIR or -o FILE)",
        )),
        Some(Reply::Invalid(errno)) => Err(Error::os(
            Step::Stdout,
            "reopening the output file",
            io::Error::from_raw_os_error(errno),
        )),
        Some(Reply::Refused) => Err(refused(pidfile)),
        Some(other) => Err(unexpected(other)),
    }
}

fn unexpected(reply: Reply) -> Error {
    Error::new(
        ErrorKind::Os,
        Step::Control,
        format!("the keeper answered {reply:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip() {
        for request in [
            Request::Stop("TERM/10/KILL/5".parse().unwrap()),
            Request::Restart("HUP/1/TERM/2/KILL/3".parse().unwrap()),
            Request::Stop("-15/0.5/forever/-9/1.25".parse().unwrap()),
            Request::Signal {
                signal: libc::SIGUSR1,
                group: true,
            },
            Request::Reopen,
        ] {
            assert_eq!(Request::decode(&request.encode()), Some(request));
        }
        for reply in [
            Reply::Done(42),
            Reply::Overrun(7),
            Reply::NotUp(Some(256)),
            Reply::NotUp(None),
            Reply::NotRunning,
            Reply::Invalid(libc::ENOENT),
            Reply::Refused,
            Reply::BadRequest,
        ] {
            assert_eq!(Reply::decode(&reply.encode()), Some(reply));
        }
        assert_eq!(Request::decode(&[0u8; REQUEST]), None);
        let mut bad = Request::Stop(Schedule::default()).encode();
        bad[7] = 9;
        assert_eq!(Request::decode(&bad), None);
    }
}
