//! daemonic turns a process into a correct Unix daemon: everything systemd's daemon(7) asks of a
//! SysV daemon, with a launcher that exits only when the daemon is really up, and with the
//! daemon's real error when it is not.
//!
//! ```no_run
//! let mut daemon = daemonic::Daemon::new()
//!     .pidfile("/run/app.pid")
//!     .user("app")
//!     .start()?;
//! let listener = std::net::TcpListener::bind("0.0.0.0:8080")?; // in the daemon now
//! daemon.ready()?; // the launcher exits 0 here
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # `start()` comes first
//!
//! **Call [`Daemon::start`] at the very beginning of `main`: before starting any thread, and
//! before building an async runtime, even a single-threaded one** (tokio's `current_thread`,
//! smol, and `#[tokio::main]`, which builds its runtime before `main`'s body runs). `fork` keeps
//! only the calling thread, and the daemon closes every descriptor it was not asked to keep: a
//! runtime's epoll instance and wakers among them, so the runtime breaks at its next poll.
//! `start()` refuses a process that runs more than one thread, or that has an epoll or io_uring
//! instance open (Linux), but it cannot see everything a runtime holds. Build the runtime in the
//! daemon, once `start()` has returned:
//!
//! ```text
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let mut daemon = daemonic::Daemon::new().pidfile("/run/app.pid").start()?; // first
//!     let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//!     runtime.block_on(async {
//!         let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//!         daemon.ready()?; // the launcher exits 0 here
//!         serve(listener).await
//!     })
//! }
//! ```
//!
//! # A privileged port, then an unprivileged user
//!
//! Bind while still root, keep the descriptor, drop to the user: the daemon serves port 80
//! without ever running as root afterwards (privileges are dropped last in the procedure).
//!
//! ```no_run
//! use std::os::fd::AsFd;
//! let listener = std::net::TcpListener::bind("0.0.0.0:80")?; // as root
//! let mut daemon = daemonic::Daemon::new()
//!     .pidfile("/run/web.pid")
//!     .user("www-data")
//!     .keep_fd(listener.as_fd()) // survives the descriptor sweep, at its number
//!     .start()?;
//! // The daemon, as www-data, still holds the listener.
//! daemon.ready()?;
//! for stream in listener.incoming() {
//!     let _ = stream?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Platforms
//!
//! Linux first; the code builds for the BSDs and macOS, where it is not tested in CI and some
//! parts fall back:
//!
//! | | Linux | elsewhere |
//! |---|---|---|
//! | the daemon(7) procedure, pidfile lock, privilege drop, readiness | yes | yes |
//! | closing inherited descriptors | `close_range`, `/proc/self/fd` | a `close` loop |
//! | thread check before the fork | `/proc/self/task` (its link count) | not checked |
//! | signals to the right process | pidfd (5.3+) | `kill` |
//! | keeper: orphans adopted, program dies with a killed keeper | subreaper, `PR_SET_PDEATHSIG` | neither |
//! | keeper starts its program | `clone(CLONE_VM \| CLONE_VFORK)` | `fork` |
//! | sd_notify sender check | `SCM_CREDENTIALS` | none |
//! | OOM score, scheduler, I/O priority, `no_new_privs` | yes | refused by [`Resources::check`] |
//! | capabilities kept across the drop to a user (ambient) | yes | refused by [`Capabilities::check`] |
//!
//! The command's README has the full table of what falls back where.
//!
//! [`Daemon::spawn`] and [`Daemon::supervise`] return in the calling process and execute the
//! program in the forked one, so a program on a single-threaded runtime may call them (they
//! block its thread until the program is ready); they too refuse a process with more threads.
//!
//! # The procedure
//!
//! The procedure, in order ([`Daemon::start`]): refuse a multi-threaded process; resolve the
//! user, group, paths and program; lock the pidfile; open the standard streams; fork; `setsid`;
//! fork; reset signal dispositions and the mask; close inherited descriptors; redirect 0-2;
//! umask; chroot and chdir; write the pid; drop privileges; tell the launcher.
//!
//! [`Daemon::spawn`] runs the same procedure and executes a program, waiting for its readiness
//! ([`Readiness`]: at exec, sd_notify, or an s6-style descriptor).
//!
//! [`Daemon::supervise`] makes a keeper the daemon: a small process that holds the pidfile,
//! runs the program as its child, restarts it by a [`Policy`], stops all of it
//! ([`stop::stop`]), and publishes a [`ServiceStatus`] anyone can read. [`Daemon::run`] is the
//! same keeper in the calling process, for containers and service managers.
//!
//! ```no_run
//! use std::time::Duration;
//! use daemonic::{Daemon, Policy, Program, Restart, ServiceStatus};
//! let service = Daemon::new()
//!     .pidfile("/run/api.pid")
//!     .user("api")
//!     .supervise(
//!         &Program::new("/usr/bin/api-server"),
//!         Policy::new().restart(Restart::OnFailure).restart_max_delay(Duration::from_secs(30)),
//!     )?;
//! let status = ServiceStatus::read(std::path::Path::new("/run/api.pid"))?;
//! assert_eq!(status.map(|s| s.pid()), Some(Some(service.pid())));
//! # Ok::<(), daemonic::Error>(())
//! ```

#![warn(missing_docs)]

mod caps;
mod channel;
mod control;
mod daemon;
mod env;
mod error;
mod fds;
mod handoff;
mod identity;
mod keeper;
mod launcher;
mod log;
mod notify;
mod nss;
mod pidfile;
mod process;
mod program;
mod resources;
mod running;
mod signals;
mod status;
mod stdio;
pub mod stop;
mod supervise;

/// Held by the unit tests that make a process (`fork`, or a command) and by those that check
/// that a lock goes when its descriptor closes: a child another test thread forks holds a copy
/// of every descriptor, close-on-exec ones too, until it executes, and so holds the lock.
#[cfg(test)]
pub(crate) fn forks_excluded() -> std::sync::MutexGuard<'static, ()> {
    static FORKS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    FORKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub use caps::Capabilities;
pub use daemon::{DEFAULT_TIMEOUT, Daemon};
pub use env::Environment;
pub use error::{Error, ErrorKind, Step};
pub use identity::Groups;
pub use keeper::keeper_entry;
pub use launcher::{Progress, Readiness};
pub use log::{LogConfig, Logger, Stamp, Syslog, SyslogConfig};
pub use notify::{notify, notify_and_wait};
pub use pidfile::PidfileState;
pub use process::{ProcStat, Process, command_line, uptime};
pub use program::Program;
pub use resources::{IoClass, Limit, Resources, Scheduler, UNLIMITED};
pub use running::{Running, Spawned, Supervised};
pub use signals::{parse_signal, signal_name};
pub use status::{Exit, FailReason, ServiceState, ServiceStatus};
pub use stdio::Stdio;
pub use supervise::{Policy, Restart};
