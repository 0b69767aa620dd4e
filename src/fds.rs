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
#[cfg(target_os = "linux")]
fn close_by_walking_proc(keep: &[RawFd]) -> io::Result<()> {
    // SAFETY: a NUL-terminated literal path; open has no memory effects beyond the new fd.
    let dir = unsafe {
        libc::open(
            c"/proc/self/fd".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `buf` is a writable buffer of the length passed; `dir` is open.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir,
                buf.as_mut_ptr().cast::<libc::c_void>(),
                buf.len(),
            )
        };
        if n <= 0 {
            break;
        }
        let n = n as usize;
        let mut off = 0;
        // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, then the NUL-ended name.
        while off + 19 < n {
            let reclen = usize::from(u16::from_ne_bytes([buf[off + 16], buf[off + 17]]));
            if reclen == 0 {
                break;
            }
            let name = &buf[off + 19..(off + reclen).min(n)];
            if let Some(fd) = parse_fd(name)
                && fd >= 3
                && fd != dir
                && keep.binary_search(&fd).is_err()
            {
                // SAFETY: as in close_range: the caller owns every descriptor outside `keep`.
                unsafe { libc::close(fd) };
            }
            off += reclen;
        }
    }
    // SAFETY: `dir` was opened above and is closed once.
    unsafe { libc::close(dir) };
    Ok(())
}

/// A decimal descriptor number from a NUL-ended directory entry name, without allocating.
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
            unsafe { libc::close(fd) };
        }
    }
}

/// `dup2(from, to)`, retried on `EINTR`. Async-signal-safe.
///
/// References: dup2(2).
pub(crate) fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
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
}
