//! The keeper: the process of ours that stays with a service for its whole life. It holds the
//! pidfile's lock, is the program's parent and the child subreaper of everything beneath it,
//! restarts the program by its [`Policy`], stops all of it, and publishes its state.
//!
//! One `poll` loop, no threads, no sleeps: a signalfd (children, stop and forwarded signals),
//! the control socket and its clients, the sd_notify socket, the readiness pipe of the current
//! run, and the program's stderr pipe; the state table's deadline is the poll timeout. The
//! behaviour lives in [`crate::supervise`]; this module turns system events into table events
//! and carries out the table's effects.
//!
//! The program is started with `fork` and the steps below, all system calls (see
//! [`program_steps`]); an exec failure comes back over a close-on-exec pipe, as in s6.

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rustix::event::{PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};
use rustix::process::{Pid, Resource, Rlimit, Signal, WaitOptions};

use crate::channel::{self, Record};
use crate::control::{self, Reply, Request};
use crate::error::Step;
use crate::fds;
use crate::handoff::{Decoder, Encoder};
use crate::identity::{self, Credentials};
use crate::launcher::Readiness;
use crate::log::{LogConfig, Logger, decimal};
use crate::notify::{self, Message};
use crate::pidfile::Pidfile;
use crate::process;
use crate::status::{self, Exit, ServiceState, ServiceStatus};
use crate::stop::Schedule;
use crate::supervise::{Effect, Event, Machine, Phase, Policy, Target};

/// How long a control client may take to send its request.
const CLIENT_GRACE: Duration = Duration::from_secs(5);

/// Forking mode: how long after the started process exits its daemon may take to appear in the
/// program's pidfile, and how often the file is read meanwhile.
const FORKING_WAIT: Duration = Duration::from_secs(30);
const FORKING_RETRY: Duration = Duration::from_millis(5);

/// How long the control socket is not polled after the keeper ran out of descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Control connections served at once; more are answered "bad request" and closed.
const MAX_CLIENTS: usize = 64;

/// How much of the program's output is read at a time.
const READ_CHUNK: usize = 4 << 10;

/// Notifications handled per round of the loop: a flood cannot starve the rest.
const NOTIFY_BATCH: usize = 64;

/// A log waiting for disk space (blocking mode) tries again this often.
const LOG_RETRY: Duration = Duration::from_secs(1);
/// How long the program's output must pause before the keeper gives its output buffers back to
/// the system: a service that logs now and then costs no more than one that is silent, and a
/// flood keeps its buffers.
const OUTPUT_QUIET: Duration = Duration::from_millis(10);

/// How long a keeper waits, before it re-executes, for the launcher that heard "ready" to go
/// (see [`Keeper::settle`]); a launcher that keeps its end longer is not waited for.
const SETTLE_MAX: Duration = Duration::from_millis(100);

/// Everything needed to start the program, resolved before the keeper's first fork and reused
/// for every restart (nothing is allocated between fork and exec).
pub(crate) struct Spec {
    pub path: CString,
    pub argv_ptrs: Vec<*const libc::c_char>,
    pub envp_ptrs: Vec<*const libc::c_char>,
    /// Owns what the pointer arrays point at.
    pub _strings: (Vec<CString>, Vec<CString>),
    pub creds: Option<Credentials>,
    pub workdir: CString,
    pub chroot: Option<CString>,
    pub umask: libc::mode_t,
    pub no_core: bool,
    pub resources: crate::resources::Resources,
    pub readiness: Readiness,
    /// The caller's descriptors the program keeps at their numbers, sorted.
    pub keep: Vec<RawFd>,
    /// Standard output and error name the same file: both go through the keeper's pipe.
    pub shared_output: bool,
    /// The file the program's stderr goes to through the keeper (reopened on request).
    pub output_file: Option<PathBuf>,
    /// In the foreground on a terminal: the program's group becomes the terminal's foreground
    /// group, so it can read from it (as tini does).
    pub tty: bool,
}

impl Spec {
    fn encode(&self, e: &mut Encoder) {
        e.bytes(self.path.as_bytes());
        let strings = |e: &mut Encoder, list: &[CString]| {
            e.u32(list.len() as u32);
            for s in list {
                e.bytes(s.as_bytes());
            }
        };
        strings(e, &self._strings.0);
        strings(e, &self._strings.1);
        e.option(self.creds.as_ref(), |e, c| {
            e.option(c.uid, Encoder::u32);
            e.u32(c.gid);
            e.u32(c.groups.len() as u32);
            for g in &c.groups {
                e.u32(*g);
            }
            e.bytes(c.user_label.as_bytes());
            e.bytes(c.group_label.as_bytes());
            e.u64(c.caps.bits());
        });
        e.bytes(self.workdir.as_bytes());
        e.option(self.chroot.as_ref(), |e, c| e.bytes(c.as_bytes()));
        e.u32(self.umask);
        e.bool(self.no_core);
        self.resources.encode(e);
        match self.readiness {
            Readiness::Exec => e.u8(0),
            Readiness::Notify => e.u8(1),
            Readiness::Fd(fd) => {
                e.u8(2);
                e.i32(fd);
            }
        }
        e.u32(self.keep.len() as u32);
        for fd in &self.keep {
            e.i32(*fd);
        }
        e.bool(self.shared_output);
        e.option(self.output_file.as_ref(), |e, p| {
            e.bytes(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()))
        });
        e.bool(self.tty);
    }

    fn decode(d: &mut Decoder<'_>) -> Option<Spec> {
        let cstring = |b: &[u8]| CString::new(b.to_vec()).ok();
        let path = cstring(d.bytes()?)?;
        let strings = |d: &mut Decoder<'_>| -> Option<Vec<CString>> {
            let n = d.u32()? as usize;
            let mut list = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                list.push(cstring(d.bytes()?)?);
            }
            Some(list)
        };
        let argv = strings(d)?;
        let envp = strings(d)?;
        let creds = d.option(|d| {
            let uid = d.option(Decoder::u32)?;
            let gid = d.u32()?;
            let n = d.u32()? as usize;
            let mut groups = Vec::with_capacity(n.min(65536));
            for _ in 0..n {
                groups.push(d.u32()?);
            }
            Some(Credentials {
                uid,
                gid,
                groups,
                user_label: String::from_utf8_lossy(d.bytes()?).into_owned(),
                group_label: String::from_utf8_lossy(d.bytes()?).into_owned(),
                // Only needed while the environment is built, before the first fork.
                login: None,
                caps: crate::caps::Capabilities::from_bits(d.u64()?),
            })
        })?;
        let workdir = cstring(d.bytes()?)?;
        let chroot = d.option(|d| cstring(d.bytes()?))?;
        let umask = d.u32()?;
        let no_core = d.bool()?;
        let resources = crate::resources::Resources::decode(d)?;
        let readiness = match d.u8()? {
            0 => Readiness::Exec,
            1 => Readiness::Notify,
            2 => Readiness::Fd(d.i32()?),
            _ => return None,
        };
        let n = d.u32()? as usize;
        let mut keep = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            keep.push(d.i32()?);
        }
        let shared_output = d.bool()?;
        let output_file = d.option(|d| {
            Some(PathBuf::from(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(d.bytes()?),
            ))
        })?;
        let tty = d.bool()?;
        Some(Spec {
            argv_ptrs: crate::program::pointer_array(&argv),
            envp_ptrs: crate::program::pointer_array(&envp),
            _strings: (argv, envp),
            path,
            creds,
            workdir,
            chroot,
            umask: umask as libc::mode_t,
            no_core,
            resources,
            readiness,
            keep,
            shared_output,
            output_file,
            tty,
        })
    }
}

/// The argument that marks a keeper image's handoff: `IMAGE --daemonic-keeper-handoff FD
/// PIDFILE PROGRAM` (the last two only for `ps`).
const HANDOFF_FLAG: &std::ffi::CStr = c"--daemonic-keeper-handoff";
/// The first bytes of a handoff, with its version.
const HANDOFF_MAGIC: &[u8] = b"daemonic-keeper/2";

/// The entry point of a keeper image: a binary whose `main` calls this first can serve as the
/// small image a keeper re-executes into ([`Daemon::keeper_image`](crate::Daemon::keeper_image);
/// the `daemonic-keeper` binary is exactly that). Returns `None` when this process was not
/// started as a keeper image, so the binary goes on with its own work; otherwise keeps the
/// service until its end and returns the exit status to leave with (for a foreground keeper,
/// the program's). A plain number, so that a binary without a Rust `main` can return it too.
///
/// # Example
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     if let Some(code) = daemonic::keeper_entry() {
///         return code.into();
///     }
///     // ... the program's own work ...
///     std::process::ExitCode::SUCCESS
/// }
/// ```
pub fn keeper_entry() -> Option<u8> {
    let mut args = std::env::args_os().skip(1);
    if args.next()?.as_encoded_bytes() != HANDOFF_FLAG.to_bytes() {
        return None;
    }
    let fail = |why: &str| {
        eprintln!(
            "daemonic-keeper: {why}; this program is started by `daemonic start`, not by hand"
        );
        Some(2)
    };
    let Some(fd) = args.next().and_then(|a| a.to_str()?.parse::<RawFd>().ok()) else {
        return fail("no state descriptor");
    };
    if fd < 3 || !fds::is_open(fd) {
        return fail("the state descriptor is not open");
    }
    // SAFETY: the former image handed this memfd over for us alone.
    let state = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let Some(mapped) = crate::handoff::Mapped::new(&state) else {
        return fail("the state cannot be read");
    };
    drop(state);
    let mut d = Decoder::new(mapped.bytes());
    if d.bytes() != Some(HANDOFF_MAGIC) {
        return fail("the state is not a keeper's (another version?)");
    }
    // SAFETY: the state names the descriptors our former image kept open for us.
    let decoded = unsafe { Keeper::decode(&mut d, Instant::now()) };
    let Some(keeper) = decoded.filter(|_| d.is_done()) else {
        return fail("the state is damaged");
    };
    drop(mapped);
    for fd in keeper.handed_fds() {
        let _ = fds::set_cloexec(fd, true);
    }
    // Survives execve, but that is the kernel's detail to keep: say it again.
    let _ = become_subreaper();
    let foreground = keeper.foreground;
    // Decoding went deeper than the loop will: give those stack pages back, and the heap's.
    crate::process::trim_stack();
    crate::process::trim_heap();
    // Rust's runtime ignores SIGPIPE already; the mask (our signals blocked) came across exec.
    let exit = keeper.keep();
    Some(match (foreground, exit) {
        (true, Some(exit)) => exit.shell_code(),
        _ => 0,
    })
}

/// Where the keeper publishes: the pidfile it holds and the files beside it.
pub(crate) struct Files {
    pub pidfile: Pidfile,
    pub status: status::Writer,
    pub socket: PathBuf,
}

/// What the keeper was handed by the procedure that made it.
pub(crate) struct Setup {
    pub spec: Spec,
    pub policy: Policy,
    pub files: Option<Files>,
    /// The launcher's status pipe, while it waits.
    pub launcher: Option<OwnedFd>,
    /// The launcher's stderr relay, while it waits.
    pub relay: Option<OwnedFd>,
    pub notify: Option<notify::Listener>,
    /// In the foreground (`daemonic run`): pass readiness on to `$NOTIFY_SOCKET`.
    pub foreground: bool,
    /// A small keeper image to execute once the program runs (see [`crate::handoff`]).
    pub reexec: Option<PathBuf>,
    /// Where the program's output is logged (`--log`), if anywhere.
    pub log: Option<LogConfig>,
    /// Where its stderr is logged instead, when the streams are kept apart (`--log-stderr`).
    pub log_stderr: Option<LogConfig>,
    /// Whether (and how) the program's output lines go to syslog too.
    pub syslog: Option<crate::log::SyslogConfig>,
}

/// A control connection.
struct Client {
    /// Unique for the keeper's life (descriptor numbers are reused).
    id: u64,
    stream: UnixStream,
    since: Instant,
    /// The request it made and waits on, once read.
    waiting: Option<Request>,
}

/// The running keeper.
pub(crate) struct Keeper {
    spec: Spec,
    machine: Machine,
    files: Option<Files>,
    launcher: Option<OwnedFd>,
    /// The launcher's channel after it heard "ready": kept until the re-exec, which waits for
    /// the launcher to close its end ([`Keeper::settle`]).
    heard: Option<OwnedFd>,
    relay: Option<OwnedFd>,
    notify: Option<notify::Listener>,
    foreground: bool,
    signals: OwnedFd,
    listener: Option<UnixListener>,
    clients: Vec<Client>,
    /// The readiness pipe of the current run (s6 style).
    ready: Option<OwnedFd>,
    ready_seen: bool,
    /// The program's output pipe (its stderr; its stdout too when both go to one file or to the
    /// log): the keeper holds both ends across restarts, so nothing written is lost, and copies
    /// it to the log or its own stderr (and to the launcher until ready).
    output: Option<(OwnedFd, OwnedFd)>,
    /// The log directory the output goes to (`--log`).
    logger: Option<Logger>,
    /// Separate streams (`--log-stderr`): the program's stderr pipe and its own log.
    err_output: Option<(OwnedFd, OwnedFd)>,
    err_logger: Option<Logger>,
    /// Syslog forwarding (`--syslog`).
    syslog: Option<crate::log::Syslog>,
    status_text: String,
    since: SystemTime,
    started: SystemTime,
    last_state: Option<ServiceState>,
    /// Whether the launcher was told the outcome (ready or failed).
    reported: bool,
    keeper_pid: u32,
    /// The schedule for the keeper's own SIGTERM/SIGINT.
    policy_schedule: Schedule,
    /// The program's pid in its last run, for replies after it was reaped.
    last_pid: Option<u32>,
    /// The run whose readiness an outer service manager was told of.
    announced: Option<u32>,
    /// The log's and syslog's drop counts as the record last showed them.
    published_dropped: (u64, u64),
    /// The control socket is not polled until then (out of descriptors).
    accept_paused: Option<Instant>,
    /// The last client id given.
    next_client: u64,
    /// The buffer the program's output is read into.
    read_buf: Vec<u8>,
    /// When output was last read, while the buffers that took it are held.
    output_seen: Option<Instant>,
    /// The logs' rotations already followed by a trim (`after_rotation`).
    rotations_trimmed: u64,
    /// The log processor running on an archive: its pid and the archive.
    processing: Option<(u32, PathBuf)>,
    /// Forking mode: the program's own pidfile.
    forking: Option<PathBuf>,
    /// Forking mode: the started process, while it runs.
    starter: Option<u32>,
    /// Forking mode: when to read the program's pidfile again, and when to give up.
    search: Option<(Instant, Instant)>,
    /// The small image to re-execute into once the program runs.
    reexec: Option<PathBuf>,
    /// The program's pid, not yet sent to the launcher (see `spawn`); never across a re-exec.
    program_unsent: Option<u32>,
    /// The stack the last program's process ran on before its exec, until the round ends (or,
    /// before a re-exec, until the launcher has gone).
    spent_stack: Option<ChildStack>,
}

/// The signals the keeper takes through its signalfd.
const HANDLED: [libc::c_int; 8] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

impl Keeper {
    /// Prepares the keeper in its own process (after the daemon steps, or in the foreground):
    /// subreaper, signals, control socket. Fails with the step and OS error.
    pub(crate) fn new(setup: Setup) -> Result<Keeper, (Step, io::Error)> {
        let keeper_pid = rustix::process::getpid().as_raw_pid() as u32;
        become_subreaper().map_err(|e| (Step::Keeper, e))?;
        let signals = crate::signals::block_into_signalfd(&HANDLED)
            .map(|(fd, _)| fd)
            .map_err(|e| (Step::Signals, e))?;
        // A write to a reader that left (the launcher's relay) must fail with EPIPE, not kill.
        // libc: rustix has no public wrapper for signal or sigaction.
        // SAFETY: SIG_IGN has no handler to run.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let listener = match &setup.files {
            Some(files) => Some(bind_control(&files.socket).map_err(|e| (Step::Control, e))?),
            None => None,
        };
        // Only a keeper that stamps lines in local time opens the zone file: only it needs
        // its `TZ` checked (a keeper that re-executes passes the checked `TZ` on).
        if !setup.foreground
            && (setup.log.is_some() || setup.log_stderr.is_some() || setup.syslog.is_some())
        {
            drop_tz_naming_no_file();
        }
        // The keeper holds the lock now: it may finish what a dead keeper left in its logs.
        let open_log = |config: Option<LogConfig>, step: Step| {
            config
                .map(|config| {
                    let mut logger = Logger::open(config).map_err(|e| {
                        let errno = e.raw_os_error().unwrap_or(libc::EIO);
                        (step, io::Error::from_raw_os_error(errno))
                    })?;
                    logger.recover();
                    Ok(logger)
                })
                .transpose()
        };
        let logger = open_log(setup.log, Step::Stdout)?;
        let err_logger = open_log(setup.log_stderr, Step::Stderr)?;
        let err_output = match &err_logger {
            Some(_) => Some(output_pipe().map_err(|e| (Step::Stderr, e))?),
            None => None,
        };
        let syslog = setup
            .syslog
            .clone()
            .map(|config| crate::log::Syslog::new(config, &program_tag(&setup.spec.path, None)));
        // Through the keeper's pipe: what a waiting launcher is shown, what is logged, and an
        // output file (so that `reopen` moves the program's output too, not just the keeper's).
        let output = if setup.relay.is_some()
            || logger.is_some()
            || syslog.is_some()
            || setup.spec.output_file.is_some()
        {
            Some(output_pipe().map_err(|e| (Step::Stderr, e))?)
        } else {
            None
        };
        if let Some(relay) = &setup.relay {
            set_nonblocking(relay, true);
        }
        let has_protocol = !matches!(setup.spec.readiness, Readiness::Exec);
        let seed = u64::from(keeper_pid) ^ now_nanos();
        let now = SystemTime::now();
        Ok(Keeper {
            policy_schedule: setup.policy.schedule().clone(),
            last_pid: None,
            announced: None,
            published_dropped: (0, 0),
            accept_paused: None,
            next_client: 0,
            read_buf: Vec::new(),
            output_seen: None,
            rotations_trimmed: 0,
            processing: None,
            forking: setup.policy.forking_pidfile().map(Path::to_path_buf),
            starter: None,
            program_unsent: None,
            spent_stack: None,
            search: None,
            reexec: setup.reexec,
            machine: Machine::new(setup.policy, has_protocol, seed),
            spec: setup.spec,
            files: setup.files,
            launcher: setup.launcher,
            heard: None,
            relay: setup.relay,
            notify: setup.notify,
            foreground: setup.foreground,
            signals,
            listener,
            clients: Vec::new(),
            ready: None,
            ready_seen: false,
            output,
            logger,
            err_output,
            err_logger,
            syslog,
            status_text: String::new(),
            since: now,
            started: now,
            last_state: None,
            reported: false,
            keeper_pid,
        })
    }

    /// Runs the service until the table says to leave; returns how the program last ended.
    pub(crate) fn run(self) -> Option<Exit> {
        let mut this = Box::new(self);
        let effects = vec![Effect::Spawn];
        this.apply(effects);
        if let Some(image) = this.reexec.take() {
            this.settle();
            // Returns only if the exec failed: this image then goes on keeping the service.
            this.reexec(&image);
        }
        this.heard = None;
        this.spent_stack = None;
        this.keep()
    }

    /// The loop, until the table says to leave. The keeper is boxed and the event handlers are
    /// never inlined (each one's locals in its own frame, not all in the loop's): the loop's
    /// frames stay shallow, and stack pages touched once stay the keeper's memory for good.
    fn keep(mut self: Box<Self>) -> Option<Exit> {
        while !matches!(self.machine.phase(), Phase::Done(_)) {
            self.wait_and_dispatch();
        }
        self.finish()
    }

    /// Before the re-exec, when the launcher has heard "ready": waits until nothing has happened
    /// for [`OUTPUT_QUIET`], then until the launcher has gone (its end of the channel closed).
    /// The exec and the new image's start cost about half a millisecond of CPU; on a small
    /// machine they would compete with the launcher's exit, its caller and the program's own
    /// start, and so lengthen every `start`. The quiet time comes first and does not watch the
    /// launcher's end: the launcher closes it as it leaves, and a keeper woken by that would
    /// preempt the launcher on its CPU before its caller hears it exit. A signal ends the wait
    /// at once (the new image handles it); output or a client ends the quiet time (a program
    /// that floods would otherwise fill its pipe meanwhile, and the new image would start on a
    /// full megabyte, with its buffers at their largest for good); a launcher that keeps its
    /// end is waited for [`SETTLE_MAX`] at most. A program not yet ready at this point
    /// (readiness by protocol) is kept by the new image from the start, as before.
    #[inline(never)]
    fn settle(&mut self) {
        let Some(heard) = self.heard.take() else {
            return;
        };
        let mut pfd = vec![PollFd::new(&self.signals, PollFlags::IN)];
        pfd.extend(
            self.listener
                .as_ref()
                .map(|l| PollFd::new(l, PollFlags::IN)),
        );
        for (read, _) in [&self.output, &self.err_output].into_iter().flatten() {
            pfd.push(PollFd::new(read, PollFlags::IN));
        }
        let ms = OUTPUT_QUIET.as_millis() as i32;
        if rustix::event::poll(&mut pfd, Some(&process::poll_timeout(ms))).is_ok()
            && !pfd[0].revents().is_empty()
        {
            return;
        }
        drop(pfd);
        let started = Instant::now();
        loop {
            let left = SETTLE_MAX.saturating_sub(started.elapsed());
            let mut pfd = [
                PollFd::new(&heard, PollFlags::empty()),
                PollFd::new(&self.signals, PollFlags::IN),
            ];
            let ms = left.as_millis().clamp(1, 1000) as i32;
            match rustix::event::poll(&mut pfd, Some(&process::poll_timeout(ms))) {
                Ok(0) if started.elapsed() >= SETTLE_MAX => return,
                Ok(_) if !pfd[1].revents().is_empty() => return,
                // The read end closed: a pipe's write end then reports an error.
                Ok(_) if pfd[0].revents().intersects(PollFlags::ERR | PollFlags::HUP) => return,
                Ok(_) | Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return,
            }
        }
    }

    /// Executes `image` with this keeper's state (see [`crate::handoff`]); returns only if that
    /// failed. Everything the new image needs stays open across the exec; nothing else does.
    // Never inlined: bench/order.sh takes the keeper's part of a start up to this call.
    #[inline(never)]
    fn reexec(&mut self, image: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let Some(image) = image_to_execute(image) else {
            return;
        };
        let now = Instant::now();
        let mut e = Encoder::default();
        e.bytes(HANDOFF_MAGIC);
        self.encode(&mut e, now);
        let fds = self.handed_fds();
        // Not close-on-exec: the new image reads it.
        let flags = rustix::fs::MemfdFlags::empty();
        let Ok(memfd) = rustix::fs::memfd_create(c"daemonic-keeper-state", flags) else {
            return;
        };
        if !write_all(memfd.as_fd(), &e.bytes) {
            return;
        }
        let mut arg = String::new();
        arg.push_str(&decimal(memfd.as_raw_fd() as u64));
        let (Ok(path), Ok(arg)) = (
            CString::new(image.as_os_str().as_bytes()),
            CString::new(arg),
        ) else {
            return;
        };
        // Only what this keeper reads of its own environment: `TZ` and `TZDIR` (local-time
        // stamps) and `NOTIFY_SOCKET` (`run` under systemd). The program's environment is in the
        // state, and a small environment keeps the new image's stack small.
        let envp: Vec<CString> = std::env::vars_os()
            .filter(|(k, _)| k == "TZ" || k == "TZDIR" || k == "NOTIFY_SOCKET")
            .filter_map(|(k, v)| crate::env::entry(&k, &v))
            .collect();
        // What `ps` shows: which service this keeper keeps (its pidfile) and its program.
        let pidfile = self
            .files
            .as_ref()
            .and_then(|f| CString::new(f.pidfile.path().as_os_str().as_bytes()).ok())
            .unwrap_or_default();
        let argv = [
            c"daemonic-keeper".as_ptr(),
            HANDOFF_FLAG.as_ptr(),
            arg.as_ptr(),
            pidfile.as_ptr(),
            self.spec.path.as_ptr(),
            std::ptr::null(),
        ];
        let envp_ptrs = crate::program::pointer_array(&envp);
        for &fd in fds.iter().chain([memfd.as_raw_fd()].iter()) {
            let _ = fds::set_cloexec(fd, false);
        }
        // libc: rustix has no public execve (only in its unstable `runtime` module).
        // SAFETY: path, argv and envp are NUL-terminated arrays of C strings that outlive the
        // call; on success this process image is replaced.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp_ptrs.as_ptr()) };
        // Still here: the exec failed. Keep going in this image, descriptors private again.
        for &fd in &fds {
            let _ = fds::set_cloexec(fd, true);
        }
    }

    /// The descriptors the state names, which must survive the exec.
    fn handed_fds(&self) -> Vec<RawFd> {
        let mut fds = vec![self.signals.as_raw_fd()];
        if let Some(files) = &self.files {
            fds.push(files.pidfile.lock_fd());
            fds.extend(files.pidfile.writer_fd());
        }
        fds.extend(self.launcher.as_ref().map(AsRawFd::as_raw_fd));
        fds.extend(self.relay.as_ref().map(AsRawFd::as_raw_fd));
        fds.extend(self.notify.as_ref().map(notify::Listener::fd));
        fds.extend(self.listener.as_ref().map(AsRawFd::as_raw_fd));
        fds.extend(self.ready.as_ref().map(AsRawFd::as_raw_fd));
        for (r, w) in self.output.iter().chain(self.err_output.iter()) {
            fds.push(r.as_raw_fd());
            fds.push(w.as_raw_fd());
        }
        // The caller's descriptors for the program: each restart hands them on again, and a
        // number lost here would be reused by the keeper and given to the program instead.
        fds.extend(self.spec.keep.iter().copied());
        fds
    }

    fn encode(&self, e: &mut Encoder, now: Instant) {
        let fd = |e: &mut Encoder, fd: &OwnedFd| e.i32(fd.as_raw_fd());
        self.spec.encode(e);
        self.machine.encode(e, now);
        e.option(self.files.as_ref(), |e, files| files.pidfile.encode(e));
        e.option(self.launcher.as_ref(), fd);
        e.option(self.relay.as_ref(), fd);
        e.option(self.notify.as_ref(), |e, l| {
            e.i32(l.fd());
            e.bytes(l.address().as_bytes());
        });
        e.bool(self.foreground);
        fd(e, &self.signals);
        e.option(self.listener.as_ref(), |e, l| e.i32(l.as_raw_fd()));
        e.option(self.ready.as_ref(), fd);
        e.bool(self.ready_seen);
        e.option(self.output.as_ref(), |e, (r, w)| {
            e.i32(r.as_raw_fd());
            e.i32(w.as_raw_fd());
        });
        e.option(self.logger.as_ref(), |e, l| l.encode(e));
        e.option(self.err_output.as_ref(), |e, (r, w)| {
            e.i32(r.as_raw_fd());
            e.i32(w.as_raw_fd());
        });
        e.option(self.err_logger.as_ref(), |e, l| l.encode(e));
        e.option(self.syslog.as_ref(), |e, s| s.encode(e));
        e.option(self.processing.as_ref(), |e, (pid, archive)| {
            e.u32(*pid);
            e.bytes(std::os::unix::ffi::OsStrExt::as_bytes(archive.as_os_str()));
        });
        e.bytes(self.status_text.as_bytes());
        e.system_time(self.since);
        e.system_time(self.started);
        e.option(self.last_state, |e, s| {
            e.u8(ServiceState::ALL.iter().position(|x| *x == s).unwrap_or(0) as u8)
        });
        e.bool(self.reported);
        e.u32(self.keeper_pid);
        crate::supervise::encode_schedule(e, &self.policy_schedule);
        e.option(self.last_pid, Encoder::u32);
        e.option(self.announced, Encoder::u32);
        e.option(self.forking.as_ref(), |e, p| {
            e.bytes(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()))
        });
        e.option(self.starter, Encoder::u32);
        e.option(self.search, |e, (next, give_up)| {
            e.instant(next, now);
            e.instant(give_up, now);
        });
    }

    /// The keeper a former image encoded.
    ///
    /// # Safety
    /// Every descriptor named in `d` must have been handed over across exec by that image and
    /// be owned by nothing else in this process.
    #[inline(never)]
    unsafe fn decode(d: &mut Decoder<'_>, now: Instant) -> Option<Box<Keeper>> {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY (for every from_raw_fd below): the caller's guarantee.
        let owned = |fd: i32| unsafe { OwnedFd::from_raw_fd(fd) };
        let spec = Spec::decode(d)?;
        let machine = Machine::decode(d, now)?;
        // SAFETY: as above.
        let files = d.option(|d| unsafe { Pidfile::decode(d) })?.map(|pidfile| {
            let path = pidfile.path().to_path_buf();
            Files {
                status: status::Writer::new(&path),
                socket: control::socket_path(&path),
                pidfile,
            }
        });
        let launcher = d.option(Decoder::i32)?.map(owned);
        let relay = d.option(Decoder::i32)?.map(owned);
        let notify = d.option(|d| {
            let fd = d.i32()?;
            let address = String::from_utf8(d.bytes()?.to_vec()).ok()?;
            // SAFETY: as above.
            Some(unsafe { notify::Listener::from_raw(fd, address) })
        })?;
        let foreground = d.bool()?;
        let signals = owned(d.i32()?);
        // SAFETY: as above.
        let listener = d
            .option(Decoder::i32)?
            .map(|fd| unsafe { UnixListener::from_raw_fd(fd) });
        let ready = d.option(Decoder::i32)?.map(owned);
        let ready_seen = d.bool()?;
        let output = d.option(|d| Some((owned(d.i32()?), owned(d.i32()?))))?;
        let logger = d.option(Logger::decode)?;
        let err_output = d.option(|d| Some((owned(d.i32()?), owned(d.i32()?))))?;
        let err_logger = d.option(Logger::decode)?;
        let syslog = d.option(crate::log::Syslog::decode)?;
        let processing = d.option(|d| {
            Some((
                d.u32()?,
                PathBuf::from(std::ffi::OsStr::from_bytes(d.bytes()?)),
            ))
        })?;
        let status_text = String::from_utf8_lossy(d.bytes()?).into_owned();
        let since = d.system_time()?;
        let started = d.system_time()?;
        let last_state = d.option(|d| ServiceState::ALL.get(usize::from(d.u8()?)).copied())?;
        let reported = d.bool()?;
        let keeper_pid = d.u32()?;
        let policy_schedule = crate::supervise::decode_schedule(d)?;
        let last_pid = d.option(Decoder::u32)?;
        let announced = d.option(Decoder::u32)?;
        let forking = d.option(|d| Some(PathBuf::from(std::ffi::OsStr::from_bytes(d.bytes()?))))?;
        let starter = d.option(Decoder::u32)?;
        let search = d.option(|d| Some((d.instant(now)?, d.instant(now)?)))?;
        Some(Box::new(Keeper {
            spec,
            machine,
            files,
            launcher,
            heard: None,
            relay,
            notify,
            foreground,
            signals,
            listener,
            clients: Vec::new(),
            ready,
            ready_seen,
            output,
            logger,
            err_output,
            err_logger,
            syslog,
            status_text,
            since,
            started,
            last_state,
            reported,
            keeper_pid,
            policy_schedule,
            last_pid,
            announced,
            published_dropped: (0, 0),
            accept_paused: None,
            next_client: 0,
            read_buf: Vec::new(),
            output_seen: None,
            rotations_trimmed: 0,
            processing,
            forking,
            starter,
            program_unsent: None,
            spent_stack: None,
            search,
            reexec: None,
        }))
    }

    /// Feeds one event to the table and carries out what it says.
    fn feed(&mut self, event: Event) {
        let before = self.machine.state();
        let logged = (self.logger.is_some() || self.syslog.is_some()).then(|| event.clone());
        let effects = self.machine.on(event, Instant::now());
        if let Some(event) = logged {
            self.log_transition(before, &event);
        }
        self.apply(effects);
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        let mut queue = std::collections::VecDeque::from(effects);
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Spawn => {
                    let event = match self.spawn() {
                        Ok(pid) => Event::Spawned(pid),
                        Err((step, errno)) => {
                            self.report_failure(step, errno);
                            Event::SpawnFailed
                        }
                    };
                    let before = self.machine.state();
                    let logged =
                        (self.logger.is_some() || self.syslog.is_some()).then(|| event.clone());
                    queue.extend(self.machine.on(event, Instant::now()));
                    if let Some(event) = logged {
                        self.log_transition(before, &event);
                    }
                }
                Effect::Signal(signal, target) => self.signal(signal, target),
                Effect::Publish => self.publish(),
            }
        }
        // Not ready in this round: the launcher hears of the program now.
        if let (Some(pid), Some(launcher)) = (self.program_unsent.take(), &self.launcher) {
            channel::send(launcher.as_fd(), Record::Program(pid));
        }
        // Unmapped once the launcher has heard (see `ChildStack`), and not while a keeper that
        // will re-execute waits for the launcher to leave: the re-exec drops it with the rest.
        if self.heard.is_none() {
            self.spent_stack = None;
        }
        self.answer_clients();
    }

    /// One poll over every source, then the events it found.
    fn wait_and_dispatch(&mut self) {
        // A stop may have found nothing to signal: no child means nothing will ever report.
        if matches!(self.machine.phase(), Phase::Stopping { .. }) {
            self.reap();
            if matches!(self.machine.phase(), Phase::Done(_)) {
                return;
            }
        }
        const SIGNALS: usize = 0;
        const LISTENER: usize = 1;
        const NOTIFY: usize = 2;
        const READY: usize = 3;
        const STDERR: usize = 4;
        const ERRORS: usize = 5;
        // What is polled, decided before the loggers' retries below (as the poll list used to
        // be built first): a log waiting for disk space stops reading, so the program feels
        // back-pressure; a listener out of descriptors rests for a moment.
        let stalled = |logger: &Option<Logger>| logger.as_ref().is_some_and(Logger::is_stalled);
        let read_output = !stalled(&self.logger);
        let read_errors = !stalled(&self.err_logger);
        let accepting = self
            .accept_paused
            .is_none_or(|until| Instant::now() >= until);
        let now = Instant::now();
        let mut deadline = self.machine.deadline();
        if let Some((next, _)) = self.search {
            deadline = Some(deadline.map_or(next, |d| d.min(next)));
        }
        if let Some(until) = self.accept_paused.filter(|u| *u > now) {
            deadline = Some(deadline.map_or(until, |d| d.min(until)));
        }
        if let Some(seen) = self.output_seen {
            let quiet = seen + OUTPUT_QUIET;
            deadline = Some(deadline.map_or(quiet, |d| d.min(quiet)));
        }
        let wall = SystemTime::now();
        for logger in self.loggers() {
            let mut next = logger.tick(wall);
            if logger.is_stalled() {
                logger.retry(wall);
                next = Some(next.map_or(LOG_RETRY, |n| n.min(LOG_RETRY)));
            }
            if let Some(next) = next {
                let at = now + next;
                deadline = Some(deadline.map_or(at, |d| d.min(at)));
            }
        }
        // An age rotation may have closed an archive for the processor.
        self.after_rotation();
        self.start_processor();
        if let Some(oldest) = self
            .clients
            .iter()
            .filter(|c| c.waiting.is_none())
            .map(|c| c.since)
            .min()
        {
            let expiry = oldest + CLIENT_GRACE;
            deadline = Some(deadline.map_or(expiry, |d| d.min(expiry)));
        }
        let timeout = deadline.map(|d| {
            let left = d.saturating_duration_since(now);
            // Round up: waking a millisecond early would only poll again.
            let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            process::poll_timeout(ms)
        });
        let sources: [Option<BorrowedFd<'_>>; 6] = [
            Some(self.signals.as_fd()),
            self.listener
                .as_ref()
                .filter(|_| accepting)
                .map(AsFd::as_fd),
            self.notify.as_ref().map(AsFd::as_fd),
            self.ready.as_ref().map(AsFd::as_fd),
            self.output
                .as_ref()
                .filter(|_| read_output)
                .map(|(r, _)| r.as_fd()),
            self.err_output
                .as_ref()
                .filter(|_| read_errors)
                .map(|(r, _)| r.as_fd()),
        ];
        // The sources present, then every client: a client waiting for an outcome is watched
        // for hanging up (its command timed out or was interrupted), so its connection does not
        // stay open for nothing.
        let mut fds: Vec<PollFd<'_>> = sources
            .iter()
            .flatten()
            .map(|&fd| PollFd::from_borrowed_fd(fd, PollFlags::IN))
            .collect();
        let polled_clients = self.clients.len();
        for client in &self.clients {
            let events = match client.waiting {
                Some(_) => PollFlags::RDHUP,
                None => PollFlags::IN,
            };
            fds.push(PollFd::new(&client.stream, events));
        }
        if rustix::event::poll(&mut fds, timeout.as_ref()).is_err() {
            return;
        }
        // Each source's outcome, in order (the absent ones were not polled), then the clients'.
        let mut outcomes = fds.iter().map(PollFd::revents);
        let ready =
            sources.map(|fd| fd.is_some() && outcomes.next().is_some_and(|r| !r.is_empty()));
        // What each polled client showed, by its id: readable (a request), or hung up (a waiting
        // command that gave up).
        let hangup = PollFlags::HUP | PollFlags::RDHUP | PollFlags::ERR;
        let client_events: Vec<(u64, bool)> = self.clients[..polled_clients]
            .iter()
            .zip(outcomes)
            .filter_map(|(client, revents)| match client.waiting {
                None if !revents.is_empty() => Some((client.id, true)),
                Some(_) if revents.intersects(hangup) => Some((client.id, false)),
                _ => None,
            })
            .collect();
        if ready[STDERR] || ready[ERRORS] {
            self.drain_output();
        } else if self
            .output_seen
            .is_some_and(|seen| seen.elapsed() >= OUTPUT_QUIET)
        {
            self.shed_buffers();
        }
        if ready[SIGNALS] {
            self.read_signals();
        }
        if ready[NOTIFY] {
            self.read_notify();
        }
        if ready[READY] {
            self.read_ready();
        }
        // Clients, by the id they had when polled: the handlers above may have answered (and
        // removed) some, so neither indices nor descriptor numbers can be trusted any more.
        for (id, readable) in client_events {
            let Some(i) = self.clients.iter().position(|c| c.id == id) else {
                continue;
            };
            if !readable {
                self.clients.swap_remove(i);
            } else if self.clients[i].waiting.is_none() {
                self.read_request(i);
            }
        }
        // Accepted after the clients were handled: new ones are read in the next round.
        if ready[LISTENER] {
            self.accept();
        }
        self.expire_clients();
        if self.search.is_some_and(|(next, _)| Instant::now() >= next) {
            self.search_main();
        }
        if self.machine.deadline().is_some_and(|d| Instant::now() >= d) {
            self.feed(Event::Timer);
        }
    }

    // ---- the program -------------------------------------------------------------------

    /// Forks and executes the program; returns its pid, or the failed step and errno.
    #[inline(never)]
    fn spawn(&mut self) -> Result<u32, (Step, i32)> {
        let (errors_r, errors_w) = channel::pipe().map_err(|e| (Step::Fork, errno(&e)))?;
        let ready_pipe = match self.spec.readiness {
            Readiness::Fd(_) => Some(channel::pipe().map_err(|e| (Step::Readiness, errno(&e)))?),
            _ => None,
        };
        let child = ChildFds {
            errors: errors_w.as_fd(),
            ready: ready_pipe.as_ref().map(|(_, w)| w.as_raw_fd()),
            stderr: self
                .err_output
                .as_ref()
                .or(self.output.as_ref())
                .map(|(_, w)| w.as_raw_fd()),
            stdout: (self.spec.shared_output || self.logger.is_some() || self.syslog.is_some())
                .then(|| self.output.as_ref().map(|(_, w)| w.as_raw_fd()))
                .flatten(),
            keeper: self.keeper_pid as libc::pid_t,
        };
        let (pid, stack) = start_child(&self.spec, &child).map_err(|e| (Step::Fork, errno(&e)))?;
        // A child on a stack of its own has executed (or failed) by now.
        let executed = stack.is_some();
        self.spent_stack = stack;
        drop(errors_w);
        // The first record, before anyone is told the program runs or failed: a reader never
        // finds none. A forked child may take a while: written at once. For one that has
        // executed, the table's `Publish` for this spawn writes it in this same round, before the
        // launcher hears (one write of the record rather than two on the path of the start); a
        // failure writes it below.
        if self.last_state.is_none() && !executed {
            self.publish_as(Some(pid));
        }
        // Put the child in its group from this side too, so a signal to the group that follows
        // at once cannot miss it (a forked child's own setpgid may not have run yet; one on a
        // stack of its own has run its steps and executed when we get here).
        if !executed && let Some(child) = as_pid(pid) {
            let _ = rustix::process::setpgid(Some(child), Some(child));
        }
        let mut receiver = channel::Receiver::new(errors_r);
        // The child writes one record if a step or execve fails; end-of-file means it ran.
        while !receiver.is_closed() {
            match receiver.read() {
                Ok(records) => {
                    if let Some(Record::Failed(step, errno)) = records.first() {
                        if self.last_state.is_none() {
                            self.publish_as(Some(pid));
                        }
                        return Err((*step, *errno));
                    }
                }
                Err(_) => break,
            }
        }
        self.ready = ready_pipe.map(|(r, _)| r);
        self.ready_seen = false;
        if let Some(syslog) = &mut self.syslog {
            syslog.set_tag(&program_tag(&self.spec.path, Some(pid)));
        }
        if self.forking.is_some() {
            self.starter = Some(pid);
            self.search = None;
        }
        if let Some(files) = &self.files {
            let _ = files.pidfile.write_pid(pid);
        }
        if self.launcher.is_some() {
            // Sent with "ready" when that follows in this same round (a program ready at exec):
            // one wake-up of the launcher rather than two, on the path of the start.
            self.program_unsent = Some(pid);
        }
        Ok(pid)
    }

    /// Reaps every child that exited; feeds the program's exit to the table. In forking mode
    /// the started process's clean exit starts the search for its daemon, and the daemon's exit
    /// hands over to a successor it names, if any.
    fn reap(&mut self) {
        let mut program_exit = None;
        let mut forked = false;
        let mut successor = None;
        let alone = loop {
            // None: children remain, none exited; an error (ECHILD): no child at all. A log
            // processor is not part of the service: with only it left, the service is empty.
            let (pid, status) = match rustix::process::wait(WaitOptions::NOHANG) {
                Ok(Some((pid, status))) => (pid.as_raw_pid() as u32, status.as_raw()),
                Ok(None) => break self.only_processor_left(),
                Err(_) => break true,
            };
            if self.processing.as_ref().is_some_and(|(p, _)| *p == pid) {
                if let Some((_, archive)) = self.processing.take() {
                    crate::log::finish_processing(&archive, status == 0);
                }
                continue;
            }
            if Some(pid) != self.machine.pid() {
                continue;
            }
            let exit = Exit::from_wait_status(status);
            if self.forking.is_some() && self.starter == Some(pid) {
                self.starter = None;
                if exit.is_success() {
                    forked = true;
                    continue;
                }
            } else if self.forking.is_some()
                && let Some(next) = self.main_from_pidfile().filter(|&n| n != pid)
            {
                successor = Some(next);
                continue;
            }
            program_exit = Some((exit, status));
        };
        self.start_processor();
        if forked {
            self.feed(Event::Forked);
            let now = Instant::now();
            self.search = Some((now, now + FORKING_WAIT));
            self.search_main();
        }
        if let Some(next) = successor {
            self.found_main(next);
        }
        if program_exit.is_some() {
            // What the program wrote before it died comes first, its last line ended.
            self.drain_output();
            let now = SystemTime::now();
            for logger in self.loggers() {
                logger.flush_partial(now);
            }
            if let Some(syslog) = &mut self.syslog {
                syslog.flush_partial(now);
            }
        }
        match program_exit {
            Some((exit, wait_status)) => {
                if !self.machine.is_ready() {
                    // (The output was drained above: the launcher has it before the exit.)
                    if let Some(launcher) = &self.launcher {
                        channel::send(launcher.as_fd(), Record::Exited(wait_status));
                    }
                }
                self.feed(Event::Exited { exit, alone });
            }
            None if alone && successor.is_none() && !forked => self.feed(Event::Empty),
            None => {}
        }
    }

    /// Forking mode: the pid in the program's pidfile, if it is a live process beneath us.
    fn main_from_pidfile(&self) -> Option<u32> {
        let path = self.forking.as_deref()?;
        let pid = crate::pidfile::read_pid(path)?;
        (pid != self.keeper_pid
            && process::is_alive(pid)
            && process::is_descendant(pid, self.keeper_pid))
        .then_some(pid)
    }

    /// Forking mode: reads the program's pidfile; follows the daemon once it is there, tries
    /// again shortly while it is not, and gives up after [`FORKING_WAIT`].
    fn search_main(&mut self) {
        let Some((_, give_up)) = self.search else {
            return;
        };
        if let Some(pid) = self.main_from_pidfile() {
            self.search = None;
            self.found_main(pid);
            return;
        }
        let now = Instant::now();
        if now >= give_up {
            self.search = None;
            if let Some(launcher) = &self.launcher {
                let path = self.forking.as_deref().map(Path::display);
                let text = format!(
                    "the program exited, but its pidfile {} named no process of this service within {}s",
                    path.map_or_else(String::new, |p| p.to_string()),
                    FORKING_WAIT.as_secs()
                );
                channel::send_text(launcher.as_fd(), text.as_bytes());
            }
            self.report_failure(Step::Readiness, libc::ESRCH);
            self.feed(Event::SpawnFailed);
            return;
        }
        self.search = Some((now + FORKING_RETRY, give_up));
    }

    fn found_main(&mut self, pid: u32) {
        if let Some(files) = &self.files {
            let _ = files.pidfile.write_pid(pid);
        }
        if let Some(launcher) = &self.launcher {
            channel::send(launcher.as_fd(), Record::Program(pid));
        }
        self.feed(Event::MainPid(pid));
    }

    /// Sends `signal` to `target`. The program's group is signalled only while the program is
    /// unreaped (its pid, and so its group id, cannot be reused until then).
    #[inline(never)]
    fn signal(&mut self, signal: i32, target: Target) {
        let program = self.machine.pid().map(|p| p as libc::pid_t);
        match target {
            Target::Program => {
                if let Some(pid) = program {
                    // Our unreaped child.
                    kill(pid, signal);
                }
            }
            Target::Group => {
                if let Some(pid) = program {
                    // The group is led by our unreaped child.
                    kill(-pid, signal);
                }
            }
            Target::Service => {
                if let Some(pid) = program {
                    kill(-pid, signal);
                }
                // Every descendant, wherever it moved its group or session: as the subreaper we
                // are the ancestor of all of them, and none of their pids can be reused while
                // it is listed under a live parent of ours. Re-listed after each round so that
                // processes forked meanwhile are reached.
                let processor = self.processing.as_ref().map(|(p, _)| *p);
                for pid in process::descendants(self.keeper_pid) {
                    if Some(pid) == processor {
                        continue;
                    }
                    kill(pid as libc::pid_t, signal);
                }
            }
        }
    }

    // ---- sources -----------------------------------------------------------------------

    #[inline(never)]
    fn read_signals(&mut self) {
        let mut child = false;
        let mut received = Vec::new();
        while let Some(signo) = crate::signals::read_signalfd(self.signals.as_fd()) {
            if signo == libc::SIGCHLD {
                child = true;
            } else {
                received.push(signo);
            }
        }
        if child {
            self.reap();
        }
        for signo in received {
            match signo {
                libc::SIGTERM | libc::SIGINT => {
                    let schedule = self.machine_schedule().with_first_signal(signo);
                    if self.foreground {
                        let _ = notify::notify("STOPPING=1");
                    }
                    self.feed(Event::Stop(schedule));
                }
                _ => self.feed(Event::Forward {
                    signal: signo,
                    group: true,
                }),
            }
        }
    }

    fn machine_schedule(&self) -> Schedule {
        self.policy_schedule.clone()
    }

    /// Handles each datagram as soon as it is received: its sender's ancestry is checked while
    /// the sender is still alive (`daemonic notify` and `systemd-notify` wait on a barrier that
    /// the next receive releases).
    #[inline(never)]
    fn read_notify(&mut self) {
        for _ in 0..NOTIFY_BATCH {
            let received = match &self.notify {
                Some(listener) => listener.recv(),
                None => return,
            };
            let Ok(Some((sender, data))) = received else {
                return;
            };
            let Some(program) = self.machine.pid() else {
                continue;
            };
            if !is_ours(sender, program) {
                continue;
            }
            self.handle_notification(&Message::parse(&data));
        }
    }

    fn handle_notification(&mut self, message: &Message) {
        if let Some(text) = &message.status {
            self.set_status_text(text);
        }
        if let (Some(extend), Some(launcher)) = (message.extend_timeout, &self.launcher) {
            let ms = u32::try_from(extend.as_millis()).unwrap_or(u32::MAX);
            channel::send(launcher.as_fd(), Record::Extend(ms));
        }
        if let Some(errno) = message.errno.filter(|&e| e > 0)
            && !self.machine.is_ready()
        {
            // Step::Wait marks a failure the program reported itself.
            self.report_failure(Step::Wait, errno);
        }
        if message.ready {
            self.feed(Event::Ready);
        } else if message.status.is_some() {
            self.publish();
        }
    }

    fn set_status_text(&mut self, text: &str) {
        let mut end = text.len().min(status::STATUS_TEXT_MAX);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.status_text.clear();
        self.status_text.push_str(&text[..end]);
        if let Some(launcher) = &self.launcher {
            channel::send_text(launcher.as_fd(), self.status_text.as_bytes());
        }
        if self.foreground {
            let _ = notify::notify(&["STATUS=", &self.status_text].concat());
        }
    }

    #[inline(never)]
    fn read_ready(&mut self) {
        let Some(fd) = &self.ready else { return };
        let mut buf = [0u8; 256];
        if let Ok(n @ 1..) = rustix::io::read(fd, &mut buf) {
            // Kept open after the newline, and read and discarded: a program that writes to it
            // again must not die of SIGPIPE.
            if buf[..n].contains(&b'\n') && !self.ready_seen {
                self.ready_seen = true;
                self.feed(Event::Ready);
            }
        } else if self.ready_seen {
            self.ready = None;
        } else {
            // Closed without a newline: not ready; the program's exit (if it exits) decides.
            self.ready = None;
            if !self.machine.is_ready()
                && let Some(launcher) = &self.launcher
            {
                channel::send(
                    launcher.as_fd(),
                    Record::Failed(Step::Readiness, libc::EPIPE),
                );
            }
        }
    }

    /// Copies what the program wrote to its output pipe to the log (or the keeper's stderr, its
    /// configured target), and to the launcher until the program is ready.
    #[inline(never)]
    fn drain_output(&mut self) {
        // One buffer for the keeper's life, small: its memory is a goal.
        let mut buf = std::mem::take(&mut self.read_buf);
        buf.resize(READ_CHUNK, 0);
        // Each pipe is taken out while it is read: the reading borrows the keeper (its logs,
        // syslog and relay).
        let mut read = false;
        if let Some(pipe) = self.output.take() {
            read |= self.drain_pipe(pipe.0.as_fd(), &mut buf, false);
            self.output = Some(pipe);
        }
        if let Some(pipe) = self.err_output.take() {
            read |= self.drain_pipe(pipe.0.as_fd(), &mut buf, true);
            self.err_output = Some(pipe);
        }
        self.read_buf = buf;
        // Only output read holds buffers to shed once it pauses.
        if read {
            self.output_seen = Some(Instant::now());
        }
        self.after_rotation();
        self.start_processor();
        // Dropped lines are news for `status` at once, not at the next transition.
        if self.dropped_counts() != self.published_dropped {
            self.publish();
        }
    }

    /// Reads one output pipe (the read end is non-blocking: EAGAIN ends it) in a bounded number
    /// of reads, so a flood cannot starve the control socket, into its log (`stderr`: the
    /// separate stderr log), syslog, or the keeper's stderr; and relays it to a waiting launcher.
    /// Returns whether anything was read.
    fn drain_pipe(&mut self, fd: BorrowedFd<'_>, buf: &mut [u8], stderr: bool) -> bool {
        let mut read = false;
        for _ in 0..256 {
            let logger = if stderr {
                &mut self.err_logger
            } else {
                &mut self.logger
            };
            if logger.as_ref().is_some_and(Logger::is_stalled) {
                break;
            }
            let n = match rustix::io::read(fd, &mut *buf) {
                Ok(n @ 1..) => n,
                _ => break,
            };
            read = true;
            let chunk = &buf[..n];
            let now = SystemTime::now();
            match logger {
                Some(logger) => logger.write(chunk, now),
                None if self.syslog.is_some() => {}
                None => {
                    write_all(io::stderr().as_fd(), chunk);
                }
            }
            if let Some(syslog) = &mut self.syslog {
                syslog.write(chunk, now);
            }
            // The launcher's relay is non-blocking: a launcher that does not read never stalls
            // the keeper; it loses its copy instead.
            if let Some(relay) = &self.relay
                && !write_all(relay.as_fd(), chunk)
            {
                self.relay = None;
            }
        }
        read
    }

    /// Whether the log processor is all that is left beneath the keeper.
    fn only_processor_left(&self) -> bool {
        let Some((processor, _)) = &self.processing else {
            return false;
        };
        process::descendants(self.keeper_pid)
            .iter()
            .all(|pid| pid == processor)
    }

    /// Runs the log processor on the next closed archive, if one waits and none runs:
    /// `sh -c 'exec COMMAND' < @….u > @….t`, as a child of the keeper, outside its loop.
    fn start_processor(&mut self) {
        if self.processing.is_some() {
            return;
        }
        // The next archive of either log (stdout's first); one processor runs at a time.
        let Some((archive, command)) = self.loggers().find_map(|logger| {
            let archive = logger.next_unprocessed()?;
            let command = logger.config().processor_command()?;
            Some((archive, ["exec ", command].concat()))
        }) else {
            return;
        };
        let (temp, _) = crate::log::processed_names(&archive);
        use std::os::unix::fs::OpenOptionsExt;
        // Both files opened here, before the fork: the input must be a regular file (never a
        // planted FIFO, which would block), and the output is created anew (O_EXCL, never
        // followed): a file someone planted at its name is removed first, or the run fails.
        let input = crate::status::open_regular(&archive);
        let _ = std::fs::remove_file(&temp);
        let output = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY)
            .open(&temp);
        let (Ok(input), Ok(output), Ok(script)) = (input, output, CString::new(command)) else {
            crate::log::finish_processing(&archive, false);
            return;
        };
        // Reading the archive may block now.
        set_nonblocking(&input, false);
        let (from, to) = (input.as_raw_fd(), output.as_raw_fd());
        let argv = [
            c"sh".as_ptr(),
            c"-c".as_ptr(),
            script.as_ptr(),
            std::ptr::null(),
        ];
        // SAFETY: the keeper runs one thread; the child makes system calls only, then execve
        // or _exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            crate::log::finish_processing(&archive, false);
            return;
        }
        if pid == 0 {
            // libc: rustix has no public sigprocmask or signal.
            // SAFETY: sigemptyset initialises the set sigprocmask reads; SIG_DFL runs no handler.
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            }
            if fds::dup2(from, 0).is_err() || fds::dup2(to, 1).is_err() {
                process::exit_now(127);
            }
            fds::close_inherited_fds(&[], 1024);
            // libc: rustix has no public execve.
            // SAFETY: the path and both arrays are NUL-terminated and were made before the fork.
            unsafe {
                libc::execve(
                    c"/bin/sh".as_ptr(),
                    argv.as_ptr(),
                    self.spec.envp_ptrs.as_ptr(),
                )
            };
            process::exit_now(127);
        }
        drop((input, output));
        self.processing = Some((pid as u32, archive));
    }

    /// The output went quiet: its buffers go back to the system until it speaks again.
    fn shed_buffers(&mut self) {
        self.output_seen = None;
        self.read_buf = Vec::new();
        for logger in self.loggers() {
            logger.shed();
        }
        if let Some(syslog) = &mut self.syslog {
            syslog.shed();
        }
        crate::process::trim_heap();
        crate::process::trim_stack();
    }

    /// After a log rotation: renaming, listing and pruning the archives took stack pages deeper
    /// than writing goes and a directory buffer on the heap. Under a flood (rotations, and never
    /// a pause for `shed_buffers`) they would stay the keeper's for good, so they go back now.
    fn after_rotation(&mut self) {
        let rotations = self.loggers().map(|l| l.rotations()).sum();
        if rotations != self.rotations_trimmed {
            self.rotations_trimmed = rotations;
            crate::process::trim_heap();
            crate::process::trim_stack();
        }
    }

    /// The logs: standard output's (or both streams'), then standard error's own.
    fn loggers(&mut self) -> impl Iterator<Item = &mut Logger> {
        self.logger.iter_mut().chain(self.err_logger.iter_mut())
    }

    /// Lines the logs and syslog dropped so far.
    fn dropped_counts(&self) -> (u64, u64) {
        (
            self.logger.as_ref().map_or(0, Logger::dropped)
                + self.err_logger.as_ref().map_or(0, Logger::dropped),
            self.syslog.as_ref().map_or(0, crate::log::Syslog::dropped),
        )
    }

    /// A line of the keeper's own in the log.
    fn log_event(&mut self, parts: &[&str]) {
        let line = parts.concat();
        if let Some(logger) = &mut self.logger {
            logger.event(&line, SystemTime::now());
        }
        if let Some(syslog) = &mut self.syslog {
            syslog.send(["daemonic: ", &line].concat().as_bytes(), SystemTime::now());
        }
    }

    /// Writes the log's event lines for what the table just did.
    #[inline(never)]
    fn log_transition(&mut self, before: ServiceState, event: &Event) {
        if self.logger.is_none() && self.syslog.is_none() {
            return;
        }
        let after = self.machine.state();
        match event {
            Event::Spawned(pid) | Event::MainPid(pid) => {
                let pid = decimal(u64::from(*pid));
                self.log_event(&["started (pid ", &pid, ")"]);
            }
            Event::Ready if before == ServiceState::Starting => {
                let after_secs = seconds(self.machine.run_time(Instant::now()));
                self.log_event(&["ready after ", &after_secs]);
            }
            Event::Exited { .. } => {
                if let Some((exit, ran)) = self.machine.last_exit() {
                    let how = match exit {
                        Exit::Code(code) => {
                            ["exited with status ".to_string(), decimal(code as u64)].concat()
                        }
                        Exit::Signal { signal, core } => [
                            "was killed by signal ",
                            &crate::signals::signal_name(signal),
                            if core { " (core dumped)" } else { "" },
                        ]
                        .concat(),
                    };
                    let ran = seconds(ran);
                    self.log_event(&[&how, " after running ", &ran]);
                }
            }
            _ => {}
        }
        if before == after {
            return;
        }
        match after {
            ServiceState::Backoff => {
                if let Some(deadline) = self.machine.deadline() {
                    let wait = seconds(deadline.saturating_duration_since(Instant::now()));
                    self.log_event(&["restarting in ", &wait]);
                }
            }
            ServiceState::Failed if self.machine.reason() == Some(status::FailReason::GaveUp) => {
                self.log_event(&["gave up: too many failures"]);
            }
            ServiceState::Stopped => self.log_event(&["stopped"]),
            _ => {}
        }
    }

    // ---- control -----------------------------------------------------------------------

    #[inline(never)]
    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            let (stream, _) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors: the listener stays readable, so stop polling it for a
                    // moment rather than spin.
                    if matches!(err.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) {
                        self.accept_paused = Some(Instant::now() + ACCEPT_PAUSE);
                    }
                    return;
                }
            };
            if self.clients.len() >= MAX_CLIENTS {
                let _ = (&stream).write_reply(Reply::BadRequest);
                continue;
            }
            if !peer_may_control(&stream) {
                let _ = (&stream).write_reply(Reply::Refused);
                continue;
            }
            let _ = stream.set_nonblocking(true);
            self.next_client += 1;
            self.clients.push(Client {
                id: self.next_client,
                stream,
                since: Instant::now(),
                waiting: None,
            });
        }
    }

    fn read_request(&mut self, index: usize) {
        let mut buf = [0u8; control::REQUEST];
        let complete = matches!(
            (&self.clients[index].stream).read(&mut buf),
            Ok(n) if n == control::REQUEST
        );
        if !complete {
            // Short or failed read: one request must arrive whole; anything else ends the talk.
            let client = self.clients.swap_remove(index);
            let _ = (&client.stream).write_reply(Reply::BadRequest);
            return;
        }
        let Some(request) = Request::decode(&buf) else {
            let client = self.clients.swap_remove(index);
            let _ = (&client.stream).write_reply(Reply::BadRequest);
            return;
        };
        match &request {
            Request::Signal { signal, group } => {
                let client = self.clients.swap_remove(index);
                let reply = match self.machine.pid() {
                    Some(pid) => {
                        self.feed(Event::Forward {
                            signal: *signal,
                            group: *group,
                        });
                        Reply::Done(pid)
                    }
                    None => Reply::NotRunning,
                };
                let _ = (&client.stream).write_reply(reply);
            }
            Request::Reopen => {
                let client = self.clients.swap_remove(index);
                let reply = match self.reopen() {
                    Ok(()) => Reply::Done(self.machine.pid().unwrap_or(0)),
                    Err(errno) => Reply::Invalid(errno),
                };
                let _ = (&client.stream).write_reply(reply);
            }
            Request::Stop(schedule) => {
                let schedule = schedule.clone();
                self.clients[index].waiting = Some(request);
                self.feed(Event::Stop(schedule));
            }
            Request::Restart(schedule) => {
                if let Err(errno) = self.still_startable() {
                    let client = self.clients.swap_remove(index);
                    let _ = (&client.stream).write_reply(Reply::Invalid(errno));
                    return;
                }
                let schedule = schedule.clone();
                self.clients[index].waiting = Some(request);
                self.feed(Event::Restart(schedule));
            }
        }
    }

    /// On request: rotates the log, or reopens the output file (after logrotate renamed it), so
    /// that nothing more is written to the old one. Whatever the pipe holds goes to the old file
    /// first.
    fn reopen(&mut self) -> Result<(), i32> {
        self.drain_output();
        if self.logger.is_some() || self.err_logger.is_some() {
            let now = SystemTime::now();
            for logger in self.loggers() {
                logger.rotate(now);
            }
            self.start_processor();
            return Ok(());
        }
        let Some(path) = self.spec.output_file.clone() else {
            return Err(libc::ENOENT);
        };
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&path)
            .map_err(|e| errno(&e))?;
        use std::os::unix::fs::OpenOptionsExt;
        fds::dup2(file.as_raw_fd(), 2).map_err(|e| errno(&e))?;
        if self.spec.shared_output {
            fds::dup2(file.as_raw_fd(), 1).map_err(|e| errno(&e))?;
        }
        Ok(())
    }

    /// Before a restart stops anything: the program and working directory are still there.
    fn still_startable(&self) -> Result<(), i32> {
        let root = self
            .spec
            .chroot
            .as_ref()
            .map(|c| PathBuf::from(c.to_string_lossy().into_owned()));
        let inside = |c: &CString| -> PathBuf {
            let p = PathBuf::from(c.to_string_lossy().into_owned());
            match &root {
                Some(root) => root.join(p.strip_prefix("/").unwrap_or(&p)),
                None => p,
            }
        };
        let program = inside(&self.spec.path);
        let meta = std::fs::metadata(&program).map_err(|e| errno(&e))?;
        use std::os::unix::fs::PermissionsExt;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(libc::EACCES);
        }
        if !inside(&self.spec.workdir).is_dir() {
            return Err(libc::ENOENT);
        }
        Ok(())
    }

    /// Answers the clients whose request has an outcome now.
    #[inline(never)]
    fn answer_clients(&mut self) {
        let phase = self.machine.phase().clone();
        let pid = self.machine.pid();
        let overrun = self.machine.overrun();
        let mut i = 0;
        while i < self.clients.len() {
            let reply = match (&self.clients[i].waiting, &phase) {
                (Some(Request::Stop(_)), Phase::Done(_)) => {
                    Some(Reply::Done(self.last_pid.unwrap_or(0)))
                }
                (Some(Request::Stop(_)), Phase::Stopping { .. }) if overrun => {
                    Some(Reply::Overrun(self.last_pid.unwrap_or(0)))
                }
                (Some(Request::Restart(_)), Phase::Up { ready: true }) => {
                    Some(Reply::Done(pid.unwrap_or(0)))
                }
                (Some(Request::Restart(_)), Phase::Backoff | Phase::Done(_)) => Some(Reply::NotUp(
                    self.machine.last_exit().map(|(exit, _)| wait_status(exit)),
                )),
                _ => None,
            };
            match reply {
                Some(reply) => {
                    let client = self.clients.swap_remove(i);
                    let _ = (&client.stream).write_reply(reply);
                }
                None => i += 1,
            }
        }
    }

    fn expire_clients(&mut self) {
        let now = Instant::now();
        self.clients
            .retain(|c| c.waiting.is_some() || now.duration_since(c.since) < CLIENT_GRACE);
    }

    // ---- publishing --------------------------------------------------------------------

    /// Replaces the status record, empties the pidfile between runs, then tells the launcher
    /// (and an outer service manager) about readiness.
    #[inline(never)]
    fn publish(&mut self) {
        self.publish_as(self.machine.pid());
    }

    /// [`publish`](Keeper::publish), naming `pid` as the program (it may not be in the table
    /// yet).
    fn publish_as(&mut self, pid: Option<u32>) {
        let state = self.machine.state();
        if self.last_state != Some(state) {
            self.since = SystemTime::now();
            self.last_state = Some(state);
        }
        if let Some(pid) = pid {
            self.last_pid = Some(pid);
        }
        let next_restart = match self.machine.phase() {
            Phase::Backoff => self
                .machine
                .deadline()
                .map(|d| SystemTime::now() + d.saturating_duration_since(Instant::now())),
            _ => None,
        };
        let record = ServiceStatus {
            state,
            ready: self.machine.is_ready(),
            keeper_pid: self.keeper_pid,
            pid,
            since: self.since,
            started: self.started,
            restarts: self.machine.restarts(),
            failures: self.machine.quick_failures(),
            last_exit: self.machine.last_exit(),
            next_restart,
            reason: self.machine.reason(),
            status_text: self.status_text.clone(),
            readiness: self.spec.readiness,
            log_dropped: {
                self.published_dropped = self.dropped_counts();
                self.published_dropped.0
            },
            log_dir: self.logger.as_ref().map(|l| l.config().dir().to_path_buf()),
            syslog_dropped: self.syslog.as_ref().map_or(0, crate::log::Syslog::dropped),
            keeper_alive: true,
        };
        if let Some(files) = &mut self.files {
            if pid.is_none() {
                // Between runs the pidfile names nobody: `kill $(cat app.pid)` must not reach a
                // process that reused the old number.
                let _ = files.pidfile.clear();
            }
            let _ = files.status.write(&record);
        }
        // Only now that the record says so: whoever hears "ready" and looks sees it too.
        if self.machine.is_ready() && !self.reported {
            self.reported = true;
            if let Some(launcher) = self.launcher.take() {
                // What a program wrote while it prepared reaches `start` before it returns; a
                // program ready at exec wrote nothing before.
                if self.machine.state() == ServiceState::Ready {
                    self.drain_output();
                }
                match self.program_unsent.take() {
                    Some(pid) => {
                        channel::send_two(launcher.as_fd(), Record::Program(pid), Record::Ready)
                    }
                    None => channel::send(launcher.as_fd(), Record::Ready),
                }
                // Kept only for a re-exec still to come (see `settle`).
                if self.reexec.is_some() {
                    self.heard = Some(launcher);
                }
            }
            self.relay = None;
        }
        // An outer service manager hears each run's readiness once, with its pid.
        if self.foreground
            && self.machine.is_ready()
            && let Some(pid) = self.machine.pid()
            && self.announced != Some(pid)
        {
            self.announced = Some(pid);
            let mut text = String::from("READY=1\nMAINPID=");
            text.push_str(&decimal(u64::from(pid)));
            let _ = notify::notify(&text);
        }
    }

    /// The launcher hears why the start failed (once).
    fn report_failure(&mut self, step: Step, errno: i32) {
        if let Some(launcher) = &self.launcher {
            if let Some(pid) = self.program_unsent.take() {
                channel::send(launcher.as_fd(), Record::Program(pid));
            }
            channel::send(launcher.as_fd(), Record::Failed(step, errno));
        }
    }

    /// Blocking mode, at the end: lines that wait for space are written before the keeper
    /// goes, however long the disk stays full (it was asked never to drop one). Free space is
    /// not something a descriptor reports, so this looks again every [`LOG_RETRY`], as the loop
    /// does; a TERM or INT received meanwhile gives up (a second stop), and KILL always works.
    fn write_held_lines(&mut self) {
        let stalled = |k: &Keeper| {
            k.logger.as_ref().is_some_and(Logger::is_stalled)
                || k.err_logger.as_ref().is_some_and(Logger::is_stalled)
        };
        while stalled(self) {
            let mut pfd = [PollFd::new(&self.signals, PollFlags::IN)];
            let retry = process::poll_timeout(LOG_RETRY.as_millis() as i32);
            let _ = rustix::event::poll(&mut pfd, Some(&retry));
            while let Some(signo) = crate::signals::read_signalfd(self.signals.as_fd()) {
                if signo == libc::SIGTERM || signo == libc::SIGINT {
                    return;
                }
            }
            let now = SystemTime::now();
            for logger in self.loggers() {
                logger.retry(now);
            }
            self.drain_output();
        }
        let now = SystemTime::now();
        for logger in self.loggers() {
            logger.flush_partial(now);
        }
    }

    /// Leaves: a start that never came up leaves nothing behind; otherwise the record keeps the
    /// last word, and the pidfile and socket go.
    fn finish(mut self: Box<Self>) -> Option<Exit> {
        self.drain_output();
        self.write_held_lines();
        // A processor still running is ended; its archive is kept as it was.
        if let Some((pid, archive)) = self.processing.take() {
            // Our own unreaped child.
            if let Some(pid) = as_pid(pid) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
                let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
            }
            crate::log::finish_processing(&archive, false);
        }
        self.answer_clients();
        let never_up = self.launcher.is_some();
        if let Some(files) = &self.files {
            let _ = std::fs::remove_file(&files.socket);
            if never_up {
                files.status.remove();
            }
            let _ = files.pidfile.remove();
        }
        self.machine.last_exit().map(|(exit, _)| exit)
    }
}

/// glibc reads the zone file that `TZ` names (at the keeper's first local-time stamp) with a
/// plain `fopen`, without `O_NOCTTY`; a keeper forked once leads its session, and a terminal
/// opened that way would become its controlling terminal (and its hangup the program's HUP). A
/// `TZ` that names something other than a regular file, resolved as glibc does (a leading `:`
/// dropped, a relative name under `TZDIR` or /usr/share/zoneinfo), is removed from the keeper's
/// own environment, which then uses /etc/localtime. Rule strings (`EST5EDT`, `UTC0`) name no file
/// and stay, as do zone names; the program's environment is its own and keeps `TZ` as given.
pub(crate) fn drop_tz_naming_no_file() {
    use std::os::unix::ffi::OsStrExt;
    let Some(tz) = std::env::var_os("TZ") else {
        return;
    };
    let name = tz.as_bytes().strip_prefix(b":").unwrap_or(tz.as_bytes());
    if name.is_empty() {
        return;
    }
    let name = std::ffi::OsStr::from_bytes(name);
    let path = match name.as_bytes()[0] {
        b'/' => PathBuf::from(name),
        _ => PathBuf::from(std::env::var_os("TZDIR").unwrap_or("/usr/share/zoneinfo".into()))
            .join(name),
    };
    if std::fs::metadata(&path).is_ok_and(|m| !m.is_file()) {
        // SAFETY: the keeper runs one thread (a fork of a launcher checked to run one).
        unsafe { std::env::remove_var("TZ") };
    }
}

/// Starts the program's process and returns its pid once it has executed the program or
/// failed (its error pipe then says which step).
///
/// On Linux, when the program keeps the keeper's credentials, like `posix_spawn`: a child that
/// shares the keeper's memory and runs on a stack of its own, while the keeper waits
/// (`CLONE_VM | CLONE_VFORK`). No page tables are copied and neither process takes
/// copy-on-write faults, which a `fork` of this process costs on every start and restart. The
/// child's descriptor table, directory, umask and signal dispositions are its own (no
/// `CLONE_FILES`, `CLONE_FS` or `CLONE_SIGHAND`); it only makes system calls and writes to its
/// stack (`program_steps`). Otherwise `fork`: the C library's `setuid`, `setgid` and
/// `setgroups` may take locks and write globals that a memory-sharing child would leave
/// changed in the keeper, and glibc before 2.25 rewrote the shared thread's cached ids in
/// `clone`. On Linux the drop is the kernel's calls made directly, but a shared memory is still
/// wrong for it: a child that runs as the user while it shares the root keeper's memory lets
/// that user at the memory (with `fs.suid_dumpable=1` at once, and through a narrow window when
/// the child dies before its exec, if the keeper's dumpability were restored). Either way the
/// keeper waits until the exec (or the failure), as it always has.
fn start_child(spec: &Spec, fds: &ChildFds<'_>) -> io::Result<(u32, Option<ChildStack>)> {
    #[cfg(target_os = "linux")]
    if spec.creds.is_none() && clone_vm_is_safe() {
        return clone_child(spec, fds);
    }
    fork_child(spec, fds).map(|pid| (pid, None))
}

/// Whether the C library leaves a `CLONE_VM` child's parent alone: musl always, glibc from 2.25.
#[cfg(target_os = "linux")]
fn clone_vm_is_safe() -> bool {
    #[cfg(target_env = "gnu")]
    {
        static SAFE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *SAFE.get_or_init(|| {
            // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
            let version = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
            let mut parts = version
                .to_str()
                .unwrap_or("")
                .split('.')
                .map(|p| p.parse::<u32>().unwrap_or(0));
            let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
            (major, minor) >= (2, 25)
        })
    }
    #[cfg(not(target_env = "gnu"))]
    {
        cfg!(target_env = "musl")
    }
}

#[cfg(target_os = "linux")]
fn clone_child(spec: &Spec, fds: &ChildFds<'_>) -> io::Result<(u32, Option<ChildStack>)> {
    /// `program_steps` needs a few KiB; the rest is margin. Untouched pages cost nothing.
    const STACK: usize = 128 << 10;
    extern "C" fn entry(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` points at `args` below, in the keeper's frame, which stays put until this
        // child has executed the program or exited (CLONE_VFORK suspends the keeper).
        let (spec, fds) = unsafe { *arg.cast::<(&Spec, &ChildFds<'_>)>() };
        program_steps(spec, fds)
    }
    use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
    // libc: rustix's page_size reads the auxiliary vector (PR_GET_AUXV, Linux 6.4, or
    // /proc/self/auxv) and panics when it cannot; the C library has had it since start-up.
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let len = STACK + page;
    // rustix's mmap, mprotect and munmap are unsafe too (they change what memory exists).
    // SAFETY: a fresh private anonymous mapping, used only once it exists.
    let base = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::STACK,
        )
    }?;
    // SAFETY: the lowest page of our own mapping becomes a guard: an overflow faults rather
    // than writing below the stack.
    let _ = unsafe { rustix::mm::mprotect(base, page, MprotectFlags::empty()) };
    let args = (spec, fds);
    // libc: rustix has no clone.
    // SAFETY: the stack grows down from the end of the mapping (page-aligned, so 16-byte
    // aligned); `entry` never returns (program_steps ends in execve or _exit); `args` outlives
    // the child's use of it (see entry). The keeper runs one thread.
    let pid = unsafe {
        libc::clone(
            entry,
            base.cast::<u8>().add(len).cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&raw const args).cast_mut().cast(),
        )
    };
    let err = io::Error::last_os_error();
    // The child has left this memory (it executed or exited, however it ended: the kernel
    // releases a CLONE_VFORK parent only then).
    let stack = ChildStack { base, len };
    if pid < 0 {
        Err(err)
    } else {
        Ok((pid as u32, Some(stack)))
    }
}

/// The stack a program's process ran on until its exec, unmapped when dropped: the keeper drops
/// it once the launcher has heard the outcome, not on the path of the start (the child ran on
/// another processor, so the unmap waits for that processor to flush its TLB), and a keeper that
/// re-executes never unmaps it (the exec drops it with the rest).
#[cfg(target_os = "linux")]
struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

#[cfg(target_os = "linux")]
impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: our own mapping (clone_child made it), which nothing uses since the child
        // that ran on it executed or exited.
        let _ = unsafe { rustix::mm::munmap(self.base, self.len) };
    }
}

/// Off Linux there is no stack of the child's own.
#[cfg(not(target_os = "linux"))]
struct ChildStack;

fn fork_child(spec: &Spec, fds: &ChildFds<'_>) -> io::Result<u32> {
    // libc: rustix has no fork.
    // SAFETY: the keeper runs one thread; the child makes system calls only, then execve or
    // _exit (program_steps).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        program_steps(spec, fds);
    }
    Ok(pid as u32)
}

/// The descriptors the program's steps use: the error pipe borrowed (it stays open in the child
/// until its exec), the rest as numbers (nothing is dropped in the child).
struct ChildFds<'a> {
    errors: BorrowedFd<'a>,
    ready: Option<RawFd>,
    stderr: Option<RawFd>,
    /// The pipe standard output goes through (the same as stderr's for one file or one log,
    /// so their order is kept), if it goes through the keeper.
    stdout: Option<RawFd>,
    keeper: libc::pid_t,
}

/// In the program's process, between fork and exec: system calls only. Never returns.
///
/// Its own process group (never a session leader, so never a terminal); an empty signal mask and
/// `SIGPIPE` at its default (the keeper's signalfd blocked the rest, and every other disposition
/// is already the default); stderr onto the keeper's pipe; the readiness descriptor; every other
/// descriptor closed; umask, chroot, chdir, core limit, privileges; then `PR_SET_PDEATHSIG` (after
/// the privilege drop, which clears it) so that the program never outlives a killed keeper.
/// Never inlined: its buffers are the child's, not a frame in the keeper's loop.
#[inline(never)]
fn program_steps(spec: &Spec, fds: &ChildFds<'_>) -> ! {
    let fail = |step: Step, err: io::Error| -> ! {
        channel::send(fds.errors, Record::Failed(step, errno(&err)));
        // Without running the keeper's destructors.
        process::exit_now(127)
    };
    let _ = rustix::process::setpgid(None, None);
    // libc: rustix has no public signal or sigprocmask; tcsetpgrp (rustix's is behind its
    // termios feature) stays between the two changes of SIGTTOU.
    // SAFETY: signal, tcsetpgrp and sigprocmask are async-signal-safe system calls; SIG_IGN and
    // SIG_DFL run no handler, and sigemptyset initialises the set sigprocmask reads.
    unsafe {
        if spec.tty {
            // A background group asking for the terminal gets SIGTTOU unless it ignores it.
            libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            libc::tcsetpgrp(0, rustix::process::getpid().as_raw_pid());
            libc::signal(libc::SIGTTOU, libc::SIG_DFL);
        }
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    if let Some(fd) = fds.stderr
        && let Err(e) = fds::dup2(fd, 2)
    {
        fail(Step::Stderr, e);
    }
    if let Some(fd) = fds.stdout
        && let Err(e) = fds::dup2(fd, 1)
    {
        fail(Step::Stdout, e);
    }
    if let (Some(fd), Readiness::Fd(target)) = (fds.ready, spec.readiness)
        && let Err(e) = fds::dup2(fd, target).and_then(|()| fds::set_cloexec(target, false))
    {
        fail(Step::Readiness, e);
    }
    // What stays: 0-2, the caller's descriptors, the readiness number, and the error pipe until
    // exec closes it (close-on-exec). The list is sorted in a fixed-size buffer: no allocation.
    // Ours first: past 64, a caller's descriptor is closed (and its step below reports it),
    // never the error pipe.
    let mut keep = [0 as RawFd; 64];
    let mut n = 0;
    let ours = [
        Some(fds.errors.as_raw_fd()),
        match spec.readiness {
            Readiness::Fd(t) => Some(t),
            _ => None,
        },
    ];
    for fd in ours.into_iter().flatten().chain(spec.keep.iter().copied()) {
        if n < keep.len() {
            keep[n] = fd;
            n += 1;
        }
    }
    keep[..n].sort_unstable();
    fds::close_inherited_fds(&keep[..n], 1024);
    for &fd in &spec.keep {
        // A kept descriptor must survive exec even if it was opened close-on-exec.
        if let Err(e) = fds::set_cloexec(fd, false) {
            fail(Step::CloseFds, e);
        }
    }
    rustix::process::umask(Mode::from_bits_retain(spec.umask));
    // While privileged (raising a limit, lowering nice or a real-time policy needs it) and
    // before the chroot (the OOM score is written through /proc).
    if let Err((step, e)) = spec.resources.apply() {
        fail(step, e);
    }
    // The paths are `&CStr`s: rustix passes them on without copying them.
    if let Some(root) = &spec.chroot
        && let Err(e) = rustix::process::chroot(root.as_c_str())
    {
        fail(Step::Chroot, e.into());
    }
    if let Err(e) = rustix::process::chdir(spec.workdir.as_c_str()) {
        fail(Step::Chdir, e.into());
    }
    if spec.no_core {
        let zero = Rlimit {
            current: Some(0),
            maximum: Some(0),
        };
        if let Err(e) = rustix::process::setrlimit(Resource::Core, zero) {
            fail(Step::NoCore, e.into());
        }
    }
    if let Some(creds) = &spec.creds
        && let Err((step, e)) = identity::drop_privileges(creds)
    {
        fail(step, e);
    }
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
        // The keeper may have died before the prctl: then nothing would ever kill us.
        if Pid::as_raw(rustix::process::getppid()) != fds.keeper {
            process::exit_now(127);
        }
    }
    // libc: rustix has no public execve (only in its unstable `runtime` module).
    // SAFETY: the path and both arrays are NUL-terminated and were built before the fork.
    unsafe {
        libc::execve(
            spec.path.as_ptr(),
            spec.argv_ptrs.as_ptr(),
            spec.envp_ptrs.as_ptr(),
        )
    };
    fail(Step::Exec, io::Error::last_os_error())
}

/// A notification counts from the program, its descendants, or its process group.
fn is_ours(sender: Option<u32>, program: u32) -> bool {
    let Some(sender) = sender else {
        return true;
    };
    sender == program
        || process::is_descendant(sender, program)
        || process::ProcStat::read(sender).is_some_and(|s| s.pgrp == program)
}

/// Whether the peer is root or the keeper's own user.
fn peer_may_control(stream: &UnixStream) -> bool {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // libc: rustix's socket_peercred reads the peer's pid into a non-zero `Pid`, and the kernel
    // gives 0 for a peer outside our pid namespace.
    // SAFETY: getsockopt writes at most `len` bytes into `cred`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    rc == 0 && (cred.uid == 0 || cred.uid == rustix::process::geteuid().as_raw())
}

trait WriteReply {
    fn write_reply(self, reply: Reply) -> io::Result<()>;
}

impl WriteReply for &UnixStream {
    fn write_reply(self, reply: Reply) -> io::Result<()> {
        use std::io::Write;
        let mut stream = self;
        stream.write_all(&reply.encode())
    }
}

/// The file a keeper re-executes into for `image` ([`crate::Daemon::keeper_image`]): a bare
/// name is looked for beside this process's executable (the keeper was forked from the
/// launcher without an exec, so that is the launcher's), and stands for the executable itself
/// when no executable file has that name there. None: nothing to execute.
fn image_to_execute(image: &Path) -> Option<PathBuf> {
    if image.as_os_str().as_encoded_bytes().contains(&b'/') {
        return Some(image.to_path_buf());
    }
    let me = std::env::current_exe().ok()?;
    let sibling = me.with_file_name(image);
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if executable(&sibling) {
        Some(sibling)
    } else {
        executable(&me).then_some(me)
    }
}

/// Binds the control socket. The keeper holds the pidfile's lock, so a socket already there is
/// a dead keeper's: it is removed first (a planted file another user owns in a sticky
/// directory cannot be, and the bind then fails with a clear error).
fn bind_control(path: &Path) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(io::Error::from_raw_os_error(libc::ENOTSOCK));
            }
            // A keeper that answers is alive: its pidfile was removed under it. Never take its
            // socket (that would make it unreachable and run the program twice).
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::from_raw_os_error(libc::EADDRINUSE));
            }
            std::fs::remove_file(path)?;
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    // 0177 makes the socket 0600 from its first moment.
    let old = rustix::process::umask(Mode::from_bits_retain(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(old);
    let listener = bound?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Makes this process the child subreaper: orphans beneath it are reparented to it, so it
/// reaps them and can find them all.
///
/// References: PR_SET_CHILD_SUBREAPER in prctl(2).
fn become_subreaper() -> io::Result<()> {
    // The kernel takes a flag: any pid sets it.
    #[cfg(target_os = "linux")]
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    Ok(())
}

/// Writes all of `data` to `fd`; false once the reader is gone or the write fails.
fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Sets (or clears) `O_NONBLOCK` on `fd`; a failure leaves it as it was.
///
/// References: fcntl(2).
fn set_nonblocking(fd: impl AsFd, on: bool) {
    use rustix::fs::{fcntl_getfl, fcntl_setfl};
    if let Ok(flags) = fcntl_getfl(&fd) {
        let flags = match on {
            true => flags | OFlags::NONBLOCK,
            false => flags - OFlags::NONBLOCK,
        };
        let _ = fcntl_setfl(&fd, flags);
    }
}

/// `kill(pid, signal)`, errors ignored: the target may be gone, and the keeper goes on either way.
///
/// References: kill(2).
fn kill(pid: libc::pid_t, signal: i32) {
    // libc: rustix's `Signal` is made safely from named signals only; a forwarded signal may be
    // any number (a real-time one).
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid, signal) };
}

/// A pid from the table or the state, for rustix: `None` for 0 or a number past `pid_t`.
fn as_pid(pid: u32) -> Option<Pid> {
    libc::pid_t::try_from(pid).ok().and_then(Pid::from_raw)
}

fn wait_status(exit: Exit) -> i32 {
    match exit {
        Exit::Code(code) => (code & 0xff) << 8,
        Exit::Signal { signal, core } => signal | if core { 0x80 } else { 0 },
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn errno(err: &io::Error) -> i32 {
    err.raw_os_error().unwrap_or(libc::EIO)
}

/// Gives back what the keeper inherited from the command that launched it and will not use:
/// the command's freed heap (`malloc_trim`), the page mappings of code and read-only data it ran
/// (re-faulted on use from the page cache, so every keeper then shares the same few pages), and
/// the stack the command's parsing dirtied below the current frame. A keeper's memory is a
/// measured goal (USS); this is what makes a forked keeper small without paying for a second
/// process start-up on the start path.
///
/// Only mappings that are file-backed, not writable and without anonymous (copied-on-write)
/// pages are dropped: their contents are exactly the file's, so dropping loses nothing. The
/// relocated read-only data (RELRO) has anonymous pages and is kept.
///
/// References: madvise(2) `MADV_DONTNEED`, malloc_trim(3), proc_pid_smaps(5).
pub(crate) fn shed_inherited_memory() {
    process::trim_heap();
    #[cfg(target_os = "linux")]
    {
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return;
        };
        let here = 0u8;
        let sp = &here as *const u8 as usize;
        let mut drops: Vec<(usize, usize)> = Vec::new();
        let mut current: Option<(usize, usize, bool)> = None;
        for line in smaps.lines() {
            let mut fields = line.split_whitespace();
            let Some(first) = fields.next() else { continue };
            if let Some((start, end)) = first.split_once('-')
                && let (Ok(start), Ok(end)) = (
                    usize::from_str_radix(start, 16),
                    usize::from_str_radix(end, 16),
                )
            {
                let perms = fields.next().unwrap_or("");
                let name = fields.nth(3).unwrap_or("");
                if name == "[stack]" {
                    // Everything more than 16 KiB below this frame is unused.
                    let top = (sp.saturating_sub(16 << 10)) & !0xfff;
                    if top > start {
                        drops.push((start, top - start));
                    }
                    current = None;
                } else {
                    let candidate = name.starts_with('/') && !perms.contains('w');
                    current = candidate.then_some((start, end, true));
                }
                continue;
            }
            if first == "Anonymous:"
                && let Some((start, end, _)) = current.take()
                && fields.next() == Some("0")
            {
                drops.push((start, end - start));
            }
        }
        for (start, len) in drops {
            // rustix's madvise is unsafe too (it may drop memory in use).
            // SAFETY: each range is a whole mapping of this process whose pages equal their
            // file's (or stack below every live frame); MADV_DONTNEED only unmaps pages, which
            // are faulted back from the file (or as zeroes) if touched again.
            let advice = rustix::mm::Advice::LinuxDontNeed;
            let _ = unsafe { rustix::mm::madvise(start as *mut std::ffi::c_void, len, advice) };
        }
    }
}

/// `1.234s`, without the formatting machinery.
fn seconds(duration: Duration) -> String {
    let millis = duration.as_millis() as u64;
    let mut text = decimal(millis / 1000);
    text.push('.');
    let frac = millis % 1000;
    text.push(char::from(b'0' + (frac / 100) as u8));
    text.push(char::from(b'0' + (frac / 10 % 10) as u8));
    text.push(char::from(b'0' + (frac % 10) as u8));
    text.push('s');
    text
}

/// The syslog tag for the program: its file name, and `[pid]` once it runs.
fn program_tag(path: &CString, pid: Option<u32>) -> String {
    let bytes = path.as_bytes();
    let name = bytes.rsplit(|&b| b == b'/').next().unwrap_or(bytes);
    let mut tag = String::from_utf8_lossy(name).into_owned();
    if let Some(pid) = pid {
        tag.push('[');
        tag.push_str(&decimal(u64::from(pid)));
        tag.push(']');
    }
    tag
}

/// A pipe for the program's output: room for bursts (a program writing faster than a moment's
/// delay is not blocked), and a non-blocking read end (a pipe's ends are separate open files, so
/// the program's end stays blocking).
fn output_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let pipe = channel::pipe()?;
    // A failure leaves the default size.
    let _ = rustix::pipe::fcntl_setpipe_size(&pipe.0, 1 << 20);
    set_nonblocking(&pipe.0, true);
    Ok(pipe)
}
