//! `tap://NAME`: a local kernel TAP device (Linux only), created if missing and set up;
//! one frame per `read`/`write`, like the TUN.

use std::io;

use super::frames::FramePort;
use super::sent_or_dropped;
use crate::driver::sys::{self, DeviceKind};

/// An open `tap://` link.
pub(super) struct TapLink {
    port: FramePort,
}

impl TapLink {
    pub(super) fn open(name: &str) -> io::Result<TapLink> {
        let (fd, actual) = sys::open_tun_device(name, DeviceKind::Tap)?;
        sys::set_link_up(&actual)?;
        Ok(TapLink {
            port: FramePort::new(fd)?,
        })
    }

    pub(super) async fn recv_batch(
        &mut self,
        bufs: &mut [Vec<u8>],
        spans: &mut [(usize, usize)],
    ) -> io::Result<usize> {
        self.port.recv_batch(bufs, spans).await
    }

    pub(super) fn send(&mut self, frame: &[u8], dropped: &mut u64) -> io::Result<()> {
        sent_or_dropped(self.port.write(frame), dropped)
    }
}
