//! Helpers shared by the integration tests: finding the binaries, reading /proc, and a guard
//! that ends every process a test started.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub use daemonic::ProcStat;

/// target/<host tuple>/debug (or release), from the test binary's own path
/// (target/<host tuple>/debug/deps/test-hash).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// An example binary built by `cargo test`.
pub fn example(name: &str) -> PathBuf {
    target_dir().join("examples").join(name)
}

/// A test's own directory and the tag its processes carry; on drop, every live process whose
/// command line contains the tag is killed, so a failing test leaks nothing.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("daemonic-test-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Opens the sandbox to other users (`mode`, such as 0o755), for a daemon that runs as one.
    pub fn share(&self, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    pub fn tag(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// Live (non-zombie) processes whose command line mentions this sandbox.
    pub fn processes(&self) -> Vec<u32> {
        processes_mentioning(&self.tag())
    }

    /// The fixture daemon with `--tag` set, so the guard can find what it starts.
    pub fn fixture(&self) -> Command {
        let mut command = Command::new(example("fixture"));
        command.arg("--tag").arg(self.tag());
        command
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // A process in the middle of an exec shows an empty command line, so one scan can miss
        // it: scan, kill and wait until a scan finds nothing. Each kill goes through a pidfd
        // after the tag is checked again, so a pid reused meanwhile is never hit.
        let tag = self.tag();
        for _ in 0..100 {
            let found = self.processes();
            if found.is_empty() {
                break;
            }
            for pid in found {
                let Ok(process) = daemonic::Process::open(pid) else {
                    continue;
                };
                if mentions(pid, &tag) {
                    let _ = process.signal(libc::SIGKILL);
                    process.wait_exit(Duration::from_secs(10));
                }
            }
        }
    }
}

fn mentions(pid: u32, tag: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(tag))
}

pub fn processes_mentioning(tag: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let alive = ProcStat::read(pid).is_some_and(|s| s.state != 'Z');
        if alive && mentions(pid, tag) {
            found.push(pid);
        }
    }
    found
}

/// Runs a command to completion (the launcher), returning its output.
pub fn run(command: &mut Command) -> Output {
    command.output().expect("run launcher")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The pid in a pidfile.
pub fn pid_in(pidfile: &Path) -> u32 {
    let text = std::fs::read_to_string(pidfile).expect("read pidfile");
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("pidfile {pidfile:?} holds {text:?}"))
}

pub fn stat(pid: u32) -> ProcStat {
    ProcStat::read(pid).unwrap_or_else(|| panic!("no /proc/{pid}/stat"))
}

/// A line of /proc/PID/status, after the colon, trimmed.
pub fn status(pid: u32, field: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// Open descriptors and what they point at.
pub fn fds(pid: u32) -> BTreeMap<i32, String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((fd, target.display().to_string()))
        })
        .collect()
}

pub fn cwd(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd")
}

/// Waits until `pid`'s exec has set up its new image: a command returns once the exec is past
/// its point of no return, and until the kernel has built the new stack, /proc/PID/cmdline and
/// /proc/PID/environ read empty.
pub fn exec_done(pid: u32) {
    eventually("the exec set up its arguments", || {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
    });
}

/// The environment a process was executed with.
pub fn environ(pid: u32) -> Vec<String> {
    exec_done(pid);
    std::fs::read(format!("/proc/{pid}/environ"))
        .expect("environ")
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Waits for a process to exit (through a pidfd; no sleeping).
pub fn wait_gone(pid: u32) {
    if let Ok(p) = daemonic::Process::open(pid) {
        assert!(
            p.wait_exit(Duration::from_secs(10)),
            "pid {pid} did not exit"
        );
    }
}

pub fn kill(pid: u32, signal: i32) {
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid as i32, signal) };
}

/// Makes `command` start with `ignored` set to `SIG_IGN`, a glibc-reserved real-time signal (33,
/// which glibc's sigaction cannot reset) ignored too, and SIGUSR1 and SIGTERM blocked: what a
/// launcher may inherit (nohup, a shell's background job), for tests that check none of it
/// reaches the daemon.
pub fn with_changed_signals(command: &mut Command, ignored: &'static [libc::c_int]) {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal, the raw rt_sigaction and sigprocmask are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            for &signo in ignored {
                libc::signal(signo, libc::SIG_IGN);
            }
            libc::syscall(
                libc::SYS_rt_sigaction,
                33,
                [libc::SIG_IGN, 0, 0, 0].as_ptr(),
                0usize,
                8usize,
            );
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The parent a daemon should have: init, or a subreaper among the test's ancestors.
pub fn is_reaper_for_us(ppid: u32) -> bool {
    if ppid == 1 {
        return true;
    }
    let mut current = std::process::id();
    while let Some(stat) = ProcStat::read(current) {
        if stat.ppid == ppid {
            return true;
        }
        if stat.ppid <= 1 {
            break;
        }
        current = stat.ppid;
    }
    false
}

/// The pidfile's device:inode as /proc/locks prints it, and whether it is flock-locked.
pub fn is_flocked(path: &Path) -> bool {
    daemonic::PidfileState::read(path)
        .expect("pidfile state")
        .is_locked()
}

/// A child process that is killed and reaped when the guard drops, even if the test panics.
pub struct ChildGuard(pub std::process::Child);

impl ChildGuard {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A FIFO the test reads lines from, opened read-write so it never sees end-of-file while the
/// programs that write to it come and go. Programs report events on it (`echo start $$ > FIFO`),
/// so a test waits for events rather than sleeping.
pub struct Fifo {
    pub path: PathBuf,
    file: std::fs::File,
    pending: Vec<u8>,
}

impl Fifo {
    pub fn new(path: PathBuf) -> Fifo {
        use std::os::unix::fs::OpenOptionsExt;
        let c = std::ffi::CString::new(path.to_str().expect("utf-8 path")).expect("path");
        // SAFETY: a valid C string path.
        assert_eq!(
            unsafe { libc::mkfifo(c.as_ptr(), 0o666) },
            0,
            "mkfifo {path:?}"
        );
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .expect("open fifo");
        Fifo {
            path,
            file,
            pending: Vec::new(),
        }
    }

    /// The next line, waiting at most `timeout`; panics if none comes.
    pub fn line(&mut self, timeout: Duration) -> String {
        self.try_line(timeout)
            .unwrap_or_else(|| panic!("no line on {:?} within {timeout:?}", self.path))
    }

    /// The next line, or `None` after `timeout`.
    pub fn try_line(&mut self, timeout: Duration) -> Option<String> {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Some(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pfd = libc::pollfd {
                fd: self.file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) };
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.file.read(&mut buf) {
                self.pending.extend_from_slice(&buf[..n]);
            }
        }
    }
}

// ---- the daemonic command ----

pub const BIN: &str = env!("CARGO_BIN_EXE_daemonic");
/// The small image keepers re-execute into.
pub const KEEPER_BIN: &str = env!("CARGO_BIN_EXE_daemonic-keeper");

pub fn daemonic(sandbox: &Sandbox) -> Command {
    let mut command = Command::new(BIN);
    command.env("DAEMONIC_RUNDIR", sandbox.path("run"));
    command
}

pub fn pidfile(sandbox: &Sandbox, name: &str) -> PathBuf {
    sandbox.path("run").join(format!("{name}.pid"))
}

/// A symlink to `sleep` inside the sandbox, so the daemon's command line carries the tag.
pub fn sleeper(sandbox: &Sandbox) -> String {
    let link = sandbox.path("sleep");
    if !link.exists() {
        let real = ["/usr/bin/sleep", "/bin/sleep"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("sleep");
        std::os::unix::fs::symlink(real, &link).unwrap();
    }
    link.display().to_string()
}

/// An executable shell script in the sandbox; `$DAEMONIC` names the binary and `$SLEEP` the
/// sandbox's sleep (so what the script executes still carries the sandbox's tag).
pub fn script(sandbox: &Sandbox, name: &str, body: &str) -> String {
    let path = sandbox.path(name);
    let sleep = sleeper(sandbox);
    std::fs::write(
        &path,
        format!("#!/bin/sh\nDAEMONIC='{BIN}'\nSLEEP='{sleep}'\n{body}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// A filesystem a test mounted, unmounted (lazily) when the guard drops, pass or fail.
pub struct Mounted {
    pub path: PathBuf,
}

impl Mounted {
    /// Mounts with `mount ARGS... PATH` on a new directory `name` in the sandbox; `None` (with a
    /// "skipped" line on stderr saying why) where mounting is not possible here.
    pub fn new(sandbox: &Sandbox, name: &str, args: &[&std::ffi::OsStr]) -> Option<Mounted> {
        let path = sandbox.path(name);
        std::fs::create_dir(&path).expect("mount point");
        let output = Command::new("mount").args(args).arg(&path).output().ok()?;
        if !output.status.success() {
            eprintln!(
                "skipped: cannot mount here: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            return None;
        }
        Some(Mounted { path })
    }

    /// A tmpfs of `size` (such as "256k").
    pub fn tmpfs(sandbox: &Sandbox, name: &str, size: &str) -> Option<Mounted> {
        let options = format!("size={size}");
        let args: [&std::ffi::OsStr; 4] = [
            "-t".as_ref(),
            "tmpfs".as_ref(),
            "-o".as_ref(),
            options.as_ref(),
        ];
        let args = [args[0], args[1], args[2], args[3], "tmpfs".as_ref()];
        Mounted::new(sandbox, name, &args)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// nobody's uid and primary gid.
pub fn nobody() -> (u32, u32) {
    let line = std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .expect("nobody in /etc/passwd")
        .to_string();
    let f: Vec<&str> = line.split(':').collect();
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

/// Waits (yielding, up to 20 s) until `check` holds: for what a daemon does after the command
/// that started it has returned, where no pipe or message says when.
pub fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::yield_now();
    }
}

/// Whether `pid` runs the daemonic binary or the keeper image.
pub fn is_keeper(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .is_ok_and(|exe| exe == Path::new(BIN) || exe == Path::new(KEEPER_BIN))
}

/// The sandbox's processes that are programs, not keepers, in pid order.
pub fn programs(sandbox: &Sandbox) -> Vec<u32> {
    let mut found: Vec<u32> = sandbox
        .processes()
        .into_iter()
        .filter(|&pid| !is_keeper(pid))
        .collect();
    found.sort_unstable();
    found
}

/// Waits until `keeper` has re-executed into the small `daemonic-keeper` image (which it does
/// once its program runs and `start` has returned) and that exec has set up its arguments.
pub fn keeper_image_runs(keeper: u32) {
    eventually("the keeper re-executed into daemonic-keeper", || {
        std::fs::read_link(format!("/proc/{keeper}/exe"))
            .is_ok_and(|exe| exe == Path::new(KEEPER_BIN))
    });
    exec_done(keeper);
}

/// A command's exit status (a test's commands are not killed by signals).
pub fn code(output: &Output) -> i32 {
    output.status.code().expect("exit code")
}

/// A script that reports "start PID" on `fifo` (read it with [`started`]), then runs the
/// sandbox's sleep for 300 s.
pub fn announcing(sandbox: &Sandbox, name: &str, fifo: &Fifo) -> String {
    script(
        sandbox,
        name,
        &format!(
            "echo \"start $$\" > {}\nexec \"$SLEEP\" 300",
            fifo.path.display()
        ),
    )
}

/// Waits for the next "start PID" a program reports on its FIFO.
pub fn started(fifo: &mut Fifo) -> u32 {
    let line = fifo.line(Duration::from_secs(20));
    line.strip_prefix("start ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("expected 'start PID', got {line:?}"))
}

/// Fields of `/proc/PID/stat` after the command name: index 0 is field 3 (state).
pub fn stat_fields(pid: u32) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = text.rsplit_once(')').unwrap();
    rest.split_whitespace().map(str::to_string).collect()
}

/// The soft and hard values of one row of `/proc/PID/limits`.
pub fn proc_limit(pid: u32, row: &str) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no {row:?} in {text}"));
    let mut values = line[row.len()..].split_whitespace();
    (
        values.next().unwrap().to_string(),
        values.next().unwrap().to_string(),
    )
}
