//! `daemonic start` parsed without clap, for the shapes init scripts, recipes and benchmarks
//! use: the target, a few common options, `--` and the program.
//!
//! Why by hand: clap builds and checks the whole `start` definition (sixty options, their
//! defaults and conflicts) at every run. In a fresh process that costs about 150 us, most of it
//! page faults on code and heap touched once (26 us when warm), out of a start that should take
//! under a millisecond, as start-stop-daemon's does (CLOCK_MONOTONIC marks; `bench/keeper.sh`
//! measures the start). Here the line is only looked at: anything beyond these shapes (another
//! option, one given twice, `-pFILE` or `-p=FILE`, `--flag=value`, a value that is empty or
//! starts with `-`, an invalid one, help) returns `None`, and clap parses the whole line as
//! before, with its messages. The tests parse a corpus of lines both ways and require the same
//! result; `defaults` is compared with clap's field by field there.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use super::logs::{LogArgs, LogOptions};
use super::start::{ServiceArgs, StartArgs};
use super::{Cli, Command, ExitCodes, Reporting, Target};

/// `argv` (with the program name first) as clap would parse it, if it is `start` in a shape this
/// module knows; otherwise `None`.
pub fn parse(argv: &[OsString]) -> Option<Cli> {
    if argv.get(1).map(OsString::as_os_str) != Some(OsStr::new("start"))
        // clap reads it when --rundir is absent: let clap.
        || std::env::var_os("DAEMONIC_RUNDIR").is_some()
    {
        return None;
    }
    let separator = argv.iter().position(|a| a == "--")?;
    let command = argv[separator + 1..].to_vec();
    if command.is_empty() || separator < 2 {
        return None;
    }
    let mut args = defaults(command);
    let mut seen = Vec::new();
    let mut words = argv[2..separator].iter();
    while let Some(word) = words.next() {
        let word = word.to_str()?;
        let (name, value) = match word.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value)),
            _ => (word, None),
        };
        let option = option(name)?;
        if seen.contains(&option) {
            return None;
        }
        seen.push(option);
        if option.takes_value() {
            let value = match value {
                Some(value) => OsStr::new(value),
                None => words.next()?.as_os_str(),
            };
            if value.is_empty() || value.as_encoded_bytes()[0] == b'-' {
                return None;
            }
            set(&mut args, option, value)?;
        } else if value.is_some() {
            return None;
        } else {
            set(&mut args, option, OsStr::new(""))?;
        }
    }
    let target = &args.target;
    let conflicting = [(Opt::Name, Opt::Pidfile), (Opt::Quiet, Opt::Verbose)];
    if target.name.is_none() && target.pidfile.is_none()
        || conflicting
            .iter()
            .any(|(a, b)| seen.contains(a) && seen.contains(b))
    {
        return None;
    }
    Some(Cli {
        command: Command::Start(Box::new(args)),
    })
}

/// The options known here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Name,
    Pidfile,
    User,
    Group,
    Chdir,
    Output,
    Restart,
    Notify,
    Quiet,
    Verbose,
}

impl Opt {
    fn takes_value(self) -> bool {
        !matches!(self, Opt::Notify | Opt::Quiet | Opt::Verbose)
    }
}

/// The option a word names (`--long` or `-s`), if it is one of those known here.
fn option(word: &str) -> Option<Opt> {
    Some(match word {
        "-n" | "--name" => Opt::Name,
        "-p" | "--pidfile" => Opt::Pidfile,
        "-u" | "--user" => Opt::User,
        "-g" | "--group" => Opt::Group,
        "-d" | "--chdir" => Opt::Chdir,
        "-o" | "--output" => Opt::Output,
        "--restart" => Opt::Restart,
        "--notify" => Opt::Notify,
        "-q" | "--quiet" => Opt::Quiet,
        "-v" | "--verbose" => Opt::Verbose,
        _ => return None,
    })
}

/// Sets what `option` says; `None` for a value clap would refuse.
fn set(args: &mut StartArgs, option: Opt, value: &OsStr) -> Option<()> {
    let text = || value.to_str().map(str::to_owned);
    let service = &mut args.service;
    match option {
        Opt::Name => args.target.name = Some(text()?),
        Opt::Pidfile => args.target.pidfile = Some(PathBuf::from(value)),
        Opt::User => service.user = Some(text()?),
        Opt::Group => service.group = Some(text()?),
        Opt::Chdir => service.chdir = PathBuf::from(value),
        Opt::Output => service.output = Some(PathBuf::from(value)),
        Opt::Restart => service.restart = value.to_str()?.parse().ok()?,
        Opt::Notify => service.notify = true,
        Opt::Quiet => args.report.quiet = true,
        Opt::Verbose => args.report.verbose = true,
    }
    Some(())
}

/// `start`'s arguments when only the program is given: clap's defaults (a test compares them).
fn defaults(command: Vec<OsString>) -> StartArgs {
    StartArgs {
        target: Target {
            name: None,
            pidfile: None,
            rundir: None,
        },
        service: ServiceArgs {
            chdir: PathBuf::from("/"),
            umask: 0o022,
            user: None,
            group: None,
            chroot: None,
            stdout: None,
            stderr: None,
            output: None,
            append: false,
            truncate: false,
            log: LogArgs {
                log: None,
                syslog: None,
                log_stderr: None,
                log_processor: None,
                syslog_socket: None,
                options: LogOptions {
                    log_size: 10_000_000,
                    log_age: None,
                    log_keep: 10,
                    log_total: None,
                    log_stamp: daemonic::Stamp::Utc,
                    log_line_max: 16 << 10,
                    log_blocking: false,
                },
            },
            env: Vec::new(),
            clear_env: false,
            keep_fd: Vec::new(),
            no_core: false,
            env_file: Vec::new(),
            stdin: None,
            nice: None,
            ionice: None,
            sched: None,
            rlimit: Vec::new(),
            oom_score_adj: None,
            no_new_privs: false,
            caps: Vec::new(),
            notify: false,
            ready_fd: None,
            ready_after: None,
            ready_timeout: Duration::from_secs(60),
            restart: daemonic::Restart::No,
            stable_after: Duration::from_secs(10),
            restart_delay: Duration::from_secs(1),
            restart_max_delay: Duration::from_secs(60),
            give_up: None,
            forks: None,
            stop_schedule: daemonic::stop::Schedule::default(),
            argv0: None,
            command,
        },
        report: Reporting {
            quiet: false,
            verbose: false,
            test: false,
            exit_codes: ExitCodes::Lsb,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::FromArgMatches;

    /// What clap makes of the line (as `cli::parse` builds it for `start`), or `None` for an
    /// error.
    fn by_clap(argv: &[OsString]) -> Option<String> {
        let matches = crate::cli::start_only().try_get_matches_from(argv).ok()?;
        let cli = Cli::from_arg_matches(&matches).ok()?;
        Some(format!("{:?}", cli.command))
    }

    fn line(words: &[&str]) -> Vec<OsString> {
        std::iter::once("daemonic")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect()
    }

    /// Either the same as clap, or left to clap; `expect_quick` says which it must be.
    fn check(words: &[&str], expect_quick: Option<bool>) {
        let argv = line(words);
        let quick = parse(&argv).map(|cli| format!("{:?}", cli.command));
        let clap = by_clap(&argv);
        if let Some(quick) = &quick {
            assert_eq!(Some(quick), clap.as_ref(), "{words:?}");
        }
        if let Some(expected) = expect_quick {
            assert_eq!(quick.is_some(), expected, "{words:?} (clap: {clap:?})");
        }
    }

    #[test]
    fn the_defaults_are_clap_s() {
        check(
            &["start", "-p", "/run/x.pid", "--", "/bin/sleep", "1"],
            Some(true),
        );
        check(&["start", "-n", "web", "--", "sleep"], Some(true));
    }

    #[test]
    fn every_option_known_here_parses_as_clap_parses_it() {
        let options: &[(&str, &[&str])] = &[
            ("user", &["-u", "nobody"]),
            ("user", &["--user=nobody:nogroup"]),
            ("group", &["-g", "daemon"]),
            ("group", &["--group", "0"]),
            ("chdir", &["-d", "/tmp"]),
            ("chdir", &["--chdir=/var/lib"]),
            ("output", &["-o", "/tmp/out.log"]),
            ("output", &["--output", "relative.log"]),
            ("restart", &["--restart", "on-failure"]),
            ("restart", &["--restart=always"]),
            ("notify", &["--notify"]),
            ("quiet", &["-q"]),
            ("verbose", &["--verbose"]),
        ];
        for target in [&["-p", "/tmp/a.pid"][..], &["--name=a"], &["-n", "a"]] {
            for (first, first_words) in options {
                for (second, second_words) in options {
                    let mut words = vec!["start"];
                    words.extend_from_slice(target);
                    words.extend_from_slice(first_words);
                    words.extend_from_slice(second_words);
                    words.extend_from_slice(&["--", "prog", "--user", "-q"]);
                    // The same option twice, or -q with -v: clap's to refuse.
                    let refused = first == second
                        || matches!(
                            (*first, *second),
                            ("quiet", "verbose") | ("verbose", "quiet")
                        );
                    check(&words, Some(!refused));
                }
            }
        }
    }

    #[test]
    fn anything_else_is_left_to_clap() {
        let lines: &[&[&str]] = &[
            &["start", "--", "prog"],
            &["start", "-p", "a.pid", "--"],
            &["start", "-p", "a.pid", "prog"],
            &["start", "-n", "a", "-p", "a.pid", "--", "prog"],
            &["start", "-pa.pid", "--", "prog"],
            &["start", "-p=a.pid", "--", "prog"],
            &["start", "-p", "", "--", "prog"],
            &["start", "-p", "-x", "--", "prog"],
            &["start", "-p", "a.pid", "--notify=yes", "--", "prog"],
            &[
                "start",
                "-p",
                "a.pid",
                "--restart",
                "sometimes",
                "--",
                "prog",
            ],
            &["start", "-p", "a.pid", "-qv", "--", "prog"],
            &["start", "-p", "a.pid", "-q", "-v", "--", "prog"],
            &["start", "-p", "a.pid", "-u", "a", "-u", "b", "--", "prog"],
            &["start", "-p", "a.pid", "--help", "--", "prog"],
            &["start", "-p", "a.pid", "--umask", "077", "--", "prog"],
            &["start", "-p", "a.pid", "--user", "--", "prog"],
            &["start", "-p", "a.pid", "-u"],
            &["stop", "-p", "a.pid", "--", "prog"],
        ];
        for words in lines {
            check(words, Some(false));
        }
    }

    #[test]
    fn values_are_taken_as_they_are() {
        use std::os::unix::ffi::OsStrExt;
        // A pidfile and a program that are not UTF-8 pass through, as with clap.
        let mut argv = line(&["start", "-p"]);
        argv.push(OsStr::from_bytes(b"/tmp/\xff.pid").to_owned());
        argv.push("--".into());
        argv.push(OsStr::from_bytes(b"/bin/\xfe").to_owned());
        let quick = parse(&argv).map(|cli| format!("{:?}", cli.command));
        assert!(quick.is_some());
        assert_eq!(quick, by_clap(&argv));
        // A user name that is not UTF-8 is clap's error to report.
        let mut argv = line(&["start", "-p", "a.pid", "-u"]);
        argv.push(OsStr::from_bytes(b"\xff").to_owned());
        argv.extend(["--".into(), "prog".into()]);
        assert!(parse(&argv).is_none());
        // Options after `--` are the program's.
        check(
            &["start", "-p", "a.pid", "--", "prog", "--umask", "-n", "x"],
            Some(true),
        );
    }
}
