//! The sd_notify readiness protocol: sending (`READY=1` from a daemon run by systemd or by the
//! daemonic command) and receiving (the launcher's side), with the sender checked by
//! `SCM_CREDENTIALS`.
//!
//! `$NOTIFY_SOCKET` names an `AF_UNIX` datagram socket: a path, or `@name` for the Linux abstract
//! namespace. One datagram holds newline-separated `KEY=VALUE` assignments. Written by hand
//! because the protocol is a dozen lines and the crates that speak it send only.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` (for example `"READY=1\nSTATUS=serving"`) to `$NOTIFY_SOCKET`.
///
/// Returns `Ok(false)` when the variable is not set (not run under a notify-aware manager).
///
/// # Example
/// ```
/// // Outside a service manager this does nothing.
/// # unsafe { std::env::remove_var("NOTIFY_SOCKET") };
/// assert!(!daemonic::notify("READY=1")?);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// References: sd_notify(3).
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let target = target.to_string_lossy().into_owned();
    let socket = UnixDatagram::unbound()?;
    send_to(&socket, &target, state.as_bytes())?;
    Ok(true)
}

/// [`notify`], then waits (up to five seconds) until the receiver has read the message: sends
/// `BARRIER=1` with a pipe's write end and waits for the pipe to close. A short-lived sender
/// (a shell helper) stays alive until the receiver has checked its credentials.
///
/// # Example
/// ```
/// # unsafe { std::env::remove_var("NOTIFY_SOCKET") };
/// assert!(!daemonic::notify_and_wait("READY=1")?);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// References: sd_notify_barrier(3).
pub fn notify_and_wait(state: &str) -> io::Result<bool> {
    if !notify(state)? {
        return Ok(false);
    }
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let (read, write) = std::io::pipe()?;
    let socket = UnixDatagram::unbound()?;
    let sent = send_with_fd(
        &socket,
        &target.to_string_lossy(),
        b"BARRIER=1",
        write.as_fd(),
    );
    drop(write);
    match sent {
        Ok(()) => {}
        // The receiver is gone already: it read everything it is going to read.
        Err(err)
            if matches!(
                err.raw_os_error(),
                Some(libc::ECONNREFUSED) | Some(libc::ENOENT)
            ) =>
        {
            return Ok(true);
        }
        Err(err) => return Err(err),
    }
    crate::process::poll_readable(&read, Some(Duration::from_secs(5)));
    Ok(true)
}

/// Sends `data` with one descriptor attached (SCM_RIGHTS).
fn send_with_fd(
    socket: &UnixDatagram,
    target: &str,
    data: &[u8],
    fd: BorrowedFd<'_>,
) -> io::Result<()> {
    if let Some(name) = target.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            socket.connect_addr(&std::os::unix::net::SocketAddr::from_abstract_name(
                name.as_bytes(),
            )?)?;
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
        }
    } else {
        socket.connect(target)?;
    }
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::mem::MaybeUninit;
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        // Cannot happen: the buffer is sized for one descriptor.
        return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
    }
    rustix::net::sendmsg(
        socket,
        &[io::IoSlice::new(data)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

fn send_to(socket: &UnixDatagram, target: &str, data: &[u8]) -> io::Result<()> {
    if let Some(name) = target.strip_prefix('@') {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            socket.send_to_addr(data, &addr)?;
            return Ok(());
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = name;
            return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
        }
    }
    socket.send_to(data, target)?;
    Ok(())
}

/// One datagram's meaning. Unknown keys are ignored, as the protocol requires.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Message {
    pub ready: bool,
    pub status: Option<String>,
    pub errno: Option<i32>,
    pub extend_timeout: Option<Duration>,
}

impl Message {
    pub(crate) fn parse(data: &[u8]) -> Message {
        let mut message = Message::default();
        for line in String::from_utf8_lossy(data).lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "READY" => message.ready |= value == "1",
                "STATUS" => message.status = Some(value.to_string()),
                "ERRNO" => message.errno = value.trim().parse().ok(),
                // The unit is microseconds (start-stop-daemon reads it as seconds).
                "EXTEND_TIMEOUT_USEC" => {
                    message.extend_timeout = value.trim().parse().ok().map(Duration::from_micros)
                }
                _ => {}
            }
        }
        message
    }
}

/// The launcher's end: a datagram socket that receives credentials with each message.
#[derive(Debug)]
pub(crate) struct Listener {
    socket: UnixDatagram,
    address: String,
    /// A path socket's directory, removed on drop (non-Linux only).
    _dir: Option<TempDir>,
}

impl Listener {
    /// Binds a fresh socket: an abstract name on Linux, a path in a private directory elsewhere.
    pub(crate) fn bind() -> io::Result<Listener> {
        let unique = format!(
            "daemonic/notify/{}/{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        #[cfg(target_os = "linux")]
        let (socket, address, dir) = {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(unique.as_bytes())?;
            (UnixDatagram::bind_addr(&addr)?, format!("@{unique}"), None)
        };
        #[cfg(not(target_os = "linux"))]
        let (socket, address, dir) = {
            let dir = TempDir::new()?;
            let path = dir.0.join("notify");
            let socket = UnixDatagram::bind(&path)?;
            (socket, path.to_string_lossy().into_owned(), Some(dir))
        };
        socket.set_nonblocking(true)?;
        enable_credentials(socket.as_fd())?;
        Ok(Listener {
            socket,
            address,
            _dir: dir,
        })
    }

    /// The value for `$NOTIFY_SOCKET`.
    /// A listener a former image of this keeper handed over (Linux: an abstract socket, so no
    /// directory to clean up).
    ///
    /// # Safety
    /// `fd` must be the listener's socket, inherited across exec and owned by nothing else.
    pub(crate) unsafe fn from_raw(fd: RawFd, address: String) -> Listener {
        use std::os::fd::FromRawFd;
        Listener {
            // SAFETY: the caller guarantees `fd` is this listener's socket and ours alone.
            socket: unsafe { UnixDatagram::from_raw_fd(fd) },
            address,
            _dir: None,
        }
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// The next datagram and its sender's pid (None where credentials are not available), or
    /// `None` when nothing is queued.
    pub(crate) fn recv(&self) -> io::Result<Option<(Option<u32>, Vec<u8>)>> {
        recv_with_pid(self.socket.as_fd())
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

#[cfg(target_os = "linux")]
fn enable_credentials(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::net::sockopt::set_socket_passcred(fd, true)?)
}

#[cfg(not(target_os = "linux"))]
fn enable_credentials(_fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(())
}

#[cfg(target_os = "linux")]
fn recv_with_pid(fd: BorrowedFd<'_>) -> io::Result<Option<(Option<u32>, Vec<u8>)>> {
    // libc: rustix's recvmsg reads SCM_CREDENTIALS into a `UCred` whose `pid` is a non-zero
    // `Pid`, but the kernel sends 0 for a sender outside our pid namespace (and any process in
    // our network namespace can reach an abstract socket): an invalid value, undefined
    // behaviour. Here the pid is a plain integer.
    let mut data = vec![0u8; 4096];
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header we then fill in.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers of the sizes given.
    let n = unsafe {
        libc::recvmsg(
            fd.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        return Err(err);
    }
    data.truncate(n as usize);
    let mut pid = None;
    // SAFETY: the CMSG_* macros walk the control buffer recvmsg filled, bounded by
    // msg_controllen; SCM_CREDENTIALS data is a struct ucred.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_CREDENTIALS
            {
                let cred = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::ucred>());
                pid = u32::try_from(cred.pid).ok();
            } else if (*cmsg).cmsg_level == libc::SOL_SOCKET
                && (*cmsg).cmsg_type == libc::SCM_RIGHTS
            {
                // A sender may pass descriptors (FDSTORE); we do not keep them.
                let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                let fds = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..count {
                    libc::close(std::ptr::read_unaligned(fds.add(i)));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Some((pid, data)))
}

#[cfg(not(target_os = "linux"))]
fn recv_with_pid(fd: BorrowedFd<'_>) -> io::Result<Option<(Option<u32>, Vec<u8>)>> {
    let mut data = vec![0u8; 4096];
    let n = match rustix::net::recv(fd, &mut data[..], rustix::net::RecvFlags::DONTWAIT) {
        Ok((n, _)) => n.min(data.len()),
        Err(err) if err == rustix::io::Errno::AGAIN || err == rustix::io::Errno::WOULDBLOCK => {
            return Ok(None);
        }
        Err(err) => return Err(err.into()),
    };
    data.truncate(n);
    Ok(Some((None, data)))
}

/// A private directory removed on drop (for path sockets where abstract ones do not exist).
#[derive(Debug)]
struct TempDir(std::path::PathBuf);

impl TempDir {
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    fn new() -> io::Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::env::temp_dir().join(format!(
            "daemonic-notify-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_and_ignores_unknown_ones() {
        let m = Message::parse(b"STATUS=warming up\nX_CUSTOM=1\nEXTEND_TIMEOUT_USEC=2500000\n");
        assert!(!m.ready);
        assert_eq!(m.status.as_deref(), Some("warming up"));
        assert_eq!(m.extend_timeout, Some(Duration::from_micros(2_500_000)));
        let m = Message::parse(b"READY=1\nERRNO=2");
        assert!(m.ready);
        assert_eq!(m.errno, Some(2));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn listener_sees_the_senders_pid() {
        let listener = Listener::bind().unwrap();
        let socket = UnixDatagram::unbound().unwrap();
        send_to(&socket, listener.address(), b"READY=1").unwrap();
        let (pid, data) = listener.recv().unwrap().unwrap();
        assert_eq!(pid, Some(std::process::id()));
        assert!(Message::parse(&data).ready);
        assert!(listener.recv().unwrap().is_none());
    }
}
