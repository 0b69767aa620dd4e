//! Signal dispositions and the signal mask (daemon(7) steps 2 and 3), and signal names.
//!
//! Rust's runtime ignores `SIGPIPE` at start-up; a daemon that kept that disposition would pass it
//! to every program it executes, which would then see `EPIPE` errors instead of ending when its
//! reader goes away. [`reset_signals`] restores every disposition and unblocks every signal.

use std::io;

/// Sets every signal's disposition to `SIG_DFL` and clears the signal mask. Async-signal-safe.
///
/// With `keep_sigpipe_ignored`, a `SIGPIPE` that was ignored stays ignored: when the calling Rust
/// program itself goes on as the daemon, its runtime ignored `SIGPIPE` at start-up and its code
/// relies on `EPIPE` errors (a write to a closed socket must not kill the daemon). Programs it
/// executes later get the default back from `std::process::Command`. When daemonic executes a
/// program itself, nothing is kept.
///
/// `SIGKILL` and `SIGSTOP` cannot be changed; the real-time signals glibc reserves are reset with
/// the raw system call.
///
/// References: sigaction(2), sigprocmask(2), daemon(7).
pub(crate) fn reset_signals(keep_sigpipe_ignored: bool) -> io::Result<()> {
    let sigpipe_ignored = keep_sigpipe_ignored && is_ignored(libc::SIGPIPE);
    for signo in 1..max_signal() {
        if signo == libc::SIGKILL || signo == libc::SIGSTOP {
            continue;
        }
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
    if sigpipe_ignored {
        // SAFETY: signal() with SIG_IGN has no memory effects.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    }
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

/// Whether `signo` is currently ignored. Async-signal-safe.
fn is_ignored(signo: libc::c_int) -> bool {
    // SAFETY: a null new action only queries; `old` is written by sigaction.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signo, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// glibc's `sigaction` refuses the real-time signals it reserves (32 and 33), but a launcher can
/// still hand them down ignored; the raw system call resets them.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn reset_reserved(signo: libc::c_int) {
    // The kernel's struct sigaction on these architectures: handler, flags, restorer, mask.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
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

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn reset_reserved(_signo: libc::c_int) {}

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
