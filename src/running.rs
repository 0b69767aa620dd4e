//! The handles a start gives back: [`Running`] inside a daemon that is the calling program,
//! [`Spawned`] in the launcher of a program executed as a daemon.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use crate::channel::{self, Record};
use crate::error::{Error, Step};
use crate::fds;
use crate::pidfile::Pidfile;

/// The daemon's handle, returned by [`Daemon::start`](crate::Daemon::start) in the daemon.
///
/// Call [`ready`](Running::ready) once the daemon can serve: the launcher then exits 0. Dropping
/// the handle removes the pidfile (in the process that wrote it).
///
/// # Example
/// ```no_run
/// let mut daemon = daemonic::Daemon::new().pidfile("/tmp/example.pid").start()?;
/// // ... bind sockets, load configuration ...
/// daemon.ready()?;
/// # Ok::<(), daemonic::Error>(())
/// ```
#[derive(Debug)]
pub struct Running {
    pid: u32,
    pidfile: Option<Pidfile>,
    status: Option<OwnedFd>,
    stderr_target: Option<OwnedFd>,
    foreground: bool,
}

impl Running {
    pub(crate) fn new(
        pid: u32,
        pidfile: Option<Pidfile>,
        status: Option<OwnedFd>,
        stderr_target: Option<OwnedFd>,
        foreground: bool,
    ) -> Running {
        Running {
            pid,
            pidfile,
            status,
            stderr_target,
            foreground,
        }
    }

    /// The daemon's pid (the one in the pidfile).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The pidfile, if there is one.
    pub fn pidfile(&self) -> Option<&Path> {
        self.pidfile.as_ref().map(Pidfile::path)
    }

    /// Tells the launcher the daemon is ready: it exits 0. Stderr moves from the launcher to its
    /// configured target first. In foreground mode, sends `READY=1` to `$NOTIFY_SOCKET` when set.
    /// Calling it again does nothing.
    pub fn ready(&mut self) -> Result<(), Error> {
        if let Some(target) = self.stderr_target.take() {
            fds::dup2(target.as_raw_fd(), 2).map_err(|e| Error::os(Step::Stderr, "", e))?;
        }
        if let Some(status) = self.status.take() {
            channel::send(status.as_fd(), Record::Ready);
        }
        if self.foreground {
            crate::notify::notify(&format!("READY=1\nMAINPID={}", self.pid))
                .map_err(|e| Error::os(Step::Readiness, "$NOTIFY_SOCKET", e))?;
            self.foreground = false;
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A child the daemon forked has a copy of this handle; only the daemon itself removes.
        if std::process::id() == self.pid
            && let Some(pidfile) = &self.pidfile
        {
            let _ = pidfile.remove();
        }
    }
}

/// A program started by [`Daemon::spawn`](crate::Daemon::spawn) and ready.
///
/// # Example
/// ```no_run
/// let spawned = daemonic::Daemon::new().spawn(&daemonic::Program::new("sleep").arg("60"))?;
/// println!("running as pid {}", spawned.pid());
/// # Ok::<(), daemonic::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spawned {
    pid: u32,
}

impl Spawned {
    pub(crate) fn new(pid: u32) -> Spawned {
        Spawned { pid }
    }

    /// The program's pid (the one in the pidfile).
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

/// A program started under a keeper by [`Daemon::supervise`](crate::Daemon::supervise), and
/// ready.
///
/// # Example
/// ```no_run
/// use daemonic::{Daemon, Policy, Program};
/// let service = Daemon::new().pidfile("/run/sleep.pid").supervise(&Program::new("sleep").arg("60"), Policy::new())?;
/// println!("program {} under keeper {}", service.pid(), service.keeper_pid());
/// # Ok::<(), daemonic::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supervised {
    keeper: u32,
    pid: u32,
}

impl Supervised {
    pub(crate) fn new(keeper: u32, pid: u32) -> Supervised {
        Supervised { keeper, pid }
    }

    /// The program's pid (the one in the pidfile) when it became ready.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The keeper's pid.
    pub fn keeper_pid(&self) -> u32 {
        self.keeper
    }
}
