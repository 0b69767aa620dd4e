//! A daemon for daemonic's integration tests, configured from its flags: it starts with the
//! library, optionally misbehaves before readiness, reports its environment, then waits for a
//! signal. Not an example of good practice; see `become.rs` for that.

use std::io::Write;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use clap::Parser;
use daemonic::{Daemon, Groups, Policy, Program, Restart, Stdio};

#[derive(Parser)]
struct Args {
    /// A tag for the tests to find this process by (ignored).
    #[arg(long)]
    tag: Option<String>,
    #[arg(long)]
    pidfile: Option<String>,
    #[arg(long)]
    workdir: Option<String>,
    #[arg(long, value_parser = |s: &str| u32::from_str_radix(s, 8))]
    umask: Option<u32>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    no_groups: bool,
    #[arg(long)]
    chroot: Option<String>,
    #[arg(long)]
    stdout: Option<String>,
    #[arg(long)]
    stderr: Option<String>,
    #[arg(long)]
    redirect_to: Option<String>,
    #[arg(long)]
    keep_fd: Vec<i32>,
    #[arg(long)]
    env: Vec<String>,
    #[arg(long)]
    clear_env: bool,
    #[arg(long)]
    no_core: bool,
    /// Nice value and open-file limit (soft = hard) through `Resources`.
    #[arg(long, allow_negative_numbers = true)]
    nice: Option<i32>,
    #[arg(long)]
    nofile: Option<u64>,
    #[arg(long)]
    foreground: bool,
    #[arg(long)]
    ready_at_start: bool,
    #[arg(long)]
    timeout: Option<f64>,
    /// Start a thread before daemonizing (start() must refuse).
    #[arg(long)]
    spawn_thread: bool,
    /// Open an epoll instance before start(), as a single-threaded async runtime does (start()
    /// must refuse); with --keep-epoll it is kept, which start() allows.
    #[arg(long)]
    epoll_before_start: bool,
    #[arg(long)]
    keep_epoll: bool,
    /// Write this to stderr and exit with status 3 instead of becoming ready.
    #[arg(long)]
    fail_before_ready: Option<String>,
    /// Never call ready().
    #[arg(long)]
    never_ready: bool,
    /// Exit cleanly right after ready() (the pidfile is removed).
    #[arg(long)]
    exit_after_ready: bool,
    /// Write the daemon's environment, one KEY=VALUE per line, to this file before ready().
    #[arg(long)]
    report: Option<String>,
    /// Open this file (close-on-exec, as Rust opens everything), hand it over with
    /// keep_owned_fd, and print `kept N` with its number.
    #[arg(long)]
    keep_file: Option<String>,
    /// Execute the program after `--` as the daemon (Daemon::spawn) instead of becoming it;
    /// print `spawned PID` once it is ready.
    #[arg(long)]
    spawn: bool,
    /// Run the program after `--` under a keeper (Daemon::supervise) that restarts it at once
    /// whenever it ends; print `supervised PID` once it is ready.
    #[arg(long)]
    supervise: bool,
    /// The image the keeper re-executes into (with --supervise).
    #[arg(long)]
    keeper_image: Option<String>,
    /// Install a SIGUSR1 handler before start(); the daemon then says whether it is still
    /// installed (`usr1 handler installed` or `usr1 handler lost`) and prints `caught USR1` at
    /// each SIGUSR1.
    #[arg(long)]
    handle_usr1: bool,
    /// Before ready(), run this shell command in the background (it inherits what the daemon
    /// has: the relay on stderr, among others).
    #[arg(long)]
    child_before_ready: Option<String>,
    /// The program for --spawn and --supervise.
    #[arg(last = true)]
    program: Vec<String>,
}

/// Set by the SIGUSR1 handler, read by the main loop.
/// Says so at once (write is async-signal-safe): a flag checked after `pause` would miss a
/// signal that came before the first `pause`.
extern "C" fn on_usr1(_signo: libc::c_int) {
    let line = b"caught USR1\n";
    // SAFETY: write on fd 1 with a valid buffer; async-signal-safe.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
}

/// The current SIGUSR1 handler is `on_usr1`.
fn usr1_handler_installed() -> bool {
    // SAFETY: a null new action only queries; `old` is written by sigaction.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGUSR1, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == on_usr1 as extern "C" fn(libc::c_int) as libc::sighandler_t
    }
}

fn main() {
    let args = Args::parse();
    if args.handle_usr1 {
        // SAFETY: a zeroed sigaction with a valid handler and an empty mask; the handler only
        // stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_usr1 as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut());
        }
    }
    if args.spawn_thread {
        std::thread::spawn(|| std::thread::sleep(Duration::from_secs(60)));
    }
    let mut daemon = Daemon::new();
    // Held until the end of main, as a runtime holds its epoll instance.
    let epoll = args.epoll_before_start.then(|| {
        // SAFETY: epoll_create1 returns a new descriptor, owned below, or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            std::process::exit(4);
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
    });
    if let (Some(epoll), true) = (&epoll, args.keep_epoll) {
        daemon = daemon.keep_fd(std::os::fd::AsFd::as_fd(epoll));
    }
    if let Some(p) = &args.pidfile {
        daemon = daemon.pidfile(p);
    }
    if let Some(d) = &args.workdir {
        daemon = daemon.workdir(d);
    }
    if let Some(m) = args.umask {
        daemon = daemon.umask(m);
    }
    if let Some(u) = &args.user {
        daemon = daemon.user(u);
    }
    if let Some(g) = &args.group {
        daemon = daemon.group(g);
    }
    if args.no_groups {
        daemon = daemon.groups(Groups::None);
    }
    if let Some(c) = &args.chroot {
        daemon = daemon.chroot(c);
    }
    if let Some(r) = &args.redirect_to {
        daemon = daemon.redirect_to(r);
    }
    if let Some(f) = &args.stdout {
        daemon = daemon.stdout(Stdio::append(f));
    }
    if let Some(f) = &args.stderr {
        daemon = daemon.stderr(Stdio::append(f));
    }
    for &fd in &args.keep_fd {
        // SAFETY: the test opened these descriptors for us and keeps them open while we run.
        daemon = daemon.keep_fd(unsafe { BorrowedFd::borrow_raw(fd) });
    }
    if args.clear_env {
        daemon = daemon.clear_env();
    }
    for kv in &args.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        daemon = daemon.env(k, v);
    }
    if let Some(t) = args.timeout {
        daemon = daemon.timeout(Duration::from_secs_f64(t));
    }
    if let Some(path) = &args.keep_file {
        let file = std::fs::File::open(path).unwrap_or_else(|_| std::process::exit(4));
        println!("kept {}", std::os::fd::AsRawFd::as_raw_fd(&file));
        daemon = daemon.keep_owned_fd(file);
    }
    if let Some(image) = &args.keeper_image {
        daemon = daemon.keeper_image(image);
    }
    let mut resources = daemonic::Resources::new();
    if let Some(n) = args.nice {
        resources = resources.nice(n);
    }
    if let Some(n) = args.nofile {
        resources = resources.limit(daemonic::Limit::NoFile, n, n);
    }
    daemon = daemon
        .resources(resources)
        .no_core(args.no_core)
        .foreground(args.foreground)
        .ready_at_start(args.ready_at_start);
    if args.spawn || args.supervise {
        let Some((name, rest)) = args.program.split_first() else {
            eprintln!("fixture: no program after --");
            std::process::exit(2);
        };
        let program = Program::new(name).args(rest);
        let started = if args.spawn {
            daemon.spawn(&program).map(|s| s.pid())
        } else {
            let policy = Policy::new()
                .restart(Restart::Always)
                .restart_delay(Duration::ZERO);
            daemon.supervise(&program, policy).map(|s| s.pid())
        };
        match started {
            Ok(pid) => println!(
                "{} {pid}",
                if args.spawn { "spawned" } else { "supervised" }
            ),
            Err(err) => {
                eprintln!("fixture: {err}");
                std::process::exit(1);
            }
        }
        return;
    }

    let mut running = match daemon.start() {
        Ok(running) => running,
        Err(err) => {
            eprintln!("fixture: {err}");
            std::process::exit(1);
        }
    };
    if let Some(path) = &args.report {
        let mut file = std::fs::File::create(path).unwrap_or_else(|_| std::process::exit(4));
        for (k, v) in std::env::vars() {
            let _ = writeln!(file, "{k}={v}");
        }
    }
    if let Some(message) = &args.fail_before_ready {
        eprintln!("{message}");
        std::process::exit(3);
    }
    if args.handle_usr1 {
        let state = if usr1_handler_installed() {
            "installed"
        } else {
            "lost"
        };
        println!("usr1 handler {state}");
    }
    println!("daemon {} started", running.pid());
    let _ = std::io::stdout().flush();
    if let Some(command) = &args.child_before_ready {
        let _ = std::process::Command::new("/bin/sh")
            .args(["-c", command])
            .spawn();
    }
    if !args.never_ready {
        if running.ready().is_err() {
            std::process::exit(5);
        }
        eprintln!("daemon {} ready", running.pid());
    }
    if args.exit_after_ready {
        drop(running);
        return;
    }
    // Wait for a signal; the default dispositions end the process.
    loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    }
}
