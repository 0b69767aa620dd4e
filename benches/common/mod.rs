//! What the benchmarks share: the largest RLIMIT_NOFILE this machine allows, and a command that
//! runs under a given limit.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// The largest RLIMIT_NOFILE this process may set: `/proc/sys/fs/nr_open` with
/// CAP_SYS_RESOURCE (needed to raise the hard limit), else the current hard limit.
pub fn max_nofile() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    const CAP_SYS_RESOURCE: u32 = 24;
    let capable = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string()))
        })
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0);
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    match nr_open {
        Some(n) if capable => n,
        _ => limit.rlim_max,
    }
}

pub fn with_nofile(command: &mut Command, n: u64) -> &mut Command {
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}
