//! Shell completions, by clap_complete's dynamic engine: the shell code that
//! `daemonic completions SHELL` prints runs `DAEMONIC_COMPLETE=SHELL daemonic -- WORDS...` at each
//! TAB, and [`answer`] replies before anything else runs, with candidates read from the system
//! then: signal names, users and groups, directories, commands on `PATH`, and the daemons in the
//! run directory the command line (or `$DAEMONIC_RUNDIR`) names.
//!
//! The variable is `DAEMONIC_COMPLETE`, not clap's default `COMPLETE`: daemonic runs from init
//! scripts, units and containers, whose environment is inherited, and a `COMPLETE` set there for
//! another tool would turn `daemonic start ... -- PROGRAM` into a completion request that starts
//! nothing and exits 0.

use std::ffi::{CStr, OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_complete::engine::{
    ArgValueCompleter, CompletionCandidate, PathCompleter, ValueCompleter,
};

use super::{Cli, Failure, rundir, say};

/// The variable the registration scripts set to ask for candidates.
pub const VAR: &str = "DAEMONIC_COMPLETE";

/// Print the shell code that registers daemonic's completions.
///
/// Candidates are computed by daemonic itself at each TAB: signal names (`signal`, `stop -s`,
/// schedules), users and groups (`-u`, `-g`), directories (`-d`, `--chroot`, `--log`,
/// `--rundir`), commands on PATH (the program after `--`) and the names of the daemons in the
/// run directory (`-n`, from `--rundir`, `$DAEMONIC_RUNDIR` or the default). A script saved to a
/// file should be saved again after upgrading daemonic; `source <(...)` in a shell's start-up
/// file does so by itself.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples (installing):
  echo 'source <(daemonic completions bash)' >> ~/.bashrc
  daemonic completions bash > /usr/share/bash-completion/completions/daemonic
  echo 'source <(daemonic completions zsh)' >> ~/.zshrc
  daemonic completions fish > ~/.config/fish/completions/daemonic.fish
  echo 'eval (daemonic completions elvish | slurp)' >> ~/.config/elvish/rc.elv
  daemonic completions powershell | Out-String | Invoke-Expression      (in $PROFILE)")]
pub struct CompletionsArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

/// Answers a completion request, if this run is one, and returns its exit status. When
/// `DAEMONIC_COMPLETE` is unset (every ordinary run) this is one environment lookup.
pub fn answer() -> Option<u8> {
    std::env::var_os(VAR)?;
    if STATIC_GLIBC && std::env::var_os("HOME").is_none() {
        // Completing `~/` asks std's `home_dir`, which without HOME would ask getpwuid_r, and
        // a static glibc must not load NSS modules: the home getent knows, or `/`.
        let home = getent_home().unwrap_or_else(|| "/".into());
        // SAFETY: the completing process runs one thread, and nothing reads the environment
        // while it changes.
        unsafe { std::env::set_var("HOME", home) };
    }
    // Written straight to stdout: a shell that stopped reading ends it quietly.
    // SAFETY: SIG_DFL has no handler to run.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let current_dir = std::env::current_dir().ok();
    let done = clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(VAR)
        .try_complete(std::env::args_os(), current_dir.as_deref());
    match done {
        Ok(true) => Some(0),
        // `DAEMONIC_COMPLETE=` or `=0`: an ordinary run.
        Ok(false) => None,
        Err(err) => {
            let text = err.to_string();
            let line = text.lines().next().unwrap_or_default();
            say!(
                "daemonic: completion ({VAR}): {}",
                line.strip_prefix("error: ").unwrap_or(line)
            );
            Some(1)
        }
    }
}

/// `daemonic completions SHELL`: the registration script of the dynamic engine for SHELL.
pub fn registration(args: &CompletionsArgs) -> Result<u8, Failure> {
    let shell = args.shell.to_string();
    let shells = clap_complete::env::Shells::builtins();
    let Some(writer) = shells.completer(&shell) else {
        return Err(Failure::new(
            2,
            format!("no dynamic completions for {shell}"),
        ));
    };
    let mut script = Vec::new();
    writer
        .write_registration(VAR, "daemonic", "daemonic", &completer(), &mut script)
        .map_err(|e| Failure::io("completion script".into(), &e))?;
    use std::io::Write as _;
    let mut out = std::io::stdout();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .map_err(|e| Failure::io("stdout".into(), &e))?;
    Ok(0)
}

/// The command the script calls at each TAB: this one as it was invoked, made absolute when it
/// was given as a path (`./target/x86_64-unknown-linux-gnu/release/daemonic`), else its bare
/// name, looked up in `PATH` then (as clap's `CompleteEnv` does).
fn completer() -> String {
    let invoked = std::env::args_os()
        .next()
        .map_or_else(|| PathBuf::from("daemonic"), PathBuf::from);
    let invoked = if invoked.components().count() > 1 {
        std::env::current_dir()
            .map(|dir| dir.join(&invoked))
            .unwrap_or(invoked)
    } else {
        invoked
    };
    invoked.to_string_lossy().into_owned()
}

// ---- What the command line being completed holds ----

/// The words of the command line being completed before the one under the cursor, without the
/// program's name. The engine is called as `daemonic -- daemonic WORD...`; bash, zsh and elvish
/// pass the cursor's index in `_CLAP_COMPLETE_INDEX`, fish and PowerShell cut the line there.
fn words_before_cursor() -> Vec<OsString> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let Some(escape) = args.iter().position(|a| a == "--") else {
        return Vec::new();
    };
    let words = &args[escape + 1..];
    let index = std::env::var("_CLAP_COMPLETE_INDEX")
        .ok()
        .and_then(|i| i.parse::<usize>().ok())
        .unwrap_or(words.len().saturating_sub(1))
        .min(words.len());
    words.get(1..index).unwrap_or_default().to_vec()
}

/// The run directory the command line names (`--rundir DIR`, `--rundir=DIR`), else
/// `$DAEMONIC_RUNDIR`, else the default: where `-n NAME` would look.
fn run_directory(words: &[OsString]) -> PathBuf {
    let mut explicit: Option<PathBuf> = None;
    let mut words = words.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        }
        if word == "--rundir" {
            // bash splits `--rundir=DIR` at the `=` (COMP_WORDBREAKS): `--rundir`, `=`, `DIR`.
            explicit = match words.next() {
                Some(eq) if eq == "=" => words.next().map(PathBuf::from),
                next => next.map(PathBuf::from),
            };
        } else if let Some(dir) = word.to_str().and_then(|w| w.strip_prefix("--rundir=")) {
            explicit = Some(PathBuf::from(dir));
        }
    }
    let explicit = explicit.or_else(|| {
        std::env::var_os("DAEMONIC_RUNDIR")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
    });
    rundir::rundir(explicit.as_deref())
}

// ---- Completers, for `#[arg(add = ...)]` ----

/// `-n NAME`: the daemons the run directory knows (a pidfile or a status record).
pub fn daemon_names() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let Some(current) = current.to_str() else {
            return Vec::new();
        };
        let dir = run_directory(&words_before_cursor());
        rundir::names(&dir)
            .unwrap_or_default()
            .into_iter()
            .filter(|name| name.starts_with(current))
            .map(CompletionCandidate::new)
            .collect()
    })
}

/// A signal: its names as `daemonic signal` takes them (`TERM`; `SIGTERM` once `SIG` is typed;
/// lower case if typed so), with the number as help.
pub fn signals() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        current
            .to_str()
            .map(|current| signal_candidates("", current))
            .unwrap_or_default()
    })
}

/// A capability name (`--cap`), after any already typed and a comma.
pub fn capabilities() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let Some(current) = current.to_str() else {
            return Vec::new();
        };
        let (done, last) = current
            .rsplit_once(',')
            .map_or((String::new(), current), |(done, last)| {
                (format!("{done},"), last)
            });
        daemonic::Capabilities::known()
            .filter(|name| name.starts_with(&last.to_ascii_lowercase()))
            .map(|name| CompletionCandidate::new(format!("{done}{name}")))
            .collect()
    })
}

/// A stop schedule, `SIG/SECS/SIG/SECS...`: signal names where a signal goes.
pub fn schedules() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let Some(current) = current.to_str() else {
            return Vec::new();
        };
        let (done, last) = current
            .rsplit_once('/')
            .map_or(("", current), |(done, last)| (done, last));
        let position = if done.is_empty() && !current.contains('/') {
            0
        } else {
            done.split('/').count()
        };
        if position % 2 == 1 {
            return Vec::new(); // seconds
        }
        let prefix = if current.contains('/') {
            format!("{done}/")
        } else {
            String::new()
        };
        signal_candidates(&prefix, last)
    })
}

fn signal_candidates(prefix: &str, typed: &str) -> Vec<CompletionCandidate> {
    let upper = typed.to_ascii_uppercase();
    let lower = typed.starts_with(|c: char| c.is_ascii_lowercase());
    let with_sig = upper.starts_with("SIG");
    (1..65)
        .map(|signo| (signo, daemonic::signal_name(signo)))
        .filter(|(_, name)| !name.bytes().all(|b| b.is_ascii_digit()))
        .map(|(signo, name)| {
            let name = if with_sig { format!("SIG{name}") } else { name };
            (signo, name)
        })
        .filter(|(_, name)| name.starts_with(&upper))
        .map(|(signo, name)| {
            let name = if lower {
                name.to_ascii_lowercase()
            } else {
                name
            };
            CompletionCandidate::new(format!("{prefix}{name}"))
                .help(Some(format!("signal {signo}").into()))
        })
        .collect()
}

/// `-u USER[:GROUP]`: user names, then group names after the colon.
pub fn users() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let Some(current) = current.to_str() else {
            return Vec::new();
        };
        if let Some((user, group)) = current.split_once(':') {
            return matching(group_entries(), group, "gid")
                .map(|c| c.add_prefix(format!("{user}:")))
                .collect();
        }
        matching(user_entries(), current, "uid").collect()
    })
}

/// `-g GROUP`: group names.
pub fn groups() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        current
            .to_str()
            .map(|current| matching(group_entries(), current, "gid").collect())
            .unwrap_or_default()
    })
}

fn matching(
    entries: Vec<(String, u32)>,
    typed: &str,
    id: &'static str,
) -> impl Iterator<Item = CompletionCandidate> {
    let typed = typed.to_string();
    entries
        .into_iter()
        .filter(move |(name, _)| name.starts_with(&typed))
        .map(move |(name, number)| {
            CompletionCandidate::new(name).help(Some(format!("{id} {number}").into()))
        })
}

/// No more entries than this from a user or group database (a directory service that
/// enumerates a whole company would make TAB hang).
const MAX_ENTRIES: usize = 50_000;

/// The user database, by enumeration through NSS (as bash's `compgen -u`): /etc/passwd and
/// whatever else nsswitch.conf lists that enumerates.
///
/// References: getpwent(3).
fn user_entries() -> Vec<(String, u32)> {
    if STATIC_GLIBC {
        return getent_entries("passwd");
    }
    // SAFETY: an entry getpwent returned is valid until the next call, and read before it.
    enumerate(libc::setpwent, libc::endpwent, || unsafe {
        let entry = libc::getpwent();
        (!entry.is_null()).then(|| ((*entry).pw_name.cast_const(), (*entry).pw_uid))
    })
}

/// The group database, as [`user_entries`].
///
/// References: getgrent(3).
fn group_entries() -> Vec<(String, u32)> {
    if STATIC_GLIBC {
        return getent_entries("group");
    }
    // SAFETY: as in `user_entries`, for getgrent.
    enumerate(libc::setgrent, libc::endgrent, || unsafe {
        let entry = libc::getgrent();
        (!entry.is_null()).then(|| ((*entry).gr_name.cast_const(), (*entry).gr_gid))
    })
}

/// Walks a database from `open` to `close`: `next` gives each entry's name and id (None at
/// the end), at most [`MAX_ENTRIES`], sorted.
fn enumerate(
    open: unsafe extern "C" fn(),
    close: unsafe extern "C" fn(),
    mut next: impl FnMut() -> Option<(*const libc::c_char, u32)>,
) -> Vec<(String, u32)> {
    let mut entries = Vec::new();
    // SAFETY: the completing process is single-threaded, so nothing else uses the database's
    // static iterator; each name is copied before the next call overwrites it.
    unsafe {
        open();
        while entries.len() < MAX_ENTRIES {
            let Some((name, id)) = next() else {
                break;
            };
            if !name.is_null() {
                entries.push((CStr::from_ptr(name).to_string_lossy().into_owned(), id));
            }
        }
        close();
    }
    sorted(entries)
}

/// Whether this is a static glibc build, whose C library cannot load the NSS modules
/// `nsswitch.conf` may name besides `files` (the library's `nss` module says more): it asks
/// glibc's `getent` instead.
const STATIC_GLIBC: bool = cfg!(all(target_feature = "crt-static", target_env = "gnu"));

/// `getent ARGS`, its output read through a pipe, from where glibc installs it.
fn getent(args: &[&str]) -> Option<std::process::Child> {
    use std::process::{Command, Stdio};
    let path = ["/usr/bin/getent", "/bin/getent"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())?;
    Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// This user's home directory, from `getent passwd UID`.
fn getent_home() -> Option<std::ffi::OsString> {
    use std::os::unix::ffi::OsStringExt;
    let uid = rustix::process::geteuid().as_raw().to_string();
    let output = getent(&["passwd", "--", &uid])?.wait_with_output().ok()?;
    let line = output.stdout.split(|&b| b == b'\n').next()?;
    let home = line.split(|&b| b == b':').nth(5)?;
    (!home.is_empty()).then(|| std::ffi::OsString::from_vec(home.to_vec()))
}

/// A database enumerated by `getent`, for a static glibc build. Each line's name and id (the
/// third field in both databases), at most [`MAX_ENTRIES`] (then `getent` is stopped); nothing
/// when there is no `getent`.
fn getent_entries(database: &str) -> Vec<(String, u32)> {
    use std::io::BufRead;
    let Some(mut child) = getent(&[database]) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufReader::new(out)
            .split(b'\n')
            .map_while(Result::ok)
        {
            if entries.len() >= MAX_ENTRIES {
                break;
            }
            let line = String::from_utf8_lossy(&line);
            let mut fields = line.split(':');
            if let (Some(name), Some(Ok(id))) = (fields.next(), fields.nth(1).map(str::parse)) {
                entries.push((name.to_string(), id));
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    sorted(entries)
}

fn sorted(mut entries: Vec<(String, u32)>) -> Vec<(String, u32)> {
    entries.sort();
    entries.dedup_by(|a, b| a.0 == b.0);
    entries
}

/// The program after `--`: a command on `PATH` (or an executable path, once a `/` is typed);
/// its arguments: paths.
pub fn program() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let words = words_before_cursor();
        match words.iter().position(|w| w == "--") {
            // Before `--` the engine offers the options.
            None => return Vec::new(),
            Some(at) if at + 1 < words.len() => return PathCompleter::any().complete(current),
            Some(_) => {}
        }
        if current.to_string_lossy().contains('/') {
            return PathCompleter::any().filter(is_executable).complete(current);
        }
        commands(current)
    })
}

/// The executables in `PATH`'s directories whose names start with `typed`.
fn commands(typed: &OsStr) -> Vec<CompletionCandidate> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut names: Vec<OsString> = std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .flatten()
        .filter(|entry| entry.file_name().as_bytes().starts_with(typed.as_bytes()))
        .filter(|entry| is_executable(&entry.path()))
        .map(|entry| entry.file_name())
        .collect();
    names.sort();
    names.dedup();
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// A regular file (after symlinks) with an execute bit.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(candidates: Vec<CompletionCandidate>) -> Vec<String> {
        candidates
            .iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn signal_names_are_offered_as_typed() {
        let all = values(signal_candidates("", ""));
        assert!(
            all.contains(&"TERM".into()) && all.contains(&"HUP".into()),
            "{all:?}"
        );
        assert!(!all.iter().any(|n| n.starts_with("SIG")), "{all:?}");
        assert_eq!(values(signal_candidates("", "te")), ["term"]);
        assert_eq!(values(signal_candidates("", "SIGHU")), ["SIGHUP"]);
        assert_eq!(
            values(signal_candidates("TERM/10/", "KI")),
            ["TERM/10/KILL"]
        );
    }

    #[test]
    fn schedules_offer_signals_only_where_a_signal_goes() {
        let complete = |typed: &str| values(schedules().complete(OsStr::new(typed)));
        assert!(complete("").contains(&"TERM".into()));
        assert!(complete("TERM/").is_empty());
        assert_eq!(complete("TERM/10/KI"), ["TERM/10/KILL"]);
        assert_eq!(complete("INT/30/K"), ["INT/30/KILL"]);
    }

    #[test]
    fn the_run_directory_comes_from_the_command_line_first() {
        let words = |w: &[&str]| w.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            run_directory(&words(&["stop", "--rundir", "/a", "-n"])),
            Path::new("/a")
        );
        assert_eq!(
            run_directory(&words(&["stop", "--rundir=/b", "-n"])),
            Path::new("/b")
        );
        assert_eq!(
            run_directory(&words(&["stop", "--rundir", "=", "/c", "-n"])),
            Path::new("/c")
        );
    }
}
