//! The keeper's behaviour: one table from (phase, event) to the next phase and a short list of
//! effects, in the manner of s6-supervise. No I/O happens here: the keeper's loop
//! ([`crate::keeper`]) turns system events into [`Event`]s, feeds them to [`Machine::on`], and
//! carries out the [`Effect`]s. Time and randomness come in from outside, so the table is tested
//! by scripts of events.

use std::time::{Duration, Instant};

use crate::handoff::{Decoder, Encoder};
use crate::status::{Exit, FailReason, ServiceState};
use crate::stop::{Action, Schedule};

/// When the keeper starts the program again after it exits.
///
/// # Example
/// ```
/// use daemonic::Restart;
/// assert_eq!("on-failure".parse::<Restart>(), Ok(Restart::OnFailure));
/// assert!("sometimes".parse::<Restart>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Restart {
    /// Never: the keeper records the exit and leaves.
    #[default]
    No,
    /// After a failure: a non-zero exit, a core dump, or a signal the keeper did not send.
    OnFailure,
    /// After every exit.
    Always,
}

impl std::str::FromStr for Restart {
    type Err = String;

    fn from_str(text: &str) -> Result<Restart, String> {
        match text {
            "no" => Ok(Restart::No),
            "on-failure" => Ok(Restart::OnFailure),
            "always" => Ok(Restart::Always),
            _ => Err(format!("{text:?}: expected no, on-failure or always")),
        }
    }
}

/// How the keeper treats the program over its life: restarts, backoff, give-up, readiness by
/// time, and the stop schedule it uses on its own (on `SIGTERM`, and for what an exited program
/// left behind).
///
/// # Example
/// ```
/// use std::time::Duration;
/// use daemonic::{Policy, Restart};
/// let policy = Policy::new()
///     .restart(Restart::OnFailure)
///     .restart_delay(Duration::from_millis(500))
///     .give_up(5, Duration::from_secs(60));
/// assert_eq!(policy.restart_mode(), Restart::OnFailure);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    restart: Restart,
    stable_after: Duration,
    restart_delay: Duration,
    restart_max_delay: Duration,
    give_up: Option<(u32, Duration)>,
    ready_after: Option<Duration>,
    forking: Option<std::path::PathBuf>,
    stop: Schedule,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy::new()
    }
}

impl Policy {
    /// Default stable-run length: a run this long (ready this long) resets the backoff.
    pub const STABLE_AFTER: Duration = Duration::from_secs(10);
    /// Default first delay after a quick failure.
    pub const RESTART_DELAY: Duration = Duration::from_secs(1);
    /// Default longest delay.
    pub const RESTART_MAX_DELAY: Duration = Duration::from_secs(60);

    /// No restarts, 10 s stable runs, 1 s first delay doubling to 60 s, never give up, stop
    /// schedule `TERM/10/KILL/5`.
    pub fn new() -> Policy {
        Policy {
            restart: Restart::No,
            stable_after: Policy::STABLE_AFTER,
            restart_delay: Policy::RESTART_DELAY,
            restart_max_delay: Policy::RESTART_MAX_DELAY,
            give_up: None,
            ready_after: None,
            forking: None,
            stop: Schedule::default(),
        }
    }

    /// When to restart.
    #[must_use]
    pub fn restart(mut self, restart: Restart) -> Policy {
        self.restart = restart;
        self
    }

    /// A run at least this long (ready this long, for programs with a readiness protocol) was
    /// stable: the program is restarted at once and the delay resets.
    #[must_use]
    pub fn stable_after(mut self, duration: Duration) -> Policy {
        self.stable_after = duration;
        self
    }

    /// The delay after the first quick failure; it doubles (with jitter) after each further one.
    #[must_use]
    pub fn restart_delay(mut self, delay: Duration) -> Policy {
        self.restart_delay = delay;
        self
    }

    /// The longest delay between restarts.
    #[must_use]
    pub fn restart_max_delay(mut self, delay: Duration) -> Policy {
        self.restart_max_delay = delay;
        self
    }

    /// Give up (state [`ServiceState::Failed`]) after `failures` failures within `window`.
    #[must_use]
    pub fn give_up(mut self, failures: u32, window: Duration) -> Policy {
        self.give_up = Some((failures.max(1), window));
        self
    }

    /// Counts a program without a readiness protocol as ready once it stayed up this long.
    #[must_use]
    pub fn ready_after(mut self, duration: Duration) -> Policy {
        self.ready_after = Some(duration);
        self
    }

    /// For a program that forks itself into the background (nginx without `daemon off;`): once
    /// the started process exits with status 0, the keeper follows the process named in
    /// `pidfile` (which the program writes itself), as systemd's `Type=forking` with `PIDFile=`.
    /// It must be a descendant of the keeper (its subreaper adopts it); the service is ready
    /// once it is found. When it exits and the file names another live descendant (a binary
    /// upgrade), that one is followed.
    #[must_use]
    pub fn forking(mut self, pidfile: impl Into<std::path::PathBuf>) -> Policy {
        self.forking = Some(crate::stdio::absolute(pidfile.into()));
        self
    }

    /// The program's own pidfile in forking mode.
    pub fn forking_pidfile(&self) -> Option<&std::path::Path> {
        self.forking.as_deref()
    }

    /// The schedule the keeper uses when it is told to stop with `SIGTERM` or `SIGINT`, and for
    /// processes an exited program left behind.
    #[must_use]
    pub fn stop_schedule(mut self, schedule: Schedule) -> Policy {
        self.stop = schedule;
        self
    }

    /// The restart mode.
    pub fn restart_mode(&self) -> Restart {
        self.restart
    }

    /// The stop schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.stop
    }
}

/// Where the keeper stands. Kept apart from the public [`ServiceState`] because a stop's
/// intention and schedule position are part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The program runs; `ready` once it said so (or at exec without a protocol).
    Up { ready: bool },
    /// Waiting until the deadline to start again.
    Backoff,
    /// Running a stop schedule until nothing of the service is left, then `then`.
    Stopping { then: Then, step: usize },
    /// The keeper leaves with this final state.
    Done(ServiceState),
}

/// What follows a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Then {
    /// Leave (a stop request, or the keeper's `SIGTERM`).
    Leave,
    /// Start the program again at once (a restart request).
    Restart,
    /// The program exited by itself: decide by the policy.
    Decide,
}

/// What happens to the keeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// The program was executed with this pid.
    Spawned(u32),
    /// The program could not be started (its setup or exec failed).
    SpawnFailed,
    /// The program said it is ready.
    Ready,
    /// The program was reaped; `alone` when no other process of the service remains.
    Exited { exit: Exit, alone: bool },
    /// No process of the service remains.
    Empty,
    /// The deadline passed.
    Timer,
    /// Stop everything, then leave.
    Stop(Schedule),
    /// Stop everything, then start again at once.
    Restart(Schedule),
    /// Pass a signal on (to the program, or its whole process group).
    Forward { signal: i32, group: bool },
    /// Forking mode: the started process exited with status 0; its daemon is being looked for.
    Forked,
    /// Forking mode: the program's daemon runs with this pid (first found, or a successor).
    MainPid(u32),
}

/// Who a signal is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The program alone.
    Program,
    /// The program's process group.
    Group,
    /// Every process of the service: the program's group and every descendant of the keeper.
    Service,
}

/// What the keeper must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Start the program and feed back [`Event::Spawned`] or [`Event::SpawnFailed`].
    Spawn,
    /// Send a signal.
    Signal(i32, Target),
    /// Replace the status record.
    Publish,
}

/// The keeper's state and memory.
#[derive(Debug)]
pub(crate) struct Machine {
    policy: Policy,
    phase: Phase,
    /// The program's pid while it runs (not yet reaped).
    pid: Option<u32>,
    started_at: Instant,
    ready_at: Option<Instant>,
    /// Whether the program speaks a readiness protocol (else it is ready at exec, or after
    /// `ready_after`).
    has_protocol: bool,
    /// Whether a stop schedule signalled the program since it started: its death is expected.
    signalled: bool,
    /// Signals passed on to the program since it started (bit n-1 for signal n): a death by
    /// one of these is expected, a death by any other is not (a SEGV after a logrotate HUP is a
    /// crash).
    forwarded: u64,
    last_exit: Option<(Exit, Duration)>,
    restarts: u32,
    /// Consecutive quick failures.
    quick: u32,
    /// Times of recent failures, for the give-up window.
    failures: Vec<Instant>,
    deadline: Option<Instant>,
    /// The schedule of the stop in progress.
    schedule: Schedule,
    /// The stop schedule ran out and something still lives.
    overrun: bool,
    reason: Option<FailReason>,
    rng: u64,
}

impl Machine {
    /// A keeper about to start its program for the first time: the caller carries out
    /// [`Effect::Spawn`] next.
    pub(crate) fn new(policy: Policy, has_protocol: bool, seed: u64) -> Machine {
        // A forking program is ready when its daemon is found: that is its readiness protocol.
        let has_protocol = has_protocol || policy.forking.is_some();
        let now = Instant::now();
        Machine {
            schedule: policy.stop.clone(),
            policy,
            phase: Phase::Up { ready: false },
            pid: None,
            started_at: now,
            ready_at: None,
            has_protocol,
            signalled: false,
            forwarded: 0,
            last_exit: None,
            restarts: 0,
            quick: 0,
            failures: Vec::new(),
            deadline: None,
            overrun: false,
            reason: None,
            rng: seed | 1,
        }
    }

    pub(crate) fn phase(&self) -> &Phase {
        &self.phase
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub(crate) fn restarts(&self) -> u32 {
        self.restarts
    }

    pub(crate) fn quick_failures(&self) -> u32 {
        self.quick
    }

    pub(crate) fn last_exit(&self) -> Option<(Exit, Duration)> {
        self.last_exit
    }

    pub(crate) fn reason(&self) -> Option<FailReason> {
        self.reason
    }

    pub(crate) fn overrun(&self) -> bool {
        self.overrun
    }

    /// How long the current run has lasted.
    pub(crate) fn run_time(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started_at)
    }

    pub(crate) fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Up { ready: true })
    }

    /// The public state this phase shows.
    pub(crate) fn state(&self) -> ServiceState {
        match &self.phase {
            Phase::Up { ready: false } => ServiceState::Starting,
            Phase::Up { ready: true } if self.has_protocol || self.policy.ready_after.is_some() => {
                ServiceState::Ready
            }
            Phase::Up { ready: true } => ServiceState::Running,
            Phase::Backoff => ServiceState::Backoff,
            Phase::Stopping { .. } => ServiceState::Stopping,
            Phase::Done(state) => *state,
        }
    }

    /// The table: every (phase, event) pair names its action.
    pub(crate) fn on(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        use Event as E;
        use Phase as P;
        match (self.phase.clone(), event) {
            (P::Up { .. }, E::Spawned(pid)) => self.spawned(pid, now),
            (P::Up { .. }, E::SpawnFailed) => self.spawn_failed(now),
            (P::Up { ready: false }, E::Ready) => self.ready(now),
            (P::Up { ready: true }, E::Ready) => nothing(),
            (P::Up { .. }, E::Exited { exit, alone }) => self.exited(exit, alone, now),
            (P::Up { ready: false }, E::Timer) => self.ready_by_time(now),
            (P::Up { ready: true }, E::Timer) => nothing(),
            (P::Up { .. }, E::Empty) => nothing(),
            (P::Up { .. } | P::Backoff, E::Stop(schedule)) => {
                self.begin_stop(Then::Leave, schedule, now)
            }
            (P::Up { .. }, E::Restart(schedule)) => self.begin_stop(Then::Restart, schedule, now),
            (P::Up { .. }, E::Forward { signal, group }) => self.forward(signal, group),
            (P::Up { .. }, E::Forked) => self.forked(),
            (P::Up { .. }, E::MainPid(pid)) => self.main_pid(pid, now),
            (P::Backoff | P::Stopping { .. }, E::Forked | E::MainPid(_)) => nothing(),
            (P::Backoff, E::Timer) => self.respawn(now),
            (P::Backoff, E::Restart(s)) => self.begin_stop(Then::Restart, s, now),
            (P::Backoff, E::Forward { .. }) => nothing(),
            (P::Backoff, E::Ready | E::Empty | E::Spawned(_) | E::SpawnFailed) => nothing(),
            (P::Backoff, E::Exited { .. }) => nothing(),
            (P::Stopping { then, .. }, E::Exited { exit, alone }) => {
                self.exited_while_stopping(then, exit, alone, now)
            }
            (P::Stopping { then, .. }, E::Empty) => self.emptied(then, now),
            (P::Stopping { then, step }, E::Timer) => self.run_schedule(then, step, now),
            (P::Stopping { then, step }, E::Stop(schedule)) => {
                self.restop(then, step, Then::Leave, schedule, now)
            }
            (P::Stopping { then, step }, E::Restart(schedule)) => {
                self.restop(then, step, Then::Restart, schedule, now)
            }
            (P::Stopping { .. }, E::Forward { signal, group }) => self.forward(signal, group),
            (P::Stopping { .. }, E::Ready | E::Spawned(_) | E::SpawnFailed) => nothing(),
            (P::Done(_), _) => nothing(),
        }
    }

    fn spawned(&mut self, pid: u32, now: Instant) -> Vec<Effect> {
        self.pid = Some(pid);
        self.started_at = now;
        self.ready_at = None;
        self.signalled = false;
        self.forwarded = 0;
        self.overrun = false;
        if let Some(after) = self.policy.ready_after.filter(|_| !self.has_protocol) {
            self.phase = Phase::Up { ready: false };
            self.deadline = Some(later(now, after));
        } else if self.has_protocol {
            self.phase = Phase::Up { ready: false };
            self.deadline = None;
        } else {
            self.phase = Phase::Up { ready: true };
            self.ready_at = Some(now);
            self.deadline = None;
        }
        vec![Effect::Publish]
    }

    fn forked(&mut self) -> Vec<Effect> {
        // The started process is gone (reaped): nothing to signal until its daemon is found.
        self.pid = None;
        vec![Effect::Publish]
    }

    fn main_pid(&mut self, pid: u32, now: Instant) -> Vec<Effect> {
        self.pid = Some(pid);
        if matches!(self.phase, Phase::Up { ready: false }) {
            return self.ready(now);
        }
        vec![Effect::Publish]
    }

    fn spawn_failed(&mut self, now: Instant) -> Vec<Effect> {
        self.pid = None;
        // An exec failure is the shell's 127; it counts as a quick failure like any other.
        self.last_exit = Some((Exit::Code(127), Duration::ZERO));
        self.reason = Some(FailReason::SpawnFailed);
        self.decide(Exit::Code(127), now)
    }

    fn ready(&mut self, now: Instant) -> Vec<Effect> {
        self.phase = Phase::Up { ready: true };
        self.ready_at = Some(now);
        self.deadline = None;
        vec![Effect::Publish]
    }

    fn ready_by_time(&mut self, now: Instant) -> Vec<Effect> {
        match self.deadline {
            Some(deadline) if now >= deadline && !self.has_protocol => self.ready(now),
            _ => nothing(),
        }
    }

    fn exited(&mut self, exit: Exit, alone: bool, now: Instant) -> Vec<Effect> {
        self.record_exit(exit, now);
        if alone {
            return self.decide(exit, now);
        }
        // What the program left behind goes before anything else happens.
        let schedule = self.policy.stop.clone();
        self.begin_stop(Then::Decide, schedule, now)
    }

    fn record_exit(&mut self, exit: Exit, now: Instant) {
        self.pid = None;
        self.last_exit = Some((exit, now.saturating_duration_since(self.started_at)));
    }

    fn exited_while_stopping(
        &mut self,
        then: Then,
        exit: Exit,
        alone: bool,
        now: Instant,
    ) -> Vec<Effect> {
        self.record_exit(exit, now);
        if alone {
            return self.emptied(then, now);
        }
        vec![Effect::Publish]
    }

    /// After the program (and all it left) is gone, by itself: restart, back off, or leave.
    fn decide(&mut self, exit: Exit, now: Instant) -> Vec<Effect> {
        self.deadline = None;
        let failure = match exit {
            Exit::Code(0) => false,
            Exit::Code(_) => true,
            Exit::Signal { core: true, .. } => true,
            Exit::Signal { signal, .. } => !(self.signalled || self.was_forwarded(signal)),
        };
        let again = match self.policy.restart {
            Restart::No => false,
            Restart::OnFailure => failure,
            Restart::Always => true,
        };
        if !again {
            let end = if self.reason == Some(FailReason::SpawnFailed) {
                ServiceState::Failed
            } else {
                ServiceState::Exited
            };
            self.phase = Phase::Done(end);
            return vec![Effect::Publish];
        }
        let stable_since = if self.has_protocol || self.policy.ready_after.is_some() {
            self.ready_at
        } else {
            Some(self.started_at)
        };
        let stable = self.reason != Some(FailReason::SpawnFailed)
            && stable_since.is_some_and(|since| {
                now.saturating_duration_since(since) >= self.policy.stable_after
            });
        if stable {
            self.quick = 0;
            return self.respawn(now);
        }
        if let Some((count, window)) = self.policy.give_up {
            self.failures
                .retain(|&t| now.saturating_duration_since(t) < window);
            self.failures.push(now);
            if self.failures.len() >= count as usize {
                self.reason = Some(FailReason::GaveUp);
                self.phase = Phase::Done(ServiceState::Failed);
                return vec![Effect::Publish];
            }
        }
        self.quick = self.quick.saturating_add(1);
        let delay = self.backoff_delay();
        self.phase = Phase::Backoff;
        self.deadline = Some(later(now, delay));
        vec![Effect::Publish]
    }

    /// `restart_delay × 2^(quick−1)`, capped, times a jitter factor in [0.8, 1.0] so that many
    /// services failing together do not restart in lockstep. The cap is never exceeded.
    pub(crate) fn backoff_delay(&mut self) -> Duration {
        let doublings = self.quick.saturating_sub(1).min(30);
        let base = self
            .policy
            .restart_delay
            .saturating_mul(1u32 << doublings)
            .min(self.policy.restart_max_delay);
        // xorshift64: the table stays deterministic for a given seed.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let permille = 800 + (self.rng % 201) as u32;
        base.checked_mul(permille).map_or(base, |d| d / 1000)
    }

    fn respawn(&mut self, _now: Instant) -> Vec<Effect> {
        self.restarts = self.restarts.saturating_add(1);
        self.deadline = None;
        self.reason = None;
        self.phase = Phase::Up { ready: false };
        vec![Effect::Spawn]
    }

    fn begin_stop(&mut self, then: Then, schedule: Schedule, now: Instant) -> Vec<Effect> {
        if self.phase == Phase::Backoff {
            // Nothing runs: a stop ends at once, a restart starts now.
            return self.emptied(then, now);
        }
        self.schedule = schedule;
        self.overrun = false;
        self.run_schedule(then, 0, now)
    }

    /// A second stop or restart while stopping: a stop wins over a restart; a new schedule
    /// replaces the old one from its start.
    fn restop(
        &mut self,
        current: Then,
        _step: usize,
        asked: Then,
        schedule: Schedule,
        now: Instant,
    ) -> Vec<Effect> {
        let then = match (current, asked) {
            (_, Then::Leave) | (Then::Leave, _) => Then::Leave,
            _ => asked,
        };
        self.schedule = schedule;
        self.overrun = false;
        self.run_schedule(then, 0, now)
    }

    /// Runs the schedule from `step` until a wait (deadline set) or its end (waits after a
    /// `KILL` get their grace: [`Schedule::step_to_run`]).
    fn run_schedule(&mut self, then: Then, step: usize, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        let mut step = step;
        // `step` follows a `forever` back round; a well-formed schedule waits after it.
        while let Some((action, next)) = self.schedule.step_to_run(step) {
            step = next;
            match action {
                Action::Signal(signal) => {
                    // Only a signal sent while the program runs explains its death; the
                    // leftovers of a program that already died do not excuse that death.
                    if self.pid.is_some() {
                        self.signalled = true;
                    }
                    effects.push(Effect::Signal(signal, Target::Service));
                    if signal != libc::SIGKILL && signal != libc::SIGCONT {
                        // A stopped process acts on TERM only once continued.
                        effects.push(Effect::Signal(libc::SIGCONT, Target::Service));
                    }
                }
                Action::Wait(duration) => {
                    self.phase = Phase::Stopping { then, step };
                    self.deadline = Some(later(now, duration));
                    effects.push(Effect::Publish);
                    return effects;
                }
                // Never returned by `step_to_run`.
                Action::Forever => {}
            }
        }
        // The schedule ran out with something still alive: keep waiting for it, say so.
        self.phase = Phase::Stopping { then, step };
        self.deadline = None;
        self.overrun = true;
        effects.push(Effect::Publish);
        effects
    }

    fn emptied(&mut self, then: Then, now: Instant) -> Vec<Effect> {
        self.deadline = None;
        self.overrun = false;
        match then {
            Then::Leave => {
                self.phase = Phase::Done(ServiceState::Stopped);
                vec![Effect::Publish]
            }
            Then::Restart => {
                self.quick = 0;
                self.respawn(now)
            }
            Then::Decide => match self.last_exit {
                Some((exit, _)) => self.decide(exit, now),
                None => {
                    self.phase = Phase::Done(ServiceState::Exited);
                    vec![Effect::Publish]
                }
            },
        }
    }

    fn was_forwarded(&self, signal: i32) -> bool {
        (1..=64).contains(&signal) && self.forwarded & (1u64 << (signal - 1)) != 0
    }

    fn forward(&mut self, signal: i32, group: bool) -> Vec<Effect> {
        if self.pid.is_none() {
            return nothing();
        }
        if (1..=64).contains(&signal) {
            self.forwarded |= 1u64 << (signal - 1);
        }
        let target = if group {
            Target::Group
        } else {
            Target::Program
        };
        vec![Effect::Signal(signal, target)]
    }
}

fn nothing() -> Vec<Effect> {
    Vec::new()
}

/// `now + duration`, or as far as an `Instant` goes: a long wait must never panic the keeper.
fn later(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86400)))
        .unwrap_or(now)
}

// ---- across the keeper's re-exec (see crate::handoff) ------------------------------------

pub(crate) fn encode_schedule(e: &mut Encoder, schedule: &Schedule) {
    e.u32(schedule.actions().len() as u32);
    for action in schedule.actions() {
        match *action {
            Action::Signal(signal) => {
                e.u8(0);
                e.i32(signal);
            }
            Action::Wait(duration) => {
                e.u8(1);
                e.duration(duration);
            }
            Action::Forever => e.u8(2),
        }
    }
}

pub(crate) fn decode_schedule(d: &mut Decoder<'_>) -> Option<Schedule> {
    let n = d.u32()? as usize;
    let mut actions = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        actions.push(match d.u8()? {
            0 => Action::Signal(d.i32()?),
            1 => Action::Wait(d.duration()?),
            2 => Action::Forever,
            _ => return None,
        });
    }
    Schedule::from_actions(actions)
}

fn encode_exit(e: &mut Encoder, exit: Exit) {
    match exit {
        Exit::Code(code) => {
            e.u8(0);
            e.i32(code);
        }
        Exit::Signal { signal, core } => {
            e.u8(if core { 2 } else { 1 });
            e.i32(signal);
        }
    }
}

fn decode_exit(d: &mut Decoder<'_>) -> Option<Exit> {
    Some(match d.u8()? {
        0 => Exit::Code(d.i32()?),
        kind @ (1 | 2) => Exit::Signal {
            signal: d.i32()?,
            core: kind == 2,
        },
        _ => return None,
    })
}

impl Policy {
    pub(crate) fn encode(&self, e: &mut Encoder) {
        e.u8(match self.restart {
            Restart::No => 0,
            Restart::OnFailure => 1,
            Restart::Always => 2,
        });
        e.duration(self.stable_after);
        e.duration(self.restart_delay);
        e.duration(self.restart_max_delay);
        e.option(self.give_up, |e, (n, window)| {
            e.u32(n);
            e.duration(window);
        });
        e.option(self.ready_after, Encoder::duration);
        e.option(self.forking.as_ref(), |e, p| {
            e.bytes(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()))
        });
        encode_schedule(e, &self.stop);
    }

    pub(crate) fn decode(d: &mut Decoder<'_>) -> Option<Policy> {
        let restart = match d.u8()? {
            0 => Restart::No,
            1 => Restart::OnFailure,
            2 => Restart::Always,
            _ => return None,
        };
        Some(Policy {
            restart,
            stable_after: d.duration()?,
            restart_delay: d.duration()?,
            restart_max_delay: d.duration()?,
            give_up: d.option(|d| Some((d.u32()?, d.duration()?)))?,
            ready_after: d.option(Decoder::duration)?,
            forking: d.option(|d| {
                let bytes = d.bytes()?;
                Some(std::path::PathBuf::from(
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes),
                ))
            })?,
            stop: decode_schedule(d)?,
        })
    }
}

impl Machine {
    /// Everything the table remembers, instants as distances from `now`.
    pub(crate) fn encode(&self, e: &mut Encoder, now: Instant) {
        self.policy.encode(e);
        match &self.phase {
            Phase::Up { ready } => {
                e.u8(0);
                e.bool(*ready);
            }
            Phase::Backoff => e.u8(1),
            Phase::Stopping { then, step } => {
                e.u8(2);
                e.u8(match then {
                    Then::Leave => 0,
                    Then::Restart => 1,
                    Then::Decide => 2,
                });
                e.u32(*step as u32);
            }
            Phase::Done(state) => {
                e.u8(3);
                e.u8(ServiceState::ALL
                    .iter()
                    .position(|s| s == state)
                    .unwrap_or(0) as u8);
            }
        }
        e.option(self.pid, Encoder::u32);
        e.instant(self.started_at, now);
        e.option(self.ready_at, |e, t| e.instant(t, now));
        e.bool(self.has_protocol);
        e.bool(self.signalled);
        e.u64(self.forwarded);
        e.option(self.last_exit, |e, (exit, ran)| {
            encode_exit(e, exit);
            e.duration(ran);
        });
        e.u32(self.restarts);
        e.u32(self.quick);
        e.u32(self.failures.len() as u32);
        for t in &self.failures {
            e.instant(*t, now);
        }
        e.option(self.deadline, |e, t| e.instant(t, now));
        encode_schedule(e, &self.schedule);
        e.bool(self.overrun);
        e.option(self.reason, |e, r| {
            e.u8(match r {
                FailReason::GaveUp => 0,
                FailReason::SpawnFailed => 1,
                FailReason::NotReady => 2,
            })
        });
        e.u64(self.rng);
    }

    pub(crate) fn decode(d: &mut Decoder<'_>, now: Instant) -> Option<Machine> {
        let policy = Policy::decode(d)?;
        let phase = match d.u8()? {
            0 => Phase::Up { ready: d.bool()? },
            1 => Phase::Backoff,
            2 => Phase::Stopping {
                then: match d.u8()? {
                    0 => Then::Leave,
                    1 => Then::Restart,
                    2 => Then::Decide,
                    _ => return None,
                },
                step: d.u32()? as usize,
            },
            3 => Phase::Done(*ServiceState::ALL.get(usize::from(d.u8()?))?),
            _ => return None,
        };
        let pid = d.option(Decoder::u32)?;
        let started_at = d.instant(now)?;
        let ready_at = d.option(|d| d.instant(now))?;
        let has_protocol = d.bool()?;
        let signalled = d.bool()?;
        let forwarded = d.u64()?;
        let last_exit = d.option(|d| Some((decode_exit(d)?, d.duration()?)))?;
        let restarts = d.u32()?;
        let quick = d.u32()?;
        let n = d.u32()? as usize;
        let mut failures = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            failures.push(d.instant(now)?);
        }
        let deadline = d.option(|d| d.instant(now))?;
        let schedule = decode_schedule(d)?;
        let overrun = d.bool()?;
        let reason = d.option(|d| match d.u8()? {
            0 => Some(FailReason::GaveUp),
            1 => Some(FailReason::SpawnFailed),
            2 => Some(FailReason::NotReady),
            _ => None,
        })?;
        let rng = d.u64()?;
        Some(Machine {
            policy,
            phase,
            pid,
            started_at,
            ready_at,
            has_protocol,
            signalled,
            forwarded,
            last_exit,
            restarts,
            quick,
            failures,
            deadline,
            schedule,
            overrun,
            reason,
            rng,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stop::KILL_GRACE;

    const MS: Duration = Duration::from_millis(1);

    fn machine(policy: Policy) -> (Machine, Instant) {
        let now = Instant::now();
        let mut m = Machine::new(policy, false, 42);
        assert_eq!(m.on(Event::Spawned(100), now), vec![Effect::Publish]);
        (m, now)
    }

    fn exit(code: i32) -> Event {
        Event::Exited {
            exit: Exit::Code(code),
            alone: true,
        }
    }

    #[test]
    fn restart_no_records_the_exit_and_leaves() {
        let (mut m, t) = machine(Policy::new());
        assert_eq!(m.state(), ServiceState::Running);
        m.on(exit(3), t + 5 * MS);
        assert_eq!(m.state(), ServiceState::Exited);
        assert_eq!(m.last_exit(), Some((Exit::Code(3), 5 * MS)));
        assert_eq!(m.on(Event::Timer, t + 10 * MS), vec![]);
    }

    #[test]
    fn on_failure_restarts_a_stable_run_at_once_and_not_a_success() {
        let policy = Policy::new()
            .restart(Restart::OnFailure)
            .stable_after(Duration::from_secs(1));
        let (mut m, t) = machine(policy);
        let later = t + Duration::from_secs(2);
        let kill = Event::Exited {
            exit: Exit::Signal {
                signal: 9,
                core: false,
            },
            alone: true,
        };
        assert_eq!(m.on(kill, later), vec![Effect::Spawn]);
        assert_eq!(m.restarts(), 1);
        m.on(Event::Spawned(101), later);
        assert_eq!(
            m.on(exit(0), later + Duration::from_secs(5)),
            vec![Effect::Publish]
        );
        assert_eq!(m.state(), ServiceState::Exited);
    }

    #[test]
    fn quick_failures_back_off_doubling_with_jitter_up_to_the_cap() {
        let policy = Policy::new()
            .restart(Restart::Always)
            .restart_delay(Duration::from_secs(1))
            .restart_max_delay(Duration::from_secs(8));
        let (mut m, mut t) = machine(policy);
        let mut delays = Vec::new();
        for pid in 0..7 {
            t += MS;
            m.on(exit(1), t);
            assert_eq!(m.state(), ServiceState::Backoff);
            let deadline = m.deadline().unwrap();
            delays.push(deadline - t);
            assert_eq!(m.on(Event::Timer, deadline), vec![Effect::Spawn]);
            t = deadline;
            m.on(Event::Spawned(200 + pid), t);
        }
        let bounds = [1, 2, 4, 8, 8, 8, 8];
        for (delay, cap) in delays.iter().zip(bounds) {
            let cap = Duration::from_secs(cap);
            assert!(*delay <= cap && *delay >= cap * 8 / 10, "{delays:?}");
        }
        // A stable run resets the delay.
        t += Duration::from_secs(11);
        assert_eq!(m.on(exit(1), t), vec![Effect::Spawn]);
        assert_eq!(m.quick_failures(), 0);
    }

    #[test]
    fn give_up_ends_in_failed_with_the_reason() {
        let policy = Policy::new()
            .restart(Restart::Always)
            .restart_delay(MS)
            .give_up(3, Duration::from_secs(10));
        let (mut m, mut t) = machine(policy);
        for n in 0..3 {
            t += MS;
            m.on(exit(1), t);
            if n < 2 {
                assert_eq!(m.state(), ServiceState::Backoff);
                t = m.deadline().unwrap();
                m.on(Event::Timer, t);
                m.on(Event::Spawned(300 + n), t);
            }
        }
        assert_eq!(m.state(), ServiceState::Failed);
        assert_eq!(m.reason(), Some(FailReason::GaveUp));
    }

    #[test]
    fn a_signal_the_keeper_sent_is_not_a_failure() {
        let policy = Policy::new().restart(Restart::OnFailure);
        let (mut m, t) = machine(policy);
        assert_eq!(
            m.on(
                Event::Forward {
                    signal: libc::SIGTERM,
                    group: false
                },
                t
            ),
            vec![Effect::Signal(libc::SIGTERM, Target::Program)]
        );
        let term = Event::Exited {
            exit: Exit::Signal {
                signal: libc::SIGTERM,
                core: false,
            },
            alone: true,
        };
        m.on(term, t + MS);
        assert_eq!(m.state(), ServiceState::Exited);
    }

    #[test]
    fn a_forwarded_signal_excuses_only_a_death_by_that_signal() {
        let policy = Policy::new().restart(Restart::OnFailure).restart_delay(MS);
        let (mut m, t) = machine(policy);
        m.on(
            Event::Forward {
                signal: libc::SIGHUP,
                group: false,
            },
            t,
        );
        let segv = Event::Exited {
            exit: Exit::Signal {
                signal: libc::SIGSEGV,
                core: false,
            },
            alone: true,
        };
        m.on(segv, t + MS);
        assert_eq!(
            m.state(),
            ServiceState::Backoff,
            "a crash after a HUP is a crash"
        );
    }

    #[test]
    fn huge_delays_never_overflow() {
        let policy = Policy::new()
            .restart(Restart::Always)
            .restart_delay(Duration::MAX)
            .restart_max_delay(Duration::MAX);
        let (mut m, t) = machine(policy);
        m.on(exit(1), t + MS);
        assert_eq!(m.state(), ServiceState::Backoff);
        assert!(m.deadline().is_some());
    }

    #[test]
    fn stop_runs_the_schedule_against_the_whole_service_then_leaves() {
        let (mut m, t) = machine(Policy::new().restart(Restart::Always));
        let schedule: Schedule = "TERM/2/KILL/1".parse().unwrap();
        let effects = m.on(Event::Stop(schedule), t);
        assert_eq!(
            effects,
            vec![
                Effect::Signal(libc::SIGTERM, Target::Service),
                Effect::Signal(libc::SIGCONT, Target::Service),
                Effect::Publish
            ]
        );
        assert_eq!(m.deadline(), Some(t + Duration::from_secs(2)));
        // TERM ignored: KILL at the deadline.
        let effects = m.on(Event::Timer, t + Duration::from_secs(2));
        assert_eq!(effects[0], Effect::Signal(libc::SIGKILL, Target::Service));
        // The program dies, a grandchild lingers, then it is gone too.
        let killed = Event::Exited {
            exit: Exit::Signal {
                signal: 9,
                core: false,
            },
            alone: false,
        };
        m.on(killed, t + Duration::from_secs(2));
        assert_eq!(m.state(), ServiceState::Stopping);
        m.on(Event::Empty, t + Duration::from_secs(2));
        assert_eq!(m.state(), ServiceState::Stopped);
    }

    #[test]
    fn a_schedule_that_runs_out_is_an_overrun_and_keeps_waiting() {
        let (mut m, t) = machine(Policy::new());
        m.on(Event::Stop("TERM/1".parse().unwrap()), t);
        m.on(Event::Timer, t + Duration::from_secs(1));
        assert!(m.overrun());
        assert_eq!(m.state(), ServiceState::Stopping);
        m.on(exit(0), t + Duration::from_secs(3));
        assert_eq!(m.state(), ServiceState::Stopped);
    }

    #[test]
    fn forever_repeats_the_steps_after_it_until_nothing_is_left() {
        let (mut m, t) = machine(Policy::new());
        let s = |n: u64| t + Duration::from_millis(n);
        m.on(
            Event::Stop("TERM/500/forever/USR1/0.25".parse().unwrap()),
            t,
        );
        assert_eq!(m.deadline(), Some(s(500_000)));
        let mut now = s(500_000);
        for _ in 0..3 {
            let effects = m.on(Event::Timer, now);
            assert_eq!(effects[0], Effect::Signal(libc::SIGUSR1, Target::Service));
            assert!(!m.overrun(), "forever never runs out");
            now += Duration::from_millis(250);
            assert_eq!(m.deadline(), Some(now));
        }
        m.on(exit(0), now);
        assert_eq!(m.state(), ServiceState::Stopped);
    }

    #[test]
    fn a_kill_gets_a_moment_even_in_a_schedule_with_no_wait() {
        let (mut m, t) = machine(Policy::new());
        let schedule: Schedule = "0".parse().unwrap();
        m.on(Event::Stop(schedule), t);
        // TERM/0/KILL/0: TERM, no wait, KILL, then at least the grace before an overrun.
        assert_eq!(m.deadline(), Some(t));
        let effects = m.on(Event::Timer, t);
        assert_eq!(effects[0], Effect::Signal(libc::SIGKILL, Target::Service));
        assert_eq!(m.deadline(), Some(t + KILL_GRACE));
        assert!(!m.overrun());
    }

    #[test]
    fn restart_stops_then_starts_again_at_once() {
        let (mut m, t) = machine(Policy::new());
        m.on(Event::Restart("TERM/5".parse().unwrap()), t);
        let term = Event::Exited {
            exit: Exit::Signal {
                signal: libc::SIGTERM,
                core: false,
            },
            alone: true,
        };
        assert_eq!(m.on(term, t + MS), vec![Effect::Spawn]);
        assert_eq!(m.restarts(), 1);
    }

    #[test]
    fn leftovers_of_an_exited_program_are_stopped_before_the_decision() {
        let policy = Policy::new().restart(Restart::Always).restart_delay(MS);
        let (mut m, t) = machine(policy);
        let effects = m.on(
            Event::Exited {
                exit: Exit::Code(0),
                alone: false,
            },
            t + MS,
        );
        assert_eq!(effects[0], Effect::Signal(libc::SIGTERM, Target::Service));
        assert_eq!(m.state(), ServiceState::Stopping);
        m.on(Event::Empty, t + 2 * MS);
        assert_eq!(m.state(), ServiceState::Backoff);
    }

    #[test]
    fn stopping_leftovers_does_not_excuse_the_programs_own_death() {
        let policy = Policy::new()
            .restart(Restart::OnFailure)
            .restart_delay(Duration::ZERO);
        let (mut m, t) = machine(policy);
        let killed = Event::Exited {
            exit: Exit::Signal {
                signal: libc::SIGKILL,
                core: false,
            },
            alone: false,
        };
        m.on(killed, t + MS);
        assert_eq!(m.state(), ServiceState::Stopping);
        m.on(Event::Empty, t + 2 * MS);
        assert_eq!(
            m.state(),
            ServiceState::Backoff,
            "a KILL we did not send is a failure"
        );
    }

    #[test]
    fn readiness_protocol_and_ready_after() {
        let t = Instant::now();
        let mut m = Machine::new(Policy::new(), true, 1);
        m.on(Event::Spawned(5), t);
        assert_eq!(m.state(), ServiceState::Starting);
        m.on(Event::Ready, t + MS);
        assert_eq!(m.state(), ServiceState::Ready);

        let mut m = Machine::new(Policy::new().ready_after(10 * MS), false, 1);
        m.on(Event::Spawned(6), t);
        assert_eq!(m.state(), ServiceState::Starting);
        assert_eq!(m.deadline(), Some(t + 10 * MS));
        m.on(Event::Timer, t + 10 * MS);
        assert_eq!(m.state(), ServiceState::Ready);
    }

    #[test]
    fn spawn_failure_backs_off_under_always_and_fails_under_no() {
        let t = Instant::now();
        let mut m = Machine::new(Policy::new(), false, 1);
        m.on(Event::SpawnFailed, t);
        assert_eq!(m.state(), ServiceState::Failed);
        assert_eq!(m.reason(), Some(FailReason::SpawnFailed));
        let mut m = Machine::new(Policy::new().restart(Restart::Always), false, 1);
        m.on(Event::SpawnFailed, t);
        assert_eq!(m.state(), ServiceState::Backoff);
    }

    #[test]
    fn forking_mode_follows_the_daemon_the_program_names() {
        let t = Instant::now();
        let mut m = Machine::new(Policy::new().forking("/run/x.pid"), false, 1);
        m.on(Event::Spawned(10), t);
        assert_eq!(m.state(), ServiceState::Starting);
        m.on(Event::Forked, t + MS);
        assert_eq!((m.state(), m.pid()), (ServiceState::Starting, None));
        m.on(Event::MainPid(11), t + 2 * MS);
        assert_eq!((m.state(), m.pid()), (ServiceState::Ready, Some(11)));
        m.on(Event::MainPid(12), t + 3 * MS);
        assert_eq!(
            (m.state(), m.pid(), m.restarts()),
            (ServiceState::Ready, Some(12), 0)
        );
    }

    #[test]
    fn a_machine_survives_its_encoding() {
        let policy = Policy::new()
            .restart(Restart::Always)
            .give_up(4, Duration::from_secs(30))
            .forking("/run/x.pid")
            .stop_schedule("INT/3/KILL/1".parse().unwrap());
        let (mut m, t) = machine(policy.clone());
        m.on(exit(1), t + MS);
        let mut e = Encoder::default();
        m.encode(&mut e, t + 2 * MS);
        let mut d = Decoder::new(&e.bytes);
        let mut back = Machine::decode(&mut d, t + 2 * MS).unwrap();
        assert!(d.is_done());
        assert_eq!(back.policy, policy);
        assert_eq!(back.phase, m.phase);
        assert_eq!(back.deadline, m.deadline);
        assert_eq!(back.last_exit, m.last_exit);
        // It goes on exactly as the original would.
        let deadline = m.deadline().unwrap();
        assert_eq!(
            back.on(Event::Timer, deadline),
            m.on(Event::Timer, deadline)
        );
        assert!(Machine::decode(&mut Decoder::new(&e.bytes[..20]), t).is_none());
    }

    #[test]
    fn stop_in_backoff_leaves_at_once() {
        let policy = Policy::new().restart(Restart::Always);
        let (mut m, t) = machine(policy);
        m.on(exit(1), t + MS);
        assert_eq!(m.state(), ServiceState::Backoff);
        m.on(Event::Stop(Schedule::default()), t + 2 * MS);
        assert_eq!(m.state(), ServiceState::Stopped);
    }

    /// An operator's restart during a backoff starts at once, with the backoff forgotten (as a
    /// restart of a running program does): the next quick failure waits the first delay.
    #[test]
    fn restart_in_backoff_starts_at_once_and_resets_the_backoff() {
        let policy = Policy::new()
            .restart(Restart::Always)
            .restart_delay(Duration::from_secs(1));
        let (mut m, mut t) = machine(policy);
        for pid in 0..3 {
            t += MS;
            m.on(exit(1), t);
            let deadline = m.deadline().unwrap();
            m.on(Event::Timer, deadline);
            t = deadline;
            m.on(Event::Spawned(300 + pid), t);
        }
        t += MS;
        m.on(exit(1), t);
        assert_eq!(m.state(), ServiceState::Backoff);
        assert_eq!(m.quick_failures(), 4);
        assert_eq!(
            m.on(Event::Restart(Schedule::default()), t + MS),
            vec![Effect::Spawn]
        );
        assert_eq!(m.quick_failures(), 0);
        m.on(Event::Spawned(400), t + MS);
        t += 2 * MS;
        m.on(exit(1), t);
        let delay = m.deadline().unwrap() - t;
        assert!(delay <= Duration::from_secs(1), "{delay:?}");
    }
}
