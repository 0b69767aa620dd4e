//! The library's daemon, checked from /proc: one test per property of a daemon (daemon(7) and
//! NOTES.md section 6). Each test runs in its own sandbox directory and kills what it started.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;

use common::*;

/// Starts the fixture with a pidfile and extra flags; asserts the launcher succeeded; returns
/// the launcher's pid and the daemon's pid.
fn start(sandbox: &Sandbox, extra: &[&str]) -> (u32, u32) {
    let pidfile = sandbox.path("d.pid");
    let child = sandbox
        .fixture()
        .arg("--pidfile")
        .arg(&pidfile)
        .args(extra)
        .spawn()
        .expect("spawn launcher");
    let launcher = child.id();
    let output = child.wait_with_output().expect("launcher");
    assert!(
        output.status.success(),
        "launcher failed: {}",
        stderr(&output)
    );
    (launcher, pid_in(&pidfile))
}

#[test]
fn is_reparented_and_not_a_session_leader() {
    let sandbox = Sandbox::new();
    let (launcher, pid) = start(&sandbox, &[]);
    let s = stat(pid);
    assert_ne!(s.ppid, launcher, "still the launcher's child");
    assert!(
        is_reaper_for_us(s.ppid),
        "parent {} is neither init nor a subreaper",
        s.ppid
    );
    assert_ne!(s.session, pid, "a session leader could acquire a terminal");
    assert_eq!(
        s.pgrp, s.session,
        "process group is the session's (first child's) group"
    );
    assert_ne!(s.session, stat(std::process::id()).session, "a new session");
    assert_eq!(s.tty_nr, 0, "no controlling terminal");
    assert_eq!(s.tpgid, -1);
}

#[test]
fn working_directory_and_umask_default_to_root_and_022() {
    let sandbox = Sandbox::new();
    let (_, pid) = start(&sandbox, &[]);
    assert_eq!(cwd(pid), std::path::Path::new("/"));
    assert_eq!(status(pid, "Umask"), "0022");
}

#[test]
fn working_directory_and_umask_as_asked() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().to_str().unwrap().to_string();
    let (_, pid) = start(&sandbox, &["--workdir", &dir, "--umask", "027"]);
    assert_eq!(cwd(pid), sandbox.dir.path());
    assert_eq!(status(pid, "Umask"), "0027");
}

#[test]
fn only_standard_streams_and_the_pidfile_lock_stay_open() {
    let sandbox = Sandbox::new();
    let pidfile = sandbox.path("d.pid");
    let stray = std::fs::File::create(sandbox.path("stray")).unwrap();
    let kept = std::fs::File::create(sandbox.path("kept")).unwrap();
    use std::os::fd::AsRawFd;
    let (stray_fd, kept_fd) = (stray.as_raw_fd(), kept.as_raw_fd());
    let mut command = sandbox.fixture();
    command.args(["--pidfile", pidfile.to_str().unwrap(), "--keep-fd", "9"]);
    // SAFETY: dup2 and fcntl are async-signal-safe; the launcher inherits 7 (stray) and 9
    // (kept). dup2 onto the same number is a no-op that keeps close-on-exec: cleared explicitly.
    unsafe {
        command.pre_exec(move || {
            libc::dup2(stray_fd, 7);
            libc::dup2(kept_fd, 9);
            libc::fcntl(7, libc::F_SETFD, 0);
            libc::fcntl(9, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let output = run(&mut command);
    assert!(output.status.success(), "{}", stderr(&output));
    let pid = pid_in(&pidfile);
    let open = fds(pid);
    assert_eq!(open.get(&0).map(String::as_str), Some("/dev/null"));
    assert_eq!(open.get(&1).map(String::as_str), Some("/dev/null"));
    assert_eq!(open.get(&2).map(String::as_str), Some("/dev/null"));
    assert_eq!(
        open.get(&9),
        Some(&sandbox.path("kept").display().to_string())
    );
    assert!(
        !open.contains_key(&7),
        "inherited descriptor 7 was not closed: {open:?}"
    );
    let rest: Vec<_> = open
        .iter()
        .filter(|(fd, _)| ![0, 1, 2, 9].contains(*fd))
        .collect();
    assert_eq!(
        rest.len(),
        1,
        "only the pidfile lock besides 0-2 and 9: {open:?}"
    );
    assert_eq!(rest[0].1, &pidfile.display().to_string());
}

#[test]
fn standard_streams_go_where_asked() {
    let sandbox = Sandbox::new();
    let (out, err) = (sandbox.path("out.log"), sandbox.path("err.log"));
    let (_, pid) = start(
        &sandbox,
        &[
            "--stdout",
            out.to_str().unwrap(),
            "--stderr",
            err.to_str().unwrap(),
        ],
    );
    let open = fds(pid);
    assert_eq!(open[&1], out.display().to_string());
    assert_eq!(open[&2], err.display().to_string());
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("daemon {pid} started\n")
    );
    // Written after ready(): stderr had moved from the launcher to the file. The launcher
    // exits at ready(), a moment before the daemon writes the line.
    let ready = format!("daemon {pid} ready\n");
    eventually("the line written after ready()", || {
        std::fs::read_to_string(&err).is_ok_and(|text| !text.is_empty())
    });
    assert_eq!(std::fs::read_to_string(&err).unwrap(), ready);
}

#[test]
fn redirect_to_sends_all_three_streams_to_one_file() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("all.log");
    let (_, pid) = start(&sandbox, &["--redirect-to", log.to_str().unwrap()]);
    let open = fds(pid);
    for fd in 0..3 {
        assert_eq!(open[&fd], log.display().to_string(), "fd {fd}");
    }
    assert!(std::fs::read_to_string(&log).unwrap().contains("started"));
}

#[test]
fn signals_the_launcher_ignored_or_blocked_are_reset() {
    let sandbox = Sandbox::new();
    let pidfile = sandbox.path("d.pid");
    let mut command = sandbox.fixture();
    command.arg("--pidfile").arg(&pidfile);
    with_changed_signals(&mut command, &[libc::SIGHUP, libc::SIGPIPE]);
    let output = run(&mut command);
    assert!(output.status.success(), "{}", stderr(&output));
    let pid = pid_in(&pidfile);
    // Everything the launcher had is cleared; the one ignored signal left is SIGPIPE, which the
    // fixture's own Rust runtime ignores and its code relies on (EPIPE, not death). The `daemonic`
    // command's tests check that an executed program gets every signal at its default.
    let sigpipe = 1u64 << (libc::SIGPIPE - 1);
    assert_eq!(status(pid, "SigIgn"), format!("{sigpipe:016x}"));
    assert_eq!(status(pid, "SigBlk"), "0000000000000000");
}

#[test]
fn handlers_the_program_installed_before_start_are_kept() {
    let sandbox = Sandbox::new();
    let out = sandbox.path("out");
    let pidfile = sandbox.path("d.pid");
    let mut command = sandbox.fixture();
    command
        .args(["--handle-usr1", "--stdout", out.to_str().unwrap()])
        .arg("--pidfile")
        .arg(&pidfile);
    // SAFETY: signal is async-signal-safe. The launcher inherits SIGUSR2 and SIGHUP ignored.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGUSR2, libc::SIG_IGN);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let output = run(&mut command);
    assert!(output.status.success(), "{}", stderr(&output));
    let pid = pid_in(&pidfile);
    let bit = |signo: i32| 1u64 << (signo - 1);
    let mask = |field: &str| u64::from_str_radix(&status(pid, field), 16).unwrap();
    // A handler cannot be inherited across exec: the program installed it, and it stays.
    assert_ne!(mask("SigCgt") & bit(libc::SIGUSR1), 0, "SIGUSR1 is caught");
    // Ignored dispositions it inherited are still reset; its runtime's SIGPIPE stays ignored.
    assert_eq!(mask("SigIgn"), bit(libc::SIGPIPE));
    assert_eq!(mask("SigBlk"), 0);
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("usr1 handler installed\n"),
        "the daemon sees its own handler"
    );
    kill(pid, libc::SIGUSR1);
    eventually("the handler ran in the daemon", || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.contains("caught USR1\n"))
    });
    assert_ne!(stat(pid).state, 'Z', "the daemon lives on");
}

#[test]
fn environment_is_cleared_and_set() {
    let sandbox = Sandbox::new();
    let report = sandbox.path("env");
    start(
        &sandbox,
        &[
            "--clear-env",
            "--env",
            "APP_MODE=daemon",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(&report).unwrap(),
        "APP_MODE=daemon\n"
    );
}

#[test]
fn environment_is_inherited_with_changes() {
    let sandbox = Sandbox::new();
    let report = sandbox.path("env");
    let pidfile = sandbox.path("d.pid");
    let output = run(sandbox
        .fixture()
        .env("FROM_LAUNCHER", "yes")
        .env("OVERRIDDEN", "old")
        .args([
            "--env",
            "OVERRIDDEN=new",
            "--report",
            report.to_str().unwrap(),
        ])
        .arg("--pidfile")
        .arg(&pidfile));
    assert!(output.status.success(), "{}", stderr(&output));
    let env = std::fs::read_to_string(&report).unwrap();
    assert!(env.lines().any(|l| l == "FROM_LAUNCHER=yes"), "{env}");
    assert!(env.lines().any(|l| l == "OVERRIDDEN=new"), "{env}");
    assert!(!env.lines().any(|l| l == "OVERRIDDEN=old"), "{env}");
}

#[test]
fn drops_to_nobody_with_its_groups_and_cannot_regain_root() {
    if !is_root() {
        eprintln!("skipped: dropping privileges needs root");
        return;
    }
    let sandbox = Sandbox::new();
    let (_, pid) = start(&sandbox, &["--user", "nobody"]);
    let (uid, gid) = nobody();
    assert_eq!(status(pid, "Uid"), format!("{uid}\t{uid}\t{uid}\t{uid}"));
    assert_eq!(status(pid, "Gid"), format!("{gid}\t{gid}\t{gid}\t{gid}"));
    let groups: Vec<String> = status(pid, "Groups")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert!(
        !groups.contains(&"0".to_string()),
        "root's group kept: {groups:?}"
    );
    assert_eq!(
        groups,
        vec![gid.to_string()],
        "nobody's groups from the group database"
    );
}

#[test]
fn supplementary_groups_can_be_none() {
    if !is_root() {
        eprintln!("skipped: dropping privileges needs root");
        return;
    }
    let sandbox = Sandbox::new();
    let (_, pid) = start(&sandbox, &["--user", "nobody", "--no-groups"]);
    assert_eq!(status(pid, "Groups"), "");
}

#[test]
fn pidfile_holds_the_final_pid_and_is_locked() {
    let sandbox = Sandbox::new();
    let (_, pid) = start(&sandbox, &[]);
    let pidfile = sandbox.path("d.pid");
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap(),
        format!("{pid}\n")
    );
    assert!(is_flocked(&pidfile), "the pidfile is not locked");
    let locks = std::fs::read_to_string("/proc/locks").unwrap();
    assert!(locks.contains("FLOCK"), "{locks}");
}

#[test]
fn a_second_start_is_refused_naming_the_first_pid() {
    let sandbox = Sandbox::new();
    let (_, first) = start(&sandbox, &[]);
    let pidfile = sandbox.path("d.pid");
    let output = run(sandbox.fixture().arg("--pidfile").arg(&pidfile));
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains(&format!("(pid {first})")), "{message}");
    assert!(
        message.contains(&pidfile.display().to_string()),
        "{message}"
    );
    assert_eq!(pid_in(&pidfile), first, "the pidfile was clobbered");
    assert_eq!(
        sandbox.processes(),
        vec![first],
        "a second daemon is running"
    );
}

#[test]
fn a_stale_pidfile_is_taken_over() {
    let sandbox = Sandbox::new();
    let (_, first) = start(&sandbox, &[]);
    kill(first, libc::SIGKILL);
    wait_gone(first);
    let pidfile = sandbox.path("d.pid");
    assert!(!is_flocked(&pidfile), "a dead daemon's lock is gone");
    let (_, second) = start(&sandbox, &[]);
    assert_ne!(first, second);
    assert_eq!(pid_in(&pidfile), second);
}

#[test]
fn clean_exit_removes_the_pidfile() {
    let sandbox = Sandbox::new();
    let pidfile = sandbox.path("d.pid");
    let out = sandbox.path("out");
    let output = run(sandbox
        .fixture()
        .args(["--exit-after-ready", "--stdout", out.to_str().unwrap()])
        .arg("--pidfile")
        .arg(&pidfile));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&out).unwrap();
    let pid: u32 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    wait_gone(pid);
    assert!(!pidfile.exists(), "pidfile left after a clean exit");
}

#[test]
fn core_dumps_can_be_disabled() {
    let sandbox = Sandbox::new();
    let (_, pid) = start(&sandbox, &["--no-core"]);
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], &["0", "0"], "{core}");
}

#[test]
fn chroot_changes_root_and_working_directory() {
    if !is_root() {
        eprintln!("skipped: chroot needs root");
        return;
    }
    let sandbox = Sandbox::new();
    let jail = sandbox.path("jail");
    std::fs::create_dir(&jail).unwrap();
    let (_, pid) = start(&sandbox, &["--chroot", jail.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        jail
    );
    assert_eq!(cwd(pid), jail);
}

#[test]
fn foreground_mode_does_not_fork_and_notifies_readiness() {
    use std::os::unix::net::UnixDatagram;
    let sandbox = Sandbox::new();
    let socket_path = sandbox.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let pidfile = sandbox.path("d.pid");
    let child = ChildGuard(
        sandbox
            .fixture()
            .args(["--foreground"])
            .arg("--pidfile")
            .arg(&pidfile)
            .env("NOTIFY_SOCKET", &socket_path)
            .spawn()
            .unwrap(),
    );
    let mut buf = [0u8; 256];
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let n = socket
        .recv(&mut buf)
        .expect("READY=1 from the foreground daemon");
    let message = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(message.contains("READY=1"), "{message}");
    assert!(
        message.contains(&format!("MAINPID={}", child.id())),
        "{message}"
    );
    assert_eq!(pid_in(&pidfile), child.id(), "no fork in foreground mode");
    let sigpipe = 1u64 << (libc::SIGPIPE - 1);
    assert_eq!(status(child.id(), "SigIgn"), format!("{sigpipe:016x}"));
    assert_eq!(fds(child.id())[&0], "/dev/null");
}

#[test]
fn the_seed_demo_writes_daemon_log() {
    let sandbox = Sandbox::new();
    let output = run(Command::new(example("become")).current_dir(sandbox.dir.path()));
    assert!(output.status.success(), "{}", stderr(&output));
    let log = std::fs::read_to_string(sandbox.path("daemon.log")).unwrap();
    let field = |name: &str| -> u32 {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("{name} missing from {log}"))
            .parse()
            .unwrap()
    };
    assert_eq!(field("return code"), 0);
    assert!(is_reaper_for_us(field("parent process ID")), "{log}");
    assert_ne!(
        field("process ID"),
        field("session ID"),
        "not a session leader"
    );
    assert_eq!(field("process group ID"), field("session ID"));
    for name in [
        "user ID",
        "effective user ID",
        "real group ID",
        "effective group ID",
    ] {
        field(name);
    }
}

// ---- bad input: a non-zero launcher exit, one clear line, nothing left behind ----

/// Runs the fixture expecting failure; returns stderr after checking no process or pidfile
/// remains.
fn fails(sandbox: &Sandbox, extra: &[&str]) -> String {
    let pidfile = sandbox.path("bad.pid");
    let output = run(sandbox.fixture().arg("--pidfile").arg(&pidfile).args(extra));
    let message = stderr(&output);
    assert!(!output.status.success(), "launcher succeeded: {message}");
    assert!(!message.trim().is_empty(), "no message");
    assert_eq!(
        sandbox.processes(),
        Vec::<u32>::new(),
        "left behind after: {message}"
    );
    assert!(!pidfile.exists(), "pidfile left after: {message}");
    message
}

#[test]
fn unknown_user_is_refused_before_forking() {
    let sandbox = Sandbox::new();
    let message = fails(&sandbox, &["--user", "no-such-user-daemonic"]);
    assert!(
        message.contains("user no-such-user-daemonic: no such user"),
        "{message}"
    );
}

#[test]
fn unknown_group_is_refused() {
    let sandbox = Sandbox::new();
    let message = fails(&sandbox, &["--group", "no-such-group-daemonic"]);
    assert!(
        message.contains("group no-such-group-daemonic"),
        "{message}"
    );
}

#[test]
fn missing_working_directory_is_refused() {
    let sandbox = Sandbox::new();
    let message = fails(&sandbox, &["--workdir", "/no/such/dir"]);
    assert!(
        message.contains("working directory /no/such/dir: No such file or directory"),
        "{message}"
    );
}

#[test]
fn missing_pidfile_directory_is_refused() {
    let sandbox = Sandbox::new();
    let pidfile = sandbox.path("missing/d.pid");
    let output = run(sandbox.fixture().arg("--pidfile").arg(&pidfile));
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(&format!("pidfile {}", pidfile.display())),
        "{message}"
    );
    assert!(message.contains("No such file or directory"), "{message}");
    assert!(sandbox.processes().is_empty());
}

#[test]
fn a_symlinked_pidfile_is_refused_and_its_target_untouched() {
    let sandbox = Sandbox::new();
    let target = sandbox.path("precious");
    std::fs::write(&target, "data").unwrap();
    std::os::unix::fs::symlink(&target, sandbox.path("bad.pid")).unwrap();
    let output = run(sandbox
        .fixture()
        .arg("--pidfile")
        .arg(sandbox.path("bad.pid")));
    assert!(!output.status.success());
    assert!(stderr(&output).contains("symlink"), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "data");
    assert!(sandbox.processes().is_empty());
}

#[test]
fn a_multithreaded_process_is_refused() {
    let sandbox = Sandbox::new();
    let message = fails(&sandbox, &["--spawn-thread"]);
    assert!(message.contains("runs 2 threads"), "{message}");
}

#[test]
fn start_inside_a_single_threaded_async_runtime_is_refused() {
    let sandbox = Sandbox::new();
    // One thread, and an epoll instance open, as tokio's current_thread runtime has.
    let message = fails(&sandbox, &["--epoll-before-start"]);
    assert!(message.contains("is an epoll instance"), "{message}");
    assert!(
        message.contains("call start() first, before building a runtime"),
        "{message}"
    );
    // Kept on purpose, it is the caller's business.
    let (_, pid) = start(&sandbox, &["--epoll-before-start", "--keep-epoll"]);
    assert!(
        fds(pid).values().any(|t| t == "anon_inode:[eventpoll]"),
        "the kept epoll instance is in the daemon"
    );
}

#[test]
fn a_failed_privilege_change_after_the_fork_is_reported_by_step() {
    if !is_root() {
        eprintln!("skipped: needs root to run the launcher as nobody");
        return;
    }
    let sandbox = Sandbox::new();
    // The sandbox must be reachable by nobody for the stderr file.
    sandbox.share(0o1777);
    let (uid, gid) = nobody();
    let mut command = sandbox.fixture();
    command
        .args(["--user", "root"])
        .arg("--pidfile")
        .arg(sandbox.path("bad.pid"));
    command.uid(uid).gid(gid);
    let output = run(&mut command);
    let message = stderr(&output);
    assert!(!output.status.success(), "{message}");
    assert!(message.contains("setgid to group"), "{message}");
    assert!(message.contains("Operation not permitted"), "{message}");
    assert!(sandbox.processes().is_empty(), "{message}");
    assert!(!sandbox.path("bad.pid").exists());
}

#[test]
fn a_daemon_that_exits_before_ready_is_reported_with_its_own_error() {
    let sandbox = Sandbox::new();
    let message = fails(
        &sandbox,
        &["--fail-before-ready", "config: no listen address"],
    );
    assert!(
        message.contains("config: no listen address"),
        "the daemon's stderr: {message}"
    );
    assert!(
        message.contains("exited") && message.contains("before it was ready"),
        "{message}"
    );
}

#[test]
fn a_daemon_that_never_becomes_ready_is_stopped_after_the_timeout() {
    let sandbox = Sandbox::new();
    let message = fails(&sandbox, &["--never-ready", "--timeout", "0.5"]);
    assert!(message.contains("was not ready after 0.5s"), "{message}");
}

// ---- descriptors handed to a program the library executes ----

/// The number the fixture printed as `kept N` for its `--keep-file`.
fn kept_number(stdout: &[u8]) -> i32 {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("kept "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no 'kept N' in {text:?}"))
}

#[test]
fn spawn_passes_a_kept_close_on_exec_descriptor_to_the_program() {
    let sandbox = Sandbox::new();
    let kept = sandbox.path("kept");
    std::fs::write(&kept, "").unwrap();
    let pidfile = sandbox.path("d.pid");
    let sleep = sleeper(&sandbox);
    let output = run(sandbox
        .fixture()
        .arg("--pidfile")
        .arg(&pidfile)
        .arg("--keep-file")
        .arg(&kept)
        .args(["--spawn", "--", &sleep, "300"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let number = kept_number(&output.stdout);
    let pid = pid_in(&pidfile);
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        std::fs::canonicalize(&sleep).unwrap(),
        "the program runs (spawn returns once it is executed)"
    );
    let open = fds(pid);
    assert_eq!(
        open.get(&number),
        Some(&kept.display().to_string()),
        "the file Rust opened close-on-exec reached the program at its number: {open:?}"
    );
}

#[test]
fn a_kept_descriptor_reaches_every_run_of_a_supervised_program() {
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let kept = sandbox.path("kept");
    std::fs::write(&kept, "").unwrap();
    let pidfile = sandbox.path("d.pid");
    let program = announcing(&sandbox, "svc.sh", &fifo);
    let output = run(sandbox
        .fixture()
        .arg("--pidfile")
        .arg(&pidfile)
        .arg("--keep-file")
        .arg(&kept)
        .args(["--keeper-image", KEEPER_BIN, "--supervise", "--", &program]));
    assert!(output.status.success(), "{}", stderr(&output));
    let number = kept_number(&output.stdout);
    let first = started(&mut fifo);
    assert_eq!(fds(first).get(&number), Some(&kept.display().to_string()));
    // The keeper re-executes into its small image once the program runs; the descriptor must
    // cross that exec too, or the next run does without it.
    let keeper = stat(first).ppid;
    keeper_image_runs(keeper);
    kill(first, libc::SIGKILL);
    let second = started(&mut fifo);
    assert_ne!(first, second);
    assert_eq!(stat(second).ppid, keeper);
    let open = fds(second);
    assert_eq!(
        open.get(&number),
        Some(&kept.display().to_string()),
        "the restarted program lacks the kept descriptor: {open:?}"
    );
}

/// A child the daemon executes before ready() does not hold the stderr relay to the launcher
/// (close-on-exec until ready() replaces it), so it cannot die of SIGPIPE by writing to stderr
/// once the launcher has left.
#[test]
fn a_child_started_before_ready_does_not_hold_the_relay() {
    let sandbox = Sandbox::new();
    let command = format!("exec {} 300", sleeper(&sandbox));
    let pidfile = sandbox.path("d.pid");
    let output = run(sandbox
        .fixture()
        .args(["--pidfile", pidfile.to_str().unwrap()])
        .args(["--child-before-ready", &command]));
    assert!(output.status.success(), "{}", stderr(&output));
    let daemon = pid_in(&pidfile);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let child = loop {
        let children = std::fs::read_to_string(format!("/proc/{daemon}/task/{daemon}/children"))
            .unwrap_or_default();
        if let Some(child) = children
            .split_whitespace()
            .find_map(|c| c.parse::<u32>().ok())
            && std::fs::read_link(format!("/proc/{child}/exe")).is_ok_and(|e| e.ends_with("sleep"))
        {
            break child;
        }
        assert!(std::time::Instant::now() < deadline, "the child never ran");
        std::thread::yield_now();
    };
    let open = fds(child);
    assert!(
        !open.values().any(|target| target.starts_with("pipe:")),
        "the child holds a pipe (the launcher's stderr relay): {open:?}"
    );
}

#[test]
fn resources_apply_to_a_started_daemon_and_to_a_spawned_program() {
    let sandbox = Sandbox::new();
    // A positive nice value and a lower limit need no privilege: this runs as any user.
    let (_, pid) = start(&sandbox, &["--nice", "7", "--nofile", "512"]);
    let nice = |pid: u32| stat_fields(pid)[16].clone();
    let nofile = |pid: u32| proc_limit(pid, "Max open files");
    assert_eq!(nice(pid), "7", "the daemon's own nice value");
    assert_eq!(nofile(pid), ("512".into(), "512".into()));

    let pidfile = sandbox.path("spawned.pid");
    let sleep = sleeper(&sandbox);
    let output = run(sandbox.fixture().arg("--pidfile").arg(&pidfile).args([
        "--nice", "3", "--nofile", "256", "--spawn", "--", &sleep, "300",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let spawned = pid_in(&pidfile);
    assert_eq!(nice(spawned), "3", "the program's nice value");
    assert_eq!(nofile(spawned), ("256".into(), "256".into()));
}
