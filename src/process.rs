//! Processes seen from outside: a pid pinned by a pidfd, signals sent through it, and what
//! `/proc/PID` says about a process.
//!
//! A pid is not an identity: after a crash the number can be reused by an unrelated process.
//! [`Process`] holds a pidfd (Linux 5.3+), so once it is opened every signal reaches the process
//! it was opened for, or nobody.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// A process pinned by a pidfd.
///
/// # Example
/// ```
/// let me = daemonic::Process::open(std::process::id())?;
/// assert!(me.is_alive());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Process {
    pid: u32,
    pidfd: Option<OwnedFd>,
}

impl Process {
    /// Opens a pidfd for `pid`; fails with `ESRCH` when no such process exists.
    ///
    /// References: pidfd_open(2). Where pidfds are missing (older kernels, the BSDs) the pid is
    /// checked with `kill(pid, 0)` and used as it is.
    pub fn open(pid: u32) -> io::Result<Process> {
        let raw =
            libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        if raw <= 0 {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        #[cfg(target_os = "linux")]
        {
            use rustix::process::{Pid, PidfdFlags, pidfd_open};
            // A pidfd is always close-on-exec (pidfd_open(2)).
            match Pid::from_raw(raw).map(|pid| pidfd_open(pid, PidfdFlags::empty())) {
                Some(Ok(pidfd)) => {
                    return Ok(Process {
                        pid,
                        pidfd: Some(pidfd),
                    });
                }
                Some(Err(rustix::io::Errno::NOSYS)) | None => {}
                Some(Err(err)) => return Err(err.into()),
            }
        }
        if is_alive(pid) {
            Ok(Process { pid, pidfd: None })
        } else {
            Err(io::Error::from_raw_os_error(libc::ESRCH))
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The pidfd, where the system has them.
    pub(crate) fn pidfd(&self) -> Option<&OwnedFd> {
        self.pidfd.as_ref()
    }

    /// Sends `signal` to the process; `ESRCH` when it has exited.
    ///
    /// References: pidfd_send_signal(2), kill(2).
    pub fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        // libc: rustix's `Signal` is made safely from named signals only; this takes any number
        // (a real-time signal, 0 to probe).
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.pidfd {
            // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    signal,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
            return if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            };
        }
        // SAFETY: kill has no memory effects.
        if unsafe { libc::kill(self.pid as libc::pid_t, signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Whether the process is still running (a zombie counts as gone).
    pub fn is_alive(&self) -> bool {
        match &self.pidfd {
            Some(fd) => !poll_readable(fd, Some(Duration::ZERO)),
            None => is_alive(self.pid),
        }
    }

    /// Waits until the process has exited or `timeout` passed; returns whether it exited.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        match &self.pidfd {
            Some(fd) => poll_readable(fd, Some(timeout)),
            None => {
                let deadline = Instant::now() + timeout;
                while is_alive(self.pid) {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                true
            }
        }
    }

    /// Whether the process has `(dev, ino)` open, i.e. holds that pidfile. Reads
    /// `/proc/PID/fd`; `Ok(false)` when the process is gone.
    pub fn holds_file(&self, dev: u64, ino: u64) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let dir = match std::fs::read_dir(format!("/proc/{}/fd", self.pid)) {
            Ok(dir) => dir,
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
            Err(err) => return Err(err),
        };
        for entry in dir.flatten() {
            if let Ok(meta) = std::fs::metadata(entry.path())
                && meta.dev() == dev
                && meta.ino() == ino
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Polls `fd` for readability; a pidfd is readable once its process has exited.
///
/// References: poll(2).
pub(crate) fn poll_readable(fd: impl AsFd, timeout: Option<Duration>) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut pfd = [PollFd::new(&fd, PollFlags::IN)];
    let timeout = timeout.map(|t| poll_timeout(t.as_millis().min(i32::MAX as u128) as i32));
    loop {
        match poll(&mut pfd, timeout.as_ref()) {
            Ok(n) => return n > 0,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return false,
        }
    }
}

/// Ends this process at once with `code`: no destructors, no `atexit` handlers, no flush of the
/// stdio buffers (a forked copy must not write its parent's buffered output a second time). What
/// the processes between fork and exec leave with. Async-signal-safe.
///
/// References: _exit(2).
pub(crate) fn exit_now(code: i32) -> ! {
    // libc: rustix's exit_group is in its unstable `runtime` module only.
    // SAFETY: _exit has no preconditions, and leaving without running destructors is safe.
    unsafe { libc::_exit(code) }
}

/// A timeout of `ms` milliseconds (0 to `i32::MAX`, as poll(2) takes them) for rustix's `poll`,
/// which takes a `Timespec`.
pub(crate) fn poll_timeout(ms: i32) -> rustix::event::Timespec {
    rustix::event::Timespec {
        tv_sec: (ms / 1000).into(),
        tv_nsec: (ms % 1000 * 1_000_000).into(),
    }
}

/// Whether a process with this pid exists and is not a zombie.
pub(crate) fn is_alive(pid: u32) -> bool {
    let Some(raw) = libc::pid_t::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // Signal 0 only checks for existence and permission.
    let exists = matches!(
        rustix::process::test_kill_process(raw),
        Ok(()) | Err(rustix::io::Errno::PERM)
    );
    exists && ProcStat::read(pid).is_none_or(|stat| stat.state != 'Z')
}

/// The fields of `/proc/PID/stat` that matter to a daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcStat {
    /// Process state (`R`, `S`, `Z`, ...).
    pub state: char,
    /// Parent process id.
    pub ppid: u32,
    /// Process group id.
    pub pgrp: u32,
    /// Session id.
    pub session: u32,
    /// Controlling terminal (0: none).
    pub tty_nr: i32,
    /// Foreground process group of the terminal (-1: none).
    pub tpgid: i32,
    /// Start time after boot, in clock ticks.
    pub starttime: u64,
}

impl ProcStat {
    /// Reads `/proc/PID/stat`, splitting after the last `)` (the command may contain anything).
    ///
    /// # Example
    /// ```
    /// let stat = daemonic::ProcStat::read(std::process::id()).unwrap();
    /// assert_eq!(stat.state, 'R');
    /// ```
    pub fn read(pid: u32) -> Option<ProcStat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &text[text.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After the command: state(0) ppid(1) pgrp(2) session(3) tty_nr(4) tpgid(5) ...
        // starttime is field 22 of the whole line, index 19 here.
        Some(ProcStat {
            state: f.first()?.chars().next()?,
            ppid: f.get(1)?.parse().ok()?,
            pgrp: f.get(2)?.parse().ok()?,
            session: f.get(3)?.parse().ok()?,
            tty_nr: f.get(4)?.parse().ok()?,
            tpgid: f.get(5)?.parse().ok()?,
            starttime: f.get(19)?.parse().ok()?,
        })
    }
}

/// Whether `pid` is `ancestor` or one of its descendants (following parent links in /proc).
pub(crate) fn is_descendant(pid: u32, ancestor: u32) -> bool {
    let mut current = pid;
    for _ in 0..1024 {
        if current == ancestor {
            return true;
        }
        match ProcStat::read(current) {
            Some(stat) if stat.ppid > 1 && stat.ppid != current => current = stat.ppid,
            _ => return false,
        }
    }
    false
}

/// Every descendant of `pid`, parents before children, from the kernel's
/// `/proc/PID/task/TID/children` lists (no scan of all of `/proc`).
pub(crate) fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    let mut text = String::new();
    while let Some(parent) = queue.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            text.clear();
            let path = task.path().join("children");
            if let Ok(mut file) = std::fs::File::open(&path) {
                use std::io::Read;
                let _ = file.read_to_string(&mut text);
            }
            for child in text
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
            {
                if !found.contains(&child) {
                    found.push(child);
                    queue.push(child);
                }
            }
        }
    }
    found
}

/// The command line of `pid`, its arguments joined by spaces.
///
/// # Example
/// ```
/// let me = daemonic::command_line(std::process::id()).unwrap();
/// assert!(!me.is_empty());
/// ```
pub fn command_line(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let parts: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// How long `pid` has been running, from its start time and the system uptime.
///
/// # Example
/// ```
/// let up = daemonic::uptime(std::process::id()).unwrap();
/// assert!(up < std::time::Duration::from_secs(24 * 3600));
/// ```
pub fn uptime(pid: u32) -> Option<Duration> {
    let stat = ProcStat::read(pid)?;
    let ticks = rustix::param::clock_ticks_per_second();
    if ticks == 0 {
        return None;
    }
    let boot = std::fs::read_to_string("/proc/uptime").ok()?;
    let system: f64 = boot.split_whitespace().next()?.parse().ok()?;
    let started = stat.starttime as f64 / ticks as f64;
    Some(Duration::from_secs_f64((system - started).max(0.0)))
}

/// Returns the heap's free pages to the system now (glibc keeps them until the top of the heap
/// shrinks past a threshold). A keeper lives as long as its service: memory it used for a
/// moment (a directory scan's 32 KiB buffer, a burst's buffers) should not stay its own.
/// Elsewhere a no-op: musl and the BSDs' allocators return memory by themselves.
pub(crate) fn trim_heap() {
    // libc: rustix has no wrapper for malloc_trim (a C library function, not a system call).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Gives back the stack pages below the caller's frame that deeper calls touched before: the
/// keeper's start (decoding the handed-over state) and a log rotation go deeper than its loop
/// does, and every stack page once touched would otherwise stay resident (and its own) for the
/// keeper's whole life. One page below this frame is left alone (the red zone and the next
/// calls). Linux; elsewhere a no-op.
///
/// References: madvise(2) (`MADV_DONTNEED`: private anonymous pages read back as zeros),
/// proc_pid_maps(5).
#[inline(never)]
pub(crate) fn trim_stack() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let marker = 0u8;
        let here = std::hint::black_box(&marker) as *const u8 as usize;
        // libc: rustix's page_size panics where it cannot read the auxiliary vector.
        // SAFETY: sysconf only reads a configuration value.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .ok()
            .filter(|p| p.is_power_of_two())
            .unwrap_or(4096);
        let keep_from = (here & !(page - 1)).saturating_sub(page);
        // The stack mapping's bounds, read once (the keeper calls this at every pause in its
        // program's output): the mapping only ever grows down, so its first lowest address
        // stays inside it, and what lies below that is not ours to drop.
        static STACK: std::sync::OnceLock<Option<(usize, usize)>> = std::sync::OnceLock::new();
        let range = *STACK.get_or_init(|| {
            let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
            let (low, high) = maps
                .lines()
                .find(|line| line.ends_with("[stack]"))?
                .split(' ')
                .next()?
                .split_once('-')?;
            Some((
                usize::from_str_radix(low, 16).ok()?,
                usize::from_str_radix(high, 16).ok()?,
            ))
        });
        // Only on the main thread's stack (another thread's is not that mapping).
        let lowest = range
            .filter(|&(low, high)| low <= here && here < high)
            .map(|(low, _)| low);
        if let Some(lowest) = lowest.filter(|&low| low < keep_from) {
            // SAFETY: [lowest, keep_from) is the part of the main thread's stack mapping (we run
            // on it, checked above) more than a page below the current frame: no live frame or
            // red zone is there, so dropping its contents (the pages read back as zeros when
            // touched again) changes nothing.
            let _ = unsafe {
                rustix::mm::madvise(
                    lowest as *mut std::ffi::c_void,
                    keep_from - lowest,
                    rustix::mm::Advice::LinuxDontNeed,
                )
            };
        }
    }
}
