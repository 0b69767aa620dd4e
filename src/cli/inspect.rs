//! `daemonic status` and `daemonic list`: the keeper's status record, read without asking
//! anyone (a lock probe and one small file), so any user who may read the run directory can.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::Args;
use daemonic::stop::{Holder, holder};
use daemonic::{Exit, ServiceState, ServiceStatus};
use serde::Serialize;

use super::{Failure, escape, rundir, show};

const STATUS_HELP: &str = "\
Examples:
  daemonic status -n web
  daemonic status -p /run/worker.pid --json

Exit status (LSB):
  0  running (starting, running, ready, or stopping)
  1  dead: not running but should be (between restarts after a failure; exited with a failure;
     gave up; its keeper was killed), or a daemon without a keeper died leaving its pidfile
  3  not running (never started, stopped, or exited with status 0)
  4  unknown (the pidfile or record cannot be read)

--json prints one object; these keys are a stable interface:
  name, pidfile, state (starting|running|ready|backoff|stopping|exited|failed|stopped|dead|unknown),
  pid (the program's, or null), keeper_pid (or null), restarts, ready, readiness (exec|notify|fd N),
  last_exit ({\"code\": N} or {\"signal\": \"NAME\", \"core\": bool}, with \"after_secs\"; or null),
  since (seconds since the epoch), next_restart_in_secs, reason, status_text, log_dir,
  log_dropped, syslog_dropped, command, problem";

/// Show a service's state: program and keeper pids, uptime, restarts, last exit, readiness.
#[derive(Debug, Args)]
#[command(after_help = STATUS_HELP)]
pub struct StatusArgs {
    #[command(flatten)]
    target: super::Target,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// List every service in the run directory with its state.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  daemonic list\n  daemonic list --json --rundir /run/myapp")]
pub struct ListArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// The run directory to list [default: as for --name].
    #[arg(long, value_name = "DIR", env = "DAEMONIC_RUNDIR", value_hint = clap::ValueHint::DirPath)]
    rundir: Option<PathBuf>,
}

/// How the last run ended, as JSON.
#[derive(Debug, Serialize)]
struct LastExit {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    core: Option<bool>,
    after_secs: f64,
}

/// What status and list report about one service.
#[derive(Debug, Serialize)]
struct Report {
    name: Option<String>,
    pidfile: PathBuf,
    state: &'static str,
    pid: Option<u32>,
    keeper_pid: Option<u32>,
    restarts: u32,
    ready: Option<bool>,
    /// exec, notify, or fd N.
    readiness: Option<String>,
    last_exit: Option<LastExit>,
    since: Option<f64>,
    next_restart_in_secs: Option<f64>,
    reason: Option<&'static str>,
    status_text: Option<String>,
    /// The log directory (`--log`), and the lines it dropped because the disk was full.
    log_dir: Option<PathBuf>,
    log_dropped: Option<u64>,
    /// Lines syslog could not take.
    syslog_dropped: u64,
    command: Option<String>,
    uptime_secs: Option<u64>,
    /// Why the state is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
    #[serde(skip)]
    code: u8,
}

impl Report {
    fn of(name: Option<String>, pidfile: &Path) -> Report {
        let mut report = Report {
            name,
            pidfile: pidfile.to_path_buf(),
            state: "unknown",
            pid: None,
            keeper_pid: None,
            restarts: 0,
            ready: None,
            readiness: None,
            last_exit: None,
            since: None,
            next_restart_in_secs: None,
            reason: None,
            status_text: None,
            log_dir: None,
            log_dropped: None,
            syslog_dropped: 0,
            command: None,
            uptime_secs: None,
            problem: None,
            code: 4,
        };
        match ServiceStatus::read(pidfile) {
            Ok(Some(status)) => report.fill_from(&status),
            Ok(None) => report.fill_from_lock(pidfile),
            Err(err) => report.problem = Some(err.to_string()),
        }
        report
    }

    fn fill_from(&mut self, status: &ServiceStatus) {
        let state = status.state();
        self.state = state.as_str();
        self.pid = status.pid();
        self.keeper_pid = status.keeper_alive().then_some(status.keeper_pid());
        self.restarts = status.restarts();
        self.ready = Some(status.is_ready());
        self.readiness = Some(match status.readiness() {
            daemonic::Readiness::Exec => "exec".to_string(),
            daemonic::Readiness::Notify => "notify".to_string(),
            daemonic::Readiness::Fd(fd) => format!("fd {fd}"),
            _ => "unknown".to_string(),
        });
        self.since = status
            .since()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs_f64());
        self.last_exit = status.last_exit().map(|(exit, ran)| match exit {
            Exit::Code(code) => LastExit {
                code: Some(code),
                signal: None,
                core: None,
                after_secs: ran.as_secs_f64(),
            },
            Exit::Signal { signal, core } => LastExit {
                code: None,
                signal: Some(daemonic::signal_name(signal)),
                core: Some(core),
                after_secs: ran.as_secs_f64(),
            },
            _ => LastExit {
                code: None,
                signal: None,
                core: None,
                after_secs: ran.as_secs_f64(),
            },
        });
        self.next_restart_in_secs = status.next_restart().map(|at| {
            at.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
                .as_secs_f64()
        });
        self.reason = match (state, status.reason()) {
            (ServiceState::Failed, Some(reason)) => Some(reason.as_str()),
            (ServiceState::Failed, None) => Some("its keeper was killed"),
            _ => None,
        };
        self.status_text = Some(status.status_text().to_string()).filter(|t| !t.is_empty());
        self.log_dir = status.log_dir().map(Path::to_path_buf);
        self.log_dropped = self.log_dir.is_some().then_some(status.log_dropped());
        self.syslog_dropped = status.syslog_dropped();
        if let Some(pid) = self.pid {
            self.command = daemonic::command_line(pid);
            self.uptime_secs = daemonic::uptime(pid).map(|d| d.as_secs());
        }
        let failed_exit = status.last_exit().is_some_and(|(e, _)| !e.is_success());
        self.code = match state {
            s if s.is_up() || s == ServiceState::Stopping => 0,
            ServiceState::Backoff | ServiceState::Failed => 1,
            ServiceState::Exited if failed_exit => 1,
            _ => 3,
        };
    }

    /// No keeper record: a keeper that has not written its first one yet, a daemon that became
    /// one itself (the library's `start`), or nothing.
    fn fill_from_lock(&mut self, pidfile: &Path) {
        match holder(pidfile) {
            // Locked, naming nobody yet: a start in progress.
            Ok(Holder::Unverified(None)) => {
                self.state = "starting";
                self.code = 0;
            }
            Ok(Holder::Running(process)) => {
                let pid = process.pid();
                self.state = "running";
                self.pid = Some(pid);
                self.uptime_secs = daemonic::uptime(pid).map(|d| d.as_secs());
                self.command = daemonic::command_line(pid);
                self.code = 0;
            }
            Ok(Holder::Dead(pid)) => {
                self.state = "dead";
                self.pid = pid;
                self.code = 1;
            }
            Ok(Holder::Absent) => {
                self.state = "stopped";
                self.code = 3;
            }
            Ok(Holder::Unverified(pid)) => {
                self.pid = pid;
                self.problem = Some("the pidfile is locked by a process it does not name".into());
            }
            Ok(_) => {
                self.problem = Some("the pidfile is in a state this command does not know".into())
            }
            Err(err) => self.problem = Some(err.to_string()),
        }
    }

    fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.pidfile.display().to_string())
    }

    fn print(&self) {
        let label = self.label();
        let pid = self.pid.map_or("-".into(), |p| p.to_string());
        let up = self
            .uptime_secs
            .map_or("?".into(), |s| human(Duration::from_secs(s)));
        let keeper = self
            .keeper_pid
            .map_or(String::new(), |k| format!(", keeper {k}"));
        match self.state {
            "starting" | "running" | "ready" | "stopping" => {
                show!("{label} is {} (pid {pid}, up {up}{keeper})", self.state)
            }
            "backoff" => show!(
                "{label} is between restarts: next start in {:.1}s{keeper}",
                self.next_restart_in_secs.unwrap_or(0.0)
            ),
            "exited" | "stopped" | "failed" => {
                let why = self.reason.map_or(String::new(), |r| format!(": {r}"));
                show!("{label} is not running ({}{why})", self.state)
            }
            "dead" => show!(
                "{label} is dead (pid {pid} gone); its pidfile {} is left",
                self.pidfile.display()
            ),
            _ => show!(
                "{label}: unknown ({})",
                self.problem.as_deref().unwrap_or("?")
            ),
        }
        if let Some(command) = &self.command {
            show!("  command: {}", escape(command));
        }
        if self.restarts > 0 || self.last_exit.is_some() {
            let last = self.last_exit.as_ref().map_or(String::new(), |e| {
                let how = match (&e.code, &e.signal) {
                    (Some(code), _) => format!("exit status {code}"),
                    (_, Some(signal)) => format!("signal {signal}"),
                    _ => "?".into(),
                };
                format!(", last exit: {how} after {:.1}s", e.after_secs)
            });
            show!("  restarts: {}{last}", self.restarts);
        }
        if let Some(text) = &self.status_text {
            show!("  status: {}", escape(text));
        }
        if let Some(dir) = &self.log_dir {
            let dropped = match self.log_dropped {
                Some(n) if n > 0 => format!(" ({n} lines dropped: disk full)"),
                _ => String::new(),
            };
            show!("  log: {}{dropped}", dir.display());
        }
    }
}

pub fn status(args: &StatusArgs) -> Result<u8, Failure> {
    let pidfile = args.target.pidfile()?;
    let report = Report::of(args.target.name.clone(), &pidfile);
    if args.json {
        show!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Failure::new(1, e.to_string()))?
        );
    } else {
        report.print();
    }
    Ok(report.code)
}

pub fn list(args: &ListArgs) -> Result<u8, Failure> {
    let dir = rundir::rundir(args.rundir.as_deref());
    let names = rundir::names(&dir)
        .map_err(|err| Failure::io(format!("run directory {}", dir.display()), &err))?;
    let reports: Vec<Report> = names
        .into_iter()
        .map(|name| {
            let pidfile = dir.join(format!("{name}.pid"));
            Report::of(Some(name), &pidfile)
        })
        .collect();
    if args.json {
        show!(
            "{}",
            serde_json::to_string_pretty(&reports).map_err(|e| Failure::new(1, e.to_string()))?
        );
        return Ok(0);
    }
    show!(
        "{:<20} {:<9} {:>8} {:>8} {:>10}  COMMAND",
        "NAME",
        "STATE",
        "PID",
        "RESTARTS",
        "UPTIME"
    );
    for r in &reports {
        show!(
            "{:<20} {:<9} {:>8} {:>8} {:>10}  {}",
            r.label(),
            r.state,
            r.pid.map_or("-".into(), |p| p.to_string()),
            r.restarts,
            r.uptime_secs
                .map_or("-".into(), |s| human(Duration::from_secs(s))),
            r.command.as_deref().map_or("-".into(), escape)
        );
    }
    Ok(0)
}

/// 3d4h, 2h5m, 4m10s, 12s.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}
