//! The status channel: a pipe made before the first fork (daemon(7) step 14), through which the
//! daemon tells the launcher its pid, then either "ready" or the step that failed and its errno.
//!
//! Records are fixed-size and written with one `write(2)` each: smaller than `PIPE_BUF`, so they
//! arrive whole, and made without allocating, so the daemon can send them between fork and exec.
//! The write end is close-on-exec: end-of-file after an exec means the exec succeeded. A keeper
//! also sends the program's pid, its exit before readiness, and `STATUS=` texts (a header with
//! the length, then the bytes, in the same single write).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::error::Step;

const RECORD: usize = 12;
/// The longest text record's payload.
const TEXT_MAX: usize = 1024;

/// What the daemon says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// The daemon (the final process: a keeper, under supervision) runs with this pid.
    Pid(u32),
    /// The daemon is ready.
    Ready,
    /// A step failed with this errno.
    Failed(Step, i32),
    /// A keeper's program runs with this pid.
    Program(u32),
    /// A keeper's program exited before it was ready, with this `waitpid` status.
    Exited(i32),
    /// A keeper's program sent this `STATUS=` text.
    Text(String),
    /// A keeper's program asked for this many more milliseconds (`EXTEND_TIMEOUT_USEC`).
    Extend(u32),
}

impl Record {
    /// The fixed-size part; a text record's bytes follow it.
    fn encode(&self) -> [u8; RECORD] {
        let mut buf = [0u8; RECORD];
        let mut word = |kind: u8, at: usize, value: [u8; 4]| {
            buf[0] = kind;
            buf[at..at + 4].copy_from_slice(&value);
        };
        match self {
            Record::Pid(pid) => word(1, 4, pid.to_ne_bytes()),
            Record::Ready => word(2, 4, [0; 4]),
            Record::Failed(step, errno) => {
                word(3, 8, errno.to_ne_bytes());
                buf[1] = step.code();
            }
            Record::Program(pid) => word(4, 4, pid.to_ne_bytes()),
            Record::Exited(status) => word(5, 4, status.to_ne_bytes()),
            Record::Text(text) => word(6, 4, (text.len().min(TEXT_MAX) as u32).to_ne_bytes()),
            Record::Extend(ms) => word(7, 4, ms.to_ne_bytes()),
        }
        buf
    }

    /// Decodes a fixed-size part; for a text record, the payload length it announces.
    fn decode(buf: &[u8; RECORD]) -> Option<(Record, usize)> {
        let word = |at: usize| [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        let record = match buf[0] {
            1 => Record::Pid(u32::from_ne_bytes(word(4))),
            2 => Record::Ready,
            3 => Record::Failed(Step::from_code(buf[1])?, i32::from_ne_bytes(word(8))),
            4 => Record::Program(u32::from_ne_bytes(word(4))),
            5 => Record::Exited(i32::from_ne_bytes(word(4))),
            7 => Record::Extend(u32::from_ne_bytes(word(4))),
            6 => {
                let len = (u32::from_ne_bytes(word(4)) as usize).min(TEXT_MAX);
                return Some((Record::Text(String::new()), len));
            }
            _ => return None,
        };
        Some((record, 0))
    }
}

/// Creates the pipe: (launcher's read end, daemon's write end), both close-on-exec.
///
/// References: pipe2(2).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    // `std::io::pipe` makes both ends close-on-exec (with `pipe2(O_CLOEXEC)` where it exists).
    let (read, write) = std::io::pipe()?;
    Ok((read.into(), write.into()))
}

/// Sends one record. Async-signal-safe. Errors are ignored: a launcher that is gone cannot be
/// told anything, and the daemon's own behaviour does not depend on it being heard.
pub(crate) fn send(fd: BorrowedFd<'_>, record: Record) {
    write_once(fd, &record.encode());
}

/// Sends two records in one write: the reader wakes once for both. Async-signal-safe.
pub(crate) fn send_two(fd: BorrowedFd<'_>, first: Record, second: Record) {
    let mut buf = [0u8; 2 * RECORD];
    buf[..RECORD].copy_from_slice(&first.encode());
    buf[RECORD..].copy_from_slice(&second.encode());
    write_once(fd, &buf);
}

/// Sends a text record (at most 1 KiB of it), header and bytes in one write. Not for use between
/// fork and exec (the keeper sends these from its loop).
pub(crate) fn send_text(fd: BorrowedFd<'_>, text: &[u8]) {
    let len = text.len().min(TEXT_MAX);
    let mut buf = [0u8; RECORD + TEXT_MAX];
    buf[0] = 6;
    buf[4..8].copy_from_slice(&(len as u32).to_ne_bytes());
    buf[RECORD..RECORD + len].copy_from_slice(&text[..len]);
    write_once(fd, &buf[..RECORD + len]);
}

/// One write (below `PIPE_BUF`, so it arrives whole), retried on `EINTR`. Async-signal-safe.
fn write_once(fd: BorrowedFd<'_>, buf: &[u8]) {
    while let Err(rustix::io::Errno::INTR) = rustix::io::write(fd, buf) {}
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

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether the write ends are all closed (exit or exec of everyone holding one).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Reads what is available (the caller polled first) and returns the complete records.
    pub(crate) fn read(&mut self) -> io::Result<Vec<Record>> {
        let mut buf = [0u8; 2048];
        let n = match rustix::io::read(&self.fd, &mut buf) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => return Ok(Vec::new()),
            Err(err) => return Err(err.into()),
        };
        if n == 0 {
            self.closed = true;
        }
        self.pending.extend_from_slice(&buf[..n]);
        let mut records = Vec::new();
        while self.pending.len() >= RECORD {
            let mut one = [0u8; RECORD];
            one.copy_from_slice(&self.pending[..RECORD]);
            let (record, extra) = match Record::decode(&one) {
                Some(decoded) => decoded,
                None => (Record::Ready, usize::MAX),
            };
            if extra == usize::MAX {
                // Not a record: skip it.
                self.pending.drain(..RECORD);
                continue;
            }
            if self.pending.len() < RECORD + extra {
                break;
            }
            let record = match record {
                Record::Text(_) => Record::Text(
                    String::from_utf8_lossy(&self.pending[RECORD..RECORD + extra]).into_owned(),
                ),
                other => other,
            };
            self.pending.drain(..RECORD + extra);
            records.push(record);
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
            Record::Program(7),
            Record::Text("warming up: 3/5".into()),
            Record::Exited(256),
            Record::Extend(20_000),
            Record::Ready,
            Record::Program(8),
            Record::Ready,
        ];
        for record in sent[..sent.len() - 2].iter().cloned() {
            match record {
                Record::Text(text) => send_text(write.as_fd(), text.as_bytes()),
                other => send(write.as_fd(), other),
            }
        }
        send_two(write.as_fd(), Record::Program(8), Record::Ready);
        drop(write);
        let mut receiver = Receiver::new(read);
        let mut got = Vec::new();
        while !receiver.is_closed() {
            got.extend(receiver.read().unwrap());
        }
        assert_eq!(got, sent);
    }

    #[test]
    fn both_ends_are_close_on_exec() {
        let (read, write) = pipe().unwrap();
        for fd in [&read, &write] {
            let flags = rustix::io::fcntl_getfd(fd).unwrap();
            assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
        }
    }
}
