//! The status channel: a pipe made before the first fork (daemon(7) step 14), through which the
//! daemon tells the launcher its pid, then either "ready" or the step that failed and its errno.
//!
//! Records are fixed-size and written with one `write(2)` each: smaller than `PIPE_BUF`, so they
//! arrive whole, and made without allocating, so the daemon can send them between fork and exec.
//! The write end is close-on-exec: end-of-file after an exec means the exec succeeded.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::Step;

const RECORD: usize = 12;

/// What the daemon says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    /// The daemon (the final process) runs with this pid.
    Pid(u32),
    /// The daemon is ready.
    Ready,
    /// A step failed with this errno.
    Failed(Step, i32),
}

impl Record {
    fn encode(self) -> [u8; RECORD] {
        let mut buf = [0u8; RECORD];
        match self {
            Record::Pid(pid) => {
                buf[0] = 1;
                buf[4..8].copy_from_slice(&pid.to_ne_bytes());
            }
            Record::Ready => buf[0] = 2,
            Record::Failed(step, errno) => {
                buf[0] = 3;
                buf[1] = step.code();
                buf[8..12].copy_from_slice(&errno.to_ne_bytes());
            }
        }
        buf
    }

    fn decode(buf: &[u8; RECORD]) -> Option<Record> {
        let word = |at: usize| [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        match buf[0] {
            1 => Some(Record::Pid(u32::from_ne_bytes(word(4)))),
            2 => Some(Record::Ready),
            3 => Some(Record::Failed(
                Step::from_code(buf[1])?,
                i32::from_ne_bytes(word(8)),
            )),
            _ => None,
        }
    }
}

/// Creates the pipe: (launcher's read end, daemon's write end), both close-on-exec.
///
/// References: pipe2(2).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ))]
    {
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    )))]
    {
        // SAFETY: as above; single-threaded callers only, so no exec can race the flags.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        crate::fds::set_cloexec(fds[0], true)?;
        crate::fds::set_cloexec(fds[1], true)?;
    }
    // SAFETY: pipe2 just created both descriptors; each gets exactly one owner.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one record. Async-signal-safe. Errors are ignored: a launcher that is gone cannot be
/// told anything, and the daemon's own behaviour does not depend on it being heard.
pub(crate) fn send(fd: RawFd, record: Record) {
    let buf = record.encode();
    loop {
        // SAFETY: `buf` is initialised and outlives the call.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), RECORD) };
        if n >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// The launcher's end: reassembles records from whatever `read` returns.
#[derive(Debug)]
pub(crate) struct Receiver {
    fd: OwnedFd,
    pending: Vec<u8>,
    closed: bool,
}

impl Receiver {
    pub(crate) fn new(fd: OwnedFd) -> Receiver {
        Receiver {
            fd,
            pending: Vec::new(),
            closed: false,
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Whether the write ends are all closed (exit or exec of everyone holding one).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Reads what is available (the caller polled first) and returns the complete records.
    pub(crate) fn read(&mut self) -> io::Result<Vec<Record>> {
        let mut buf = [0u8; 256];
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EINTR) | Some(libc::EAGAIN) => Ok(Vec::new()),
                _ => Err(err),
            };
        }
        if n == 0 {
            self.closed = true;
        }
        self.pending.extend_from_slice(&buf[..n as usize]);
        let mut records = Vec::new();
        while self.pending.len() >= RECORD {
            let mut one = [0u8; RECORD];
            one.copy_from_slice(&self.pending[..RECORD]);
            self.pending.drain(..RECORD);
            if let Some(record) = Record::decode(&one) {
                records.push(record);
            }
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_a_pipe() {
        let (read, write) = pipe().unwrap();
        let sent = [
            Record::Pid(4242),
            Record::Failed(Step::Setuid, libc::EPERM),
            Record::Ready,
        ];
        for record in sent {
            send(write.as_raw_fd(), record);
        }
        drop(write);
        let mut receiver = Receiver::new(read);
        let mut got = Vec::new();
        while !receiver.is_closed() {
            got.extend(receiver.read().unwrap());
        }
        assert_eq!(got, sent);
    }
}
