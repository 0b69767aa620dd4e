//! The launching process's side: wait until the daemon is ready, fails, exits or runs out of
//! time, and say which in one line (daemon(7) steps 14-15).
//!
//! The wait is a state machine driven by one `poll` over every source at once: the status pipe,
//! the daemon's stderr before readiness, the sd_notify socket, the s6 readiness pipe and the
//! daemon's pidfd, with one deadline. [`next`] is the whole behaviour: a table from (state,
//! event) to the next state.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, Signal, WaitOptions, kill_process_group};

use crate::channel::{Receiver, Record};
use crate::error::{Error, ErrorKind, Step};
use crate::notify::{self, Message};
use crate::pidfile::Pidfile;
use crate::process::{self, Process};
use crate::signals::signal_name;
use crate::stdio::Stdio;

/// How long a half-started daemon gets to exit after `SIGTERM` before `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long a keeper gets to stop a half-started service on TERM before it is killed.
const KEEPER_GRACE: Duration = Duration::from_secs(20);

/// How long a closed status pipe waits for the daemon's exit to become visible.
const EXIT_SETTLE: Duration = Duration::from_millis(200);

/// How a spawned program tells the launcher it is ready.
///
/// # Example
/// ```
/// use daemonic::{Daemon, Readiness};
/// let daemon = Daemon::new().readiness(Readiness::Notify);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Readiness {
    /// Ready once `execve` succeeded.
    #[default]
    Exec,
    /// sd_notify: the program gets `$NOTIFY_SOCKET` and sends `READY=1`.
    Notify,
    /// s6 style: the program writes a newline to this descriptor.
    Fd(RawFd),
}

/// What a spawning launcher reports while it waits.
///
/// # Example
/// ```no_run
/// use daemonic::{Daemon, Program, Progress};
/// let spawned = Daemon::new().spawn_with(&Program::new("sleep").arg("60"), |progress| match progress {
///     Progress::Started { pid } => eprintln!("started as pid {pid}, waiting for readiness"),
///     Progress::Status(text) => eprintln!("status: {text}"),
///     _ => {}
/// })?;
/// # Ok::<(), daemonic::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// The daemon runs with this pid (not ready yet). The launcher is otherwise idle until the
    /// program is ready, so this is the moment for bookkeeping.
    Started {
        /// The daemon's pid, the one its pidfile will hold.
        pid: u32,
    },
    /// The program sent `STATUS=` over sd_notify.
    Status(&'a str),
}

/// The launcher's internal mode: which event means "ready".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Library mode: a `Ready` record from [`crate::Running::ready`].
    Handle,
    /// End-of-file on the status pipe after the pid: the exec succeeded.
    Exec,
    /// `READY=1` on the notify socket.
    Notify,
    /// A newline on the readiness pipe.
    Fd,
    /// A keeper runs the program and reports: its `Ready` record, the program's pid, its exit.
    Keeper,
}

/// The launcher's ends of the channels, made before the fork.
#[derive(Debug)]
pub(crate) struct Ends {
    pub status: OwnedFd,
    pub relay: Option<OwnedFd>,
    pub ready: Option<OwnedFd>,
    pub notify: Option<notify::Listener>,
    /// Ctrl-C, TERM and HUP, blocked before the pidfile was taken.
    pub interrupts: Interrupts,
}

/// What the launcher knows of the configuration, to name things in messages.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub program: Option<String>,
    pub workdir: String,
    pub chroot: Option<String>,
    pub pidfile: Option<String>,
    pub user: Option<(String, Option<libc::uid_t>)>,
    pub group: Option<(String, libc::gid_t)>,
    pub stdio: [Stdio; 3],
    pub ready_fd: Option<RawFd>,
    /// How the program was to say it is ready, for the timeout's message.
    pub readiness: Readiness,
}

impl Context {
    /// The path or name a step worked on.
    pub(crate) fn subject(&self, step: Step) -> String {
        let stream = |i: usize| match &self.stdio[i] {
            Stdio::Null => "/dev/null".to_string(),
            Stdio::Inherit => "(inherited)".to_string(),
            Stdio::Append(p) | Stdio::Truncate(p) => p.display().to_string(),
        };
        let user = || match &self.user {
            Some((name, Some(uid))) => format!("to user {name} (uid {uid})"),
            _ => String::new(),
        };
        match step {
            Step::Stdin => stream(0),
            Step::Stdout => stream(1),
            Step::Stderr => stream(2),
            Step::Chroot => self.chroot.clone().unwrap_or_default(),
            Step::Chdir | Step::Workdir => self.workdir.clone(),
            Step::Pidfile => self.pidfile.clone().unwrap_or_default(),
            Step::Exec | Step::Program => self.program.clone().unwrap_or_default(),
            Step::Setuid | Step::VerifyPrivileges | Step::Setgroups => user(),
            Step::Setgid => match &self.group {
                Some((name, gid)) => format!("to group {name} (gid {gid})"),
                None => String::new(),
            },
            Step::Control => self
                .pidfile
                .as_ref()
                .map(|p| format!("socket {p}.sock"))
                .unwrap_or_default(),
            Step::Readiness => self
                .ready_fd
                .map(|fd| format!("descriptor {fd}"))
                .unwrap_or_default(),
            _ => String::new(),
        }
    }

    fn error(&self, step: Step, errno: i32) -> Error {
        let err = Error::os(
            step,
            self.subject(step),
            io::Error::from_raw_os_error(errno),
        );
        match (step, errno) {
            (Step::Exec, libc::ENOENT | libc::EACCES | libc::ENOEXEC) => {
                err.with_kind(ErrorKind::NotInstalled)
            }
            (Step::Control, libc::ENOTSOCK) => {
                err.with_hint("a file that is not a socket is in the way; remove it")
            }
            (Step::Control, libc::EADDRINUSE) => err.with_hint(
                "a live keeper answers on it, though its pidfile is gone: stop that keeper first (kill the daemonic-keeper process that names this pidfile)",
            ),
            _ => err,
        }
    }
}

/// Where the wait stands.
#[derive(Debug)]
enum State {
    /// Forked; the daemon has not said its pid yet.
    Forked,
    /// The daemon runs and is not ready; `executed` once a spawned program's exec succeeded.
    Starting { pid: u32, executed: bool },
    /// Ready: the launcher can leave.
    Ready { pid: u32 },
    /// Failed: the message to print; the daemon, if it still runs, is stopped.
    Failed(Error),
}

/// What can happen while waiting.
#[derive(Debug)]
enum Event {
    Pid(u32),
    /// A keeper's program runs with this pid.
    Program(u32),
    /// The keeper exited (or was killed) before the program was ready.
    KeeperGone,
    Ready,
    StepFailed(Step, i32),
    ChannelClosed,
    ReadyFdClosed,
    Errno(i32),
    /// The launcher itself got this signal (Ctrl-C, TERM, HUP).
    Interrupted(i32),
    Exited(Option<i32>),
    Timeout,
}

/// The state table: the launcher's whole behaviour.
fn next(state: State, event: Event, mode: Mode, ctx: &Context, timeout: Duration) -> State {
    use Event as E;
    use State as S;
    let not_ready =
        |message: String| S::Failed(Error::new(ErrorKind::NotReady, Step::Wait, message));
    match (state, event) {
        (S::Forked, E::Pid(pid)) => S::Starting {
            pid,
            executed: false,
        },
        (_, E::StepFailed(step, errno)) => S::Failed(ctx.error(step, errno)),
        (S::Forked | S::Starting { .. }, E::Interrupted(signal)) => S::Failed(Error::new(
            ErrorKind::Interrupted(signal),
            Step::Wait,
            format!(
                "interrupted by SIG{} while waiting for readiness; stopped the half-started daemon",
                signal_name(signal)
            ),
        )),
        (S::Forked, E::ChannelClosed | E::Exited(_) | E::KeeperGone) => {
            not_ready("the daemon's first child exited before the daemon started".into())
        }
        (S::Starting { .. }, E::Program(pid)) => S::Starting {
            pid,
            executed: true,
        },
        (S::Starting { pid, .. }, E::KeeperGone) => not_ready(format!(
            "the keeper exited before the program (pid {pid}) was ready"
        )),
        (S::Starting { pid, .. }, E::Ready) => S::Ready { pid },
        (
            S::Starting {
                pid,
                executed: false,
            },
            E::ChannelClosed,
        ) => match mode {
            Mode::Exec => S::Ready { pid },
            Mode::Notify | Mode::Fd => S::Starting {
                pid,
                executed: true,
            },
            Mode::Handle => not_ready(format!(
                "daemon (pid {pid}) exited or dropped its handle before calling ready()"
            )),
            Mode::Keeper => {
                not_ready("the keeper closed its channel before the program was ready".into())
            }
        },
        (S::Starting { pid, .. }, E::Exited(status)) => {
            let who = if mode == Mode::Keeper {
                "program"
            } else {
                "daemon"
            };
            not_ready(format!(
                "{who} (pid {pid}) {} before it was ready",
                describe_exit(status)
            ))
        }
        (S::Starting { pid, .. }, E::Errno(errno)) => {
            let who = if mode == Mode::Keeper {
                "program"
            } else {
                "daemon"
            };
            not_ready(format!(
                "{who} (pid {pid}) reported failure: ERRNO={errno} ({})",
                io::Error::from_raw_os_error(errno)
            ))
        }
        (S::Starting { pid, .. }, E::ReadyFdClosed) => {
            let who = if mode == Mode::Keeper {
                "program"
            } else {
                "daemon"
            };
            not_ready(format!(
                "{who} (pid {pid}) closed descriptor {} without writing a newline",
                ctx.ready_fd.unwrap_or(-1)
            ))
        }
        (S::Starting { pid, .. }, E::Timeout) => {
            let who = if mode == Mode::Keeper {
                "program"
            } else {
                "daemon"
            };
            let expected = match (mode, ctx.readiness) {
                (Mode::Handle, _) => " (it was to call Running::ready())".to_string(),
                (_, Readiness::Notify) => {
                    " (it was to send READY=1 to $NOTIFY_SOCKET: does it speak sd_notify?)"
                        .to_string()
                }
                (_, Readiness::Fd(fd)) => format!(
                    " (it was to write a newline to descriptor {fd}: does it speak s6 readiness?)"
                ),
                _ => String::new(),
            };
            not_ready(format!(
                "{who} (pid {pid}) was not ready after {:.1}s; stopped it{expected}",
                timeout.as_secs_f64()
            ))
        }
        (S::Forked, E::Timeout) => not_ready("the daemon did not start in time".into()),
        // Anything else changes nothing: late or duplicate news.
        (state, _) => state,
    }
}

fn describe_exit(status: Option<i32>) -> String {
    match status {
        Some(s) if libc::WIFEXITED(s) => format!("exited with status {}", libc::WEXITSTATUS(s)),
        Some(s) if libc::WIFSIGNALED(s) => {
            format!("was killed by signal {}", signal_name(libc::WTERMSIG(s)))
        }
        _ => "exited".to_string(),
    }
}

/// The waiting launcher.
pub(crate) struct Launcher {
    status: Receiver,
    relay: Option<OwnedFd>,
    ready: Option<OwnedFd>,
    ready_seen: Vec<u8>,
    notify: Option<notify::Listener>,
    child1: libc::pid_t,
    /// The first child is the daemon itself ([`crate::Daemon::launcher_exits`]): not reaped.
    forked_once: bool,
    mode: Mode,
    timeout: Duration,
    context: Context,
    pidfile: Option<Pidfile>,
    daemon: Option<Process>,
    interrupts: Interrupts,
}

impl Launcher {
    pub(crate) fn new(
        ends: Ends,
        child1: libc::pid_t,
        mode: Mode,
        timeout: Duration,
        context: Context,
        pidfile: Option<Pidfile>,
    ) -> Launcher {
        Launcher {
            status: Receiver::new(ends.status),
            relay: ends.relay,
            ready: ends.ready,
            ready_seen: Vec::new(),
            notify: ends.notify,
            child1,
            forked_once: false,
            mode,
            timeout,
            context,
            pidfile,
            daemon: None,
            interrupts: ends.interrupts,
        }
    }

    /// The first child is the daemon itself (a keeper forked once): it is not waited for.
    pub(crate) fn forked_once(mut self, once: bool) -> Launcher {
        self.forked_once = once;
        self
    }

    /// Waits for the outcome. On success returns the daemon's pid; on failure the daemon is
    /// stopped, the pidfile removed, and the error returned.
    pub(crate) fn wait(self, on_progress: &mut dyn FnMut(Progress<'_>)) -> Result<u32, Error> {
        self.wait_for_both(on_progress).map(|(_, pid)| pid)
    }

    /// The wait; on success, the pid the daemon reported first (a keeper's own) and the pid that
    /// became ready (a keeper's program, or the daemon itself).
    fn wait_for_both(
        mut self,
        on_progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(u32, u32), Error> {
        // The first child only forks and exits; reap it so it leaves no zombie. The daemon is
        // then a child of init, as daemon(7) wants, from its first moment.
        if let Some(child1) = Pid::from_raw(self.child1)
            && !self.forked_once
        {
            let _ = rustix::process::waitpid(Some(child1), WaitOptions::empty());
        }
        let mut deadline = Instant::now()
            .checked_add(self.timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86400));
        let mut state = State::Forked;
        if self.forked_once {
            // The first child is the daemon: fork told us its pid, and it sends no record of it.
            let mut events = Vec::new();
            self.heard_pid(self.child1 as u32, &mut events, on_progress);
            for event in events {
                state = next(state, event, self.mode, &self.context, self.timeout);
            }
        }
        // Ctrl-C, TERM or HUP while waiting stop the half-started daemon rather than leave it:
        // taken through a signalfd (blocked since before the pidfile), the mask restored after.
        let interrupts = std::mem::replace(&mut self.interrupts, Interrupts::none());
        loop {
            state = match state {
                State::Ready { .. } | State::Failed(_) => break,
                state => state,
            };
            let now = Instant::now();
            if now >= deadline {
                state = next(
                    state,
                    Event::Timeout,
                    self.mode,
                    &self.context,
                    self.timeout,
                );
                continue;
            }
            let mut events = self.poll(deadline - now, on_progress, &mut deadline, &interrupts);
            events.extend(interrupts.take());
            for event in events {
                state = next(state, event, self.mode, &self.context, self.timeout);
            }
        }
        self.relay_stderr();
        // `interrupts` lives until the end: a second Ctrl-C while a half-started daemon is
        // stopped must not kill the launcher before it has finished (and removed the pidfile).
        match state {
            State::Ready { pid } => Ok((self.daemon.as_ref().map_or(pid, Process::pid), pid)),
            State::Failed(err) => {
                self.stop_half_started();
                if let Some(p) = &self.pidfile {
                    let _ = p.remove();
                }
                Err(err)
            }
            State::Forked | State::Starting { .. } => Err(Error::new(
                ErrorKind::NotReady,
                Step::Wait,
                "the wait ended without an outcome",
            )),
        }
    }

    /// [`wait`](Launcher::wait) for a keeper: returns the keeper's pid and its program's.
    pub(crate) fn wait_keeper(
        self,
        on_progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(u32, u32), Error> {
        self.wait_for_both(on_progress)
    }

    /// One poll over every source; returns the events it produced, the status pipe first so
    /// that a daemon's reason for exiting is read before its exit.
    fn poll(
        &mut self,
        timeout: Duration,
        on_progress: &mut dyn FnMut(Progress<'_>),
        deadline: &mut Instant,
        interrupts: &Interrupts,
    ) -> Vec<Event> {
        const STATUS: usize = 0;
        const RELAY: usize = 1;
        const READY: usize = 2;
        const NOTIFY: usize = 3;
        const PIDFD: usize = 4;
        let sources = [
            (!self.status.is_closed()).then(|| self.status.fd()),
            self.relay.as_ref().map(AsFd::as_fd),
            self.ready.as_ref().map(AsFd::as_fd),
            self.notify.as_ref().map(AsFd::as_fd),
            self.daemon
                .as_ref()
                .and_then(Process::pidfd)
                .map(AsFd::as_fd),
            interrupts.fd(),
        ];
        let mut fds: Vec<PollFd<'_>> = sources
            .iter()
            .flatten()
            .map(|&fd| PollFd::from_borrowed_fd(fd, PollFlags::IN))
            .collect();
        // Without a pidfd (no pidfd_open), look at the daemon at least every 100 ms.
        let mut wait = timeout;
        if self.daemon.as_ref().is_some_and(|d| d.pidfd().is_none()) {
            wait = wait.min(Duration::from_millis(100));
        }
        let ms = wait.as_millis().clamp(1, i32::MAX as u128) as i32;
        let mut events = Vec::new();
        if rustix::event::poll(&mut fds, Some(&process::poll_timeout(ms))).is_err() {
            return events;
        }
        // Each source's outcome, in order; the absent ones were not polled.
        let mut outcomes = fds.iter().map(|p| !p.revents().is_empty());
        let ready = sources.map(|fd| fd.is_some() && outcomes.next().unwrap_or(false));
        if ready[STATUS] {
            self.read_status(&mut events, on_progress, deadline);
        }
        if ready[RELAY] {
            self.relay_stderr();
        }
        if ready[READY] {
            self.read_ready_fd(&mut events);
        }
        if ready[NOTIFY] {
            self.read_notify(&mut events, on_progress, deadline);
        }
        let exited = match &self.daemon {
            Some(d) if d.pidfd().is_some() => ready[PIDFD],
            Some(d) => !d.is_alive(),
            None => false,
        };
        if exited {
            // Whatever the daemon said before dying comes first.
            while !self.status.is_closed() && self.status_readable() {
                self.read_status(&mut events, on_progress, deadline);
            }
            if self.mode == Mode::Keeper {
                events.push(Event::KeeperGone);
            } else {
                let status = self.daemon.as_ref().and_then(exit_status);
                events.push(Event::Exited(status));
            }
        }
        events
    }

    fn status_readable(&self) -> bool {
        process::poll_readable(self.status.fd(), Some(Duration::ZERO))
    }

    fn read_status(
        &mut self,
        events: &mut Vec<Event>,
        on_progress: &mut dyn FnMut(Progress<'_>),
        deadline: &mut Instant,
    ) {
        match self.status.read() {
            Ok(records) => {
                for record in records {
                    match record {
                        Record::Pid(pid) => self.heard_pid(pid, events, on_progress),
                        Record::Ready => events.push(Event::Ready),
                        // A keeper reports its program's readiness failures with these steps.
                        Record::Failed(Step::Wait, errno) if self.mode == Mode::Keeper => {
                            events.push(Event::Errno(errno))
                        }
                        Record::Failed(Step::Readiness, libc::EPIPE)
                            if self.mode == Mode::Keeper =>
                        {
                            events.push(Event::ReadyFdClosed)
                        }
                        Record::Failed(step, errno) => events.push(Event::StepFailed(step, errno)),
                        Record::Extend(ms) => {
                            let extend = Duration::from_millis(u64::from(ms));
                            *deadline = (*deadline).max(Instant::now() + extend);
                        }
                        Record::Program(pid) => {
                            events.push(Event::Program(pid));
                            on_progress(Progress::Started { pid });
                        }
                        Record::Exited(status) => events.push(Event::Exited(Some(status))),
                        Record::Text(text) => on_progress(Progress::Status(&text)),
                    }
                }
            }
            Err(_) => events.push(Event::ChannelClosed),
        }
        if self.status.is_closed() {
            // A dying process closes its descriptors before its pidfd fires: give the exit a
            // moment to show, so the message says "exited" rather than "closed".
            match &self.daemon {
                Some(d) if self.mode == Mode::Handle && d.wait_exit(EXIT_SETTLE) => {
                    events.push(Event::Exited(exit_status(d)))
                }
                Some(d) if self.mode == Mode::Keeper && d.wait_exit(EXIT_SETTLE) => {
                    events.push(Event::KeeperGone)
                }
                _ => events.push(Event::ChannelClosed),
            }
        }
    }

    /// The daemon's pid, reported by it or (forked once) known from the fork: watched at once,
    /// since notifications read in the same round need it.
    fn heard_pid(
        &mut self,
        pid: u32,
        events: &mut Vec<Event>,
        on_progress: &mut dyn FnMut(Progress<'_>),
    ) {
        events.push(Event::Pid(pid));
        if self.daemon.is_none() {
            self.daemon = self.open_daemon(pid);
            if self.daemon.is_none() {
                // Gone before we could watch it.
                events.push(Event::Exited(None));
            } else if self.mode != Mode::Keeper {
                on_progress(Progress::Started { pid });
            }
        }
    }

    /// Copies what the daemon wrote to stderr before readiness to our stderr.
    fn relay_stderr(&mut self) {
        let Some(fd) = &self.relay else { return };
        let mut buf = [0u8; 4096];
        loop {
            if !process::poll_readable(fd, Some(Duration::ZERO)) {
                return;
            }
            let n = match rustix::io::read(fd, &mut buf) {
                Ok(n) if n > 0 => n,
                _ => {
                    self.relay = None;
                    return;
                }
            };
            let _ = io::stderr().write_all(&escape_controls(&buf[..n]));
        }
    }

    fn read_ready_fd(&mut self, events: &mut Vec<Event>) {
        let Some(fd) = &self.ready else { return };
        let mut buf = [0u8; 512];
        if let Ok(n @ 1..) = rustix::io::read(fd, &mut buf) {
            self.ready_seen.extend_from_slice(&buf[..n]);
            if self.ready_seen.contains(&b'\n') {
                events.push(Event::Ready);
                self.ready = None;
            }
        } else {
            self.ready = None;
            events.push(Event::ReadyFdClosed);
        }
    }

    fn read_notify(
        &mut self,
        events: &mut Vec<Event>,
        on_progress: &mut dyn FnMut(Progress<'_>),
        deadline: &mut Instant,
    ) {
        let Some(listener) = &self.notify else { return };
        while let Ok(Some((sender, data))) = listener.recv() {
            let Some(daemon) = &self.daemon else { continue };
            if !self.is_ours(sender, daemon.pid()) {
                continue;
            }
            let message = Message::parse(&data);
            if let Some(status) = &message.status {
                on_progress(Progress::Status(status));
            }
            if let Some(extend) = message.extend_timeout {
                *deadline = (*deadline).max(Instant::now() + extend);
            }
            if let Some(errno) = message.errno.filter(|&e| e > 0) {
                events.push(Event::Errno(errno));
            }
            if message.ready {
                events.push(Event::Ready);
            }
        }
    }

    /// A pidfd for the daemon, checked to be in the session its first child created (so a pid
    /// reused after a very early death is not mistaken for it). A keeper forked once is that
    /// first child, not yet reaped: its pid cannot have been reused, and nothing is read.
    fn open_daemon(&self, pid: u32) -> Option<Process> {
        let process = Process::open(pid).ok()?;
        if self.forked_once && pid == self.child1 as u32 {
            return Some(process);
        }
        let stat = process::ProcStat::read(pid)?;
        (stat.session == self.child1 as u32).then_some(process)
    }

    /// A notification counts only from the daemon, its descendants, or its session.
    fn is_ours(&self, sender: Option<u32>, daemon: u32) -> bool {
        let Some(sender) = sender else {
            // No credentials on this system: accept, as the socket's name is private.
            return true;
        };
        sender == daemon
            || process::is_descendant(sender, daemon)
            || process::ProcStat::read(sender).is_some_and(|s| s.session == self.child1 as u32)
    }

    /// TERM to the daemon and its process group, KILL after a grace period. A keeper stops its
    /// whole service on TERM (by its own schedule) and removes what it wrote; it gets that long.
    /// A daemon whose pid never arrived is reached through its process group (the first child's
    /// pid): it cannot have been reused while a member lives. A keeper forked once is this
    /// process's child, not yet reaped, so its own pid is still its own: it is killed by pid (its
    /// group may not exist yet, if the wait ended before it called `setsid`), and reaped. A
    /// program it may have started dies with it (PR_SET_PDEATHSIG).
    fn stop_half_started(&self) {
        let group = Pid::from_raw(self.child1);
        let Some(daemon) = &self.daemon else {
            if let Some(keeper) = group.filter(|_| self.forked_once) {
                let _ = rustix::process::kill_process(keeper, Signal::KILL);
                let _ = rustix::process::waitpid(Some(keeper), WaitOptions::empty());
                return;
            }
            // See above for the group's identity.
            if let Some(group) = group {
                let _ = kill_process_group(group, Signal::KILL);
            }
            return;
        };
        if self.mode == Mode::Keeper {
            let _ = daemon.signal(libc::SIGTERM);
            if !daemon.wait_exit(KEEPER_GRACE) {
                // Its program dies with it (PR_SET_PDEATHSIG).
                let _ = daemon.signal(libc::SIGKILL);
                daemon.wait_exit(STOP_GRACE);
            }
            if let Some(keeper) = group.filter(|_| self.forked_once) {
                // This process's child: collected, once it has gone.
                let _ = rustix::process::waitpid(Some(keeper), WaitOptions::NOHANG);
            }
            return;
        }
        for (signo, signal) in [(libc::SIGTERM, Signal::TERM), (libc::SIGKILL, Signal::KILL)] {
            if !daemon.is_alive() {
                break;
            }
            let _ = daemon.signal(signo);
            // The group's id is the first child's pid. While the daemon lives, its group exists
            // and the kernel cannot hand that number to anyone else; checked just above, so the
            // group signal never reaches an unrelated group that reused the number.
            if let Some(group) = group {
                let _ = kill_process_group(group, signal);
            }
            if daemon.wait_exit(STOP_GRACE) {
                break;
            }
        }
    }
}

/// The wait status of an exited process that is not our child, from `PIDFD_GET_INFO` (Linux
/// 6.15+). The kernel records it when the process is reaped, which init does at its own pace, so
/// it is asked for a few times; `None` where the kernel or init does not provide it.
///
/// References: PIDFD_GET_INFO in pidfd_open(2), linux/pidfd.h.
fn exit_status(daemon: &Process) -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        #[derive(Default)]
        struct PidfdInfo {
            mask: u64,
            cgroupid: u64,
            ids: [u32; 11],
            exit_code: i32,
            coredump_mask: u32,
            spare: u32,
        }
        const PIDFD_INFO_EXIT: u64 = 1 << 3;
        // _IOWR(0xFF, 11, struct pidfd_info) for the 72-byte layout above.
        const PIDFD_GET_INFO: libc::c_ulong = (3 << 30)
            | ((std::mem::size_of::<PidfdInfo>() as libc::c_ulong) << 16)
            | (0xFF << 8)
            | 11;
        let fd = daemon.pidfd()?.as_raw_fd();
        for _ in 0..10 {
            let mut info = PidfdInfo {
                mask: PIDFD_INFO_EXIT,
                ..PidfdInfo::default()
            };
            // libc: rustix has no wrapper for PIDFD_GET_INFO (its generic ioctl is unsafe too).
            // SAFETY: the ioctl writes at most size_of::<PidfdInfo>() bytes into `info`.
            let rc = unsafe { libc::ioctl(fd, PIDFD_GET_INFO as _, &mut info) };
            if rc != 0 {
                return None;
            }
            if info.mask & PIDFD_INFO_EXIT != 0 {
                return Some(info.exit_code);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = daemon;
        None
    }
}

/// The signals that interrupt a waiting launcher (Ctrl-C, TERM, HUP), blocked and taken through a
/// signalfd while it waits; the previous mask comes back on drop. Where that cannot be set up,
/// the signals keep their usual effect.
///
/// References: signalfd(2), sigprocmask(2).
#[derive(Debug)]
pub(crate) struct Interrupts {
    fd: Option<OwnedFd>,
    old: Option<libc::sigset_t>,
}

impl Interrupts {
    const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

    /// Nothing blocked, nothing to restore.
    fn none() -> Interrupts {
        Interrupts {
            fd: None,
            old: None,
        }
    }

    /// Takes the signals the caller neither ignores (`nohup`, a background job's INT) nor
    /// blocks itself (a program with its own signalfd): those keep meaning what they meant.
    pub(crate) fn block() -> Interrupts {
        // libc: rustix has no public wrapper for sigprocmask.
        // SAFETY: an all-zero sigset_t is a valid set; a null new set only queries the mask, and
        // sigismember reads the set it filled.
        let blocked = unsafe {
            let mut mask: libc::sigset_t = std::mem::zeroed();
            libc::sigprocmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask);
            Interrupts::SIGNALS.map(|signo| libc::sigismember(&mask, signo) == 1)
        };
        let taken: Vec<libc::c_int> = Interrupts::SIGNALS
            .into_iter()
            .zip(blocked)
            .filter(|&(signo, blocked)| {
                !blocked && crate::signals::current_handler(signo) != Some(libc::SIG_IGN)
            })
            .map(|(signo, _)| signo)
            .collect();
        if taken.is_empty() {
            return Interrupts::none();
        }
        match crate::signals::block_into_signalfd(&taken) {
            Ok((fd, old)) => Interrupts {
                fd: Some(fd),
                old: Some(old),
            },
            Err(_) => Interrupts::none(),
        }
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(AsFd::as_fd)
    }

    /// The interrupt received, if any.
    fn take(&self) -> Option<Event> {
        crate::signals::read_signalfd(self.fd.as_ref()?.as_fd()).map(Event::Interrupted)
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            // libc: rustix has no public wrapper for sigprocmask.
            // SAFETY: restores the mask saved in `block`.
            unsafe { libc::sigprocmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
        }
    }
}

/// What a daemon wrote, for the admin's terminal: control bytes other than newline and tab shown
/// escaped (`\x1b`), as `systemctl status` does, so a daemon cannot send escape sequences to
/// the terminal of whoever started it.
pub(crate) fn escape_controls(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let is_control = |b: u8| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f;
    if !bytes.iter().any(|&b| is_control(b)) {
        return std::borrow::Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + 16);
    for &b in bytes {
        if is_control(b) {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        } else {
            out.push(b);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_are_shown_escaped() {
        assert_eq!(&*escape_controls(b"plain\ttext\n"), b"plain\ttext\n");
        assert_eq!(&*escape_controls(b"\x1b[2Jred\x07"), b"\\x1b[2Jred\\x07");
    }
}
