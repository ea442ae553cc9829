//! One Ethernet frame per `read`/`write` on a descriptor (a TAP device, a datagram or
//! seqpacket socket): what the `tap://` and `fd://` links share.

use std::io;
use std::os::fd::OwnedFd;

use crate::driver::sys::PacketFd;

/// A non-blocking descriptor that carries whole frames, read in batches.
pub(super) struct FramePort {
    dev: PacketFd,
    /// Lengths of a batch read.
    lens: Vec<usize>,
}

impl FramePort {
    /// Takes `fd` (made non-blocking and registered with the reactor).
    pub(super) fn new(fd: OwnedFd) -> io::Result<FramePort> {
        Ok(FramePort {
            dev: PacketFd::new(fd)?,
            lens: Vec::new(),
        })
    }

    /// Reads up to `bufs.len()` frames, frame `i` into `bufs[i]` at `spans[i]`.
    pub(super) async fn recv_batch(
        &mut self,
        bufs: &mut [Vec<u8>],
        spans: &mut [(usize, usize)],
    ) -> io::Result<usize> {
        self.lens.resize(bufs.len(), 0);
        let n = self.dev.read_batch(bufs, 0, &mut self.lens).await?;
        for (span, len) in spans.iter_mut().zip(&self.lens).take(n) {
            *span = (0, *len);
        }
        Ok(n)
    }

    /// Writes one frame without waiting.
    pub(super) fn write(&self, frame: &[u8]) -> io::Result<()> {
        self.dev.write(frame)
    }
}
