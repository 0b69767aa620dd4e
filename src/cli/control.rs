//! `daemonic stop`, `restart`, `signal` and `notify`.

use clap::{Args, Parser};
use daemonic::stop::{self, Schedule, Stopped};

use super::record::Record;
use super::start;
use super::{Failure, Target};

/// Stop a daemon: signal the process that holds its pidfile's lock (through a pidfd), wait
/// until it is gone, and remove the pidfile.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  daemonic stop -n web
  daemonic stop -p /run/worker.pid --retry TERM/30/KILL/5
  daemonic stop -n api --signal INT --retry 20")]
pub struct StopArgs {
    #[command(flatten)]
    target: Target,
    /// The first signal to send [default: TERM].
    #[arg(short, long, value_name = "SIG", value_parser = parse_signal)]
    signal: Option<i32>,
    /// What to send and how long to wait: SIG/SECS/SIG/SECS..., or SECS for TERM/SECS/KILL/SECS.
    #[arg(short, long, value_name = "SCHEDULE", default_value = "TERM/10/KILL/5")]
    retry: Schedule,
}

/// Stop a daemon (if it runs) and start it again as it was started.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  daemonic restart -n web")]
pub struct RestartArgs {
    #[command(flatten)]
    target: Target,
}

/// Send a signal to a daemon.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  daemonic signal -n web HUP\n  daemonic signal -p /run/worker.pid USR1"
)]
pub struct SignalArgs {
    #[command(flatten)]
    target: Target,
    /// The signal, by name (HUP, SIGHUP) or number.
    #[arg(value_name = "SIGNAL", value_parser = parse_signal)]
    signal: i32,
}

/// Send sd_notify state to $NOTIFY_SOCKET, for daemons written in shell.
///
/// Waits until the receiver has read the message (BARRIER=1), so the sender is still alive to
/// be checked by its credentials.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  daemonic notify READY=1\n  daemonic notify 'STATUS=loading cache'"
)]
pub struct NotifyArgs {
    /// KEY=VALUE assignments, such as READY=1 or STATUS=text.
    #[arg(required = true, value_name = "KEY=VALUE")]
    assignments: Vec<String>,
}

fn parse_signal(text: &str) -> Result<i32, String> {
    daemonic::parse_signal(text)
        .ok_or_else(|| "a signal name (TERM, HUP, USR1) or number".to_string())
}

pub fn stop(args: &StopArgs) -> Result<u8, Failure> {
    let pidfile = args.target.pidfile()?;
    let schedule = match args.signal {
        Some(signal) => args.retry.clone().with_first_signal(signal),
        None => args.retry.clone(),
    };
    match stop::stop(&pidfile, &schedule).map_err(|e| Failure::from_library(&e))? {
        Stopped::Stopped(_) => {}
        Stopped::NotRunning(stale) => eprintln!(
            "daemonic stop: {} is not running{}",
            args.target.label(),
            if stale {
                " (removed its stale pidfile)"
            } else {
                ""
            }
        ),
    }
    Ok(0)
}

pub fn restart(args: &RestartArgs) -> Result<u8, Failure> {
    let pidfile = args.target.pidfile()?;
    let Some(record) = Record::load(&pidfile) else {
        return Err(Failure::new(
            1,
            format!(
                "no record of how {} was started (looked for {}.json); use daemonic start",
                args.target.label(),
                pidfile.display()
            ),
        ));
    };
    let mut replay = vec!["daemonic".to_string(), "start".to_string()];
    replay.extend(record.args.iter().cloned());
    let parsed = super::Cli::try_parse_from(&replay).map_err(|e| {
        Failure::new(
            1,
            format!("the recorded start arguments no longer parse: {e}"),
        )
    })?;
    let super::Command::Start(mut start_args) = parsed.command else {
        return Err(Failure::new(1, "the record does not describe a start"));
    };
    start_args.target.rundir = args.target.rundir.clone();
    stop::stop(&pidfile, &Schedule::default()).map_err(|e| Failure::from_library(&e))?;
    std::env::set_current_dir(&record.cwd).map_err(|e| {
        Failure::io(
            format!("the recorded directory {}", record.cwd.display()),
            &e,
        )
    })?;
    start::run(&start_args, Some(&record))
}

pub fn signal(args: &SignalArgs) -> Result<u8, Failure> {
    let pidfile = args.target.pidfile()?;
    stop::signal(&pidfile, args.signal).map_err(|e| Failure::from_library(&e))?;
    Ok(0)
}

pub fn notify(args: &NotifyArgs) -> Result<u8, Failure> {
    let state = args.assignments.join("\n");
    match daemonic::notify_and_wait(&state) {
        Ok(true) => Ok(0),
        Ok(false) => Err(Failure::new(
            1,
            "NOTIFY_SOCKET is not set: not started with --notify",
        )),
        Err(err) => Err(Failure::io("$NOTIFY_SOCKET".into(), &err)),
    }
}
