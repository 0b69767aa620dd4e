//! The `daemonic` command: start any program as a daemon, wait until it is ready, and stop,
//! restart, signal and inspect it. A thin layer over the library; see `src/cli/`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
