//! The recipes in `contrib/`, run: the LSB init script through every action and its exit codes,
//! the runit `run` script under `runsv` (if installed), the systemd unit through
//! `systemd-analyze verify` (if installed), and the shell recipes through `sh -n`. OpenRC's
//! `openrc-run` and Docker are not on the test machines: those two recipes are only parsed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(20);

fn contrib(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(path)
}

/// The program the recipes keep: it reports each start and each SIGHUP on a FIFO and runs
/// until stopped.
fn service(sandbox: &Sandbox, fifo: &Fifo) -> String {
    script(
        sandbox,
        "svc.sh",
        &format!(
            "trap 'echo \"reload $$\" > {events}' HUP\n\
             echo \"start $$\" > {events}\n\
             while :; do \"$SLEEP\" 300 & wait $!; done",
            events = fifo.path.display()
        ),
    )
}

#[test]
fn the_lsb_init_script_runs_every_action_with_lsb_exit_codes() {
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = service(&sandbox, &fifo);
    let init = |action: &str, extra: &[(&str, &str)]| -> Output {
        let mut command = Command::new("sh");
        command
            .arg(contrib("sysvinit/example"))
            .arg(action)
            .env("NAME", "web")
            .env("DAEMON", &program)
            .env("DAEMONIC", BIN)
            .env("LOG_DIR", sandbox.path("log"))
            .env("DAEMONIC_RUNDIR", sandbox.path("run"));
        for (key, value) in extra {
            command.env(key, value);
        }
        run(&mut command)
    };
    let expect = |action: &str, want: i32| {
        let output = init(action, &[]);
        assert_eq!(code(&output), want, "{action}: {}", stderr(&output));
    };

    expect("status", 3);
    expect("stop", 0);
    expect("try-restart", 0);
    // try-restart has returned: had it started the service, status would say so now, and the
    // program's line would already be in the FIFO.
    expect("status", 3);
    assert!(
        fifo.try_line(Duration::from_millis(1)).is_none(),
        "try-restart started it"
    );
    expect("start", 0);
    let first = started(&mut fifo);
    expect("status", 0);
    expect("start", 0);
    expect("reload", 0);
    assert_eq!(fifo.line(WAIT), format!("reload {first}"));
    expect("force-reload", 0);
    assert_eq!(fifo.line(WAIT), format!("reload {first}"));
    expect("restart", 0);
    let second = started(&mut fifo);
    assert_ne!(first, second);
    wait_gone(first);
    expect("try-restart", 0);
    let third = started(&mut fifo);
    assert_ne!(second, third);
    expect("stop", 0);
    wait_gone(third);
    expect("status", 3);
    expect("restart", 0);
    let fourth = started(&mut fifo);

    // Dead, not stopped: the program was killed and nothing restarts it.
    expect("stop", 0);
    wait_gone(fourth);
    let once = [("START_OPTS", "--restart no")];
    let output = init("start", &once);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let fifth = started(&mut fifo);
    let keeper = stat(fifth).ppid;
    kill(fifth, libc::SIGKILL);
    wait_gone(keeper);
    expect("status", 1);
    // The log the script asked for has the keeper's lines.
    let log = std::fs::read_to_string(sandbox.path("log").join("current")).unwrap();
    assert!(log.contains("started"), "{log}");

    expect("bogus", 2);
    let missing = sandbox.path("not-installed");
    let output = init("start", &[("DAEMON", missing.to_str().unwrap())]);
    assert_eq!(code(&output), 5, "{}", stderr(&output));
}

#[test]
fn the_runit_run_script_keeps_the_program_under_runsv() {
    let Some(runsv) = ["/usr/bin/runsv", "/usr/sbin/runsv", "/sbin/runsv"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("skipped: runsv is not installed (apt-get install runit)");
        return;
    };
    let sv = Path::new(runsv).with_file_name("sv");
    let sandbox = Sandbox::new();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = service(&sandbox, &fifo);
    let dir = sandbox.path("service");
    std::fs::create_dir(&dir).unwrap();
    // runsv gives ./run no arguments and its own environment: the settings go in the script.
    let run_script = std::fs::read_to_string(contrib("runit/run")).unwrap();
    let run_script = run_script.replacen(
        "exec 2>&1\n",
        &format!(
            "exec 2>&1\nDAEMONIC={BIN}\nDAEMON={program}\nLOG_DIR={}\n",
            sandbox.path("log").display()
        ),
        1,
    );
    std::fs::write(dir.join("run"), run_script).unwrap();
    std::fs::set_permissions(
        dir.join("run"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // runsv's command line carries the sandbox's path, so the sandbox's guard ends it too.
    let mut supervisor = Command::new(runsv).arg(&dir).spawn().unwrap();
    let first = started(&mut fifo);
    let keeper = stat(first).ppid;
    assert_eq!(
        stat(keeper).ppid,
        supervisor.id(),
        "runsv -> daemonic run -> program"
    );
    // `sv down`: TERM to daemonic run, which stops the program's whole group, then leaves.
    let down = run(Command::new(&sv).arg("down").arg(&dir));
    assert_eq!(code(&down), 0, "{}", stderr(&down));
    wait_gone(first);
    wait_gone(keeper);
    let log = std::fs::read_to_string(sandbox.path("log").join("current")).unwrap();
    assert!(log.contains("stopped"), "{log}");
    let exit = run(Command::new(&sv).arg("exit").arg(&dir));
    assert_eq!(code(&exit), 0, "{}", stderr(&exit));
    let status = supervisor.wait().unwrap();
    assert!(status.success(), "runsv: {status}");
}

#[test]
fn the_systemd_unit_verifies() {
    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    let sandbox = Sandbox::new();
    let unit = std::fs::read_to_string(contrib("systemd/example.service"))
        .unwrap()
        .replace("/usr/local/bin/daemonic", BIN)
        .replace("/usr/sbin/example", "/bin/sleep 300")
        .replace(
            "/var/log/example",
            &sandbox.path("log").display().to_string(),
        );
    let path = sandbox.path("example.service");
    std::fs::write(&path, unit).unwrap();
    let output = run(Command::new(analyze).arg("verify").arg(&path));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    // It warns about (and ignores) a bad setting with status 0: no warning at all.
    assert_eq!(stderr(&output), "", "systemd-analyze warned");
}

#[test]
fn the_shell_recipes_parse() {
    for recipe in ["sysvinit/example", "runit/run", "openrc/example"] {
        let output = run(Command::new("sh").arg("-n").arg(contrib(recipe)));
        assert_eq!(code(&output), 0, "{recipe}: {}", stderr(&output));
    }
    let dockerfile = std::fs::read_to_string(contrib("docker/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/daemonic", "run""#),
        "the Dockerfile's entrypoint is daemonic run"
    );
}
