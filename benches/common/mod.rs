//! What the benchmarks share: building what they run, the largest RLIMIT_NOFILE this machine
//! allows, a command that runs under a given limit, and the median of repeated runs.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Builds one target in release (`["--bin", "daemonic"]`, `["--example", "fixture"]`) and
/// returns the path of the executable: beside this benchmark's own (`release/deps/`), which
/// follows `$CARGO_TARGET_DIR` and the target directory `.cargo/config.toml` names.
pub fn build_release(target: [&str; 2]) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", target[0], target[1]])
        .current_dir(root)
        .status()
        .expect("cargo build");
    assert!(
        status.success(),
        "building {} {} failed",
        target[0],
        target[1]
    );
    let release = std::env::current_exe()
        .expect("the benchmark's own path")
        .parent()
        .and_then(Path::parent)
        .expect("the benchmark runs from release/deps/")
        .to_path_buf();
    match target[0] {
        "--example" => release.join("examples").join(target[1]),
        _ => release.join(target[1]),
    }
}

/// The median of `runs` timings, after one untimed warm-up run.
pub fn median(runs: usize, mut once: impl FnMut() -> Duration) -> Duration {
    once();
    middle((0..runs).map(|_| once()).collect())
}

/// The median of some timings (the upper one of the middle two for an even count).
pub fn middle(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

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
