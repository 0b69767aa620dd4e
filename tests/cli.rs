//! The `daemonic` command, run as a binary; the daemons it starts are checked from /proc.
//! Programs are started from the test's sandbox directory (a symlink to `sleep`, or scripts),
//! so the sandbox guard finds and kills everything a test started.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_daemonic");

fn daemonic(sandbox: &Sandbox) -> Command {
    let mut command = Command::new(BIN);
    command.env("DAEMONIC_RUNDIR", sandbox.path("run"));
    command
}

fn pidfile(sandbox: &Sandbox, name: &str) -> PathBuf {
    sandbox.path("run").join(format!("{name}.pid"))
}

/// A symlink to `sleep` inside the sandbox, so the daemon's command line carries the tag.
fn sleeper(sandbox: &Sandbox) -> String {
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
fn script(sandbox: &Sandbox, name: &str, body: &str) -> String {
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

/// A program that copies the environment it was executed with (`/proc/$$/environ`, exactly the
/// envp daemonic passed) to a file, then signals readiness on descriptor 3: start it with
/// `--ready-fd 3`. Returns the program and the file. The newline is written from a subshell:
/// dash runs a builtin `echo >&3` by moving its own fd 1 onto 3 for a moment.
fn env_reporter(sandbox: &Sandbox) -> (String, PathBuf) {
    let file = sandbox.path("environ.txt");
    let program = script(
        sandbox,
        "env.sh",
        &format!(
            "tr '\\0' '\\n' < /proc/$$/environ > {0}.tmp && mv {0}.tmp {0}\n(echo) >&3\nexec \"$SLEEP\" 300",
            file.display()
        ),
    );
    (program, file)
}

fn reported_env(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .expect("the program reported its environment")
        .lines()
        .map(String::from)
        .collect()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exit code")
}

/// Starts NAME running the sandbox's sleep; asserts success; returns the daemon's pid.
fn start_sleeper(sandbox: &Sandbox, name: &str, extra: &[&str]) -> u32 {
    let sleep = sleeper(sandbox);
    let output = run(daemonic(sandbox)
        .args(["start", "-n", name])
        .args(extra)
        .args(["--", &sleep, "300"]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    pid_in(&pidfile(sandbox, name))
}

/// Asserts a failed start left nothing: no process, no pidfile, no record.
fn nothing_left(sandbox: &Sandbox, name: &str) {
    assert_eq!(
        sandbox.processes(),
        Vec::<u32>::new(),
        "a process was left behind"
    );
    let pidfile = pidfile(sandbox, name);
    assert!(!pidfile.exists(), "pidfile left");
    assert!(
        !Path::new(&format!("{}.json", pidfile.display())).exists(),
        "record left"
    );
}

#[test]
fn start_runs_the_program_itself_as_a_daemon() {
    let sandbox = Sandbox::new();
    // A stray descriptor the launcher inherits: the daemon must not.
    let stray = std::fs::File::create(sandbox.path("stray")).unwrap();
    use std::os::fd::AsRawFd;
    let raw = stray.as_raw_fd();
    let mut command = daemonic(&sandbox);
    command.args(["start", "-n", "d", "--", &sleeper(&sandbox), "300"]);
    // SAFETY: dup2 is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            libc::dup2(raw, 7);
            Ok(())
        });
    }
    let output = run(&mut command);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let pid = pid_in(&pidfile(&sandbox, "d"));
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        exe.ends_with("sleep"),
        "the pidfile's pid is the program itself, not a wrapper: {exe:?}"
    );
    let s = stat(pid);
    assert!(is_reaper_for_us(s.ppid), "parent {}", s.ppid);
    assert_ne!(s.session, pid, "not a session leader");
    assert_eq!((s.tty_nr, s.tpgid), (0, -1), "no controlling terminal");
    assert_eq!(cwd(pid), Path::new("/"));
    assert_eq!(status(pid, "Umask"), "0022");
    assert_eq!(status(pid, "SigIgn"), "0000000000000000");
    assert_eq!(status(pid, "SigBlk"), "0000000000000000");
    let open = fds(pid);
    for fd in 0..3 {
        assert_eq!(open[&fd], "/dev/null", "fd {fd}");
    }
    // What the program opens itself while starting (locale files) may come and go; what it
    // inherited from the launcher is the pidfile lock and nothing else.
    let sandbox_dir = sandbox.dir.path().display().to_string();
    let inherited: Vec<_> = open
        .iter()
        .filter(|(_, target)| target.starts_with(&sandbox_dir))
        .collect();
    assert_eq!(inherited.len(), 1, "only the pidfile lock: {open:?}");
    assert_eq!(
        inherited[0].1,
        &pidfile(&sandbox, "d").display().to_string()
    );
    assert!(
        *inherited[0].0 >= 512,
        "the lock sits far from the program's own descriptors: {open:?}"
    );
    assert!(
        !open.contains_key(&7),
        "the stray descriptor 7 was inherited: {open:?}"
    );
    assert!(is_flocked(&pidfile(&sandbox, "d")));
}

#[test]
fn an_inherited_notify_socket_is_not_passed_on() {
    // As when `daemonic start` runs inside a systemd service: that socket is the service's.
    let sandbox = Sandbox::new();
    let (program, file) = env_reporter(&sandbox);
    let output = run(daemonic(&sandbox)
        .env("NOTIFY_SOCKET", "/run/systemd/notify")
        .env("VISIBLE", "yes")
        .args(["start", "-n", "d", "--ready-fd", "3", "--", &program]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let env = reported_env(&file);
    assert!(env.contains(&"VISIBLE=yes".to_string()), "{env:?}");
    assert!(
        !env.iter().any(|v| v.starts_with("NOTIFY_SOCKET=")),
        "{env:?}"
    );
}

#[test]
fn start_applies_directory_umask_environment_and_output() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("out.log");
    std::fs::write(&log, "earlier line\n").unwrap();
    let dir = sandbox.dir.path().display().to_string();
    let (program, env_file) = env_reporter(&sandbox);
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "d",
        "-d",
        &dir,
        "-m",
        "027",
        "--clear-env",
        "-e",
        "MODE=prod",
        "-e",
        "EMPTY=",
        "-o",
        log.to_str().unwrap(),
        "--append",
        "--ready-fd",
        "3",
        "--",
        &program,
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let pid = pid_in(&pidfile(&sandbox, "d"));
    assert_eq!(cwd(pid), sandbox.dir.path());
    assert_eq!(status(pid, "Umask"), "0027");
    assert_eq!(
        reported_env(&env_file),
        vec!["MODE=prod".to_string(), "EMPTY=".to_string()]
    );
    let open = fds(pid);
    assert_eq!(open[&1], log.display().to_string());
    assert_eq!(open[&2], log.display().to_string());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "earlier line\n",
        "--append kept the file"
    );
}

#[test]
fn output_files_are_truncated_without_append() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("out.log");
    std::fs::write(&log, "old\n").unwrap();
    start_sleeper(&sandbox, "d", &["--stdout", log.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "");
}

#[test]
fn keep_fd_passes_a_descriptor_through() {
    let sandbox = Sandbox::new();
    let file = std::fs::File::create(sandbox.path("passed")).unwrap();
    use std::os::fd::AsRawFd;
    let raw = file.as_raw_fd();
    let sleep = sleeper(&sandbox);
    let mut command = daemonic(&sandbox);
    command.args(["start", "-n", "d", "--keep-fd", "5", "--", &sleep, "300"]);
    // SAFETY: dup2 is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            libc::dup2(raw, 5);
            libc::dup2(raw, 6);
            Ok(())
        });
    }
    let output = run(&mut command);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let open = fds(pid_in(&pidfile(&sandbox, "d")));
    assert_eq!(open[&5], sandbox.path("passed").display().to_string());
    assert!(!open.contains_key(&6), "fd 6 was not asked for: {open:?}");
}

#[test]
fn user_option_drops_privileges() {
    if !is_root() {
        eprintln!("skipped: dropping privileges needs root");
        return;
    }
    let sandbox = Sandbox::new();
    std::fs::set_permissions(sandbox.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let pid = start_sleeper(&sandbox, "d", &["-u", "nobody"]);
    let uid = status(pid, "Uid");
    assert!(uid.split_whitespace().all(|u| u != "0"), "{uid}");
    assert!(status(pid, "Groups").split_whitespace().all(|g| g != "0"));
}

#[test]
fn exit_codes_follow_lsb() {
    let sandbox = Sandbox::new();
    let status_of = |sandbox: &Sandbox| code(&run(daemonic(sandbox).args(["status", "-n", "d"])));
    assert_eq!(status_of(&sandbox), 3, "never started: not running");
    let signal = run(daemonic(&sandbox).args(["signal", "-n", "d", "HUP"]));
    assert_eq!(
        code(&signal),
        7,
        "signal to a stopped daemon: {}",
        stderr(&signal)
    );
    let pid = start_sleeper(&sandbox, "d", &[]);
    assert_eq!(status_of(&sandbox), 0);
    let again = run(daemonic(&sandbox).args(["start", "-n", "d", "--", &sleeper(&sandbox), "300"]));
    assert_eq!(code(&again), 0);
    assert!(
        stderr(&again).contains(&format!("already running (pid {pid})")),
        "{}",
        stderr(&again)
    );
    assert_eq!(sandbox.processes(), vec![pid]);
    assert_eq!(
        code(&run(daemonic(&sandbox).args(["signal", "-n", "d", "CONT"]))),
        0
    );
    let stop = run(daemonic(&sandbox).args(["stop", "-n", "d"]));
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));
    assert!(sandbox.processes().is_empty());
    assert!(!pidfile(&sandbox, "d").exists(), "stop removes the pidfile");
    assert_eq!(status_of(&sandbox), 3);
    let again = run(daemonic(&sandbox).args(["stop", "-n", "d"]));
    assert_eq!(code(&again), 0);
    assert!(stderr(&again).contains("not running"), "{}", stderr(&again));
}

#[test]
fn signal_reaches_the_daemon() {
    let sandbox = Sandbox::new();
    let pid = start_sleeper(&sandbox, "d", &[]);
    let output = run(daemonic(&sandbox).args(["signal", "-n", "d", "SIGTERM"]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    wait_gone(pid);
}

#[test]
fn a_killed_daemon_reads_as_dead_and_a_new_start_takes_over() {
    let sandbox = Sandbox::new();
    let first = start_sleeper(&sandbox, "d", &[]);
    kill(first, libc::SIGKILL);
    wait_gone(first);
    let status = run(daemonic(&sandbox).args(["status", "-n", "d"]));
    assert_eq!(code(&status), 1, "dead with pidfile left");
    assert!(String::from_utf8_lossy(&status.stdout).contains("dead"));
    let second = start_sleeper(&sandbox, "d", &[]);
    assert_ne!(first, second);
    assert_eq!(
        code(&run(daemonic(&sandbox).args(["status", "-n", "d"]))),
        0
    );
}

#[test]
fn stop_never_signals_an_unrelated_process_named_by_an_unlocked_pidfile() {
    let sandbox = Sandbox::new();
    let mut innocent = ChildGuard(Command::new(sleeper(&sandbox)).arg("300").spawn().unwrap());
    let pidfile = sandbox.path("stale.pid");
    std::fs::write(&pidfile, format!("{}\n", innocent.id())).unwrap();
    let status = run(daemonic(&sandbox).args(["status", "-p", pidfile.to_str().unwrap()]));
    assert_eq!(
        code(&status),
        1,
        "a pid is not an identity: the file is not locked"
    );
    // signal: "not running" (7); stop: nothing to stop (0), the stale file removed.
    for (verb, want) in [
        (&["signal", "-p", pidfile.to_str().unwrap(), "KILL"][..], 7),
        (&["stop", "-p", pidfile.to_str().unwrap()][..], 0),
    ] {
        let output = run(daemonic(&sandbox).args(verb));
        assert_eq!(code(&output), want, "{verb:?}: {}", stderr(&output));
        assert!(
            innocent.0.try_wait().unwrap().is_none(),
            "{verb:?} signalled an unrelated process"
        );
    }
    assert!(!pidfile.exists(), "stop removed the stale pidfile");
}

#[test]
fn twenty_concurrent_starts_give_one_daemon() {
    let sandbox = Sandbox::new();
    let sleep = sleeper(&sandbox);
    let children: Vec<_> = (0..20)
        .map(|_| {
            daemonic(&sandbox)
                .args(["start", "-n", "race", "--", &sleep, "300"])
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert_eq!(code(&output), 0, "{}", stderr(&output));
    }
    let running = sandbox.processes();
    assert_eq!(running.len(), 1, "exactly one daemon: {running:?}");
    assert_eq!(pid_in(&pidfile(&sandbox, "race")), running[0]);
}

#[test]
fn notify_waits_for_a_late_ready_and_shows_status() {
    let sandbox = Sandbox::new();
    let flag = sandbox.path("prepared");
    let program = script(
        &sandbox,
        "late.sh",
        &format!(
            "\"$DAEMONIC\" notify 'STATUS=loading cache'\nsleep 0.3\necho \"$NOTIFY_SOCKET\" > {}\n\"$DAEMONIC\" notify READY=1\nexec \"$SLEEP\" 300",
            flag.display()
        ),
    );
    let output = run(daemonic(&sandbox).args(["start", "-n", "d", "--notify", "--", &program]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("loading cache"),
        "{}",
        stderr(&output)
    );
    // Written by the program just before READY=1 (reading /proc/PID/environ here could race
    // the script's exec of sleep, during which it reads empty).
    let socket =
        std::fs::read_to_string(&flag).expect("start returned before the program was ready");
    assert!(
        socket.starts_with('@'),
        "an abstract NOTIFY_SOCKET: {socket:?}"
    );
    let pid = pid_in(&pidfile(&sandbox, "d"));
    let status = run(daemonic(&sandbox).args(["status", "-n", "d", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["state"], "running");
    assert_eq!(json["readiness"], "notify");
    assert_eq!(json["ready"], true);
    assert_eq!(json["pid"], pid);
}

#[test]
fn status_tells_starting_from_ready() {
    let sandbox = Sandbox::new();
    let (started, proceed) = (sandbox.path("started.fifo"), sandbox.path("proceed.fifo"));
    for fifo in [&started, &proceed] {
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }
    let program = script(
        &sandbox,
        "gated.sh",
        &format!(
            "echo up > {}\nread go < {}\n\"$DAEMONIC\" notify READY=1\nexec \"$SLEEP\" 300",
            started.display(),
            proceed.display()
        ),
    );
    let mut launcher = ChildGuard(
        daemonic(&sandbox)
            .args(["start", "-n", "d", "--notify", "--", &program])
            .spawn()
            .unwrap(),
    );
    // Blocks until the program runs (a pipe, not a sleep).
    assert_eq!(std::fs::read_to_string(&started).unwrap(), "up\n");
    let status = run(daemonic(&sandbox).args(["status", "-n", "d", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["state"], "running");
    assert_eq!(json["ready"], false, "{json}");
    std::fs::write(&proceed, "go\n").unwrap();
    assert!(launcher.0.wait().unwrap().success());
    let status = run(daemonic(&sandbox).args(["status", "-n", "d", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["ready"], true, "{json}");
}

#[test]
fn notify_accepts_ready_from_a_child_of_the_daemon() {
    let sandbox = Sandbox::new();
    let program = script(
        &sandbox,
        "child.sh",
        "( \"$DAEMONIC\" notify READY=1 ) &\nexec \"$SLEEP\" 300",
    );
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "d",
        "--notify",
        "--ready-timeout",
        "20",
        "--",
        &program,
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
}

#[test]
fn notify_timeout_stops_the_daemon_and_leaves_nothing() {
    let sandbox = Sandbox::new();
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "d",
        "--notify",
        "--ready-timeout",
        "0.5",
        "--",
        &sleeper(&sandbox),
        "300",
    ]));
    failed(&sandbox, &output, 1, "was not ready after 0.5s");
}

#[test]
fn notify_errno_fails_the_start_with_that_error() {
    let sandbox = Sandbox::new();
    let program = script(
        &sandbox,
        "errno.sh",
        "\"$DAEMONIC\" notify 'STATUS=cannot open config' ERRNO=2\nexec \"$SLEEP\" 300",
    );
    let output = run(daemonic(&sandbox).args(["start", "-n", "d", "--notify", "--", &program]));
    failed(&sandbox, &output, 1, "ERRNO=2 (No such file or directory");
}

#[test]
fn notify_reports_a_program_that_exits_early() {
    let sandbox = Sandbox::new();
    let program = script(&sandbox, "early.sh", "exit 3");
    let output = run(daemonic(&sandbox).args(["start", "-n", "d", "--notify", "--", &program]));
    failed(&sandbox, &output, 1, "before it was ready");
}

#[test]
fn ready_fd_waits_for_a_newline() {
    let sandbox = Sandbox::new();
    let prepared = sandbox.path("prepared");
    let program = script(
        &sandbox,
        "s6.sh",
        &format!(
            "sleep 0.2\ntouch {}\necho >&3\nexec 3>&-\nexec \"$SLEEP\" 300",
            prepared.display()
        ),
    );
    let output =
        run(daemonic(&sandbox).args(["start", "-n", "d", "--ready-fd", "3", "--", &program]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(prepared.exists(), "start returned before the newline");
}

#[test]
fn ready_fd_closed_without_a_newline_fails() {
    let sandbox = Sandbox::new();
    let program = script(&sandbox, "s6bad.sh", "exec 3>&-\nexec \"$SLEEP\" 300");
    let output =
        run(daemonic(&sandbox).args(["start", "-n", "d", "--ready-fd", "3", "--", &program]));
    failed(
        &sandbox,
        &output,
        1,
        "closed descriptor 3 without writing a newline",
    );
}

#[test]
fn stop_retry_escalates_to_kill_when_term_is_ignored() {
    let sandbox = Sandbox::new();
    // Ready only once the trap is set, so the check below cannot race the script.
    let program = script(
        &sandbox,
        "stubborn.sh",
        "trap '' TERM\n\"$DAEMONIC\" notify READY=1\nexec \"$SLEEP\" 300",
    );
    let output = run(daemonic(&sandbox).args(["start", "-n", "d", "--notify", "--", &program]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let pid = pid_in(&pidfile(&sandbox, "d"));
    let ignored = u64::from_str_radix(&status(pid, "SigIgn"), 16).unwrap();
    assert_ne!(
        ignored & (1 << (libc::SIGTERM - 1)),
        0,
        "the program ignores TERM"
    );
    let stop = run(daemonic(&sandbox).args(["stop", "-n", "d", "--retry", "TERM/1/KILL/5"]));
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));
    assert!(sandbox.processes().is_empty());
    assert!(!pidfile(&sandbox, "d").exists());
}

#[test]
fn stop_reports_a_daemon_that_outlives_the_schedule() {
    let sandbox = Sandbox::new();
    let program = script(&sandbox, "stubborn.sh", "trap '' TERM\nexec \"$SLEEP\" 300");
    assert_eq!(
        code(&run(
            daemonic(&sandbox).args(["start", "-n", "d", "--", &program])
        )),
        0
    );
    let stop = run(daemonic(&sandbox).args(["stop", "-n", "d", "--retry", "TERM/1"]));
    assert_eq!(code(&stop), 1);
    assert!(
        stderr(&stop).contains("still running after the schedule TERM/1"),
        "{}",
        stderr(&stop)
    );
    assert_eq!(sandbox.processes().len(), 1);
}

#[test]
fn restart_starts_the_recorded_command_again() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("log");
    let (program, env_file) = env_reporter(&sandbox);
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "d",
        "-o",
        log.to_str().unwrap(),
        "-e",
        "KEPT=1",
        "--ready-fd",
        "3",
        "--",
        &program,
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let first = pid_in(&pidfile(&sandbox, "d"));
    std::fs::remove_file(&env_file).unwrap();
    let output = run(daemonic(&sandbox)
        .env_remove("KEPT")
        .args(["restart", "-n", "d"]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let second = pid_in(&pidfile(&sandbox, "d"));
    assert_ne!(first, second);
    wait_gone(first);
    assert_eq!(sandbox.processes(), vec![second]);
    // The restarted program reported again, with the recorded flags and environment.
    assert!(reported_env(&env_file).contains(&"KEPT=1".to_string()));
    assert_eq!(fds(second)[&1], log.display().to_string());
}

#[test]
fn list_shows_every_daemon_with_its_state() {
    let sandbox = Sandbox::new();
    let pid = start_sleeper(&sandbox, "alpha", &[]);
    start_sleeper(&sandbox, "beta", &[]);
    assert_eq!(
        code(&run(daemonic(&sandbox).args(["stop", "-n", "beta"]))),
        0
    );
    let output = run(daemonic(&sandbox).args(["list", "--json"]));
    assert_eq!(code(&output), 0);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{json}");
    assert_eq!(rows[0]["name"], "alpha");
    assert_eq!(rows[0]["state"], "running");
    assert_eq!(rows[0]["pid"], pid);
    assert_eq!(rows[1]["name"], "beta");
    assert_eq!(rows[1]["state"], "stopped");
    let text = String::from_utf8(run(daemonic(&sandbox).arg("list")).stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("alpha") && l.contains("running")),
        "{text}"
    );
}

// ---- bad input: a documented exit code, one line naming the thing, nothing left ----

/// Asserts a start failed with `want_code` and one line containing `want_text`, and left nothing.
fn failed(sandbox: &Sandbox, output: &Output, want_code: i32, want_text: &str) {
    let message = stderr(output);
    assert_eq!(code(output), want_code, "{message}");
    // The error is the last line, whole (STATUS= lines the program sent may come before it).
    let last = message.trim().lines().last().unwrap_or_default();
    assert!(last.starts_with("daemonic start: "), "{message}");
    assert!(
        last.contains(want_text),
        "wanted {want_text:?} in the last line of {message}"
    );
    nothing_left(sandbox, "d");
}

fn bad_start(sandbox: &Sandbox, flags: &[&str], program: &[&str], want_code: i32, want_text: &str) {
    let output = run(daemonic(sandbox)
        .args(["start", "-n", "d"])
        .args(flags)
        .arg("--")
        .args(program));
    let message = stderr(&output);
    assert_eq!(code(&output), want_code, "{flags:?}: {message}");
    assert!(
        message.contains(want_text),
        "{flags:?}: wanted {want_text:?} in {message}"
    );
    nothing_left(sandbox, "d");
}

#[test]
fn unknown_user_or_group_is_invalid_input() {
    let sandbox = Sandbox::new();
    let sleep = sleeper(&sandbox);
    bad_start(
        &sandbox,
        &["-u", "no-such-user-x"],
        &[&sleep, "1"],
        2,
        "user no-such-user-x",
    );
    bad_start(
        &sandbox,
        &["-g", "no-such-group-x"],
        &[&sleep, "1"],
        2,
        "group no-such-group-x",
    );
    bad_start(
        &sandbox,
        &["-u", "root:no-such-group-x"],
        &[&sleep, "1"],
        2,
        "group no-such-group-x",
    );
}

#[test]
fn missing_directory_is_invalid_input() {
    let sandbox = Sandbox::new();
    bad_start(
        &sandbox,
        &["-d", "/no/such/dir"],
        &[&sleeper(&sandbox), "1"],
        2,
        "working directory /no/such/dir",
    );
}

#[test]
fn unwritable_pidfile_directory_is_insufficient_privilege() {
    if !is_root() {
        eprintln!("skipped: needs root to run the command as nobody");
        return;
    }
    let sandbox = Sandbox::new();
    std::fs::set_permissions(sandbox.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let locked = sandbox.path("locked");
    std::fs::create_dir(&locked).unwrap();
    let pidfile = locked.join("d.pid");
    let line = std::fs::read_to_string("/etc/passwd").unwrap();
    let nobody: Vec<u32> = line
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .unwrap()
        .split(':')
        .skip(2)
        .take(2)
        .map(|f| f.parse().unwrap())
        .collect();
    let mut command = daemonic(&sandbox);
    command.args([
        "start",
        "-p",
        pidfile.to_str().unwrap(),
        "--",
        &sleeper(&sandbox),
        "1",
    ]);
    command.uid(nobody[0]).gid(nobody[1]);
    let output = run(&mut command);
    assert_eq!(code(&output), 4, "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&pidfile.display().to_string()),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("Permission denied"),
        "{}",
        stderr(&output)
    );
    assert!(sandbox.processes().is_empty());
}

#[test]
fn missing_or_non_executable_program_is_not_installed() {
    let sandbox = Sandbox::new();
    bad_start(
        &sandbox,
        &[],
        &["no-such-program-daemonic"],
        5,
        "not found on PATH",
    );
    bad_start(
        &sandbox,
        &[],
        &["/no/such/program"],
        5,
        "program /no/such/program",
    );
    let plain = sandbox.path("plain");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    bad_start(
        &sandbox,
        &[],
        &[plain.to_str().unwrap()],
        5,
        "not executable",
    );
}

#[test]
fn an_exec_failure_after_the_fork_reaches_the_exit_status() {
    let sandbox = Sandbox::new();
    let garbage = sandbox.path("garbage");
    std::fs::write(&garbage, [0x7f, b'E', b'L', b'F', 0, 0, 0, 0]).unwrap();
    std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o755)).unwrap();
    bad_start(&sandbox, &[], &[garbage.to_str().unwrap()], 5, "exec ");
}

#[test]
fn bad_values_and_conflicting_flags_are_invalid_arguments() {
    let sandbox = Sandbox::new();
    let sleep = sleeper(&sandbox);
    bad_start(&sandbox, &["-m", "0999"], &[&sleep, "1"], 2, "--umask");
    bad_start(
        &sandbox,
        &["--notify", "--ready-fd", "3"],
        &[&sleep, "1"],
        2,
        "cannot be used with",
    );
    bad_start(
        &sandbox,
        &["-o", "x", "--stdout", "y"],
        &[&sleep, "1"],
        2,
        "cannot be used with",
    );
    bad_start(&sandbox, &["-e", "=novalue"], &[&sleep, "1"], 2, "--env");
    bad_start(
        &sandbox,
        &["--ready-timeout", "soon"],
        &[&sleep, "1"],
        2,
        "--ready-timeout",
    );
    bad_start(
        &sandbox,
        &["--keep-fd", "77"],
        &[&sleep, "1"],
        2,
        "--keep-fd 77",
    );
    bad_start(
        &sandbox,
        &["-u", "root:root", "-g", "root"],
        &[&sleep, "1"],
        2,
        "not both",
    );
    for args in [
        &["stop", "-n", "d", "--signal", "NOPE"][..],
        &["stop", "-n", "d", "--retry", "TERM/soon"][..],
        &["signal", "-n", "d", "WHAT"][..],
        &["status", "-n", "d", "-p", "/tmp/x.pid"][..],
        &["start", "-n", "../escape", "--", "sleep", "1"][..],
    ] {
        let output = run(daemonic(&sandbox).args(args));
        assert_eq!(code(&output), 2, "{args:?}: {}", stderr(&output));
        assert!(!stderr(&output).trim().is_empty());
    }
}

#[test]
fn help_documents_exit_codes_and_man_page_and_completions_render() {
    let help = run(Command::new(BIN).arg("--help"));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("Exit codes") && text.contains("5  program not installed"),
        "{text}"
    );
    let start_help =
        String::from_utf8_lossy(&run(Command::new(BIN).args(["start", "--help"])).stdout)
            .to_string();
    assert!(start_help.contains("Examples:"), "{start_help}");
    let man = run(Command::new(BIN).arg("man"));
    assert!(String::from_utf8_lossy(&man.stdout).contains(".TH daemonic"));
    let bash = run(Command::new(BIN).args(["completions", "bash"]));
    assert!(String::from_utf8_lossy(&bash.stdout).contains("_daemonic"));
}

#[test]
fn extend_timeout_usec_is_read_in_microseconds() {
    let sandbox = Sandbox::new();
    // Asks for 20 s more (in microseconds), then is ready after the original 0.5 s has passed.
    let program = script(
        &sandbox,
        "slow.sh",
        "\"$DAEMONIC\" notify EXTEND_TIMEOUT_USEC=20000000\nsleep 1\n\"$DAEMONIC\" notify READY=1\nexec \"$SLEEP\" 300",
    );
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "d",
        "--notify",
        "--ready-timeout",
        "0.5",
        "--",
        &program,
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
}

#[test]
fn a_program_with_its_own_sd_notify_code_works_unchanged() {
    // The protocol as programs implement it themselves (libsystemd does the same): read
    // $NOTIFY_SOCKET, turn a leading '@' into a NUL, send one datagram.
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(python) = python else {
        eprintln!("skipped: python3 is not installed");
        return;
    };
    let sandbox = Sandbox::new();
    let sender = sandbox.path("notify.py");
    std::fs::write(
        &sender,
        "import os, socket, time\n\
         addr = os.environ['NOTIFY_SOCKET']\n\
         if addr.startswith('@'): addr = '\\0' + addr[1:]\n\
         s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         s.sendto(b'STATUS=python ready\\nREADY=1\\nMAINPID=1', addr)\n\
         time.sleep(300)\n",
    )
    .unwrap();
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "d",
        "--notify",
        "--",
        python,
        sender.to_str().unwrap(),
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("python ready"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn status_is_unknown_when_the_lock_holder_is_not_the_named_pid() {
    let sandbox = Sandbox::new();
    let pidfile = sandbox.path("held.pid");
    let holder = std::fs::File::create(&pidfile).unwrap();
    holder.lock().unwrap();
    std::fs::write(&pidfile, "1\n").unwrap();
    let status = run(daemonic(&sandbox).args(["status", "-p", pidfile.to_str().unwrap()]));
    assert_eq!(
        code(&status),
        4,
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let stop = run(daemonic(&sandbox).args(["stop", "-p", pidfile.to_str().unwrap()]));
    assert_eq!(code(&stop), 1, "{}", stderr(&stop));
    assert!(
        stderr(&stop).contains("nothing was signalled"),
        "{}",
        stderr(&stop)
    );
}

#[test]
fn systemd_notify_works_unchanged() {
    let Some(tool) = ["/usr/bin/systemd-notify", "/bin/systemd-notify"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("skipped: systemd-notify is not installed");
        return;
    };
    let sandbox = Sandbox::new();
    let program = script(
        &sandbox,
        "sd.sh",
        &format!("{tool} --ready --status=serving\nexec \"$SLEEP\" 300"),
    );
    let output = run(daemonic(&sandbox).args(["start", "-n", "d", "--notify", "--", &program]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(stderr(&output).contains("serving"), "{}", stderr(&output));
}
