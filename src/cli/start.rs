//! `daemonic start`: every library option as a flag, readiness, and the record.

use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use daemonic::{Daemon, Environment, ErrorKind, Program, Progress, Readiness, Stdio};

use super::record::{self, Record};
use super::{Failure, Target, rundir};

const EXAMPLES: &str = "\
Examples:
  daemonic start -n web -u www-data -o /var/log/web.log -- /usr/sbin/web --port 8080
  daemonic start -n api --notify --ready-timeout 30 -- /usr/bin/api-server
  daemonic start -p /run/worker.pid --ready-fd 3 -e RUST_LOG=info -- worker
  daemonic start -n job --clear-env -e PATH=/usr/bin:/bin -d /srv/job -m 027 -- ./run.sh";

/// Start PROGRAM as a daemon and return once it is ready.
///
/// The daemon's pid, the one in the pidfile, is the program's own: no wrapper process stays
/// between them. The program inherits the pidfile's lock on a read-only descriptor at a high
/// number (below min(RLIMIT_NOFILE, 1024)); the lock is what tells a running daemon from a stale
/// pidfile, so a program that closes descriptors it did not open also drops it.
#[derive(Debug, Clone, Args)]
#[command(after_help = EXAMPLES)]
pub struct StartArgs {
    #[command(flatten)]
    pub target: Target,
    /// Working directory (inside the chroot, if any).
    #[arg(short = 'd', long, value_name = "DIR", default_value = "/")]
    pub chdir: PathBuf,
    /// File mode creation mask, in octal.
    #[arg(short = 'm', long, value_name = "OCTAL", default_value = "022", value_parser = parse_umask)]
    pub umask: u32,
    /// Run as this user (name or uid), optionally with a group: USER[:GROUP].
    #[arg(short, long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Run as this group (name or gid).
    #[arg(short, long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Change root to DIR before dropping privileges.
    #[arg(long, value_name = "DIR")]
    pub chroot: Option<PathBuf>,
    /// Standard output to FILE [default: /dev/null].
    #[arg(long, value_name = "FILE", conflicts_with = "output")]
    pub stdout: Option<PathBuf>,
    /// Standard error to FILE [default: /dev/null].
    #[arg(long, value_name = "FILE", conflicts_with = "output")]
    pub stderr: Option<PathBuf>,
    /// Standard output and error to FILE.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Append to output files instead of truncating them.
    #[arg(long)]
    pub append: bool,
    /// Set an environment variable (repeatable).
    #[arg(short, long, value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Start from an empty environment (then apply --env).
    #[arg(long)]
    pub clear_env: bool,
    /// Keep descriptor N open in the daemon (repeatable).
    #[arg(long, value_name = "N")]
    pub keep_fd: Vec<i32>,
    /// Disable core dumps.
    #[arg(long)]
    pub no_core: bool,
    /// Wait for sd_notify READY=1 on $NOTIFY_SOCKET (STATUS= lines are shown).
    #[arg(long, conflicts_with = "ready_fd")]
    pub notify: bool,
    /// Wait for the program to write a newline to descriptor N (s6 style).
    #[arg(long, value_name = "N")]
    pub ready_fd: Option<i32>,
    /// Give up (and stop the program) if it is not ready after SECS; EXTEND_TIMEOUT_USEC extends it.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_seconds)]
    pub ready_timeout: Duration,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "PROGRAM [ARG]...")]
    pub command: Vec<String>,
}

fn parse_umask(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|&m| m <= 0o777)
        .ok_or_else(|| "an octal mask from 000 to 777, such as 022".to_string())
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err("KEY=VALUE with a non-empty KEY".to_string()),
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "a positive number of seconds".to_string())
}

/// Starts the daemon. `recorded` is the record `restart` replays: its directory and environment
/// stand in for the current ones.
pub fn run(args: &StartArgs, recorded: Option<&Record>) -> Result<u8, Failure> {
    let pidfile = args.target.pidfile()?;
    let label = args.target.label();
    if args.target.name.is_some() {
        rundir::ensure(pidfile.parent().unwrap_or(std::path::Path::new("/")))?;
    }
    let (user, group) = match (args.user.as_deref().map(|u| u.split_once(':')), &args.group) {
        (Some(Some(_)), Some(_)) => {
            return Err(Failure::new(
                2,
                "give the group either as --user USER:GROUP or as --group, not both",
            ));
        }
        (Some(Some((u, g))), None) => (Some(u.to_string()), Some(g.to_string())),
        (Some(None), g) => (args.user.clone(), g.clone()),
        (None, g) => (None, g.clone()),
    };
    let mut daemon = Daemon::new()
        .pidfile(&pidfile)
        .workdir(&args.chdir)
        .umask(args.umask)
        .no_core(args.no_core)
        .timeout(args.ready_timeout);
    if let Some(u) = user {
        daemon = daemon.user(u);
    }
    if let Some(g) = group {
        daemon = daemon.group(g);
    }
    if let Some(root) = &args.chroot {
        daemon = daemon.chroot(root);
    }
    let file = |path: &PathBuf| {
        if args.append {
            Stdio::append(path)
        } else {
            Stdio::truncate(path)
        }
    };
    if let Some(path) = &args.output {
        daemon = daemon.stdout(file(path)).stderr(file(path));
    }
    if let Some(path) = &args.stdout {
        daemon = daemon.stdout(file(path));
    }
    if let Some(path) = &args.stderr {
        daemon = daemon.stderr(file(path));
    }
    let mut environment = match recorded {
        Some(record) => record
            .env
            .iter()
            .fold(Environment::empty(), |env, (k, v)| env.set(k, v)),
        None => Environment::inherit(),
    };
    if args.clear_env {
        environment = Environment::empty();
    }
    for (key, value) in &args.env {
        environment = environment.set(key, value);
    }
    daemon = daemon.environment(environment);
    for &fd in &args.keep_fd {
        // SAFETY: F_GETFD only asks whether `fd` is open.
        if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(Failure::new(
                2,
                format!("--keep-fd {fd}: not an open descriptor above 2"),
            ));
        }
        // SAFETY: checked open just above; this process never closes it before exec.
        daemon = daemon.keep_fd(unsafe { BorrowedFd::borrow_raw(fd) });
    }
    let readiness = match (args.notify, args.ready_fd) {
        (true, _) => Readiness::Notify,
        (false, Some(fd)) => Readiness::Fd(fd),
        (false, None) => Readiness::Exec,
    };
    daemon = daemon.readiness(readiness);
    let program = Program::new(&args.command[0]).args(&args.command[1..]);

    let record = Record {
        name: args.target.name.clone(),
        pidfile: pidfile.clone(),
        args: match recorded {
            Some(r) => r.args.clone(),
            None => start_args(),
        },
        cwd: match recorded {
            Some(r) => r.cwd.clone(),
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        },
        env: match recorded {
            Some(r) => r.env.clone(),
            None => std::env::vars().collect(),
        },
        command: args.command.clone(),
        started_at: record::now(),
        readiness: match readiness {
            Readiness::Exec => "exec".into(),
            Readiness::Notify => "notify".into(),
            Readiness::Fd(n) => format!("fd {n}"),
        },
    };
    let mut saved: Option<Result<(), Failure>> = None;
    let result = daemon.spawn_with(&program, |progress| match progress {
        // The record is written while the daemon runs its steps and the launcher would only
        // wait: it costs the start no time. `status` tells "starting" from "ready" from the
        // kernel's lock table (this launcher took the lock), so nothing is written afterwards.
        Progress::Started { .. } => saved = Some(record.save()),
        Progress::Status(status) => eprintln!("daemonic start: {label}: {status}"),
        _ => {}
    });
    let spawned = match result {
        Ok(spawned) => spawned,
        Err(err) => {
            if saved.is_some() {
                // The start failed after the record was written: put back what was there.
                match recorded {
                    Some(previous) => {
                        let _ = previous.save();
                    }
                    None => record::remove(&pidfile),
                }
            }
            if let ErrorKind::AlreadyRunning(pid) = err.kind() {
                let pid = pid.map_or_else(|| "being started".to_string(), |p| format!("pid {p}"));
                eprintln!("daemonic start: {label} is already running ({pid})");
                return Ok(0);
            }
            return Err(Failure::from_library(&err));
        }
    };
    // The daemon runs: a record that cannot be written costs restart and list, not the start.
    if let Some(Err(failure)) = saved {
        eprintln!(
            "daemonic start: {label}: started (pid {}), but {}",
            spawned.pid(),
            failure.message
        );
    }
    Ok(0)
}

/// This invocation's arguments after `start`, for the record.
fn start_args() -> Vec<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().position(|a| a == "start") {
        Some(i) => args[i + 1..].to_vec(),
        None => args,
    }
}
