//! The keeper, tried as the issue's users tried the keeper-less design: scripts whose children
//! outlive them, programs that close every descriptor, crash loops, a killed keeper, a status
//! read by another user, a pidfile on btrfs, files planted in the run directory, and
//! `daemonic run` as PID 1. Programs report their starts on a FIFO, so tests wait on events.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const WAIT: Duration = Duration::from_secs(10);

fn status_json(sandbox: &Sandbox, name: &str) -> (i32, serde_json::Value) {
    let output = run(daemonic(sandbox).args(["status", "-n", name, "--json"]));
    let json = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}: {}", stderr(&output)));
    (code(&output), json)
}

/// Waits until the service's status satisfies `want` (the keeper publishes just after it acts,
/// so a program can report an event a moment before the record shows it).
fn wait_status(
    sandbox: &Sandbox,
    name: &str,
    want: impl Fn(&serde_json::Value) -> bool,
) -> (i32, serde_json::Value) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, json) = status_json(sandbox, name);
        if want(&json) || Instant::now() >= deadline {
            return (code, json);
        }
        std::thread::yield_now();
    }
}

fn start(sandbox: &Sandbox, name: &str, flags: &[&str], program: &str) {
    let output = run(daemonic(sandbox)
        .args(["start", "-n", name])
        .args(flags)
        .args(["--", program]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
}

#[test]
fn a_script_whose_child_outlives_it_restarts_and_stops_completely() {
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    // The script leaves a child that would outlive it, then waits.
    let program = script(
        &sandbox,
        "parent.sh",
        &format!(
            "\"$SLEEP\" 300 &\necho \"child $!\" > {0}\necho \"start $$\" > {0}\nwait",
            fifo.path.display()
        ),
    );
    start(
        &sandbox,
        "d",
        &["--restart", "on-failure", "--restart-delay", "0"],
        &program,
    );
    let child = fifo.line(WAIT);
    let child: u32 = child.strip_prefix("child ").unwrap().parse().unwrap();
    let first = started(&mut fifo);
    assert_eq!(pid_in(&pidfile(&sandbox, "d")), first);
    // The script dies; its child must not survive into the next run.
    kill(first, libc::SIGKILL);
    let _second_child = fifo.line(WAIT);
    let second = started(&mut fifo);
    assert_ne!(first, second);
    wait_gone(child);
    let (rc, json) = wait_status(&sandbox, "d", |j| j["pid"] == second);
    assert_eq!(pid_in(&pidfile(&sandbox, "d")), second);
    assert_eq!(rc, 0, "{json}");
    assert_eq!(json["restarts"], 1, "{json}");
    assert_eq!(json["last_exit"]["signal"], "KILL", "{json}");
    // Stop ends every process of the service: keeper, script and the script's child.
    let stop = run(daemonic(&sandbox).args(["stop", "-n", "d"]));
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));
    assert_eq!(sandbox.processes(), Vec::<u32>::new());
    let (rc, json) = status_json(&sandbox, "d");
    assert_eq!((rc, json["state"].as_str()), (3, Some("stopped")));
}

#[test]
fn a_program_that_closes_every_descriptor_is_still_seen_stopped_and_never_started_twice() {
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    // Closes 0-2 and everything else it could have inherited (as sshd's closefrom does).
    let program = script(
        &sandbox,
        "closer.sh",
        &format!(
            "echo \"start $$\" > {}\nfor fd in 0 1 2 3 4 5 6 7 8 9; do eval \"exec $fd>&-\"; done\nexec \"$SLEEP\" 300",
            fifo.path.display()
        ),
    );
    start(&sandbox, "d", &[], &program);
    let pid = started(&mut fifo);
    let (rc, json) = status_json(&sandbox, "d");
    assert_eq!(rc, 0, "{json}");
    assert_eq!(json["pid"], pid);
    let again = run(daemonic(&sandbox).args(["start", "-n", "d", "--", &program]));
    assert_eq!(code(&again), 0);
    assert!(
        stderr(&again).contains("already running"),
        "{}",
        stderr(&again)
    );
    assert_eq!(programs(&sandbox).len(), 1, "never started twice");
    let stop = run(daemonic(&sandbox).args(["stop", "-n", "d"]));
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));
    assert_eq!(sandbox.processes(), Vec::<u32>::new());
}

#[test]
fn crash_loops_back_off_with_delays_that_grow_then_cap() {
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = script(
        &sandbox,
        "crash.sh",
        &format!("echo \"start $$\" > {}\nexit 1", fifo.path.display()),
    );
    start(
        &sandbox,
        "d",
        &[
            "--restart",
            "always",
            "--restart-delay",
            "0.1",
            "--restart-max-delay",
            "0.4",
        ],
        &program,
    );
    let mut times = Vec::new();
    for _ in 0..7 {
        started(&mut fifo);
        times.push(Instant::now());
    }
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    // Delays: 0.1, 0.2, 0.4, then capped at 0.4 (doubling would give 0.8), each with jitter in
    // [0.8, 1.0] of its value, plus the script's own start-up (more on a loaded machine).
    let want = [0.1, 0.2, 0.4, 0.4, 0.4, 0.4];
    for (gap, want) in gaps.iter().zip(want) {
        assert!(
            *gap >= want * 0.8 - 0.005 && *gap <= want + 0.25,
            "gaps {gaps:?}, wanted about {want}"
        );
    }
    let (code, json) = status_json(&sandbox, "d");
    assert!(
        json["state"] == "backoff" || json["state"] == "running",
        "{json}"
    );
    assert!(json["restarts"].as_u64().unwrap() >= 6, "{json}");
    assert!(code == 0 || code == 1, "{json}");
}

#[test]
fn give_up_ends_in_failed_with_the_reason() {
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = script(
        &sandbox,
        "crash.sh",
        &format!("echo \"start $$\" > {}\nexit 2", fifo.path.display()),
    );
    start(
        &sandbox,
        "d",
        &[
            "--restart",
            "always",
            "--restart-delay",
            "0",
            "--give-up",
            "3/60",
        ],
        &program,
    );
    for _ in 0..3 {
        started(&mut fifo);
    }
    // The keeper leaves after the third failure.
    assert_eq!(
        fifo.try_line(Duration::from_millis(300)),
        None,
        "no fourth start"
    );
    let keeper_left = sandbox.processes().is_empty();
    let (code, json) = status_json(&sandbox, "d");
    assert!(keeper_left, "the keeper left");
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["state"], "failed", "{json}");
    assert_eq!(json["reason"], "gave up after too many failures", "{json}");
    assert_eq!(json["last_exit"]["code"], 2, "{json}");
}

#[test]
fn a_stable_program_killed_is_back_at_once_under_on_failure_and_stays_down_under_no() {
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = announcing(&sandbox, "svc.sh", &fifo);
    // --stable-after 0: every run counts as stable, so the restart must be immediate.
    start(
        &sandbox,
        "on",
        &["--restart", "on-failure", "--stable-after", "0"],
        &program,
    );
    let first = started(&mut fifo);
    let killed = Instant::now();
    kill(first, libc::SIGKILL);
    let second = started(&mut fifo);
    let back = killed.elapsed();
    assert_ne!(first, second);
    assert!(back < Duration::from_millis(500), "back after {back:?}");
    let (_, json) = wait_status(&sandbox, "on", |j| j["restarts"] == 1);
    assert_eq!(json["restarts"], 1, "{json}");

    start(&sandbox, "no", &[], &program);
    let pid = started(&mut fifo);
    let keeper = stat(pid).ppid;
    kill(pid, libc::SIGKILL);
    wait_gone(keeper);
    let (code, json) = status_json(&sandbox, "no");
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["state"], "exited", "{json}");
    assert_eq!(
        fifo.try_line(Duration::from_millis(200)),
        None,
        "not restarted"
    );
}

#[test]
fn a_killed_keeper_takes_its_program_along_and_a_new_start_runs_one_copy() {
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = announcing(&sandbox, "svc.sh", &fifo);
    start(&sandbox, "d", &["--restart", "always"], &program);
    let pid = started(&mut fifo);
    let keeper = stat(pid).ppid;
    assert!(is_keeper(keeper));
    kill(keeper, libc::SIGKILL);
    wait_gone(pid);
    let (code, json) = status_json(&sandbox, "d");
    assert_eq!(code, 1, "never 'running' for a dead program: {json}");
    assert_eq!(json["state"], "failed", "{json}");
    assert_eq!(json["reason"], "its keeper was killed", "{json}");
    assert_eq!(json["pid"], serde_json::Value::Null, "{json}");
    start(&sandbox, "d", &[], &program);
    let again = started(&mut fifo);
    assert_eq!(programs(&sandbox), vec![again], "one copy");
    let (code, json) = wait_status(&sandbox, "d", |j| j["pid"] == again);
    assert_eq!((code, json["pid"].as_u64()), (0, Some(u64::from(again))));
}

#[test]
fn stderr_before_readiness_and_the_exit_status_reach_start() {
    let sandbox = Sandbox::new();
    let program = script(
        &sandbox,
        "fails.sh",
        "echo 'config: line 3: unknown key' >&2\nexit 4",
    );
    let output = run(daemonic(&sandbox).args(["start", "-n", "d", "--notify", "--", &program]));
    assert_eq!(code(&output), 1);
    let err = stderr(&output);
    assert!(err.contains("config: line 3: unknown key"), "{err}");
    assert!(
        err.contains("exited with status 4 before it was ready"),
        "{err}"
    );
    assert_eq!(sandbox.processes(), Vec::<u32>::new(), "nothing left");
    assert!(!pidfile(&sandbox, "d").exists());
    let (code, json) = status_json(&sandbox, "d");
    assert_eq!(
        (code, json["state"].as_str()),
        (3, Some("stopped")),
        "{json}"
    );
}

#[test]
fn ready_after_counts_a_program_ready_once_it_stayed_up() {
    let sandbox = Sandbox::new();
    let quick = script(&sandbox, "quick.sh", "exit 0");
    let output =
        run(daemonic(&sandbox).args(["start", "-n", "q", "--ready-after", "5", "--", &quick]));
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(stderr(&output).contains("exited with status 0 before it was ready"));
    let started_at = Instant::now();
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "s",
        "--ready-after",
        "0.2",
        "--",
        &sleeper(&sandbox),
        "300",
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(started_at.elapsed() >= Duration::from_millis(200));
    let (_, json) = status_json(&sandbox, "s");
    assert_eq!(json["state"], "ready", "{json}");
}

#[test]
fn signal_group_reaches_every_process_of_the_group() {
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = script(
        &sandbox,
        "pair.sh",
        &format!(
            "trap 'echo \"parent-usr1\" > {0}' USR1\n(trap 'echo \"child-usr1\" > {0}; exit' USR1; echo \"start $$\" > {0}; while :; do \"$SLEEP\" 1; done) &\nwait; wait",
            fifo.path.display()
        ),
    );
    start(&sandbox, "d", &[], &program);
    started(&mut fifo);
    let output = run(daemonic(&sandbox).args(["signal", "-n", "d", "--group", "USR1"]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let mut heard = [fifo.line(WAIT), fifo.line(WAIT)];
    heard.sort();
    assert_eq!(heard, ["child-usr1".to_string(), "parent-usr1".to_string()]);
}

#[test]
fn run_exits_with_the_programs_status_and_stops_it_on_term() {
    let sandbox = Sandbox::new();
    let exit7 = script(&sandbox, "exit7.sh", "exit 7");
    let output = run(daemonic(&sandbox).args(["run", "--", &exit7]));
    assert_eq!(code(&output), 7);

    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = announcing(&sandbox, "svc.sh", &fifo);
    let child = ChildGuard(
        daemonic(&sandbox)
            .args(["run", "-n", "fg", "--", &program])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = started(&mut fifo);
    assert_eq!(stat(pid).ppid, child.id(), "run is the program's parent");
    // The program reports its start a moment before the keeper's first record shows it.
    let (code, json) = wait_status(&sandbox, "fg", |j| j["state"] != "unknown");
    assert_eq!(
        (code, json["pid"].as_u64()),
        (0, Some(u64::from(pid))),
        "{json}"
    );
    kill(child.id(), libc::SIGTERM);
    let mut child = child;
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(143), "TERM forwarded: 128 + 15");
    assert_eq!(sandbox.processes(), Vec::<u32>::new());
}

/// Root only: `daemonic run` as PID 1 of a new PID namespace reaps an orphaned grandchild and
/// passes TERM on.
#[test]
fn run_as_pid_1_reaps_orphans_and_forwards_term() {
    if !is_root() || Command::new("unshare").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and unshare(1)");
        return;
    }
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    // A grandchild that is orphaned at once and exits: only PID 1 can reap it.
    let program = script(
        &sandbox,
        "init.sh",
        &format!(
            "( sh -c 'read -r host _ < /proc/self/stat; echo \"orphan $host\" > {0}' & )\necho \"start $$\" > {0}\nexec \"$SLEEP\" 300",
            fifo.path.display()
        ),
    );
    let mut child = ChildGuard(
        Command::new("unshare")
            .args([
                "--pid",
                "--fork",
                "--kill-child",
                BIN,
                "run",
                "--",
                &program,
            ])
            .spawn()
            .unwrap(),
    );
    let mut lines = [fifo.line(WAIT), fifo.line(WAIT)];
    lines.sort();
    assert!(
        lines[0].starts_with("orphan ") && lines[1].starts_with("start "),
        "{lines:?}"
    );
    // The keeper is unshare's child; inside the namespace it is PID 1.
    let keeper =
        std::fs::read_to_string(format!("/proc/{}/task/{}/children", child.id(), child.id()))
            .unwrap()
            .trim()
            .parse::<u32>()
            .unwrap();
    let ns_pid = std::fs::read_to_string(format!("/proc/{keeper}/status"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("NSpid:")
                .map(|v| v.split_whitespace().last().unwrap().to_string())
        })
        .unwrap();
    assert_eq!(ns_pid, "1", "daemonic run is PID 1 in the namespace");
    // The orphan (its pid as the host sees it: /proc here is the host's) exits right after
    // writing its line; only PID 1 can reap it, and a reaped process leaves /proc.
    let orphan = lines[0].strip_prefix("orphan ").unwrap().to_string();
    eventually("PID 1 reaped the orphan", || {
        !Path::new(&format!("/proc/{orphan}")).exists()
    });
    kill(keeper, libc::SIGTERM);
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(143), "TERM reached the program");
}

/// Root only: a user who may read the run directory reads the status without any privilege.
#[test]
fn status_is_readable_by_an_unprivileged_user() {
    if !is_root() {
        eprintln!("skipped: needs root to start as root and read as nobody");
        return;
    }
    let sandbox = Sandbox::new();
    sandbox.share(0o755);
    let pid = {
        let output =
            run(daemonic(&sandbox).args(["start", "-n", "d", "--", &sleeper(&sandbox), "300"]));
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        pid_in(&pidfile(&sandbox, "d"))
    };
    let mut command = daemonic(&sandbox);
    command.args(["status", "-n", "d", "--json"]);
    use std::os::unix::process::CommandExt;
    command.uid(65534).gid(65534);
    let output = run(&mut command);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["state"], "running", "{json}");
    assert_eq!(json["pid"], pid, "{json}");
    assert!(json["keeper_pid"].is_u64(), "{json}");
    // Nobody may control it.
    let mut command = daemonic(&sandbox);
    command.args(["stop", "-n", "d"]).uid(65534).gid(65534);
    let output = run(&mut command);
    assert_eq!(code(&output), 4, "{}", stderr(&output));
    assert!(ProcStat::read(pid).is_some(), "still running");
}

/// Root only: files another user planted in the run directory never decide what runs or what
/// status says.
#[test]
fn files_planted_by_another_user_decide_nothing() {
    if !is_root() {
        eprintln!("skipped: needs root to plant files as another user");
        return;
    }
    let sandbox = Sandbox::new();
    let rundir = sandbox.path("run");
    std::fs::create_dir(&rundir).unwrap();
    let canary = sandbox.path("planted-ran");
    let planted_record = format!(
        "{{\"name\":\"d\",\"args\":[\"-n\",\"d\",\"--\",\"/bin/sh\",\"-c\",\"touch {}\"]}}",
        canary.display()
    );
    for (file, text) in [
        ("d.pid.json", planted_record.as_str()),
        ("d.pid.status", "DKS1 garbage planted"),
    ] {
        let path = rundir.join(file);
        std::fs::write(&path, text).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    }
    let restart = run(daemonic(&sandbox).args(["restart", "-n", "d"]));
    assert_eq!(code(&restart), 7, "{}", stderr(&restart));
    let status = run(daemonic(&sandbox).args(["status", "-n", "d", "--json"]));
    assert_eq!(
        code(&status),
        4,
        "a record owned by another user is not believed"
    );
    assert!(
        stderr(&status).is_empty()
            && String::from_utf8_lossy(&status.stdout).contains("owned by uid 65534")
    );
    assert!(!canary.exists(), "a planted command ran");
    assert_eq!(sandbox.processes(), Vec::<u32>::new());
}

/// Root only, with btrfs-progs: a pidfile on btrfs, whose `stat()` device differs from the one
/// `/proc/locks` shows, is still seen running and stopped.
#[test]
fn a_pidfile_on_btrfs_is_seen_and_stopped() {
    let mkfs = Command::new("mkfs.btrfs").arg("--version").output();
    if !is_root() || mkfs.is_err() {
        eprintln!("skipped: needs root and mkfs.btrfs");
        return;
    }
    let sandbox = Sandbox::new();
    let image = sandbox.path("btrfs.img");
    let file = std::fs::File::create(&image).unwrap();
    file.set_len(128 << 20).unwrap();
    drop(file);
    let made = Command::new("mkfs.btrfs")
        .arg("-q")
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let Some(mounted) = Mounted::new(
        &sandbox,
        "mnt",
        &["-o".as_ref(), "loop".as_ref(), image.as_os_str()],
    ) else {
        return;
    };
    let mount = mounted.path.clone();
    let pidfile = mount.join("svc.pid");
    let pidfile_arg = pidfile.to_str().unwrap();
    let output =
        run(daemonic(&sandbox).args(["start", "-p", pidfile_arg, "--", &sleeper(&sandbox), "300"]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let pid = pid_in(&pidfile);
    let status = run(daemonic(&sandbox).args(["status", "-p", pidfile_arg]));
    assert_eq!(
        code(&status),
        0,
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let stop = run(daemonic(&sandbox).args(["stop", "-p", pidfile_arg]));
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));
    wait_gone(pid);
    assert_eq!(sandbox.processes(), Vec::<u32>::new());
}

/// nginx in its default (forking) mode: started, reloaded, stopped. Needs nginx installed.
#[test]
fn nginx_in_its_forking_mode_is_started_reloaded_and_stopped() {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(nginx) = nginx else {
        eprintln!("skipped: nginx is not installed (apt-get install nginx-light)");
        return;
    };
    let sandbox = Sandbox::new();
    let prefix = sandbox.dir.path();
    std::fs::create_dir(prefix.join("logs")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let conf = prefix.join("nginx.conf");
    let own_pidfile = prefix.join("nginx.pid");
    std::fs::write(
        &conf,
        format!(
            "pid {};\nerror_log {}/error.log;\nworker_processes 2;\nevents {{}}\nhttp {{ access_log off; server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"hello\\n\"; }} }} }}\n",
            own_pidfile.display(),
            prefix.display()
        ),
    )
    .unwrap();
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "nginx",
        "--forks",
        own_pidfile.to_str().unwrap(),
        "--",
        nginx,
        "-p",
        prefix.to_str().unwrap(),
        "-c",
        conf.to_str().unwrap(),
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    // The pidfile names nginx's master (the process nginx forked), adopted by the keeper.
    let master = pid_in(&pidfile(&sandbox, "nginx"));
    assert_eq!(master, pid_in(&own_pidfile));
    assert!(
        is_keeper(stat(master).ppid),
        "the keeper adopted the master"
    );
    let (code_now, json) = status_json(&sandbox, "nginx");
    assert_eq!(
        (code_now, json["state"].as_str()),
        (0, Some("ready")),
        "{json}"
    );
    let get = || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    };
    assert!(get().ends_with("hello\n"));
    let workers = |master: u32| -> Vec<u32> {
        let mut w: Vec<u32> =
            std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
        w.sort_unstable();
        w
    };
    let before = workers(master);
    assert_eq!(before.len(), 2, "{before:?}");
    // Reload: the master stays, its workers are replaced.
    let output = run(daemonic(&sandbox).args(["signal", "-n", "nginx", "HUP"]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    for old in &before {
        wait_gone(*old);
    }
    assert_eq!(pid_in(&pidfile(&sandbox, "nginx")), master);
    assert!(get().ends_with("hello\n"));
    let stop = run(daemonic(&sandbox).args(["stop", "-n", "nginx"]));
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));
    wait_gone(master);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens"
    );
    let (code_now, json) = status_json(&sandbox, "nginx");
    assert_eq!(
        (code_now, json["state"].as_str()),
        (3, Some("stopped")),
        "{json}"
    );
}

/// Under systemd (`Type=notify`), `daemonic run` passes READY (with MAINPID), STATUS and
/// STOPPING on to `$NOTIFY_SOCKET`; the program hears its own socket, not systemd's.
#[test]
fn run_passes_readiness_status_and_stopping_to_an_outer_service_manager() {
    let sandbox = Sandbox::new();
    let manager_path = sandbox.path("systemd.sock");
    let manager = std::os::unix::net::UnixDatagram::bind(&manager_path).unwrap();
    manager.set_read_timeout(Some(WAIT)).unwrap();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = script(
        &sandbox,
        "svc.sh",
        &format!(
            "echo \"start $$ $NOTIFY_SOCKET\" > {}\n\"$DAEMONIC\" notify 'STATUS=warming up'\n\"$DAEMONIC\" notify READY=1\nexec \"$SLEEP\" 300",
            fifo.path.display()
        ),
    );
    let mut child = ChildGuard(
        daemonic(&sandbox)
            .env("NOTIFY_SOCKET", &manager_path)
            .args(["run", "--notify", "--", &program])
            .spawn()
            .unwrap(),
    );
    let line = fifo.line(WAIT);
    let mut words = line.split_whitespace().skip(1);
    let pid: u32 = words.next().unwrap().parse().unwrap();
    let socket = words.next().unwrap_or("");
    assert!(
        socket.starts_with('@') && socket != manager_path.to_str().unwrap(),
        "the program gets the keeper's own socket: {line:?}"
    );
    let mut heard = Vec::new();
    let mut buf = [0u8; 4096];
    while !heard.iter().any(|m: &String| m.contains("READY=1")) {
        let n = manager
            .recv(&mut buf)
            .expect("a message for the service manager");
        heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(heard.iter().any(|m| m == "STATUS=warming up"), "{heard:?}");
    let ready = heard.iter().find(|m| m.contains("READY=1")).unwrap();
    assert!(ready.contains(&format!("MAINPID={pid}")), "{ready:?}");
    kill(child.id(), libc::SIGTERM);
    let n = manager.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert_eq!(child.0.wait().unwrap().code(), Some(143));
}

/// A FIFO, a directory or a device where a pidfile should be: every command answers at once with
/// a clear error (none blocks opening it).
#[test]
fn a_fifo_directory_or_device_at_the_pidfile_never_blocks_a_command() {
    let sandbox = Sandbox::new();
    let fifo = sandbox.path("fifo.pid");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let dir = sandbox.path("dir.pid");
    std::fs::create_dir(&dir).unwrap();
    for path in [fifo.to_str().unwrap(), dir.to_str().unwrap(), "/dev/null"] {
        for verb in [
            &["start", "-p", path, "--", &sleeper(&sandbox), "300"][..],
            &["status", "-p", path],
            &["stop", "-p", path],
            &["signal", "-p", path, "HUP"],
            &["restart", "-p", path],
        ] {
            let started = Instant::now();
            let mut child = ChildGuard(
                daemonic(&sandbox)
                    .args(verb)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
            let deadline = started + WAIT;
            while child.0.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "{verb:?} blocked on {path}");
                std::thread::yield_now();
            }
            let output = std::mem::replace(&mut child.0, Command::new("true").spawn().unwrap())
                .wait_with_output()
                .unwrap();
            let said = format!(
                "{}{}",
                stderr(&output),
                String::from_utf8_lossy(&output.stdout)
            );
            assert!(
                matches!(output.status.code(), Some(2) | Some(4)),
                "{verb:?} on {path}: {:?} {said}",
                output.status
            );
            assert!(
                said.contains(path) && said.contains("not a regular file"),
                "{verb:?}: {said}"
            );
        }
    }
    assert_eq!(programs(&sandbox), Vec::<u32>::new(), "nothing started");
}

/// A routine signal (logrotate's HUP) must not excuse a later crash: under on-failure, a SEGV
/// after a forwarded HUP is still restarted.
#[test]
fn a_forwarded_signal_does_not_excuse_a_later_crash() {
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = script(
        &sandbox,
        "hupcrash.sh",
        &format!(
            "trap 'echo hup > {0}' HUP\necho \"start $$\" > {0}\nwhile :; do \"$SLEEP\" 1 & wait $!; if [ -e {1} ]; then kill -SEGV $$; fi; done",
            fifo.path.display(),
            sandbox.path("crash-now").display()
        ),
    );
    start(
        &sandbox,
        "d",
        &[
            "--restart",
            "on-failure",
            "--restart-delay",
            "0",
            "--no-core",
        ],
        &program,
    );
    let first = started(&mut fifo);
    let output = run(daemonic(&sandbox).args(["signal", "-n", "d", "HUP"]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(fifo.line(WAIT), "hup");
    std::fs::write(sandbox.path("crash-now"), "").unwrap();
    let second = started(&mut fifo);
    std::fs::remove_file(sandbox.path("crash-now")).unwrap();
    assert_ne!(first, second, "restarted after the crash");
}

/// A file that is not a socket at PIDFILE.sock: the start fails naming it, and the file stays.
#[test]
fn a_file_at_the_control_socket_path_fails_the_start_and_is_left_alone() {
    let sandbox = Sandbox::new();
    let pidfile = sandbox.path("s.pid");
    let planted = sandbox.path("s.pid.sock");
    std::fs::write(&planted, "mine\n").unwrap();
    let output = run(daemonic(&sandbox).args([
        "start",
        "-p",
        pidfile.to_str().unwrap(),
        "--",
        &sleeper(&sandbox),
        "300",
    ]));
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("s.pid.sock: Socket operation on non-socket")
            && stderr(&output).contains("in the way; remove it"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_to_string(&planted).unwrap(), "mine\n");
    assert_eq!(sandbox.processes(), Vec::<u32>::new());
}

/// A pidfile removed under a running keeper: a new start must not run a second copy (the live
/// keeper still answers on its socket).
#[test]
fn a_removed_pidfile_never_leads_to_a_second_copy() {
    let sandbox = Sandbox::new();
    let pidfile = sandbox.path("d.pid");
    let path = pidfile.to_str().unwrap();
    let output =
        run(daemonic(&sandbox).args(["start", "-p", path, "--", &sleeper(&sandbox), "300"]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    std::fs::remove_file(&pidfile).unwrap();
    let output =
        run(daemonic(&sandbox).args(["start", "-p", path, "--", &sleeper(&sandbox), "300"]));
    assert_ne!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("a live keeper answers on it"),
        "{}",
        stderr(&output)
    );
    assert_eq!(programs(&sandbox).len(), 1, "one copy");
}

/// s6 readiness: a program that writes to its readiness descriptor again after the newline
/// keeps running (no SIGPIPE).
#[test]
fn writing_to_the_ready_fd_after_readiness_is_harmless() {
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = script(
        &sandbox,
        "chatty.sh",
        &format!(
            "(echo) >&3\n(echo again) >&3\necho \"start $$\" > {}\nexec \"$SLEEP\" 300",
            fifo.path.display()
        ),
    );
    start(&sandbox, "d", &["--ready-fd", "3"], &program);
    let pid = started(&mut fifo);
    let (code, json) = wait_status(&sandbox, "d", |j| j["pid"] == pid);
    assert_eq!((code, json["state"].as_str()), (0, Some("ready")), "{json}");
    assert_eq!(json["restarts"], 0, "{json}");
}

/// Program arguments that are not UTF-8 reach the program as they were given.
#[test]
fn non_utf8_arguments_pass_through_unchanged() {
    use std::os::unix::ffi::OsStrExt;
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = script(
        &sandbox,
        "args.sh",
        &format!(
            "printf '%s' \"$1\" > {}\necho \"start $$\" > {}\nexec \"$SLEEP\" 300",
            sandbox.path("arg").display(),
            fifo.path.display()
        ),
    );
    let arg = std::ffi::OsStr::from_bytes(b"caf\xe9-\xff");
    let output = run(daemonic(&sandbox)
        .args(["start", "-n", "d", "--", &program])
        .arg(arg));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    started(&mut fifo);
    assert_eq!(std::fs::read(sandbox.path("arg")).unwrap(), b"caf\xe9-\xff");
}

/// Ctrl-C (or TERM, HUP) to a `start` that waits for readiness stops the half-started service
/// and leaves nothing: no process, no pidfile, no record. The exit status is 128 + the signal.
#[test]
fn interrupting_a_waiting_start_leaves_nothing() {
    for (signal, name) in [
        (libc::SIGINT, "int"),
        (libc::SIGTERM, "term"),
        (libc::SIGHUP, "hup"),
    ] {
        let sandbox = Sandbox::new();
        let mut fifo = Fifo::new(sandbox.path("events"));
        let program = announcing(&sandbox, "never.sh", &fifo);
        let mut launcher = ChildGuard(
            daemonic(&sandbox)
                .args(["start", "-n", name, "--notify", "--", &program])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        started(&mut fifo);
        kill(launcher.id(), signal);
        let status = launcher.0.wait().unwrap();
        assert_eq!(status.code(), Some(128 + signal), "{name}");
        let mut err = String::new();
        use std::io::Read;
        launcher
            .0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(err.contains("interrupted by SIG"), "{err}");
        assert_eq!(
            sandbox.processes(),
            Vec::<u32>::new(),
            "{name}: nothing left running"
        );
        let pidfile = pidfile(&sandbox, name);
        for leftover in [
            pidfile.clone(),
            sandbox.path("run").join(format!("{name}.pid.status")),
            sandbox.path("run").join(format!("{name}.pid.sock")),
        ] {
            assert!(!leftover.exists(), "{name}: {leftover:?} left behind");
        }
        let (code, json) = status_json(&sandbox, name);
        assert_eq!(
            (code, json["state"].as_str()),
            (3, Some("stopped")),
            "{json}"
        );
    }
}

/// A hangup the launcher was told to ignore (`nohup daemonic start …`) stays ignored while it
/// waits: the service goes on starting; a Ctrl-C it does not ignore still stops it.
#[test]
fn an_ignored_hangup_does_not_interrupt_a_waiting_start() {
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = announcing(&sandbox, "never.sh", &fifo);
    let mut launcher = ChildGuard(
        Command::new("/bin/sh")
            .args(["-c", "trap '' HUP; exec \"$0\" \"$@\""])
            .arg(BIN)
            .args(["start", "-n", "hup", "--notify", "--", &program])
            .env("DAEMONIC_RUNDIR", sandbox.path("run"))
            .spawn()
            .unwrap(),
    );
    started(&mut fifo);
    kill(launcher.id(), libc::SIGHUP);
    // The launcher handles an interrupt only after the signals before it: INT comes after HUP,
    // so an exit by INT shows that HUP was passed over.
    kill(launcher.id(), libc::SIGINT);
    let status = launcher.0.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGINT));
    assert_eq!(sandbox.processes(), Vec::<u32>::new());
}

/// A TERM that comes while `start` waits for a busy pidfile (a stop or start in progress holds
/// it) is taken once the launcher has forked the keeper, before the keeper has said its pid: the
/// launcher stops that keeper all the same (it is its child, killed by pid), and nothing stays
/// running.
#[test]
fn an_interrupt_before_the_keeper_is_heard_from_leaves_nothing() {
    let sandbox = Sandbox::new();
    let run_dir = sandbox.path("run");
    std::fs::create_dir(&run_dir).unwrap();
    // An empty pidfile, locked: `start` waits (up to 200 ms) for its holder to write a pid.
    let pidfile = run_dir.join("r.pid");
    let busy = std::fs::File::create(&pidfile).unwrap();
    busy.lock().unwrap();
    let mut launcher = ChildGuard(
        daemonic(&sandbox)
            .args(["start", "-n", "r", "--", &sleeper(&sandbox), "300"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Once TERM is blocked the launcher takes it through its signalfd, after the fork.
    eventually("the launcher blocks TERM", || {
        u64::from_str_radix(&status(launcher.id(), "SigBlk"), 16)
            .is_ok_and(|blocked| blocked & 1 << (libc::SIGTERM - 1) != 0)
    });
    kill(launcher.id(), libc::SIGTERM);
    drop(busy);
    let output = std::mem::replace(&mut launcher.0, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(128 + libc::SIGTERM),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        sandbox.processes(),
        Vec::<u32>::new(),
        "nothing left running"
    );
    let status = run(daemonic(&sandbox).args(["status", "-n", "r"]));
    assert_ne!(
        code(&status),
        0,
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
}

/// A relative pidfile names a file from where the command was given, for the keeper too (which
/// works in `/`): its socket and record are beside it, and `status` and `stop` find them.
#[test]
fn a_relative_pidfile_is_taken_from_the_current_directory() {
    let sandbox = Sandbox::new();
    let sleep = sleeper(&sandbox);
    let here = |args: &[&str]| {
        let mut command = daemonic(&sandbox);
        command.current_dir(sandbox.path("")).args(args);
        run(&mut command)
    };
    let output = here(&["start", "-p", "rel.pid", "--", &sleep, "300"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    for file in ["rel.pid", "rel.pid.sock", "rel.pid.status"] {
        assert!(sandbox.path(file).exists(), "{file}");
        assert!(!Path::new("/").join(file).exists(), "/{file}");
    }
    let status = here(&["status", "-p", "rel.pid"]);
    assert_eq!(code(&status), 0, "{}", stderr(&status));
    let stop = here(&["stop", "-p", "rel.pid"]);
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));
    assert!(!sandbox.path("rel.pid").exists());
    assert_eq!(sandbox.processes(), Vec::<u32>::new());
}

/// Root only: `--user` sets HOME, USER and LOGNAME from the user's passwd entry (as su and
/// OpenRC do), unless they are given explicitly.
#[test]
fn user_sets_home_user_and_logname_from_the_passwd_entry() {
    if !is_root() {
        eprintln!("skipped: needs root to run as another user");
        return;
    }
    let sandbox = Sandbox::new();
    sandbox.share(0o755);
    let home = std::process::Command::new("getent")
        .args(["passwd", "nobody"])
        .output()
        .unwrap();
    let home = String::from_utf8_lossy(&home.stdout)
        .split(':')
        .nth(5)
        .unwrap_or("")
        .to_string();
    for (name, extra, want_home) in [
        ("plain", None, home.as_str()),
        ("explicit", Some("HOME=/srv/explicit"), "/srv/explicit"),
    ] {
        let mut command = daemonic(&sandbox);
        command.args(["start", "-n", name, "-u", "nobody"]);
        if let Some(kv) = extra {
            command.args(["-e", kv]);
        }
        let output = run(command.args(["--", &sleeper(&sandbox), "300"]));
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        let pid = pid_in(&pidfile(&sandbox, name));
        let env = environ(pid);
        assert!(
            env.contains(&format!("HOME={want_home}")),
            "{name}: {env:?}"
        );
        assert!(env.contains(&"USER=nobody".to_string()), "{name}: {env:?}");
        assert!(
            env.contains(&"LOGNAME=nobody".to_string()),
            "{name}: {env:?}"
        );
    }
}

/// Root only: `--cap` keeps exactly the named capabilities across the drop to a user, in the
/// ambient set (so they survive the exec), at every restart; without `--user` it is refused.
#[test]
fn capabilities_survive_the_drop_to_a_user_and_every_restart() {
    if !is_root() {
        eprintln!("skipped: needs root to run as another user with capabilities");
        return;
    }
    let sandbox = Sandbox::new();
    sandbox.share(0o755);
    let output = run(daemonic(&sandbox)
        .args(["start", "-n", "caps", "-u", "nobody", "--restart", "always"])
        .args([
            "--stable-after",
            "0",
            "--cap",
            "net_bind_service",
            "--cap",
            "CAP_SYS_NICE",
        ])
        .args(["--", &sleeper(&sandbox), "300"]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let want = format!("{:016x}", 1u64 << 10 | 1 << 23);
    let check = |pid: u32| {
        exec_done(pid);
        assert_eq!(status(pid, "Uid").split_whitespace().next(), Some("65534"));
        for set in ["CapAmb", "CapEff", "CapPrm", "CapInh"] {
            assert_eq!(status(pid, set), want, "{set} of {pid}");
        }
    };
    let first = pid_in(&pidfile(&sandbox, "caps"));
    check(first);
    kill(first, libc::SIGKILL);
    eventually("a new program", || {
        std::fs::read_to_string(pidfile(&sandbox, "caps"))
            .is_ok_and(|p| p.trim().parse::<u32>().is_ok_and(|p| p != first))
    });
    check(pid_in(&pidfile(&sandbox, "caps")));
    let stop = run(daemonic(&sandbox).args(["stop", "-n", "caps"]));
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));

    // Without a user, or as root, the program would have every capability: refused.
    for user in [None, Some("root"), Some("0")] {
        let mut command = daemonic(&sandbox);
        command.args(["start", "-n", "root", "--cap", "net_raw"]);
        if let Some(user) = user {
            command.args(["-u", user]);
        }
        let refused = run(command.args(["--", &sleeper(&sandbox), "300"]));
        assert_eq!(code(&refused), 2, "{user:?}: {}", stderr(&refused));
        assert!(
            stderr(&refused).contains("user other than root"),
            "{}",
            stderr(&refused)
        );
        assert!(!pidfile(&sandbox, "root").exists(), "nothing left behind");
    }
    let unknown = run(daemonic(&sandbox)
        .args(["start", "-n", "x", "-u", "nobody", "--cap", "net_bind"])
        .args(["--", &sleeper(&sandbox), "300"]));
    assert_eq!(code(&unknown), 2, "{}", stderr(&unknown));
    assert!(
        stderr(&unknown).contains("\"net_bind\" is not a capability"),
        "{}",
        stderr(&unknown)
    );
}

/// Root only: a pidfile directory another user owns, or that others may write without the
/// sticky bit, is refused; in a sticky directory (as /tmp) a pidfile another user left is never
/// taken over.
#[test]
fn hostile_pidfile_directories_and_planted_pidfiles_are_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to prepare another user's directories");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let theirs = sandbox.path("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let open = sandbox.path("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    // Our own link to such a directory is followed, and what it leads to is what is checked.
    let ours = sandbox.path("ours");
    std::os::unix::fs::symlink(&open, &ours).unwrap();
    for (dir, why) in [
        (&theirs, "belongs to uid 65534"),
        (&open, "may be written by others"),
        (&ours, "may be written by others"),
    ] {
        let pidfile = dir.join("svc.pid");
        let output = run(daemonic(&sandbox).args([
            "start",
            "-p",
            pidfile.to_str().unwrap(),
            "--",
            &sleeper(&sandbox),
            "300",
        ]));
        assert_eq!(code(&output), 4, "{}", stderr(&output));
        assert!(stderr(&output).contains(why), "{}", stderr(&output));
        assert!(!pidfile.exists());
    }
    // A symlink another user planted on the way (in an ancestor), and a log directory in a
    // directory of theirs, are refused too: they could swap it later.
    let victim = sandbox.path("victim");
    std::fs::create_dir(&victim).unwrap();
    let link = theirs.join("run");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    let through = link.join("app.pid");
    let output = run(daemonic(&sandbox).args([
        "start",
        "-p",
        through.to_str().unwrap(),
        "--",
        &sleeper(&sandbox),
        "300",
    ]));
    assert_eq!(code(&output), 4, "{}", stderr(&output));
    assert!(
        std::fs::read_dir(&victim).unwrap().next().is_none(),
        "nothing written through the link"
    );
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "logged",
        "--log",
        theirs.join("log").to_str().unwrap(),
        "--",
        &sleeper(&sandbox),
        "300",
    ]));
    assert_eq!(code(&output), 4, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("belongs to uid 65534"),
        "{}",
        stderr(&output)
    );
    // A sticky shared directory is fine, but not another user's file in it.
    let shared = sandbox.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let planted = shared.join("planted.pid");
    std::fs::write(&planted, "1\n").unwrap();
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    let output = run(daemonic(&sandbox).args([
        "start",
        "-p",
        planted.to_str().unwrap(),
        "--",
        &sleeper(&sandbox),
        "300",
    ]));
    assert_eq!(code(&output), 4, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("owned by uid 65534"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read_to_string(&planted).unwrap(),
        "1\n",
        "left as it was"
    );
    let fine = shared.join("mine.pid");
    let output = run(daemonic(&sandbox).args([
        "start",
        "-p",
        fine.to_str().unwrap(),
        "--",
        &sleeper(&sandbox),
        "300",
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(programs(&sandbox).len(), 1);
}

/// After a SIGKILL of the launcher, `status` never reports "ready" for a program that never said
/// so (the keeper goes on waiting for it).
#[test]
fn a_killed_launcher_never_makes_status_say_ready() {
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = announcing(&sandbox, "slow.sh", &fifo);
    let mut launcher = ChildGuard(
        daemonic(&sandbox)
            .args(["start", "-n", "d", "--notify", "--", &program])
            .spawn()
            .unwrap(),
    );
    started(&mut fifo);
    kill(launcher.id(), libc::SIGKILL);
    let _ = launcher.0.wait();
    let (code, json) = wait_status(&sandbox, "d", |j| j["pid"].is_u64());
    assert_eq!(json["state"], "starting", "{json}");
    assert_eq!(json["ready"], false, "{json}");
    assert_eq!(code, 0);
}

/// Environment values that are not UTF-8 pass through unchanged; a readiness descriptor out of
/// range is refused before anything starts.
#[test]
fn non_utf8_environment_values_pass_and_ready_fd_is_range_checked() {
    use std::os::unix::ffi::OsStrExt;
    let sandbox = Sandbox::new();
    let mut kv = b"ODD=caf\xe9".to_vec();
    kv.push(b'!');
    let output = run(daemonic(&sandbox)
        .args(["start", "-n", "d", "-e"])
        .arg(std::ffi::OsStr::from_bytes(&kv))
        .args(["--", &sleeper(&sandbox), "300"]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let pid = pid_in(&pidfile(&sandbox, "d"));
    exec_done(pid);
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        raw.split(|&b| b == 0).any(|v| v == kv.as_slice()),
        "ODD=caf\\xe9! passed as given"
    );
    for bad in ["2", "-1", "70000", "x"] {
        let output = run(daemonic(&sandbox).args([
            "start",
            "-n",
            "r",
            "--ready-fd",
            bad,
            "--",
            &sleeper(&sandbox),
            "300",
        ]));
        assert_eq!(code(&output), 2, "{bad}: {}", stderr(&output));
    }
}

/// Nothing written to disk holds the environment: not the admin's (a secret in it, with
/// `--clear-env`), and not even what the daemon was given (`-e`). After `stop`, nothing of the
/// service is left in the run directory but its last record.
#[test]
fn no_environment_value_is_written_to_disk() {
    let sandbox = Sandbox::new();
    let sleep = sleeper(&sandbox);
    let output = run(daemonic(&sandbox)
        .env("ADMIN_SECRET", "hunter2-admin")
        .env("TZ", "Europe/Paris")
        .args([
            "start",
            "-n",
            "env",
            "--clear-env",
            "-e",
            "GIVEN=given-value-42",
            "--",
            &sleep,
            "300",
        ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let rundir = sandbox.path("run");
    let scan = || {
        for entry in std::fs::read_dir(&rundir).unwrap().flatten() {
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("hunter2-admin"), "{:?}", entry.path());
            assert!(!text.contains("given-value-42"), "{:?}", entry.path());
        }
    };
    scan();
    // Nor does the resident keeper carry the admin's environment: only what it reads itself.
    let (_, status) = status_json(&sandbox, "env");
    let keeper = status["keeper_pid"].as_u64().unwrap();
    keeper_image_runs(keeper as u32);
    let environ = std::fs::read(format!("/proc/{keeper}/environ")).unwrap();
    let vars: Vec<&[u8]> = environ
        .split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .collect();
    assert_eq!(
        vars,
        [b"TZ=Europe/Paris".as_slice()],
        "the keeper's environment"
    );
    let stop = run(daemonic(&sandbox).args(["stop", "-n", "env"]));
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));
    scan();
    let left: Vec<String> = std::fs::read_dir(&rundir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["env.pid.status"], "only the last record stays");
}

#[test]
fn resource_controls_reach_the_program_and_survive_a_restart() {
    if !is_root() {
        eprintln!("skipped: needs root (a negative nice value)");
        return;
    }
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = announcing(&sandbox, "svc.sh", &fifo);
    let env_file = sandbox.path("service.env");
    std::fs::write(
        &env_file,
        "# as systemd reads it\nGREETING=\"hello world\"\nLEVEL=3\n",
    )
    .unwrap();
    let input = sandbox.path("input");
    std::fs::write(&input, "data\n").unwrap();
    let missing = format!("-{}", sandbox.path("no-such.env").display());
    start(
        &sandbox,
        "res",
        &[
            "--restart",
            "always",
            "--stable-after",
            "0",
            "--nice",
            "-5",
            "--rlimit",
            "nofile=1000:2000",
            "--rlimit",
            "core=unlimited",
            "--oom-score-adj",
            "300",
            "--no-new-privs",
            "--sched",
            "batch",
            "--ionice",
            "idle",
            "--env-file",
            &env_file.display().to_string(),
            "--env-file",
            &missing,
            "-e",
            "LEVEL=4",
            "--stdin",
            &input.display().to_string(),
        ],
        &program,
    );
    let check = |pid: u32| {
        // After the script's exec (during it, /proc/PID/environ can read empty).
        eventually("the program runs sleep", || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        });
        let fields = stat_fields(pid);
        assert_eq!(fields[16], "-5", "nice (stat field 19)");
        assert_eq!(fields[38], "3", "policy SCHED_BATCH (stat field 41)");
        assert_eq!(
            proc_limit(pid, "Max open files"),
            ("1000".into(), "2000".into())
        );
        assert_eq!(
            proc_limit(pid, "Max core file size"),
            ("unlimited".into(), "unlimited".into())
        );
        let oom = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
        assert_eq!(oom.trim(), "300");
        assert_eq!(status(pid, "NoNewPrivs"), "1");
        // SAFETY: ioprio_get(IOPRIO_WHO_PROCESS, pid) only reads.
        let ioprio = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, pid as libc::c_long) };
        assert_eq!(ioprio >> 13, 3, "I/O class idle");
        exec_done(pid);
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let vars: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
        assert!(
            vars.contains(&b"GREETING=hello world".as_slice()),
            "environment"
        );
        assert!(
            vars.contains(&b"LEVEL=4".as_slice()),
            "--env wins over the file"
        );
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap(),
            input
        );
    };
    let first = started(&mut fifo);
    check(first);
    // The re-executed keeper carries the controls in its state: the next run gets them too.
    kill(first, libc::SIGKILL);
    let second = started(&mut fifo);
    assert_ne!(first, second);
    check(second);
    let stop = run(daemonic(&sandbox).args(["stop", "-n", "res"]));
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));
}

#[test]
fn bad_resource_controls_are_refused_before_anything_starts() {
    let sandbox = Sandbox::new();
    let sleep = sleeper(&sandbox);
    let bad_env = sandbox.path("bad.env");
    std::fs::write(&bad_env, "A=1\nexport B=2 3\n").unwrap();
    let bad_env = bad_env.display().to_string();
    let cases: [(&[&str], &str); 8] = [
        (
            &["--rlimit", "nofile=10:5"],
            "nofile: the soft limit 10 is above the hard limit 5",
        ),
        (&["--rlimit", "files=10"], "unknown limit \"files\""),
        (&["--rlimit", "nofile=lots"], "is not a number"),
        (&["--sched", "fifo"], "fifo needs a priority"),
        (&["--ionice", "best-effort:9"], "not 0-7"),
        (&["--nice", "-21"], "-21"),
        (&["--env-file", &bad_env], "bad.env:2: the name must be"),
        (&["--no-core", "--rlimit", "core=0"], "give one"),
    ];
    for (flags, message) in cases {
        let output = run(daemonic(&sandbox)
            .args(["start", "-n", "bad"])
            .args(flags)
            .args(["--", &sleep, "300"]));
        assert_eq!(code(&output), 2, "{flags:?}: {}", stderr(&output));
        let text = stderr(&output);
        // One line says it (clap may add its "--help" hint below).
        let first = text.lines().next().unwrap_or_default();
        assert!(first.contains(message), "{flags:?}: {text}");
        assert!(
            !pidfile(&sandbox, "bad").exists(),
            "{flags:?} left a pidfile"
        );
    }
}

#[test]
fn started_with_its_standard_descriptors_closed_nothing_lands_in_the_pidfile() {
    let sandbox = Sandbox::new();
    let sleep = sleeper(&sandbox);
    let pidfile = sandbox.path("closed.pid");
    // A bad flag too, after a good start: its message must not end up in a file either.
    let shell = format!(
        "exec 0<&- 1>&- 2>&-; {BIN} start -p {p} -- {sleep} 300; {BIN} start -p {p} --nice 99 -- {sleep} 300; exit 0",
        p = pidfile.display()
    );
    let output = run(Command::new("sh").arg("-c").arg(&shell));
    assert!(output.status.success());
    let text = std::fs::read_to_string(&pidfile).unwrap();
    let pid: u32 = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the pidfile holds {text:?}"));
    assert_eq!(text, format!("{pid}\n"));
    let status = sandbox.path("closed.pid.status");
    assert!(status.exists());
    let stop = run(daemonic(&sandbox).arg("stop").arg("-p").arg(&pidfile));
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));
}
