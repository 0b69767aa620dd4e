//! Capturing a program's output into a log directory: lines, timestamps, rotation, retention,
//! long lines, and what happens when the disk is full. The keeper feeds it what it reads from
//! the program's output pipe (which it holds across restarts, so no line is lost); `daemonic
//! logger` feeds it standard input.
//!
//! Layout of a log directory: `current` (being written), and archives named
//! `@YYYYMMDDTHHMMSS.ffffffZ.s` by the UTC time of their rotation, so that names sort by time and
//! no rename cascade is ever needed. Every file ends at a line boundary.
//!
//! Throughput: each read is split at newlines with `memchr`, stamped once (every line of one
//! read shares the time of the read), assembled in one buffer and written with one `write`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, ErrorKind, Step};

/// Output is written once this much is assembled, so the buffer stays small however much one
/// read brings (short lines grow several times with their stamps): the keeper's memory is a
/// goal.
const FLUSH_AT: usize = 8 << 10;

/// How each line is stamped.
///
/// # Example
/// ```
/// use daemonic::Stamp;
/// assert_eq!("tai64n".parse::<Stamp>(), Ok(Stamp::Tai64n));
/// assert!("iso".parse::<Stamp>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Stamp {
    /// RFC 3339 in UTC with microseconds: `2026-11-24T09:53:28.123456Z`.
    #[default]
    Utc,
    /// RFC 3339 in local time with its offset: `2026-11-24T10:53:28.123456+01:00`.
    Local,
    /// TAI64N as daemontools and runit write it (`@` and 24 hex digits), with the label
    /// 2^62 + 10 + Unix seconds (their convention; leap seconds are not counted).
    Tai64n,
    /// No timestamp: lines are written as the program wrote them.
    None,
}

impl std::str::FromStr for Stamp {
    type Err = String;

    fn from_str(text: &str) -> Result<Stamp, String> {
        match text {
            "utc" | "rfc3339" => Ok(Stamp::Utc),
            "local" => Ok(Stamp::Local),
            "tai64n" => Ok(Stamp::Tai64n),
            "none" => Ok(Stamp::None),
            _ => Err(format!("{text:?}: expected utc, local, tai64n or none")),
        }
    }
}

/// Where and how a log is kept.
///
/// # Example
/// ```
/// use daemonic::{LogConfig, Stamp};
/// let config = LogConfig::new("/var/log/web").size(1 << 20).keep(5).stamp(Stamp::Tai64n);
/// assert_eq!(config.dir(), std::path::Path::new("/var/log/web"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    dir: PathBuf,
    size: u64,
    age: Option<Duration>,
    keep: usize,
    total: Option<u64>,
    stamp: Stamp,
    line_max: usize,
    blocking: bool,
    processor: Option<String>,
}

impl LogConfig {
    /// Default rotation size: 10 MB.
    pub const SIZE: u64 = 10_000_000;
    /// Default number of archives kept.
    pub const KEEP: usize = 10;
    /// Default longest line before it is split.
    pub const LINE_MAX: usize = 16 << 10;

    /// A log in `dir` (a relative one is taken from the current directory now): 10 MB files,
    /// 10 archives, UTC stamps, 16 KiB lines, counted drops when the disk is full.
    pub fn new(dir: impl Into<PathBuf>) -> LogConfig {
        LogConfig {
            dir: crate::stdio::absolute(dir.into()),
            size: LogConfig::SIZE,
            age: None,
            keep: LogConfig::KEEP,
            total: None,
            stamp: Stamp::Utc,
            line_max: LogConfig::LINE_MAX,
            blocking: false,
            processor: None,
        }
    }

    /// Rotates `current` before it would grow past `bytes` (at a line boundary; a single line
    /// longer than that is written whole into a file of its own).
    #[must_use]
    pub fn size(mut self, bytes: u64) -> LogConfig {
        self.size = bytes.max(1);
        self
    }

    /// Also rotates a non-empty `current` once it is this old.
    #[must_use]
    pub fn age(mut self, age: Duration) -> LogConfig {
        self.age = Some(age);
        self
    }

    /// Keeps at most this many archives (the oldest go first).
    #[must_use]
    pub fn keep(mut self, archives: usize) -> LogConfig {
        self.keep = archives;
        self
    }

    /// Keeps the archives' total size at most this many bytes.
    #[must_use]
    pub fn total(mut self, bytes: u64) -> LogConfig {
        self.total = Some(bytes);
        self
    }

    /// How lines are stamped.
    #[must_use]
    pub fn stamp(mut self, stamp: Stamp) -> LogConfig {
        self.stamp = stamp;
        self
    }

    /// Splits lines longer than this (every piece after the first is marked; see
    /// [`Logger::write`]).
    #[must_use]
    pub fn line_max(mut self, bytes: usize) -> LogConfig {
        self.line_max = bytes.max(16);
        self
    }

    /// When the disk is full and no archive is left to evict: wait (back-pressure: the program
    /// blocks on its full pipe) instead of dropping lines.
    #[must_use]
    pub fn blocking(mut self, on: bool) -> LogConfig {
        self.blocking = on;
        self
    }

    /// A shell command run on each closed archive (under a keeper, outside its loop): it reads
    /// the archive on stdin, and what it writes on stdout replaces it (`zstd -q`, `gzip`). The
    /// archive waits as `@….u` meanwhile; if the command fails, it is kept as it was.
    #[must_use]
    pub fn processor(mut self, command: impl Into<String>) -> LogConfig {
        self.processor = Some(command.into());
        self
    }

    /// The processor command, if any.
    pub fn processor_command(&self) -> Option<&str> {
        self.processor.as_deref()
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn encode(&self, e: &mut crate::handoff::Encoder) {
        use std::os::unix::ffi::OsStrExt;
        e.bytes(self.dir.as_os_str().as_bytes());
        e.u64(self.size);
        e.option(self.age, crate::handoff::Encoder::duration);
        e.u64(self.keep as u64);
        e.option(self.total, crate::handoff::Encoder::u64);
        e.u8(match self.stamp {
            Stamp::Utc => 0,
            Stamp::Local => 1,
            Stamp::Tai64n => 2,
            Stamp::None => 3,
        });
        e.u64(self.line_max as u64);
        e.bool(self.blocking);
        e.option(self.processor.as_ref(), |e, p| e.bytes(p.as_bytes()));
    }

    pub(crate) fn decode(d: &mut crate::handoff::Decoder<'_>) -> Option<LogConfig> {
        use std::os::unix::ffi::OsStrExt;
        Some(LogConfig {
            dir: PathBuf::from(std::ffi::OsStr::from_bytes(d.bytes()?)),
            size: d.u64()?,
            age: d.option(crate::handoff::Decoder::duration)?,
            keep: usize::try_from(d.u64()?).ok()?,
            total: d.option(crate::handoff::Decoder::u64)?,
            stamp: match d.u8()? {
                0 => Stamp::Utc,
                1 => Stamp::Local,
                2 => Stamp::Tai64n,
                3 => Stamp::None,
                _ => return None,
            },
            line_max: usize::try_from(d.u64()?).ok()?,
            blocking: d.bool()?,
            processor: d.option(|d| String::from_utf8(d.bytes()?.to_vec()).ok())?,
        })
    }
}

/// A log being written.
///
/// # Example
/// ```
/// let dir = tempfile::tempdir()?;
/// let mut log = daemonic::Logger::open(daemonic::LogConfig::new(dir.path()))?;
/// log.write(b"hello\nwor", std::time::SystemTime::now());
/// log.write(b"ld\n", std::time::SystemTime::now());
/// let text = std::fs::read_to_string(dir.path().join("current"))?;
/// assert!(text.lines().nth(1).unwrap().ends_with("Z world"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Logger {
    config: LogConfig,
    current: File,
    size: u64,
    opened: SystemTime,
    /// The start of a line not yet ended by a newline.
    partial: Vec<u8>,
    /// Whether `partial` continues a line that was split.
    continued: bool,
    out: Vec<u8>,
    stamp: Vec<u8>,
    /// Lines dropped since writing last failed, and since when.
    dropping: Option<(u64, SystemTime)>,
    /// Lines dropped over the log's life.
    dropped: u64,
    /// Blocking mode: output waiting for space.
    stalled: bool,
    /// The time the last archive was named for: names strictly increase, so they never collide
    /// and always sort in the order they were made.
    last_archive: SystemTime,
    /// Archives waiting for the processor (`@….u`), oldest first.
    unprocessed: std::collections::VecDeque<PathBuf>,
    /// Rotations so far (the keeper gives back what each one took: see `Keeper::after_rotation`).
    rotations: u64,
}

impl Logger {
    /// Opens (creating) the directory and its `current`, appended to.
    pub fn open(config: LogConfig) -> Result<Logger, Error> {
        let fail = |what: &Path, err: io::Error| {
            Error::os(Step::Stdout, format!("log {}", what.display()), err)
        };
        // The keeper renames, creates and removes files in the directory by name for the log's
        // whole life: nobody else may be able to rearrange it or any directory above it.
        let unsafe_dir = |why: String| {
            Error::new(
                ErrorKind::PermissionDenied,
                Step::Stdout,
                format!(
                    "log {}: {why}; choose a directory only you (or root) can change",
                    config.dir.display()
                ),
            )
        };
        if let Some(parent) = config.dir.parent().filter(|p| p.exists()) {
            crate::pidfile::safe_directory(parent).map_err(unsafe_dir)?;
        }
        match std::fs::create_dir(&config.dir) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(fail(&config.dir, err)),
        }
        let meta = std::fs::symlink_metadata(&config.dir).map_err(|e| fail(&config.dir, e))?;
        if !meta.is_dir() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                Step::Stdout,
                format!("log {}: not a directory", config.dir.display()),
            ));
        }
        crate::pidfile::safe_directory(&config.dir).map_err(unsafe_dir)?;
        let path = config.dir.join("current");
        let current = open_current(&path).map_err(|e| fail(&path, e))?;
        let size = current.metadata().map_err(|e| fail(&path, e))?.len();
        Ok(Logger {
            current,
            size,
            opened: SystemTime::now(),
            partial: Vec::new(),
            continued: false,
            out: Vec::new(),
            stamp: Vec::with_capacity(40),
            dropping: None,
            dropped: 0,
            stalled: false,
            last_archive: UNIX_EPOCH,
            rotations: 0,
            unprocessed: std::collections::VecDeque::new(),
            config,
        })
    }

    /// Finishes what a keeper that died left (only the keeper that holds the service's lock may:
    /// another process's processor may be at work): archives it had not processed are queued for
    /// processing (or, without a processor, kept as they are); half-written outputs go.
    pub(crate) fn recover(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.config.dir) else {
            return;
        };
        let mut names: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().as_encoded_bytes().first() == Some(&b'@'))
            .map(|e| e.path())
            .collect();
        names.sort_unstable();
        for name in names {
            let bytes = name.as_os_str().as_encoded_bytes();
            if bytes.ends_with(b".t") {
                let _ = std::fs::remove_file(&name);
            } else if bytes.ends_with(b".u") {
                if self.config.processor.is_some() {
                    self.unprocessed.push_back(name);
                } else {
                    let _ = std::fs::rename(&name, name.with_extension("s"));
                }
            }
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Lines dropped (disk full, nothing left to evict) over the log's life.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Gives back the memory of buffers that hold nothing (the output went quiet); they are
    /// taken again by the next [`write`](Self::write).
    pub fn shed(&mut self) {
        if self.out.is_empty() {
            self.out = Vec::new();
        }
        if self.partial.is_empty() {
            self.partial = Vec::new();
        }
    }

    /// In blocking mode, whether output waits for space (the caller then stops reading).
    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// Takes bytes as the program wrote them: complete lines are stamped with `now` and written;
    /// the rest waits for its newline. A line longer than the maximum is split: each piece is a
    /// line of its own, and every piece after the first has `+` where the others have the space
    /// after the timestamp (with no timestamps, it starts with `+ `). Bytes are written as they
    /// came, invalid UTF-8 included.
    pub fn write(&mut self, data: &[u8], now: SystemTime) {
        // `out` is not cleared: in blocking mode it may hold lines that wait for space, and
        // these go first. Otherwise every commit leaves it empty.
        if self.out.capacity() == 0 {
            self.out.reserve_exact(FLUSH_AT + 4096);
        }
        self.format_stamp(now);
        let mut rest = data;
        while !rest.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(end) => {
                    let (line, tail) = rest.split_at(end);
                    rest = &tail[1..];
                    if self.partial.is_empty() && self.continued && line.is_empty() {
                        // The line ended exactly where its last piece did: nothing is left.
                    } else if self.partial.is_empty() {
                        self.emit_split(line);
                    } else {
                        let mut whole = std::mem::take(&mut self.partial);
                        whole.extend_from_slice(line);
                        self.emit_split(&whole);
                        whole.clear();
                        self.partial = whole;
                    }
                    self.continued = false;
                    if self.out.len() >= FLUSH_AT {
                        self.commit(now);
                    }
                }
                None => {
                    self.partial.extend_from_slice(rest);
                    rest = &[];
                    // A line that will not end soon: write what fills a piece now.
                    while self.partial.len() >= self.config.line_max {
                        let piece: Vec<u8> = self.partial.drain(..self.config.line_max).collect();
                        self.emit_piece(&piece);
                        self.continued = true;
                    }
                }
            }
        }
        self.commit(now);
    }

    /// Ends the unfinished line, if any (the program exited). Not while output waits for space
    /// (blocking mode): the pipe may still hold the rest of that line.
    pub fn flush_partial(&mut self, now: SystemTime) {
        if self.partial.is_empty() || self.stalled {
            return;
        }
        self.format_stamp(now);
        let line = std::mem::take(&mut self.partial);
        self.emit_split(&line);
        self.continued = false;
        self.commit(now);
    }

    /// A line of the keeper's own (`daemonic: ...`), stamped like the program's.
    pub fn event(&mut self, text: &str, now: SystemTime) {
        self.format_stamp(now);
        let mut line = Vec::with_capacity(10 + text.len());
        line.extend_from_slice(b"daemonic: ");
        line.extend_from_slice(text.as_bytes());
        let continued = std::mem::replace(&mut self.continued, false);
        self.emit_split(&line);
        self.continued = continued;
        self.commit(now);
    }

    /// Rotates now (on demand), if `current` holds anything.
    pub fn rotate(&mut self, now: SystemTime) {
        if self.size > 0 {
            let _ = self.rotate_now(now);
        }
    }

    /// Rotates if `current` is older than the configured age; returns when to look again.
    pub fn tick(&mut self, now: SystemTime) -> Option<Duration> {
        let age = self.config.age?;
        let elapsed = now.duration_since(self.opened).unwrap_or_default();
        if elapsed >= age {
            self.rotate(now);
            return Some(age);
        }
        Some(age - elapsed)
    }

    /// Retries output that waits for space (blocking mode).
    pub fn retry(&mut self, now: SystemTime) {
        if self.stalled {
            self.commit(now);
        }
    }

    /// Encodes what lives only in memory (the open `current` is reopened by path).
    pub(crate) fn encode(&self, e: &mut crate::handoff::Encoder) {
        self.config.encode(e);
        e.u32(self.unprocessed.len() as u32);
        for archive in &self.unprocessed {
            e.bytes(std::os::unix::ffi::OsStrExt::as_bytes(archive.as_os_str()));
        }
        e.bytes(&self.partial);
        e.bool(self.continued);
        e.u64(self.dropped);
        e.option(self.dropping, |e, (count, since)| {
            e.u64(count);
            e.system_time(since);
        });
        e.system_time(self.opened);
    }

    pub(crate) fn decode(d: &mut crate::handoff::Decoder<'_>) -> Option<Logger> {
        let config = LogConfig::decode(d)?;
        let mut unprocessed = std::collections::VecDeque::new();
        for _ in 0..d.u32()? {
            unprocessed.push_back(PathBuf::from(std::ffi::OsStr::from_bytes_compat(
                d.bytes()?,
            )));
        }
        let partial = d.bytes()?.to_vec();
        let continued = d.bool()?;
        let dropped = d.u64()?;
        let dropping = d.option(|d| Some((d.u64()?, d.system_time()?)))?;
        let opened = d.system_time()?;
        let mut logger = Logger::open(config).ok()?;
        logger.unprocessed = unprocessed;
        logger.partial = partial;
        logger.continued = continued;
        logger.dropped = dropped;
        logger.dropping = dropping;
        logger.opened = opened;
        Some(logger)
    }

    fn emit_split(&mut self, line: &[u8]) {
        let max = self.config.line_max;
        let mut rest = line;
        loop {
            let take = rest.len().min(max);
            let (piece, tail) = rest.split_at(take);
            self.emit_piece(piece);
            rest = tail;
            if rest.is_empty() {
                break;
            }
            self.continued = true;
        }
    }

    fn emit_piece(&mut self, piece: &[u8]) {
        if self.config.stamp == Stamp::None {
            if self.continued {
                self.out.extend_from_slice(b"+ ");
            }
        } else {
            self.out.extend_from_slice(&self.stamp);
            self.out.push(if self.continued { b'+' } else { b' ' });
        }
        self.out.extend_from_slice(piece);
        self.out.push(b'\n');
    }

    fn format_stamp(&mut self, now: SystemTime) {
        self.stamp.clear();
        format_stamp(self.config.stamp, now, &mut self.stamp);
    }

    /// Writes `out` (whole lines), rotating at line boundaries and handling a full disk.
    fn commit(&mut self, now: SystemTime) {
        if self.out.is_empty() {
            return;
        }
        if let Some((count, since)) = self.dropping {
            // Writing failed before. The note and what follows go in one write: either both
            // (writing works again, and the note marks the gap where it is) or neither (still
            // full: these lines are counted too). A note alone would fit in the room a failed
            // write leaves, and notes would alternate with drops.
            let mut note = Vec::with_capacity(160 + self.out.len());
            format_stamp(self.config.stamp, now, &mut note);
            if !note.is_empty() {
                note.push(b' ');
            }
            note.extend_from_slice(b"daemonic: dropped ");
            push_decimal(&mut note, count);
            note.extend_from_slice(b" lines since ");
            format_stamp(Stamp::Utc, since, &mut note);
            note.extend_from_slice(b" (could not write the log: disk full)\n");
            note.extend_from_slice(&self.out);
            match self.append(&note) {
                Ok(()) => {
                    self.dropping = None;
                    self.out.clear();
                    self.stalled = false;
                    if self.size >= self.config.size {
                        let _ = self.rotate_now(now);
                    }
                }
                Err(_) if self.config.blocking => self.stalled = true,
                Err(_) => self.count_drop(now),
            }
            return;
        }
        let mut out = std::mem::take(&mut self.out);
        let mut start = 0;
        while start < out.len() {
            let room = self.config.size.saturating_sub(self.size);
            let rest = &out[start..];
            let take = if rest.len() as u64 <= room {
                rest.len()
            } else {
                // The longest run of whole lines that fits; rotate first if none does.
                match memchr::memrchr(b'\n', &rest[..room as usize]) {
                    Some(end) => end + 1,
                    None if self.size > 0 => {
                        if self.rotate_now(now).is_err() {
                            // Not rotated, and nothing more fits: held (blocking) or counted.
                            self.keep_or_drop(out, start, now);
                            return;
                        }
                        continue;
                    }
                    // One line longer than a whole file: it gets a file of its own.
                    None => memchr::memchr(b'\n', rest).map_or(rest.len(), |e| e + 1),
                }
            };
            match self.append(&rest[..take]) {
                Ok(()) => start += take,
                Err(_) => {
                    self.keep_or_drop(out, start, now);
                    return;
                }
            }
            if self.size >= self.config.size {
                let _ = self.rotate_now(now);
            }
        }
        out.clear();
        self.out = out;
        self.stalled = false;
    }

    /// After a failed write of `out[start..]`: in blocking mode it waits for space, otherwise
    /// its lines are counted as dropped.
    fn keep_or_drop(&mut self, mut out: Vec<u8>, start: usize, now: SystemTime) {
        out.drain(..start);
        self.out = out;
        if self.config.blocking {
            self.stalled = true;
        } else {
            self.count_drop(now);
        }
    }

    /// Drops what `out` holds, counting its lines (each counted once: `out` is emptied).
    fn count_drop(&mut self, now: SystemTime) {
        let lines = memchr::memchr_iter(b'\n', &self.out).count() as u64;
        self.out.clear();
        self.dropped += lines;
        let (count, _since) = self.dropping.get_or_insert((0, now));
        *count += lines;
    }

    /// Appends whole lines; on a full disk, evicts the oldest archives and tries again; leaves
    /// `current` at a line boundary whatever happens.
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        loop {
            match self.current.write_all(data) {
                Ok(()) => {
                    self.size += data.len() as u64;
                    return Ok(());
                }
                Err(err) => {
                    // A partial write leaves half a line: cut the file back to where it was.
                    let _ = self.current.set_len(self.size);
                    let full =
                        matches!(err.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT));
                    if full && self.evict_oldest() {
                        continue;
                    }
                    return Err(err);
                }
            }
        }
    }

    /// Closes `current` as an archive named by `now`, opens a new one, applies retention.
    fn rotate_now(&mut self, now: SystemTime) -> io::Result<()> {
        let mut at = now.max(self.last_archive + Duration::from_micros(1));
        let mut archive;
        loop {
            let mut name = Vec::with_capacity(32);
            name.push(b'@');
            format_archive_time(at, &mut name);
            // An archive for the processor is `.u` until it has been processed.
            name.extend_from_slice(if self.config.processor.is_some() {
                b".u"
            } else {
                b".s"
            });
            archive = self
                .config
                .dir
                .join(std::ffi::OsStr::from_bytes_compat(&name));
            // An archive from an earlier life of this log (a clock set back): never overwrite.
            if !archive.exists() && !archive.with_extension("s").exists() {
                break;
            }
            at += Duration::from_micros(1);
        }
        self.last_archive = at;
        // Archives are kept: make them durable before they are named.
        let _ = self.current.sync_data();
        let current = self.config.dir.join("current");
        std::fs::rename(&current, &archive)?;
        // No new `current` (no inode left): the archive goes back to being `current`, so that
        // writing goes on where it was and the next rotation can work.
        self.current = match open_current(&current) {
            Ok(file) => file,
            Err(err) => {
                let _ = std::fs::rename(&archive, &current);
                return Err(err);
            }
        };
        self.size = 0;
        self.opened = now;
        if self.config.processor.is_some() {
            self.unprocessed.push_back(archive);
        }
        self.retain();
        self.rotations += 1;
        Ok(())
    }

    /// The next archive waiting for the processor, if any (the caller runs it).
    pub(crate) fn next_unprocessed(&mut self) -> Option<PathBuf> {
        while let Some(archive) = self.unprocessed.pop_front() {
            // Retention may have removed it meanwhile.
            if archive.exists() {
                return Some(archive);
            }
        }
        None
    }

    /// The archives, oldest first, with their sizes.
    fn archives(&self) -> Vec<(PathBuf, u64)> {
        let Ok(entries) = std::fs::read_dir(&self.config.dir) else {
            return Vec::new();
        };
        let mut found: Vec<(PathBuf, u64)> = entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.as_encoded_bytes();
                name.first() == Some(&b'@') && (name.ends_with(b".s") || name.ends_with(b".u"))
            })
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                meta.is_file().then(|| (e.path(), meta.size()))
            })
            .collect();
        // Names are unique, so the unstable sort orders them the same; the stable one takes a
        // 4 KiB scratch buffer on the stack, a page the keeper would keep at every rotation.
        found.sort_unstable();
        found
    }

    fn retain(&mut self) {
        let archives = self.archives();
        let mut total: u64 = archives.iter().map(|(_, s)| s).sum();
        let mut i = 0;
        while i < archives.len() {
            let too_many = archives.len() - i > self.config.keep;
            let too_big = self.config.total.is_some_and(|t| total > t);
            if !too_many && !too_big {
                break;
            }
            let _ = std::fs::remove_file(&archives[i].0);
            total -= archives[i].1;
            i += 1;
        }
    }

    /// How many times this log has rotated.
    pub(crate) fn rotations(&self) -> u64 {
        self.rotations
    }

    fn evict_oldest(&mut self) -> bool {
        match self.archives().first() {
            Some((path, _)) => std::fs::remove_file(path).is_ok(),
            None => false,
        }
    }
}

trait FromBytesCompat {
    fn from_bytes_compat(bytes: &[u8]) -> &std::ffi::OsStr;
}

impl FromBytesCompat for std::ffi::OsStr {
    fn from_bytes_compat(bytes: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(bytes)
    }
}

fn open_current(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .and_then(|file| {
            if file.metadata()?.is_file() {
                Ok(file)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a regular file",
                ))
            }
        })
}

/// Appends the stamp for `now` in `format` (nothing for [`Stamp::None`]).
pub(crate) fn format_stamp(format: Stamp, now: SystemTime, out: &mut Vec<u8>) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let micros = since.subsec_micros();
    match format {
        Stamp::None => {}
        Stamp::Utc => {
            civil(secs, out, b'T');
            out.push(b'.');
            push_padded(out, u64::from(micros), 6);
            out.push(b'Z');
        }
        Stamp::Local => {
            let offset = local_offset(secs);
            civil(secs + offset, out, b'T');
            out.push(b'.');
            push_padded(out, u64::from(micros), 6);
            out.push(if offset < 0 { b'-' } else { b'+' });
            let minutes = offset.unsigned_abs() / 60;
            push_padded(out, minutes / 60, 2);
            out.push(b':');
            push_padded(out, minutes % 60, 2);
        }
        Stamp::Tai64n => {
            let label = (1u64 << 62) + 10 + since.as_secs();
            out.push(b'@');
            push_hex(out, label, 16);
            push_hex(out, u64::from(since.subsec_nanos()), 8);
        }
    }
}

/// `YYYYMMDDTHHMMSS.ffffffZ`: UTC, sortable, no characters shells dislike.
fn format_archive_time(now: SystemTime, out: &mut Vec<u8>) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut date = Vec::with_capacity(20);
    civil(since.as_secs() as i64, &mut date, b'T');
    out.extend(date.iter().filter(|&&b| b != b'-' && b != b':'));
    out.push(b'.');
    push_padded(out, u64::from(since.subsec_micros()), 6);
    out.push(b'Z');
}

/// `YYYY-MM-DD?HH:MM:SS` for Unix seconds (UTC), by Howard Hinnant's days-to-civil algorithm:
/// written out because the keeper must not carry a date library (its memory is a goal).
fn civil(secs: i64, out: &mut Vec<u8>, separator: u8) {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400) as u64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    push_padded(out, year.max(0) as u64, 4);
    out.push(b'-');
    push_padded(out, month as u64, 2);
    out.push(b'-');
    push_padded(out, day as u64, 2);
    out.push(separator);
    push_padded(out, rem / 3600, 2);
    out.push(b':');
    push_padded(out, rem % 3600 / 60, 2);
    out.push(b':');
    push_padded(out, rem % 60, 2);
}

/// The local offset from UTC at `secs`, in seconds (glibc reads `TZ` or `/etc/localtime`).
fn local_offset(secs: i64) -> i64 {
    let t = secs as libc::time_t;
    // libc: the time zone rules are the C library's (rustix makes system calls only).
    // SAFETY: localtime_r writes into the struct we pass; a zeroed tm is a valid output buffer.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

fn push_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut n = 0;
    let mut v = value;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for _ in n..width {
        out.push(b'0');
    }
    for i in (0..n).rev() {
        out.push(digits[i]);
    }
}

fn push_decimal(out: &mut Vec<u8>, value: u64) {
    push_padded(out, value, 1);
}

/// `value` in decimal, without the formatting machinery (the keeper's memory is a goal).
pub(crate) fn decimal(value: u64) -> String {
    let mut digits = Vec::with_capacity(20);
    push_decimal(&mut digits, value);
    String::from_utf8_lossy(&digits).into_owned()
}

fn push_hex(out: &mut Vec<u8>, value: u64, width: usize) {
    for i in (0..width).rev() {
        let nibble = ((value >> (i * 4)) & 0xf) as u8;
        out.push(if nibble < 10 {
            b'0' + nibble
        } else {
            b'a' + nibble - 10
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, micros: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, micros * 1000)
    }

    fn stamp(format: Stamp, t: SystemTime) -> String {
        let mut out = Vec::new();
        format_stamp(format, t, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn syslog_messages_are_rfc3164_and_a_missing_daemon_counts_drops() {
        let mut out = Vec::new();
        rfc3164_time(at(1_795_513_208, 0), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.len(), 15, "{text:?}");
        assert!(text.starts_with("Nov "), "{text:?}");
        let dir = tempfile::tempdir().unwrap();
        let receiver = std::os::unix::net::UnixDatagram::bind(dir.path().join("log")).unwrap();
        let mut syslog = Syslog::new(SyslogConfig::default(), "web[42]");
        // Point it at our socket instead of /dev/log.
        let socket = std::os::unix::net::UnixDatagram::unbound().unwrap();
        socket.connect(dir.path().join("log")).unwrap();
        syslog.socket = Some(socket);
        syslog.write(b"hello\nwor", at(1_795_513_208, 0));
        syslog.write(b"ld\n", at(1_795_513_208, 0));
        let mut buf = [0u8; 256];
        let n = receiver.recv(&mut buf).unwrap();
        let first = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            first.starts_with("<30>Nov ") && first.ends_with(" web[42]: hello"),
            "{first:?}"
        );
        let n = receiver.recv(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).ends_with(" web[42]: world"));
        drop(receiver);
        syslog.socket = None;
        let missing = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let _ = missing.connect(dir.path().join("nothing-here"));
        syslog.write(b"lost\n", SystemTime::now());
        assert_eq!(syslog.dropped(), u64::from(!Path::new("/dev/log").exists()));
    }

    #[test]
    fn stamps_are_exact() {
        assert_eq!(stamp(Stamp::Utc, at(0, 0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            stamp(Stamp::Utc, at(951_782_400, 5)),
            "2000-02-29T00:00:00.000005Z"
        );
        assert_eq!(
            stamp(Stamp::Utc, at(1_795_513_208, 123_456)),
            "2026-11-24T09:40:08.123456Z"
        );
        assert_eq!(stamp(Stamp::Tai64n, at(0, 0)), "@400000000000000a00000000");
        assert_eq!(stamp(Stamp::None, at(5, 0)), "");
        let mut name = Vec::new();
        format_archive_time(at(1_795_513_208, 7), &mut name);
        assert_eq!(name, b"20261124T094008.000007Z");
    }

    fn read_all(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn lines_are_assembled_across_reads_and_split_when_too_long() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig::new(dir.path()).stamp(Stamp::None).line_max(16);
        let mut log = Logger::open(config).unwrap();
        let now = SystemTime::now();
        log.write(b"one\ntw", now);
        log.write(b"o\n", now);
        log.write(&[b'x'; 40], now);
        log.write(b"y\n\xff\xfe bytes\n", now);
        log.write(b"tail", now);
        log.flush_partial(now);
        let text = std::fs::read(dir.path().join("current")).unwrap();
        let want: &[u8] =
            b"one\ntwo\nxxxxxxxxxxxxxxxx\n+ xxxxxxxxxxxxxxxx\n+ xxxxxxxxy\n\xff\xfe bytes\ntail\n";
        assert_eq!(
            String::from_utf8_lossy(&text),
            String::from_utf8_lossy(want)
        );
    }

    #[test]
    fn shedding_between_writes_keeps_unfinished_lines_and_frees_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig::new(dir.path()).stamp(Stamp::None);
        let mut log = Logger::open(config).unwrap();
        let now = SystemTime::now();
        log.write(b"one\nunfin", now);
        log.shed();
        assert_eq!(
            log.out.capacity(),
            0,
            "an empty output buffer is given back"
        );
        assert_eq!(log.partial, b"unfin", "an unfinished line is kept");
        log.write(b"ished\n", now);
        log.shed();
        assert_eq!(log.partial.capacity(), 0);
        log.write(b"two\n", now);
        let text = std::fs::read(dir.path().join("current")).unwrap();
        assert_eq!(text, b"one\nunfinished\ntwo\n");
    }

    #[test]
    fn a_line_that_ends_on_a_piece_boundary_leaves_no_empty_piece() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig::new(dir.path()).stamp(Stamp::None).line_max(16);
        let mut log = Logger::open(config).unwrap();
        let now = SystemTime::now();
        log.write(&[b'a'; 32], now);
        log.write(b"\n\nnext\n", now);
        let text = std::fs::read_to_string(dir.path().join("current")).unwrap();
        assert_eq!(text, "aaaaaaaaaaaaaaaa\n+ aaaaaaaaaaaaaaaa\n\nnext\n");
    }

    #[test]
    fn rotation_at_line_boundaries_and_retention_by_count_and_total() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig::new(dir.path())
            .stamp(Stamp::None)
            .size(100)
            .keep(3);
        let mut log = Logger::open(config).unwrap();
        let mut t = SystemTime::now();
        for i in 0..100u32 {
            t += Duration::from_micros(10);
            log.write(format!("line {i:04} padding\n").as_bytes(), t);
        }
        let names = read_all(dir.path());
        assert_eq!(names.len(), 4, "3 archives and current: {names:?}");
        assert_eq!(names.last().map(String::as_str), Some("current"));
        let mut all = String::new();
        for name in &names {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(
                text.ends_with('\n') && text.len() <= 100,
                "{name}: {text:?}"
            );
            all.push_str(&text);
        }
        // The newest lines, in order, every one whole.
        let lines: Vec<&str> = all.lines().collect();
        assert_eq!(lines.last(), Some(&"line 0099 padding"));
        for pair in lines.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
        }
        let dir2 = tempfile::tempdir().unwrap();
        let config = LogConfig::new(dir2.path())
            .stamp(Stamp::None)
            .size(50)
            .keep(100)
            .total(120);
        let mut log = Logger::open(config).unwrap();
        for i in 0..40u32 {
            t += Duration::from_micros(10);
            log.write(format!("entry {i:03}\n").as_bytes(), t);
        }
        let archived: u64 = read_all(dir2.path())
            .iter()
            .filter(|n| n.starts_with('@'))
            .map(|n| std::fs::metadata(dir2.path().join(n)).unwrap().len())
            .sum();
        assert!(archived <= 120, "{archived}");
    }

    #[test]
    fn dropped_lines_are_counted_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Logger::open(LogConfig::new(dir.path()).stamp(Stamp::None)).unwrap();
        // A descriptor that refuses every write stands in for a full disk.
        log.current = File::open("/dev/null").unwrap();
        let now = SystemTime::now();
        let mut data = Vec::new();
        for i in 0..5000 {
            data.extend_from_slice(format!("line {i} ..............................\n").as_bytes());
        }
        log.write(&data, now);
        log.write(b"one more\n", now);
        assert_eq!(log.dropped(), 5001);
    }

    #[test]
    fn events_are_stamped_lines_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Logger::open(LogConfig::new(dir.path())).unwrap();
        log.write(b"half", at(1_795_513_208, 0));
        log.event("started (pid 42)", at(1_795_513_208, 1));
        log.write(b" done\n", at(1_795_513_208, 2));
        let text = std::fs::read_to_string(dir.path().join("current")).unwrap();
        assert_eq!(
            text,
            "2026-11-24T09:40:08.000001Z daemonic: started (pid 42)\n2026-11-24T09:40:08.000002Z half done\n"
        );
    }
}

/// Where syslog lines go: a facility and priority (`daemon.info` by default).
///
/// # Example
/// ```
/// use daemonic::SyslogConfig;
/// let config: SyslogConfig = "local3.warning".parse().unwrap();
/// assert_eq!(config.pri(), 19 * 8 + 4);
/// assert!("mail.loud".parse::<SyslogConfig>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    facility: u8,
    priority: u8,
    socket: PathBuf,
}

impl Default for SyslogConfig {
    fn default() -> SyslogConfig {
        SyslogConfig {
            facility: 3,
            priority: 6,
            socket: PathBuf::from("/dev/log"),
        }
    }
}

impl SyslogConfig {
    /// The syslog socket (default `/dev/log`; systemd also listens on
    /// `/run/systemd/journal/syslog`).
    #[must_use]
    pub fn socket(mut self, path: impl Into<PathBuf>) -> SyslogConfig {
        self.socket = path.into();
        self
    }

    /// The `<PRI>` value: facility × 8 + priority.
    pub fn pri(&self) -> u8 {
        self.facility * 8 + self.priority
    }
}

impl std::str::FromStr for SyslogConfig {
    type Err = String;

    fn from_str(text: &str) -> Result<SyslogConfig, String> {
        const FACILITIES: [&str; 24] = [
            "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
            "authpriv", "ftp", "ntp", "security", "console", "clock", "local0", "local1", "local2",
            "local3", "local4", "local5", "local6", "local7",
        ];
        const PRIORITIES: [&str; 8] = [
            "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
        ];
        let usage = || format!("{text:?}: FACILITY.PRIORITY, such as daemon.info or local0.err");
        let (facility, priority) = text.split_once('.').unwrap_or((text, "info"));
        let facility = FACILITIES
            .iter()
            .position(|f| *f == facility)
            .ok_or_else(usage)?;
        let priority = match priority {
            "error" => 3,
            "warn" => 4,
            p => PRIORITIES.iter().position(|x| *x == p).ok_or_else(usage)?,
        };
        Ok(SyslogConfig {
            facility: facility as u8,
            priority: priority as u8,
            socket: PathBuf::from("/dev/log"),
        })
    }
}

/// Lines forwarded to the local syslog socket (`/dev/log`), one datagram each, never blocking:
/// a full socket (or no syslog daemon) drops the line and counts it.
#[derive(Debug)]
pub struct Syslog {
    config: SyslogConfig,
    socket: Option<std::os::unix::net::UnixDatagram>,
    tag: Vec<u8>,
    partial: Vec<u8>,
    message: Vec<u8>,
    dropped: u64,
}

impl Syslog {
    /// Forwarding with `tag` (`name[pid]` in each message). The socket is connected at once and
    /// again whenever sending fails for want of a listener (syslogd restarted).
    pub fn new(config: SyslogConfig, tag: &str) -> Syslog {
        let mut syslog = Syslog {
            config,
            socket: None,
            tag: Vec::new(),
            partial: Vec::new(),
            message: Vec::with_capacity(1024),
            dropped: 0,
        };
        syslog.set_tag(tag);
        syslog.connect();
        syslog
    }

    /// The tag for the lines that follow (the program's name and pid).
    pub fn set_tag(&mut self, tag: &str) {
        self.tag.clear();
        self.tag.extend_from_slice(tag.as_bytes());
    }

    /// Lines that could not be sent.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub(crate) fn encode(&self, e: &mut crate::handoff::Encoder) {
        e.u8(self.config.facility);
        e.u8(self.config.priority);
        e.bytes(std::os::unix::ffi::OsStrExt::as_bytes(
            self.config.socket.as_os_str(),
        ));
        e.bytes(&self.tag);
        e.bytes(&self.partial);
        e.u64(self.dropped);
    }

    pub(crate) fn decode(d: &mut crate::handoff::Decoder<'_>) -> Option<Syslog> {
        let config = SyslogConfig {
            facility: d.u8()?.min(23),
            priority: d.u8()?.min(7),
            socket: PathBuf::from(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(d.bytes()?),
            ),
        };
        let tag = String::from_utf8_lossy(d.bytes()?).into_owned();
        let mut syslog = Syslog::new(config, &tag);
        syslog.partial = d.bytes()?.to_vec();
        syslog.dropped = d.u64()?;
        Some(syslog)
    }

    fn connect(&mut self) {
        self.socket = std::os::unix::net::UnixDatagram::unbound()
            .and_then(|s| {
                s.connect(&self.config.socket)?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .ok();
    }

    /// Takes bytes as the program wrote them; sends each complete line.
    pub fn write(&mut self, data: &[u8], now: SystemTime) {
        let mut rest = data;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let (line, tail) = rest.split_at(end);
            rest = &tail[1..];
            if self.partial.is_empty() {
                self.send(line, now);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.send(&whole, now);
            }
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() >= LogConfig::LINE_MAX {
            let whole = std::mem::take(&mut self.partial);
            self.send(&whole, now);
        }
    }

    /// Gives back the memory of an empty line buffer (the output went quiet).
    pub fn shed(&mut self) {
        if self.partial.is_empty() {
            self.partial = Vec::new();
        }
    }

    /// Sends the unfinished line (the program exited).
    pub fn flush_partial(&mut self, now: SystemTime) {
        if !self.partial.is_empty() {
            let whole = std::mem::take(&mut self.partial);
            self.send(&whole, now);
        }
    }

    /// Sends one line: `<PRI>Mmm dd hh:mm:ss TAG: line` (RFC 3164, local time).
    pub fn send(&mut self, line: &[u8], now: SystemTime) {
        self.message.clear();
        self.message.push(b'<');
        push_decimal(&mut self.message, u64::from(self.config.pri()));
        self.message.push(b'>');
        rfc3164_time(now, &mut self.message);
        self.message.push(b' ');
        self.message.extend_from_slice(&self.tag);
        self.message.extend_from_slice(b": ");
        self.message.extend_from_slice(line);
        for attempt in 0..2 {
            let sent = self.socket.as_ref().map(|s| s.send(&self.message));
            match sent {
                Some(Ok(_)) => return,
                Some(Err(err))
                    if attempt == 0
                        && matches!(
                            err.raw_os_error(),
                            Some(libc::ECONNREFUSED) | Some(libc::ENOTCONN) | Some(libc::ENOENT)
                        ) =>
                {
                    self.connect();
                }
                None if attempt == 0 => self.connect(),
                _ => break,
            }
        }
        self.dropped += 1;
    }
}

/// `Mmm dd hh:mm:ss` in local time (day padded with a space), as RFC 3164 wants.
fn rfc3164_time(now: SystemTime, out: &mut Vec<u8>) {
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let mut civil_text = Vec::with_capacity(20);
    civil(secs + local_offset(secs), &mut civil_text, b' ');
    // "YYYY-MM-DD hh:mm:ss"
    let month = usize::from((civil_text[5] - b'0') * 10 + (civil_text[6] - b'0'));
    out.extend_from_slice(MONTHS[month.clamp(1, 12) - 1]);
    out.push(b' ');
    out.push(if civil_text[8] == b'0' {
        b' '
    } else {
        civil_text[8]
    });
    out.push(civil_text[9]);
    out.extend_from_slice(&civil_text[10..]);
}

/// Where a processor writes (`@….t`) and what the processed archive is called (`@….s`).
pub(crate) fn processed_names(archive: &Path) -> (PathBuf, PathBuf) {
    (archive.with_extension("t"), archive.with_extension("s"))
}

/// After the processor on `archive` exited: its output replaces the archive, or (it failed) the
/// archive is kept as it was.
pub(crate) fn finish_processing(archive: &Path, success: bool) {
    let (temp, done) = processed_names(archive);
    if success && std::fs::rename(&temp, &done).is_ok() {
        let _ = std::fs::remove_file(archive);
    } else {
        let _ = std::fs::remove_file(&temp);
        let _ = std::fs::rename(archive, &done);
    }
}
