//! Detach latency: from starting the launcher until the daemon is ready, at RLIMIT_NOFILE 1024
//! and at this machine's maximum (`/proc/sys/fs/nr_open` as root, else the hard limit), for
//! daemonic (the `fixture` example with `--ready-at-start`) and for the seed's `become()` with
//! its close-every-descriptor loop (`bench/seed.py`). Prints medians and ratios.
//!
//! Run: `cargo bench --bench detach` (builds the examples it needs first).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{build_release, max_nofile, median, with_nofile};

fn main() {
    let fixture = build_release(["--example", "fixture"]);
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/seed.py");
    let max = max_nofile();
    let dir = tempfile::tempdir().expect("tempdir");

    println!("detach latency, median of runs (launcher start -> daemon ready)");
    println!(
        "{:<34} {:>12} {:>12} {:>10}",
        "",
        "nofile 1024",
        format!("nofile {max}"),
        "growth"
    );
    let ours_low = median(25, || ours(&fixture, 1024));
    let ours_high = median(25, || ours(&fixture, max));
    let seed_low = median(9, || seed_run(&seed, dir.path(), 1024));
    let seed_high = median(5, || seed_run(&seed, dir.path(), max));
    row("daemonic (close_range)", ours_low, ours_high);
    row("seed become() (close loop)", seed_low, seed_high);
    println!(
        "seed / daemonic: {:.2}x at 1024, {:.2}x at {max}",
        ratio(seed_low, ours_low),
        ratio(seed_high, ours_high)
    );
    let growth = ratio(ours_high, ours_low);
    println!(
        "daemonic grows {:+.1}% from 1024 to {max} (target: within 10%): {}",
        (growth - 1.0) * 100.0,
        if growth <= 1.10 { "met" } else { "NOT met" }
    );
}

fn row(name: &str, low: Duration, high: Duration) {
    println!(
        "{:<34} {:>10.2}ms {:>10.2}ms {:>9.2}x",
        name,
        low.as_secs_f64() * 1e3,
        high.as_secs_f64() * 1e3,
        ratio(high, low)
    );
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// daemonic: the launcher exits 0 once the daemon is ready; the daemon then exits by itself.
fn ours(fixture: &PathBuf, nofile: u64) -> Duration {
    let mut command = Command::new(fixture);
    command
        .args(["--ready-at-start", "--exit-after-ready"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    with_nofile(&mut command, nofile);
    let started = Instant::now();
    let status = command.status().expect("fixture");
    let elapsed = started.elapsed();
    assert!(status.success());
    elapsed
}

/// The seed: the launcher exits at once, so readiness is the daemon's write to a FIFO.
fn seed_run(seed: &Path, dir: &Path, nofile: u64) -> Duration {
    let fifo = dir.join("ready.fifo");
    let _ = std::fs::remove_file(&fifo);
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8 path")).expect("path");
    // SAFETY: a valid C string path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let mut command = Command::new("python3");
    command
        .arg(seed)
        .arg(&fifo)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    with_nofile(&mut command, nofile);
    let started = Instant::now();
    let status = command.status().expect("python3");
    assert!(status.success());
    let mut text = String::new();
    std::fs::File::open(&fifo)
        .expect("open fifo")
        .read_to_string(&mut text)
        .expect("read fifo");
    let elapsed = started.elapsed();
    assert_eq!(text, "ready\n");
    elapsed
}
