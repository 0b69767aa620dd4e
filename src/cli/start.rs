//! `daemonic start` and `daemonic run`: every library option as a flag, the restart policy, and
//! readiness. `start` detaches a keeper; `run` is the keeper in the foreground.

use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use daemonic::{
    Daemon, Environment, ErrorKind, Policy, Program, Progress, Readiness, Restart, Stdio,
};

use super::{Failure, Target, rundir};

const START_EXAMPLES: &str = "\
Examples:
  daemonic start -n web -u www-data -o /var/log/web.log -- /usr/sbin/web --port 8080
  daemonic start -n api --notify --restart on-failure -- /usr/bin/api-server
  daemonic start -p /run/worker.pid --ready-fd 3 -e RUST_LOG=info -- worker
  daemonic start -n nginx --restart always --give-up 5/60 -- nginx -g 'daemon off;'";

const RUN_EXAMPLES: &str = "\
Examples:
  ENTRYPOINT [\"daemonic\", \"run\", \"--\", \"/usr/local/bin/app\"]      (Dockerfile, as PID 1)
  exec daemonic run --restart on-failure -u app -- /usr/bin/app      (a runit or s6 run script)
  ExecStart=/usr/bin/daemonic run --notify -- /usr/bin/app          (systemd, Type=notify)";

/// Start PROGRAM as a supervised daemon and return once it is ready.
///
/// A keeper (a small daemonic process) becomes the daemon: it holds the pidfile's lock, runs the
/// program as its child in its own process group, restarts it by --restart, stops all of it on
/// `daemonic stop`, and keeps a status record beside the pidfile. The pidfile names the
/// program's pid (so `kill -HUP $(cat PIDFILE)` reaches the program), rewritten at each restart.
/// If the keeper is killed, its program is killed with it (PR_SET_PDEATHSIG), so a new start
/// never runs a second copy.
#[derive(Debug, Clone, Args)]
#[command(after_help = START_EXAMPLES)]
pub struct StartArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub service: ServiceArgs,
    #[command(flatten)]
    pub report: super::Reporting,
}

/// Run PROGRAM under a keeper in the foreground: for containers (as PID 1 it reaps every
/// orphan), runit and s6 run scripts, and systemd (Type=notify).
///
/// TERM and INT stop the whole service (by --stop-schedule, starting with the signal received);
/// HUP, QUIT, USR1, USR2 and WINCH are passed to the program's process group. The exit status
/// is the program's (128+N for a signal). Standard streams are inherited unless redirected.
/// With --name or --pidfile, `daemonic status/stop/signal/restart` work on it too.
#[derive(Debug, Clone, Args)]
#[command(after_help = RUN_EXAMPLES)]
pub struct RunArgs {
    /// The service's name (optional): its pidfile is RUNDIR/NAME.pid.
    #[arg(short, long, conflicts_with = "pidfile", add = super::complete::daemon_names())]
    pub name: Option<String>,
    /// A pidfile (optional).
    #[arg(short, long, value_name = "PATH")]
    pub pidfile: Option<PathBuf>,
    /// Where named services' pidfiles live (as for start).
    #[arg(long, value_name = "DIR", env = "DAEMONIC_RUNDIR", value_hint = clap::ValueHint::DirPath)]
    pub rundir: Option<PathBuf>,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// The options shared by `start` and `run`: what the program gets, readiness and restarts.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// Working directory (inside the chroot, if any).
    #[arg(short = 'd', long, value_name = "DIR", default_value = "/", value_hint = clap::ValueHint::DirPath)]
    pub chdir: PathBuf,
    /// File mode creation mask, in octal.
    #[arg(short = 'm', long, value_name = "OCTAL", default_value = "022", value_parser = parse_umask)]
    pub umask: u32,
    /// Run as this user (name or uid), optionally with a group: USER[:GROUP].
    #[arg(short, long, value_name = "USER[:GROUP]", add = super::complete::users())]
    pub user: Option<String>,
    /// Run as this group (name or gid).
    #[arg(short, long, value_name = "GROUP", add = super::complete::groups())]
    pub group: Option<String>,
    /// Change root to DIR before dropping privileges.
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub chroot: Option<PathBuf>,
    /// Standard output to FILE [default: /dev/null; inherited for run].
    #[arg(long, value_name = "FILE", conflicts_with = "output")]
    pub stdout: Option<PathBuf>,
    /// Standard error to FILE [default: /dev/null; inherited for run].
    #[arg(long, value_name = "FILE", conflicts_with = "output")]
    pub stderr: Option<PathBuf>,
    /// Standard output and error to FILE (one pipe through the keeper: their order is kept, and
    /// `daemonic reopen` reopens it after logrotate renamed it).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Append to output files (the default; kept for compatibility).
    #[arg(long, conflicts_with = "truncate")]
    pub append: bool,
    /// Truncate output files at start instead of appending.
    #[arg(long)]
    pub truncate: bool,
    #[command(flatten)]
    pub log: super::logs::LogArgs,
    /// Set an environment variable (repeatable; the value is passed as given, UTF-8 or not).
    #[arg(short, long, value_name = "KEY=VALUE",
          value_parser = clap::builder::TypedValueParser::try_map(clap::builder::OsStringValueParser::new(), parse_env))]
    pub env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    /// Start from an empty environment (then apply --env).
    #[arg(long)]
    pub clear_env: bool,
    /// Keep descriptor N open in the program (repeatable).
    #[arg(long, value_name = "N")]
    pub keep_fd: Vec<i32>,
    /// Disable core dumps.
    #[arg(long)]
    pub no_core: bool,
    /// Read the environment from FILE, systemd's EnvironmentFile= format (repeatable; -FILE:
    /// may be missing); --env values win.
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    pub env_file: Vec<PathBuf>,
    /// Standard input from FILE [default: /dev/null; inherited for run].
    #[arg(long, value_name = "FILE")]
    pub stdin: Option<PathBuf>,
    /// Nice value for the program, -20 to 19 (start-stop-daemon --nicelevel).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub nice: Option<i32>,
    /// I/O scheduling class and level: realtime|best-effort|idle[:0-7] (ionice).
    #[arg(long, value_name = "CLASS[:LEVEL]", value_parser = parse_ionice)]
    pub ionice: Option<(daemonic::IoClass, u8)>,
    /// CPU scheduling policy: other|batch|idle, or fifo|rr:PRIORITY (1-99) (chrt).
    #[arg(long, value_name = "POLICY[:PRIO]", value_parser = parse_sched)]
    pub sched: Option<(daemonic::Scheduler, i32)>,
    /// A resource limit, as ulimit and /proc/PID/limits name it: nofile=65536,
    /// core=unlimited, memlock=64M:128M (repeatable; HARD defaults to SOFT).
    #[arg(long, value_name = "NAME=SOFT[:HARD]", value_parser = parse_rlimit)]
    pub rlimit: Vec<(daemonic::Limit, u64, u64)>,
    /// OOM killer adjustment, -1000 (never) to 1000 (first).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-1000..=1000))]
    pub oom_score_adj: Option<i32>,
    /// Set no_new_privs: the program and what it executes can never gain privileges.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Keep capability CAP across the drop to --user (ambient: it survives the program's exec),
    /// e.g. net_bind_service to bind ports below 1024 (repeatable or comma-separated; Linux).
    #[arg(long = "cap", value_name = "CAP", value_parser = parse_caps, add = super::complete::capabilities())]
    pub caps: Vec<daemonic::Capabilities>,
    /// Wait for sd_notify READY=1 on $NOTIFY_SOCKET (STATUS= lines are shown).
    #[arg(long, conflicts_with = "ready_fd")]
    pub notify: bool,
    /// Wait for the program to write a newline to descriptor N (s6 style; fresh at each start).
    #[arg(long, value_name = "N", value_parser = parse_ready_fd)]
    pub ready_fd: Option<i32>,
    /// Count a program without a readiness protocol as ready once it stayed up SECS.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, conflicts_with_all = ["notify", "ready_fd"])]
    pub ready_after: Option<Duration>,
    /// Give up (and stop the program) if it is not ready after SECS; EXTEND_TIMEOUT_USEC extends it.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_seconds)]
    pub ready_timeout: Duration,
    /// When to start the program again after it exits: no, on-failure (non-zero exit, core
    /// dump, or a signal the keeper did not send) or always.
    #[arg(long, value_name = "WHEN", default_value = "no")]
    pub restart: Restart,
    /// A run at least this long (ready this long) was stable: restart at once, reset the delay.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds_or_zero)]
    pub stable_after: Duration,
    /// The delay after a quick failure; doubles (with jitter) after each further one.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_seconds_or_zero)]
    pub restart_delay: Duration,
    /// The longest delay between restarts.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_seconds_or_zero)]
    pub restart_max_delay: Duration,
    /// Give up after N failures within SECS (the service ends in state "failed").
    #[arg(long, value_name = "N/SECS", value_parser = parse_give_up)]
    pub give_up: Option<(u32, Duration)>,
    /// The program forks itself into the background and writes its daemon's pid to PIDFILE
    /// (nginx without `daemon off;`): once the started process exits 0, the keeper follows that
    /// daemon (as systemd's Type=forking with PIDFile=).
    #[arg(long, value_name = "PIDFILE", conflicts_with_all = ["notify", "ready_fd", "ready_after"])]
    pub forks: Option<PathBuf>,
    /// The schedule the keeper uses on SIGTERM/SIGINT and for what an exited program left behind.
    #[arg(long, value_name = "SCHEDULE", default_value = "TERM/10/KILL/5", allow_hyphen_values = true, add = super::complete::schedules())]
    pub stop_schedule: daemonic::stop::Schedule,
    /// The name the program sees as argv[0] (what ps shows), instead of PROGRAM as given.
    #[arg(long, value_name = "NAME")]
    pub argv0: Option<std::ffi::OsString>,
    /// The program and its arguments (passed as they are, UTF-8 or not).
    #[arg(last = true, required = true, value_name = "PROGRAM [ARG]...", add = super::complete::program())]
    pub command: Vec<std::ffi::OsString>,
}

fn parse_caps(text: &str) -> Result<daemonic::Capabilities, String> {
    text.parse().map_err(|e: daemonic::Error| e.to_string())
}

fn parse_umask(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|&m| m <= 0o777)
        .ok_or_else(|| "an octal mask from 000 to 777, such as 022".to_string())
}

fn parse_env(text: std::ffi::OsString) -> Result<(std::ffi::OsString, std::ffi::OsString), String> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = text.as_bytes();
    match bytes.iter().position(|&b| b == b'=') {
        Some(at) if at > 0 => Ok((
            std::ffi::OsStr::from_bytes(&bytes[..at]).to_owned(),
            std::ffi::OsStr::from_bytes(&bytes[at + 1..]).to_owned(),
        )),
        _ => Err("KEY=VALUE with a non-empty KEY".to_string()),
    }
}

/// `CLASS[:LEVEL]` for --ionice: a class by name or ionice's number; the level defaults to 4
/// (ionice's) and is 0-7.
fn parse_ionice(text: &str) -> Result<(daemonic::IoClass, u8), String> {
    let (class, level) = text
        .split_once(':')
        .map_or((text, None), |(c, l)| (c, Some(l)));
    // start-stop-daemon spells it real-time.
    let class = if class.eq_ignore_ascii_case("real-time") {
        "realtime"
    } else {
        class
    };
    let class = daemonic::IoClass::from_name(class)
        .ok_or_else(|| format!("unknown I/O class {class:?}: realtime, best-effort or idle"))?;
    let level = match level {
        None => 4,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= 7)
            .ok_or_else(|| format!("I/O level {l:?} is not 0-7"))?,
    };
    Ok((class, level))
}

/// `POLICY[:PRIO]` for --sched: a real-time policy needs its priority (1-99), the others take
/// none.
fn parse_sched(text: &str) -> Result<(daemonic::Scheduler, i32), String> {
    let (name, priority) = text
        .split_once(':')
        .map_or((text, None), |(n, p)| (n, Some(p)));
    let policy = daemonic::Scheduler::from_name(name)
        .ok_or_else(|| format!("unknown policy {name:?}: other, batch, idle, fifo or rr"))?;
    match (policy.is_realtime(), priority) {
        (true, Some(p)) => p
            .parse::<i32>()
            .ok()
            .filter(|p| (1..=99).contains(p))
            .map(|p| (policy, p))
            .ok_or_else(|| format!("priority {p:?} is not 1-99")),
        (true, None) => Err(format!("{name} needs a priority: {name}:1 to {name}:99")),
        // start-stop-daemon's other:0 is the same as other.
        (false, None) => Ok((policy, 0)),
        (false, Some("0")) => Ok((policy, 0)),
        (false, Some(_)) => Err(format!("{name} takes no priority (only fifo and rr do)")),
    }
}

/// `NAME=SOFT[:HARD]` for --rlimit: a number with an optional K, M, G or T (powers of 1024), or
/// `unlimited`/`infinity`; HARD defaults to SOFT (as systemd's LimitNOFILE=N).
fn parse_rlimit(text: &str) -> Result<(daemonic::Limit, u64, u64), String> {
    let Some((name, values)) = text.split_once('=') else {
        return Err("expected NAME=SOFT[:HARD], e.g. nofile=65536".into());
    };
    let names = || daemonic::Limit::names().collect::<Vec<_>>().join(", ");
    let limit = daemonic::Limit::from_name(name)
        .ok_or_else(|| format!("unknown limit {name:?}; one of: {}", names()))?;
    let value = |v: &str| -> Result<u64, String> {
        if v.eq_ignore_ascii_case("unlimited") || v.eq_ignore_ascii_case("infinity") {
            return Ok(daemonic::UNLIMITED);
        }
        let (digits, shift) = match v.as_bytes().last().map(u8::to_ascii_uppercase) {
            Some(b'K') => (&v[..v.len() - 1], 10),
            Some(b'M') => (&v[..v.len() - 1], 20),
            Some(b'G') => (&v[..v.len() - 1], 30),
            Some(b'T') => (&v[..v.len() - 1], 40),
            _ => (v, 0),
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1 << shift))
            .filter(|n| *n != daemonic::UNLIMITED)
            .ok_or_else(|| format!("{name}: {v:?} is not a number (or unlimited)"))
    };
    let (soft, hard) = match values.split_once(':') {
        Some((s, h)) => (value(s)?, value(h)?),
        None => {
            let v = value(values)?;
            (v, v)
        }
    };
    Ok((limit, soft, hard))
}

/// A readiness descriptor: above 2, and a number the program can have (below 65536).
fn parse_ready_fd(text: &str) -> Result<i32, String> {
    text.parse::<i32>()
        .ok()
        .filter(|fd| (3..65536).contains(fd))
        .ok_or_else(|| "a descriptor number from 3 to 65535".to_string())
}

/// Seconds, at most ten years: a larger value is a typo, and `Duration::from_secs_f64` panics
/// on values that overflow.
const MAX_SECONDS: f64 = 10.0 * 365.0 * 86400.0;

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= MAX_SECONDS)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "a positive number of seconds, at most ten years".to_string())
}

fn parse_seconds_or_zero(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= MAX_SECONDS)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "a number of seconds from 0 to ten years".to_string())
}

fn parse_give_up(text: &str) -> Result<(u32, Duration), String> {
    let usage = || "N/SECS: N failures (1 or more) within SECS seconds, such as 5/60".to_string();
    let (count, window) = text.split_once('/').ok_or_else(usage)?;
    let count: u32 = count.parse().ok().filter(|&n| n > 0).ok_or_else(usage)?;
    Ok((count, parse_seconds(window).map_err(|_| usage())?))
}

impl ServiceArgs {
    /// The resource controls the flags ask for.
    fn resources(&self) -> daemonic::Resources {
        let mut r = daemonic::Resources::new().no_new_privs(self.no_new_privs);
        if let Some(n) = self.nice {
            r = r.nice(n);
        }
        if let Some((class, level)) = self.ionice {
            r = r.io_priority(class, level);
        }
        if let Some((policy, priority)) = self.sched {
            r = r.scheduler(policy, priority);
        }
        for &(limit, soft, hard) in &self.rlimit {
            r = r.limit(limit, soft, hard);
        }
        if let Some(n) = self.oom_score_adj {
            r = r.oom_score_adj(n);
        }
        r
    }

    /// The builder for this service, with `pidfile` if any.
    fn daemon(&self, pidfile: Option<&PathBuf>, foreground: bool) -> Result<Daemon, Failure> {
        let (user, group) = match (self.user.as_deref().map(|u| u.split_once(':')), &self.group) {
            (Some(Some(_)), Some(_)) => {
                return Err(Failure::new(
                    2,
                    "give the group either as --user USER:GROUP or as --group, not both",
                ));
            }
            (Some(Some((u, g))), None) => (Some(u.to_string()), Some(g.to_string())),
            (Some(None), g) => (self.user.clone(), g.clone()),
            (None, g) => (None, g.clone()),
        };
        let mut daemon = Daemon::new()
            .workdir(&self.chdir)
            .umask(self.umask)
            .no_core(self.no_core)
            .timeout(self.ready_timeout);
        if let Some(pidfile) = pidfile {
            daemon = daemon.pidfile(pidfile);
        }
        if foreground {
            daemon = daemon
                .stdin(Stdio::Inherit)
                .stdout(Stdio::Inherit)
                .stderr(Stdio::Inherit);
        }
        if let Some(path) = &self.stdin {
            daemon = daemon.stdin(Stdio::append(path));
        }
        daemon = daemon.resources(self.resources());
        if let Some(u) = user {
            daemon = daemon.user(u);
        }
        let caps = (self.caps.iter()).fold(daemonic::Capabilities::none(), |all, c| all | *c);
        daemon = daemon.capabilities(caps);
        if let Some(g) = group {
            daemon = daemon.group(g);
        }
        if let Some(root) = &self.chroot {
            daemon = daemon.chroot(root);
        }
        let file = |path: &PathBuf| {
            if self.truncate {
                Stdio::truncate(path)
            } else {
                Stdio::append(path)
            }
        };
        if let Some(path) = &self.output {
            daemon = daemon.stdout(file(path)).stderr(file(path));
        }
        if let Some(path) = &self.stdout {
            daemon = daemon.stdout(file(path));
        }
        if let Some(path) = &self.stderr {
            daemon = daemon.stderr(file(path));
        }
        if let Some(config) = self.log.config() {
            if self.output.is_some() || self.stdout.is_some() || self.stderr.is_some() {
                return Err(Failure::new(
                    2,
                    "--log takes the program's stdout and stderr: give it or -o/--stdout/--stderr, not both",
                ));
            }
            daemon = daemon.log(config);
        }
        if let Some(config) = self.log.stderr_config() {
            daemon = daemon.log_stderr(config);
        }
        if let Some(config) = self.log.syslog() {
            daemon = daemon.syslog(config);
        }
        let mut environment = Environment::inherit();
        if self.clear_env {
            environment = Environment::empty();
        }
        for file in &self.env_file {
            for (key, value) in super::envfile::read(file)
                .map_err(|e| Failure::new(2, format!("--env-file {e}")))?
            {
                environment = environment.set(key, value);
            }
        }
        for (key, value) in &self.env {
            environment = environment.set(key, value);
        }
        daemon = daemon.environment(environment);
        for &fd in &self.keep_fd {
            // libc: rustix's fcntl_getfd takes a `BorrowedFd`, which must be open: this asks
            // whether it is.
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
        Ok(daemon
            .keeper_image(KEEPER_IMAGE)
            .readiness(self.readiness()))
    }

    fn readiness(&self) -> Readiness {
        match (self.notify, self.ready_fd) {
            (true, _) => Readiness::Notify,
            (false, Some(fd)) => Readiness::Fd(fd),
            (false, None) => Readiness::Exec,
        }
    }

    fn policy(&self) -> Policy {
        let mut policy = Policy::new()
            .restart(self.restart)
            .stable_after(self.stable_after)
            .restart_delay(self.restart_delay)
            .restart_max_delay(self.restart_max_delay.max(self.restart_delay))
            .stop_schedule(self.stop_schedule.clone());
        if let Some((count, window)) = self.give_up {
            policy = policy.give_up(count, window);
        }
        if let Some(after) = self.ready_after {
            policy = policy.ready_after(after);
        }
        if let Some(path) = &self.forks {
            // Relative to where the command was given (the library makes it absolute).
            policy = policy.forking(path);
        }
        policy
    }

    fn program(&self) -> Program {
        let program = Program::new(&self.command[0]).args(&self.command[1..]);
        match &self.argv0 {
            Some(name) => program.argv0(name),
            None => program,
        }
    }

    /// What `start --test` prints after the program: the settings that decide how it runs.
    fn describe(&self, report: &super::Reporting, pidfile: &std::path::Path) {
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        report.done(format_args!(
            "  pidfile {} (the keeper's status record and socket beside it)",
            pidfile.display()
        ));
        report.done(format_args!(
            "  user {}, group {}, chroot {}, directory {}, umask {:03o}",
            or_dash(self.user.clone()),
            or_dash(self.group.clone()),
            or_dash(self.chroot.as_ref().map(|p| p.display().to_string())),
            self.chdir.display(),
            self.umask
        ));
        let output = match (&self.log.log, &self.output, &self.stdout, &self.stderr) {
            (Some(dir), ..) => format!("logged into {}/current", dir.display()),
            (None, Some(file), ..) => format!("stdout and stderr to {}", file.display()),
            (None, None, out, err) => {
                let or_null = |p: &Option<PathBuf>| {
                    p.as_ref()
                        .map_or("/dev/null".into(), |p| p.display().to_string())
                };
                format!("stdout to {}, stderr to {}", or_null(out), or_null(err))
            }
        };
        report.done(format_args!("  output: {output}"));
        let readiness = match (self.notify, self.ready_fd, self.ready_after, &self.forks) {
            (true, ..) => "sd_notify READY=1".to_string(),
            (_, Some(fd), ..) => format!("a newline on descriptor {fd}"),
            (_, _, Some(after), _) => format!("up for {} s", after.as_secs_f64()),
            (_, _, _, Some(pidfile)) => format!("its own pidfile {}", pidfile.display()),
            _ => "the exec".to_string(),
        };
        report.done(format_args!(
            "  ready on {readiness} (within {} s); restart {} (stable after {} s, delay {} s up to {} s); stop schedule {}",
            self.ready_timeout.as_secs_f64(),
            match self.restart {
                Restart::No => "no",
                Restart::OnFailure => "on-failure",
                _ => "always",
            },
            self.stable_after.as_secs_f64(),
            self.restart_delay.as_secs_f64(),
            self.restart_max_delay.as_secs_f64(),
            self.stop_schedule
        ));
    }
}

/// The image a keeper re-executes into once its program runs: `daemonic-keeper` beside this
/// binary (small: no parser, no serde), else this binary itself (it answers the same handoff).
/// A bare name: the keeper looks for it when it re-executes, not the launcher on the path of
/// the start.
const KEEPER_IMAGE: &str = "daemonic-keeper";

/// Starts the service under a detached keeper.
pub fn run(args: &StartArgs) -> Result<u8, Failure> {
    args.report.outcome(start(args))
}

fn start(args: &StartArgs) -> Result<u8, Failure> {
    let report = &args.report;
    let pidfile = args.target.pidfile()?;
    let label = args.target.label();
    if args.target.name.is_some() && !report.test {
        rundir::ensure(pidfile.parent().unwrap_or(std::path::Path::new("/")))?;
    }
    let daemon = args.service.daemon(Some(&pidfile), false)?;
    let program = args.service.program();
    if report.test {
        let path = daemon
            .check_program(&program)
            .map_err(|e| Failure::from_library(&e))?;
        // A named service's run directory would be made; a given pidfile's must exist.
        let dir = pidfile.parent().unwrap_or(std::path::Path::new("/"));
        if args.target.name.is_none() && !dir.is_dir() {
            return Err(Failure::new(
                2,
                format!("pidfile directory {}: not a directory", dir.display()),
            ));
        }
        if let Some((holder, _)) = super::holder(&pidfile)? {
            report.note(format_args!(
                "daemonic start: {label} is already running ({holder}): nothing to do"
            ));
            return Ok(report.nothing_done());
        }
        report.done(format_args!(
            "daemonic start: would start {label}: {}",
            super::command_line(&path, &args.service.command[1..])
        ));
        args.service.describe(report, &pidfile);
        return Ok(0);
    }
    // This command exits as soon as the start has an outcome: the keeper is forked once.
    let daemon = daemon.launcher_exits(true);
    let result = daemon.supervise_with(&program, args.service.policy(), |progress| {
        if let Progress::Status(status) = progress {
            report.note(format_args!(
                "daemonic start: {label}: {}",
                super::escape(status)
            ));
        }
    });
    match result {
        Ok(supervised) => {
            report.done(format_args!(
                "daemonic start: {label} started (pid {}, keeper {})",
                supervised.pid(),
                supervised.keeper_pid()
            ));
            Ok(0)
        }
        Err(err) => {
            if let ErrorKind::AlreadyRunning(pid) = err.kind() {
                let pid = pid.map_or_else(|| "being started".to_string(), |p| format!("pid {p}"));
                report.note(format_args!(
                    "daemonic start: {label} is already running ({pid})"
                ));
                return Ok(report.nothing_done());
            }
            Err(Failure::from_library(&err))
        }
    }
}

/// Runs the service under a keeper in this process; exits with the program's status.
pub fn foreground(args: &RunArgs) -> Result<u8, Failure> {
    let target = Target {
        name: args.name.clone(),
        pidfile: args.pidfile.clone(),
        rundir: args.rundir.clone(),
    };
    let pidfile = match (&args.name, &args.pidfile) {
        (None, None) => None,
        _ => Some(target.pidfile()?),
    };
    if let (Some(_), Some(path)) = (&args.name, &pidfile) {
        rundir::ensure(path.parent().unwrap_or(std::path::Path::new("/")))?;
    }
    let daemon = args.service.daemon(pidfile.as_ref(), true)?;
    match daemon.run(&args.service.program(), args.service.policy()) {
        Ok(Some(exit)) => Ok(exit.shell_code()),
        Ok(None) => Ok(0),
        Err(err) => Err(Failure::from_library(&err)),
    }
}
