//! The command line: one clap derive struct per subcommand, the exit codes, and dispatch. What a
//! subcommand does lives in the library; this layer resolves names to pidfiles, prints, and
//! maps errors to the LSB init-script exit codes.

mod complete;
mod control;
mod envfile;
mod inspect;
mod logs;
mod man;
mod quick;
mod rundir;
mod start;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes (LSB init-script conventions):
  run: the program's exit status (128+N when killed by signal N)
  start, stop, restart, signal, list:
    0  success (starting a running daemon and stopping a stopped one are successes)
    1  generic error (including: not ready in time, still running after the stop schedule)
    2  invalid arguments (unknown user or group, missing directory, bad value)
    4  insufficient privilege
    5  program not installed (missing or not executable)
    7  not running (signal, restart)
  status:
    0  running (starting, running, ready, stopping)
    1  dead: not running but should be (backoff, failed, exited with a failure)
    3  not running (stopped, exited with status 0, never started)
    4  unknown (the pidfile or its record cannot be read)
  start, stop, restart, signal with --exit-codes ssd (start-stop-daemon's):
    0  done; 1 nothing was done (already running, not running); 2 still running after the
    stop schedule; 3 any other error, usage errors included";

/// Start any program as a correct Unix daemon under a small keeper that restarts it, stops all
/// of it and knows its state; wait until it is ready; then stop, restart, signal and inspect it.
#[derive(Debug, Parser)]
#[command(name = "daemonic", version, after_long_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Start(Box<start::StartArgs>),
    Run(Box<start::RunArgs>),
    Stop(control::StopArgs),
    Restart(control::RestartArgs),
    Status(inspect::StatusArgs),
    Signal(control::SignalArgs),
    List(inspect::ListArgs),
    Notify(control::NotifyArgs),
    #[command(visible_alias = "rotate")]
    Reopen(logs::ReopenArgs),
    Log(logs::ReadArgs),
    Logger(logs::LoggerArgs),
    Completions(complete::CompletionsArgs),
    Man(man::ManArgs),
}

/// Which daemon: by name (pidfile in the run directory) or by pidfile.
#[derive(Debug, Clone, Args)]
#[group(skip)]
pub struct Target {
    /// The daemon's name; its pidfile is RUNDIR/NAME.pid.
    #[arg(
        short,
        long,
        required_unless_present = "pidfile",
        conflicts_with = "pidfile",
        add = complete::daemon_names()
    )]
    pub name: Option<String>,
    /// The pidfile (instead of a name).
    #[arg(short, long, value_name = "PATH")]
    pub pidfile: Option<PathBuf>,
    /// Where named daemons' pidfiles live [default: /run/daemonic for root, else
    /// $XDG_RUNTIME_DIR/daemonic, else /tmp/daemonic-UID].
    #[arg(long, value_name = "DIR", env = "DAEMONIC_RUNDIR", value_hint = clap::ValueHint::DirPath)]
    pub rundir: Option<PathBuf>,
}

/// Writes a line to stderr. A closed stderr (`start … 2>&1 | true`) is no reason to abort: the
/// command goes on (a launcher that died mid-wait would leave a half-started daemon).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Writes a line to stdout; when stdout is closed (`daemonic list | head -1`), ends the command
/// quietly with status 0, as ripgrep and fd do.
macro_rules! show {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(err) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::cli::closed_stdout(&err);
        }
    }};
}

pub(crate) use {say, show};

/// A write to stdout failed: quietly done if the reader left, else a message.
pub fn closed_stdout(err: &std::io::Error) -> ! {
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    say!("daemonic: stdout: {err}");
    std::process::exit(1)
}

/// Text that came from a daemon (`STATUS=`, its command line), shown with control characters
/// escaped, as `systemctl status` does: a daemon must not drive the admin's terminal.
pub fn escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// How `start`, `stop`, `restart` and `signal` report, and start-stop-daemon's conventions for
/// scripts that rely on them.
#[derive(Debug, Clone, Args)]
pub struct Reporting {
    /// Print errors only.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also say what was done, with pids.
    #[arg(short, long)]
    pub verbose: bool,
    /// Check everything, print what would be done, and do nothing (the exit status is the one
    /// the command would have).
    #[arg(long)]
    pub test: bool,
    /// lsb: nothing to do is success, as init scripts want (starting a running service, stopping
    /// a stopped one). ssd: start-stop-daemon's: 0 done, 1 nothing was done (or not running), 2
    /// still running after the stop schedule, 3 any other error.
    #[arg(long, value_name = "STYLE", default_value = "lsb", value_enum)]
    pub exit_codes: ExitCodes,
}

/// Which exit status convention a command follows (`--exit-codes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExitCodes {
    /// The LSB init-script codes (the default).
    Lsb,
    /// start-stop-daemon's codes.
    Ssd,
}

impl Reporting {
    /// The status when there was nothing to do.
    pub fn nothing_done(&self) -> u8 {
        match self.exit_codes {
            ExitCodes::Lsb => 0,
            ExitCodes::Ssd => 1,
        }
    }

    /// A line that says how things are, unless --quiet.
    pub fn note(&self, line: std::fmt::Arguments<'_>) {
        if !self.quiet {
            say!("{line}");
        }
    }

    /// A line that says what was done, with --verbose (and --test, where it is the point).
    pub fn done(&self, line: std::fmt::Arguments<'_>) {
        if self.verbose || self.test {
            say!("{line}");
        }
    }

    /// The outcome in the chosen convention.
    pub fn outcome(&self, result: Result<u8, Failure>) -> Result<u8, Failure> {
        match (self.exit_codes, result) {
            (ExitCodes::Lsb, result) | (ExitCodes::Ssd, result @ Ok(_)) => result,
            (ExitCodes::Ssd, Err(mut failure)) => {
                failure.code = match failure.code {
                    7 => 1,
                    _ if failure.still_running => 2,
                    _ => 3,
                };
                Err(failure)
            }
        }
    }
}

/// Who holds `pidfile` now, for dry runs: "pid N" (or "being started") and whether a keeper
/// runs it (what `restart` needs); `None` when no one does. A path that is no regular file
/// fails as the real command would.
pub fn holder(pidfile: &std::path::Path) -> Result<Option<(String, bool)>, Failure> {
    if std::fs::symlink_metadata(pidfile).is_ok_and(|m| !m.is_file()) {
        return Err(Failure::new(
            2,
            format!("pidfile {}: not a regular file", pidfile.display()),
        ));
    }
    let state = daemonic::PidfileState::read(pidfile).map_err(|e| Failure::from_library(&e))?;
    if !state.is_locked() {
        return Ok(None);
    }
    let supervised = daemonic::ServiceStatus::read(pidfile)
        .ok()
        .flatten()
        .is_some_and(|s| s.keeper_alive());
    let who = state
        .pid()
        .map_or_else(|| "being started".to_string(), |p| format!("pid {p}"));
    Ok(Some((who, supervised)))
}

/// A program and its arguments as a shell would take them back (quoted where needed, control
/// characters escaped).
pub fn command_line(program: &std::path::Path, args: &[std::ffi::OsString]) -> String {
    let word = |w: &std::ffi::OsStr| {
        let w = escape(&w.to_string_lossy());
        let plain = !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
        if plain {
            w
        } else {
            format!("'{}'", w.replace('\'', "'\\''"))
        }
    };
    std::iter::once(word(program.as_os_str()))
        .chain(args.iter().map(|a| word(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A failure of this layer: the exit code and one line for stderr.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
    /// A stop schedule ran out with the service still running (start-stop-daemon's 2).
    pub still_running: bool,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            still_running: false,
        }
    }

    /// An I/O failure on `what`: code 4 for permission problems, else 1.
    pub fn io(what: String, err: &std::io::Error) -> Failure {
        let code = match err.kind() {
            std::io::ErrorKind::PermissionDenied => 4,
            _ => 1,
        };
        Failure::new(code, format!("{what}: {err}"))
    }

    /// A library error, with the code its kind maps to.
    pub fn from_library(err: &daemonic::Error) -> Failure {
        use daemonic::ErrorKind as K;
        let code = match err.kind() {
            K::InvalidInput => 2,
            K::PermissionDenied => 4,
            K::NotInstalled => 5,
            K::NotRunning => 7,
            K::Interrupted(signal) => (128 + signal.clamp(0, 127)) as u8,
            _ => 1,
        };
        let mut failure = Failure::new(code, err.to_string());
        failure.still_running = err.kind() == K::StillRunning;
        failure
    }
}

/// The command line. `start` is parsed by hand in its common shapes (`quick`), and otherwise by
/// its own definition alone: building every subcommand's options first is a tenth of a
/// millisecond on the path of each start, whose latency is measured against start-stop-daemon.
/// Help, errors and results are the same.
fn parse() -> Cli {
    use clap::FromArgMatches;
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(cli) = quick::parse(&argv) {
        return cli;
    }
    if argv.get(1).is_some_and(|first| first == "start") {
        let parsed = start_only()
            .try_get_matches_from(&argv)
            .and_then(|matches| Cli::from_arg_matches(&matches));
        return parsed.unwrap_or_else(|err| usage_error(err));
    }
    Cli::try_parse().unwrap_or_else(|err| usage_error(err))
}

/// The command with `start` as its only subcommand: what `parse` gives clap for a `start` line.
fn start_only() -> clap::Command {
    let start = <start::StartArgs as Args>::augment_args(clap::Command::new("start"));
    clap::Command::new("daemonic")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand(start)
}

/// Ends with clap's message: help and version with 0, a usage error with 2, or with 3 under
/// `--exit-codes ssd` (start-stop-daemon's "other error": its 2 means still running).
fn usage_error(err: clap::Error) -> ! {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let ssd = args.iter().any(|a| a == "--exit-codes=ssd")
        || args
            .windows(2)
            .any(|w| w[0] == "--exit-codes" && w[1] == "ssd");
    if ssd && err.use_stderr() {
        let _ = err.print();
        std::process::exit(3);
    }
    err.exit()
}

/// Runs the command; returns its exit status.
pub fn main() -> u8 {
    if let Some(code) = complete::answer() {
        return code;
    }
    let cli = parse();
    if matches!(cli.command, Command::Man(_) | Command::Completions(_)) {
        // Written straight to stdout: a closed pipe ends them quietly.
        // SAFETY: SIG_DFL has no handler to run.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let (verb, result) = match cli.command {
        Command::Start(args) => ("start", start::run(&args)),
        Command::Run(args) => ("run", start::foreground(&args)),
        Command::Stop(args) => ("stop", control::stop(&args)),
        Command::Restart(args) => ("restart", control::restart(&args)),
        Command::Status(args) => ("status", inspect::status(&args)),
        Command::Signal(args) => ("signal", control::signal(&args)),
        Command::List(args) => ("list", inspect::list(&args)),
        Command::Notify(args) => ("notify", control::notify(&args)),
        Command::Reopen(args) => ("reopen", logs::reopen(&args)),
        Command::Log(args) => ("log", logs::read(&args)),
        Command::Logger(args) => ("logger", logs::logger(&args)),
        Command::Completions(args) => ("completions", complete::registration(&args)),
        Command::Man(args) => ("man", man::run(&args)),
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            say!("daemonic {verb}: {}", failure.message);
            failure.code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn start_parsed_alone_has_the_same_help_as_in_the_whole_tree() {
        let mut whole = Cli::command();
        let whole = whole
            .find_subcommand_mut("start")
            .map(|c| c.render_long_help().to_string());
        let mut alone = start_only();
        let alone = alone
            .find_subcommand_mut("start")
            .map(|c| c.render_long_help().to_string());
        assert!(whole.is_some());
        assert_eq!(whole, alone);
    }
}
