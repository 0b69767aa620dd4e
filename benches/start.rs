//! `daemonic start -- sleep 300` against `start-stop-daemon --start --background
//! --make-pidfile` and libslack's `daemon`, in the same run, at RLIMIT_NOFILE 1024 and at this
//! machine's maximum. Each is timed from launch until it has returned, its pidfile names a pid,
//! and that pid runs `sleep` (`/proc/PID/exe`). daemonic returns only then; the peers return
//! earlier, so the rest is awaited by spinning. Each daemon is
//! stopped with its own tool after its run, outside the timing.
//!
//! Run: `cargo bench --bench start` (builds daemonic in release first). Peers that are not
//! installed are skipped (Debian: `apt-get install daemon`; start-stop-daemon is in dpkg).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{build_release, max_nofile, median, with_nofile};

const RUNS: usize = 30;

/// Starts one daemon at the given RLIMIT_NOFILE and returns how long it took.
type Runner = Box<dyn Fn(u64) -> Duration>;

fn main() {
    let daemonic = build_release(["--bin", "daemonic"]);
    let sleep = which("sleep").expect("sleep on PATH");
    let dir = tempfile::tempdir().expect("tempdir");
    let max = max_nofile();

    let mut peers: Vec<(&str, Runner)> = Vec::new();
    {
        let (daemonic, sleep, dir) = (daemonic.clone(), sleep.clone(), dir.path().to_path_buf());
        peers.push((
            "daemonic start",
            Box::new(move |n| run_daemonic(&daemonic, &sleep, &dir, n)),
        ));
    }
    if let Some(ssd) = which("start-stop-daemon") {
        let (sleep, dir) = (sleep.clone(), dir.path().to_path_buf());
        peers.push((
            "start-stop-daemon --background",
            Box::new(move |n| run_ssd(&ssd, &sleep, &dir, n)),
        ));
    } else {
        println!("start-stop-daemon not installed: skipped");
    }
    if let Some(libslack) = which("daemon") {
        let (sleep, dir) = (sleep.clone(), dir.path().to_path_buf());
        peers.push((
            "libslack daemon",
            Box::new(move |n| run_libslack(&libslack, &sleep, &dir, n)),
        ));
    } else {
        println!("libslack daemon not installed: skipped");
    }

    println!(
        "start latency, median of {RUNS} runs (launch -> returned, program running, pidfile written)"
    );
    println!(
        "{:<32} {:>12} {:>14} {:>8}",
        "",
        "nofile 1024",
        format!("nofile {max}"),
        "growth"
    );
    let mut results = Vec::new();
    for (name, run) in &peers {
        let low = median(RUNS, || run(1024));
        let high = median(RUNS, || run(max));
        println!(
            "{:<32} {:>10.2}ms {:>12.2}ms {:>7.2}x",
            name,
            ms(low),
            ms(high),
            high.as_secs_f64() / low.as_secs_f64()
        );
        results.push((*name, low, high));
    }
    let (_, ours_low, ours_high) = results[0];
    for (name, low, high) in &results[1..] {
        println!(
            "{name} / daemonic: {:.2}x at 1024, {:.2}x at {max} (above 1: daemonic is faster)",
            low.as_secs_f64() / ours_low.as_secs_f64(),
            high.as_secs_f64() / ours_high.as_secs_f64()
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn command(program: &Path, nofile: u64) -> Command {
    let mut command = Command::new(program);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    with_nofile(&mut command, nofile);
    command
}

/// Runs `launch`, then waits (spinning briefly) until `pidfile` names a pid whose executable is
/// `program` (the daemon runs the program, not a forked copy of the launcher); the elapsed time.
fn timed(mut launch: Command, pidfile: &Path, program: &Path) -> Duration {
    let _ = std::fs::remove_file(pidfile);
    let program = std::fs::canonicalize(program).expect("program path");
    let started = Instant::now();
    let status = launch.status().expect("launch");
    assert!(status.success(), "{launch:?} failed");
    let deadline = started + Duration::from_secs(10);
    loop {
        let pid = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        let running = pid.is_some_and(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == program)
        });
        if running {
            return started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            pidfile.display()
        );
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn run_daemonic(daemonic: &Path, sleep: &Path, dir: &Path, nofile: u64) -> Duration {
    let pidfile = dir.join("daemonic.pid");
    let mut launch = command(daemonic, nofile);
    launch
        .arg("start")
        .arg("-p")
        .arg(&pidfile)
        .arg("--")
        .arg(sleep)
        .arg("300");
    let elapsed = timed(launch, &pidfile, sleep);
    let stop = Command::new(daemonic)
        .arg("stop")
        .arg("-p")
        .arg(&pidfile)
        .status()
        .expect("stop");
    assert!(stop.success());
    elapsed
}

fn run_ssd(ssd: &Path, sleep: &Path, dir: &Path, nofile: u64) -> Duration {
    let pidfile = dir.join("ssd.pid");
    let mut launch = command(ssd, nofile);
    launch
        .args(["--start", "--background", "--make-pidfile", "--pidfile"])
        .arg(&pidfile)
        .arg("--exec")
        .arg(sleep)
        .args(["--", "300"]);
    let elapsed = timed(launch, &pidfile, sleep);
    let stop = Command::new(ssd)
        .args(["--stop", "--retry", "5", "--remove-pidfile", "--pidfile"])
        .arg(&pidfile)
        .stdout(Stdio::null())
        .status()
        .expect("stop");
    assert!(stop.success());
    elapsed
}

fn run_libslack(libslack: &Path, sleep: &Path, dir: &Path, nofile: u64) -> Duration {
    let pidfiles = dir.join("libslack");
    let _ = std::fs::create_dir_all(&pidfiles);
    let mut launch = command(libslack, nofile);
    launch
        .args(["--name", "bench", "--pidfiles"])
        .arg(&pidfiles)
        .arg("--")
        .arg(sleep)
        .arg("300");
    // The client's pidfile: the program itself is running.
    let elapsed = timed(launch, &pidfiles.join("bench.clientpid"), sleep);
    let stop = Command::new(libslack)
        .args(["--name", "bench", "--pidfiles"])
        .arg(&pidfiles)
        .arg("--stop")
        .status()
        .expect("stop");
    assert!(stop.success());
    // daemon --stop returns before the supervisor has exited and removed its pidfile.
    let pidfile = pidfiles.join("bench.pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pidfile.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    elapsed
}
