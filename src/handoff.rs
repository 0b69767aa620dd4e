//! The keeper's state across its re-exec: a compact binary encoding written to a memfd.
//!
//! A keeper is forked from the process that started it, so the program starts without paying
//! for a second process start-up; right after that, the keeper executes a small image of its own
//! (`daemonic-keeper`, or any binary that calls [`crate::keeper_entry`]) so that it does not keep
//! the launcher's heap, stack and code pages for the service's whole life. Descriptors, the
//! signal mask, pending signals (a `SIGCHLD` that arrives meanwhile) and queued datagrams all
//! survive `execve`; what lives only in memory is written here. Hand-written rather than serde:
//! the keeper must not carry serialisation machinery, and every field is a number or bytes.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Appends fields.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    pub bytes: Vec<u8>,
}

impl Encoder {
    pub(crate) fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    pub(crate) fn bool(&mut self, value: bool) {
        self.u8(u8::from(value));
    }

    pub(crate) fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn i32(&mut self, value: i32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) {
        self.u32(value.len() as u32);
        self.bytes.extend_from_slice(value);
    }

    pub(crate) fn duration(&mut self, value: Duration) {
        self.u64(u64::try_from(value.as_nanos()).unwrap_or(u64::MAX));
    }

    /// An instant, as its signed distance from `now` (instants do not survive a process).
    pub(crate) fn instant(&mut self, value: Instant, now: Instant) {
        match value.checked_duration_since(now) {
            Some(ahead) => {
                self.u8(1);
                self.duration(ahead);
            }
            None => {
                self.u8(0);
                self.duration(now.saturating_duration_since(value));
            }
        }
    }

    pub(crate) fn system_time(&mut self, value: SystemTime) {
        self.duration(value.duration_since(UNIX_EPOCH).unwrap_or_default());
    }

    /// `Some` as 1 and the value, `None` as 0.
    pub(crate) fn option<T>(&mut self, value: Option<T>, put: impl FnOnce(&mut Encoder, T)) {
        match value {
            Some(v) => {
                self.u8(1);
                put(self, v);
            }
            None => self.u8(0),
        }
    }
}

/// Reads fields back; every read fails (`None`) rather than panics on short or bad input.
#[derive(Debug)]
pub(crate) struct Decoder<'a> {
    bytes: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Decoder<'a> {
        Decoder { bytes }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub(crate) fn bool(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn i32(&mut self) -> Option<i32> {
        self.u32().map(|v| v as i32)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(b);
        Some(u64::from_le_bytes(word))
    }

    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    pub(crate) fn duration(&mut self) -> Option<Duration> {
        self.u64().map(Duration::from_nanos)
    }

    pub(crate) fn instant(&mut self, now: Instant) -> Option<Instant> {
        let ahead = self.bool()?;
        let distance = self.duration()?;
        if ahead {
            now.checked_add(distance)
        } else {
            Some(now.checked_sub(distance).unwrap_or(now))
        }
    }

    pub(crate) fn system_time(&mut self) -> Option<SystemTime> {
        UNIX_EPOCH.checked_add(self.duration()?)
    }

    pub(crate) fn option<T>(
        &mut self,
        get: impl FnOnce(&mut Decoder<'a>) -> Option<T>,
    ) -> Option<Option<T>> {
        match self.u8()? {
            0 => Some(None),
            1 => get(self).map(Some),
            _ => None,
        }
    }

    /// Whether everything was read.
    pub(crate) fn is_done(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// The state, mapped from its memfd rather than read onto the heap: the new image's heap then
/// holds only what the keeper keeps, not a hole where the state was.
pub(crate) struct Mapped {
    ptr: *mut std::ffi::c_void,
    len: usize,
}

impl Mapped {
    /// Maps all of `file` read-only; `None` if it is empty or cannot be mapped.
    ///
    /// References: mmap(2).
    pub(crate) fn new(file: &std::fs::File) -> Option<Mapped> {
        use rustix::mm::{MapFlags, ProtFlags, mmap};
        let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh private read-only mapping of an open descriptor, at an address the
        // kernel chooses (nothing of ours is replaced); the result is checked before use.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ,
                MapFlags::PRIVATE,
                file,
                0,
            )
        }
        .ok()?;
        Some(Mapped { ptr, len })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `len` readable bytes until `drop`, and nothing
        // writes to it (private, read-only).
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made; no borrow of `bytes` outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_short_input_fails() {
        let now = Instant::now();
        let mut e = Encoder::default();
        e.u8(7);
        e.bool(true);
        e.u32(0xdead_beef);
        e.i32(-5);
        e.u64(u64::MAX);
        e.bytes(b"argv\0");
        e.instant(now + Duration::from_millis(1500), now);
        e.instant(now.checked_sub(Duration::from_secs(3)).unwrap_or(now), now);
        e.option(Some(9u32), |e, v| e.u32(v));
        e.option(None::<u32>, |e, v| e.u32(v));
        let mut d = Decoder::new(&e.bytes);
        assert_eq!(d.u8(), Some(7));
        assert_eq!(d.bool(), Some(true));
        assert_eq!(d.u32(), Some(0xdead_beef));
        assert_eq!(d.i32(), Some(-5));
        assert_eq!(d.u64(), Some(u64::MAX));
        assert_eq!(d.bytes(), Some(&b"argv\0"[..]));
        assert_eq!(d.instant(now), Some(now + Duration::from_millis(1500)));
        assert!(d.instant(now).is_some());
        assert_eq!(d.option(|d| d.u32()), Some(Some(9)));
        assert_eq!(d.option(|d| d.u32()), Some(None));
        assert!(d.is_done());
        let mut short = Decoder::new(&e.bytes[..3]);
        assert_eq!(short.u8(), Some(7));
        assert_eq!(short.bool(), Some(true));
        assert_eq!(short.u32(), None);
    }
}
