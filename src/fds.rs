//! Closing inherited descriptors (daemon(7) step 1) and moving descriptors into place.
//!
//! Everything here runs between `fork` and `exec`, so it makes system calls only: no allocation,
//! no locks. The caller prepares the sorted list of descriptors to keep before the first fork.

use std::io;
use std::os::fd::RawFd;

/// Closes every descriptor from 3 upward except those in `keep`, in time that does not grow with
/// `RLIMIT_NOFILE`.
///
/// `keep` must be sorted in ascending order. The methods, best first: `close_range(2)` on the gaps
/// between kept descriptors (Linux 5.9+); a walk of `/proc/self/fd` read with raw `getdents64`
/// (async-signal-safe, unlike `readdir`); a `close` loop up to `max_fd`, the bound used only where
/// the descriptor table cannot be walked. Async-signal-safe.
///
/// References: close_range(2), getdents64(2), close(2).
pub(crate) fn close_inherited_fds(keep: &[RawFd], max_fd: RawFd) {
    #[cfg(target_os = "linux")]
    {
        if close_ranges(keep).is_ok() {
            return;
        }
        if close_by_walking_proc(keep).is_ok() {
            return;
        }
    }
    close_by_loop(keep, max_fd);
}

/// `close_range` over each gap between kept descriptors.
#[cfg(target_os = "linux")]
fn close_ranges(keep: &[RawFd]) -> io::Result<()> {
    let mut first: RawFd = 3;
    for &fd in keep.iter().filter(|&&fd| fd >= 3) {
        if fd > first {
            close_range(first as u32, (fd - 1) as u32)?;
        }
        first = fd + 1;
    }
    close_range(first as u32, u32::MAX)
}

#[cfg(target_os = "linux")]
fn close_range(first: u32, last: u32) -> io::Result<()> {
    // libc: rustix has no wrapper for close_range.
    // SAFETY: close_range only closes descriptors; the caller runs single-threaded (after fork)
    // and owns every descriptor outside `keep`, so nothing else can be using them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            libc::c_uint::from(first),
            libc::c_uint::from(last),
            0 as libc::c_uint,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads `/proc/self/fd` with `getdents64` into a stack buffer and closes what it lists.
///
/// rustix's `open` is given a `&CStr` (a `&str` or `&Path` would be copied into an allocated C
/// string) and `RawDir` only reads into the buffer it is lent: no allocation.
#[cfg(target_os = "linux")]
fn close_by_walking_proc(keep: &[RawFd]) -> io::Result<()> {
    use rustix::fs::{Mode, OFlags, RawDir};
    use std::mem::MaybeUninit;
    use std::os::fd::AsRawFd;
    let dir = rustix::fs::open(
        c"/proc/self/fd",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let dir_fd = dir.as_raw_fd();
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut entries = RawDir::new(&dir, &mut buf);
    // An error ends the walk, as the end of the directory does.
    while let Some(Ok(entry)) = entries.next() {
        if let Some(fd) = parse_fd(entry.file_name().to_bytes())
            && fd >= 3
            && fd != dir_fd
            && keep.binary_search(&fd).is_err()
        {
            // SAFETY: as in close_range: the caller owns every descriptor outside `keep`.
            unsafe { rustix::io::close(fd) };
        }
    }
    Ok(())
}

/// A decimal descriptor number from a directory entry name (up to a NUL, if any), without
/// allocating.
#[cfg(target_os = "linux")]
fn parse_fd(name: &[u8]) -> Option<RawFd> {
    let mut value: RawFd = 0;
    let mut digits = 0;
    for &b in name.iter().take_while(|&&b| b != 0) {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(RawFd::from(b - b'0'))?;
        digits += 1;
    }
    (digits > 0).then_some(value)
}

/// The seed's method, kept as the last resort: one `close` per descriptor below `max_fd`.
fn close_by_loop(keep: &[RawFd], max_fd: RawFd) {
    for fd in 3..max_fd {
        if keep.binary_search(&fd).is_err() {
            // SAFETY: the caller owns every descriptor outside `keep`; EBADF is harmless.
            unsafe { rustix::io::close(fd) };
        }
    }
}

/// `dup2(from, to)`, retried on `EINTR`. Async-signal-safe.
///
/// References: dup2(2).
pub(crate) fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
    // libc: rustix's dup2 takes the target as an `&mut OwnedFd`; ours is a bare number, often
    // not open yet (0-2 after the inherited ones are closed, a number reserved for the daemon).
    loop {
        // SAFETY: dup2 replaces `to` atomically; the caller owns `to` (it is one of 0-2 or a
        // number it chose for the daemon).
        if unsafe { libc::dup2(from, to) } >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Clears or sets `FD_CLOEXEC` on `fd`. Async-signal-safe.
///
/// References: fcntl(2).
pub(crate) fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // libc: rustix's fcntl_getfd/fcntl_setfd take a `BorrowedFd`, which must be open; callers
    // also give numbers that may be closed (a kept descriptor past the 64 a keeper keeps) and
    // report the EBADF.
    // SAFETY: F_GETFD/F_SETFD only read and change the descriptor flags of `fd`.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let new = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, new) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `fd` is an open descriptor of this process.
pub(crate) fn is_open(fd: RawFd) -> bool {
    // libc: rustix's fcntl_getfd takes a `BorrowedFd`, which must be open: this asks whether it is.
    // SAFETY: F_GETFD on any number is harmless; it fails with EBADF when not open.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn parses_descriptor_names() {
        use super::parse_fd;
        assert_eq!(parse_fd(b"12\0"), Some(12));
        assert_eq!(parse_fd(b"0\0\0"), Some(0));
        assert_eq!(parse_fd(b".\0"), None);
        assert_eq!(parse_fd(b"..\0"), None);
        assert_eq!(parse_fd(b"\0"), None);
    }

    /// The walk of `/proc/self/fd` runs only where `close_range` fails: try it in a child.
    #[cfg(target_os = "linux")]
    #[test]
    fn walking_proc_closes_all_but_the_kept() {
        use super::{close_by_walking_proc, is_open};
        use std::os::fd::AsRawFd;
        let kept = std::fs::File::open("/dev/null").unwrap();
        let closed = std::fs::File::open("/dev/null").unwrap();
        let (kept, closed) = (kept.as_raw_fd(), closed.as_raw_fd());
        let _forking = crate::forks_excluded();
        // SAFETY: the child (of a test process with threads) makes system calls only, then
        // leaves with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = close_by_walking_proc(&[kept]).is_ok()
                && is_open(0)
                && is_open(kept)
                && !is_open(closed);
            // SAFETY: _exit ends the child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        assert!(pid > 0);
        let status = rustix::process::waitpid(
            rustix::process::Pid::from_raw(pid),
            rustix::process::WaitOptions::empty(),
        )
        .unwrap()
        .map(|(_, status)| status.exit_status());
        assert_eq!(status, Some(Some(0)));
    }
}
