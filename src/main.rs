//! The `daemonic` command: start any program as a daemon, wait until it is ready, and stop,
//! restart, signal and inspect it. A thin layer over the library; see `src/cli/`.

mod cli;

fn main() -> std::process::ExitCode {
    // A keeper re-executing into this binary (when `daemonic-keeper` is not installed beside it).
    if let Some(code) = daemonic::keeper_entry() {
        return code.into();
    }
    cli::main()
}
