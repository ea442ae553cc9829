//! Channel links: frames handed to and taken from the embedding application (its own VPN
//! protocol carries them), through two bounded channels. Frames the application does not
//! take in time are dropped and counted, never blocking the driver.

use std::io;

use tokio::sync::mpsc;

use super::LinkSpec;

/// The application's side of a [`channel`] link.
#[derive(Debug)]
pub struct ChannelPeer {
    /// Ethernet frames the emulated host sends: carry them to the network.
    pub from_driver: mpsc::Receiver<Vec<u8>>,
    /// Ethernet frames from the network: send them here. A full channel means the
    /// driver is behind; `try_send` and drop is the Ethernet way.
    pub to_driver: mpsc::Sender<Vec<u8>>,
}

/// The driver's side of a [`channel`] link; wrapped in [`LinkSpec::Channel`].
#[derive(Debug)]
pub struct ChannelLink {
    rx: mpsc::Receiver<Vec<u8>>,
    tx: mpsc::Sender<Vec<u8>>,
}

/// A link whose frames go through channels, for applications whose own VPN protocol
/// carries the frames. Each direction holds up to `capacity` frames; frames the
/// application does not take in time are dropped (and counted), never blocking the
/// driver.
pub fn channel(capacity: usize) -> (LinkSpec, ChannelPeer) {
    let (to_app, from_driver) = mpsc::channel(capacity.max(1));
    let (to_driver, from_app) = mpsc::channel(capacity.max(1));
    (
        LinkSpec::Channel(ChannelLink {
            rx: from_app,
            tx: to_app,
        }),
        ChannelPeer {
            from_driver,
            to_driver,
        },
    )
}

impl ChannelLink {
    /// Waits for a frame, then takes what else is queued, up to `bufs.len()`. A frame
    /// too large for the buffers is an empty span: dropped and counted like an empty
    /// frame. An error when the application closed its side.
    pub(super) async fn recv_batch(
        &mut self,
        bufs: &mut [Vec<u8>],
        spans: &mut [(usize, usize)],
    ) -> io::Result<usize> {
        let Some(first) = self.rx.recv().await else {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the application closed the channel",
            ));
        };
        let mut n = 0;
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            spans[n] = match bufs[n].get_mut(..frame.len()) {
                Some(buf) => {
                    buf.copy_from_slice(&frame);
                    (0, frame.len())
                }
                None => (0, 0),
            };
            n += 1;
            if n < bufs.len() {
                next = self.rx.try_recv().ok();
            }
        }
        Ok(n)
    }

    /// Hands a frame to the application, or drops it when the application is behind.
    pub(super) fn send(&mut self, frame: &[u8], dropped: &mut u64) {
        if self.tx.try_send(frame.to_vec()).is_err() {
            *dropped += 1;
        }
    }
}
