//! `daemonic-keeper`: the small image a keeper re-executes into once its program runs, so that
//! a service's resident keeper carries neither the command line's parser nor its heap. It is
//! started by `daemonic start` and `daemonic run`, never by hand.
//!
//! It has no Rust `main`: the standard runtime's start-up (a signal stack, and reading
//! `/proc/self/maps` through stdio to find the main thread's guard page) would stay resident for
//! the service's whole life, and the keeper needs none of it. Arguments still come through
//! `std::env` (glibc hands them to the standard library before `main`).
#![no_main]

use std::os::raw::{c_char, c_int};

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
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    // The runtime we skip would have ignored SIGPIPE: a write to a closed pipe is an error to
    // handle, never the keeper's death.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    match daemonic::keeper_entry() {
        Some(code) => c_int::from(code),
        None => {
            eprintln!(
                "daemonic-keeper: started by `daemonic start` and `daemonic run`, not by hand"
            );
            2
        }
    }
}
