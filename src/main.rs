//! The `daemonic` command: start any program as a daemon, wait until it is ready, and stop,
//! restart, signal and inspect it. A thin layer over the library; see `src/cli/`.
//!
//! It has no Rust `main` (as `daemonic-keeper`): the standard runtime's start-up (a signal
//! stack, a stdio read of `/proc/self/maps` to find the main thread's guard page) is time on
//! the path of every `start`, for nothing this command uses.
#![cfg_attr(not(test), no_main)]

// Under test, the harness's `main` replaces ours: what only `main` reaches is unused there.
#[cfg_attr(test, allow(dead_code))]
mod cli;

// libgcc's unwinder, linked in from libgcc_eh.a rather than loaded as libgcc_s.so at every
// start: with `panic = "abort"` nothing unwinds (the unwinder only walks the stack for a
// panic's backtrace), and loading libgcc_s costs a start-up over 100 us on machines that trap
// CPUID, plus about 12 KiB of private memory in a resident keeper. The release profile's LTO
// puts the standard library's references ahead of this archive, so they resolve to it and
// `--as-needed` drops libgcc_s; a build without LTO links libgcc_s as before.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[link(name = "gcc_eh", kind = "static")]
unsafe extern "C" {}

/// The C entry point.
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: std::os::raw::c_int, _argv: *const *const std::os::raw::c_char) -> i32 {
    // The runtime we skip would have ignored SIGPIPE: a closed stdout is an error to report.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // A keeper re-executing into this binary (when `daemonic-keeper` is not installed beside it).
    let code = daemonic::keeper_entry().unwrap_or_else(cli::main);
    // Nor does anything flush standard output at exit without the runtime.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    i32::from(code)
}
