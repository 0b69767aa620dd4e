//! The library's one error type.
//!
//! Every failure names the step of the daemon procedure it happened in, the path or name that step
//! was working on, and the OS error, in one line. [`ErrorKind`] says what sort of failure it was, so
//! that a command can map it to an exit code without parsing the message.

use std::fmt;
use std::io;

/// A step of the daemon procedure, named for what it does.
///
/// Errors carry the step they happened in ([`Error::step`]); the daemon reports the step to the
/// launcher through the status pipe as a single byte, so the set is closed and numbered.
///
/// # Example
/// ```
/// use daemonic::Step;
/// assert_eq!(Step::Setuid.to_string(), "setuid");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Checking that the process runs a single thread (and, for `start`, no async runtime).
    Threads,
    /// Looking up the user to run as.
    User,
    /// Looking up the group to run as.
    Group,
    /// Checking the working directory.
    Workdir,
    /// Checking or entering the chroot directory.
    Chroot,
    /// Opening or redirecting standard input.
    Stdin,
    /// Opening or redirecting standard output.
    Stdout,
    /// Opening or redirecting standard error.
    Stderr,
    /// Creating, locking or writing the pidfile.
    Pidfile,
    /// Resolving the program to execute.
    Program,
    /// Preparing the environment.
    Environment,
    /// Setting up readiness notification.
    Readiness,
    /// Creating the status pipe or forking.
    Fork,
    /// Creating the new session.
    Setsid,
    /// Resetting signal dispositions and the signal mask.
    Signals,
    /// Closing inherited descriptors.
    CloseFds,
    /// Changing the working directory.
    Chdir,
    /// Disabling core dumps.
    NoCore,
    /// Setting the supplementary groups.
    Setgroups,
    /// Setting the group id.
    Setgid,
    /// Setting the user id.
    Setuid,
    /// Checking that privileges cannot be regained.
    VerifyPrivileges,
    /// Executing the program.
    Exec,
    /// Waiting for the daemon to become ready.
    Wait,
    /// Stopping or signalling a daemon.
    Signal,
    /// Setting up the keeper (subreaper, signals).
    Keeper,
    /// Talking to a keeper through its control socket.
    Control,
    /// Reading or writing a service's status record.
    Status,
    /// Setting the nice value.
    Nice,
    /// Setting a resource limit.
    Rlimit,
    /// Setting the OOM score adjustment.
    OomScoreAdj,
    /// Setting the CPU scheduling policy.
    Scheduler,
    /// Setting the I/O priority.
    IoPriority,
    /// Setting `no_new_privs`.
    NoNewPrivs,
    /// Keeping capabilities across the drop to a user.
    Capabilities,
}

impl Step {
    const ALL: [Step; 35] = [
        Step::Threads,
        Step::User,
        Step::Group,
        Step::Workdir,
        Step::Chroot,
        Step::Stdin,
        Step::Stdout,
        Step::Stderr,
        Step::Pidfile,
        Step::Program,
        Step::Environment,
        Step::Readiness,
        Step::Fork,
        Step::Setsid,
        Step::Signals,
        Step::CloseFds,
        Step::Chdir,
        Step::NoCore,
        Step::Setgroups,
        Step::Setgid,
        Step::Setuid,
        Step::VerifyPrivileges,
        Step::Exec,
        Step::Wait,
        Step::Signal,
        Step::Keeper,
        Step::Control,
        Step::Status,
        Step::Nice,
        Step::Rlimit,
        Step::OomScoreAdj,
        Step::Scheduler,
        Step::IoPriority,
        Step::NoNewPrivs,
        Step::Capabilities,
    ];

    /// The step's wire code in the status pipe.
    pub(crate) fn code(self) -> u8 {
        // The discriminants are 0..ALL.len(), in declaration order.
        self as u8
    }

    /// The step for a wire code, if it is one.
    pub(crate) fn from_code(code: u8) -> Option<Step> {
        Step::ALL.get(usize::from(code)).copied()
    }

    /// The step's short name, as it appears in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Threads => "thread check",
            Step::User => "user",
            Step::Group => "group",
            Step::Workdir => "working directory",
            Step::Chroot => "chroot",
            Step::Stdin => "stdin",
            Step::Stdout => "stdout",
            Step::Stderr => "stderr",
            Step::Pidfile => "pidfile",
            Step::Program => "program",
            Step::Environment => "environment",
            Step::Readiness => "readiness",
            Step::Fork => "fork",
            Step::Setsid => "setsid",
            Step::Signals => "signal reset",
            Step::CloseFds => "closing descriptors",
            Step::Chdir => "chdir",
            Step::NoCore => "core dump limit",
            Step::Setgroups => "setgroups",
            Step::Setgid => "setgid",
            Step::Setuid => "setuid",
            Step::VerifyPrivileges => "privilege check",
            Step::Exec => "exec",
            Step::Wait => "waiting for readiness",
            Step::Signal => "signal",
            Step::Keeper => "keeper",
            Step::Control => "control",
            Step::Status => "status",
            Step::Nice => "nice",
            Step::Rlimit => "resource limit",
            Step::OomScoreAdj => "OOM score",
            Step::Scheduler => "scheduler",
            Step::IoPriority => "I/O priority",
            Step::NoNewPrivs => "no_new_privs",
            Step::Capabilities => "capabilities",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What sort of failure an [`Error`] is; commands map it to exit codes.
///
/// # Example
/// ```
/// use daemonic::{Daemon, ErrorKind};
/// let err = Daemon::new().user("no-such-user-here").check().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidInput);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A name, path or value given by the caller is wrong (unknown user, missing directory).
    InvalidInput,
    /// The operation needs privileges the process does not have.
    PermissionDenied,
    /// The program to execute does not exist or cannot be executed.
    NotInstalled,
    /// The pidfile is locked by a live daemon, whose pid is given when the file names one.
    AlreadyRunning(Option<u32>),
    /// No daemon holds the pidfile.
    NotRunning,
    /// The daemon started but failed, exited or timed out before it was ready.
    NotReady,
    /// The wait was interrupted by this signal (Ctrl-C: `SIGINT`); the half-started daemon was
    /// stopped.
    Interrupted(i32),
    /// A stop schedule ran out and something of the service still runs.
    StillRunning,
    /// Any other operating-system failure.
    Os,
}

/// An error of the daemon procedure: the step, the path or name, and the cause, in one line.
///
/// `Debug` prints the same line as `Display`, so `fn main() -> Result<(), daemonic::Error>` shows
/// a readable message.
///
/// The OS error is part of that line and is not also given as
/// [`source`](std::error::Error::source): error reporters that print the whole chain (`anyhow`,
/// `eyre`, a `main` that returns one of them) would otherwise print it twice. Its number is
/// [`raw_os_error`](Error::raw_os_error).
///
/// # Example
/// ```
/// use daemonic::{Daemon, Step};
/// let err = Daemon::new().workdir("/no/such/dir").check().unwrap_err();
/// assert_eq!(err.step(), Step::Workdir);
/// assert!(err.to_string().contains("/no/such/dir"));
/// assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
/// // The message already names the OS error: it is not given again as the source.
/// assert!(std::error::Error::source(&err).is_none());
/// ```
#[derive(thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    step: Step,
    message: String,
    /// The errno of the OS error the message names, kept as a number rather than as a source
    /// (see the type's documentation).
    errno: Option<i32>,
}

impl Error {
    /// An error from an OS call: `"{step} {subject}: {os error}"`, kind derived from the errno.
    pub(crate) fn os(step: Step, subject: impl fmt::Display, err: io::Error) -> Error {
        let kind = match err.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => ErrorKind::PermissionDenied,
            Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP) => ErrorKind::InvalidInput,
            _ => ErrorKind::Os,
        };
        let subject = subject.to_string();
        let message = if subject.is_empty() {
            format!("{step}: {err}")
        } else {
            format!("{step} {subject}: {err}")
        };
        Error {
            kind,
            step,
            message,
            errno: err.raw_os_error(),
        }
    }

    /// An error with a message of its own and no OS cause.
    pub(crate) fn new(kind: ErrorKind, step: Step, message: impl Into<String>) -> Error {
        Error {
            kind,
            step,
            message: message.into(),
            errno: None,
        }
    }

    /// The same error with another kind (the errno alone cannot tell "program not installed").
    pub(crate) fn with_kind(mut self, kind: ErrorKind) -> Error {
        self.kind = kind;
        self
    }

    /// The same error with advice appended: what to do next.
    pub(crate) fn with_hint(mut self, hint: &str) -> Error {
        self.message.push_str(" (");
        self.message.push_str(hint);
        self.message.push(')');
        self
    }

    /// What sort of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The step of the procedure that failed.
    pub fn step(&self) -> Step {
        self.step
    }

    /// The OS error number, when an OS call failed.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.errno
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match err.kind {
            ErrorKind::InvalidInput => io::ErrorKind::InvalidInput,
            ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            ErrorKind::NotInstalled => io::ErrorKind::NotFound,
            ErrorKind::AlreadyRunning(_) => io::ErrorKind::AlreadyExists,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_codes_round_trip() {
        for step in Step::ALL {
            assert_eq!(Step::from_code(step.code()), Some(step));
        }
        assert_eq!(Step::from_code(Step::ALL.len() as u8), None);
    }

    #[test]
    fn os_error_names_step_subject_and_cause() {
        let err = Error::os(
            Step::Chdir,
            "/x",
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            err.to_string()
                .starts_with("chdir /x: No such file or directory")
        );
        assert_eq!(format!("{err:?}"), err.to_string());
    }

    /// What a reporter that walks the source chain (anyhow's `{:#}`, eyre) prints.
    fn chain(err: &dyn std::error::Error) -> String {
        let mut text = err.to_string();
        let mut next = err.source();
        while let Some(cause) = next {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            next = cause.source();
        }
        text
    }

    #[test]
    fn os_error_appears_once_in_a_reported_chain() {
        let err = Error::os(
            Step::Pidfile,
            "/run/app.pid",
            io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(std::error::Error::source(&err).is_none());
        assert_eq!(err.raw_os_error(), Some(libc::EACCES));
        let os_text = io::Error::from_raw_os_error(libc::EACCES).to_string();
        assert_eq!(err.to_string(), format!("pidfile /run/app.pid: {os_text}"));
        assert_eq!(chain(&err).matches(&os_text).count(), 1, "{}", chain(&err));
        // Converted into an io::Error (the `?` in a `main` returning io::Result), still once.
        let io_err = io::Error::from(err);
        assert_eq!(
            chain(&io_err).matches(&os_text).count(),
            1,
            "{}",
            chain(&io_err)
        );
    }
}
