//! Man pages: `daemonic(1)` and one `daemonic-SUBCOMMAND(1)` per subcommand, generated from the
//! clap definition (name, synopsis, description, every option, the examples in each `after_help`)
//! so that they never drift from the command, plus what clap does not know: exit status, files,
//! environment and related pages, kept here per subcommand.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use super::{Cli, Failure, show};

/// Where `daemonic man --install` writes without a DIR.
pub const DEFAULT_DIR: &str = "/usr/local/share/man/man1";

/// Print a man page, or install them all.
///
/// Without --install, prints daemonic(1), or daemonic-SUBCOMMAND(1) for SUBCOMMAND, as roff on
/// stdout (`daemonic man start | man -l -`). With --install, writes daemonic.1 and one
/// daemonic-SUBCOMMAND.1 per subcommand into DIR and prints each file written.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  daemonic man --install                   (then: man daemonic-start)
  daemonic man --install ~/.local/share/man/man1
  daemonic man stop | man -l -")]
pub struct ManArgs {
    /// The subcommand whose page to print [default: the overview, daemonic(1)].
    #[arg(value_name = "SUBCOMMAND", conflicts_with = "install",
          add = ArgValueCandidates::new(subcommand_candidates))]
    page: Option<String>,
    /// Write every page into DIR (a section directory, such as .../man/man1; created if
    /// missing) and print the files written.
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = DEFAULT_DIR,
          value_hint = clap::ValueHint::DirPath)]
    install: Option<PathBuf>,
}

/// `daemonic man`.
pub fn run(args: &ManArgs) -> Result<u8, Failure> {
    if let Some(dir) = &args.install {
        for path in install(dir)? {
            show!("{}", path.display());
        }
        return Ok(0);
    }
    let cli = command();
    let text = match &args.page {
        None => overview(&cli),
        Some(name) => match cli.find_subcommand(name) {
            Some(sub) => page(&cli, sub),
            None => {
                return Err(Failure::new(
                    2,
                    format!(
                        "no page for {name:?}; one of: {}",
                        subcommands(&cli)
                            .map(|s| s.get_name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        },
    }
    .map_err(|e| Failure::io("man page".into(), &e))?;
    let mut out = io::stdout();
    out.write_all(&text)
        .and_then(|()| out.flush())
        .map_err(|e| Failure::io("stdout".into(), &e))?;
    Ok(0)
}

/// Writes every page into `dir` (creating it); returns the files written.
fn install(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::io(format!("man directory {}", dir.display()), &e))?;
    let mut written = Vec::new();
    for (file, text) in pages().map_err(|e| Failure::io("man page".into(), &e))? {
        let path = dir.join(file);
        std::fs::write(&path, text)
            .map_err(|e| Failure::io(format!("man page {}", path.display()), &e))?;
        written.push(path);
    }
    Ok(written)
}

/// Every page: its file name and its roff.
pub fn pages() -> io::Result<Vec<(String, Vec<u8>)>> {
    let cli = command();
    let mut pages = vec![("daemonic.1".to_string(), overview(&cli)?)];
    for sub in subcommands(&cli) {
        pages.push((format!("daemonic-{}.1", sub.get_name()), page(&cli, sub)?));
    }
    Ok(pages)
}

/// The command as the pages describe it: built (so subcommands know their full names), without
/// clap's `help` subcommand.
fn command() -> clap::Command {
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    cli
}

fn subcommands(cli: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cli.get_subcommands().filter(|s| !s.is_hide_set())
}

fn subcommand_candidates() -> Vec<CompletionCandidate> {
    let cli = command();
    subcommands(&cli)
        .map(|s| CompletionCandidate::new(s.get_name()).help(s.get_about().cloned()))
        .collect()
}

const MANUAL: &str = "daemonic manual";

fn man(cmd: &clap::Command) -> Man {
    Man::new(cmd.clone())
}

/// Appends what clap_mangen rendered, without the preamble each of its renderings repeats.
fn append(
    out: &mut Vec<u8>,
    render: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let mut part = Vec::new();
    render(&mut part)?;
    let preamble = Roff::new().render();
    let part = part.strip_prefix(preamble.as_bytes()).unwrap_or(&part);
    out.extend_from_slice(part);
    Ok(())
}

/// The synopsis line of a subcommand, from its definition: `daemonic stop [OPTIONS]
/// (-n NAME | -p PATH)`, then its positional arguments (`-- PROGRAM [ARG]...` for the last).
fn synopsis(roff: &mut Roff, cmd: &clap::Command) {
    let bin = cmd.get_bin_name().unwrap_or_else(|| cmd.get_name());
    let mut line = vec![bold(bin), roman(" ["), italic("OPTIONS"), roman("]")];
    let arg = |id: &str| cmd.get_arguments().find(|a| a.get_id() == id);
    if let (Some(name), Some(pidfile)) = (arg("name"), arg("pidfile")) {
        let value = |a: &clap::Arg| {
            a.get_value_names()
                .and_then(|v| v.first())
                .map_or_else(|| a.get_id().to_string().to_uppercase(), |v| v.to_string())
        };
        let (open, close) = if target_required(cmd) {
            (" (", ")")
        } else {
            (" [", "]")
        };
        line.extend([
            roman(open),
            bold("-n"),
            roman(" "),
            italic(value(name)),
            roman(" | "),
            bold("-p"),
            roman(" "),
            italic(value(pidfile)),
            roman(close),
        ]);
    }
    for positional in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        let value = positional
            .get_value_names()
            .map(|v| v.join(" "))
            .unwrap_or_else(|| positional.get_id().to_string().to_uppercase());
        let many = positional
            .get_num_args()
            .is_some_and(|n| n.max_values() > 1)
            && !value.ends_with("...");
        let value = if many { format!("{value}...") } else { value };
        line.push(roman(" "));
        if positional.is_last_set() {
            line.extend([bold("--"), roman(" ")]);
        }
        if positional.is_required_set() {
            line.push(italic(value));
        } else {
            line.extend([roman("["), italic(value), roman("]")]);
        }
    }
    roff.text(line);
}

/// Whether the command needs `-n` or `-p`: clap has no getter for `required_unless_present`,
/// so ask its parser what an empty command line misses.
fn target_required(cmd: &clap::Command) -> bool {
    use clap::error::{ContextKind, ContextValue};
    let Err(err) = cmd.clone().try_get_matches_from([cmd.get_name()]) else {
        return false;
    };
    matches!(
        err.get(ContextKind::InvalidArg),
        Some(ContextValue::Strings(missing)) if missing.iter().any(|m| m.starts_with("--name"))
    )
}

/// The `.TH` line (clap_mangen's leaves the date argument out when it is empty, so the source
/// and manual take the wrong places), then text set ragged-right and not hyphenated: the pages
/// are full of names (daemonic-start, --ready-timeout) that read badly split.
fn title(out: &mut Vec<u8>, title: &str) {
    out.extend_from_slice(Roff::new().render().as_bytes());
    out.extend_from_slice(
        format!(
            ".TH {title} 1 \"\" \"daemonic {}\" \"{MANUAL}\"\n.ad l\n.nh\n",
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    );
}

/// daemonic-SUBCOMMAND(1).
fn page(cli: &clap::Command, sub: &clap::Command) -> io::Result<Vec<u8>> {
    let name = sub.get_name();
    let man = man(sub);
    let facts = facts(name).unwrap_or(Facts {
        exit: &[SUCCESS, GENERIC, INVALID],
        topics: &[],
        see_also: &[],
    });
    let mut out = Vec::new();
    title(&mut out, &format!("daemonic-{name}"));
    append(&mut out, |w| man.render_name_section(w))?;

    let mut roff = Roff::new();
    roff.control("SH", ["SYNOPSIS"]);
    synopsis(&mut roff, sub);
    append(&mut out, |w| roff.to_writer(w))?;

    append(&mut out, |w| man.render_description_section(w))?;
    let aliases: Vec<&str> = sub.get_visible_aliases().collect();
    if !aliases.is_empty() {
        let mut roff = Roff::new();
        roff.control("PP", []);
        roff.text([roman(format!(
            "Also called {}.",
            aliases
                .iter()
                .map(|a| format!("daemonic {a}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))]);
        append(&mut out, |w| roff.to_writer(w))?;
    }
    append(&mut out, |w| man.render_options_section(w))?;

    let (examples, notes) = after_help(sub);
    let mut roff = Roff::new();
    exit_status(&mut roff, facts.exit);
    let files: Vec<_> = facts
        .topics
        .iter()
        .flat_map(|t| t.files())
        .copied()
        .collect();
    entries(&mut roff, "FILES", &files);
    let environment: Vec<_> = facts
        .topics
        .iter()
        .flat_map(|t| t.environment())
        .copied()
        .collect();
    entries(&mut roff, "ENVIRONMENT", &environment);
    preformatted(&mut roff, "EXAMPLES", &examples);
    preformatted(&mut roff, "NOTES", &notes);
    let mut related = vec![("daemonic".to_string(), "1")];
    related.extend(
        subcommands(cli)
            .filter(|s| s.get_name() != name)
            .map(|s| (format!("daemonic-{}", s.get_name()), "1")),
    );
    related.extend(facts.see_also.iter().map(|(p, s)| (p.to_string(), *s)));
    related.extend(PEERS.iter().map(|(p, s)| (p.to_string(), *s)));
    see_also(&mut roff, &related);
    append(&mut out, |w| roff.to_writer(w))?;
    Ok(out)
}

/// daemonic(1): the overview.
fn overview(cli: &clap::Command) -> io::Result<Vec<u8>> {
    let man = man(cli);
    let mut out = Vec::new();
    title(&mut out, "daemonic");
    append(&mut out, |w| man.render_name_section(w))?;

    let mut roff = Roff::new();
    roff.control("SH", ["SYNOPSIS"]);
    for (i, sub) in subcommands(cli).enumerate() {
        if i > 0 {
            roff.control("br", []);
        }
        synopsis(&mut roff, sub);
    }
    append(&mut out, |w| roff.to_writer(w))?;

    append(&mut out, |w| man.render_description_section(w))?;
    let mut roff = Roff::new();
    for paragraph in OVERVIEW {
        roff.control("PP", []);
        roff.text([roman(*paragraph)]);
    }
    append(&mut out, |w| roff.to_writer(w))?;
    append(&mut out, |w| man.render_options_section(w))?;
    append(&mut out, |w| man.render_subcommands_section(w))?;

    let mut roff = Roff::new();
    exit_status(&mut roff, OVERVIEW_EXIT);
    let topics = [Topic::Service, Topic::Logs];
    let files: Vec<_> = topics.iter().flat_map(|t| t.files()).copied().collect();
    entries(&mut roff, "FILES", &files);
    let environment: Vec<_> = [
        Topic::Service,
        Topic::Logs,
        Topic::Notify,
        Topic::Completion,
    ]
    .iter()
    .flat_map(|t| t.environment())
    .copied()
    .collect();
    entries(&mut roff, "ENVIRONMENT", &environment);
    preformatted(
        &mut roff,
        "EXAMPLES",
        &[
            "daemonic start -n web -u www-data --log /var/log/web -- /usr/sbin/web --port 8080",
            "daemonic status -n web",
            "daemonic signal -n web HUP",
            "daemonic log -n web -f",
            "daemonic stop -n web",
            "daemonic man --install && man daemonic-start",
            "echo 'source <(daemonic completions bash)' >> ~/.bashrc",
        ]
        .map(String::from),
    );
    let mut related: Vec<(String, &str)> = subcommands(cli)
        .map(|s| (format!("daemonic-{}", s.get_name()), "1"))
        .collect();
    related.extend(PEERS.iter().map(|(p, s)| (p.to_string(), *s)));
    related.push(("sd_notify".into(), "3"));
    see_also(&mut roff, &related);
    append(&mut out, |w| roff.to_writer(w))?;
    Ok(out)
}

/// A subcommand's `after_help`, split into its examples (the lines under `Examples:`) and the
/// rest (other blocks, headings kept). A block on the exit status is left out: EXIT STATUS has
/// it.
fn after_help(sub: &clap::Command) -> (Vec<String>, Vec<String>) {
    let text = sub
        .get_after_long_help()
        .or_else(|| sub.get_after_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    let mut examples = Vec::new();
    let mut notes = Vec::new();
    let mut block = Block::Notes;
    for line in text.lines() {
        let heading = !line.starts_with(' ') && line.trim_end().ends_with(':');
        if heading {
            block = if line.starts_with("Examples") {
                Block::Examples
            } else if line.starts_with("Exit status") {
                Block::Skipped
            } else {
                Block::Notes
            };
            if block == Block::Notes {
                if !notes.is_empty() {
                    notes.push(String::new());
                }
                notes.push(line.to_string());
            }
            continue;
        }
        match block {
            Block::Examples if !line.trim().is_empty() => examples.push(line.trim().to_string()),
            Block::Notes => notes.push(line.to_string()),
            _ => {}
        }
    }
    while notes.last().is_some_and(|l| l.trim().is_empty()) {
        notes.pop();
    }
    (examples, notes)
}

#[derive(PartialEq)]
enum Block {
    Examples,
    Notes,
    Skipped,
}

fn exit_status(roff: &mut Roff, codes: &[(&str, &str)]) {
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in codes {
        roff.control("TP", []);
        roff.text([bold(*code)]);
        roff.text([roman(*meaning)]);
    }
}

fn entries(roff: &mut Roff, heading: &str, entries: &[(&str, &str)]) {
    if entries.is_empty() {
        return;
    }
    roff.control("SH", [heading]);
    for (what, meaning) in entries {
        roff.control("TP", []);
        roff.text([italic(*what)]);
        roff.text([roman(*meaning)]);
    }
}

/// Lines shown as they are (no filling), indented.
fn preformatted(roff: &mut Roff, heading: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    roff.control("SH", [heading]);
    roff.control("RS", ["4"]);
    roff.control("nf", []);
    for line in lines {
        roff.text([roman(line.as_str())]);
    }
    roff.control("fi", []);
    roff.control("RE", []);
}

/// SEE ALSO: daemonic's own pages as given, then the others by section and name.
fn see_also(roff: &mut Roff, pages: &[(String, &str)]) {
    let (mut pages, mut others): (Vec<_>, Vec<_>) = pages
        .iter()
        .partition(|(page, _)| page.starts_with("daemonic"));
    others.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    others.dedup();
    pages.extend(others);
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, (page, section)) in pages.iter().enumerate() {
        let end = if i + 1 == pages.len() { "" } else { ", " };
        line.push(bold(page.as_str()));
        line.push(roman(format!("({section}){end}")));
    }
    roff.text(line);
}

// ---- What clap does not know: per subcommand ----

/// Pages every page refers to: what daemonic does the work of.
const PEERS: &[(&str, &str)] = &[
    ("start-stop-daemon", "8"),
    ("runsv", "8"),
    ("s6-supervise", "8"),
    ("daemon", "7"),
];

const OVERVIEW: &[&str] = &[
    "A service started with daemonic start runs under a keeper: a small daemonic process that \
     is the daemon (daemon(7)'s procedure: fork, setsid, fork, signals reset, descriptors closed, \
     privileges dropped), holds the pidfile's lock, runs the program as its child, restarts it by \
     policy, stops all of it (its process group and every descendant) and publishes its state in \
     a status record beside the pidfile. daemonic run is the same keeper in the foreground, for \
     containers, runit and s6 run scripts and systemd.",
    "A service is named with -n NAME (its pidfile is RUNDIR/NAME.pid) or given by -p PIDFILE. \
     status and list read the status record without asking anyone; stop, restart, signal and \
     reopen talk to the keeper through its control socket.",
    "Each subcommand has a page of its own, listed below; daemonic man --install writes them \
     all.",
];

const OVERVIEW_EXIT: &[(&str, &str)] = &[
    (
        "start, stop, restart, signal, list, reopen",
        "LSB init-script codes: 0 success (starting a running daemon and stopping a stopped one \
         are successes), 1 generic error (not ready in time, still running after the stop \
         schedule), 2 invalid arguments (unknown user or group, missing directory, bad value), \
         4 insufficient privilege, 5 program not installed (missing or not executable), 7 not \
         running (signal, restart, reopen).",
    ),
    (
        "status",
        "0 running (starting, running, ready, stopping), 1 dead: not running but should be \
         (between restarts after a failure, exited with a failure, gave up, keeper killed), 3 not \
         running (stopped, exited with status 0, never started), 4 unknown (the pidfile or its \
         record cannot be read).",
    ),
    (
        "run",
        "The program's exit status (128+N when signal N ended it).",
    ),
    (
        "notify, log, logger, completions, man",
        "0 success, 1 error, 2 invalid arguments, 4 insufficient privilege; log also 3 when a \
         service has no known log. Each subcommand's page lists its codes.",
    ),
    (
        "start, when interrupted",
        "128+N: the launcher received signal N (INT, TERM or HUP) before the program was ready, \
         and stopped what it had started.",
    ),
];

const SUCCESS: (&str, &str) = ("0", "Success.");
const GENERIC: (&str, &str) = ("1", "A generic error (the message on stderr names it).");
const INVALID: (&str, &str) = ("2", "Invalid arguments (the message names the argument).");
/// What start and run check before anything forks.
const INVALID_SERVICE: (&str, &str) = (
    "2",
    "Invalid arguments: a bad value, an unknown user or group, a missing directory, an invalid \
     name.",
);
const PRIVILEGE: (&str, &str) = ("4", "Insufficient privilege.");
const NOT_INSTALLED: (&str, &str) = (
    "5",
    "The program is not installed (missing or not executable).",
);
const NOT_RUNNING: (&str, &str) = ("7", "The service is not running.");
/// Under `--exit-codes ssd` (start, stop, restart, signal).
const SSD: (&str, &str) = (
    "--exit-codes ssd",
    "start-stop-daemon's codes instead: 0 done, 1 nothing was done (already running, not \
     running), 2 still running after the stop schedule, 3 any other error. Usage errors too are 3.",
);

struct Facts {
    exit: &'static [(&'static str, &'static str)],
    topics: &'static [Topic],
    see_also: &'static [(&'static str, &'static str)],
}

/// What the page of `subcommand` says beyond its clap definition (`None` for a subcommand this
/// table has not caught up with: a test fails).
fn facts(subcommand: &str) -> Option<Facts> {
    use Topic::*;
    let (exit, topics, see_also): (&[_], &[_], &[_]) = match subcommand {
        "start" => (
            &[
                (
                    "0",
                    "The service is up: executed, or ready (--notify, --ready-fd, \
                     --ready-after); or it was already running (said on stderr).",
                ),
                (
                    "1",
                    "A generic error, including: the program exited or failed before it was \
                     ready, or was not ready within --ready-timeout (it is stopped; nothing is \
                     left behind).",
                ),
                INVALID_SERVICE,
                PRIVILEGE,
                NOT_INSTALLED,
                (
                    "128+N",
                    "Interrupted by signal N (INT, TERM or HUP) while waiting: what was started \
                     is stopped.",
                ),
                SSD,
            ],
            &[Service, Logs, Notify],
            &[("sd_notify", "3"), ("signal", "7")],
        ),
        "run" => (
            &[
                (
                    "N",
                    "The program's exit status when it ended for good (by --restart), 128+N \
                     when signal N ended it; 0 when there is no program left to report.",
                ),
                GENERIC,
                INVALID_SERVICE,
                PRIVILEGE,
                NOT_INSTALLED,
            ],
            &[Service, Logs, Notify],
            &[("sd_notify", "3"), ("systemd.service", "5")],
        ),
        "stop" => (
            &[
                (
                    "0",
                    "Stopped, or it was not running (a stale pidfile is removed; said on \
                     stderr).",
                ),
                (
                    "1",
                    "A generic error, including: still running after the whole schedule.",
                ),
                INVALID,
                PRIVILEGE,
                SSD,
            ],
            &[Service],
            &[("signal", "7")],
        ),
        "restart" => (
            &[
                (
                    "0",
                    "Restarted: the new program is up (ready, if it speaks a readiness \
                     protocol).",
                ),
                (
                    "1",
                    "A generic error, including: the new program is not up within \
                     --ready-timeout.",
                ),
                INVALID,
                PRIVILEGE,
                NOT_INSTALLED,
                (
                    "7",
                    "The service is not running (start it with daemonic start: restart replays \
                     nothing from files).",
                ),
                SSD,
            ],
            &[Service],
            &[],
        ),
        "status" => (
            &[
                ("0", "Running: starting, running, ready or stopping."),
                (
                    "1",
                    "Dead: not running but should be (between restarts after a failure, exited \
                     with a failure, gave up, its keeper was killed), or a daemon without a \
                     keeper died leaving its pidfile.",
                ),
                INVALID,
                (
                    "3",
                    "Not running: never started, stopped, or exited with status 0.",
                ),
                ("4", "Unknown: the pidfile or its record cannot be read."),
            ],
            &[Service],
            &[],
        ),
        "signal" => (
            &[
                ("0", "Sent."),
                GENERIC,
                INVALID,
                PRIVILEGE,
                NOT_RUNNING,
                SSD,
            ],
            &[Service],
            &[("kill", "1"), ("signal", "7")],
        ),
        "list" => (
            &[
                (
                    "0",
                    "Listed (whatever the services' states; an absent run directory lists \
                     nothing).",
                ),
                ("1", "The run directory cannot be read."),
                INVALID,
                ("4", "The run directory may not be read by this user."),
            ],
            &[Service],
            &[],
        ),
        "notify" => (
            &[
                ("0", "Sent, and read by the receiver."),
                (
                    "1",
                    "NOTIFY_SOCKET is not set (not started with --notify), or the message could \
                     not be sent.",
                ),
                INVALID,
                PRIVILEGE,
            ],
            &[Notify],
            &[("sd_notify", "3")],
        ),
        "reopen" => (
            &[
                (
                    "0",
                    "The keeper rotated its log, or reopened its output file.",
                ),
                GENERIC,
                INVALID,
                PRIVILEGE,
                NOT_RUNNING,
            ],
            &[Service, Logs],
            &[("logrotate", "8")],
        ),
        "log" => (
            &[
                (
                    "0",
                    "Printed (with -f: until interrupted, or until stdout is closed).",
                ),
                ("1", "The log cannot be read."),
                (
                    "2",
                    "Invalid arguments, or the service is not logged (started without --log).",
                ),
                (
                    "3",
                    "The service has no keeper record, so no known log (give --dir).",
                ),
                PRIVILEGE,
            ],
            &[Service, Logs],
            &[("tail", "1")],
        ),
        "logger" => (
            &[
                (
                    "0",
                    "End of input: every line written, the last one ended (lines dropped on a \
                     full disk are counted on stderr).",
                ),
                ("1", "The log directory cannot be opened or written."),
                INVALID,
                PRIVILEGE,
            ],
            &[Logs],
            &[("s6-log", "8"), ("svlogd", "8"), ("multilog", "8")],
        ),
        "completions" => (
            &[SUCCESS, ("1", "stdout cannot be written."), INVALID],
            &[Completion],
            &[("bash", "1"), ("zsh", "1"), ("fish", "1")],
        ),
        "man" => (
            &[
                SUCCESS,
                ("1", "A page cannot be written."),
                ("2", "Invalid arguments (no such subcommand)."),
                ("4", "The directory may not be written by this user."),
            ],
            &[Pages],
            &[("man", "1"), ("manpath", "1")],
        ),
        _ => return None,
    };
    Some(Facts {
        exit,
        topics,
        see_also,
    })
}

/// A group of files and variables, shared by the pages it concerns.
#[derive(Clone, Copy)]
enum Topic {
    /// Named services: the run directory, the pidfile and what lies beside it.
    Service,
    /// Log directories.
    Logs,
    /// sd_notify.
    Notify,
    /// Completion scripts.
    Completion,
    /// Man pages.
    Pages,
}

impl Topic {
    fn files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Topic::Service => &[
                (
                    "/run/daemonic",
                    "The run directory for root (mode 0755): a named daemon's pidfile is \
                     RUNDIR/NAME.pid.",
                ),
                (
                    "$XDG_RUNTIME_DIR/daemonic",
                    "The run directory for other users (mode 0700).",
                ),
                (
                    "/tmp/daemonic-UID",
                    "The run directory for a user without XDG_RUNTIME_DIR (under $TMPDIR if \
                     set); refused if another user owns it or it is a symlink.",
                ),
                (
                    "RUNDIR/NAME.pid",
                    "The pidfile: the program's pid (empty between runs). The keeper holds its \
                     lock (flock) for the service's life.",
                ),
                (
                    "PIDFILE.status",
                    "The keeper's status record beside the pidfile (state, pids, restarts, last \
                     exit, readiness, STATUS= text), rewritten at every transition and kept \
                     after the keeper leaves; status and list read it.",
                ),
                (
                    "PIDFILE.sock",
                    "The keeper's control socket (mode 0600; root and the keeper's user), for \
                     stop, restart, signal and reopen.",
                ),
            ],
            Topic::Logs => &[
                (
                    "DIR/current",
                    "The log being written (--log DIR, or daemonic logger DIR), one stamped \
                     line per line of output.",
                ),
                (
                    "DIR/@YYYYMMDDTHHMMSS.ffffffZ.s",
                    "An archive, named by the UTC time of its rotation (so names sort by time); \
                     .u while it waits for --log-processor.",
                ),
            ],
            Topic::Notify => &[(
                "$NOTIFY_SOCKET",
                "The sd_notify datagram socket: a path, or @NAME for an abstract socket (the \
                 kind daemonic --notify gives its program: nothing on disk).",
            )],
            Topic::Completion => &[
                (
                    "~/.bashrc, ~/.zshrc",
                    "Where a line such as source <(daemonic completions bash) registers them \
                     anew at each shell start.",
                ),
                (
                    "/usr/share/bash-completion/completions/daemonic",
                    "bash-completion's directory, for a system-wide script.",
                ),
                (
                    "~/.config/fish/completions/daemonic.fish",
                    "fish's completions of one user.",
                ),
            ],
            Topic::Pages => &[(
                "/usr/local/share/man/man1",
                "Where daemonic man --install writes daemonic.1 and daemonic-SUBCOMMAND.1 \
                 without a DIR.",
            )],
        }
    }

    fn environment(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Topic::Service => &[
                (
                    "DAEMONIC_RUNDIR",
                    "The run directory, as --rundir (which wins).",
                ),
                (
                    "XDG_RUNTIME_DIR",
                    "The default run directory's parent, for users other than root.",
                ),
                (
                    "TMPDIR",
                    "Where the run directory goes without XDG_RUNTIME_DIR.",
                ),
            ],
            Topic::Logs => &[(
                "TZ",
                "The time zone of --log-stamp local (the keeper keeps it).",
            )],
            Topic::Notify => &[(
                "NOTIFY_SOCKET",
                "The sd_notify socket. With --notify, the program is given one of daemonic's \
                 and is heard on it; under a service manager that set one, daemonic run passes \
                 READY=1, STATUS= and STOPPING=1 on to it (with MAINPID); daemonic notify \
                 sends to it.",
            )],
            Topic::Completion => &[(
                "DAEMONIC_COMPLETE",
                "Set by the completion scripts to the shell's name: daemonic then prints \
                 candidates for the command line that follows -- instead of running it. Unset, \
                 empty or 0: an ordinary run.",
            )],
            Topic::Pages => &[(
                "MANPATH",
                "Where man(1) looks; DIR must be a man1 directory under one of its entries.",
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_has_its_exit_status_files_and_environment() {
        let cli = command();
        for sub in subcommands(&cli) {
            let facts = facts(sub.get_name());
            assert!(
                facts.is_some_and(|f| !f.exit.is_empty()),
                "{}",
                sub.get_name()
            );
        }
    }

    #[test]
    fn each_page_names_every_long_option_of_its_subcommand() {
        let cli = command();
        for sub in subcommands(&cli) {
            let text = String::from_utf8(page(&cli, sub).unwrap()).unwrap();
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    let roff = format!("\\-\\-{}", long.replace('-', "\\-"));
                    assert!(
                        text.contains(&roff),
                        "daemonic-{}: no {roff}",
                        sub.get_name()
                    );
                }
            }
        }
    }

    #[test]
    fn examples_come_from_after_help() {
        let cli = command();
        let (examples, notes) = after_help(cli.find_subcommand("status").unwrap());
        assert!(
            examples.iter().any(|e| e == "daemonic status -n web"),
            "{examples:?}"
        );
        assert!(
            !notes.iter().any(|n| n.starts_with("Exit status")),
            "{notes:?}"
        );
        assert!(notes.iter().any(|n| n.starts_with("--json")), "{notes:?}");
    }
}
