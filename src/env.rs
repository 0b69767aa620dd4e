//! The daemon's environment (daemon(7) step 4): kept, cleared, or changed variable by variable.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use crate::error::{Error, ErrorKind, Step};

/// What the daemon's environment is made of: the launcher's (or nothing), then changes in order.
///
/// # Example
/// ```
/// use daemonic::Environment;
/// let env = Environment::inherit().set("LANG", "C.UTF-8").remove("DISPLAY");
/// assert_eq!(env.resolve().get("LANG").map(String::as_str), Some("C.UTF-8"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    clear: bool,
    changes: Vec<(OsString, Option<OsString>)>,
}

impl Environment {
    /// Start from the launcher's environment.
    pub fn inherit() -> Environment {
        Environment::default()
    }

    /// Start from an empty environment.
    pub fn empty() -> Environment {
        Environment {
            clear: true,
            changes: Vec::new(),
        }
    }

    /// Drops the launcher's environment; changes made so far and later still apply.
    #[must_use]
    pub fn clear(mut self) -> Environment {
        self.clear = true;
        self
    }

    /// Sets `key` to `value`.
    #[must_use]
    pub fn set(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Environment {
        self.changes.push((key.into(), Some(value.into())));
        self
    }

    /// Removes `key`.
    #[must_use]
    pub fn remove(mut self, key: impl Into<OsString>) -> Environment {
        self.changes.push((key.into(), None));
        self
    }

    /// Whether the launcher's environment is dropped.
    pub fn is_cleared(&self) -> bool {
        self.clear
    }

    /// Whether `key` is set explicitly by a change.
    pub(crate) fn sets(&self, key: &str) -> bool {
        self.changes.iter().any(|(k, v)| k == key && v.is_some())
    }

    /// The final variables, in the launcher's order then the order set, as text (lossy).
    pub fn resolve(&self) -> std::collections::BTreeMap<String, String> {
        self.resolve_os()
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }

    fn resolve_os(&self) -> Vec<(OsString, OsString)> {
        let mut vars = Vec::new();
        let _ = self.each(&[], false, |key, value| {
            vars.push((key.to_owned(), value.to_owned()));
            Ok(())
        });
        vars
    }

    /// Calls `f` with each final variable, in order: the launcher's (unless cleared) that no
    /// change or `extra` names, then each change where it was last made, then `extra` (the last
    /// of a key wins there too).
    ///
    /// `one_thread`: the caller runs a single thread, so the launcher's variables are read in
    /// place rather than copied out first (under the standard library's lock) and then again.
    fn each(
        &self,
        extra: &[(&str, &OsStr)],
        one_thread: bool,
        mut f: impl FnMut(&OsStr, &OsStr) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let in_extra = |key: &OsStr| extra.iter().any(|(k, _)| OsStr::new(k) == key);
        let changed = |key: &OsStr| self.changes.iter().any(|(k, _)| k == key);
        if !self.clear {
            let mut inherited = |key: &OsStr, value: &OsStr| match changed(key) || in_extra(key) {
                true => Ok(()),
                false => f(key, value),
            };
            if one_thread {
                // SAFETY: the caller runs one thread, as `one_thread` says.
                unsafe { each_in_place(&mut inherited)? };
            } else {
                for (key, value) in std::env::vars_os() {
                    inherited(&key, &value)?;
                }
            }
        }
        for (i, (key, value)) in self.changes.iter().enumerate() {
            let later = self.changes[i + 1..].iter().any(|(k, _)| k == key);
            if let Some(value) = value
                && !later
                && !in_extra(key)
            {
                f(key, value)?;
            }
        }
        for (i, (key, value)) in extra.iter().enumerate() {
            if !extra[i + 1..].iter().any(|(k, _)| k == key) {
                f(OsStr::new(key), value)?;
            }
        }
        Ok(())
    }

    /// Checks every change: keys non-empty without `=` or NUL, values without NUL.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        for (key, value) in &self.changes {
            let bad_key = key.is_empty() || key.as_bytes().iter().any(|&b| b == b'=' || b == 0);
            let bad_value = value.as_ref().is_some_and(|v| v.as_bytes().contains(&0));
            if bad_key || bad_value {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    Step::Environment,
                    format!(
                        "environment variable {:?}: a name must be non-empty without '=' or NUL, a value without NUL",
                        key
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `KEY=VALUE` strings for `execve`, with `extra` variables added last (replacing same keys),
    /// each built with one allocation: this is on the path of every start.
    ///
    /// # Safety
    /// The process must run a single thread (the launcher's `validate` checked it): the
    /// inherited variables are read in place.
    pub(crate) unsafe fn to_envp(&self, extra: &[(&str, &OsStr)]) -> Result<Vec<CString>, Error> {
        let entry = |key: &OsStr, value: &OsStr| {
            entry(key, value).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    Step::Environment,
                    "environment contains a NUL byte",
                )
            })
        };
        let mut envp = Vec::new();
        self.each(extra, true, |key, value| {
            envp.push(entry(key, value)?);
            Ok(())
        })?;
        Ok(envp)
    }

    /// Makes this process's environment equal to the resolved one.
    ///
    /// # Safety
    /// The process must run a single thread: `setenv` is not thread-safe.
    pub(crate) unsafe fn apply_in_process(&self) {
        let wanted = self.resolve_os();
        for (key, _) in std::env::vars_os() {
            if !wanted.iter().any(|(k, _)| *k == key) {
                // SAFETY: the caller guarantees a single thread.
                unsafe { std::env::remove_var(&key) };
            }
        }
        for (key, value) in wanted {
            // SAFETY: as above.
            unsafe { std::env::set_var(&key, &value) };
        }
    }
}

/// `KEY=VALUE` as one C string, built with one allocation; None if either contains a NUL.
pub(crate) fn entry(key: &OsStr, value: &OsStr) -> Option<CString> {
    let mut bytes = Vec::with_capacity(key.len() + value.len() + 2);
    bytes.extend_from_slice(key.as_bytes());
    bytes.push(b'=');
    bytes.extend_from_slice(value.as_bytes());
    CString::new(bytes).ok()
}

/// Calls `f` with each of this process's variables, read in place from `environ`, parsed as
/// the standard library parses them (a name may start with `=`; an entry without one is
/// skipped). `std::env::vars_os` would copy every name and value first.
///
/// # Safety
/// The process must run a single thread: nothing may change the environment meanwhile.
#[cfg(not(target_vendor = "apple"))]
unsafe fn each_in_place(
    f: &mut dyn FnMut(&OsStr, &OsStr) -> Result<(), Error>,
) -> Result<(), Error> {
    unsafe extern "C" {
        // The C library's environment, a null-terminated array of `NAME=value` strings.
        static environ: *const *const std::ffi::c_char;
    }
    // SAFETY: one thread (the caller's promise): `environ` and its strings stay as they are
    // while we read them; each entry up to the terminating null is a valid C string.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let bytes = std::ffi::CStr::from_ptr(*entry).to_bytes();
            if let Some(eq) = bytes.iter().skip(1).position(|&b| b == b'=') {
                let (key, value) = (&bytes[..eq + 1], &bytes[eq + 2..]);
                f(OsStr::from_bytes(key), OsStr::from_bytes(value))?;
            }
            entry = entry.add(1);
        }
    }
    Ok(())
}

/// Elsewhere (Apple's `environ` is not the process's own): the standard library's copy.
#[cfg(target_vendor = "apple")]
unsafe fn each_in_place(
    f: &mut dyn FnMut(&OsStr, &OsStr) -> Result<(), Error>,
) -> Result<(), Error> {
    for (key, value) in std::env::vars_os() {
        f(&key, &value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `to_envp` is `resolve` with the extra variables last, as `KEY=VALUE` strings.
    #[test]
    fn envp_is_the_resolved_environment_then_the_extra() {
        let env = Environment::empty()
            .set("A", "1")
            .set("B", "2")
            .remove("B")
            .set("C", "3")
            .set("A", "4")
            .set("D", "5");
        let extra = [("D", OsStr::new("6")), ("E", OsStr::new("7"))];
        // SAFETY (each `to_envp` below): no test in this crate changes its environment.
        let envp: Vec<String> = unsafe { env.to_envp(&extra) }
            .unwrap()
            .into_iter()
            .map(|c| c.into_string().unwrap())
            .collect();
        assert_eq!(envp, ["C=3", "A=4", "D=6", "E=7"]);
        assert!(unsafe { Environment::empty().set("K", "a\0b").to_envp(&[]) }.is_err());
        // Inherited: each variable once, and a changed one only where it was changed.
        let inherited = Environment::inherit().set("PATH", "/x");
        let envp = unsafe { inherited.to_envp(&[]) }.unwrap();
        // Read in place, the inherited variables are those the standard library reads.
        let resolved: Vec<CString> = inherited
            .resolve_os()
            .iter()
            .map(|(k, v)| entry(k, v).unwrap())
            .collect();
        assert_eq!(envp, resolved);
        let paths: Vec<_> = envp
            .iter()
            .filter(|c| c.as_bytes().starts_with(b"PATH="))
            .collect();
        assert_eq!(paths, [&CString::new("PATH=/x").unwrap()]);
        assert_eq!(envp.last().map(|c| c.as_bytes()), Some(&b"PATH=/x"[..]));
    }
}
