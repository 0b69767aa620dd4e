//! The command as a shell user meets it: its man pages (installed, complete, well-formed roff)
//! and its completions (asked the way the shells' registration scripts ask).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// The subcommands `daemonic --help` lists.
fn subcommands() -> Vec<String> {
    let help = run(Command::new(BIN).arg("--help"));
    let text = String::from_utf8_lossy(&help.stdout).into_owned();
    text.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A description wrapped onto more lines is indented further.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect()
}

/// The long options `daemonic SUB --help` lists (the lines that start with an option).
fn long_options(subcommand: &str) -> Vec<String> {
    let help = run(Command::new(BIN).args([subcommand, "--help"]));
    let text = String::from_utf8_lossy(&help.stdout).into_owned();
    let mut longs: Vec<String> = text
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            l.split([' ', ',', '=', '['])
                .find(|w| w.starts_with("--") && w.len() > 2)
                .map(String::from)
        })
        .collect();
    longs.dedup();
    longs
}

/// The roff for `--long-option`: dashes escaped.
fn roff_option(long: &str) -> String {
    long.replace('-', "\\-")
}

#[test]
fn man_install_writes_a_complete_page_per_subcommand() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path("share/man/man1");
    let output = run(Command::new(BIN).args(["man", "--install"]).arg(&dir));
    assert_eq!(code(&output), 0, "{}", stderr(&output));

    let subcommands = subcommands();
    assert!(subcommands.len() >= 13, "{subcommands:?}");
    let mut expected: Vec<String> = subcommands
        .iter()
        .map(|s| format!("daemonic-{s}.1"))
        .collect();
    expected.push("daemonic.1".into());
    expected.sort();
    let mut written: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, expected);
    // What it wrote, one path a line.
    let listed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(listed.lines().count(), expected.len(), "{listed}");
    assert!(listed.contains(&dir.join("daemonic-stop.1").display().to_string()));

    let sections = [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH DESCRIPTION",
        ".SH OPTIONS",
        ".SH \"EXIT STATUS\"",
        ".SH FILES",
        ".SH ENVIRONMENT",
        ".SH EXAMPLES",
        ".SH \"SEE ALSO\"",
    ];
    for sub in &subcommands {
        let page = std::fs::read_to_string(dir.join(format!("daemonic-{sub}.1"))).unwrap();
        assert!(page.contains(&format!(".TH daemonic-{sub} 1 ")), "{sub}");
        for section in sections {
            assert!(page.contains(section), "daemonic-{sub}.1 has no {section}");
        }
        let options = long_options(sub);
        assert!(
            options.contains(&"--help".to_string()),
            "{sub}: {options:?}"
        );
        for long in options {
            assert!(
                page.contains(&format!("\\fB{}\\fR", roff_option(&long))),
                "daemonic-{sub}.1 does not document {long}"
            );
        }
        assert!(page.contains("\\fBdaemonic\\fR(1)"), "{sub}: SEE ALSO");
        assert!(
            page.contains("\\fBstart\\-stop\\-daemon\\fR(8)"),
            "{sub}: SEE ALSO"
        );
    }
    let overview = std::fs::read_to_string(dir.join("daemonic.1")).unwrap();
    for section in sections {
        assert!(overview.contains(section), "daemonic.1 has no {section}");
    }
    for sub in &subcommands {
        // Listed, and the page it names exists.
        assert!(overview.contains(&format!("daemonic\\-{sub}(1)")), "{sub}");
    }
    for word in [
        "DAEMONIC_RUNDIR",
        "NOTIFY_SOCKET",
        "/run/daemonic",
        "PIDFILE.status",
    ] {
        assert!(
            overview.contains(word),
            "daemonic.1 does not mention {word}"
        );
    }
    // Per subcommand: stop's codes, not status's.
    let status = std::fs::read_to_string(dir.join("daemonic-status.1")).unwrap();
    assert!(
        status.contains("\\fB3\\fR"),
        "status documents exit status 3"
    );
    let start = std::fs::read_to_string(dir.join("daemonic-start.1")).unwrap();
    assert!(start.contains("\\fB5\\fR") && !start.contains("\\fB3\\fR"));
    assert!(
        start.contains("daemonic start \\-n api \\-\\-notify"),
        "examples from --help"
    );
}

#[test]
fn man_pages_are_well_formed_roff() {
    if Command::new("man").arg("--version").output().is_err() {
        println!("skipped: no man(1) to format the pages");
        return;
    }
    let sandbox = Sandbox::new();
    let dir = sandbox.path("man1");
    let output = run(Command::new(BIN).args(["man", "--install"]).arg(&dir));
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let formatted = run(Command::new("man")
            .arg("--warnings=w")
            .arg("-l")
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("MAN_DISABLE_SECCOMP", "1"));
        assert_eq!(
            code(&formatted),
            0,
            "{}: {}",
            path.display(),
            stderr(&formatted)
        );
        assert_eq!(stderr(&formatted), "", "{}: groff warnings", path.display());
        let text = String::from_utf8_lossy(&formatted.stdout).into_owned();
        assert!(
            text.contains("EXIT STATUS") && text.contains("SEE ALSO"),
            "{text}"
        );
    }
}

#[test]
fn man_prints_one_page_and_refuses_an_unknown_one() {
    let page = run(Command::new(BIN).args(["man", "signal"]));
    assert_eq!(code(&page), 0, "{}", stderr(&page));
    let text = String::from_utf8_lossy(&page.stdout).into_owned();
    assert!(text.contains(".TH daemonic-signal 1"), "{text}");
    assert!(text.contains("\\fB\\-\\-group\\fR"), "{text}");
    let alias = run(Command::new(BIN).args(["man", "rotate"]));
    assert!(String::from_utf8_lossy(&alias.stdout).contains(".TH daemonic-reopen 1"));

    let unknown = run(Command::new(BIN).args(["man", "frobnicate"]));
    assert_eq!(code(&unknown), 2);
    let message = stderr(&unknown);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains("frobnicate") && message.contains("start"),
        "{message}"
    );

    let sandbox = Sandbox::new();
    let file = sandbox.path("file");
    std::fs::write(&file, "").unwrap();
    let blocked = run(Command::new(BIN)
        .args(["man", "--install"])
        .arg(file.join("man1")));
    assert_ne!(code(&blocked), 0);
    assert_eq!(stderr(&blocked).lines().count(), 1, "{}", stderr(&blocked));
}

// ---- completions ----

/// Asks for the candidates of the last word of `words` (after `daemonic`), as bash's
/// registration does: the words after `--`, the cursor's index in `_CLAP_COMPLETE_INDEX`.
fn complete(words: &[&str], env: &[(&str, &Path)]) -> Vec<String> {
    let mut command = Command::new(BIN);
    command
        .env("DAEMONIC_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", words.len().to_string())
        .env("_CLAP_IFS", "\n")
        .env_remove("DAEMONIC_RUNDIR")
        .args(["--", "daemonic"])
        .args(words);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = run(&mut command);
    assert_eq!(code(&output), 0, "{words:?}: {}", stderr(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn signals_complete_by_name() {
    let stop = complete(&["stop", "-n", "web", "-s", ""], &[]);
    assert!(
        stop.contains(&"TERM".into()) && stop.contains(&"HUP".into()),
        "{stop:?}"
    );
    let signal = complete(&["signal", "-n", "web", "US"], &[]);
    assert_eq!(signal, ["USR1", "USR2"]);
    let sig = complete(&["signal", "-n", "web", "SIGTE"], &[]);
    assert_eq!(sig, ["SIGTERM"]);
    let schedule = complete(&["stop", "-n", "web", "--retry", "INT/20/K"], &[]);
    assert_eq!(schedule, ["INT/20/KILL"]);
}

#[test]
fn users_and_groups_complete_from_the_system_databases() {
    let users = complete(&["start", "-n", "web", "-u", "roo"], &[]);
    assert!(users.contains(&"root".into()), "{users:?}");
    let groups = complete(&["start", "-n", "web", "--group", "roo"], &[]);
    assert!(groups.contains(&"root".into()), "{groups:?}");
    let user_group = complete(&["run", "--user", "root:roo"], &[]);
    assert!(user_group.contains(&"root:root".into()), "{user_group:?}");
}

#[test]
fn names_complete_from_the_run_directory() {
    let sandbox = Sandbox::new();
    let rundir = sandbox.path("run");
    std::fs::create_dir(&rundir).unwrap();
    std::fs::write(rundir.join("web.pid"), "").unwrap();
    std::fs::write(rundir.join("worker.pid.status"), "").unwrap();
    std::fs::write(rundir.join("notes.txt"), "").unwrap();
    let rundir_arg = rundir.display().to_string();

    let named = complete(&["stop", "--rundir", &rundir_arg, "-n", ""], &[]);
    assert_eq!(named, ["web", "worker"]);
    let equals = complete(
        &["status", &format!("--rundir={rundir_arg}"), "-n", "wo"],
        &[],
    );
    assert_eq!(equals, ["worker"]);
    let from_env = complete(&["signal", "--name", "w"], &[("DAEMONIC_RUNDIR", &rundir)]);
    assert_eq!(from_env, ["web", "worker"]);
    let other = sandbox.path("elsewhere");
    let none = complete(&["log", "-n", ""], &[("DAEMONIC_RUNDIR", &other)]);
    assert!(!none.iter().any(|n| n == "web"), "{none:?}");
}

#[test]
fn directories_and_commands_complete_from_the_file_system() {
    let sandbox = Sandbox::new();
    std::fs::create_dir(sandbox.path("state")).unwrap();
    std::fs::write(sandbox.path("stuff"), "").unwrap();
    let prefix = format!("{}/st", sandbox.tag());
    let dirs = complete(&["start", "-n", "web", "--chdir", &prefix], &[]);
    assert!(
        dirs.contains(&format!("{}/state/", sandbox.tag())),
        "{dirs:?}"
    );
    assert!(!dirs.iter().any(|d| d.ends_with("/stuff")), "{dirs:?}");

    // The program: commands on PATH; its arguments: paths.
    let bin = sandbox.path("bin");
    std::fs::create_dir(&bin).unwrap();
    let tool = bin.join("daemonic-test-tool");
    std::fs::write(&tool, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(bin.join("daemonic-test-data"), "").unwrap();
    let commands = complete(
        &["start", "-n", "web", "--", "daemonic-test-"],
        &[("PATH", &bin)],
    );
    assert_eq!(commands, ["daemonic-test-tool"]);
    let argument = complete(
        &["run", "--", "daemonic-test-tool", &prefix],
        &[("PATH", &bin)],
    );
    assert!(
        argument.contains(&format!("{}/stuff", sandbox.tag())),
        "{argument:?}"
    );
}

#[test]
fn completion_requests_fail_in_one_line_and_empty_means_off() {
    let output = run(Command::new(BIN)
        .env("DAEMONIC_COMPLETE", "tcsh")
        .args(["--", "daemonic", ""]));
    assert_eq!(code(&output), 1);
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    assert!(stderr(&output).contains("tcsh"));
    // Off: an ordinary run.
    let version = run(Command::new(BIN)
        .env("DAEMONIC_COMPLETE", "0")
        .arg("--version"));
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("daemonic "));
}

/// bash sources the script `daemonic completions bash` prints and calls its function as it
/// would at a TAB.
#[test]
fn bash_completes_through_the_registration_script() {
    if Command::new("bash").arg("--version").output().is_err() {
        println!("skipped: no bash");
        return;
    }
    let sandbox = Sandbox::new();
    let rundir = sandbox.path("run");
    std::fs::create_dir(&rundir).unwrap();
    std::fs::write(rundir.join("nightly.pid"), "").unwrap();
    let script = sandbox.path("daemonic.bash");
    let registration = run(Command::new(BIN).args(["completions", "bash"]));
    assert_eq!(code(&registration), 0, "{}", stderr(&registration));
    std::fs::write(&script, &registration.stdout).unwrap();
    let tab = |line: &str| -> Vec<String> {
        let program = format!(
            r#"source {script}
COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; COMP_TYPE=9
read -ra COMP_WORDS <<< "$COMP_LINE"
[[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
complete -p daemonic >/dev/null || exit 3
_clap_complete_daemonic daemonic "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
            script = script.display()
        );
        let output = run(Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &program])
            .env(
                "PATH",
                format!(
                    "{}:/usr/bin:/bin",
                    Path::new(BIN).parent().unwrap().display()
                ),
            )
            .env("DAEMONIC_RUNDIR", &rundir));
        assert_eq!(code(&output), 0, "{line}: {}", stderr(&output));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    assert_eq!(tab("daemonic signal -n nightly WI"), ["WINCH"]);
    assert_eq!(tab("daemonic stop -n "), ["nightly"]);
    assert!(tab("daemonic start -u ro").contains(&"root".into()));
    assert!(tab("daemonic sta").contains(&"status".into()));
}
