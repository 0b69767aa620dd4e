//! Resource controls applied to a program just before it executes: scheduling priority (nice),
//! resource limits, the OOM killer's score, the CPU scheduler, the I/O priority and
//! `no_new_privs`. What init scripts set with `nice`, `ulimit`, `ionice`, `chrt` and
//! start-stop-daemon's `--nicelevel`/`--iosched`/`--procsched`, in one place.
//!
//! Everything is checked before anything forks ([`Resources::check`]); what can only fail in the
//! program's process (a limit above the hard limit without privilege) is reported by step, like
//! every other step after the fork. [`apply`](Resources::apply) makes system calls only, so it
//! runs between fork and exec; it runs before the privilege drop, because raising a limit,
//! lowering the nice value, a negative OOM score or a real-time policy need privilege that the
//! target user lacks.

use rustix::process::{Resource, Rlimit, geteuid, getpriority_process, getrlimit};

use crate::error::{Error, ErrorKind, Step};
use crate::handoff::{Decoder, Encoder};

/// A resource limit (`setrlimit(2)`), by the name `ulimit`, systemd (`LimitNOFILE=`) and
/// `/proc/PID/limits` use.
///
/// # Example
/// ```
/// use daemonic::Limit;
/// assert_eq!(Limit::from_name("nofile"), Some(Limit::NoFile));
/// assert_eq!(Limit::NoFile.name(), "nofile");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// Address space (`as`), bytes.
    As,
    /// Core file size (`core`), bytes.
    Core,
    /// CPU time (`cpu`), seconds.
    Cpu,
    /// Data segment (`data`), bytes.
    Data,
    /// File size (`fsize`), bytes.
    Fsize,
    /// File locks (`locks`).
    Locks,
    /// Locked memory (`memlock`), bytes.
    Memlock,
    /// POSIX message queues (`msgqueue`), bytes.
    Msgqueue,
    /// Nice ceiling (`nice`): 20 - the lowest nice value the process may set.
    Nice,
    /// Open files (`nofile`).
    NoFile,
    /// Processes of the user (`nproc`).
    Nproc,
    /// Resident set (`rss`), bytes (not enforced by Linux).
    Rss,
    /// Real-time priority ceiling (`rtprio`).
    Rtprio,
    /// Real-time CPU time without a blocking call (`rttime`), microseconds.
    Rttime,
    /// Queued signals (`sigpending`).
    Sigpending,
    /// Stack size (`stack`), bytes.
    Stack,
}

impl Limit {
    const ALL: [Limit; 16] = [
        Limit::As,
        Limit::Core,
        Limit::Cpu,
        Limit::Data,
        Limit::Fsize,
        Limit::Locks,
        Limit::Memlock,
        Limit::Msgqueue,
        Limit::Nice,
        Limit::NoFile,
        Limit::Nproc,
        Limit::Rss,
        Limit::Rtprio,
        Limit::Rttime,
        Limit::Sigpending,
        Limit::Stack,
    ];

    /// The limit's name: `nofile`, `core`, `memlock`, ...
    pub fn name(self) -> &'static str {
        match self {
            Limit::As => "as",
            Limit::Core => "core",
            Limit::Cpu => "cpu",
            Limit::Data => "data",
            Limit::Fsize => "fsize",
            Limit::Locks => "locks",
            Limit::Memlock => "memlock",
            Limit::Msgqueue => "msgqueue",
            Limit::Nice => "nice",
            Limit::NoFile => "nofile",
            Limit::Nproc => "nproc",
            Limit::Rss => "rss",
            Limit::Rtprio => "rtprio",
            Limit::Rttime => "rttime",
            Limit::Sigpending => "sigpending",
            Limit::Stack => "stack",
        }
    }

    /// The limit a name (as [`name`](Self::name) gives it, any case) stands for.
    pub fn from_name(name: &str) -> Option<Limit> {
        Limit::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name))
    }

    /// Every limit's name, for messages and completions.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Limit::ALL.into_iter().map(Limit::name)
    }

    fn resource(self) -> Resource {
        match self {
            Limit::As => Resource::As,
            Limit::Core => Resource::Core,
            Limit::Cpu => Resource::Cpu,
            Limit::Data => Resource::Data,
            Limit::Fsize => Resource::Fsize,
            Limit::Locks => Resource::Locks,
            Limit::Memlock => Resource::Memlock,
            Limit::Msgqueue => Resource::Msgqueue,
            Limit::Nice => Resource::Nice,
            Limit::NoFile => Resource::Nofile,
            Limit::Nproc => Resource::Nproc,
            Limit::Rss => Resource::Rss,
            Limit::Rtprio => Resource::Rtprio,
            Limit::Rttime => Resource::Rttime,
            Limit::Sigpending => Resource::Sigpending,
            Limit::Stack => Resource::Stack,
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Option<Limit> {
        Limit::ALL.get(usize::from(code)).copied()
    }
}

/// "No limit", for a soft or hard value of [`Resources::limit`].
pub const UNLIMITED: u64 = to_u64(libc::RLIM_INFINITY);

/// `rlim_t` is `u64` on Linux and `i64` on some BSDs (where infinity is the largest value).
#[allow(clippy::unnecessary_cast)]
const fn to_u64(value: libc::rlim_t) -> u64 {
    value as u64
}

/// A limit value as rustix takes and gives it: `None` for no limit.
fn rlim(value: u64) -> Option<u64> {
    (value != UNLIMITED).then_some(value)
}

/// A CPU scheduling policy (`sched(7)`), as `chrt` names them.
///
/// # Example
/// ```
/// use daemonic::Scheduler;
/// assert_eq!(Scheduler::from_name("fifo"), Some(Scheduler::Fifo));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheduler {
    /// The default time-sharing policy (`other`).
    Other,
    /// Time-sharing for batch work (`batch`).
    Batch,
    /// Only when nothing else wants the CPU (`idle`).
    Idle,
    /// Real-time, first in first out (`fifo`; priority 1-99).
    Fifo,
    /// Real-time, round robin (`rr`; priority 1-99).
    RoundRobin,
}

impl Scheduler {
    const ALL: [Scheduler; 5] = [
        Scheduler::Other,
        Scheduler::Batch,
        Scheduler::Idle,
        Scheduler::Fifo,
        Scheduler::RoundRobin,
    ];

    /// The policy's name: `other`, `batch`, `idle`, `fifo` or `rr`.
    pub fn name(self) -> &'static str {
        match self {
            Scheduler::Other => "other",
            Scheduler::Batch => "batch",
            Scheduler::Idle => "idle",
            Scheduler::Fifo => "fifo",
            Scheduler::RoundRobin => "rr",
        }
    }

    /// The policy a name stands for.
    pub fn from_name(name: &str) -> Option<Scheduler> {
        Scheduler::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// Whether the policy is real-time (takes a priority of 1-99).
    pub fn is_realtime(self) -> bool {
        matches!(self, Scheduler::Fifo | Scheduler::RoundRobin)
    }

    #[cfg(target_os = "linux")]
    fn policy(self) -> libc::c_int {
        match self {
            Scheduler::Other => libc::SCHED_OTHER,
            Scheduler::Batch => libc::SCHED_BATCH,
            Scheduler::Idle => libc::SCHED_IDLE,
            Scheduler::Fifo => libc::SCHED_FIFO,
            Scheduler::RoundRobin => libc::SCHED_RR,
        }
    }
}

/// An I/O scheduling class (`ioprio_set(2)`), as `ionice` names them.
///
/// # Example
/// ```
/// use daemonic::IoClass;
/// assert_eq!(IoClass::from_name("best-effort"), Some(IoClass::BestEffort));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IoClass {
    /// Served first (`realtime`; level 0-7, 0 highest). Needs privilege.
    Realtime,
    /// The default (`best-effort`; level 0-7, 4 by default).
    BestEffort,
    /// Only when no other process wants the disk (`idle`).
    Idle,
}

impl IoClass {
    /// The class's name: `realtime`, `best-effort` or `idle`.
    pub fn name(self) -> &'static str {
        match self {
            IoClass::Realtime => "realtime",
            IoClass::BestEffort => "best-effort",
            IoClass::Idle => "idle",
        }
    }

    /// The class a name (or `ionice`'s number, 1-3) stands for.
    pub fn from_name(name: &str) -> Option<IoClass> {
        [IoClass::Realtime, IoClass::BestEffort, IoClass::Idle]
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name) || c.number().to_string() == name)
    }

    fn number(self) -> u8 {
        match self {
            IoClass::Realtime => 1,
            IoClass::BestEffort => 2,
            IoClass::Idle => 3,
        }
    }
}

/// The resource controls for a program: nothing by default (it inherits what the caller has).
///
/// # Example
/// ```
/// use daemonic::{Limit, Resources, Scheduler, UNLIMITED};
/// let resources = Resources::new()
///     .nice(5)
///     .limit(Limit::NoFile, 65536, 65536)
///     .limit(Limit::Core, UNLIMITED, UNLIMITED)
///     .oom_score_adj(-500)
///     .scheduler(Scheduler::Batch, 0)
///     .no_new_privs(true);
/// resources.check()?;
/// # Ok::<(), daemonic::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    nice: Option<i32>,
    limits: Vec<(Limit, u64, u64)>,
    oom_score_adj: Option<i32>,
    scheduler: Option<(Scheduler, i32)>,
    io: Option<(IoClass, u8)>,
    no_new_privs: bool,
}

impl Resources {
    /// No controls: the program inherits the caller's.
    pub fn new() -> Resources {
        Resources::default()
    }

    /// The nice value, -20 (most favoured) to 19; a negative one needs privilege.
    pub fn nice(mut self, value: i32) -> Resources {
        self.nice = Some(value);
        self
    }

    /// A resource limit, soft and hard ([`UNLIMITED`] for none); a later call for the same
    /// limit replaces an earlier one. A hard limit above the current one needs privilege.
    pub fn limit(mut self, limit: Limit, soft: u64, hard: u64) -> Resources {
        self.limits.retain(|(l, _, _)| *l != limit);
        self.limits.push((limit, soft, hard));
        self
    }

    /// The OOM killer's adjustment, -1000 (never kill) to 1000 (kill first); lowering it below
    /// the caller's needs privilege. Linux.
    pub fn oom_score_adj(mut self, value: i32) -> Resources {
        self.oom_score_adj = Some(value);
        self
    }

    /// The CPU scheduling policy and, for a real-time one, its priority (1-99; 0 otherwise).
    /// Linux.
    pub fn scheduler(mut self, policy: Scheduler, priority: i32) -> Resources {
        self.scheduler = Some((policy, priority));
        self
    }

    /// The I/O scheduling class and level (0-7, 0 highest; ignored for idle). Linux.
    pub fn io_priority(mut self, class: IoClass, level: u8) -> Resources {
        self.io = Some((class, level));
        self
    }

    /// Sets `no_new_privs`: the program and everything it executes can never gain privileges
    /// (setuid binaries, file capabilities). Linux.
    pub fn no_new_privs(mut self, on: bool) -> Resources {
        self.no_new_privs = on;
        self
    }

    /// Whether a value is given for `limit`.
    pub fn sets(&self, limit: Limit) -> bool {
        self.limits.iter().any(|(l, _, _)| *l == limit)
    }

    /// Checks every value before anything forks: ranges, a soft limit above its hard one, and
    /// a hard limit above the current one without privilege.
    pub fn check(&self) -> Result<(), Error> {
        let invalid =
            |step: Step, message: String| Err(Error::new(ErrorKind::InvalidInput, step, message));
        if let Some(n) = self.nice
            && !(-20..=19).contains(&n)
        {
            return invalid(
                Step::Nice,
                format!("nice value {n} is out of range (-20 to 19)"),
            );
        }
        // Below the current value needs privilege, or an RLIMIT_NICE that allows it.
        if let Some(n) = self.nice
            && let Ok(current) = getpriority_process(None)
        {
            let soft = getrlimit(Resource::Nice).current.unwrap_or(UNLIMITED);
            let ceiling = 20 - i64::try_from(soft).unwrap_or(0).min(40);
            if !geteuid().is_root() && n < current && i64::from(n) < ceiling {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    Step::Nice,
                    format!("nice value {n} is below the current {current}: that needs root"),
                ));
            }
        }
        for &(limit, soft, hard) in &self.limits {
            let name = limit.name();
            if soft > hard {
                return invalid(
                    Step::Rlimit,
                    format!(
                        "{name}: the soft limit {} is above the hard limit {}",
                        show(soft),
                        show(hard)
                    ),
                );
            }
            for value in [soft, hard] {
                if value != UNLIMITED && value > to_u64(libc::rlim_t::MAX) {
                    return invalid(
                        Step::Rlimit,
                        format!("{name}: {value} is too large for this system"),
                    );
                }
            }
            #[cfg(target_os = "linux")]
            if limit == Limit::NoFile
                && let Some(most) = std::fs::read_to_string("/proc/sys/fs/nr_open")
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
                && hard > most
            {
                return invalid(
                    Step::Rlimit,
                    format!(
                        "nofile: {} is above the system's most, {most} (fs.nr_open)",
                        show(hard)
                    ),
                );
            }
            let current = getrlimit(limit.resource()).maximum.unwrap_or(UNLIMITED);
            if hard > current && !geteuid().is_root() {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    Step::Rlimit,
                    format!(
                        "{name}: raising the hard limit from {} to {} needs root",
                        show(current),
                        show(hard)
                    ),
                ));
            }
        }
        if let Some(n) = self.oom_score_adj
            && !(-1000..=1000).contains(&n)
        {
            return invalid(
                Step::OomScoreAdj,
                format!("OOM score adjustment {n} is out of range (-1000 to 1000)"),
            );
        }
        if let Some((policy, priority)) = self.scheduler {
            let range = if policy.is_realtime() { 1..=99 } else { 0..=0 };
            if !range.contains(&priority) {
                return invalid(
                    Step::Scheduler,
                    format!(
                        "priority {priority} does not fit scheduling policy {} ({})",
                        policy.name(),
                        if policy.is_realtime() {
                            "1 to 99"
                        } else {
                            "only 0"
                        }
                    ),
                );
            }
        }
        if let Some((class, level)) = self.io
            && level > 7
        {
            return invalid(
                Step::IoPriority,
                format!(
                    "I/O priority level {level} for class {} is out of range (0 to 7)",
                    class.name()
                ),
            );
        }
        #[cfg(not(target_os = "linux"))]
        if self.oom_score_adj.is_some()
            || self.scheduler.is_some()
            || self.io.is_some()
            || self.no_new_privs
        {
            return invalid(
                Step::Scheduler,
                "OOM score, scheduler, I/O priority and no_new_privs are Linux-only".into(),
            );
        }
        Ok(())
    }

    /// Applies the controls to the calling process: system calls only (between fork and exec).
    /// On failure, the step and the error.
    ///
    /// References: setrlimit(2), setpriority(2), proc_pid_oom_score_adj(5), sched_setscheduler(2),
    /// ioprio_set(2), PR_SET_NO_NEW_PRIVS in prctl(2).
    pub(crate) fn apply(&self) -> Result<(), (Step, std::io::Error)> {
        for &(limit, soft, hard) in &self.limits {
            let value = Rlimit {
                current: rlim(soft),
                maximum: rlim(hard),
            };
            rustix::process::setrlimit(limit.resource(), value)
                .map_err(|e| (Step::Rlimit, e.into()))?;
        }
        if let Some(n) = self.nice {
            rustix::process::setpriority_process(None, n).map_err(|e| (Step::Nice, e.into()))?;
        }
        #[cfg(target_os = "linux")]
        {
            let last = std::io::Error::last_os_error;
            if let Some(n) = self.oom_score_adj {
                write_oom_score_adj(n).map_err(|e| (Step::OomScoreAdj, e))?;
            }
            if let Some((policy, priority)) = self.scheduler {
                // libc: rustix has no wrapper for sched_setscheduler.
                let param = libc::sched_param {
                    sched_priority: priority,
                };
                // SAFETY: sched_setscheduler reads the struct we pass.
                if unsafe { libc::sched_setscheduler(0, policy.policy(), &param) } != 0 {
                    return Err((Step::Scheduler, last()));
                }
            }
            if let Some((class, level)) = self.io {
                // ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | level).
                // libc: rustix has no wrapper for ioprio_set (nor has the C library).
                let value = (libc::c_long::from(class.number()) << 13) | libc::c_long::from(level);
                // SAFETY: a raw system call with integer arguments only.
                if unsafe {
                    libc::syscall(
                        libc::SYS_ioprio_set,
                        1 as libc::c_long,
                        0 as libc::c_long,
                        value,
                    )
                } != 0
                {
                    return Err((Step::IoPriority, last()));
                }
            }
            if self.no_new_privs {
                rustix::thread::set_no_new_privs(true).map_err(|e| (Step::NoNewPrivs, e.into()))?;
            }
        }
        Ok(())
    }

    pub(crate) fn encode(&self, e: &mut Encoder) {
        e.option(self.nice.as_ref(), |e, n| e.i32(*n));
        e.u32(self.limits.len() as u32);
        for &(limit, soft, hard) in &self.limits {
            e.u8(limit.code());
            e.u64(soft);
            e.u64(hard);
        }
        e.option(self.oom_score_adj.as_ref(), |e, n| e.i32(*n));
        e.option(self.scheduler.as_ref(), |e, (policy, priority)| {
            e.u8(*policy as u8);
            e.i32(*priority);
        });
        e.option(self.io.as_ref(), |e, (class, level)| {
            e.u8(class.number());
            e.u8(*level);
        });
        e.bool(self.no_new_privs);
    }

    pub(crate) fn decode(d: &mut Decoder<'_>) -> Option<Resources> {
        let nice = d.option(Decoder::i32)?;
        let n = d.u32()? as usize;
        let mut limits = Vec::with_capacity(n.min(Limit::ALL.len()));
        for _ in 0..n {
            limits.push((Limit::from_code(d.u8()?)?, d.u64()?, d.u64()?));
        }
        let oom_score_adj = d.option(Decoder::i32)?;
        let scheduler =
            d.option(|d| Some((*Scheduler::ALL.get(usize::from(d.u8()?))?, d.i32()?)))?;
        let io = d.option(|d| {
            let class = match d.u8()? {
                1 => IoClass::Realtime,
                2 => IoClass::BestEffort,
                3 => IoClass::Idle,
                _ => return None,
            };
            Some((class, d.u8()?))
        })?;
        let no_new_privs = d.bool()?;
        Some(Resources {
            nice,
            limits,
            oom_score_adj,
            scheduler,
            io,
            no_new_privs,
        })
    }
}

/// A limit value as `/proc/PID/limits` and `ulimit` show it.
fn show(value: u64) -> String {
    if value == UNLIMITED {
        "unlimited".into()
    } else {
        value.to_string()
    }
}

/// Writes `/proc/self/oom_score_adj` with system calls only (no allocation: a stack buffer, and
/// the path as a `&CStr`, which rustix does not copy).
#[cfg(target_os = "linux")]
fn write_oom_score_adj(value: i32) -> std::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let mut buf = [0u8; 13];
    let text = oom_text(value, &mut buf);
    let fd = rustix::fs::open(
        c"/proc/self/oom_score_adj",
        OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    match rustix::io::write(&fd, text)? {
        n if n == text.len() => Ok(()),
        // Not seen for a few bytes to /proc; the kernel would have taken part of a number.
        _ => Err(std::io::Error::from_raw_os_error(libc::EIO)),
    }
}

/// `value` and a newline, as /proc/PID/oom_score_adj takes it, in `buf`.
fn oom_text(value: i32, buf: &mut [u8; 13]) -> &[u8] {
    let mut digits = [0u8; 12];
    let n = crate::pidfile::format_decimal(value.unsigned_abs(), &mut digits);
    let sign = usize::from(value < 0);
    buf[0] = b'-';
    buf[sign..sign + n].copy_from_slice(&digits[..n]);
    &buf[..sign + n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_encoding_too() {
        for limit in Limit::ALL {
            assert_eq!(Limit::from_name(limit.name()), Some(limit));
            assert_eq!(Limit::from_code(limit.code()), Some(limit));
        }
        assert_eq!(Limit::from_name("NOFILE"), Some(Limit::NoFile));
        assert_eq!(Limit::from_name("files"), None);
        assert_eq!(IoClass::from_name("3"), Some(IoClass::Idle));
        let r = Resources::new()
            .nice(-3)
            .limit(Limit::NoFile, 100, 200)
            .limit(Limit::Core, UNLIMITED, UNLIMITED)
            .oom_score_adj(-17)
            .scheduler(Scheduler::RoundRobin, 10)
            .io_priority(IoClass::BestEffort, 6)
            .no_new_privs(true);
        let mut e = Encoder::default();
        r.encode(&mut e);
        let mut d = Decoder::new(&e.bytes);
        assert_eq!(Resources::decode(&mut d), Some(r));
        assert!(d.is_done());
    }

    #[test]
    fn oom_scores_are_written_as_the_kernel_reads_them() {
        // Lowering a score needs CAP_SYS_RESOURCE, which the test machines' root may lack: the
        // negative case is checked here, the write itself by the keeper test (a positive one).
        let mut buf = [0u8; 13];
        assert_eq!(oom_text(-1000, &mut buf), b"-1000\n");
        assert_eq!(oom_text(0, &mut buf), b"0\n");
        assert_eq!(oom_text(300, &mut buf), b"300\n");
    }

    #[test]
    fn out_of_range_values_are_refused_naming_them() {
        let message = |r: Resources| r.check().unwrap_err().to_string();
        assert!(message(Resources::new().nice(20)).contains("nice value 20"));
        assert!(
            message(Resources::new().limit(Limit::NoFile, 10, 5))
                .contains("nofile: the soft limit 10")
        );
        assert!(message(Resources::new().oom_score_adj(1001)).contains("1001"));
        assert!(message(Resources::new().scheduler(Scheduler::Fifo, 0)).contains("fifo"));
        assert!(message(Resources::new().scheduler(Scheduler::Batch, 3)).contains("only 0"));
        assert!(message(Resources::new().io_priority(IoClass::BestEffort, 8)).contains("0 to 7"));
        assert!(Resources::new().limit(Limit::Core, 0, 0).check().is_ok());
        assert_eq!(Limit::from_name("nofile").map(|l| l.name()), Some("nofile"));
    }
}
