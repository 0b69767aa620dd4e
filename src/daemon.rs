//! The builder, [`Daemon`], and the procedure it runs: the seed's `become()` and systemd's
//! daemon(7) steps, in order, in [`Daemon::start`] (the calling program becomes the daemon) and
//! [`Daemon::spawn`] (a program is executed as the daemon).
//!
//! Everything that can fail for a reason the caller can fix is checked before the first fork
//! ([`Daemon::check`]); between fork and exec only system calls run; intermediate processes leave
//! with `_exit`.

use std::ffi::{CString, OsStr};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::Mode;
use rustix::process::{Pid, Resource, Rlimit, getpid, umask};

use crate::channel::{self, Record};
use crate::env::Environment;
use crate::error::{Error, ErrorKind, Step};
use crate::fds;
use crate::identity::{self, Credentials, Groups};
use crate::launcher::{self, Launcher, Progress, Readiness};
use crate::notify;
use crate::pidfile::Pidfile;
use crate::process;
use crate::program::{self, Program};
use crate::running::{Running, Spawned, Supervised};
use crate::signals;
use crate::stdio::{Prepared, PreparedStdio, Stdio};
use crate::supervise::Policy;

/// How long the launcher waits for readiness unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A daemon to be started: the seed's four parameters, everything daemon(7) asks for, and how
/// the launcher learns the outcome.
///
/// # Example
/// ```no_run
/// let mut daemon = daemonic::Daemon::new()
///     .pidfile("/run/app.pid")
///     .user("app")
///     .start()?;
/// let listener = std::net::TcpListener::bind("0.0.0.0:8080")?; // in the daemon now
/// daemon.ready()?; // the launcher exits 0 here
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Daemon {
    umask: libc::mode_t,
    workdir: PathBuf,
    max_fd: RawFd,
    stdio: [Stdio; 3],
    pidfile: Option<PathBuf>,
    user: Option<String>,
    group: Option<String>,
    groups: Groups,
    capabilities: crate::caps::Capabilities,
    chroot: Option<PathBuf>,
    environment: Environment,
    /// Every descriptor number to keep, borrowed or owned.
    keep_fds: Vec<RawFd>,
    /// The descriptors given with `keep_owned_fd`, open until the builder is gone (shared, so
    /// that a clone of the builder keeps the same numbers).
    owned_fds: Vec<Arc<OwnedFd>>,
    no_core: bool,
    resources: crate::resources::Resources,
    foreground: bool,
    ready_at_start: bool,
    timeout: Duration,
    readiness: Readiness,
    keeper_image: Option<PathBuf>,
    launcher_exits: bool,
    log: Option<crate::log::LogConfig>,
    log_stderr: Option<crate::log::LogConfig>,
    syslog: Option<crate::log::SyslogConfig>,
}

impl Default for Daemon {
    fn default() -> Daemon {
        Daemon::new()
    }
}

impl Daemon {
    /// A daemon with the defaults: umask 022, working directory `/`, standard streams on
    /// `/dev/null`, no pidfile, same user, inherited environment, 60 s readiness timeout.
    pub fn new() -> Daemon {
        Daemon {
            umask: 0o022,
            workdir: PathBuf::from("/"),
            max_fd: 1024,
            stdio: [Stdio::Null, Stdio::Null, Stdio::Null],
            pidfile: None,
            user: None,
            group: None,
            groups: Groups::FromUser,
            capabilities: crate::caps::Capabilities::none(),
            chroot: None,
            environment: Environment::inherit(),
            keep_fds: Vec::new(),
            owned_fds: Vec::new(),
            no_core: false,
            resources: crate::resources::Resources::new(),
            foreground: false,
            ready_at_start: false,
            timeout: DEFAULT_TIMEOUT,
            readiness: Readiness::Exec,
            keeper_image: None,
            launcher_exits: false,
            log: None,
            log_stderr: None,
            syslog: None,
        }
    }

    /// The file mode creation mask (default `0o022`; the seed's `0` stays available).
    #[must_use]
    pub fn umask(mut self, mask: u32) -> Daemon {
        self.umask = (mask & 0o777) as libc::mode_t;
        self
    }

    /// The working directory (default `/`); inside the chroot when there is one.
    #[must_use]
    pub fn workdir(mut self, dir: impl Into<PathBuf>) -> Daemon {
        self.workdir = dir.into();
        self
    }

    /// The bound for closing descriptors, used only where the descriptor table cannot be walked
    /// (no `close_range`, no `/proc/self/fd`). Default 1024.
    #[must_use]
    pub fn max_fd(mut self, max_fd: RawFd) -> Daemon {
        self.max_fd = max_fd.max(3);
        self
    }

    /// The seed's `redirect_to`: one file for stdin, stdout and stderr (appended to).
    #[must_use]
    pub fn redirect_to(self, path: impl Into<PathBuf>) -> Daemon {
        let path = path.into();
        self.stdin(Stdio::Append(path.clone()))
            .stdout(Stdio::Append(path.clone()))
            .stderr(Stdio::Append(path))
    }

    /// Standard input (default `/dev/null`).
    #[must_use]
    pub fn stdin(mut self, target: Stdio) -> Daemon {
        self.stdio[0] = target.absolute();
        self
    }

    /// Standard output (default `/dev/null`). A relative file path is taken from the current
    /// directory now, not from the daemon's (`/`).
    #[must_use]
    pub fn stdout(mut self, target: Stdio) -> Daemon {
        self.stdio[1] = target.absolute();
        self
    }

    /// Standard error (default `/dev/null`). Until [`Running::ready`], what the daemon writes to
    /// stderr goes to the launcher's stderr, so a failure before readiness is seen.
    #[must_use]
    pub fn stderr(mut self, target: Stdio) -> Daemon {
        self.stdio[2] = target.absolute();
        self
    }

    /// A pidfile: locked for the daemon's life, holding its final pid. A relative path is taken
    /// from the current directory now.
    #[must_use]
    pub fn pidfile(mut self, path: impl Into<PathBuf>) -> Daemon {
        self.pidfile = Some(crate::stdio::absolute(path.into()));
        self
    }

    /// The user to run as (name or id); also sets the group to the user's primary group unless
    /// [`group`](Daemon::group) is given.
    #[must_use]
    pub fn user(mut self, user: impl Into<String>) -> Daemon {
        self.user = Some(user.into());
        self
    }

    /// The group to run as (name or id).
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Daemon {
        self.group = Some(group.into());
        self
    }

    /// Capabilities to keep across the drop to [`user`](Daemon::user): the daemon (or the
    /// program a keeper runs) holds exactly these, in its ambient set too, so they survive its
    /// `exec` (`net_bind_service` lets a non-root web server bind port 80). Linux only; checked
    /// with everything else before the first fork. Default: none.
    ///
    /// # Example
    /// ```
    /// let daemon = daemonic::Daemon::new()
    ///     .user("www-data")
    ///     .capabilities("net_bind_service".parse().unwrap());
    /// ```
    #[must_use]
    pub fn capabilities(mut self, caps: crate::caps::Capabilities) -> Daemon {
        self.capabilities = caps;
        self
    }

    /// The supplementary groups when running as a user (default: the user's, as initgroups).
    #[must_use]
    pub fn groups(mut self, groups: Groups) -> Daemon {
        self.groups = groups;
        self
    }

    /// A directory to `chroot` into before dropping privileges.
    #[must_use]
    pub fn chroot(mut self, dir: impl Into<PathBuf>) -> Daemon {
        self.chroot = Some(dir.into());
        self
    }

    /// The daemon's environment (default: the launcher's).
    #[must_use]
    pub fn environment(mut self, environment: Environment) -> Daemon {
        self.environment = environment;
        self
    }

    /// Sets one environment variable.
    #[must_use]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Daemon {
        self.environment = self.environment.set(key.as_ref(), value.as_ref());
        self
    }

    /// Starts from an empty environment.
    #[must_use]
    pub fn clear_env(mut self) -> Daemon {
        self.environment = self.environment.clear();
        self
    }

    /// Keeps a descriptor open in the daemon, at the same number; every other descriptor above
    /// 2 is closed. A program that [`spawn`](Daemon::spawn), [`supervise`](Daemon::supervise)
    /// or [`run`](Daemon::run) executes finds it at that number even if it was opened
    /// close-on-exec (as everything Rust opens is): the flag is cleared in the daemon, just
    /// before the exec.
    ///
    /// The builder keeps only the number: the descriptor must stay open until the daemon is
    /// started. Use it for what this program goes on holding itself, as with
    /// [`start`](Daemon::start), where the program continues as the daemon with its own objects
    /// (a listener bound before detaching), or for a number inherited from outside. To hand a
    /// descriptor over for good, give it with [`keep_owned_fd`](Daemon::keep_owned_fd).
    ///
    /// # Example
    /// ```no_run
    /// use std::os::fd::AsFd;
    /// // Bound while still privileged, served from the daemon.
    /// let listener = std::net::TcpListener::bind("0.0.0.0:80")?;
    /// let mut daemon = daemonic::Daemon::new()
    ///     .user("www")
    ///     .keep_fd(listener.as_fd())
    ///     .start()?;
    /// daemon.ready()?;
    /// for stream in listener.incoming() {
    ///     // serve
    /// #   drop(stream);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn keep_fd(mut self, fd: BorrowedFd<'_>) -> Daemon {
        self.keep_fds.push(fd.as_raw_fd());
        self
    }

    /// Hands a descriptor over to the daemon, at its number (read it with
    /// [`as_raw_fd`](std::os::fd::AsRawFd::as_raw_fd) first, to tell the program where to find
    /// it). The builder owns it until then, so the number stays valid; a program it executes
    /// finds it there even if it was opened close-on-exec, as with [`keep_fd`](Daemon::keep_fd).
    ///
    /// The launching process closes its copy once the daemon runs (and when the builder is
    /// dropped unused). With [`start`](Daemon::start), where this program goes on as the daemon,
    /// the descriptor stays open in the daemon at its number for its whole life: nothing owns it
    /// there any more, so take it back with
    /// [`OwnedFd::from_raw_fd`](std::os::fd::FromRawFd::from_raw_fd), or keep the object and
    /// lend it with [`keep_fd`](Daemon::keep_fd) instead.
    ///
    /// # Example
    /// ```no_run
    /// use std::os::fd::AsRawFd;
    /// use daemonic::{Daemon, Program};
    /// let listener = std::net::TcpListener::bind("0.0.0.0:8080")?;
    /// let fd = listener.as_raw_fd();
    /// let server = Daemon::new()
    ///     .user("api")
    ///     .keep_owned_fd(listener)
    ///     .spawn(&Program::new("/usr/bin/api-server").arg(format!("--listen-fd={fd}")))?;
    /// println!("api-server runs as pid {}, serving on descriptor {fd}", server.pid());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn keep_owned_fd(mut self, fd: impl Into<OwnedFd>) -> Daemon {
        let fd = fd.into();
        self.keep_fds.push(fd.as_raw_fd());
        self.owned_fds.push(Arc::new(fd));
        self
    }

    /// Disables core dumps (`RLIMIT_CORE` 0).
    #[must_use]
    pub fn no_core(mut self, on: bool) -> Daemon {
        self.no_core = on;
        self
    }

    /// Resource controls (nice value, limits, OOM score, scheduler, I/O priority,
    /// `no_new_privs`) for the daemon, or for the program a keeper runs (at every restart).
    /// Checked with everything else before anything forks.
    ///
    /// # Example
    /// ```no_run
    /// use daemonic::{Daemon, Limit, Program, Resources};
    /// let limits = Resources::new().nice(10).limit(Limit::NoFile, 65536, 65536);
    /// Daemon::new()
    ///     .pidfile("/run/worker.pid")
    ///     .resources(limits)
    ///     .spawn(&Program::new("/usr/bin/worker"))?;
    /// # Ok::<(), daemonic::Error>(())
    /// ```
    #[must_use]
    pub fn resources(mut self, resources: crate::resources::Resources) -> Daemon {
        self.resources = resources;
        self
    }

    /// Foreground mode: every step except the forks and `setsid`, for systemd and containers;
    /// [`Running::ready`] then sends `READY=1` to `$NOTIFY_SOCKET` when one is set.
    ///
    /// # Example
    /// ```no_run
    /// // Type=notify under systemd: no forks, same pidfile, privilege drop and readiness.
    /// let under_systemd = std::env::var_os("NOTIFY_SOCKET").is_some();
    /// let mut daemon = daemonic::Daemon::new()
    ///     .foreground(under_systemd)
    ///     .stdout(daemonic::Stdio::Inherit)
    ///     .stderr(daemonic::Stdio::Inherit)
    ///     .start()?;
    /// daemon.ready()?;
    /// # Ok::<(), daemonic::Error>(())
    /// ```
    #[must_use]
    pub fn foreground(mut self, on: bool) -> Daemon {
        self.foreground = on;
        self
    }

    /// Reports readiness as soon as the procedure is done, for programs with nothing to prepare.
    ///
    /// # Example
    /// ```no_run
    /// let _daemon = daemonic::Daemon::new().ready_at_start(true).start()?;
    /// // The launcher has exited already.
    /// # Ok::<(), daemonic::Error>(())
    /// ```
    #[must_use]
    pub fn ready_at_start(mut self, on: bool) -> Daemon {
        self.ready_at_start = on;
        self
    }

    /// How long the launcher waits for readiness before giving up (default 60 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Daemon {
        self.timeout = timeout;
        self
    }

    /// How a spawned program signals readiness (default: once it is executed).
    #[must_use]
    pub fn readiness(mut self, readiness: Readiness) -> Daemon {
        self.readiness = readiness;
        self
    }

    /// A small program for a keeper to re-execute into once its program runs (for
    /// [`supervise`](Daemon::supervise) and [`run`](Daemon::run)): a keeper is forked from the
    /// caller, so the program starts at once, and would otherwise keep the caller's heap, stack
    /// and code pages for the service's whole life. The image's `main` must call
    /// [`keeper_entry`](crate::keeper_entry) first; the `daemonic-keeper` binary does. If it
    /// cannot be executed, the forked keeper goes on by itself.
    ///
    /// A bare file name (no `/`) names a file beside the running executable, looked for when
    /// the keeper re-executes (off the path of the start); if that is not an executable file,
    /// the running executable itself, which must then answer [`keeper_entry`](crate::keeper_entry)
    /// too (the `daemonic` command does).
    ///
    /// # Example
    /// ```no_run
    /// use daemonic::{Daemon, Policy, Program};
    /// Daemon::new()
    ///     .pidfile("/run/web.pid")
    ///     .keeper_image("/usr/libexec/daemonic-keeper")
    ///     .supervise(&Program::new("/usr/sbin/web"), Policy::new())?;
    /// # Ok::<(), daemonic::Error>(())
    /// ```
    #[must_use]
    pub fn keeper_image(mut self, path: impl Into<PathBuf>) -> Daemon {
        self.keeper_image = Some(path.into());
        self
    }

    /// For [`supervise`](Daemon::supervise) called by a process that exits as soon as it
    /// returns, as a command-line launcher does (`daemonic start` sets it): the keeper is forked
    /// once instead of twice, which takes a fork and a wait off every start. The keeper is then
    /// this process's child until init adopts it, and it leads its own session. It still never
    /// gets a terminal: it opens every file with `O_NOCTTY`, and its program is no session
    /// leader either way.
    ///
    /// Not for a process that goes on running: the keeper would stay its child, so its end would
    /// leave a zombie, or be collected by the process's own `wait` calls.
    ///
    /// # Example
    /// ```no_run
    /// use daemonic::{Daemon, Policy, Program};
    /// let service = Daemon::new()
    ///     .pidfile("/run/web.pid")
    ///     .launcher_exits(true)
    ///     .supervise(&Program::new("/usr/sbin/web"), Policy::new());
    /// std::process::exit(if service.is_ok() { 0 } else { 1 });
    /// ```
    #[must_use]
    pub fn launcher_exits(mut self, on: bool) -> Daemon {
        self.launcher_exits = on;
        self
    }

    /// Under a keeper ([`supervise`](Daemon::supervise), [`run`](Daemon::run)): the program's
    /// standard output and error go, through one pipe the keeper holds across restarts, into a
    /// log directory: stamped, rotated, never losing a line (see [`LogConfig`](crate::LogConfig)).
    /// The keeper's own events (started, ready, exited, restarting, stopped) are logged there
    /// too. Replaces the `stdout` and `stderr` targets.
    ///
    /// # Example
    /// ```no_run
    /// use daemonic::{Daemon, LogConfig, Policy, Program};
    /// Daemon::new()
    ///     .pidfile("/run/web.pid")
    ///     .log(LogConfig::new("/var/log/web").size(10_000_000).keep(20))
    ///     .supervise(&Program::new("/usr/sbin/web"), Policy::new())?;
    /// # Ok::<(), daemonic::Error>(())
    /// ```
    #[must_use]
    pub fn log(mut self, config: crate::log::LogConfig) -> Daemon {
        self.log = Some(config);
        self
    }

    /// With [`log`](Daemon::log): keeps the streams apart, standard error in a log of its own
    /// (its own pipe, so lines of the two are no longer ordered against each other).
    ///
    /// # Example
    /// ```no_run
    /// use daemonic::{Daemon, LogConfig, Policy, Program};
    /// Daemon::new()
    ///     .pidfile("/run/web.pid")
    ///     .log(LogConfig::new("/var/log/web/out"))
    ///     .log_stderr(LogConfig::new("/var/log/web/err"))
    ///     .supervise(&Program::new("/usr/sbin/web"), Policy::new())?;
    /// # Ok::<(), daemonic::Error>(())
    /// ```
    #[must_use]
    pub fn log_stderr(mut self, config: crate::log::LogConfig) -> Daemon {
        self.log_stderr = Some(config);
        self
    }

    /// Under a keeper: the program's output lines (and the keeper's events) also go to the local
    /// syslog socket, tagged `program[pid]`, without ever blocking: a line syslog cannot take at
    /// once is dropped and counted ([`ServiceStatus::syslog_dropped`](crate::ServiceStatus::syslog_dropped)).
    ///
    /// # Example
    /// ```no_run
    /// use daemonic::{Daemon, Policy, Program};
    /// Daemon::new()
    ///     .pidfile("/run/web.pid")
    ///     .syslog("daemon.info".parse().unwrap())
    ///     .supervise(&Program::new("/usr/sbin/web"), Policy::new())?;
    /// # Ok::<(), daemonic::Error>(())
    /// ```
    #[must_use]
    pub fn syslog(mut self, config: crate::log::SyslogConfig) -> Daemon {
        self.syslog = Some(config);
        self
    }

    /// The pidfile path, if one is set.
    pub fn pidfile_path(&self) -> Option<&Path> {
        self.pidfile.as_deref()
    }

    /// Resolves and validates everything that can be checked without acting: single thread,
    /// user and group, chroot and working directory, environment, descriptors to keep.
    ///
    /// # Example
    /// ```
    /// let err = daemonic::Daemon::new().workdir("/no/such/dir").check().unwrap_err();
    /// assert_eq!(err.to_string(), "working directory /no/such/dir: No such file or directory (os error 2)");
    /// ```
    pub fn check(&self) -> Result<(), Error> {
        self.validate().map(drop)
    }

    /// Everything [`check`](Daemon::check) does, and the program looked up as
    /// [`spawn`](Daemon::spawn) and [`supervise`](Daemon::supervise) would (on `PATH`, inside
    /// the chroot, executable by the user, its `#!` interpreter present): the path that would
    /// be executed. For a dry run (`daemonic start --test`).
    ///
    /// # Example
    /// ```
    /// use daemonic::{Daemon, ErrorKind, Program};
    /// let path = Daemon::new().check_program(&Program::new("sh"))?;
    /// assert!(path.ends_with("sh"));
    /// let err = Daemon::new().check_program(&Program::new("no-such-program-here")).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::NotInstalled);
    /// # Ok::<(), daemonic::Error>(())
    /// ```
    pub fn check_program(&self, program: &Program) -> Result<PathBuf, Error> {
        let checked = self.validate()?;
        let resolved = program.resolve(self.chroot.as_deref(), checked.creds.as_ref())?;
        // What supervise checks too, short of creating the log directory.
        self.check_log_length()?;
        self.check_socket_path()?;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(
            resolved.path.as_bytes(),
        )))
    }

    /// Becomes the daemon. Returns in the daemon process; the launching process waits for
    /// [`Running::ready`] and exits 0, or prints the failure on its stderr and exits 1.
    ///
    /// **Call it first, before starting any thread and before building an async runtime, even
    /// a single-threaded one** (tokio's `current_thread`, and so `#[tokio::main]`, which builds
    /// its runtime before `main`'s body runs). `fork` keeps only the calling thread, and the
    /// daemon closes every descriptor it was not asked to keep: a runtime's epoll instance and
    /// wakers among them. `start()` refuses a process that runs more than one thread, or that
    /// has an epoll or io_uring instance open (Linux), but it cannot see everything a runtime
    /// holds. Build the runtime in the daemon, once `start()` has returned:
    ///
    /// ```text
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let mut daemon = daemonic::Daemon::new().pidfile("/run/app.pid").start()?; // first
    ///     let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    ///     runtime.block_on(async {
    ///         let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
    ///         daemon.ready()?;
    ///         serve(listener).await
    ///     })
    /// }
    /// ```
    ///
    /// Errors found before the first fork are returned in the calling process.
    ///
    /// Signals: the handlers this program installed before `start()` stay installed, as does
    /// its runtime's ignored `SIGPIPE`; every other ignored signal goes back to its default
    /// (an ignore may be inherited from the launching shell), and the signal mask is emptied.
    ///
    /// # Example
    /// ```no_run
    /// fn main() -> Result<(), daemonic::Error> {
    ///     let mut daemon = daemonic::Daemon::new()
    ///         .pidfile("/run/worker.pid")
    ///         .stderr(daemonic::Stdio::append("/var/log/worker.log"))
    ///         .start()?; // the launcher waits here; the daemon continues below
    ///     // ... open sockets, read configuration; errors printed now reach the launcher ...
    ///     daemon.ready()?;
    ///     loop {
    ///         std::thread::park(); // serve
    ///     }
    /// }
    /// ```
    pub fn start(mut self) -> Result<Running, Error> {
        let checked = self.validate()?;
        refuse_async_runtime(&self.keep_fds)?;
        // This program goes on as the daemon: what it handed over stays open in it for good.
        let owned = std::mem::take(&mut self.owned_fds);
        if self.foreground {
            let running = self.run_foreground(checked)?;
            std::mem::forget(owned);
            return Ok(running);
        }
        let mut launch = self.acquire(checked, None, false)?;
        let (child1, ends) = match fork_daemon(&mut launch, false)? {
            Fork::Daemon(ends) => {
                // The launcher's ends are closed by close_inherited_fds below, not by us.
                std::mem::forget(ends);
                std::mem::forget(owned);
                return Ok(self.finish_in_daemon(launch));
            }
            Fork::Launcher(child1, ends) => (child1, ends),
        };
        let context = launch.context.clone();
        let pidfile = launch.pidfile.take();
        drop(launch);
        let outcome = Launcher::new(
            ends,
            child1,
            launcher::Mode::Handle,
            self.timeout,
            context,
            pidfile,
        )
        .wait(&mut |_| {});
        exit_launcher(outcome)
    }

    /// Executes `program` as a daemon and returns, in the calling process, once it is ready
    /// (see [`Readiness`]); on any failure the half-started daemon is stopped, the pidfile
    /// removed, and the error returned. The daemon is a child of init, not of the caller.
    ///
    /// # Example
    /// ```no_run
    /// use daemonic::{Daemon, Program, Readiness};
    /// let spawned = Daemon::new()
    ///     .pidfile("/run/api.pid")
    ///     .user("api")
    ///     .readiness(Readiness::Notify)
    ///     .spawn(&Program::new("/usr/bin/api-server").arg("--port=8080"))?;
    /// println!("api is ready as pid {}", spawned.pid());
    /// # Ok::<(), daemonic::Error>(())
    /// ```
    pub fn spawn(self, program: &Program) -> Result<Spawned, Error> {
        self.spawn_with(program, |_| {})
    }

    /// [`spawn`](Daemon::spawn), reporting [`Progress`] while it waits: the daemon's pid once
    /// it runs, and each `STATUS=` the program sends.
    pub fn spawn_with(
        self,
        program: &Program,
        mut on_progress: impl FnMut(Progress<'_>),
    ) -> Result<Spawned, Error> {
        if self.foreground {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                Step::Fork,
                "foreground mode does not spawn; run the program directly",
            ));
        }
        let checked = self.validate()?;
        let resolved = program.resolve(self.chroot.as_deref(), checked.creds.as_ref())?;
        let mut launch = self.acquire(checked, Some(resolved), false)?;
        match fork_daemon(&mut launch, false)? {
            Fork::Daemon(ends) => {
                std::mem::forget(ends);
                exec_in_daemon(launch)
            }
            Fork::Launcher(child1, ends) => {
                let context = launch.context.clone();
                let pidfile = launch.pidfile.take();
                drop(launch);
                let mode = match self.readiness {
                    Readiness::Exec => launcher::Mode::Exec,
                    Readiness::Notify => launcher::Mode::Notify,
                    Readiness::Fd(_) => launcher::Mode::Fd,
                };
                let pid = Launcher::new(ends, child1, mode, self.timeout, context, pidfile)
                    .wait(&mut on_progress)?;
                Ok(Spawned::new(pid))
            }
        }
    }

    /// Starts `program` under a keeper: a small process of ours, detached as a daemon, that
    /// holds the pidfile's lock, runs the program as its child (with every option of this
    /// builder applied to the program), restarts it by `policy`, stops all of it on request, and
    /// keeps a status record beside the pidfile ([`crate::ServiceStatus`]). Returns once the
    /// program is ready; on failure nothing is left behind.
    ///
    /// The pidfile names the program's pid (rewritten at each restart, empty between runs).
    ///
    /// # Example
    /// ```no_run
    /// use daemonic::{Daemon, Policy, Program, Restart};
    /// let service = Daemon::new()
    ///     .pidfile("/run/api.pid")
    ///     .user("api")
    ///     .supervise(&Program::new("/usr/bin/api-server"), Policy::new().restart(Restart::OnFailure))?;
    /// println!("api runs as pid {} under keeper {}", service.pid(), service.keeper_pid());
    /// # Ok::<(), daemonic::Error>(())
    /// ```
    pub fn supervise(self, program: &Program, policy: Policy) -> Result<Supervised, Error> {
        self.supervise_with(program, policy, |_| {})
    }

    /// [`supervise`](Daemon::supervise), reporting [`Progress`] while it waits: the program's
    /// pid once it runs, and each `STATUS=` it sends.
    pub fn supervise_with(
        self,
        program: &Program,
        policy: Policy,
        mut on_progress: impl FnMut(Progress<'_>),
    ) -> Result<Supervised, Error> {
        if self.foreground {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                Step::Fork,
                "foreground mode does not detach; use run() for a keeper in the foreground",
            ));
        }
        if self.pidfile.is_none() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                Step::Pidfile,
                "a supervised service needs a pidfile: its keeper is found through it",
            ));
        }
        let checked = self.validate()?;
        let resolved = program.resolve(self.chroot.as_deref(), checked.creds.as_ref())?;
        self.check_log()?;
        self.check_socket_path()?;
        let mut launch = self.acquire(checked, Some(resolved), true)?;
        match fork_daemon(&mut launch, self.launcher_exits)? {
            Fork::Daemon(ends) => {
                std::mem::forget(ends);
                keeper_in_daemon(
                    launch,
                    self.readiness,
                    policy,
                    self.keeper_image.clone(),
                    [self.log.clone(), self.log_stderr.clone()],
                    self.syslog.clone(),
                )
            }
            Fork::Launcher(child1, ends) => {
                let (context, pidfile_path, heap) = launch.close_in_launcher();
                let outcome = Launcher::new(
                    ends,
                    child1,
                    launcher::Mode::Keeper,
                    self.timeout,
                    context,
                    None,
                )
                .forked_once(self.launcher_exits)
                .wait_keeper(&mut on_progress);
                let outcome = match outcome {
                    Ok((keeper, pid)) => Ok(Supervised::new(keeper, pid)),
                    Err(err) => {
                        if let Some(path) = &pidfile_path {
                            // A keeper that was killed could not clean up after itself. Only
                            // what it would have made is removed: our own socket and record,
                            // never a file of another kind or owner.
                            let _ = crate::pidfile::remove_stale(path);
                            if !crate::status::is_locked(path).unwrap_or(true) {
                                remove_own(&crate::status::path_for(path), |t| t.is_file());
                                remove_own(&crate::control::socket_path(path), |t| {
                                    std::os::unix::fs::FileTypeExt::is_socket(&t)
                                });
                            }
                        }
                        Err(err)
                    }
                };
                if self.launcher_exits {
                    // This process ends now: its heap goes with it, uncopied and unfreed.
                    std::mem::forget(heap);
                }
                outcome
            }
        }
    }

    /// Runs `program` under a keeper in this process, without detaching: for a container's
    /// `ENTRYPOINT` (as PID 1 it reaps every orphan), a runit or s6 `run` script, or systemd
    /// (`Type=notify`: readiness, `STATUS=` and `STOPPING=1` pass on to `$NOTIFY_SOCKET`).
    /// `SIGTERM` and `SIGINT` stop the whole service; `SIGHUP`, `SIGQUIT`, `SIGUSR1`, `SIGUSR2`
    /// and `SIGWINCH` are passed to the program's process group. Returns how the program last
    /// ended; a shell's status for it is [`Exit::shell_code`](crate::Exit::shell_code).
    ///
    /// The standard streams given to this builder become this process's own (the program
    /// inherits them); by default all three are inherited.
    ///
    /// # Example
    /// ```no_run
    /// use daemonic::{Daemon, Policy, Program, Stdio};
    /// let exit = Daemon::new()
    ///     .stdin(Stdio::Inherit).stdout(Stdio::Inherit).stderr(Stdio::Inherit)
    ///     .run(&Program::new("nginx").args(["-g", "daemon off;"]), Policy::new())?;
    /// std::process::exit(exit.map_or(1, |e| e.shell_code().into()));
    /// # Ok::<(), daemonic::Error>(())
    /// ```
    pub fn run(self, program: &Program, policy: Policy) -> Result<Option<crate::Exit>, Error> {
        let checked = self.validate()?;
        let resolved = program.resolve(self.chroot.as_deref(), checked.creds.as_ref())?;
        self.check_log()?;
        self.check_socket_path()?;
        let mut launch = self.acquire(checked, Some(resolved), true)?;
        // Nobody waits on the channels in the foreground.
        drop(launch.ends.take());
        if let Err((step, err)) = keeper_steps(&mut launch, false) {
            if let Some(p) = &launch.pidfile {
                let _ = p.remove();
            }
            return Err(Error::os(step, launch.context.subject(step), err));
        }
        let context = launch.context.clone();
        let (mut setup, _) = keeper_setup(launch, self.readiness, policy, true);
        setup.reexec = self.keeper_image.clone();
        setup.log = self.log.clone();
        setup.log_stderr = self.log_stderr.clone();
        setup.syslog = self.syslog.clone();
        if setup.reexec.is_none() {
            crate::keeper::shed_inherited_memory();
        }
        let keeper = crate::keeper::Keeper::new(setup)
            .map_err(|(step, err)| Error::os(step, context.subject(step), err))?;
        Ok(keeper.run())
    }

    /// The keeper's control socket (`PIDFILE.sock`) must fit in a Unix socket address.
    fn check_socket_path(&self) -> Result<(), Error> {
        let Some(pidfile) = &self.pidfile else {
            return Ok(());
        };
        let socket = crate::control::socket_path(pidfile);
        // sun_path holds 108 bytes with the terminating NUL.
        let len = socket.as_os_str().len();
        if len > 107 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                Step::Pidfile,
                format!(
                    "pidfile {}: too long a path for its keeper's socket beside it ({len} bytes with .sock; at most 107): choose a shorter run directory or pidfile",
                    pidfile.display()
                ),
            ));
        }
        Ok(())
    }

    /// The log directory can be created and written: found before anything forks.
    fn check_log(&self) -> Result<(), Error> {
        self.check_log_length()?;
        for config in self.log.iter().chain(self.log_stderr.iter()) {
            crate::log::Logger::open(config.clone())?;
        }
        Ok(())
    }

    /// The log directory's name fits the status record.
    fn check_log_length(&self) -> Result<(), Error> {
        if let Some(config) = &self.log
            && config.dir().as_os_str().len() > crate::status::LOG_DIR_MAX
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                Step::Stdout,
                format!(
                    "log directory: {} bytes long; at most {} (its status record names it)",
                    config.dir().as_os_str().len(),
                    crate::status::LOG_DIR_MAX
                ),
            ));
        }
        Ok(())
    }

    /// Validation without side effects (see [`check`](Daemon::check)).
    fn validate(&self) -> Result<Checked, Error> {
        refuse_threads()?;
        self.environment.validate()?;
        self.resources.check()?;
        if self.no_core && self.resources.sets(crate::resources::Limit::Core) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                Step::NoCore,
                "no_core and a core limit both set the core dump limit: give one",
            ));
        }
        let mut creds =
            identity::resolve(self.user.as_deref(), self.group.as_deref(), self.groups)?;
        // To another user than root: root's exec gets every capability back.
        let drops_user = creds
            .as_ref()
            .is_some_and(|c| c.uid.is_some_and(|u| u != 0));
        self.capabilities.check(drops_user)?;
        if let Some(c) = &mut creds {
            c.caps = self.capabilities;
        }
        if let Some(root) = &self.chroot {
            let meta =
                std::fs::metadata(root).map_err(|e| Error::os(Step::Chroot, root.display(), e))?;
            if !meta.is_dir() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    Step::Chroot,
                    format!("chroot {}: not a directory", root.display()),
                ));
            }
        }
        let workdir = match &self.chroot {
            Some(_) => self.workdir.clone(),
            None if self.workdir.is_absolute() => self.workdir.clone(),
            None => std::env::current_dir()
                .map_err(|e| Error::os(Step::Workdir, self.workdir.display(), e))?
                .join(&self.workdir),
        };
        let on_disk = match &self.chroot {
            Some(root) => root.join(workdir.strip_prefix("/").unwrap_or(&workdir)),
            None => workdir.clone(),
        };
        let meta = std::fs::metadata(&on_disk)
            .map_err(|e| Error::os(Step::Workdir, self.workdir.display(), e))?;
        if !meta.is_dir() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                Step::Workdir,
                format!(
                    "working directory {}: not a directory",
                    self.workdir.display()
                ),
            ));
        }
        for &fd in &self.keep_fds {
            if fd < 3 || !fds::is_open(fd) {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    Step::CloseFds,
                    format!(
                        "descriptor {fd} to keep: {}",
                        if fd < 3 {
                            "0-2 are the standard streams; use stdin/stdout/stderr"
                        } else {
                            "not open in this process"
                        }
                    ),
                ));
            }
        }
        if let Readiness::Fd(fd) = self.readiness
            && (fd < 3 || self.keep_fds.contains(&fd))
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                Step::Readiness,
                format!("readiness descriptor {fd}: must be 3 or more and not also kept"),
            ));
        }
        Ok(Checked {
            creds,
            workdir: c_path(&workdir, Step::Workdir)?,
            chroot: self
                .chroot
                .as_deref()
                .map(|p| c_path(p, Step::Chroot))
                .transpose()?,
        })
    }

    /// Takes the resources, in an order that never harms a running daemon: the pidfile first
    /// (so that a log file opened for truncation is not emptied under a live daemon), then the
    /// standard streams, the channels, and descriptor numbers reserved for the daemon.
    fn acquire(
        &self,
        checked: Checked,
        program: Option<program::Resolved>,
        keeper: bool,
    ) -> Result<Launch, Error> {
        // Under a keeper, the program is started (and its readiness set up) by the keeper, and
        // the lock stays with the keeper: nothing is reserved here.
        let exec = program.is_some() && !keeper;
        // Reserve the numbers the daemon's descriptors must land on before opening anything
        // (the pidfile included), so that nothing opened here gets one of them and is then
        // clobbered by a dup2 in the daemon.
        let ready_target = match self.readiness {
            Readiness::Fd(fd) if exec => Some(fd),
            _ => None,
        };
        let lock_target =
            (exec && self.pidfile.is_some()).then(|| high_free_fd(&self.keep_fds, ready_target));
        let mut placeholders = Vec::new();
        for fd in ready_target.into_iter().chain(lock_target) {
            if !fds::is_open(fd) {
                placeholders.push(
                    reserve(fd)
                        .map_err(|e| Error::os(Step::Fork, format!("descriptor {fd}"), e))?,
                );
            }
        }
        // Ctrl-C, TERM and HUP are blocked from here (taken through a signalfd by the waiting
        // launcher): one that comes while the pidfile is taken or the daemon forks is not lost
        // and does not kill the launcher before it can stop what it started.
        let interrupts = launcher::Interrupts::block();
        let pidfile = self.pidfile.as_deref().map(Pidfile::acquire).transpose()?;
        let targets = Targets {
            ready: ready_target,
            lock: lock_target,
            placeholders,
            interrupts,
        };
        match self.acquire_rest(checked, program, targets, keeper) {
            Ok(mut launch) => {
                launch.pidfile = pidfile;
                launch.finish_keep_list();
                Ok(launch)
            }
            Err(err) => {
                if let Some(p) = &pidfile {
                    let _ = p.remove();
                }
                Err(err)
            }
        }
    }

    fn acquire_rest(
        &self,
        checked: Checked,
        program: Option<program::Resolved>,
        targets: Targets,
        keeper: bool,
    ) -> Result<Launch, Error> {
        let exec = program.is_some();
        let Targets {
            ready: ready_target,
            lock: lock_target,
            placeholders,
            interrupts,
        } = targets;
        let stdio = PreparedStdio::open([&self.stdio[0], &self.stdio[1], &self.stdio[2]])?;
        let (status_r, status_w) =
            channel::pipe().map_err(|e| Error::os(Step::Fork, "status pipe", e))?;
        // Until ready(), the daemon's stderr goes to the launcher: errors are seen, not lost.
        // Under a keeper the program's stderr goes through the keeper, which relays it too.
        let relayed = match keeper {
            true => !self.foreground,
            false => !exec && !self.foreground && !self.ready_at_start,
        };
        let relay = if relayed && self.stdio[2] != Stdio::Inherit {
            Some(channel::pipe().map_err(|e| Error::os(Step::Fork, "stderr pipe", e))?)
        } else {
            None
        };
        let ready_pipe = match ready_target {
            Some(_) => {
                Some(channel::pipe().map_err(|e| Error::os(Step::Readiness, "readiness pipe", e))?)
            }
            None => None,
        };
        let listener = match (exec, self.readiness) {
            (true, Readiness::Notify) => Some(
                notify::Listener::bind()
                    .map_err(|e| Error::os(Step::Readiness, "notify socket", e))?,
            ),
            _ => None,
        };
        let exec_plan = match program {
            Some(resolved) => {
                // An inherited NOTIFY_SOCKET belongs to whoever runs the launcher, not to the
                // daemon: drop it unless we provide our own or the caller set one explicitly.
                let mut environment = self.environment.clone();
                if !environment.sets("NOTIFY_SOCKET") {
                    environment = environment.remove("NOTIFY_SOCKET");
                }
                let mut extra: Vec<(&str, &OsStr)> = listener
                    .iter()
                    .map(|l| ("NOTIFY_SOCKET", OsStr::new(l.address())))
                    .collect();
                // Running as a user: that user's HOME, USER and LOGNAME, as su and OpenRC set
                // them, unless given explicitly (the launcher's would be root's).
                if let Some((name, home)) = checked.creds.as_ref().and_then(|c| c.login.as_ref()) {
                    for (key, value) in [("HOME", home), ("USER", name), ("LOGNAME", name)] {
                        if !environment.sets(key) {
                            extra.push((key, value.as_os_str()));
                        }
                    }
                }
                // SAFETY: validate() checked that this process runs one thread.
                let envp = unsafe { environment.to_envp(&extra) }?;
                Some(ExecPlan {
                    argv_ptrs: program::pointer_array(&resolved.argv),
                    envp_ptrs: program::pointer_array(&envp),
                    resolved,
                    _envp: envp,
                })
            }
            None => None,
        };
        let context = launcher::Context {
            program: exec_plan
                .as_ref()
                .map(|e| e.resolved.path().display().to_string()),
            workdir: self.workdir.display().to_string(),
            chroot: self.chroot.as_ref().map(|p| p.display().to_string()),
            pidfile: self.pidfile.as_ref().map(|p| p.display().to_string()),
            user: checked
                .creds
                .as_ref()
                .map(|c| (c.user_label.clone(), c.uid)),
            group: checked
                .creds
                .as_ref()
                .map(|c| (c.group_label.clone(), c.gid)),
            stdio: self.stdio.clone(),
            ready_fd: match self.readiness {
                Readiness::Fd(fd) if keeper => Some(fd),
                _ => ready_target,
            },
            readiness: self.readiness,
        };
        let (relay_r, relay_w) = relay.map_or((None, None), |(r, w)| (Some(r), Some(w)));
        let (ready_r, ready_w) = ready_pipe.map_or((None, None), |(r, w)| (Some(r), Some(w)));
        // The keeper, not the launcher, listens for sd_notify.
        let (listener, keeper_notify) = match keeper {
            true => (None, listener),
            false => (listener, None),
        };
        Ok(Launch {
            checked,
            changed_signals: match exec || keeper {
                true => signals::changed_dispositions(),
                false => 0,
            },
            umask: self.umask,
            max_fd: self.max_fd,
            no_core: self.no_core,
            resources: self.resources.clone(),
            stdio,
            pidfile: None,
            lock_target,
            ready: ready_w.zip(ready_target),
            status_w,
            relay_w,
            keep: self.keep_fds.clone(),
            keep_user: {
                let mut fds = self.keep_fds.clone();
                fds.sort_unstable();
                fds.dedup();
                fds
            },
            placeholders,
            exec: exec_plan,
            keeper_notify,
            environment: self.environment.clone(),
            context,
            ends: Some(launcher::Ends {
                status: status_r,
                relay: relay_r,
                ready: ready_r,
                notify: listener,
                interrupts,
            }),
        })
    }

    /// Foreground mode: the steps without forks, errors returned directly.
    fn run_foreground(&self, checked: Checked) -> Result<Running, Error> {
        let mut launch = self.acquire(checked, None, false)?;
        // No launcher listens: its ends of the channels are not used.
        drop(launch.ends.take());
        match daemon_steps(&mut launch) {
            Ok(()) => {}
            Err((step, err)) => {
                if let Some(p) = &launch.pidfile {
                    let _ = p.remove();
                }
                return Err(Error::os(step, launch.context.subject(step), err));
            }
        }
        let mut running = launch.into_running(true);
        if self.ready_at_start {
            running.ready()?;
        }
        Ok(running)
    }

    /// In the daemon (library mode): the steps, then the handle. Failures are reported to the
    /// launcher and end the process; this never returns an error into the caller's code.
    fn finish_in_daemon(&self, mut launch: Launch) -> Running {
        if let Err((step, err)) = daemon_steps(&mut launch) {
            channel::send(launch.status_w.as_fd(), Record::Failed(step, errno(&err)));
            process::exit_now(1);
        }
        let mut running = launch.into_running(false);
        if self.ready_at_start {
            let _ = running.ready();
        }
        running
    }
}

/// Descriptor numbers the daemon's descriptors must land on, and their reservations.
struct Targets {
    ready: Option<RawFd>,
    lock: Option<RawFd>,
    placeholders: Vec<OwnedFd>,
    interrupts: launcher::Interrupts,
}

/// What validation resolved.
#[derive(Debug)]
struct Checked {
    creds: Option<Credentials>,
    workdir: CString,
    chroot: Option<CString>,
}

/// Everything the daemon side needs, prepared before the first fork.
struct Launch {
    checked: Checked,
    /// The signals whose disposition is not the default here (`signals::reset_changed`): read
    /// when a program is executed or a keeper runs, the cases that reset them all.
    changed_signals: u64,
    umask: libc::mode_t,
    max_fd: RawFd,
    no_core: bool,
    resources: crate::resources::Resources,
    stdio: PreparedStdio,
    pidfile: Option<Pidfile>,
    /// Exec mode: the number the pidfile lock lands on in the program.
    lock_target: Option<RawFd>,
    /// Exec mode with an s6 readiness descriptor: the write end and its number in the program.
    ready: Option<(OwnedFd, RawFd)>,
    status_w: OwnedFd,
    relay_w: Option<OwnedFd>,
    /// Sorted descriptors close_inherited_fds leaves open.
    keep: Vec<RawFd>,
    /// The caller's own descriptors to keep (sorted), the part of `keep` a program gets.
    keep_user: Vec<RawFd>,
    placeholders: Vec<OwnedFd>,
    exec: Option<ExecPlan>,
    /// Under a keeper: the sd_notify socket it listens on.
    keeper_notify: Option<notify::Listener>,
    environment: Environment,
    context: launcher::Context,
    /// The launcher's ends of the channels; `None` in foreground mode.
    ends: Option<launcher::Ends>,
}

impl Launch {
    /// In the launcher, once the daemon side is forked: closes every descriptor at once
    /// (end-of-file on the status pipe must mean the daemon side closed it, and the keeper alone
    /// holds the pidfile's lock) and returns the wait's context, the pidfile's path and the rest,
    /// heap only. Drop that after the wait: the daemon side still shares its pages, and freeing
    /// them now would copy each one while the daemon starts.
    fn close_in_launcher(self) -> (launcher::Context, Option<PathBuf>, impl Sized) {
        let Launch {
            checked,
            resources,
            stdio,
            pidfile,
            ready,
            status_w,
            relay_w,
            keep,
            keep_user,
            placeholders,
            exec,
            keeper_notify,
            environment,
            context,
            ends,
            ..
        } = self;
        let path = pidfile.as_ref().map(|p| p.path().to_path_buf());
        drop((
            stdio,
            pidfile,
            ready,
            status_w,
            relay_w,
            placeholders,
            keeper_notify,
            ends,
        ));
        (
            context,
            path,
            (checked, resources, keep, keep_user, exec, environment),
        )
    }

    /// In the process that goes on as the daemon, after the steps: closes what only the
    /// procedure needed, applies the environment, and makes the handle. In foreground mode no
    /// launcher listens, so the status pipe is closed too.
    fn into_running(self, foreground: bool) -> Running {
        let Launch {
            mut pidfile,
            mut stdio,
            placeholders,
            environment,
            status_w,
            relay_w,
            ..
        } = self;
        // Only spawn reserves numbers; close_inherited_fds would have closed them: never drop.
        std::mem::forget(placeholders);
        let stderr_target = stdio.take_stderr_for_relay(relay_w.is_some());
        drop(stdio);
        drop(relay_w);
        if let Some(p) = &mut pidfile {
            p.close_writer();
        }
        // SAFETY: validate() refused a multi-threaded process, and the forks (if any) kept only
        // this thread, so nothing reads the environment concurrently.
        unsafe { environment.apply_in_process() };
        let status = (!foreground).then_some(status_w);
        Running::new(
            std::process::id(),
            pidfile,
            status,
            stderr_target,
            foreground,
        )
    }

    /// Adds the descriptors the daemon uses itself to the caller's, sorted.
    fn finish_keep_list(&mut self) {
        let mut keep = std::mem::take(&mut self.keep);
        keep.push(self.status_w.as_raw_fd());
        keep.extend(self.relay_w.as_ref().map(AsRawFd::as_raw_fd));
        keep.extend(self.stdio.fds());
        if let Some(p) = &self.pidfile {
            keep.push(p.lock_fd());
            keep.extend(p.writer_fd());
        }
        keep.extend(self.lock_target);
        keep.extend(self.keeper_notify.as_ref().map(notify::Listener::fd));
        if let Some((w, target)) = &self.ready {
            keep.push(w.as_raw_fd());
            keep.push(*target);
        }
        keep.sort_unstable();
        keep.dedup();
        self.keep = keep;
    }
}

/// A program ready for execve, with the arrays built before the fork.
struct ExecPlan {
    resolved: program::Resolved,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
}

enum Fork {
    /// In the daemon (the grandchild); the launcher's ends still need forgetting.
    Daemon(launcher::Ends),
    /// In the launcher: the first child's pid and the launcher's ends.
    Launcher(libc::pid_t, launcher::Ends),
}

/// daemon(7) steps 5-8: fork, setsid, fork, exit the first child. The grandchild reports its
/// pid first, so the launcher can watch it from then on. With `once` (a keeper whose launcher
/// exits: [`Daemon::launcher_exits`]), the first child is the daemon and reports itself.
fn fork_daemon(launch: &mut Launch, once: bool) -> Result<Fork, Error> {
    let Some(ends) = launch.ends.take() else {
        return Err(Error::new(
            ErrorKind::Os,
            Step::Fork,
            "internal: channels missing",
        ));
    };
    // Buffered output would otherwise be written once by each process.
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    let status_fd = launch.status_w.as_fd();
    // SAFETY: validate() checked that this process runs one thread, so the child may run
    // anything; the child below uses only system calls and _exit until the daemon steps.
    let child1 = unsafe { libc::fork() };
    if child1 < 0 {
        if let Some(p) = &launch.pidfile {
            let _ = p.remove();
        }
        return Err(Error::os(
            Step::Fork,
            "the first child",
            io::Error::last_os_error(),
        ));
    }
    if child1 > 0 {
        // The launcher keeps no write ends: end-of-file must mean the daemon side closed them.
        return Ok(Fork::Launcher(child1, ends));
    }
    // First child: a new session without a controlling terminal, then the second fork so the
    // daemon is not a session leader and can never acquire a terminal again.
    let child1 = getpid();
    if let Err(err) = rustix::process::setsid() {
        channel::send(status_fd, Record::Failed(Step::Setsid, err.raw_os_error()));
        process::exit_now(1);
    }
    if once {
        // The launcher exits once it has heard: this child is the daemon (a keeper). Its pid
        // is the one fork gave the launcher, which needs no record of it: a record would wake
        // the launcher (on another CPU, an interprocessor interrupt) on the path of the start.
        return Ok(Fork::Daemon(ends));
    }
    // SAFETY: the first child runs one thread (a fork of a single-threaded launcher); it makes
    // system calls only before it leaves.
    match unsafe { libc::fork() } {
        -1 => {
            let err = io::Error::last_os_error();
            channel::send(status_fd, Record::Failed(Step::Fork, errno(&err)));
            process::exit_now(1);
        }
        0 => {}
        _ => process::exit_now(0),
    }
    channel::send(status_fd, Record::Pid(getpid().as_raw_pid() as u32));
    wait_until_reparented(child1);
    Ok(Fork::Daemon(ends))
}

/// Waits in the daemon until the first child has exited and the daemon has been handed to init
/// (or the nearest subreaper), so that from here on `getppid()` is what it stays. A pidfd fires
/// only after the kernel has reparented the exiting process's children. Async-signal-safe.
///
/// References: pidfd_open(2), exit(2).
fn wait_until_reparented(child1: Pid) {
    use rustix::process::getppid;
    #[cfg(target_os = "linux")]
    if let Ok(pidfd) = rustix::process::pidfd_open(child1, rustix::process::PidfdFlags::empty()) {
        // Opened while child1 was still our parent, the pidfd is child1's (a pid is not reused
        // while its process exists); otherwise we were reparented already.
        if getppid() == Some(child1) {
            use rustix::event::{PollFd, PollFlags};
            let mut pfd = [PollFd::new(&pidfd, PollFlags::IN)];
            // EINTR just ends the wait early.
            let _ = rustix::event::poll(&mut pfd, None);
        }
        return;
    }
    // No pidfds: yield until the parent changes.
    while getppid() == Some(child1) {
        rustix::thread::sched_yield();
    }
}

/// The daemon(7) steps that run in the daemon, in order. Async-signal-safe: system calls only.
fn daemon_steps(launch: &mut Launch) -> Result<(), (Step, io::Error)> {
    // Steps 2-3: default dispositions and an empty mask. A Rust program that goes on as the
    // daemon keeps the handlers it installed and its runtime's ignored SIGPIPE; an executed
    // program gets every default.
    match launch.exec {
        // The Rust program goes on: what it set itself stays (each signal is looked at).
        None => signals::reset_signals_keeping_own(),
        Some(_) => signals::reset_changed(launch.changed_signals),
    }
    .map_err(|e| (Step::Signals, e))?;
    // Step 1: close everything inherited, except what was asked for and what we use.
    fds::close_inherited_fds(&launch.keep, launch.max_fd);
    if launch.exec.is_some() {
        // What the caller kept is for the program, even if it was opened close-on-exec (as
        // everything Rust opens is). A program that goes on as the daemon keeps its own flags.
        for &fd in &launch.keep_user {
            fds::set_cloexec(fd, false).map_err(|e| (Step::CloseFds, e))?;
        }
    }
    // Step 9: standard streams.
    redirect_stdio(launch)?;
    if let Some((w, target)) = &launch.ready {
        fds::dup2(w.as_raw_fd(), *target).map_err(|e| (Step::Readiness, e))?;
        fds::set_cloexec(*target, false).map_err(|e| (Step::Readiness, e))?;
    }
    if let (Some(p), Some(target)) = (&launch.pidfile, launch.lock_target) {
        fds::dup2(p.lock_fd(), target).map_err(|e| (Step::Pidfile, e))?;
        fds::set_cloexec(target, false).map_err(|e| (Step::Pidfile, e))?;
    }
    // Step 10.
    umask(Mode::from_bits_retain(launch.umask));
    // Resource controls, while privileged (raising a limit or lowering nice needs it) and
    // before the chroot (the OOM score is written through /proc).
    launch.resources.apply()?;
    // Step 11, inside the chroot when there is one (entered while still privileged).
    // The paths are `&CStr`s: rustix passes them on without copying them.
    if let Some(root) = &launch.checked.chroot {
        rustix::process::chroot(root.as_c_str()).map_err(|e| (Step::Chroot, e.into()))?;
    }
    rustix::process::chdir(launch.checked.workdir.as_c_str())
        .map_err(|e| (Step::Chdir, e.into()))?;
    // Step 12: the final pid, now that there will be no more forks.
    if let Some(p) = &launch.pidfile {
        let pid = getpid().as_raw_pid() as u32;
        p.write_pid(pid).map_err(|e| (Step::Pidfile, e))?;
    }
    if launch.no_core {
        let zero = Rlimit {
            current: Some(0),
            maximum: Some(0),
        };
        rustix::process::setrlimit(Resource::Core, zero).map_err(|e| (Step::NoCore, e.into()))?;
    }
    // Step 13: setgroups, setgid, setuid, then check root cannot be regained.
    if let Some(creds) = &launch.checked.creds {
        identity::drop_privileges(creds)?;
    }
    Ok(())
}

/// `dup2`s the prepared targets onto 0-2 (stderr onto the relay pipe until ready, if any).
fn redirect_stdio(launch: &Launch) -> Result<(), (Step, io::Error)> {
    let steps = [Step::Stdin, Step::Stdout, Step::Stderr];
    for (index, prepared) in launch.stdio.streams.iter().enumerate() {
        let source = match (index, &launch.relay_w, prepared) {
            (2, Some(relay), _) => relay.as_raw_fd(),
            (_, _, Prepared::Fd(fd)) => *fd,
            (_, _, Prepared::Inherit) => continue,
        };
        let target = index as RawFd;
        fds::dup2(source, target).map_err(|e| (steps[index], e))?;
        // The relay to the launcher stays close-on-exec until ready() puts the real target on
        // 2: a program the daemon executes meanwhile never holds it, so it cannot die of
        // SIGPIPE once the launcher has left (it starts with no stderr instead; Rust programs
        // reopen it on /dev/null).
        let relayed = index == 2 && launch.relay_w.is_some();
        fds::set_cloexec(target, relayed).map_err(|e| (steps[index], e))?;
    }
    Ok(())
}

/// In the daemon (exec mode): the steps, then execve. Never returns.
fn exec_in_daemon(mut launch: Launch) -> ! {
    if let Err((step, err)) = daemon_steps(&mut launch) {
        channel::send(launch.status_w.as_fd(), Record::Failed(step, errno(&err)));
        process::exit_now(1);
    }
    if let Some(exec) = &launch.exec {
        // libc: rustix has no public execve (only in its unstable `runtime` module).
        // SAFETY: the path and both arrays are NUL-terminated and were built before the fork.
        unsafe {
            libc::execve(
                exec.resolved.path.as_ptr(),
                exec.argv_ptrs.as_ptr(),
                exec.envp_ptrs.as_ptr(),
            )
        };
    }
    // Only reached when execve failed: the launcher reads this instead of end-of-file.
    let err = io::Error::last_os_error();
    channel::send(
        launch.status_w.as_fd(),
        Record::Failed(Step::Exec, errno(&err)),
    );
    process::exit_now(127)
}

/// The keeper's own steps, after the forks (or in the foreground): default signal dispositions
/// and an empty mask; inherited descriptors closed (detached only); the program's standard
/// streams on 0-2, so the program inherits them and the keeper's stderr is the program's
/// target; umask 022 and `/` as its directory (detached only). No chroot and no privilege drop:
/// those are the program's.
fn keeper_steps(launch: &mut Launch, detached: bool) -> Result<(), (Step, io::Error)> {
    signals::reset_changed(launch.changed_signals).map_err(|e| (Step::Signals, e))?;
    if detached {
        fds::close_inherited_fds(&launch.keep, launch.max_fd);
    }
    let steps = [Step::Stdin, Step::Stdout, Step::Stderr];
    for (index, prepared) in launch.stdio.streams.iter().enumerate() {
        if let Prepared::Fd(fd) = prepared {
            let target = index as RawFd;
            fds::dup2(*fd, target).map_err(|e| (steps[index], e))?;
            // dup2 onto another number makes it inheritable; onto itself it changes nothing.
            if *fd == target {
                fds::set_cloexec(target, false).map_err(|e| (steps[index], e))?;
            }
        }
    }
    if detached {
        umask(Mode::from_bits_retain(0o022));
        rustix::process::chdir(c"/").map_err(|e| (Step::Chdir, e.into()))?;
    }
    Ok(())
}

/// Turns what the procedure prepared into the keeper's setup. Returns the status pipe's write
/// end too when the caller must keep it alive otherwise.
fn keeper_setup(
    launch: Launch,
    readiness: Readiness,
    policy: Policy,
    foreground: bool,
) -> (crate::keeper::Setup, Option<OwnedFd>) {
    let Launch {
        checked,
        umask,
        no_core,
        resources,
        pidfile,
        status_w,
        relay_w,
        keep_user,
        placeholders,
        exec,
        keeper_notify,
        stdio,
        context,
        ..
    } = launch;
    let stdio_targets = context.stdio.clone();
    // Reserved numbers (none under a keeper) and stdio sources were dup2ed or are not ours.
    std::mem::forget(placeholders);
    std::mem::forget(stdio);
    let (path, argv, envp, argv_ptrs, envp_ptrs) = match exec {
        Some(plan) => (
            plan.resolved.path,
            plan.resolved.argv,
            plan._envp,
            plan.argv_ptrs,
            plan.envp_ptrs,
        ),
        None => (
            CString::default(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        ),
    };
    let files = pidfile.map(|pidfile| {
        let path = pidfile.path().to_path_buf();
        crate::keeper::Files {
            status: crate::status::Writer::new(&path),
            socket: crate::control::socket_path(&path),
            pidfile,
        }
    });
    let spec = crate::keeper::Spec {
        path,
        argv_ptrs,
        envp_ptrs,
        _strings: (argv, envp),
        creds: checked.creds,
        workdir: checked.workdir,
        chroot: checked.chroot,
        umask,
        no_core,
        resources,
        readiness,
        keep: keep_user,
        shared_output: shared_output(&stdio_targets),
        output_file: stdio_targets[2].path().map(Path::to_path_buf),
        // libc: rustix's isatty is behind its `termios` feature, and takes a `BorrowedFd`; this
        // one call does not pay for the feature.
        // SAFETY: isatty only asks (and says no for a closed descriptor).
        tty: foreground && unsafe { libc::isatty(0) } == 1,
    };
    let (launcher, kept) = match foreground {
        true => (None, Some(status_w)),
        false => (Some(status_w), None),
    };
    (
        crate::keeper::Setup {
            spec,
            policy,
            files,
            launcher,
            relay: relay_w,
            notify: keeper_notify,
            foreground,
            reexec: None,
            log: None,
            log_stderr: None,
            syslog: None,
        },
        kept,
    )
}

/// Removes `path` if it is of the kind `expected` says and belongs to this user.
fn remove_own(path: &Path, expected: impl Fn(std::fs::FileType) -> bool) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.uid() == rustix::process::geteuid().as_raw()
        && expected(meta.file_type())
    {
        let _ = std::fs::remove_file(path);
    }
}

/// Whether stdout and stderr name the same file (`-o FILE`).
fn shared_output(targets: &[Stdio; 3]) -> bool {
    match (&targets[1], &targets[2]) {
        (Stdio::Append(a) | Stdio::Truncate(a), Stdio::Append(b) | Stdio::Truncate(b)) => a == b,
        _ => false,
    }
}

/// In the keeper (the daemon of a supervised service): its steps, then its loop. Never
/// returns; failures are reported to the launcher.
fn keeper_in_daemon(
    mut launch: Launch,
    readiness: Readiness,
    policy: Policy,
    image: Option<PathBuf>,
    logs: [Option<crate::log::LogConfig>; 2],
    syslog: Option<crate::log::SyslogConfig>,
) -> ! {
    if let Err((step, err)) = keeper_steps(&mut launch, true) {
        channel::send(launch.status_w.as_fd(), Record::Failed(step, errno(&err)));
        process::exit_now(1);
    }
    // The status pipe moves into the keeper's setup, which a failing Keeper::new drops: a copy
    // to report that failure through.
    let report = rustix::io::fcntl_dupfd_cloexec(&launch.status_w, 3).ok();
    let (mut setup, _) = keeper_setup(launch, readiness, policy, false);
    setup.reexec = image;
    let [log, log_stderr] = logs;
    setup.log = log;
    setup.log_stderr = log_stderr;
    setup.syslog = syslog;
    // A keeper that re-executes into a small image leaves all it inherited behind anyway;
    // shedding (which reads /proc/self/smaps) is for one that stays in this image.
    if setup.reexec.is_none() {
        crate::keeper::shed_inherited_memory();
    }
    let keeper = match crate::keeper::Keeper::new(setup) {
        Ok(keeper) => keeper,
        Err((step, err)) => {
            if let Some(report) = &report {
                channel::send(report.as_fd(), Record::Failed(step, errno(&err)));
            }
            process::exit_now(1)
        }
    };
    drop(report);
    keeper.run();
    // The keeper's work is done; what is left to drop belongs to the launcher's copy of this
    // process image.
    process::exit_now(0)
}

/// The launcher's end of `start()`: exit 0 when ready, else one line on stderr and exit 1.
fn exit_launcher(outcome: Result<u32, Error>) -> ! {
    match outcome {
        Ok(_) => std::process::exit(0),
        Err(err) => {
            let name = std::env::args_os()
                .next()
                .and_then(|a| {
                    Path::new(&a)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .unwrap_or_else(|| "daemon".into());
            eprintln!("{name}: {err}");
            std::process::exit(1)
        }
    }
}

/// Refuses to go on as the daemon from inside an async runtime that runs on this one thread
/// (tokio's `current_thread`, smol, glommio): it passes the thread check, but its epoll or
/// io_uring instance, and the wakers registered with it, are descriptors the daemon closes, and
/// the runtime breaks at its next poll. Such an instance is what every Linux runtime with I/O
/// creates first; one the caller asked to keep is its own business. Linux; elsewhere nothing is
/// checked.
fn refuse_async_runtime(keep: &[RawFd]) -> Result<(), Error> {
    #[cfg(target_os = "linux")]
    {
        let dir = std::fs::read_dir("/proc/self/fd")
            .map_err(|e| Error::os(Step::Threads, "/proc/self/fd", e))?;
        for entry in dir.flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<RawFd>().ok())
            else {
                continue;
            };
            if keep.contains(&fd) {
                continue;
            }
            // The directory's own descriptor, and any closed meanwhile, read as something else.
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let kind = match target.as_os_str().as_bytes() {
                b"anon_inode:[eventpoll]" => "an epoll instance",
                b"anon_inode:[io_uring]" => "an io_uring instance",
                _ => continue,
            };
            return Err(Error::new(
                ErrorKind::InvalidInput,
                Step::Threads,
                format!(
                    "descriptor {fd} is {kind}, likely an async runtime's: the daemon would close it and the runtime would break (call start() first, before building a runtime or starting threads)"
                ),
            ));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = keep;
    Ok(())
}

/// Refuses a process that already runs more than one thread: after fork only the calling
/// thread exists, and locks other threads held (malloc's among them) stay locked forever.
fn refuse_threads() -> Result<(), Error> {
    #[cfg(target_os = "linux")]
    {
        // unshare(CLONE_THREAD) has no effect in a single-threaded process and fails with
        // EINVAL in a threaded one (unshare(2)): one system call, where the stat below costs
        // about 10 us in a fresh process (procfs builds its entries first). Any failure (threads,
        // a kernel before 4.3 that also counted other users of the memory, a seccomp filter that
        // refuses unshare) is settled by counting the threads.
        // rustix names no CLONE_THREAD flag for unshare; its flags keep unnamed bits.
        let thread = rustix::thread::UnshareFlags::from_bits_retain(libc::CLONE_THREAD as _);
        // SAFETY: CLONE_THREAD alone unshares nothing (no descriptor table: no thread can lose
        // a descriptor); it only asks whether there is anything to unshare.
        if unsafe { rustix::thread::unshare_unsafe(thread) }.is_ok() {
            return Ok(());
        }
        // A task directory's link count is 2 and one per thread: one stat (not statx, which
        // older kernels and seccomp profiles refuse), where reading /proc/self/status costs
        // 30 us in a fresh process.
        let task = rustix::fs::stat(c"/proc/self/task")
            .map_err(|e| Error::os(Step::Threads, "/proc/self/task", e.into()))?;
        // `st_nlink` is a u32 on some architectures (aarch64).
        #[allow(clippy::useless_conversion)]
        let threads = u64::from(task.st_nlink).saturating_sub(2);
        if threads > 1 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                Step::Threads,
                format!(
                    "this process runs {threads} threads; fork would keep only one and can deadlock (daemonize first, then start threads and async runtimes)"
                ),
            ));
        }
    }
    Ok(())
}

/// A path as a C string for chdir/chroot.
fn c_path(path: &Path, step: Step) -> Result<CString, Error> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        Error::new(
            ErrorKind::InvalidInput,
            step,
            format!("{step} {:?}: contains a NUL byte", path),
        )
    })
}

/// The highest descriptor number below `min(RLIMIT_NOFILE, 1024)` not asked for by the caller.
/// The program finds the pidfile lock there, far from the low numbers it allocates itself;
/// capped at 1024 so the kernel's descriptor table stays small.
fn high_free_fd(keep: &[RawFd], ready: Option<RawFd>) -> RawFd {
    let soft = rustix::process::getrlimit(Resource::Nofile)
        .current
        .and_then(|n| RawFd::try_from(n).ok())
        .unwrap_or(1024);
    let mut fd = soft.min(1024) - 1;
    while fd > 3 && (keep.contains(&fd) || ready == Some(fd)) {
        fd -= 1;
    }
    fd
}

/// Occupies descriptor number `fd` with `/dev/null` (close-on-exec) so nothing else takes it.
fn reserve(fd: RawFd) -> io::Result<OwnedFd> {
    let null = std::fs::File::open("/dev/null")?;
    if null.as_raw_fd() == fd {
        // It landed on the number itself (the lowest free one); File opens close-on-exec.
        return Ok(OwnedFd::from(null));
    }
    fds::dup2(null.as_raw_fd(), fd)?;
    fds::set_cloexec(fd, true)?;
    // SAFETY: dup2 just made `fd` a new descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

fn errno(err: &io::Error) -> i32 {
    err.raw_os_error().unwrap_or(libc::EIO)
}
