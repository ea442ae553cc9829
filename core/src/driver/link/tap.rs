//! `tap://NAME`: a local kernel TAP device (Linux only), created if missing and set up;
//! one frame per `read`/`write`, like the TUN.

use std::io;

use super::sent_or_dropped;
use crate::driver::sys::{self, DeviceKind, PacketFd};

/// An open `tap://` link.
pub(super) struct TapLink {
    dev: PacketFd,
    /// Lengths of a batch read.
    lens: Vec<usize>,
}

impl TapLink {
    pub(super) fn open(name: &str) -> io::Result<TapLink> {
        let (fd, actual) = sys::open_tun_device(name, DeviceKind::Tap)?;
        sys::set_link_up(&actual)?;
        Ok(TapLink {
            dev: PacketFd::new(fd)?,
            lens: Vec::new(),
        })
    }

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

    pub(super) fn send(&mut self, frame: &[u8], dropped: &mut u64) -> io::Result<()> {
        sent_or_dropped(self.dev.write(frame), dropped)
    }
}
