//! The daemon's environment (daemon(7) step 4): kept, cleared, or changed variable by variable.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

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
        let mut vars: Vec<(OsString, OsString)> = if self.clear {
            Vec::new()
        } else {
            std::env::vars_os().collect()
        };
        for (key, value) in &self.changes {
            vars.retain(|(k, _)| k != key);
            if let Some(value) = value {
                vars.push((key.clone(), value.clone()));
            }
        }
        vars
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

    /// `KEY=VALUE` strings for `execve`, with `extra` variables added last (replacing same keys).
    pub(crate) fn to_envp(&self, extra: &[(&str, &OsStr)]) -> Result<Vec<CString>, Error> {
        let mut vars = self.resolve_os();
        for (key, value) in extra {
            vars.retain(|(k, _)| k != key);
            vars.push((OsString::from(key), value.to_os_string()));
        }
        vars.into_iter()
            .map(|(mut key, value)| {
                key.push("=");
                key.push(&value);
                CString::new(key.into_vec()).map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        Step::Environment,
                        "environment contains a NUL byte",
                    )
                })
            })
            .collect()
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
