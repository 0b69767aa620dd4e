//! The `daemonic` command: start any program as a daemon, wait until it is ready, and stop,
//! restart, signal and inspect it. A thin layer over the library; see `src/cli/`.
//!
//! On glibc Linux it has no Rust `main` (as `daemonic-keeper`; see `entry.rs`): the standard
//! runtime's start-up is time on the path of every `start`, for nothing this command uses.
#![cfg_attr(all(not(test), target_os = "linux", target_env = "gnu"), no_main)]

// Under test, the harness's `main` replaces ours: what only `main` reaches is unused there.
#[cfg_attr(test, allow(dead_code))]
mod cli;

#[cfg_attr(test, allow(dead_code))]
mod entry;

entry::entry_point!(run);

#[cfg_attr(test, allow(dead_code))]
fn run() -> u8 {
    // A keeper re-executing into this binary (when `daemonic-keeper` is not installed beside it).
    let code = daemonic::keeper_entry().unwrap_or_else(cli::main);
    // Without the runtime nothing else flushes standard output at a normal exit.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}
