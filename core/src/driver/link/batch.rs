//! Batch channel links: like [`channel`](super::channel), frames handed to and taken
//! from the embedding application, but many frames per message each way, laid out as the
//! Java API's batches are (each frame a 4-byte big-endian length, then its bytes). One
//! allocation and one channel operation per batch instead of per frame.
//!
//! Both directions are bounded in frames, not messages: [`BatchSender::offer`] takes whole
//! frames, in order, while there is room and says how many it took, so nothing it took is
//! ever dropped; frames for the application beyond the bound are dropped and counted
//! (`link_dropped_out`), never blocking the driver.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::LinkSpec;

/// Bytes of the length in front of each frame of a batch (big-endian).
pub const BATCH_PREFIX: usize = 4;

/// Frames laid out back to back, each as its length ([`BATCH_PREFIX`] bytes, big-endian)
/// then its bytes.
#[derive(Debug, Default)]
pub struct FrameBatch {
    /// The layout.
    pub bytes: Vec<u8>,
    /// How many frames it holds.
    pub frames: usize,
}

impl FrameBatch {
    /// Appends one frame.
    pub fn push(&mut self, frame: &[u8]) {
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes.extend_from_slice(frame);
        self.frames += 1;
    }

    /// The frames, in order. A malformed tail (never written by [`FrameBatch::push`]) ends
    /// the iteration.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut at = 0;
        std::iter::from_fn(move || {
            let (frame, next) = self.frame_at(at)?;
            at = next;
            Some(frame)
        })
    }

    /// The frame whose length prefix starts at byte `at`, and where the next one starts.
    fn frame_at(&self, at: usize) -> Option<(&[u8], usize)> {
        let prefix: [u8; BATCH_PREFIX] = self
            .bytes
            .get(at..at.checked_add(BATCH_PREFIX)?)?
            .try_into()
            .ok()?;
        let start = at + BATCH_PREFIX;
        let end = start.checked_add(usize::try_from(u32::from_be_bytes(prefix)).ok()?)?;
        Some((self.bytes.get(start..end)?, end))
    }
}

/// The application's side of a [`batch_channel`] link.
#[derive(Debug)]
pub struct BatchPeer {
    /// Batches of frames the emulated host sends: carry them to the network, then call
    /// [`BatchPeer::taken`] with each batch's frame count.
    pub from_driver: mpsc::UnboundedReceiver<FrameBatch>,
    /// Where frames from the network go.
    pub to_driver: BatchSender,
    out_queued: Arc<AtomicUsize>,
}

impl BatchPeer {
    /// The application took a batch of `frames` frames off [`BatchPeer::from_driver`]:
    /// room for as many more.
    pub fn taken(&self, frames: usize) {
        let _ = self
            .out_queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(frames))
            });
    }
}

/// Sends frames from the network to the driver; cheap to clone.
#[derive(Debug, Clone)]
pub struct BatchSender {
    tx: mpsc::UnboundedSender<FrameBatch>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

/// The driver has stopped: nothing was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the driver has stopped")]
pub struct BatchClosed;

impl BatchSender {
    /// Offers `frames`, in order: takes as many as there is room for, as one batch, and
    /// returns how many. Those are never dropped on the way to the emulated host (which
    /// counts what it drops itself); the rest were not taken: offer them again later.
    pub fn offer(&self, frames: &[&[u8]]) -> Result<usize, BatchClosed> {
        if self.tx.is_closed() {
            return Err(BatchClosed);
        }
        let wanted = frames.len();
        let mut room = 0;
        let reserved = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                room = self.capacity.saturating_sub(q).min(wanted);
                (room > 0).then_some(q + room)
            });
        if reserved.is_err() {
            return Ok(0);
        }
        let mut batch = FrameBatch::default();
        for frame in &frames[..room] {
            batch.push(frame);
        }
        if self.tx.send(batch).is_err() {
            self.queued.fetch_sub(room, Ordering::AcqRel);
            return Err(BatchClosed);
        }
        Ok(room)
    }
}

/// The driver's side of a [`batch_channel`] link; wrapped in [`LinkSpec::Batch`].
#[derive(Debug)]
pub struct BatchLink {
    rx: mpsc::UnboundedReceiver<FrameBatch>,
    in_queued: Arc<AtomicUsize>,
    /// The batch being read, and the byte where its next frame starts.
    current: Option<(FrameBatch, usize)>,
    tx: mpsc::UnboundedSender<FrameBatch>,
    out_queued: Arc<AtomicUsize>,
    /// Frames sent since the last flush.
    pending: FrameBatch,
    capacity: usize,
}

/// A link whose frames go to and come from the application in batches: at most
/// `capacity` frames queued each way.
pub fn batch_channel(capacity: usize) -> (LinkSpec, BatchPeer) {
    let capacity = capacity.max(1);
    let (to_app, from_driver) = mpsc::unbounded_channel();
    let (to_driver, from_app) = mpsc::unbounded_channel();
    let in_queued = Arc::new(AtomicUsize::new(0));
    let out_queued = Arc::new(AtomicUsize::new(0));
    (
        LinkSpec::Batch(BatchLink {
            rx: from_app,
            in_queued: in_queued.clone(),
            current: None,
            tx: to_app,
            out_queued: out_queued.clone(),
            pending: FrameBatch::default(),
            capacity,
        }),
        BatchPeer {
            from_driver,
            to_driver: BatchSender {
                tx: to_driver,
                queued: in_queued,
                capacity,
            },
            out_queued,
        },
    )
}

impl BatchLink {
    /// Waits for frames, then takes up to `bufs.len()` of them, across batches. A frame
    /// too large for the buffers is an empty span (dropped and counted). An error when the
    /// application dropped its sender.
    pub(super) async fn recv_batch(
        &mut self,
        bufs: &mut [Vec<u8>],
        spans: &mut [(usize, usize)],
    ) -> io::Result<usize> {
        if self.current.is_none() {
            let Some(batch) = self.rx.recv().await else {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the application closed the channel",
                ));
            };
            self.current = Some((batch, 0));
        }
        let mut n = 0;
        while n < bufs.len() {
            let Some((batch, next)) = &mut self.current else {
                match self.rx.try_recv() {
                    Ok(batch) => {
                        self.current = Some((batch, 0));
                        continue;
                    }
                    Err(_) => break,
                }
            };
            let Some((frame, after)) = batch.frame_at(*next) else {
                self.current = None;
                continue;
            };
            spans[n] = match bufs[n].get_mut(..frame.len()) {
                Some(buf) => {
                    buf.copy_from_slice(frame);
                    (0, frame.len())
                }
                None => (0, 0),
            };
            *next = after;
            n += 1;
        }
        self.in_queued.fetch_sub(n, Ordering::AcqRel);
        Ok(n)
    }

    /// Queues a frame for the application (sent at the next [`BatchLink::flush`]), or
    /// drops it when the application is `capacity` frames behind.
    pub(super) fn send(&mut self, frame: &[u8], dropped: &mut u64) {
        if self.out_queued.load(Ordering::Acquire) + self.pending.frames >= self.capacity {
            *dropped += 1;
            return;
        }
        self.pending.push(frame);
    }

    /// Hands what [`BatchLink::send`] queued to the application, as one batch.
    pub(super) fn flush(&mut self) {
        if self.pending.frames == 0 {
            return;
        }
        let size = self.pending.bytes.len();
        let batch = std::mem::replace(
            &mut self.pending,
            FrameBatch {
                bytes: Vec::with_capacity(size),
                frames: 0,
            },
        );
        let frames = batch.frames;
        self.out_queued.fetch_add(frames, Ordering::AcqRel);
        if self.tx.send(batch).is_err() {
            // The application is gone: nothing to count it against.
            self.out_queued.fetch_sub(frames, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_cross_both_ways_bounded_in_frames() {
        let (spec, mut peer) = batch_channel(3);
        let LinkSpec::Batch(mut link) = spec else {
            panic!("batch link")
        };
        let frames: Vec<&[u8]> = vec![b"one", b"two", b"three", b"four"];
        assert_eq!(peer.to_driver.offer(&frames), Ok(3));
        assert_eq!(peer.to_driver.offer(&frames[3..]), Ok(0));
        let mut bufs = vec![vec![0u8; 8]; 2];
        let mut spans = [(0, 0); 2];
        assert_eq!(link.recv_batch(&mut bufs, &mut spans).await.unwrap(), 2);
        assert_eq!(&bufs[1][..spans[1].1], b"two");
        assert_eq!(peer.to_driver.offer(&frames[3..]), Ok(1));
        let n = link.recv_batch(&mut bufs, &mut spans).await.unwrap();
        assert_eq!(
            (n, &bufs[0][..spans[0].1], &bufs[1][..spans[1].1]),
            (2, &b"three"[..], &b"four"[..])
        );

        let mut dropped = 0;
        for f in &frames {
            link.send(f, &mut dropped);
        }
        assert_eq!(dropped, 1, "the fourth is beyond the bound");
        link.flush();
        let batch = peer.from_driver.recv().await.unwrap();
        assert_eq!(batch.iter().collect::<Vec<_>>(), frames[..3].to_vec());
        link.send(b"five", &mut dropped);
        assert_eq!(dropped, 2, "nothing taken yet");
        peer.taken(batch.frames);
        link.send(b"five", &mut dropped);
        link.flush();
        assert_eq!(peer.from_driver.recv().await.unwrap().frames, 1);
        drop(link);
        assert_eq!(peer.to_driver.offer(&frames), Err(BatchClosed));
    }

    #[tokio::test]
    async fn a_frame_too_large_for_the_buffers_is_an_empty_span() {
        let (spec, peer) = batch_channel(8);
        let LinkSpec::Batch(mut link) = spec else {
            panic!("batch link")
        };
        let big = [0u8; 100];
        assert_eq!(peer.to_driver.offer(&[&big[..], b"ok"]), Ok(2));
        let mut bufs = vec![vec![0u8; 16]; 4];
        let mut spans = [(9, 9); 4];
        assert_eq!(link.recv_batch(&mut bufs, &mut spans).await.unwrap(), 2);
        assert_eq!(spans[0], (0, 0));
        assert_eq!(spans[1], (0, 2));
    }
}
