//! The seed's demonstration: become a daemon in the current directory, then write `daemon.log`
//! with the return code and the daemon's process and user ids.
//!
//! ```text
//! cargo run --release --example become && cat daemon.log
//! ```
//!
//! The launcher returns only after the log is written (the daemon calls `ready()` last), so
//! `cat` right after it sees the whole file.

use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let log_path = std::env::current_dir()?.join("daemon.log");
    let mut daemon = daemonic::Daemon::new().workdir(".").start()?;
    let return_code = 0; // start() returned Ok in the daemon
    // SAFETY: the get*id calls have no preconditions.
    let (pid, ppid, pgid, sid, uid, euid, gid, egid) = unsafe {
        (
            libc::getpid(),
            libc::getppid(),
            libc::getpgrp(),
            libc::getsid(0),
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    let mut log = std::fs::File::create(&log_path)?;
    writeln!(log, "return code = {return_code}")?;
    writeln!(log, "process ID = {pid}")?;
    writeln!(log, "parent process ID = {ppid}")?;
    writeln!(log, "process group ID = {pgid}")?;
    writeln!(log, "session ID = {sid}")?;
    writeln!(log, "user ID = {uid}")?;
    writeln!(log, "effective user ID = {euid}")?;
    writeln!(log, "real group ID = {gid}")?;
    writeln!(log, "effective group ID = {egid}")?;
    log.sync_all()?;
    daemon.ready()?;
    Ok(())
}
