//! What both binaries do at start in place of the standard runtime, which they skip on glibc
//! Linux (`#![no_main]`: its signal stack and its stdio read of `/proc/self/maps` cost every
//! `start` time, and every resident keeper memory). Only there: elsewhere the standard library
//! gets its arguments only through its own `main`, so the binaries keep it.

/// Defines the binary's entry point around `$run` (which returns the exit status): the C `main`
/// on glibc Linux (after [`init`]), the standard `main` elsewhere.
macro_rules! entry_point {
    ($run:path) => {
        /// The C entry point (glibc Linux).
        #[cfg(all(not(test), target_os = "linux", target_env = "gnu"))]
        #[unsafe(no_mangle)]
        extern "C" fn main(
            _argc: std::os::raw::c_int,
            _argv: *const *const std::os::raw::c_char,
        ) -> i32 {
            entry::init();
            let code = $run();
            entry::leave(code)
        }

        /// Elsewhere, the standard `main`.
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        fn main() -> std::process::ExitCode {
            std::process::ExitCode::from($run())
        }
    };
}
pub(crate) use entry_point;

/// Opens `/dev/null` on any of descriptors 0-2 that is closed (otherwise the first file opened
/// takes that number, and a message meant for stderr lands in a pidfile or a log), and ignores
/// `SIGPIPE` (a write to a closed pipe is an error to report, not death): as the runtime does.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
pub fn init() {
    use rustix::fs::{Mode, OFlags};
    for fd in 0..3 {
        // libc: rustix's fcntl_getfd takes a `BorrowedFd`, which must be open: this asks whether
        // it is.
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // The lowest free number: `fd` itself, as 0-2 are filled in order. Not close-on-exec
            // (a standard stream), and the process's for its whole life.
            match rustix::fs::open(c"/dev/null", OFlags::RDWR, Mode::empty()) {
                Ok(null) => std::mem::forget(null),
                // As the runtime does: without standard descriptors nothing can be trusted.
                Err(_) => std::process::abort(),
            }
        }
    }
    // libc: rustix has no public wrapper for signal or sigaction.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Ends the process with `code` at once (`_exit`), after `run` has flushed what it wrote: C's
/// `exit` would run the C library's exit handlers and every shared object's destructors, for
/// nothing either binary registered, and page their code in on the path of every `start`.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
pub fn leave(code: u8) -> ! {
    // SAFETY: _exit ends the process; `run` flushed standard output, and nothing else of ours
    // waits for an exit handler.
    unsafe { libc::_exit(i32::from(code)) }
}

// libgcc's unwinder, linked in from libgcc_eh.a rather than loaded as libgcc_s.so at every
// start: with `panic = "abort"` nothing unwinds (the unwinder only walks the stack for a
// panic's backtrace), and loading libgcc_s costs a start-up over 100 us on machines that trap
// CPUID, plus about 12 KiB of private memory in a resident keeper. The release profile's LTO
// puts the standard library's references ahead of this archive, so they resolve to it and
// `--as-needed` drops libgcc_s. Not with `panic = "unwind"` (tests): one unwinder only.
#[cfg(all(target_os = "linux", target_env = "gnu", panic = "abort"))]
#[link(name = "gcc_eh", kind = "static")]
unsafe extern "C" {}
