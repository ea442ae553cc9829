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
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::LinkSpec;

/// Bytes of the length in front of each frame of a batch (big-endian).
pub const BATCH_PREFIX: usize = 4;

/// Most spent batch buffers kept for reuse, across both directions.
const SPARE_BUFFERS: usize = 8;
/// A spent buffer larger than this is freed rather than kept (memory stays bounded).
const SPARE_MAX_BYTES: usize = 256 * 1024;

/// Spent batch buffers, kept so that a batch each way costs no allocation once the
/// traffic is steady. Shared by the application's side and the driver's; bounded in
/// count and size.
#[derive(Debug, Default)]
struct SpareBuffers(Mutex<Vec<Vec<u8>>>);

impl SpareBuffers {
    /// An empty buffer with room for at least `bytes`: a spent one when there is one.
    fn take(&self, bytes: usize) -> Vec<u8> {
        let spare = self.0.lock().ok().and_then(|mut s| s.pop());
        let mut buf = spare.unwrap_or_default();
        buf.reserve(bytes);
        buf
    }

    /// Keeps `buf` for [`SpareBuffers::take`], unless enough are kept already.
    fn put(&self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > SPARE_MAX_BYTES {
            return;
        }
        buf.clear();
        if let Ok(mut spares) = self.0.lock() {
            if spares.len() < SPARE_BUFFERS {
                spares.push(buf);
            }
        }
    }
}

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
    spares: Arc<SpareBuffers>,
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

    /// Gives a batch taken off [`BatchPeer::from_driver`] back once its frames are
    /// carried: its buffer is reused (optional; a dropped batch is simply freed).
    pub fn recycle(&self, batch: FrameBatch) {
        self.spares.put(batch.bytes);
    }
}

/// Sends frames from the network to the driver; cheap to clone.
#[derive(Debug, Clone)]
pub struct BatchSender {
    tx: mpsc::UnboundedSender<FrameBatch>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    spares: Arc<SpareBuffers>,
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
        let bytes: usize = frames[..room].iter().map(|f| BATCH_PREFIX + f.len()).sum();
        let mut batch = FrameBatch {
            bytes: self.spares.take(bytes),
            frames: 0,
        };
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
    spares: Arc<SpareBuffers>,
}

/// A link whose frames go to and come from the application in batches: at most
/// `capacity` frames queued each way.
pub fn batch_channel(capacity: usize) -> (LinkSpec, BatchPeer) {
    let capacity = capacity.max(1);
    let (to_app, from_driver) = mpsc::unbounded_channel();
    let (to_driver, from_app) = mpsc::unbounded_channel();
    let in_queued = Arc::new(AtomicUsize::new(0));
    let out_queued = Arc::new(AtomicUsize::new(0));
    let spares = Arc::new(SpareBuffers::default());
    (
        LinkSpec::Batch(BatchLink {
            rx: from_app,
            in_queued: in_queued.clone(),
            current: None,
            tx: to_app,
            out_queued: out_queued.clone(),
            pending: FrameBatch::default(),
            capacity,
            spares: spares.clone(),
        }),
        BatchPeer {
            from_driver,
            to_driver: BatchSender {
                tx: to_driver,
                queued: in_queued,
                capacity,
                spares: spares.clone(),
            },
            out_queued,
            spares,
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
                if let Some((spent, _)) = self.current.take() {
                    self.spares.put(spent.bytes);
                }
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
                bytes: self.spares.take(size),
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
    async fn spent_batches_are_reused_both_ways() {
        // A reused buffer is told from a new one by its capacity: the first batch each
        // way is large, the next one small.
        let big = [7u8; 1000];
        let (spec, mut peer) = batch_channel(8);
        let LinkSpec::Batch(mut link) = spec else {
            panic!("batch link")
        };
        let mut bufs = vec![vec![0u8; 1500]; 4];
        let mut spans = [(0, 0); 4];
        // Application to driver: the buffer of a batch read to its end is the next
        // offer's.
        assert_eq!(peer.to_driver.offer(&[&big[..], b"two"]), Ok(2));
        assert_eq!(link.recv_batch(&mut bufs, &mut spans).await.unwrap(), 2);
        assert_eq!(peer.to_driver.offer(&[b"three"]), Ok(1));
        let second = link.rx.try_recv().unwrap();
        assert!(
            second.bytes.capacity() >= big.len(),
            "the spent buffer was not reused"
        );
        link.current = Some((second, 0));
        assert_eq!(link.recv_batch(&mut bufs, &mut spans).await.unwrap(), 1);
        assert_eq!(&bufs[0][..spans[0].1], b"three");
        // Driver to application: a recycled batch becomes a later one sent.
        let mut dropped = 0;
        link.send(&big, &mut dropped);
        link.flush();
        let out = peer.from_driver.recv().await.unwrap();
        peer.taken(out.frames);
        peer.recycle(out);
        for frame in [&b"again"[..], b"third"] {
            link.send(frame, &mut dropped);
            link.flush();
        }
        let again = peer.from_driver.recv().await.unwrap();
        let third = peer.from_driver.recv().await.unwrap();
        assert!(
            again.bytes.capacity().max(third.bytes.capacity()) >= big.len(),
            "the recycled buffer was not reused"
        );
        assert_eq!(third.iter().collect::<Vec<_>>(), vec![&b"third"[..]]);
        assert_eq!(dropped, 0);
    }

    #[test]
    fn spare_buffers_stay_bounded_in_count_and_size() {
        let spares = SpareBuffers::default();
        for _ in 0..3 * SPARE_BUFFERS {
            spares.put(Vec::with_capacity(64));
        }
        spares.put(Vec::with_capacity(SPARE_MAX_BYTES + 1));
        let kept = spares.0.lock().unwrap();
        assert_eq!(kept.len(), SPARE_BUFFERS);
        assert!(kept
            .iter()
            .all(|b| b.capacity() <= SPARE_MAX_BYTES && b.is_empty()));
        drop(kept);
        let taken = spares.take(1000);
        assert!(taken.is_empty() && taken.capacity() >= 1000);
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
