//! The program a daemon executes, resolved before the first fork: found on `PATH`, checked to
//! exist and to be executable by the user the daemon will run as, and turned into the C arrays
//! `execve` takes, so that nothing between fork and exec allocates.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Step};
use crate::identity::Credentials;

/// A program and its arguments, as given on a command line.
///
/// # Example
/// ```
/// let program = daemonic::Program::new("sleep").arg("60");
/// assert_eq!(program.name(), "sleep");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    program: OsString,
    args: Vec<OsString>,
    argv0: Option<OsString>,
}

impl Program {
    /// A program named as a shell would: a path when it contains `/`, else looked up on `PATH`.
    pub fn new(program: impl Into<OsString>) -> Program {
        Program {
            program: program.into(),
            args: Vec::new(),
            argv0: None,
        }
    }

    /// The name the program sees as `argv[0]` (what `ps` shows), instead of the program as
    /// given, as `exec -a` does in a shell. A `#!` script does not see it (the kernel passes the
    /// script's path to the interpreter instead).
    ///
    /// # Example
    /// ```
    /// let program = daemonic::Program::new("/usr/sbin/nginx").argv0("nginx: master");
    /// assert_eq!(program.name(), "/usr/sbin/nginx");
    /// ```
    #[must_use]
    pub fn argv0(mut self, name: impl Into<OsString>) -> Program {
        self.argv0 = Some(name.into());
        self
    }

    /// Adds an argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<OsString>) -> Program {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Program
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The program as given.
    pub fn name(&self) -> std::borrow::Cow<'_, str> {
        self.program.to_string_lossy()
    }

    /// The arguments after the program.
    pub fn arguments(&self) -> &[OsString] {
        &self.args
    }

    /// Finds the program: on `PATH` (searched inside `root` when chrooting), a regular file,
    /// executable by `creds`' user (or the caller).
    pub(crate) fn resolve(
        &self,
        root: Option<&Path>,
        creds: Option<&Credentials>,
    ) -> Result<Resolved, Error> {
        let not_installed = |why: String| {
            Error::new(
                ErrorKind::NotInstalled,
                Step::Program,
                format!("program {}: {why}", self.name()),
            )
        };
        if self.program.is_empty() {
            return Err(not_installed("empty program name".into()));
        }
        let inside = |p: &Path| -> PathBuf {
            match root {
                Some(root) => root.join(p.strip_prefix("/").unwrap_or(p)),
                None => p.to_path_buf(),
            }
        };
        let path: PathBuf = if self.program.as_bytes().contains(&b'/') {
            PathBuf::from(&self.program)
        } else {
            let search = std::env::var_os("PATH")
                .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
            std::env::split_paths(&search)
                .map(|dir| dir.join(&self.program))
                .find(|candidate| inside(candidate).is_file())
                .ok_or_else(|| {
                    not_installed("not found on PATH (give a path, or install it)".into())
                })?
        };
        let on_disk = inside(&path);
        let meta = std::fs::metadata(&on_disk).map_err(|e| {
            Error::os(Step::Program, on_disk.display(), e).with_kind(ErrorKind::NotInstalled)
        })?;
        if !meta.is_file() {
            return Err(not_installed(format!(
                "{} is not a regular file",
                on_disk.display()
            )));
        }
        if !executable_by(&meta, creds) {
            return Err(not_installed(format!(
                "{} is not executable by {} (mode {:o}; chmod +x it)",
                on_disk.display(),
                creds
                    .and_then(|c| c.uid.map(|_| format!("user {}", c.user_label)))
                    .unwrap_or_else(|| "this user".into()),
                meta.permissions().mode() & 0o7777
            )));
        }
        check_interpreter(&on_disk, root, self).map_err(not_installed)?;
        // A relative path stays relative to the daemon's working directory after chdir; make it
        // absolute against the launcher's, where it was checked.
        let exec_path = if path.is_absolute() || root.is_some() {
            path
        } else {
            std::env::current_dir()
                .map_err(|e| Error::os(Step::Program, "current directory", e))?
                .join(path)
        };
        let mut argv = vec![cstring(self.argv0.as_ref().unwrap_or(&self.program))?];
        for arg in &self.args {
            argv.push(cstring(arg)?);
        }
        Ok(Resolved {
            path: cstring(exec_path.as_os_str())?,
            argv,
        })
    }
}

/// A script's `#!` interpreter must exist and be executable, or exec fails with a bare "No such
/// file or directory" that names the script: name the interpreter instead.
fn check_interpreter(script: &Path, root: Option<&Path>, program: &Program) -> Result<(), String> {
    use std::io::Read;
    let _ = program;
    let mut head = [0u8; 256];
    let Ok(mut file) = std::fs::File::open(script) else {
        return Ok(());
    };
    let n = file.read(&mut head).unwrap_or(0);
    let Some(line) = head[..n].strip_prefix(b"#!") else {
        return Ok(());
    };
    let line = line.split(|&b| b == b'\n').next().unwrap_or(line);
    let Some(interpreter) = line
        .split(|&b| b == b' ' || b == b'\t')
        .find(|word| !word.is_empty())
    else {
        return Ok(());
    };
    let interpreter = Path::new(OsStr::from_bytes(interpreter));
    let on_disk = match root {
        Some(root) => root.join(interpreter.strip_prefix("/").unwrap_or(interpreter)),
        None => interpreter.to_path_buf(),
    };
    match std::fs::metadata(&on_disk) {
        Ok(meta) if meta.is_file() => Ok(()),
        _ => Err(format!(
            "{} starts with #!{}, and that interpreter is missing (install it, or fix the #! line)",
            script.display(),
            interpreter.display()
        )),
    }
}

fn cstring(text: &OsStr) -> Result<CString, Error> {
    CString::new(text.as_bytes().to_vec()).map_err(|_| {
        Error::new(
            ErrorKind::InvalidInput,
            Step::Program,
            format!("argument {:?} contains a NUL byte", text),
        )
    })
}

/// The mode bits that would let the daemon's user execute the file.
fn executable_by(meta: &std::fs::Metadata, creds: Option<&Credentials>) -> bool {
    let mode = meta.mode();
    let (uid, gid) = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    let uid = creds.and_then(|c| c.uid).unwrap_or(uid);
    let (gid, groups): (libc::gid_t, Vec<libc::gid_t>) = match creds {
        Some(c) => (c.gid, c.groups.clone()),
        None => (gid, Vec::new()),
    };
    if uid == 0 {
        return mode & 0o111 != 0;
    }
    if meta.uid() == uid {
        return mode & 0o100 != 0;
    }
    if meta.gid() == gid || groups.contains(&meta.gid()) {
        return mode & 0o010 != 0;
    }
    mode & 0o001 != 0
}

/// A program ready for `execve`.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub path: CString,
    pub argv: Vec<CString>,
}

impl Resolved {
    /// The path that will be executed.
    pub(crate) fn path(&self) -> &Path {
        Path::new(OsStr::from_bytes(self.path.as_bytes()))
    }
}

/// A NULL-terminated pointer array over `strings`, for `execve`. The strings must outlive it.
pub(crate) fn pointer_array(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_path_and_refuses_missing_ones() {
        let found = Program::new("sh").resolve(None, None).unwrap();
        assert!(found.path().is_absolute());
        let err = Program::new("no-such-program-daemonic")
            .resolve(None, None)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotInstalled);
        assert!(err.to_string().contains("not found on PATH"), "{err}");
    }

    #[test]
    fn refuses_files_without_execute_permission() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Program::new(&script).resolve(None, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotInstalled);
        assert!(err.to_string().contains("not executable"), "{err}");
    }
}
