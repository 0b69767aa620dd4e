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
