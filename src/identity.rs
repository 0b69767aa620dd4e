//! Users, groups and dropping privileges (daemon(7) step 13).
//!
//! Names are resolved before the first fork ([`crate::nss`]), because `getpwnam` and
//! `initgroups` read files, allocate and may run `getent`; after the fork only the system calls
//! `setgroups`, `setgid` and `setuid` run, in that order, followed by a check that root cannot be
//! regained.

use std::ffi::CString;
use std::io;

use crate::error::{Error, ErrorKind, Step};
use crate::nss::{self, Passwd};

/// Which supplementary groups the daemon gets when it runs as another user.
///
/// # Example
/// ```
/// use daemonic::{Daemon, Groups};
/// let daemon = Daemon::new().user("nobody").groups(Groups::None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Groups {
    /// The user's groups from the group database, as `initgroups(3)` would set them.
    #[default]
    FromUser,
    /// No supplementary groups at all (also what a group given without a user gets).
    None,
}

/// Resolved ids, computed before the first fork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// The user to become, if one was asked for.
    pub uid: Option<libc::uid_t>,
    pub gid: libc::gid_t,
    /// The supplementary group list to install (only when running as root).
    pub groups: Vec<libc::gid_t>,
    /// The user as the caller named it, for messages.
    pub user_label: String,
    /// The group as the caller named it (or the user's primary group), for messages.
    pub group_label: String,
    /// The user's login name and home directory, for `USER`, `LOGNAME` and `HOME`.
    pub login: Option<(std::ffi::OsString, std::ffi::OsString)>,
    /// Capabilities kept across the drop (ambient), checked before the first fork.
    pub caps: crate::caps::Capabilities,
}

/// Resolves `user` and `group` (names or numeric ids) and the supplementary groups.
///
/// The databases are asked through [`crate::nss`] (the C library, or `getent` in a static
/// build whose `nsswitch.conf` names other sources than files).
///
/// Returns `None` when neither is given. References: getpwnam_r(3), getgrnam_r(3),
/// getgrouplist(3), getent(1).
pub(crate) fn resolve(
    user: Option<&str>,
    group: Option<&str>,
    groups: Groups,
) -> Result<Option<Credentials>, Error> {
    let passwd = user.map(lookup_user).transpose()?;
    let (gid, group_label) = match (group, &passwd) {
        (Some(g), _) => (lookup_group(g)?, g.to_string()),
        (None, Some(pw)) => (pw.gid, pw.gid.to_string()),
        (None, None) => return Ok(None),
    };
    let supplementary = match (&passwd, groups) {
        (Some(pw), Groups::FromUser) => group_list(pw, gid)?,
        // No user, or no groups asked for: none, rather than keeping root's.
        _ => Vec::new(),
    };
    Ok(Some(Credentials {
        uid: passwd.as_ref().map(|pw| pw.uid),
        gid,
        groups: supplementary,
        user_label: user.unwrap_or_default().to_string(),
        group_label,
        login: passwd.as_ref().map(|pw| {
            use std::os::unix::ffi::OsStrExt;
            (
                std::ffi::OsStr::from_bytes(pw.name.as_bytes()).to_owned(),
                std::ffi::OsStr::from_bytes(pw.home.as_bytes()).to_owned(),
            )
        }),
        caps: crate::caps::Capabilities::none(),
    }))
}

/// A user by name, or by number when the name is all digits.
fn lookup_user(user: &str) -> Result<Passwd, Error> {
    let by_name = getpw(user)?;
    if let Some(pw) = by_name {
        return Ok(pw);
    }
    if let Ok(uid) = user.parse::<libc::uid_t>() {
        if let Some(pw) = getpw_uid(uid)? {
            return Ok(pw);
        }
        return Err(Error::new(
            ErrorKind::InvalidInput,
            Step::User,
            format!(
                "user {user}: uid {uid} has no passwd entry (name a user, or give a group too)"
            ),
        ));
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        Step::User,
        format!("user {user}: no such user in the passwd database"),
    ))
}

fn getpw(name: &str) -> Result<Option<Passwd>, Error> {
    let cname = CString::new(name).map_err(|_| {
        Error::new(
            ErrorKind::InvalidInput,
            Step::User,
            format!("user {name:?}: contains a NUL byte"),
        )
    })?;
    nss::user(&cname).map_err(|e| Error::os(Step::User, name, e))
}

fn getpw_uid(uid: libc::uid_t) -> Result<Option<Passwd>, Error> {
    nss::user_by_id(uid).map_err(|e| Error::os(Step::User, uid, e))
}

/// A group by name, or by number when the name is all digits.
fn lookup_group(group: &str) -> Result<libc::gid_t, Error> {
    let cname = CString::new(group).map_err(|_| {
        Error::new(
            ErrorKind::InvalidInput,
            Step::Group,
            format!("group {group:?}: contains a NUL byte"),
        )
    })?;
    if let Some(gid) = nss::group(&cname).map_err(|e| Error::os(Step::Group, group, e))? {
        return Ok(gid);
    }
    if let Ok(gid) = group.parse::<libc::gid_t>() {
        return Ok(gid);
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        Step::Group,
        format!("group {group}: no such group in the group database"),
    ))
}

/// The user's supplementary groups, with `gid` first, as initgroups would install them.
fn group_list(pw: &Passwd, gid: libc::gid_t) -> Result<Vec<libc::gid_t>, Error> {
    // A lookup: the user's step (setgroups itself comes after the fork).
    nss::group_list(&pw.name, gid).map_err(|e| Error::os(Step::User, pw.name.to_string_lossy(), e))
}

/// Installs `creds`: supplementary groups (as root), gid, uid, in that order, then checks that
/// root cannot be regained. Async-signal-safe; returns the failing step and the OS error.
///
/// References: setgroups(2), setgid(2), setuid(2).
pub(crate) fn drop_privileges(creds: &Credentials) -> Result<(), (Step, io::Error)> {
    if rustix::process::geteuid().is_root() {
        set_groups(&creds.groups).map_err(|e| (Step::Setgroups, e))?;
    }
    set_gid(creds.gid).map_err(|e| (Step::Setgid, e))?;
    if let Some(uid) = creds.uid {
        crate::caps::before_setuid(creds.caps).map_err(|e| (Step::Capabilities, e))?;
        set_uid(uid).map_err(|e| (Step::Setuid, e))?;
        crate::caps::after_setuid(creds.caps).map_err(|e| (Step::Capabilities, e))?;
    }
    verify(creds)
}

/// After the drop: real and effective ids are the asked ones, and `setuid(0)` fails.
fn verify(creds: &Credentials) -> Result<(), (Step, io::Error)> {
    use rustix::process::{getegid, geteuid, getgid, getuid};
    let denied = || {
        (
            Step::VerifyPrivileges,
            io::Error::from_raw_os_error(libc::EPERM),
        )
    };
    let (uid, euid) = (getuid().as_raw(), geteuid().as_raw());
    let (gid, egid) = (getgid().as_raw(), getegid().as_raw());
    if gid != creds.gid || egid != creds.gid {
        return Err(denied());
    }
    if let Some(want) = creds.uid {
        if uid != want || euid != want {
            return Err(denied());
        }
        // It must fail for an unprivileged user (unless CAP_SETUID was kept, by request), who
        // holds no capability beyond those asked for.
        if want != 0 && !creds.caps.regains_root() && set_uid(0).is_ok() {
            return Err(denied());
        }
        if want != 0 && !crate::caps::holds_only(creds.caps) {
            return Err(denied());
        }
    }
    Ok(())
}

// On Linux, the kernel's calls, made directly: they change the calling thread's credentials,
// which is the whole process here (a child between fork and exec runs one thread), and unlike
// the C library's wrappers they take no lock and write no global. `from_raw_unchecked`:
// `from_raw` debug-asserts against -1, which a numeric id can be; the kernel refuses it
// (EINVAL), as it did through the C library.

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_groups(groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: `Gid` is `#[repr(transparent)]` over `gid_t` (rustix hands a `&[Gid]` to the
    // kernel as a `gid_t` array itself), so the same memory read as `Gid`s is valid for the same
    // length and lifetime.
    let groups: &[rustix::process::Gid] =
        unsafe { std::slice::from_raw_parts(groups.as_ptr().cast(), groups.len()) };
    Ok(rustix::thread::set_thread_groups(groups)?)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_gid(gid: libc::gid_t) -> io::Result<()> {
    Ok(rustix::thread::set_thread_gid(
        rustix::process::Gid::from_raw_unchecked(gid),
    )?)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_uid(uid: libc::uid_t) -> io::Result<()> {
    Ok(rustix::thread::set_thread_uid(
        rustix::process::Uid::from_raw_unchecked(uid),
    )?)
}

// libc: rustix wraps setgroups, setgid and setuid on Linux only.

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_groups(groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: the pointer and length describe `groups`, which outlives the call.
    let rc = unsafe { libc::setgroups(groups.len() as _, groups.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_gid(gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: setgid has no memory effects.
    if unsafe { libc::setgid(gid) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_uid(uid: libc::uid_t) -> io::Result<()> {
    // SAFETY: setuid has no memory effects.
    if unsafe { libc::setuid(uid) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_root_by_name_and_number() {
        // A static build may run getent for these.
        let _forking = crate::forks_excluded();
        let by_name = resolve(Some("root"), None, Groups::FromUser)
            .unwrap()
            .unwrap();
        let by_id = resolve(Some("0"), None, Groups::FromUser).unwrap().unwrap();
        assert_eq!(by_name.uid, Some(0));
        assert_eq!(by_id.uid, Some(0));
        assert_eq!(by_name.gid, 0);
        assert!(by_name.groups.contains(&0));
    }

    #[test]
    fn unknown_names_are_invalid_input() {
        // A static build may run getent for these.
        let _forking = crate::forks_excluded();
        let err = resolve(Some("no-such-user-x"), None, Groups::FromUser).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("no-such-user-x"), "{err}");
        let err = resolve(None, Some("no-such-group-x"), Groups::FromUser).unwrap_err();
        assert_eq!(err.step(), Step::Group);
    }

    #[test]
    fn names_that_look_like_options_or_overflow_an_id_are_no_one() {
        // A static build may run getent for these.
        let _forking = crate::forks_excluded();
        for name in ["-sfiles", "--help", "4294967296", "-4294967295"] {
            let err = resolve(Some(name), None, Groups::FromUser).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}: {err}");
            assert!(err.to_string().contains("no such user"), "{err}");
            let err = resolve(None, Some(name), Groups::None).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}: {err}");
        }
    }

    #[test]
    fn numeric_group_without_entry_is_accepted() {
        // A static build may run getent for these.
        let _forking = crate::forks_excluded();
        let creds = resolve(None, Some("54321"), Groups::None).unwrap().unwrap();
        assert_eq!(creds.gid, 54321);
        assert_eq!(creds.uid, None);
    }
}
