//! The `daemonic` command, run as a binary; the daemons it starts are checked from /proc.
//! Programs are started from the test's sandbox directory (a symlink to `sleep`, or scripts),
//! so the sandbox guard finds and kills everything a test started.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

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

/// The keeper of a program: its parent, checked to be the daemonic binary.
fn keeper_of(pid: u32) -> u32 {
    let keeper = stat(pid).ppid;
    assert!(
        is_keeper(keeper),
        "the parent of {pid} ({keeper}) is not a keeper"
    );
    keeper
}

/// The pipe inode a descriptor points at ("pipe:[123]").
fn is_pipe(target: &str) -> bool {
    target.starts_with("pipe:[")
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

/// The program gets every signal at its default, whatever the launcher inherited: ignored
/// (nohup's SIGHUP, a shell's SIGINT and SIGQUIT for a background job, a glibc-reserved real-time
/// signal) or blocked. The keeper resets only what the launcher's status showed changed, so this
/// checks that reading too.
#[test]
fn signals_the_launcher_inherited_reach_the_program_at_their_defaults() {
    let sandbox = Sandbox::new();
    let mut command = daemonic(&sandbox);
    command.args(["start", "-n", "d", "--", &sleeper(&sandbox), "300"]);
    with_changed_signals(
        &mut command,
        &[libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGUSR2],
    );
    let output = run(&mut command);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let pid = pid_in(&pidfile(&sandbox, "d"));
    for key in ["SigIgn", "SigCgt", "SigBlk"] {
        assert_eq!(status(pid, key), "0000000000000000", "{key}");
    }
}

/// A pidfile with another name (a hard link someone planted: with fs.protected_hardlinks off, to
/// a file of root's in /tmp) is never emptied or written. A stale pidfile is taken over and keeps
/// the mode it was given.
#[test]
fn a_hard_linked_pidfile_is_refused_and_a_stale_one_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let sleep = sleeper(&sandbox);
    let precious = sandbox.path("precious");
    std::fs::write(&precious, "keep me\n").unwrap();
    let linked = sandbox.path("linked.pid");
    std::fs::hard_link(&precious, &linked).unwrap();
    let output = run(daemonic(&sandbox).args([
        "start",
        "-p",
        linked.to_str().unwrap(),
        "--",
        &sleep,
        "300",
    ]));
    assert_eq!(code(&output), 4, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("has 2 hard links"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me\n");
    assert_eq!(sandbox.processes(), Vec::<u32>::new());
    let stale = sandbox.path("stale.pid");
    std::fs::write(&stale, "999999\n").unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o600)).unwrap();
    let output =
        run(daemonic(&sandbox).args(["start", "-p", stale.to_str().unwrap(), "--", &sleep, "300"]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let pid = pid_in(&stale);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.ends_with("sleep"), "{exe:?}");
    let mode = std::fs::metadata(&stale).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the stale file's mode is kept");
}

/// A pseudo-terminal for a test: its master (closing it hangs the terminal up) and the path of
/// its slave.
fn pseudo_terminal() -> (std::os::fd::OwnedFd, String) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain calls on a descriptor this test owns; ptsname_r writes into `name`.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(
            master >= 0,
            "posix_openpt: {}",
            std::io::Error::last_os_error()
        );
        let master = std::os::fd::OwnedFd::from_raw_fd(master);
        use std::os::fd::AsRawFd;
        assert_eq!(libc::grantpt(master.as_raw_fd()), 0);
        assert_eq!(libc::unlockpt(master.as_raw_fd()), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(
            libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()),
            0
        );
        let name = std::ffi::CStr::from_ptr(name.as_ptr())
            .to_str()
            .unwrap()
            .to_owned();
        (master, name)
    }
}

/// A process's terminal and its foreground group (`tty_nr`, `tpgid`), if it still exists.
fn terminal_of(pid: u32) -> Option<(i32, i32)> {
    ProcStat::read(pid).map(|s| (s.tty_nr, s.tpgid))
}

/// The keeper leads its own session (`start` forks it once), so a terminal it opened for
/// reading without `O_NOCTTY` would become its controlling terminal, and the terminal's hangup
/// its SIGHUP. Here the pidfile a self-forking program is said to write is a terminal: the
/// keeper looks at it every few milliseconds for a second, and never gets it. (Linux never makes
/// a terminal opened write-only controlling, so the output files below are the lesser case.)
#[test]
fn a_keeper_never_gets_a_terminal_from_the_files_it_opens() {
    let sandbox = Sandbox::new();
    let (master, tty) = pseudo_terminal();
    let forker = script(&sandbox, "forker.sh", "\"$SLEEP\" 300 &\nexit 0");
    let mut start = daemonic(&sandbox)
        .args([
            "start",
            "-n",
            "f",
            "--forks",
            &tty,
            "--ready-timeout",
            "1",
            "--",
            &forker,
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let launcher = start.id();
    let children = format!("/proc/{launcher}/task/{launcher}/children");
    let (mut keeper, mut terminals) = (None, Vec::new());
    let status = loop {
        if let Some(status) = start.try_wait().unwrap() {
            break status;
        }
        // The keeper is the launcher's child until the launcher exits.
        if keeper.is_none() {
            keeper = std::fs::read_to_string(&children)
                .ok()
                .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()));
        }
        if let Some(terminal) = keeper.and_then(terminal_of) {
            terminals.push(terminal);
        }
        std::thread::yield_now();
    };
    assert!(!status.success(), "no daemon pid ever appears in {tty}");
    assert!(
        keeper.is_some() && !terminals.is_empty(),
        "the keeper was seen"
    );
    assert!(
        terminals.iter().all(|&t| t == (0, -1)),
        "the keeper never had a terminal: {:?}",
        terminals.iter().find(|&&t| t != (0, -1))
    );
    // The output file a terminal, opened at start and again by the keeper at `reopen`.
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "d",
        "-o",
        &tty,
        "--",
        &sleeper(&sandbox),
        "300",
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let pid = pid_in(&pidfile(&sandbox, "d"));
    let keeper = keeper_of(pid);
    assert_eq!(stat(keeper).session, keeper, "the keeper leads its session");
    let reopen = run(daemonic(&sandbox).args(["reopen", "-n", "d"]));
    assert_eq!(code(&reopen), 0, "{}", stderr(&reopen));
    assert!(
        fds(keeper).values().any(|t| *t == tty),
        "the keeper writes to {tty}"
    );
    assert_eq!(
        terminal_of(keeper),
        Some((0, -1)),
        "the keeper after reopen"
    );
    assert_eq!(terminal_of(pid), Some((0, -1)), "the program after reopen");
    // TZ naming the terminal: glibc opens the zone file without O_NOCTTY at the first local-time
    // stamp. The keeper drops such a TZ from its own environment (the program keeps it).
    let log = sandbox.path("log");
    let talker = script(&sandbox, "talker.sh", "echo hello\nexec \"$SLEEP\" 300");
    let output = run(daemonic(&sandbox).env("TZ", &tty).args([
        "start",
        "-n",
        "tz",
        "--log",
        log.to_str().unwrap(),
        "--log-stamp",
        "local",
        "--",
        &talker,
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    eventually("the line is logged with a local stamp", || {
        std::fs::read_to_string(log.join("current")).is_ok_and(|t| t.contains("hello"))
    });
    let pid = pid_in(&pidfile(&sandbox, "tz"));
    let keeper = keeper_of(pid);
    assert_eq!(
        terminal_of(keeper),
        Some((0, -1)),
        "the keeper after a local stamp"
    );
    assert!(
        environ(pid).contains(&format!("TZ={tty}")),
        "the program's TZ is as given"
    );
    drop(master);
}

#[test]
fn start_runs_the_program_under_a_keeper_that_is_a_daemon() {
    let sandbox = Sandbox::new();
    // A stray descriptor the launcher inherits: neither keeper nor program may.
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
    // The keeper is the daemon: a child of init (or our subreaper), leading a session of its own
    // without a terminal (`start` forks it once: `Daemon::launcher_exits`).
    let keeper = keeper_of(pid);
    // Once the program runs, the keeper becomes the small image, not a copy of the command (it
    // re-executes just after `start` has returned).
    keeper_image_runs(keeper);
    let k = stat(keeper);
    assert!(is_reaper_for_us(k.ppid), "keeper's parent {}", k.ppid);
    assert_eq!(k.session, keeper, "the keeper leads its own session");
    assert_eq!((k.tty_nr, k.tpgid), (0, -1), "the keeper has no terminal");
    // The program: its own process group inside the keeper's session, never a session leader.
    let s = stat(pid);
    assert_eq!(s.pgrp, pid, "the program leads its own process group");
    assert_eq!(s.session, k.session, "in the keeper's session");
    assert_ne!(s.session, pid, "not a session leader");
    assert_eq!((s.tty_nr, s.tpgid), (0, -1), "no controlling terminal");
    assert_eq!(cwd(pid), Path::new("/"));
    assert_eq!(status(pid, "Umask"), "0022");
    assert_eq!(status(pid, "SigIgn"), "0000000000000000");
    assert_eq!(status(pid, "SigBlk"), "0000000000000000");
    let open = fds(pid);
    for fd in 0..2 {
        assert_eq!(open[&fd], "/dev/null", "fd {fd}");
    }
    // stderr goes through the keeper (it relays it to `start` until ready): a pipe whose other
    // end the keeper holds.
    assert!(is_pipe(&open[&2]), "stderr: {open:?}");
    let keeper_fds = fds(keeper);
    assert!(
        keeper_fds.values().any(|t| *t == open[&2]),
        "the keeper holds the program's stderr pipe: {keeper_fds:?}"
    );
    assert_eq!(
        keeper_fds[&2], "/dev/null",
        "the keeper writes it to the target"
    );
    // Nothing of the launcher's reaches the program: not the pidfile, not descriptor 7.
    let sandbox_dir = sandbox.dir.path().display().to_string();
    let inherited: Vec<_> = open
        .iter()
        .filter(|(_, target)| target.starts_with(&sandbox_dir))
        .collect();
    assert_eq!(inherited, Vec::<(&i32, &String)>::new(), "{open:?}");
    let stray_path = sandbox.path("stray").display().to_string();
    assert!(
        !open.contains_key(&7),
        "descriptor 7 reached the program: {open:?}"
    );
    assert!(
        !keeper_fds.values().any(|t| *t == stray_path),
        "the stray descriptor reached the keeper: {keeper_fds:?}"
    );
    // The keeper holds the pidfile (and its lock), the program does not.
    let pidfile_path = pidfile(&sandbox, "d").display().to_string();
    assert!(
        keeper_fds.values().any(|t| *t == pidfile_path),
        "{keeper_fds:?}"
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
    // -o: both streams through one keeper pipe (their order kept), which the keeper appends
    // to the file it holds as its own stdout and stderr.
    let open = fds(pid);
    assert!(is_pipe(&open[&1]) && open[&1] == open[&2], "{open:?}");
    let keeper = fds(keeper_of(pid));
    assert_eq!(keeper[&1], log.display().to_string());
    assert_eq!(keeper[&2], log.display().to_string());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "earlier line\n",
        "--append kept the file"
    );
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
            // dup2 onto the same number keeps close-on-exec: cleared explicitly.
            libc::fcntl(5, libc::F_SETFD, 0);
            libc::fcntl(6, libc::F_SETFD, 0);
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
    sandbox.share(0o755);
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
    assert_eq!(programs(&sandbox), vec![pid]);
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
fn a_killed_program_reads_as_dead_and_a_new_start_takes_over() {
    let sandbox = Sandbox::new();
    let first = start_sleeper(&sandbox, "d", &[]);
    let keeper = keeper_of(first);
    kill(first, libc::SIGKILL);
    // Under --restart no the keeper records the exit and leaves.
    wait_gone(keeper);
    let status = run(daemonic(&sandbox).args(["status", "-n", "d", "--json"]));
    assert_eq!(code(&status), 1, "dead: killed, not restarted");
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["state"], "exited", "{json}");
    assert_eq!(json["last_exit"]["signal"], "KILL", "{json}");
    assert!(
        !pidfile(&sandbox, "d").exists(),
        "the keeper removed the pidfile"
    );
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
    let running = programs(&sandbox);
    assert_eq!(running.len(), 1, "exactly one daemon: {running:?}");
    assert_eq!(sandbox.processes().len(), 2, "and one keeper");
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
    // Ready came after the keeper's re-exec: the channel to the launcher that heard it is not
    // kept (a pipe end no other process holds, or the keeper's other end).
    let keeper = keeper_of(pid);
    keeper_image_runs(keeper);
    // The script's last step, `exec sleep`, may still be under way after `start` returned:
    // during an exec /proc/PID/fd can read empty, and the pipes it shares would look lonely.
    eventually("the script executed sleep", || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    exec_done(pid);
    let (kept, program) = (fds(keeper), fds(pid));
    let holders = |pipe: &String| {
        kept.values()
            .chain(program.values())
            .filter(|t| *t == pipe)
            .count()
    };
    let lonely: Vec<&String> = kept
        .values()
        .filter(|t| is_pipe(t) && holders(t) == 1)
        .collect();
    assert!(
        lonely.is_empty(),
        "pipe ends only the keeper holds: {lonely:?}"
    );
    let status = run(daemonic(&sandbox).args(["status", "-n", "d", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["state"], "ready");
    assert_eq!(json["readiness"], "notify");
    assert_eq!(json["ready"], true);
    assert_eq!(json["pid"], pid);
    assert_eq!(json["status_text"], "loading cache");
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
    assert_eq!(json["state"], "starting");
    assert_eq!(json["ready"], false, "{json}");
    assert_eq!(code(&status), 0, "starting counts as running");
    std::fs::write(&proceed, "go\n").unwrap();
    assert!(launcher.0.wait().unwrap().success());
    let status = run(daemonic(&sandbox).args(["status", "-n", "d", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["state"], "ready", "{json}");
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
    let program = stubborn(&sandbox);
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
    // Ready only once the trap is set, so the stop cannot race the script.
    let program = stubborn(&sandbox);
    assert_eq!(
        code(&run(
            daemonic(&sandbox).args(["start", "-n", "d", "--notify", "--", &program])
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
    assert_eq!(programs(&sandbox).len(), 1, "the program still runs");
    let status = run(daemonic(&sandbox).args(["status", "-n", "d", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        json["state"], "stopping",
        "its keeper goes on waiting: {json}"
    );
}

#[test]
fn restart_runs_the_same_program_again_in_place() {
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
    // The new script's subshell that wrote the readiness newline may still be leaving.
    eventually("only the new program runs", || {
        programs(&sandbox) == vec![second]
    });
    // The keeper ran the same program again: its flags and environment, from memory.
    assert!(reported_env(&env_file).contains(&"KEPT=1".to_string()));
    assert_eq!(fds(keeper_of(second))[&1], log.display().to_string());
    let status = run(daemonic(&sandbox).args(["status", "-n", "d", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["restarts"], 1, "{json}");
    // A stopped service is not restarted from anything on disk.
    assert_eq!(code(&run(daemonic(&sandbox).args(["stop", "-n", "d"]))), 0);
    let output = run(daemonic(&sandbox).args(["restart", "-n", "d"]));
    assert_eq!(code(&output), 7, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not running"),
        "{}",
        stderr(&output)
    );
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
    sandbox.share(0o755);
    let locked = sandbox.path("locked");
    std::fs::create_dir(&locked).unwrap();
    let pidfile = locked.join("d.pid");
    let (uid, gid) = nobody();
    let mut command = daemonic(&sandbox);
    command.args([
        "start",
        "-p",
        pidfile.to_str().unwrap(),
        "--",
        &sleeper(&sandbox),
        "1",
    ]);
    command.uid(uid).gid(gid);
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

/// Root only (to act as nobody, whom a read-only directory stops): `stop` that ended the
/// service but could not remove its pidfile (its directory became read-only) says so and exits
/// 0; the file left is no one's, so a later start takes it over.
#[test]
fn stop_says_when_a_read_only_directory_keeps_the_pidfile() {
    if !is_root() {
        eprintln!("skipped: needs root to run the command as nobody");
        return;
    }
    let sandbox = Sandbox::new();
    sandbox.share(0o755);
    let (uid, gid) = nobody();
    let dir = sandbox.path("ro");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    let pidfile = dir.join("d.pid");
    let as_nobody = |args: &[&str]| {
        let mut command = daemonic(&sandbox);
        command.args(args).uid(uid).gid(gid);
        run(&mut command)
    };
    let p = pidfile.to_str().unwrap();
    let output = as_nobody(&["start", "-p", p, "--", &sleeper(&sandbox), "300"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let output = as_nobody(&["stop", "-p", p]);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    assert!(said.contains("could not be removed"), "{said}");
    assert!(pidfile.exists(), "the pidfile is still there");
    assert!(sandbox.processes().is_empty(), "the service stopped");
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

/// A closed stdout or stderr never aborts a command and never orphans a daemon: `list | head`
/// ends quietly with 0, and a `start` whose stderr is closed still starts (and reports) fully.
#[test]
fn closed_stdout_and_stderr_end_quietly_and_orphan_nothing() {
    let sandbox = Sandbox::new();
    for name in ["a", "b", "c"] {
        start_sleeper(&sandbox, name, &[]);
    }
    // `daemonic list | head -1`: stdout closed after one line.
    let mut list = daemonic(&sandbox)
        .args(["list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(list.stdout.take());
    let output = list.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));
    // `start … 2>&1 | true`: stderr closed; the program writes to stderr before it is ready.
    let program = script(
        &sandbox,
        "noisy.sh",
        "echo 'starting up' >&2\n\"$DAEMONIC\" notify 'STATUS=warming'\n\"$DAEMONIC\" notify READY=1\nexec \"$SLEEP\" 300",
    );
    let mut start = daemonic(&sandbox)
        .args(["start", "-n", "noisy", "--notify", "--", &program])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(start.stderr.take());
    assert_eq!(start.wait().unwrap().code(), Some(0));
    let status = run(daemonic(&sandbox).args(["status", "-n", "noisy", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["state"], "ready", "{json}");
}

/// Text from the daemon (its stderr before readiness, its STATUS= lines) reaches the admin's
/// terminal with control characters escaped.
#[test]
fn text_from_the_daemon_is_shown_with_control_characters_escaped() {
    let sandbox = Sandbox::new();
    let program = script(
        &sandbox,
        "evil.sh",
        "printf 'clear \\033[2J bell \\007\\n' >&2\n\"$DAEMONIC\" notify \"$(printf 'STATUS=title \\033]0;pwned\\007')\"\n\"$DAEMONIC\" notify READY=1\nexec \"$SLEEP\" 300",
    );
    let output = run(daemonic(&sandbox).args(["start", "-n", "d", "--notify", "--", &program]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let err = stderr(&output);
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    assert!(err.contains("clear \\x1b[2J bell \\x07"), "{err:?}");
    assert!(err.contains("title \\u{1b}]0;pwned\\u{7}"), "{err:?}");
    let status = run(daemonic(&sandbox).args(["status", "-n", "d"]));
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        !shown.contains('\u{1b}') && shown.contains("pwned"),
        "{shown:?}"
    );
}

/// Messages say what the user needs: a too-long name says so, a readiness timeout names the
/// protocol, a missing #! interpreter is named, a pidfile too long for its socket says so.
#[test]
fn messages_name_the_cause() {
    let sandbox = Sandbox::new();
    let long = "x".repeat(201);
    let output = run(daemonic(&sandbox).args(["status", "-n", &long]));
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("201 bytes long; at most 200"),
        "{}",
        stderr(&output)
    );

    let silent = script(&sandbox, "silent.sh", "exec \"$SLEEP\" 300");
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "t",
        "--notify",
        "--ready-timeout",
        "0.3",
        "--",
        &silent,
    ]));
    assert_eq!(code(&output), 1);
    assert!(
        stderr(&output).contains("send READY=1 to $NOTIFY_SOCKET"),
        "{}",
        stderr(&output)
    );
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "f",
        "--ready-fd",
        "4",
        "--ready-timeout",
        "0.3",
        "--",
        &silent,
    ]));
    assert!(
        stderr(&output).contains("write a newline to descriptor 4"),
        "{}",
        stderr(&output)
    );

    let orphan = sandbox.path("orphan.py");
    std::fs::write(&orphan, "#!/usr/bin/no-such-python3 -u\nprint('hi')\n").unwrap();
    std::fs::set_permissions(&orphan, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = run(daemonic(&sandbox).args(["start", "-n", "o", "--", orphan.to_str().unwrap()]));
    assert_eq!(code(&output), 5, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("#!/usr/bin/no-such-python3, and that interpreter is missing"),
        "{}",
        stderr(&output)
    );

    let deep = sandbox.path(&"d".repeat(100));
    std::fs::create_dir(&deep).unwrap();
    let output = run(daemonic(&sandbox).args([
        "start",
        "-p",
        deep.join("svc.pid").to_str().unwrap(),
        "--",
        &silent,
    ]));
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("too long a path for its keeper's socket"),
        "{}",
        stderr(&output)
    );
    assert_eq!(sandbox.processes(), Vec::<u32>::new());
}

// ---- start-stop-daemon's conventions, for scripts that migrate ----

/// A program that ignores TERM, ready (through `daemonic notify`) only once the trap is set.
/// A program that ignores TERM, ready (--notify) only once its trap is set, so nothing that
/// follows can race the script.
fn stubborn(sandbox: &Sandbox) -> String {
    script(
        sandbox,
        "stubborn.sh",
        "trap '' TERM\n\"$DAEMONIC\" notify READY=1\nexec \"$SLEEP\" 300",
    )
}

#[test]
fn schedules_take_start_stop_daemons_forms_forever_and_fractions() {
    let sandbox = Sandbox::new();
    // Ignores TERM; counts the USR1s it gets and exits after the third: only a schedule that
    // repeats (forever) ends it.
    let count = sandbox.path("count");
    let program = script(
        &sandbox,
        "counter.sh",
        &format!(
            "trap '' TERM\nn=0\ntrap 'n=$((n+1)); echo $n > {}; [ $n -ge 3 ] && exit 0' USR1\n\
             \"$DAEMONIC\" notify READY=1\nwhile :; do \"$SLEEP\" 0.02; done",
            count.display()
        ),
    );
    let start = run(daemonic(&sandbox).args(["start", "-n", "d", "--notify", "--", &program]));
    assert_eq!(code(&start), 0, "{}", stderr(&start));
    let pid = pid_in(&pidfile(&sandbox, "d"));
    let stop = run(daemonic(&sandbox).args([
        "stop",
        "-n",
        "d",
        "-v",
        "--retry",
        "-15/0.1/forever/-USR1/0.1",
    ]));
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));
    assert!(
        stderr(&stop).contains(&format!("d stopped (pid {pid})")),
        "{}",
        stderr(&stop)
    );
    let got: u32 = std::fs::read_to_string(&count)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(got >= 3, "USR1 sent again and again: {got}");
    assert!(sandbox.processes().is_empty());
    for bad in [
        "TERM/5/forever/KILL/0",
        "TERM/forever/forever/5",
        "TERM/-1",
        "TERM/0.5.5",
    ] {
        let out = run(daemonic(&sandbox).args(["stop", "-n", "d", "--retry", bad]));
        assert_eq!(code(&out), 2, "{bad}: {}", stderr(&out));
    }
}

#[test]
fn exit_codes_ssd_says_when_nothing_was_done_or_something_still_runs() {
    let sandbox = Sandbox::new();
    let program = stubborn(&sandbox);
    let ssd = |args: &[&str]| {
        let mut command = daemonic(&sandbox);
        command.args(args).args(["--exit-codes", "ssd"]);
        run(&mut command)
    };
    let start = ["start", "-n", "d", "--notify", "--", &program];
    let first = ssd(&start[..4]);
    assert_eq!(
        code(&first),
        3,
        "no program: a usage error is s-s-d's 3, not its 2"
    );
    let mut with_program = vec!["start", "-n", "d", "--notify", "--exit-codes", "ssd", "--"];
    with_program.push(&program);
    let started = run(daemonic(&sandbox).args(&with_program));
    assert_eq!(code(&started), 0, "{}", stderr(&started));
    let again = run(daemonic(&sandbox).args(&with_program));
    assert_eq!(code(&again), 1, "already running: nothing done");
    let lsb = run(daemonic(&sandbox).args(["start", "-n", "d", "--notify", "--", &program]));
    assert_eq!(code(&lsb), 0, "the LSB default: nothing to do is success");
    let overrun = ssd(&["stop", "-n", "d", "--retry", "TERM/0.2"]);
    assert_eq!(code(&overrun), 2, "still running: {}", stderr(&overrun));
    let stopped = ssd(&["stop", "-n", "d", "--retry", "KILL/5"]);
    assert_eq!(code(&stopped), 0, "{}", stderr(&stopped));
    assert_eq!(
        code(&ssd(&["stop", "-n", "d"])),
        1,
        "not running: nothing done"
    );
    assert_eq!(code(&ssd(&["signal", "-n", "d", "HUP"])), 1);
    assert_eq!(code(&ssd(&["restart", "-n", "d"])), 1);
    let bad_user = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "e",
        "-u",
        "no-such-user-here",
        "--exit-codes",
        "ssd",
        "--",
        &program,
    ]));
    assert_eq!(code(&bad_user), 3, "any other error: {}", stderr(&bad_user));
    assert!(sandbox.processes().is_empty());
}

#[test]
fn test_mode_checks_and_tells_but_does_nothing() {
    let sandbox = Sandbox::new();
    let sleep = sleeper(&sandbox);
    let dry = run(daemonic(&sandbox)
        .args([
            "start",
            "-n",
            "d",
            "--test",
            "--restart",
            "on-failure",
            "--",
        ])
        .args([&sleep, "300", "two words"]));
    assert_eq!(code(&dry), 0, "{}", stderr(&dry));
    let said = stderr(&dry);
    assert!(
        said.contains(&format!("would start d: {sleep} 300 'two words'")),
        "{said}"
    );
    assert!(said.contains("restart on-failure"), "{said}");
    assert!(!sandbox.path("run").exists(), "not even the run directory");
    assert!(sandbox.processes().is_empty());
    // What would fail fails as it would, with its code.
    let missing = run(daemonic(&sandbox).args(["start", "-n", "d", "--test", "--", "/no/such"]));
    assert_eq!(code(&missing), 5, "{}", stderr(&missing));
    // A pidfile too long for its keeper's socket: the dry run says what the start says.
    let long = sandbox.path(&format!("{}.pid", "p".repeat(110)));
    for dry in [true, false] {
        let mut command = daemonic(&sandbox);
        command.args(["start", "-p", long.to_str().unwrap()]);
        if dry {
            command.arg("--test");
        }
        let output = run(command.args(["--", &sleep, "300"]));
        assert_eq!(code(&output), 2, "--test {dry}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("too long a path"),
            "{}",
            stderr(&output)
        );
        assert!(!long.exists());
    }
    let stop = run(daemonic(&sandbox).args(["stop", "-n", "d", "--test"]));
    assert_eq!(code(&stop), 0);
    assert!(stderr(&stop).contains("not running: nothing to do"));
    // Running: the dry runs name its pid and leave it alone.
    let start = run(daemonic(&sandbox).args(["start", "-n", "d", "--", &sleep, "300"]));
    assert_eq!(code(&start), 0, "{}", stderr(&start));
    let pid = pid_in(&pidfile(&sandbox, "d"));
    for (args, want) in [
        (vec!["stop", "--test"], format!("would stop d (pid {pid})")),
        (
            vec!["signal", "--test", "HUP"],
            format!("would send HUP to d (pid {pid})"),
        ),
        (
            vec!["restart", "--test"],
            format!("would restart d (pid {pid})"),
        ),
        (
            vec!["start", "--test", "--", &sleep],
            format!("already running (pid {pid})"),
        ),
    ] {
        let out = run(daemonic(&sandbox)
            .args(&args[..1])
            .args(["-n", "d"])
            .args(&args[1..]));
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(&want), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(pid_in(&pidfile(&sandbox, "d")), pid, "untouched");
    assert!(!matches!(stat(pid).state, 'T' | 'Z' | 'X'), "still running");
    assert_eq!(code(&run(daemonic(&sandbox).args(["stop", "-n", "d"]))), 0);
}

#[test]
fn quiet_verbose_and_argv0() {
    let sandbox = Sandbox::new();
    let sleep = sleeper(&sandbox);
    let name = sandbox.path("renamed").display().to_string();
    let start = run(daemonic(&sandbox).args([
        "start", "-n", "d", "-v", "--argv0", &name, "--", &sleep, "300",
    ]));
    assert_eq!(code(&start), 0, "{}", stderr(&start));
    let pid = pid_in(&pidfile(&sandbox, "d"));
    assert!(
        stderr(&start).contains(&format!("d started (pid {pid}, keeper ")),
        "{}",
        stderr(&start)
    );
    exec_done(pid);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(
        cmdline,
        format!("{name}\0300\0").into_bytes(),
        "argv[0] as asked"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        std::fs::canonicalize(&sleep).unwrap(),
        "the program as given"
    );
    let quiet = run(daemonic(&sandbox).args(["start", "-n", "d", "-q", "--", &sleep, "300"]));
    assert_eq!(code(&quiet), 0);
    assert_eq!(stderr(&quiet), "", "already running, quietly");
    let loud = run(daemonic(&sandbox).args(["start", "-n", "d", "--", &sleep, "300"]));
    assert!(
        stderr(&loud).contains("already running"),
        "{}",
        stderr(&loud)
    );
    let both = run(daemonic(&sandbox).args(["stop", "-n", "d", "-q", "-v"]));
    assert_eq!(code(&both), 2, "-q and -v conflict");
    assert_eq!(
        code(&run(daemonic(&sandbox).args(["stop", "-n", "d", "-q"]))),
        0
    );
    assert!(sandbox.processes().is_empty());
}
