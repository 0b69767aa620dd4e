//! `daemonic start -- sleep` against `start-stop-daemon --start --background --make-pidfile`
//! and libslack's `daemon`, in the same run, at RLIMIT_NOFILE 1024 and at this machine's
//! maximum, measured the way the team's shared harness does it (`detach.sh`, whose timer is
//! `bench/src/detach_bench.c`), so that the two agree:
//!
//! - Each start is timed from launch until the launcher has returned (`return`) and until the
//!   pidfile holds `PID\n` and that pid runs `sleep` (`ready`). daemonic returns only once
//!   ready; the peers return earlier, so the rest is awaited by polling every 10 µs at first
//!   (timer slack 1 ns).
//! - This process is a child subreaper: every daemon is reparented to it and, after the clock
//!   stops, killed and reaped at once, whatever the tool. Stopping each daemon with its own tool
//!   would leave idle gaps of different lengths before the next start (`start-stop-daemon
//!   --stop --retry` waits until init has reaped the old process, over a second on a VM whose
//!   init reaps lazily), and a process started after an idle gap runs up to 40% slower here.
//! - The tools take turns run by run (one warm-up round first), so drifting machine noise falls
//!   on all of them alike.
//! - The tools run without the `LD_LIBRARY_PATH` that cargo sets for the bench itself.
//!
//! Run: `cargo bench --bench start` (builds daemonic in release first). Peers that are not
//! installed are skipped (Debian: `apt-get install daemon`; start-stop-daemon is in dpkg).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[allow(dead_code)] // this bench uses only some of the shared helpers
mod common;
use common::{build_release, max_nofile, middle, with_nofile};

const RUNS: usize = 30;

/// One tool: its name, the pidfile that names its running program, and how to launch it.
struct Tool {
    name: &'static str,
    pidfile: PathBuf,
    launch: Box<dyn Fn(u64) -> Command>,
}

/// One start: until the launcher returned, and until the program ran.
struct Timing {
    returned: Duration,
    ready: Duration,
}

fn main() {
    let daemonic = build_release(["--bin", "daemonic"]);
    // The image a keeper re-executes into once its program runs, found beside `daemonic`.
    build_release(["--bin", "daemonic-keeper"]);
    let sleep = which("sleep").expect("sleep on PATH");
    let sleep = std::fs::canonicalize(&sleep).expect("sleep path");
    let dir = tempfile::tempdir().expect("tempdir");
    let max = max_nofile();
    become_subreaper();

    let mut tools = Vec::new();
    {
        let (daemonic, sleep) = (daemonic.clone(), sleep.clone());
        let pidfile = dir.path().join("daemonic.pid");
        let p = pidfile.clone();
        tools.push(Tool {
            name: "daemonic start",
            pidfile,
            launch: Box::new(move |n| {
                let mut c = command(&daemonic, n);
                c.arg("start").arg("-p").arg(&p).arg("--").arg(&sleep);
                c.arg("100000");
                c
            }),
        });
    }
    match which("start-stop-daemon") {
        Some(ssd) => {
            let sleep = sleep.clone();
            let pidfile = dir.path().join("ssd.pid");
            let p = pidfile.clone();
            tools.push(Tool {
                name: "start-stop-daemon --background",
                pidfile,
                launch: Box::new(move |n| {
                    let mut c = command(&ssd, n);
                    c.args(["--start", "--quiet", "--background", "--make-pidfile"]);
                    c.arg("--pidfile").arg(&p).arg("--exec").arg(&sleep);
                    c.args(["--", "100000"]);
                    c
                }),
            });
        }
        None => println!("start-stop-daemon not installed: skipped"),
    }
    match which("daemon") {
        Some(libslack) => {
            let sleep = sleep.clone();
            let pidfiles = dir.path().join("libslack");
            std::fs::create_dir_all(&pidfiles).expect("pidfile directory");
            // The client's pidfile names the program itself.
            let pidfile = pidfiles.join("bench.clientpid");
            tools.push(Tool {
                name: "libslack daemon",
                pidfile,
                launch: Box::new(move |n| {
                    let mut c = command(&libslack, n);
                    c.args(["--name", "bench", "--pidfiles"]).arg(&pidfiles);
                    c.arg("--").arg(&sleep).arg("100000");
                    c
                }),
            });
        }
        None => println!("libslack daemon not installed: skipped"),
    }

    println!(
        "start latency, median of {RUNS} runs, tools in turn: ready = launch -> pidfile names a \
         running sleep (return = launch -> launcher exited)"
    );
    println!(
        "{:<32} {:>22} {:>22}",
        "",
        "nofile 1024",
        format!("nofile {max}")
    );
    let low = measure(&tools, &sleep, 1024);
    let high = measure(&tools, &sleep, max);
    for (i, tool) in tools.iter().enumerate() {
        println!(
            "{:<32} {:>8.2}ms ({:>5.2}ms) {:>8.2}ms ({:>5.2}ms)",
            tool.name,
            ms(low[i].ready),
            ms(low[i].returned),
            ms(high[i].ready),
            ms(high[i].returned),
        );
    }
    for (i, tool) in tools.iter().enumerate().skip(1) {
        println!(
            "daemonic / {}: {:.2}x at 1024, {:.2}x at {max} (ready; above 1: daemonic is slower)",
            tool.name,
            ratio(low[0].ready, low[i].ready),
            ratio(high[0].ready, high[i].ready),
        );
    }
}

/// The median timings of each tool at `nofile`, the tools taking turns run by run after one
/// warm-up round.
fn measure(tools: &[Tool], program: &Path, nofile: u64) -> Vec<Timing> {
    let mut all: Vec<Vec<Timing>> = tools.iter().map(|_| Vec::new()).collect();
    for run in 0..=RUNS {
        for (tool, times) in tools.iter().zip(&mut all) {
            let timing = timed((tool.launch)(nofile), &tool.pidfile, program, tool.name);
            kill_everything();
            let _ = std::fs::remove_file(&tool.pidfile);
            if run > 0 {
                times.push(timing);
            }
        }
    }
    all.into_iter()
        .map(|times| Timing {
            returned: middle(times.iter().map(|t| t.returned).collect()),
            ready: middle(times.iter().map(|t| t.ready).collect()),
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A launch under RLIMIT_NOFILE `nofile`, without the `LD_LIBRARY_PATH` cargo sets for the bench
/// (its four directories are searched for every library of every program started, ~0.1 ms).
fn command(program: &Path, nofile: u64) -> Command {
    let mut command = Command::new(program);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    command.env_remove("LD_LIBRARY_PATH");
    with_nofile(&mut command, nofile);
    command
}

/// Runs `launch` and times it until it has returned, and until `pidfile` holds a complete
/// `PID\n` whose process runs `program` (the daemon runs the program, not a forked copy of
/// the launcher).
fn timed(mut launch: Command, pidfile: &Path, program: &Path, name: &str) -> Timing {
    let _ = std::fs::remove_file(pidfile);
    let started = Instant::now();
    let status = launch.status().expect("launch");
    let returned = started.elapsed();
    assert!(status.success(), "{name}: {launch:?} failed: {status}");
    loop {
        let running = std::fs::read(pidfile)
            .ok()
            .and_then(|text| text.strip_suffix(b"\n").map(<[u8]>::to_vec))
            .and_then(|digits| std::str::from_utf8(&digits).ok()?.parse::<u32>().ok())
            .is_some_and(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe"))
                    .is_ok_and(|exe| exe.as_os_str().as_bytes() == program.as_os_str().as_bytes())
            });
        let elapsed = started.elapsed();
        if running {
            return Timing {
                returned,
                ready: elapsed,
            };
        }
        assert!(
            elapsed < Duration::from_secs(10),
            "{name}: {} never named a running {}",
            pidfile.display(),
            program.display()
        );
        // As detach_bench: 10 µs steps for 2 ms, then 50 µs, then 200 µs.
        std::thread::sleep(Duration::from_micros(match elapsed.as_micros() {
            0..2_000 => 10,
            2_000..50_000 => 50,
            _ => 200,
        }));
    }
}

/// Makes this process the child subreaper, so every daemon started is reparented to it and is
/// killed and reaped here (nothing is left behind, and no tool's clean-up leaves an idle gap),
/// and sets the timer slack to 1 ns so that the polling sleeps are as short as asked.
fn become_subreaper() {
    // SAFETY: prctl with these options takes plain integer arguments.
    unsafe {
        assert_eq!(
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0),
            0,
            "PR_SET_CHILD_SUBREAPER"
        );
        libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0);
    }
}

/// SIGKILLs every child of this process (each daemon was reparented to it; its program follows
/// it here once it dies) and reaps them all, until none is left.
fn kill_everything() {
    let started = Instant::now();
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let children = format!("/proc/{me}/task/{me}/children");
    loop {
        let pids: Vec<libc::pid_t> = std::fs::read_to_string(&children)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        for &pid in &pids {
            // SAFETY: kill has no memory effects; each pid is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let flags = if pids.is_empty() { libc::WNOHANG } else { 0 };
        // SAFETY: waitpid with a null status pointer.
        let reaped = unsafe { libc::waitpid(-1, std::ptr::null_mut(), flags) };
        if reaped < 0 {
            // ECHILD: nothing left.
            return;
        }
        if reaped == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "clean-up did not finish"
        );
    }
}
