//! Callback-mode frames from the app to the driver, and the ownership of the fds the app
//! hands over.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use tapemu::driver::BatchSender;

use super::{lock, Session, State};
use crate::error::{Error, Result};

impl Session {
    /// Callback mode: the sender of frames to the driver, once started.
    pub fn frame_sender(&self) -> Result<BatchSender> {
        match &*lock(&self.state) {
            State::Started(s) => s.to_driver.clone().ok_or_else(|| {
                Error::IllegalState("sendFrame needs callback mode (no link URL)".into())
            }),
            State::Created => Err(Error::IllegalState("TapEmulator not started".into())),
            State::Closed => Err(Error::IllegalState("TapEmulator is closed".into())),
        }
    }

    /// Callback mode: offers frames from the app's link to the driver, in order, as one
    /// batch. Returns how many were taken: all of them, or fewer when the queue is full
    /// (the app should slow down and offer the rest again; the rest are counted as
    /// `callback_frames_refused`). An empty frame is taken and dropped (counted as
    /// `callback_frames_dropped`).
    pub fn offer_frames(&self, sender: &BatchSender, frames: &[&[u8]]) -> Result<usize> {
        let wanted = frames.iter().filter(|f| !f.is_empty()).count();
        let result = if wanted == frames.len() {
            sender.offer(frames)
        } else {
            let nonempty: Vec<&[u8]> = frames.iter().copied().filter(|f| !f.is_empty()).collect();
            sender.offer(&nonempty)
        };
        let taken = result.map_err(|_| Error::IllegalState("TapEmulator has stopped".into()))?;
        // Everything before the first non-empty frame not taken counts as taken.
        let mut seen = 0;
        let mut count = frames.len();
        for (i, f) in frames.iter().enumerate() {
            if !f.is_empty() {
                if seen == taken {
                    count = i;
                    break;
                }
                seen += 1;
            }
        }
        let empty = frames[..count].iter().filter(|f| f.is_empty()).count();
        add(&self.callback_frames_dropped, empty);
        add(&self.callback_frames_refused, wanted - taken);
        Ok(count)
    }
}

fn add(counter: &AtomicU64, n: usize) {
    if n > 0 {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// Takes ownership of a caller's fd: duplicates it and closes the original, so the
/// caller's number is closed on return whatever happens next. A negative or closed fd
/// is an error and nothing is closed.
pub fn take_fd(fd: RawFd) -> Result<OwnedFd> {
    if fd < 0 {
        return Err(Error::Io(format!("invalid TUN fd {fd}")));
    }
    // SAFETY: F_DUPFD_CLOEXEC creates a new descriptor; it reads nothing else.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    let dup_error = std::io::Error::last_os_error();
    if dup < 0 && dup_error.raw_os_error() == Some(libc::EBADF) {
        return Err(Error::Io(format!("TUN fd {fd} is not open: {dup_error}")));
    }
    // SAFETY: the caller handed this open fd over (as after detachFd()); it is closed
    // exactly once, here.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    if dup < 0 {
        return Err(Error::Io(format!(
            "TUN fd {fd}: cannot duplicate it ({dup_error}); it is closed"
        )));
    }
    // SAFETY: `dup` is a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}
