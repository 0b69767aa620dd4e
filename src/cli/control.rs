//! `daemonic stop`, `restart`, `signal` and `notify`.

use std::time::Duration;

use clap::Args;
use daemonic::stop::{self, Schedule, Stopped};

use super::{Failure, Target, say};

/// Stop a service: its keeper runs the schedule against the program, its process group and
/// every process beneath it until nothing is left, then removes the pidfile and exits. (A
/// program that daemonized itself with the library, without a keeper, is signalled through a
/// pidfd after checking it holds the pidfile's lock.)
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  daemonic stop -n web
  daemonic stop -p /run/worker.pid --retry TERM/30/KILL/5
  daemonic stop -n api --signal INT --retry 20")]
pub struct StopArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    report: super::Reporting,
    /// The first signal to send [default: TERM].
    #[arg(short, long, value_name = "SIG", value_parser = parse_signal, add = super::complete::signals())]
    signal: Option<i32>,
    /// What to send and how long to wait: SIG/SECS/SIG/SECS..., or SECS for TERM/SECS/KILL/SECS.
    #[arg(short, long, value_name = "SCHEDULE", default_value = "TERM/10/KILL/5", allow_hyphen_values = true, add = super::complete::schedules())]
    retry: Schedule,
}

/// Restart a running service in place: its keeper checks that the program can still be
/// started, stops it (the whole service) with the schedule, and starts it again at once, with
/// exactly what it was started with. Returns once the new program is up (ready, if it speaks a
/// readiness protocol). Nothing is read back from files: a service that is not running is
/// started with `daemonic start`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  daemonic restart -n web\n  daemonic restart -n api --retry INT/30/KILL/5"
)]
pub struct RestartArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    report: super::Reporting,
    /// How to stop the running program: SIG/SECS/SIG/SECS..., or SECS for TERM/SECS/KILL/SECS.
    #[arg(short, long, value_name = "SCHEDULE", default_value = "TERM/10/KILL/5", allow_hyphen_values = true, add = super::complete::schedules())]
    retry: Schedule,
    /// Fail if the new program is not up after SECS.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_timeout)]
    ready_timeout: Duration,
}

/// Send a signal to a service's program (or, with --group, its whole process group).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  daemonic signal -n web HUP\n  daemonic signal -p /run/worker.pid USR1\n  daemonic signal -n app --group TERM"
)]
pub struct SignalArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    report: super::Reporting,
    /// Send it to the program's whole process group.
    #[arg(long)]
    group: bool,
    /// The signal, by name (HUP, SIGHUP) or number.
    #[arg(value_name = "SIGNAL", value_parser = parse_signal, add = super::complete::signals())]
    signal: i32,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 10.0 * 365.0 * 86400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "a positive number of seconds, at most ten years".to_string())
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
    args.report.outcome(stop_service(args))
}

fn stop_service(args: &StopArgs) -> Result<u8, Failure> {
    let report = &args.report;
    let label = args.target.label();
    let pidfile = args.target.pidfile()?;
    let schedule = match args.signal {
        Some(signal) => args.retry.clone().with_first_signal(signal),
        None => args.retry.clone(),
    };
    if report.test {
        return Ok(match super::holder(&pidfile)? {
            Some((holder, _)) => {
                report.done(format_args!(
                    "daemonic stop: would stop {label} ({holder}) and everything beneath it: {schedule}"
                ));
                0
            }
            None => {
                report.note(format_args!(
                    "daemonic stop: {label} is not running: nothing to do"
                ));
                report.nothing_done()
            }
        });
    }
    match stop::stop(&pidfile, &schedule).map_err(|e| Failure::from_library(&e))? {
        Stopped::NotRunning(stale) => {
            report.note(format_args!(
                "daemonic stop: {label} is not running{}",
                if stale {
                    " (removed its stale pidfile)"
                } else {
                    ""
                }
            ));
            Ok(report.nothing_done())
        }
        // Stopped, and outcomes a later library may add. A pidfile no one holds is left only
        // where it could not be removed (a read-only directory); say so. (One a new start
        // holds is that start's.)
        stopped => {
            if let Stopped::Stopped(pid) = stopped {
                report.done(format_args!("daemonic stop: {label} stopped (pid {pid})"));
            }
            if daemonic::PidfileState::read(&pidfile).is_ok_and(|s| s.exists() && !s.is_locked()) {
                say!(
                    "daemonic stop: {label} stopped, but its pidfile {} could not be removed",
                    pidfile.display()
                );
            }
            Ok(0)
        }
    }
}

pub fn restart(args: &RestartArgs) -> Result<u8, Failure> {
    args.report.outcome(restart_service(args))
}

fn not_running(label: &str) -> Failure {
    Failure::new(
        7,
        format!(
            "{label} is not running; start it with daemonic start (restart replays nothing from files)"
        ),
    )
}

fn restart_service(args: &RestartArgs) -> Result<u8, Failure> {
    let report = &args.report;
    let label = args.target.label();
    let pidfile = args.target.pidfile()?;
    if report.test {
        // Only a keeper restarts in place.
        let holder = match super::holder(&pidfile)? {
            Some((holder, true)) => holder,
            _ => return Err(not_running(&label)),
        };
        report.done(format_args!(
            "daemonic restart: would restart {label} ({holder}), stopping it with {}",
            args.retry
        ));
        return Ok(0);
    }
    match stop::restart(&pidfile, &args.retry, args.ready_timeout) {
        Ok(pid) => {
            report.done(format_args!(
                "daemonic restart: {label} restarted (pid {pid})"
            ));
            Ok(0)
        }
        Err(err) if err.kind() == daemonic::ErrorKind::NotRunning => Err(not_running(&label)),
        Err(err) => Err(Failure::from_library(&err)),
    }
}

pub fn signal(args: &SignalArgs) -> Result<u8, Failure> {
    args.report.outcome(send(args))
}

fn send(args: &SignalArgs) -> Result<u8, Failure> {
    let report = &args.report;
    let label = args.target.label();
    let pidfile = args.target.pidfile()?;
    let name = daemonic::signal_name(args.signal);
    let whom = if args.group {
        "the process group of "
    } else {
        ""
    };
    if report.test {
        let (holder, _) = super::holder(&pidfile)?
            .ok_or_else(|| Failure::new(7, format!("{label} is not running")))?;
        report.done(format_args!(
            "daemonic signal: would send {name} to {whom}{label} ({holder})"
        ));
        return Ok(0);
    }
    let sent = if args.group {
        stop::signal_group(&pidfile, args.signal)
    } else {
        stop::signal(&pidfile, args.signal)
    };
    let pid = sent.map_err(|e| Failure::from_library(&e))?;
    report.done(format_args!(
        "daemonic signal: sent {name} to {whom}{label} (pid {pid})"
    ));
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
