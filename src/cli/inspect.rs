//! `daemonic status` and `daemonic list`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use daemonic::stop::{Holder, holder};
use serde::Serialize;

use super::record::Record;
use super::{Failure, Target, rundir};

/// Show whether a daemon runs: pid, uptime, command and readiness.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  daemonic status -n web
  daemonic status -p /run/worker.pid --json

Exit status: 0 running, 1 dead with its pidfile left, 3 not running, 4 unknown.")]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// List every daemon in the run directory with its state.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  daemonic list\n  daemonic list --json --rundir /run/myapp")]
pub struct ListArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// The run directory to list [default: as for --name].
    #[arg(long, value_name = "DIR", env = "DAEMONIC_RUNDIR")]
    rundir: Option<PathBuf>,
}

/// What status and list report about one daemon.
#[derive(Debug, Serialize)]
struct Report {
    name: Option<String>,
    pidfile: PathBuf,
    /// running, dead, stopped, or unknown.
    state: &'static str,
    pid: Option<u32>,
    uptime_secs: Option<u64>,
    command: Option<String>,
    /// How readiness is signalled: exec, notify, or fd N.
    readiness: Option<String>,
    /// Whether the daemon is ready (its start has returned); false while starting.
    ready: Option<bool>,
    /// Why the state is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

impl Report {
    fn of(name: Option<String>, pidfile: &Path) -> Report {
        let record = Record::load(pidfile);
        let mut report = Report {
            name: name.or_else(|| record.as_ref().and_then(|r| r.name.clone())),
            pidfile: pidfile.to_path_buf(),
            state: "unknown",
            pid: None,
            uptime_secs: None,
            command: None,
            readiness: record.as_ref().map(|r| r.readiness.clone()),
            ready: None,
            problem: None,
        };
        match holder(pidfile) {
            Ok(Holder::Running(process)) => {
                let pid = process.pid();
                report.state = "running";
                report.pid = Some(pid);
                report.uptime_secs = daemonic::uptime(pid).map(|d| d.as_secs());
                report.command = daemonic::command_line(pid);
                // Ready unless the launcher that started it is still waiting for readiness.
                report.ready = Some(!daemonic::stop::is_starting(pidfile, pid));
            }
            Ok(Holder::Dead(pid)) => {
                report.state = "dead";
                report.pid = pid;
            }
            Ok(Holder::Absent) => report.state = "stopped",
            Ok(Holder::Unverified(pid)) => {
                report.pid = pid;
                report.problem = Some("the pidfile is locked by a process it does not name".into());
            }
            Err(err) => report.problem = Some(err.to_string()),
        }
        if report.command.is_none() {
            report.command = record.map(|r| r.command.join(" "));
        }
        report
    }

    fn exit_code(&self) -> u8 {
        match self.state {
            "running" => 0,
            "dead" => 1,
            "stopped" => 3,
            _ => 4,
        }
    }

    fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.pidfile.display().to_string())
    }
}

pub fn status(args: &StatusArgs) -> Result<u8, Failure> {
    let pidfile = args.target.pidfile()?;
    let report = Report::of(args.target.name.clone(), &pidfile);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Failure::new(1, e.to_string()))?
        );
    } else {
        let label = report.label();
        match report.state {
            "running" => {
                println!(
                    "{label} is running (pid {}, up {})",
                    report.pid.unwrap_or(0),
                    report
                        .uptime_secs
                        .map_or("?".into(), |s| human(Duration::from_secs(s)))
                );
                if let Some(command) = &report.command {
                    println!("  command: {command}");
                }
                let how = report.readiness.as_deref().unwrap_or("unknown");
                match report.ready {
                    Some(false) => println!("  readiness: starting, waiting for {how}"),
                    _ => println!("  readiness: ready ({how})"),
                }
            }
            "dead" => println!(
                "{label} is dead (pid {} gone); its pidfile {} is left",
                report.pid.map_or("?".into(), |p| p.to_string()),
                pidfile.display()
            ),
            "stopped" => println!("{label} is not running"),
            _ => println!(
                "{label}: unknown ({})",
                report.problem.as_deref().unwrap_or("?")
            ),
        }
    }
    Ok(report.exit_code())
}

pub fn list(args: &ListArgs) -> Result<u8, Failure> {
    let dir = rundir::rundir(args.rundir.as_deref());
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                file.strip_suffix(".pid.json")
                    .or_else(|| file.strip_suffix(".pid"))
                    .map(str::to_string)
            })
            .collect(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => {
            return Err(Failure::io(
                format!("run directory {}", dir.display()),
                &err,
            ));
        }
    };
    names.sort();
    names.dedup();
    let reports: Vec<Report> = names
        .into_iter()
        .map(|name| {
            let pidfile = dir.join(format!("{name}.pid"));
            Report::of(Some(name), &pidfile)
        })
        .collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).map_err(|e| Failure::new(1, e.to_string()))?
        );
        return Ok(0);
    }
    println!(
        "{:<20} {:<8} {:>8} {:>10}  COMMAND",
        "NAME", "STATE", "PID", "UPTIME"
    );
    for r in &reports {
        println!(
            "{:<20} {:<8} {:>8} {:>10}  {}",
            r.label(),
            r.state,
            r.pid.map_or("-".into(), |p| p.to_string()),
            r.uptime_secs
                .map_or("-".into(), |s| human(Duration::from_secs(s))),
            r.command.as_deref().unwrap_or("-")
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
