//! Capabilities kept across the drop to a user (`--cap`): the program runs as the user, with
//! only these capabilities, in its effective, permitted, inheritable and **ambient** sets, so
//! they survive its `exec` although it is not root and the file has no capabilities of its own.
//! This is how a web server runs as `www-data` and still binds port 80 (`net_bind_service`),
//! without a setuid binary, file capabilities or a root process of its own.
//!
//! The set is checked before the first fork ([`Capabilities::check`]) and installed by system
//! calls alone, in the child, around the `setuid` of the privilege drop ([`before_setuid`],
//! [`after_setuid`]). Linux only (ambient capabilities are Linux's, since 4.3).
//!
//! References: capabilities(7) ("Ambient capability set"), prctl(2) (`PR_SET_KEEPCAPS`,
//! `PR_CAP_AMBIENT`), capset(2).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorKind, Step};

/// The capability names, in the kernel's numbering (`CAP_CHOWN` is 0), as capabilities(7)
/// spells them without the `CAP_` prefix.
const NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// `CAP_SETUID`: with it kept, the program may become root again, by request.
const SETUID: u32 = 7;

/// A set of capabilities to keep across the drop to a user.
///
/// Names are capabilities(7)'s, with or without `CAP_`, in any case, separated by commas.
///
/// # Example
/// ```
/// use daemonic::Capabilities;
/// let caps: Capabilities = "net_bind_service,CAP_SYS_NICE".parse().unwrap();
/// assert!(caps.contains("net_bind_service"));
/// assert_eq!(caps.to_string(), "net_bind_service,sys_nice");
/// assert!("net_bind_servic".parse::<Capabilities>().is_err());
///
/// // The daemon (or the program a keeper runs) is `www-data`, and may still bind port 80.
/// let daemon = daemonic::Daemon::new().user("www-data").capabilities(caps);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    bits: u64,
}

impl Capabilities {
    /// No capability (the default: the drop to a user keeps none).
    ///
    /// # Example
    /// ```
    /// assert!(daemonic::Capabilities::none().is_empty());
    /// ```
    pub const fn none() -> Capabilities {
        Capabilities { bits: 0 }
    }

    /// Adds one capability by name (`net_bind_service` or `CAP_NET_BIND_SERVICE`).
    ///
    /// # Example
    /// ```
    /// let caps = daemonic::Capabilities::none().with("net_raw").unwrap();
    /// assert!(caps.contains("CAP_NET_RAW"));
    /// assert!(daemonic::Capabilities::none().with("net_rawr").is_err());
    /// ```
    pub fn with(self, name: &str) -> Result<Capabilities, Error> {
        let number = number(name).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                Step::Capabilities,
                format!(
                    "{name:?} is not a capability name (see capabilities(7): net_bind_service, sys_nice, ...)"
                ),
            )
        })?;
        Ok(Capabilities {
            bits: self.bits | 1 << number,
        })
    }

    /// Whether the set holds the named capability.
    ///
    /// # Example
    /// ```
    /// let caps: daemonic::Capabilities = "kill".parse().unwrap();
    /// assert!(caps.contains("kill") && !caps.contains("chown"));
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        number(name).is_some_and(|n| self.bits & 1 << n != 0)
    }

    /// Whether the set is empty.
    ///
    /// # Example
    /// ```
    /// assert!(!"kill".parse::<daemonic::Capabilities>().unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// The kernel's bit mask (bit N is capability N), as `/proc/PID/status` shows it in `CapAmb`.
    ///
    /// # Example
    /// ```
    /// let caps: daemonic::Capabilities = "net_bind_service".parse().unwrap();
    /// assert_eq!(caps.bits(), 0x400);
    /// ```
    pub fn bits(&self) -> u64 {
        self.bits
    }

    /// Every capability name this library knows, in the kernel's order.
    ///
    /// # Example
    /// ```
    /// assert_eq!(daemonic::Capabilities::known().next(), Some("chown"));
    /// ```
    pub fn known() -> impl Iterator<Item = &'static str> {
        NAMES.iter().copied()
    }

    pub(crate) fn from_bits(bits: u64) -> Capabilities {
        Capabilities { bits }
    }

    /// Whether `CAP_SETUID` is kept (then the program may regain root, as asked).
    pub(crate) fn regains_root(&self) -> bool {
        self.bits & 1 << SETUID != 0
    }

    /// Checks, before anything forks, that this system and this process can keep the set: a
    /// user to drop to, ambient capabilities (Linux 4.3), each capability known to the kernel,
    /// held by this process (permitted) and in its bounding set.
    ///
    /// # Example
    /// ```
    /// let caps: daemonic::Capabilities = "net_bind_service".parse().unwrap();
    /// let err = caps.check(false).unwrap_err();   // no user to drop to
    /// assert!(err.to_string().contains("user"));
    /// ```
    pub fn check(&self, drops_user: bool) -> Result<(), Error> {
        if self.is_empty() {
            return Ok(());
        }
        let refuse = |kind, message: String| Err(Error::new(kind, Step::Capabilities, message));
        if !drops_user {
            return refuse(
                ErrorKind::InvalidInput,
                "capabilities are kept across a change of user: name a user other than root \
                 to run as (as root, or without a user, the program has every capability)"
                    .into(),
            );
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::thread::{CapabilitySet, capabilities, capability_is_in_bounding_set};
            let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .unwrap_or(NAMES.len() as u32 - 1);
            let held = capabilities(None)
                .map_err(|e| Error::os(Step::Capabilities, "capget", e.into()))?
                .permitted
                .bits();
            for n in self.numbers() {
                let name = NAMES[n as usize];
                if n > last {
                    return refuse(
                        ErrorKind::InvalidInput,
                        format!("capability {name}: this kernel does not have it"),
                    );
                }
                let one = CapabilitySet::from_bits_retain(1 << n);
                if held & 1 << n == 0 || !capability_is_in_bounding_set(one).unwrap_or(false) {
                    return refuse(
                        ErrorKind::PermissionDenied,
                        format!(
                            "capability {name}: this process does not hold it, so cannot pass \
                             it on (run as root)"
                        ),
                    );
                }
            }
            if rustix::thread::capability_is_in_ambient_set(CapabilitySet::CHOWN).is_err() {
                return refuse(
                    ErrorKind::InvalidInput,
                    "this kernel has no ambient capabilities (Linux 4.3 or later)".into(),
                );
            }
            Ok(())
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        refuse(
            ErrorKind::InvalidInput,
            "keeping capabilities across a change of user needs Linux (ambient capabilities)"
                .into(),
        )
    }

    fn numbers(&self) -> impl Iterator<Item = u32> + '_ {
        (0..64).filter(|n| self.bits & 1 << n != 0)
    }
}

/// The number of a capability name, `CAP_` prefix and case ignored.
fn number(name: &str) -> Option<u32> {
    let name = name.trim();
    let bare = match name.get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case("cap_") => &name[4..],
        _ => name,
    };
    NAMES
        .iter()
        .position(|known| known.eq_ignore_ascii_case(bare))
        .map(|n| n as u32)
}

/// The union of two sets.
///
/// # Example
/// ```
/// let a: daemonic::Capabilities = "kill".parse().unwrap();
/// assert_eq!((a | "chown".parse().unwrap()).to_string(), "chown,kill");
/// ```
impl std::ops::BitOr for Capabilities {
    type Output = Capabilities;

    fn bitor(self, other: Capabilities) -> Capabilities {
        Capabilities {
            bits: self.bits | other.bits,
        }
    }
}

impl FromStr for Capabilities {
    type Err = Error;

    fn from_str(text: &str) -> Result<Capabilities, Error> {
        text.split(',')
            .filter(|name| !name.trim().is_empty())
            .try_fold(Capabilities::none(), |caps, name| caps.with(name))
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for n in self.numbers() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            match NAMES.get(n as usize) {
                Some(name) => f.write_str(name)?,
                None => write!(f, "{n}")?,
            }
        }
        Ok(())
    }
}

/// Before `setuid` (in the child, async-signal-safe): keep the permitted set across it when
/// capabilities are asked for, and make sure it is not kept otherwise (a host process that set
/// `PR_SET_KEEPCAPS` itself must not pass its capabilities to the user).
pub(crate) fn before_setuid(caps: Capabilities) -> std::io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    rustix::thread::set_keep_capabilities(!caps.is_empty())?;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = caps;
    Ok(())
}

/// After the drop to a user (async-signal-safe): the process holds no capability beyond `caps`
/// in its permitted, effective or ambient sets.
pub(crate) fn holds_only(caps: Capabilities) -> bool {
    // The kernel keeps the ambient set inside the permitted one.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        rustix::thread::capabilities(None)
            .is_ok_and(|sets| (sets.permitted.bits() | sets.effective.bits()) & !caps.bits == 0)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = caps;
        true
    }
}

/// After `setuid` (in the child, async-signal-safe): exactly `caps` in the effective,
/// permitted and inheritable sets, then each raised into the ambient set, which is what
/// carries them across `exec` for a program without file capabilities.
pub(crate) fn after_setuid(caps: Capabilities) -> std::io::Result<()> {
    if caps.is_empty() {
        return Ok(());
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::thread::{
            CapabilitySet, CapabilitySets, configure_capability_in_ambient_set, set_capabilities,
            set_keep_capabilities,
        };
        let set = CapabilitySet::from_bits_retain(caps.bits);
        set_capabilities(
            None,
            CapabilitySets {
                effective: set,
                permitted: set,
                inheritable: set,
            },
        )?;
        for n in caps.numbers() {
            configure_capability_in_ambient_set(CapabilitySet::from_bits_retain(1 << n), true)?;
        }
        // The flag has done its work (exec clears it anyway).
        set_keep_capabilities(false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_or_without_the_prefix_in_any_case() {
        let caps: Capabilities = "CAP_NET_BIND_SERVICE, sys_nice,Kill".parse().unwrap();
        assert_eq!(caps.bits(), 1 << 10 | 1 << 23 | 1 << 5);
        assert_eq!(caps.to_string(), "kill,net_bind_service,sys_nice");
        assert_eq!(
            "checkpoint_restore".parse::<Capabilities>().unwrap().bits(),
            1 << 40
        );
    }

    #[test]
    fn unknown_names_are_refused_by_name() {
        let err = "net_bind_service,cap_fly"
            .parse::<Capabilities>()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("\"cap_fly\""), "{err}");
    }

    #[test]
    fn the_set_is_refused_without_a_user() {
        let caps: Capabilities = "net_raw".parse().unwrap();
        assert_eq!(
            caps.check(false).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert!(Capabilities::none().check(false).is_ok());
    }

    #[test]
    fn setuid_is_noticed() {
        assert!("setuid".parse::<Capabilities>().unwrap().regains_root());
        assert!(!"setgid".parse::<Capabilities>().unwrap().regains_root());
    }
}
