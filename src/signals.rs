//! Signal dispositions and the signal mask (daemon(7) steps 2 and 3), and signal names.
//!
//! Rust's runtime ignores `SIGPIPE` at start-up; a daemon that kept that disposition would pass it
//! to every program it executes, which would then see `EPIPE` errors instead of ending when its
//! reader goes away. [`reset_changed`] (before an exec) and [`reset_signals_keeping_own`] (for a
//! Rust program that goes on as the daemon) restore the dispositions a daemon must not inherit
//! and unblock every signal.

use std::io;

/// For a Rust program that goes on as the daemon: sets signal dispositions to `SIG_DFL` and
/// clears the signal mask, but keeps what the program set itself:
/// - a handler: a handler cannot be inherited across `execve`, so this program (its code, its
///   runtime, glibc) installed it and relies on it;
/// - an ignored `SIGPIPE`: the runtime ignored it at start-up and the program's code relies on
///   `EPIPE` errors (a write to a closed socket must not kill the daemon). Programs it executes
///   later get the default back from `std::process::Command`.
///
/// Other ignored signals are reset: an ignore is inherited across `execve`, so it may well be
/// the launching shell's (`nohup` ignores `SIGHUP`), and a daemon must not keep that. Before an
/// exec, [`reset_changed`] resets everything. Async-signal-safe.
///
/// `SIGKILL` and `SIGSTOP` cannot be changed; the real-time signals glibc reserves are read and
/// reset with the raw system call.
///
/// References: sigaction(2), sigprocmask(2), signal(7), daemon(7).
pub(crate) fn reset_signals_keeping_own() -> io::Result<()> {
    for signo in 1..max_signal() {
        match current_handler(signo) {
            Some(libc::SIG_DFL) | None => {}
            Some(libc::SIG_IGN) if signo != libc::SIGPIPE => {}
            // A handler of this program's own, or its runtime's ignored SIGPIPE.
            Some(_) => continue,
        }
        reset_one(signo);
    }
    unblock_all()
}

/// Every disposition back to the default and the mask cleared, for a program about to be
/// executed (or a keeper), from a caller that knows which dispositions are not the default:
/// the signals in `changed` (bit N-1 for signal N; [`changed_dispositions`] reads them
/// before the fork) and `SIGPIPE`, instead of 64 system calls in a fresh child, where every
/// stack page touched is a copy-on-write fault. Async-signal-safe.
pub(crate) fn reset_changed(changed: u64) -> io::Result<()> {
    let changed = changed | 1 << (libc::SIGPIPE - 1);
    for signo in 1..max_signal().min(65) {
        if changed & 1 << (signo - 1) != 0 {
            reset_one(signo);
        }
    }
    unblock_all()
}

/// The signals whose disposition is not the default here (ignored or caught, or unreadable), as
/// [`reset_changed`] takes them. 64 queries cost about 10 us; `SigIgn` and `SigCgt` from
/// `/proc/self/status` cost 30 us in a fresh process.
pub(crate) fn changed_dispositions() -> u64 {
    let mut changed = 0;
    for signo in 1..max_signal().min(65) {
        if current_handler(signo) != Some(libc::SIG_DFL) {
            changed |= 1 << (signo - 1);
        }
    }
    changed
}

/// `signo` back to `SIG_DFL` (not SIGKILL or SIGSTOP, which cannot change). Async-signal-safe.
fn reset_one(signo: libc::c_int) {
    if signo == libc::SIGKILL || signo == libc::SIGSTOP {
        return;
    }
    // libc: rustix has no public wrapper for sigaction or sigprocmask (only its unstable
    // `runtime` module, meant for implementing a C library).
    // SAFETY: a zeroed sigaction with sa_sigaction = SIG_DFL and an empty mask is a valid
    // argument; we pass no old-action pointer.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signo, &action, std::ptr::null_mut())
    };
    if rc != 0 {
        reset_reserved(signo);
    }
}

/// Runs `run` with `SIGCHLD` at its default disposition, then puts back what the process was
/// given: where a parent left it ignored (or `SA_NOCLDWAIT`), the kernel reaps the children
/// itself and a wait for one (a command `run` makes, such as `getent`) fails with ECHILD.
pub(crate) fn with_children_waitable<T>(run: impl FnOnce() -> T) -> T {
    // libc: rustix has no public wrapper for sigaction.
    // SAFETY: a null new action only queries; `old` is written by sigaction.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    let read = unsafe { libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old) } == 0;
    let reaped =
        read && (old.sa_sigaction == libc::SIG_IGN || old.sa_flags & libc::SA_NOCLDWAIT != 0);
    if reaped {
        reset_one(libc::SIGCHLD);
    }
    let result = run();
    if reaped {
        // SAFETY: `old` is the action sigaction wrote above, put back unchanged.
        unsafe { libc::sigaction(libc::SIGCHLD, &old, std::ptr::null_mut()) };
    }
    result
}

/// Clears the signal mask. Async-signal-safe.
fn unblock_all() -> io::Result<()> {
    // SAFETY: sigemptyset initialises the set; sigprocmask reads it.
    let ret = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut())
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The current disposition of `signo` (`SIG_DFL`, `SIG_IGN` or a handler's address), or `None`
/// when it cannot be read. Async-signal-safe.
pub(crate) fn current_handler(signo: libc::c_int) -> Option<libc::sighandler_t> {
    // libc: rustix has no public wrapper for sigaction.
    // SAFETY: a null new action only queries; `old` is written by sigaction.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(signo, std::ptr::null(), &mut old) == 0 {
            return Some(old.sa_sigaction);
        }
    }
    reserved_handler(signo)
}

/// The kernel's struct sigaction on the architectures where glibc's reserved signals are
/// handled: handler, flags, restorer, mask (both define `SA_RESTORER`).
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// glibc's `sigaction` refuses the real-time signals it reserves (32 and 33), but a launcher can
/// still hand them down ignored; the raw system call resets them.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn reset_reserved(signo: libc::c_int) {
    // libc: rustix has no public wrapper for rt_sigaction.
    let action = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: rt_sigaction reads `action` (a valid SIG_DFL action) and the mask size of 8 bytes
    // matches the kernel's sigset; no old action is written.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signo,
            &action as *const KernelSigaction,
            std::ptr::null_mut::<KernelSigaction>(),
            8usize,
        );
    }
}

/// The disposition of a signal glibc's `sigaction` refuses, read with the raw system call.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn reserved_handler(signo: libc::c_int) -> Option<libc::sighandler_t> {
    // libc: rustix has no public wrapper for rt_sigaction.
    let mut old = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: with a null new action rt_sigaction only writes the old one into `old`, a
    // KernelSigaction of the kernel's layout; the mask size of 8 bytes matches the kernel's.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signo,
            std::ptr::null::<KernelSigaction>(),
            &mut old as *mut KernelSigaction,
            8usize,
        )
    };
    (rc == 0).then_some(old.handler)
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn reset_reserved(_signo: libc::c_int) {}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn reserved_handler(_signo: libc::c_int) -> Option<libc::sighandler_t> {
    None
}

/// One past the highest signal number (`_NSIG`).
fn max_signal() -> libc::c_int {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        libc::SIGRTMAX() + 1
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        32
    }
}

const NAMES: &[(&str, libc::c_int)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("SYS", libc::SIGSYS),
];

/// Parses a signal given as a name (`TERM`, `SIGTERM`, `term`) or a number (`15`).
///
/// # Example
/// ```
/// assert_eq!(daemonic::parse_signal("SIGHUP"), Some(libc::SIGHUP));
/// assert_eq!(daemonic::parse_signal("9"), Some(libc::SIGKILL));
/// assert_eq!(daemonic::parse_signal("NOPE"), None);
/// ```
pub fn parse_signal(text: &str) -> Option<libc::c_int> {
    if let Ok(n) = text.parse::<libc::c_int>() {
        return (1..max_signal()).contains(&n).then_some(n);
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    NAMES.iter().find(|(n, _)| *n == name).map(|&(_, s)| s)
}

/// The conventional name of a signal (`TERM`), or its number as text.
///
/// # Example
/// ```
/// assert_eq!(daemonic::signal_name(libc::SIGKILL), "KILL");
/// ```
pub fn signal_name(signo: libc::c_int) -> String {
    NAMES
        .iter()
        .find(|&&(_, s)| s == signo)
        .map_or_else(|| signo.to_string(), |(n, _)| (*n).to_string())
}

/// Blocks `signals` and returns a non-blocking, close-on-exec signalfd for them, with the mask
/// as it was before (to restore it when the caller is done).
///
/// References: signalfd(2), sigprocmask(2).
pub(crate) fn block_into_signalfd(
    signals: &[libc::c_int],
) -> io::Result<(std::os::fd::OwnedFd, libc::sigset_t)> {
    // libc: rustix has no wrapper for signalfd, nor a public one for sigprocmask.
    // SAFETY: sigemptyset/sigaddset initialise local sets; sigprocmask and signalfd read them and
    // write only `old`; the new descriptor is owned at once.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &signo in signals {
            libc::sigaddset(&mut set, signo);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            let err = io::Error::last_os_error();
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            return Err(err);
        }
        Ok((std::os::fd::FromRawFd::from_raw_fd(fd), old))
    }
}

/// The next signal waiting on a (non-blocking) signalfd, if any.
///
/// References: signalfd(2).
pub(crate) fn read_signalfd(fd: std::os::fd::BorrowedFd<'_>) -> Option<libc::c_int> {
    let mut info = [0u8; 128];
    let n = rustix::io::read(fd, &mut info).ok()?;
    // ssi_signo is the structure's first field.
    (n == info.len()).then(|| i32::from_ne_bytes([info[0], info[1], info[2], info[3]]))
}
