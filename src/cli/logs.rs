//! Logs: the `--log` options of `start` and `run`, `daemonic reopen` (rotate), `daemonic logger`
//! (the logger alone, on standard input) and `daemonic log` (reading a service's log).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::Args;
use daemonic::{LogConfig, Logger, ServiceStatus, Stamp};

use super::{Failure, Target, say};

/// Where and how the program's output is logged.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log the program's stdout and stderr (one pipe, order kept) into DIR/current, stamped and
    /// rotated; the keeper holds the pipe across restarts, so no line is lost.
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub log: Option<PathBuf>,
    /// Also send each line (and the keeper's events) to the local syslog, tagged program[pid],
    /// never blocking the program (lines syslog cannot take are dropped and counted).
    #[arg(long, value_name = "FACILITY.PRIORITY", num_args = 0..=1, default_missing_value = "daemon.info")]
    pub syslog: Option<daemonic::SyslogConfig>,
    /// Keep stderr apart: its lines go into a log directory of their own (stdout stays in
    /// --log DIR; lines of the two are then no longer ordered against each other).
    #[arg(long, value_name = "DIR", requires = "log", value_hint = clap::ValueHint::DirPath)]
    pub log_stderr: Option<PathBuf>,
    /// A shell command run on each closed archive, outside the keeper's loop: it reads the
    /// archive on stdin and what it writes replaces it (e.g. "zstd -q"); if it fails, the archive
    /// is kept as it was.
    #[arg(long, value_name = "COMMAND", requires = "log")]
    pub log_processor: Option<String>,
    /// The syslog socket [default: /dev/log].
    #[arg(long, value_name = "PATH", requires = "syslog")]
    pub syslog_socket: Option<PathBuf>,
    #[command(flatten)]
    pub options: LogOptions,
}

/// How a log directory is kept (shared by `--log` and `daemonic logger`).
#[derive(Debug, Clone, Args)]
pub struct LogOptions {
    /// Rotate before current would pass SIZE (bytes; k, M, G = 1000s, Ki, Mi, Gi = 1024s).
    #[arg(long, value_name = "SIZE", default_value = "10M", value_parser = parse_size)]
    pub log_size: u64,
    /// Also rotate a non-empty current after SECS.
    #[arg(long, value_name = "SECS", value_parser = parse_age)]
    pub log_age: Option<Duration>,
    /// Keep at most N archives.
    #[arg(long, value_name = "N", default_value = "10")]
    pub log_keep: usize,
    /// Keep the archives' total size at most SIZE.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub log_total: Option<u64>,
    /// Timestamps: utc (RFC 3339, microseconds), local (with its offset), tai64n, or none.
    #[arg(long, value_name = "FORMAT", default_value = "utc")]
    pub log_stamp: Stamp,
    /// Split lines longer than SIZE bytes (pieces after the first are marked with '+').
    #[arg(long, value_name = "SIZE", default_value = "16Ki", value_parser = parse_size)]
    pub log_line_max: u64,
    /// When the disk is full and no archive is left to evict, make the program wait instead of
    /// dropping (counted) lines; the keeper does not leave before held lines are written.
    #[arg(long)]
    pub log_blocking: bool,
}

impl LogOptions {
    pub fn config(&self, dir: &Path) -> LogConfig {
        let mut config = LogConfig::new(dir)
            .size(self.log_size)
            .keep(self.log_keep)
            .stamp(self.log_stamp)
            .line_max(usize::try_from(self.log_line_max).unwrap_or(usize::MAX))
            .blocking(self.log_blocking);
        if let Some(age) = self.log_age {
            config = config.age(age);
        }
        if let Some(total) = self.log_total {
            config = config.total(total);
        }
        config
    }
}

impl LogArgs {
    /// The stderr log's configuration, if the streams are kept apart.
    pub fn stderr_config(&self) -> Option<LogConfig> {
        self.log_stderr.as_deref().map(|dir| self.dir_config(dir))
    }

    /// The syslog configuration, if `--syslog` was given.
    pub fn syslog(&self) -> Option<daemonic::SyslogConfig> {
        let config = self.syslog.clone()?;
        Some(match &self.syslog_socket {
            Some(path) => config.socket(path),
            None => config,
        })
    }

    /// The configuration, if `--log` was given (the library makes its directory absolute).
    pub fn config(&self) -> Option<LogConfig> {
        self.log.as_deref().map(|dir| self.dir_config(dir))
    }

    /// A log in `dir` with these options and processor.
    fn dir_config(&self, dir: &Path) -> LogConfig {
        let config = self.options.config(dir);
        match &self.log_processor {
            Some(command) => config.processor(command.clone()),
            None => config,
        }
    }
}

fn parse_size(text: &str) -> Result<u64, String> {
    let usage = || format!("{text:?}: a size such as 10M, 512Ki or 1000000");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| usage())?;
    let factor: u64 = match unit {
        "" => 1,
        "k" | "K" => 1000,
        "M" => 1000 * 1000,
        "G" => 1000 * 1000 * 1000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return Err(usage()),
    };
    number
        .checked_mul(factor)
        .filter(|&n| n > 0)
        .ok_or_else(usage)
}

fn parse_age(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 1.0 && *s <= 10.0 * 365.0 * 86400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "a number of seconds, at least 1".to_string())
}

/// Rotate a service's log now, or reopen its output file (for logrotate's postrotate).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  daemonic reopen -n web          # after logrotate renamed -o FILE: nothing more goes to the old one
  daemonic rotate -n api          # --log DIR: current becomes an archive now

logrotate, without copytruncate:
  /var/log/web.log { postrotate\n    daemonic reopen -n web\n  endscript }")]
pub struct ReopenArgs {
    #[command(flatten)]
    target: Target,
}

pub fn reopen(args: &ReopenArgs) -> Result<u8, Failure> {
    let pidfile = args.target.pidfile()?;
    daemonic::stop::reopen(&pidfile).map_err(|e| Failure::from_library(&e))?;
    Ok(0)
}

/// The logger alone: standard input into a log directory, stamped and rotated (for a runit or
/// s6 log/run script, or any pipeline). Exits at end of input, its last line ended.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  exec daemonic logger /var/log/web                  (runit or s6: log/run)
  some-program 2>&1 | daemonic logger --log-stamp tai64n --log-keep 20 ./logs")]
pub struct LoggerArgs {
    #[command(flatten)]
    options: LogOptions,
    /// The log directory.
    #[arg(value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    dir: PathBuf,
}

pub fn logger(args: &LoggerArgs) -> Result<u8, Failure> {
    let mut log =
        Logger::open(args.options.config(&args.dir)).map_err(|e| Failure::from_library(&e))?;
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; 1 << 17];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Failure::io("standard input".into(), &err)),
        };
        log.write(&buf[..n], SystemTime::now());
        while log.is_stalled() {
            std::thread::sleep(Duration::from_secs(1));
            log.retry(SystemTime::now());
        }
        log.tick(SystemTime::now());
    }
    log.flush_partial(SystemTime::now());
    if log.dropped() > 0 {
        say!(
            "daemonic logger: {} lines dropped (disk full)",
            log.dropped()
        );
    }
    Ok(0)
}

/// Print a service's log: its archives and current, in order; with -f, follow it (across
/// rotations).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  daemonic log -n web --lines 50
  daemonic log -n web -f
  daemonic log -n web --since 2026-11-24T09:00:00Z
  daemonic log --dir /var/log/web -f")]
pub struct ReadArgs {
    #[command(flatten)]
    target: OptionalTarget,
    /// The log directory (instead of a service's).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["name", "pidfile"], value_hint = clap::ValueHint::DirPath)]
    dir: Option<PathBuf>,
    /// Keep printing what is added.
    #[arg(short, long)]
    follow: bool,
    /// Print only the last N lines first.
    #[arg(long, value_name = "N")]
    lines: Option<usize>,
    /// Print only lines stamped at or after TIME (RFC 3339 UTC, as the log writes it: lines are
    /// compared by their stamp's text).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
}

/// A service, optional (`daemonic log` also takes `--dir`).
#[derive(Debug, Clone, Args)]
#[group(skip)]
pub struct OptionalTarget {
    /// The service's name.
    #[arg(short, long, conflicts_with = "pidfile", add = super::complete::daemon_names())]
    name: Option<String>,
    /// The service's pidfile.
    #[arg(short, long, value_name = "PATH")]
    pidfile: Option<PathBuf>,
    /// The run directory.
    #[arg(long, value_name = "DIR", env = "DAEMONIC_RUNDIR", value_hint = clap::ValueHint::DirPath)]
    rundir: Option<PathBuf>,
}

pub fn read(args: &ReadArgs) -> Result<u8, Failure> {
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            let target = Target {
                name: args.target.name.clone(),
                pidfile: args.target.pidfile.clone(),
                rundir: args.target.rundir.clone(),
            };
            let pidfile = target.pidfile()?;
            match ServiceStatus::read(&pidfile).map_err(|e| Failure::from_library(&e))? {
                Some(status) => status.log_dir().map(Path::to_path_buf).ok_or_else(|| {
                    Failure::new(
                        2,
                        format!("{} is not logged (start it with --log DIR)", target.label()),
                    )
                })?,
                None => {
                    return Err(Failure::new(
                        3,
                        format!(
                            "{} has no keeper record, so no known log; give --dir",
                            target.label()
                        ),
                    ));
                }
            }
        }
    };
    // `current` first, held open: a rotation while the archives are read cannot hide a file (the
    // archive our `current` becomes is skipped by its inode, and read through our descriptor).
    let current_path = dir.join("current");
    let mut current = open_current(&current_path)
        .map_err(|e| Failure::io(format!("log {}", current_path.display()), &e))?;
    use std::os::unix::fs::MetadataExt;
    let current_inode = current.metadata().map(|m| m.ino()).unwrap_or(0);
    let files = log_files(&dir).map_err(|e| Failure::io(format!("log {}", dir.display()), &e))?;
    let mut text = Vec::new();
    // The newest archive read here: for `-f`, archives named after it are new.
    let mut last_seen = Vec::new();
    for file in files.iter().filter(|f| **f != current_path) {
        if let Ok(mut f) = daemonic_open(file)
            && f.metadata().map(|m| m.ino()).ok() != Some(current_inode)
        {
            read_plain(&mut f, &mut text);
            last_seen = archive_stem(file).to_vec();
        }
    }
    let _ = current.read_to_end(&mut text);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let selected = select(&text, args.since.as_deref(), args.lines);
    if write_quietly(&mut out, selected).is_err() {
        return Ok(0);
    }
    if !args.follow {
        return Ok(0);
    }
    follow(&dir, current, current_inode, last_seen, &mut out)
}

/// `@….s` and `@….u` archives in name (time) order, then `current`. Not a processor's
/// half-written `@….t`. (Compressed archives are listed: `log -f` finds its place among them;
/// [`read_plain`] leaves them out of what is shown.)
fn log_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut archives: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.as_encoded_bytes();
            name.first() == Some(&b'@') && (name.ends_with(b".s") || name.ends_with(b".u"))
        })
        .map(|e| e.path())
        .collect();
    archives.sort();
    archives.push(dir.join("current"));
    Ok(archives)
}

/// Opens `current`. A rotation renames it and then creates the next one, so for a moment there
/// is none: wait that moment out (bounded), rather than fail.
fn open_current(path: &Path) -> std::io::Result<std::fs::File> {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        match daemonic_open(path) {
            Err(err)
                if err.kind() == std::io::ErrorKind::NotFound
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::yield_now();
            }
            other => return other,
        }
    }
}

/// An archive's name without its `.s`/`.u` (the time it was made).
fn archive_stem(path: &Path) -> &[u8] {
    let name = path.file_name().map_or(&[][..], |n| n.as_encoded_bytes());
    name.strip_suffix(b".s")
        .or_else(|| name.strip_suffix(b".u"))
        .unwrap_or(name)
}

/// Appends a log file's text to `into`, unless it starts with a compressor's magic number
/// (gzip, zstd, xz, bzip2: an archive a processor compressed is for its own tools, and shown as
/// it is it would be noise on a terminal); a compressed file is read no further than that.
fn read_plain(file: &mut std::fs::File, into: &mut Vec<u8>) {
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
    let head = &head[..n];
    let compressed = head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || head.starts_with(b"BZh");
    if !compressed {
        into.extend_from_slice(head);
        let _ = file.read_to_end(into);
    }
}

fn daemonic_open(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// The lines at or after `since` (by their stamp's text), the last `lines` of them.
fn select<'a>(text: &'a [u8], since: Option<&str>, lines: Option<usize>) -> &'a [u8] {
    let mut start = 0;
    if let Some(since) = since {
        let mut at = 0;
        start = text.len();
        for line in text.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(since.as_bytes()) || line > since.as_bytes() {
                start = at;
                break;
            }
            at += line.len();
        }
    }
    let text = &text[start..];
    let Some(n) = lines else { return text };
    let mut count = 0;
    let mut cut = text.len();
    for (i, &b) in text.iter().enumerate().rev() {
        if b == b'\n' && i + 1 < text.len() {
            count += 1;
            if count == n {
                cut = i + 1;
                break;
            }
        }
    }
    if count < n { text } else { &text[cut..] }
}

/// A closed stdout (`daemonic log | head`) ends quietly.
fn write_quietly(out: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    out.write_all(data)?;
    out.flush()
}

/// Prints what is added to `current`; when it is rotated (renamed to an archive), finishes the
/// archive it became, then goes on with the new `current`. Woken by inotify, not by a timer.
fn follow(
    dir: &Path,
    mut file: std::fs::File,
    mut inode: u64,
    mut last_seen: Vec<u8>,
    out: &mut impl Write,
) -> Result<u8, Failure> {
    use std::os::unix::fs::MetadataExt;
    let current = dir.join("current");

    use rustix::event::{PollFd, PollFlags};
    use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
    use std::os::fd::AsFd;
    let inotify = inotify::init(CreateFlags::CLOEXEC)
        .map_err(|e| Failure::io("inotify".into(), &e.into()))?;
    let c_dir = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| Failure::new(2, "log directory name contains a NUL byte"))?;
    let watched =
        WatchFlags::MODIFY | WatchFlags::CREATE | WatchFlags::MOVED_TO | WatchFlags::MOVED_FROM;
    if let Err(err) = inotify::add_watch(&inotify, c_dir.as_c_str(), watched) {
        // Without a watch nothing would ever wake us: say why (often the watch limit,
        // fs.inotify.max_user_watches).
        return Err(Failure::io(
            format!("inotify watch on {}", dir.display()),
            &err.into(),
        ));
    }
    let mut buf = vec![0u8; 1 << 16];
    let mut events = [0u8; 4096];
    loop {
        // Whatever is there now.
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if write_quietly(out, &buf[..n]).is_err() {
                        return Ok(0);
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        // Rotated: the file we read is an archive now (its end was read above). Every archive
        // made after it, however many rotations happened meanwhile, comes next, in order; then
        // the new `current`.
        if let Ok(meta) = std::fs::symlink_metadata(&current)
            && meta.ino() != inode
        {
            let mut rest = Vec::new();
            let _ = file.read_to_end(&mut rest);
            if write_quietly(out, &rest).is_err() {
                return Ok(0);
            }
            let Ok(new) = daemonic_open(&current) else {
                continue;
            };
            let new_inode = new.metadata().map(|m| m.ino()).unwrap_or(0);
            // The archives made since we last looked (by name: names are times). The first is
            // ours, already read: found by its inode, or, if a processor replaced it (a new
            // inode), it is the first. What follows is printed up to the file we now hold as
            // `current`, which may itself have been archived meanwhile.
            let newer: Vec<PathBuf> = log_files(dir)
                .unwrap_or_default()
                .into_iter()
                .filter(|p| *p != current && archive_stem(p) > last_seen.as_slice())
                .collect();
            // (An inode number is only ours while our file still has a name: a removed file's
            // number may already belong to another one.)
            let linked = file.metadata().is_ok_and(|m| m.nlink() > 0);
            let inode_of = |p: &Path| std::fs::metadata(p).map(|m| m.ino()).unwrap_or(0);
            let ours = newer
                .iter()
                .position(|p| linked && inode_of(p) == inode)
                .unwrap_or(0);
            if let Some(p) = newer.get(ours) {
                last_seen = archive_stem(p).to_vec();
            }
            for path in newer.iter().skip(ours + 1) {
                let Ok(mut archive) = daemonic_open(path) else {
                    continue;
                };
                if archive.metadata().map(|m| m.ino()).unwrap_or(0) == new_inode {
                    break;
                }
                let mut whole = Vec::new();
                read_plain(&mut archive, &mut whole);
                if write_quietly(out, &whole).is_err() {
                    return Ok(0);
                }
                last_seen = archive_stem(path).to_vec();
            }
            file = new;
            inode = new_inode;
            continue;
        }
        // Wait for the directory to change, or for our reader to go (`log -f | head`): a pipe
        // whose reader closed reports POLLERR on its write end, and we end as `tail -f` would.
        let stdout = std::io::stdout();
        let mut fds = [
            PollFd::new(&inotify, PollFlags::IN),
            PollFd::from_borrowed_fd(stdout.as_fd(), PollFlags::empty()),
        ];
        let _ = rustix::event::poll(&mut fds, None);
        if fds[1]
            .revents()
            .intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL)
        {
            return Ok(0);
        }
        if !fds[0].revents().contains(PollFlags::IN) {
            continue;
        }
        match rustix::io::read(&inotify, &mut events) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(Failure::io("inotify".into(), &err.into())),
        }
    }
}
