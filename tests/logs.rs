//! Logs: what the keeper captures from the program's output, and `daemonic logger`, `log`,
//! `reopen`. Checked line by line: nothing lost, nothing twice, every line whole.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const WAIT: Duration = Duration::from_secs(20);

/// Every line of a log directory, archives first, the stamp (up to the first space) removed;
/// every file must end at a line boundary.
fn log_lines(dir: &Path) -> Vec<String> {
    read_lines(dir, true)
}

/// The same while the keeper may be writing: an unfinished last line (a write in progress, or a
/// write a full disk cut short, about to be cut back to the line boundary) is left out.
fn log_lines_now(dir: &Path) -> Vec<String> {
    read_lines(dir, false)
}

fn read_lines(dir: &Path, strict: bool) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.starts_with('@') || n == "current")
        .collect();
    names.sort_by_key(|n| (n == "current", n.clone()));
    let mut lines = Vec::new();
    for name in names {
        let text = String::from_utf8_lossy(&std::fs::read(dir.join(&name)).unwrap()).into_owned();
        let whole = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        assert!(!strict || whole.len() == text.len(), "{name} ends mid-line");
        for line in whole.lines() {
            lines.push(
                line.split_once(' ')
                    .map_or(line, |(_, rest)| rest)
                    .to_string(),
            );
        }
    }
    lines
}

#[test]
fn restarts_lose_no_line_of_the_program_or_its_grandchild() {
    let sandbox = Sandbox::new();
    let logdir = sandbox.path("log");
    let counter = sandbox.path("counter");
    let mut fifo = Fifo::new(sandbox.path("events"));
    // Each run: a grandchild prints a numbered line, then the program prints one (and a last
    // line without a newline) and exits 1; the 40th run stays up.
    let program = script(
        &sandbox,
        "numbered.sh",
        &format!(
            "n=$(( $(cat {c} 2>/dev/null || echo 0) + 1 ))\necho $n > {c}\n( (echo \"grandchild $n\") & wait )\necho \"main $n\"\nprintf \"unended $n\"\nif [ $n -ge 40 ]; then echo done > {f}; exec \"$SLEEP\" 300; fi\nexit 1",
            c = counter.display(),
            f = fifo.path.display()
        ),
    );
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "d",
        "--log",
        logdir.to_str().unwrap(),
        "--restart",
        "always",
        "--stable-after",
        "0",
        "--",
        &program,
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(fifo.line(WAIT), "done");
    let stop = run(daemonic(&sandbox).args(["stop", "-n", "d"]));
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));
    let lines = log_lines(&logdir);
    for n in 1..=40 {
        for want in [
            format!("grandchild {n}"),
            format!("main {n}"),
            format!("unended {n}"),
        ] {
            let count = lines.iter().filter(|l| **l == want).count();
            assert_eq!(count, 1, "{want:?} appears {count} times in {lines:#?}");
        }
    }
    // The keeper's own events are there too.
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("daemonic: started (pid "))
            .count(),
        40
    );
    assert_eq!(
        lines
            .iter()
            .filter(
                |l| *l == "daemonic: exited with status 1 after running 0.000s"
                    || l.starts_with("daemonic: exited with status 1 after running")
            )
            .count(),
        39
    );
    assert_eq!(lines.last().map(String::as_str), Some("daemonic: stopped"));
}

#[test]
fn a_one_mebibyte_line_is_split_into_marked_pieces_and_kept_whole() {
    let sandbox = Sandbox::new();
    let logdir = sandbox.path("log");
    let mut child = ChildGuard(
        daemonic(&sandbox)
            .args(["logger", logdir.to_str().unwrap()])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    {
        let mut stdin = child.0.stdin.take().unwrap();
        let mut line = vec![b'x'; 1 << 20];
        line.push(b'\n');
        stdin.write_all(&line).unwrap();
        stdin.write_all(b"after\n").unwrap();
    }
    assert!(child.0.wait().unwrap().success());
    let text = std::fs::read_to_string(logdir.join("current")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 65, "64 pieces of 16 KiB and the next line");
    let mut joined = String::new();
    for (i, line) in lines[..64].iter().enumerate() {
        // `2026-…Z xxx` for the first piece, `2026-…Z+xxx` for the others.
        let (stamp, piece) = line.split_at(27);
        assert!(stamp.ends_with('Z'), "{stamp}");
        let marker = if i == 0 { ' ' } else { '+' };
        assert!(piece.starts_with(marker), "piece {i}");
        assert_eq!(piece.len() - 1, 16 << 10);
        joined.push_str(&piece[1..]);
    }
    assert_eq!(joined.len(), 1 << 20);
    assert!(joined.bytes().all(|b| b == b'x'));
    assert!(lines[64].ends_with("Z after"));
}

#[test]
fn log_follow_goes_on_across_rotations() {
    let sandbox = Sandbox::new();
    let logdir = sandbox.path("log");
    let mut logger = ChildGuard(
        daemonic(&sandbox)
            .args([
                "logger",
                "--log-size",
                "300",
                "--log-keep",
                "100",
                logdir.to_str().unwrap(),
            ])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut input = logger.0.stdin.take().unwrap();
    input.write_all(b"line 0000\n").unwrap();
    eventually("the logger wrote its first line", || {
        std::fs::read_to_string(logdir.join("current")).is_ok_and(|t| t.contains("line 0000"))
    });
    let mut follower = ChildGuard(
        daemonic(&sandbox)
            .args(["log", "--dir", logdir.to_str().unwrap(), "-f"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = follower.0.stdout.take().unwrap();
    for i in 1..200 {
        writeln!(input, "line {i:04}").unwrap();
    }
    drop(input);
    assert!(logger.0.wait().unwrap().success());
    // Read until the last line arrives.
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + WAIT;
    while !seen.contains("line 0199") {
        assert!(
            Instant::now() < deadline,
            "the follower stopped at {seen:?}"
        );
        use std::io::Read;
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            let status = follower.0.wait().unwrap();
            let mut err = String::new();
            follower
                .0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the follower ended ({status}): {err} after {seen:?}");
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let archives = std::fs::read_dir(&logdir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('@'))
        .count();
    assert!(archives >= 5, "rotated {archives} times");
    let got: Vec<&str> = seen.lines().map(|l| l.split_once(' ').unwrap().1).collect();
    let want: Vec<String> = (0..200).map(|i| format!("line {i:04}")).collect();
    assert_eq!(got, want, "every line once, in order, across rotations");
}

/// `log -f` across rotations when a processor replaces each archive by a new file (a new
/// inode): the follower still finds where it was, by name.
#[test]
fn log_follow_goes_on_across_processed_rotations() {
    let sandbox = Sandbox::new();
    let logdir = sandbox.path("log");
    let go = sandbox.path("go");
    let made = std::process::Command::new("mkfifo")
        .arg(&go)
        .status()
        .unwrap();
    assert!(made.success());
    let program = script(
        &sandbox,
        "lines.sh",
        &format!(
            "echo 'line 0000'\nread x < {}\ni=1; while [ $i -lt 200 ]; do printf 'line %04d\\n' $i; i=$((i+1)); done\nexec \"$SLEEP\" 300",
            go.display()
        ),
    );
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "p",
        "--log",
        logdir.to_str().unwrap(),
        "--log-size",
        "300",
        "--log-keep",
        "100",
        "--log-processor",
        "cat",
        "--",
        &program,
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    eventually("the first line", || {
        std::fs::read_to_string(logdir.join("current")).is_ok_and(|t| t.contains("line 0000"))
    });
    let mut follower = ChildGuard(
        daemonic(&sandbox)
            .args(["log", "--dir", logdir.to_str().unwrap(), "-f"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = follower.0.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    use std::io::Read;
    while !seen.contains("line 0000") {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "the follower ended");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // The follower is held still while the lines come, the logs rotate and every archive is
    // replaced by its processed copy: the file it holds is gone when it looks again.
    kill(follower.id(), libc::SIGSTOP);
    std::fs::write(&go, "go\n").unwrap();
    eventually("every line logged and every archive processed", || {
        let names: Vec<String> = std::fs::read_dir(&logdir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('@'))
            .collect();
        names.len() >= 5
            && names.iter().all(|n| n.ends_with(".s"))
            && log_lines_now(&logdir).iter().any(|l| l == "line 0199")
    });
    kill(follower.id(), libc::SIGCONT);
    let deadline = Instant::now() + WAIT;
    while !seen.contains("line 0199") {
        assert!(
            Instant::now() < deadline,
            "the follower stopped at {seen:?}"
        );
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "the follower ended after {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let got: Vec<&str> = seen
        .lines()
        .map(|l| l.split_once(' ').unwrap().1)
        .filter(|l| l.starts_with("line "))
        .collect();
    let want: Vec<String> = (0..200).map(|i| format!("line {i:04}")).collect();
    assert_eq!(
        got, want,
        "every line once, in order, across processed rotations: {seen}"
    );
}

#[test]
fn logrotate_postrotate_reopen_moves_output_to_the_new_file_and_loses_nothing() {
    let sandbox = Sandbox::new();
    let file = sandbox.path("app.log");
    let input = Fifo::new(sandbox.path("input"));
    let program = script(
        &sandbox,
        "echoer.sh",
        &format!(
            "exec 3< {}\nwhile read line <&3; do echo \"$line\"; done",
            input.path.display()
        ),
    );
    // A relative path: the file the keeper reopens is the one named from here, not from `/`.
    let output = run(daemonic(&sandbox)
        .current_dir(sandbox.path(""))
        .args(["start", "-n", "d", "-o", "app.log", "--", &program]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let feed = |range: std::ops::Range<u32>| {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&input.path)
            .unwrap();
        for i in range {
            writeln!(w, "{i}").unwrap();
        }
    };
    feed(1..101);
    eventually("lines 1-100 written", || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.ends_with("100\n"))
    });
    // logrotate: rename, then postrotate.
    let rotated = sandbox.path("app.log.1");
    std::fs::rename(&file, &rotated).unwrap();
    let reopen = run(daemonic(&sandbox).args(["reopen", "-n", "d"]));
    assert_eq!(code(&reopen), 0, "{}", stderr(&reopen));
    feed(101..201);
    eventually("lines 101-200 written", || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.ends_with("200\n"))
    });
    let old: Vec<u32> = std::fs::read_to_string(&rotated)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let new: Vec<u32> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(
        old,
        (1..101).collect::<Vec<_>>(),
        "nothing more went to the renamed file"
    );
    assert_eq!(new, (101..201).collect::<Vec<_>>(), "nothing lost");
}

#[test]
fn output_files_are_appended_to_by_default_and_truncated_on_request() {
    let sandbox = Sandbox::new();
    let file = sandbox.path("out.log");
    std::fs::write(&file, "kept\n").unwrap();
    let program = script(&sandbox, "hello.sh", "echo hello; exec \"$SLEEP\" 300");
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "a",
        "-o",
        file.to_str().unwrap(),
        "--",
        &program,
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    eventually("hello appended", || {
        std::fs::read_to_string(&file).is_ok_and(|t| t == "kept\nhello\n")
    });
    run(daemonic(&sandbox).args(["stop", "-n", "a"]));
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "t",
        "--truncate",
        "-o",
        file.to_str().unwrap(),
        "--",
        &program,
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    eventually("truncated, then hello", || {
        std::fs::read_to_string(&file).is_ok_and(|t| t == "hello\n")
    });
}

/// Root only: a symlink another user planted at an output path is refused; its target is left
/// exactly as it was.
#[test]
fn a_planted_symlink_at_an_output_path_leaves_its_target_intact() {
    if !is_root() {
        eprintln!("skipped: needs root to plant a link as another user");
        return;
    }
    let sandbox = Sandbox::new();
    let target = sandbox.path("precious");
    std::fs::write(&target, "precious\n").unwrap();
    for (flag, truncate) in [("-o", false), ("--stderr", true)] {
        let link = sandbox.path(&format!("out{flag}.log"));
        std::os::unix::fs::symlink(&target, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
        let mut command = daemonic(&sandbox);
        command.args(["start", "-n", "d", flag, link.to_str().unwrap()]);
        if truncate {
            command.arg("--truncate");
        }
        let output = run(command.args(["--", &sleeper(&sandbox), "300"]));
        assert_eq!(code(&output), 4, "{}", stderr(&output));
        assert!(
            stderr(&output).contains("symlink owned by uid 65534"),
            "{}",
            stderr(&output)
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    }
    assert_eq!(sandbox.processes(), Vec::<u32>::new());
}

/// Root only: a tmpfs of a few hundred KiB fills up; lines are dropped with an exact count, and
/// a line saying so appears once space returns. The count is in `status`.
#[test]
fn a_full_disk_drops_counted_lines_and_says_so_when_space_returns() {
    if !is_root() {
        eprintln!("skipped: needs root to mount a small tmpfs");
        return;
    }
    let sandbox = Sandbox::new();
    let Some(small) = Mounted::tmpfs(&sandbox, "small", "256k") else {
        return;
    };
    let mount = small.path.clone();
    // Leave about 40 KiB free.
    let filler = mount.join("filler");
    std::fs::write(&filler, vec![0u8; 216 << 10]).unwrap();
    let logdir = mount.join("log");
    let input = Fifo::new(sandbox.path("input"));
    let program = script(
        &sandbox,
        "burst.sh",
        &format!(
            "exec 3< {}\nwhile read n <&3; do i=0; while [ $i -lt $n ]; do i=$((i+1)); echo \"burst line $i of $n ........................................................................\"; done; done",
            input.path.display()
        ),
    );
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "d",
        "--log",
        logdir.to_str().unwrap(),
        "--",
        &program,
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let send = |n: u32| {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&input.path)
            .unwrap();
        writeln!(w, "{n}").unwrap();
    };
    // 1000 lines of about 100 bytes: more than the space left.
    send(1000);
    let dropped = || -> u64 {
        let out = run(daemonic(&sandbox).args(["status", "-n", "d", "--json"]));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["log_dropped"].as_u64().unwrap_or(0)
    };
    eventually("lines dropped", || dropped() > 0);
    let written = || {
        log_lines_now(&logdir)
            .iter()
            .filter(|l| l.starts_with("burst line"))
            .count() as u64
    };
    eventually("the burst accounted for", || written() + dropped() == 1000);
    let count = dropped();
    std::fs::remove_file(&filler).unwrap();
    send(1);
    eventually("the line after the drops", || {
        log_lines_now(&logdir)
            .iter()
            .any(|l| l.starts_with("burst line 1 of 1 "))
    });
    // Quiet now: every file must end at a line boundary.
    let stop = run(daemonic(&sandbox).args(["stop", "-n", "d"]));
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));
    let lines = log_lines(&logdir);
    // Each gap is noted once writing works again (a smaller batch may fit between failures:
    // then there are several gaps); the notes add up to the count `status` gives, and each is
    // followed by what was written after the gap.
    let notes: Vec<(usize, u64)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let rest = l.strip_prefix("daemonic: dropped ")?;
            Some((i, rest.split_whitespace().next()?.parse().ok()?))
        })
        .collect();
    assert!(!notes.is_empty(), "no note in {lines:#?}");
    assert_eq!(
        notes.iter().map(|(_, n)| n).sum::<u64>(),
        count,
        "{notes:?}"
    );
    for (at, _) in &notes {
        assert!(
            lines
                .get(at + 1)
                .is_some_and(|l| l.starts_with("burst line")),
            "{lines:#?}"
        );
    }
    let after_at = lines
        .iter()
        .position(|l| l.starts_with("burst line 1 of 1 "))
        .unwrap();
    assert!(notes.iter().all(|(at, _)| *at < after_at));
}

/// `--syslog`: each line (and the keeper's events) reaches the syslog socket as an RFC 3164
/// message tagged with the program's name and pid; with nobody listening, lines are counted as
/// dropped and the program never blocks.
#[test]
fn syslog_gets_every_line_tagged_and_a_missing_listener_costs_counted_drops() {
    let sandbox = Sandbox::new();
    let socket_path = sandbox.path("log.sock");
    let receiver = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    receiver.set_read_timeout(Some(WAIT)).unwrap();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = script(
        &sandbox,
        "speaker.sh",
        &format!(
            "echo \"start $$\" > {}\necho one\necho two >&2\nexec \"$SLEEP\" 300",
            fifo.path.display()
        ),
    );
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "d",
        "--syslog",
        "local3.warning",
        "--syslog-socket",
        socket_path.to_str().unwrap(),
        "--",
        &program,
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let pid = started(&mut fifo);
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while got.len() < 3 {
        let n = receiver.recv(&mut buf).expect("a syslog message");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    // <PRI> = local3 (19) * 8 + warning (4) = 156
    assert!(got.iter().all(|m| m.starts_with("<156>")), "{got:?}");
    assert!(
        got.iter().any(|m| m.contains(": daemonic: started (pid ")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|m| m.ends_with(&format!(" speaker.sh[{pid}]: one"))),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|m| m.ends_with(&format!(" speaker.sh[{pid}]: two"))),
        "{got:?}"
    );
    // Nobody listening: the program is not blocked, the lines are counted.
    drop(receiver);
    std::fs::remove_file(&socket_path).unwrap();
    let noisy = script(
        &sandbox,
        "noisy.sh",
        "i=0; while [ $i -lt 100 ]; do i=$((i+1)); echo line $i; done; exec \"$SLEEP\" 300",
    );
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "n",
        "--syslog",
        "--syslog-socket",
        socket_path.to_str().unwrap(),
        "--",
        &noisy,
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    eventually("100 lines counted as dropped", || {
        let out = run(daemonic(&sandbox).args(["status", "-n", "n", "--json"]));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["syslog_dropped"].as_u64().unwrap_or(0) >= 100
    });
}

/// `--log-processor`: each closed archive goes through the command (here gzip), outside the
/// keeper's loop; its output replaces the archive. A failing command keeps the archive as it was.
#[test]
fn a_processor_runs_on_each_closed_archive() {
    if Command::new("gzip").arg("--version").output().is_err() {
        eprintln!("skipped: needs gzip");
        return;
    }
    let sandbox = Sandbox::new();
    for (name, processor, compressed) in [("z", "gzip -c", true), ("f", "false", false)] {
        let logdir = sandbox.path(&format!("log-{name}"));
        let mut fifo = Fifo::new(sandbox.path(&format!("events-{name}")));
        let program = script(
            &sandbox,
            &format!("lines-{name}.sh"),
            &format!(
                "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo \"line $i\"; done\necho done > {}\nexec \"$SLEEP\" 300",
                fifo.path.display()
            ),
        );
        let output = run(daemonic(&sandbox).args([
            "start",
            "-n",
            name,
            "--log",
            logdir.to_str().unwrap(),
            "--log-size",
            "1000",
            "--log-keep",
            "1000",
            "--log-processor",
            processor,
            "--",
            &program,
        ]));
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        assert_eq!(fifo.line(WAIT), "done");
        let archives = || -> Vec<std::path::PathBuf> {
            let mut v: Vec<_> = std::fs::read_dir(&logdir)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('@'))
                .collect();
            v.sort();
            v
        };
        eventually("every archive processed", || {
            let a = archives();
            a.len() >= 5 && a.iter().all(|p| p.extension().is_some_and(|e| e == "s"))
        });
        let mut text = String::new();
        for archive in archives() {
            let bytes = std::fs::read(&archive).unwrap();
            assert_eq!(bytes.starts_with(&[0x1f, 0x8b]), compressed, "{archive:?}");
            let plain = if compressed {
                let out = Command::new("gzip")
                    .args(["-dc"])
                    .arg(&archive)
                    .output()
                    .unwrap();
                String::from_utf8(out.stdout).unwrap()
            } else {
                String::from_utf8(bytes).unwrap()
            };
            text.push_str(&plain);
        }
        text.push_str(&std::fs::read_to_string(logdir.join("current")).unwrap());
        let numbers: Vec<u32> = text
            .lines()
            .filter_map(|l| l.split_once(" line ").and_then(|(_, n)| n.parse().ok()))
            .collect();
        assert_eq!(
            numbers,
            (1..=300).collect::<Vec<_>>(),
            "every line once, in order"
        );
    }
}

/// `--log-stderr`: the streams apart, each in its own log, each whole across restarts.
#[test]
fn separate_streams_go_to_their_own_logs() {
    let sandbox = Sandbox::new();
    let (out, err) = (sandbox.path("out"), sandbox.path("err"));
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = script(
        &sandbox,
        "both.sh",
        &format!(
            "n=$(( $(cat {c} 2>/dev/null || echo 0) + 1 )); echo $n > {c}\necho \"to stdout $n\"\necho \"to stderr $n\" >&2\nif [ $n -ge 3 ]; then echo done > {f}; exec \"$SLEEP\" 300; fi\nexit 1",
            c = sandbox.path("count").display(),
            f = fifo.path.display()
        ),
    );
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "d",
        "--log",
        out.to_str().unwrap(),
        "--log-stderr",
        err.to_str().unwrap(),
        "--restart",
        "always",
        "--stable-after",
        "0",
        "--",
        &program,
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(fifo.line(WAIT), "done");
    eventually("the third stderr line", || {
        log_lines_now(&err).iter().any(|l| l == "to stderr 3")
    });
    let out_lines: Vec<String> = log_lines(&out)
        .into_iter()
        .filter(|l| l.starts_with("to "))
        .collect();
    let err_lines: Vec<String> = log_lines(&err)
        .into_iter()
        .filter(|l| l.starts_with("to "))
        .collect();
    assert_eq!(out_lines, ["to stdout 1", "to stdout 2", "to stdout 3"]);
    assert_eq!(err_lines, ["to stderr 1", "to stderr 2", "to stderr 3"]);
}

/// Root only: `--log-blocking` on a full disk: nothing is dropped; the program is held back
/// (its pipe fills) until space returns, then every line is there.
#[test]
fn blocking_mode_holds_the_program_back_and_loses_nothing() {
    if !is_root() {
        eprintln!("skipped: needs root to mount a small tmpfs");
        return;
    }
    let sandbox = Sandbox::new();
    let Some(small) = Mounted::tmpfs(&sandbox, "small", "256k") else {
        return;
    };
    let mount = small.path.clone();
    let filler = mount.join("filler");
    std::fs::write(&filler, vec![0u8; 216 << 10]).unwrap();
    let logdir = mount.join("log");
    let mut fifo = Fifo::new(sandbox.path("events"));
    // 20,000 lines of ~100 bytes: far more than the pipe and the disk hold together.
    let program = script(
        &sandbox,
        "burst.sh",
        &format!(
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); echo \"line $i ..........................................................................\"; done\necho finished > {}\nexec \"$SLEEP\" 300",
            fifo.path.display()
        ),
    );
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "d",
        "--log",
        logdir.to_str().unwrap(),
        "--log-blocking",
        "--log-size",
        "1M",
        "--",
        &program,
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    // Held back: it cannot finish while the disk is full.
    assert_eq!(
        fifo.try_line(Duration::from_millis(500)),
        None,
        "the program was not held back"
    );
    // Space returns (the 2 MB burst needs more than the 256 KiB disk: make it bigger).
    std::fs::remove_file(&filler).unwrap();
    let remounted = Command::new("mount")
        .args(["-o", "remount,size=8m"])
        .arg(&mount)
        .output()
        .unwrap();
    assert!(remounted.status.success());
    assert_eq!(fifo.line(WAIT), "finished");
    eventually("the last line", || {
        log_lines_now(&logdir)
            .iter()
            .any(|l| l.starts_with("line 20000 "))
    });
    let stop = run(daemonic(&sandbox).args(["stop", "-n", "d"]));
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));
    let numbers: Vec<u32> = log_lines(&logdir)
        .iter()
        .filter_map(|l| {
            l.strip_prefix("line ")
                .and_then(|r| r.split_whitespace().next()?.parse().ok())
        })
        .collect();
    assert_eq!(
        numbers,
        (1..=20000).collect::<Vec<_>>(),
        "every line once, in order, none dropped"
    );
}

/// Root only: `--log-blocking` with lines held for space when the program exits for good: the
/// keeper does not leave before they are written (it was asked never to drop one), and the
/// program's unfinished last line is ended after them.
#[test]
fn blocking_mode_writes_held_lines_before_the_keeper_leaves() {
    if !is_root() {
        eprintln!("skipped: needs root to mount a small tmpfs");
        return;
    }
    let sandbox = Sandbox::new();
    let Some(small) = Mounted::tmpfs(&sandbox, "small", "64k") else {
        return;
    };
    let mount = small.path.clone();
    let logdir = mount.join("log");
    std::fs::create_dir(&logdir).unwrap();
    let filler = mount.join("filler");
    // Full: the write fails with ENOSPC once the disk is.
    let _ = std::fs::write(&filler, vec![0u8; 64 << 10]);
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = script(
        &sandbox,
        "once.sh",
        &format!(
            "i=0; while [ $i -lt 100 ]; do i=$((i+1)); echo \"line $i\"; done\nprintf 'unfinished'\necho wrote > {}\n",
            fifo.path.display()
        ),
    );
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "d",
        "--log",
        logdir.to_str().unwrap(),
        "--log-blocking",
        "--",
        &program,
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(fifo.line(WAIT), "wrote");
    // The program exited 0 and is not restarted: the keeper holds on to its lines.
    eventually("the exit seen", || {
        let status = run(daemonic(&sandbox).args(["status", "-n", "d", "--json"]));
        String::from_utf8_lossy(&status.stdout).contains("\"state\": \"exited\"")
    });
    let status = run(daemonic(&sandbox).args(["status", "-n", "d", "--json"]));
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        !text.contains("\"keeper_pid\": null"),
        "the keeper left with lines unwritten: {text}"
    );
    assert!(
        log_lines_now(&logdir)
            .iter()
            .all(|l| !l.starts_with("line "))
    );
    std::fs::remove_file(&filler).unwrap();
    eventually("the keeper gone", || {
        let status = run(daemonic(&sandbox).args(["status", "-n", "d", "--json"]));
        String::from_utf8_lossy(&status.stdout).contains("\"keeper_pid\": null")
    });
    let lines = log_lines(&logdir);
    let numbers: Vec<u32> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("line ").and_then(|n| n.parse().ok()))
        .collect();
    assert_eq!(numbers, (1..=100).collect::<Vec<_>>(), "{lines:?}");
    assert!(lines.iter().any(|l| l == "unfinished"), "{lines:?}");
}

/// What a keeper that died mid-rotation left in its log directory is finished by the next one:
/// an archive it had not processed yet is processed, a processor's half-written output is
/// removed. `daemonic log` shows archives and `current` in order and leaves out what a
/// processor compressed (it would be noise on a terminal).
#[test]
fn a_new_keeper_finishes_what_a_dead_one_left_in_the_log_directory() {
    let sandbox = Sandbox::new();
    let logdir = sandbox.path("log");
    std::fs::create_dir(&logdir).unwrap();
    let unprocessed = logdir.join("@20260101T000000.000000Z.u");
    let half = logdir.join("@20260101T000001.000000Z.t");
    let compressed = logdir.join("@20250101T000000.000000Z.s");
    std::fs::write(&unprocessed, "left by the last keeper\n").unwrap();
    std::fs::write(&half, "half").unwrap();
    std::fs::write(&compressed, [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
    let mut fifo = Fifo::new(sandbox.path("events"));
    let program = script(
        &sandbox,
        "p.sh",
        &format!(
            "echo \"new line\"\necho done > {}\nexec \"$SLEEP\" 300",
            fifo.path.display()
        ),
    );
    let output = run(daemonic(&sandbox).args([
        "start",
        "-n",
        "left",
        "--log",
        logdir.to_str().unwrap(),
        "--log-stamp",
        "none",
        "--log-processor",
        "tr a-z A-Z",
        "--",
        &program,
    ]));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(fifo.line(WAIT), "done");
    let processed = logdir.join("@20260101T000000.000000Z.s");
    eventually("the left archive processed", || {
        processed.exists() && !unprocessed.exists()
    });
    assert!(!half.exists(), "a half-written output is removed");
    assert_eq!(
        std::fs::read_to_string(&processed).unwrap(),
        "LEFT BY THE LAST KEEPER\n"
    );
    eventually("the new line logged", || {
        std::fs::read_to_string(logdir.join("current")).is_ok_and(|t| t.contains("new line"))
    });
    let shown = run(daemonic(&sandbox).args(["log", "--dir", logdir.to_str().unwrap()]));
    assert_eq!(code(&shown), 0, "{}", stderr(&shown));
    let text = String::from_utf8(shown.stdout).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("daemonic"))
        .collect();
    assert_eq!(
        lines.first().copied(),
        Some("LEFT BY THE LAST KEEPER"),
        "{text:?}"
    );
    assert!(lines.contains(&"new line"), "{text:?}");
    assert!(
        !text.contains('\u{1f}'),
        "compressed archive left out: {text:?}"
    );
}

/// `daemonic log -f | head -1`: once its reader is gone the follower ends, even when nothing
/// more is logged (it would otherwise learn of it only at its next write).
#[test]
fn log_follow_ends_when_its_reader_goes() {
    let sandbox = Sandbox::new();
    let logdir = sandbox.path("log");
    std::fs::create_dir(&logdir).unwrap();
    std::fs::write(
        logdir.join("current"),
        "2026-01-01T00:00:00.000000Z hello\n",
    )
    .unwrap();
    let mut follower = ChildGuard(
        daemonic(&sandbox)
            .args(["log", "--dir", logdir.to_str().unwrap(), "-f"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = follower.0.stdout.take().unwrap();
    let mut buf = [0u8; 256];
    use std::io::Read;
    let n = out.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("hello"));
    drop(out);
    let status = follower.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
