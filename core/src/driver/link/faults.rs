//! Fault injection: a layer around any link that drops, duplicates, reorders, corrupts
//! and delays frames at configured rates, in either direction or both, from a seeded
//! RNG so that a run repeats.
//!
//! Each direction is a [`Lane`] with its own RNG (seeded from [`LinkFaults::seed`]), so
//! what happens to the frames of one direction depends only on that direction's
//! frames. Delayed, reordered and duplicated frames wait in a bounded queue per
//! direction ([`HOLD_CAPACITY`] frames; a frame that finds it full is dropped and
//! counted) and are released by the link's own receive loop when they are due: the
//! driver's loop never waits for them.
//!
//! A reordered frame is held until a later frame of its direction has gone through, or
//! at most [`REORDER_HOLD`] after its delay, so that it arrives after that later frame.

use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::Link;

/// Most frames held back (delayed, reordered, duplicated) per direction.
pub const HOLD_CAPACITY: usize = 256;

/// Longest a reordered frame waits, after its delay, for a later frame to overtake it.
pub const REORDER_HOLD: Duration = Duration::from_millis(50);

/// Which frames the faults apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultDirection {
    /// Frames both from and to the link (`dir=both`, the default).
    #[default]
    Both,
    /// Frames received from the link only (`dir=in`).
    FromLink,
    /// Frames sent to the link only (`dir=out`).
    ToLink,
}

/// What to do to the frames crossing a link: each rate is the probability, from 0 to
/// 1, that it happens to a frame. Parsed from `drop=0.3,dup=0.05,reorder=0.01,
/// corrupt=0.001,delay=20ms,seed=7,dir=both` (every key optional; rates also as `30%`);
/// `Display` gives that form back.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkFaults {
    /// Frames lost.
    pub drop: f64,
    /// Frames sent twice (the copy right after the original).
    pub duplicate: f64,
    /// Frames held back until a later frame has overtaken them (for at most `REORDER_HOLD`,
    /// 50 ms).
    pub reorder: f64,
    /// Frames with one random bit of one random byte flipped.
    pub corrupt: f64,
    /// Latency added to every frame, in milliseconds (order kept).
    pub delay_ms: u64,
    /// Seed of the RNGs: the same seed and the same frames give the same faults.
    pub seed: u64,
    /// Which frames the faults apply to.
    pub direction: FaultDirection,
}

/// A `--link-faults` spec that does not parse; the message is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseFaultsError(String);

impl FromStr for LinkFaults {
    type Err = ParseFaultsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |m: String| Err(ParseFaultsError(m));
        let mut faults = LinkFaults::default();
        if s.trim().is_empty() {
            return err("empty fault spec; expected e.g. drop=0.3,delay=20ms,seed=7".into());
        }
        for item in s.split(',').map(str::trim) {
            let Some((key, value)) = item.split_once('=') else {
                return err(format!("`{item}`: expected KEY=VALUE"));
            };
            let (key, value) = (key.trim(), value.trim());
            match key {
                "drop" => faults.drop = rate(key, value)?,
                "dup" | "duplicate" => faults.duplicate = rate(key, value)?,
                "reorder" => faults.reorder = rate(key, value)?,
                "corrupt" => faults.corrupt = rate(key, value)?,
                "delay" => faults.delay_ms = millis(value)?,
                "seed" => {
                    faults.seed = value.parse().map_err(|_| {
                        ParseFaultsError(format!("seed: `{value}` is not an unsigned integer"))
                    })?
                }
                "dir" | "direction" => {
                    faults.direction = match value {
                        "both" => FaultDirection::Both,
                        "in" => FaultDirection::FromLink,
                        "out" => FaultDirection::ToLink,
                        _ => return err(format!("dir: `{value}` is not both, in or out")),
                    }
                }
                _ => {
                    return err(format!(
                        "unknown fault `{key}` (expected drop, dup, reorder, corrupt, delay, seed, dir)"
                    ))
                }
            }
        }
        Ok(faults)
    }
}

/// A probability: `0.3` or `30%`.
fn rate(key: &str, value: &str) -> Result<f64, ParseFaultsError> {
    let parsed = match value.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|p| p / 100.0),
        None => value.parse::<f64>(),
    };
    match parsed {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(ParseFaultsError(format!(
            "{key}: `{value}` is not a rate from 0 to 1 (or 0% to 100%)"
        ))),
    }
}

/// A delay: `20ms`, `1s` or `20` (milliseconds), at most an hour.
fn millis(value: &str) -> Result<u64, ParseFaultsError> {
    let (number, scale) = if let Some(ms) = value.strip_suffix("ms") {
        (ms, 1)
    } else if let Some(s) = value.strip_suffix('s') {
        (s, 1000)
    } else {
        (value, 1)
    };
    number
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|ms| *ms <= 3_600_000)
        .ok_or_else(|| {
            ParseFaultsError(format!(
                "delay: `{value}` is not a delay such as 20ms or 1s (at most 1 hour)"
            ))
        })
}

impl fmt::Display for LinkFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "drop={},dup={},reorder={},corrupt={},delay={}ms,seed={}",
            self.drop, self.duplicate, self.reorder, self.corrupt, self.delay_ms, self.seed
        )?;
        match self.direction {
            FaultDirection::Both => Ok(()),
            FaultDirection::FromLink => f.write_str(",dir=in"),
            FaultDirection::ToLink => f.write_str(",dir=out"),
        }
    }
}

/// What the fault layer did to the frames of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultCounters {
    /// Frames that went through the layer (before any fault).
    pub frames: u64,
    /// Frames dropped.
    pub dropped: u64,
    /// Frames sent twice.
    pub duplicated: u64,
    /// Frames held back to be overtaken.
    pub reordered: u64,
    /// Frames with a bit flipped.
    pub corrupted: u64,
    /// Frames delayed.
    pub delayed: u64,
    /// Frames (or copies) lost because the hold queue was full.
    pub overflowed: u64,
}

/// What the fault layer did, per direction; all zero without [`LinkFaults`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultStats {
    /// Frames received from the link.
    pub from_link: FaultCounters,
    /// Frames sent to the link.
    pub to_link: FaultCounters,
}

/// A frame held back.
#[derive(Debug)]
struct Held {
    due: Instant,
    /// Place in the direction's order of frames.
    seq: u64,
    /// Released early once a later frame has gone through.
    reordered: bool,
    frame: Vec<u8>,
}

/// What [`Lane::admit`] decided for a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send it now.
    Pass,
    /// Dropped, or held to be released by [`Lane::take_due`].
    Gone,
}

/// The faults of one direction: its RNG, its hold queue and its counters. Sans-IO: the
/// caller says what time it is.
#[derive(Debug)]
pub(crate) struct Lane {
    faults: LinkFaults,
    active: bool,
    rng: StdRng,
    held: Vec<Held>,
    next_seq: u64,
    /// One past the latest frame that went through: reordered frames before it are due.
    passed: u64,
    counters: FaultCounters,
}

impl Lane {
    /// A lane applying `faults` if `active`, its RNG seeded with `seed`.
    pub(crate) fn new(faults: LinkFaults, active: bool, seed: u64) -> Lane {
        Lane {
            faults,
            active,
            rng: StdRng::seed_from_u64(seed),
            held: Vec::new(),
            next_seq: 0,
            passed: 0,
            counters: FaultCounters::default(),
        }
    }

    /// True with probability `p`; never for 0 nor NaN, always from 1.
    fn hit(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random::<f64>() < p
    }

    /// Decides what happens to `frame` (which may be corrupted in place): sent now,
    /// dropped, or held (a duplicate is always held, to follow the original).
    pub(crate) fn admit(&mut self, now: Instant, frame: &mut [u8]) -> Verdict {
        let seq = self.next_seq;
        self.next_seq += 1;
        if !self.active || frame.is_empty() {
            self.passed = seq + 1;
            return Verdict::Pass;
        }
        self.counters.frames += 1;
        if self.hit(self.faults.drop) {
            self.counters.dropped += 1;
            return Verdict::Gone;
        }
        if self.hit(self.faults.corrupt) {
            let byte = self.rng.random_range(0..frame.len());
            frame[byte] ^= 1 << self.rng.random_range(0..8u32);
            self.counters.corrupted += 1;
        }
        let due = now + Duration::from_millis(self.faults.delay_ms);
        if self.hit(self.faults.duplicate) {
            let copy = self.next_seq;
            self.next_seq += 1;
            if self.hold(due, copy, false, frame) {
                self.counters.duplicated += 1;
            }
        }
        if self.hit(self.faults.reorder) {
            if self.hold(due + REORDER_HOLD, seq, true, frame) {
                self.counters.reordered += 1;
            }
            return Verdict::Gone;
        }
        if self.faults.delay_ms > 0 {
            if self.hold(due, seq, false, frame) {
                self.counters.delayed += 1;
            }
            return Verdict::Gone;
        }
        self.passed = self.passed.max(seq + 1);
        Verdict::Pass
    }

    /// Queues a copy of `frame`; false (counted) when the queue is full.
    fn hold(&mut self, due: Instant, seq: u64, reordered: bool, frame: &[u8]) -> bool {
        if self.held.len() >= HOLD_CAPACITY {
            self.counters.overflowed += 1;
            return false;
        }
        self.held.push(Held {
            due,
            seq,
            reordered,
            frame: frame.to_vec(),
        });
        true
    }

    /// The next held frame to send at `now`, oldest first: one whose time has come,
    /// or a reordered one that a later frame has overtaken.
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        let passed = self.passed;
        let (index, _) = self
            .held
            .iter()
            .enumerate()
            .filter(|(_, h)| h.due <= now || (h.reordered && h.seq < passed))
            .min_by_key(|(_, h)| h.seq)?;
        let held = self.held.swap_remove(index);
        self.passed = self.passed.max(held.seq + 1);
        Some(held.frame)
    }

    /// When the next held frame is due, if any is held.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.held.iter().map(|h| h.due).min()
    }

    /// Frames held now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }

    /// What this lane did.
    pub(crate) fn counters(&self) -> FaultCounters {
        self.counters
    }

    /// Applies the faults to the `n` frames `bufs[i][spans[i].0..spans[i].1]` and moves
    /// those that go on to the front, in order (empty spans, frames the link already
    /// dropped, go on too); returns how many go on.
    pub(crate) fn admit_batch(
        &mut self,
        now: Instant,
        bufs: &mut [Vec<u8>],
        spans: &mut [(usize, usize)],
        n: usize,
    ) -> usize {
        let mut kept = 0;
        for i in 0..n.min(bufs.len()).min(spans.len()) {
            let (start, end) = spans[i];
            let pass = match bufs[i].get_mut(start..end) {
                Some(frame) if start < end => self.admit(now, frame) == Verdict::Pass,
                _ => true,
            };
            if pass {
                bufs.swap(kept, i);
                spans[kept] = spans[i];
                kept += 1;
            }
        }
        kept
    }

    /// Copies the held frames due at `now` into `bufs` as [`Lane::admit_batch`] leaves
    /// them, up to `bufs.len()`; returns how many.
    pub(crate) fn release_into(
        &mut self,
        now: Instant,
        bufs: &mut [Vec<u8>],
        spans: &mut [(usize, usize)],
    ) -> usize {
        let mut n = 0;
        while n < bufs.len().min(spans.len()) {
            let Some(frame) = self.take_due(now) else {
                break;
            };
            match bufs[n].get_mut(..frame.len()) {
                Some(buf) => {
                    buf.copy_from_slice(&frame);
                    spans[n] = (0, frame.len());
                    n += 1;
                }
                None => self.counters.overflowed += 1,
            }
        }
        n
    }
}

/// Both directions' lanes.
#[derive(Debug)]
struct Faults {
    from_link: Lane,
    to_link: Lane,
}

impl Faults {
    fn new(faults: LinkFaults) -> Faults {
        let dir = faults.direction;
        Faults {
            from_link: Lane::new(faults, dir != FaultDirection::ToLink, faults.seed),
            to_link: Lane::new(
                faults,
                dir != FaultDirection::FromLink,
                faults.seed ^ 0x9e37_79b9_7f4a_7c15,
            ),
        }
    }

    fn next_due(&self) -> Option<Instant> {
        match (self.from_link.next_due(), self.to_link.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The time on tokio's clock (paused in tests), as the lanes take it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Sends the frames `lane` holds that are due at `now`.
async fn send_due(link: &mut Link, lane: &mut Lane, now: Instant) -> io::Result<()> {
    let mut sent = false;
    while let Some(mut frame) = lane.take_due(now) {
        link.send(&mut frame, 0).await?;
        sent = true;
    }
    if sent {
        link.flush();
    }
    Ok(())
}

/// A [`Link`] with optional faults. Without them every call goes straight to the link.
/// With them, batches are sent frame by frame, and [`FaultyLink::recv_batch`] also
/// wakes to release held frames in both directions.
///
/// Derefs to the link for everything faults do not change (status, counters, flush),
/// so the driver's loop uses it as the link itself.
pub(crate) struct FaultyLink {
    link: Link,
    faults: Option<Box<Faults>>,
}

impl Deref for FaultyLink {
    type Target = Link;

    fn deref(&self) -> &Link {
        &self.link
    }
}

impl DerefMut for FaultyLink {
    fn deref_mut(&mut self) -> &mut Link {
        &mut self.link
    }
}

impl FaultyLink {
    /// Wraps `link`, injecting `faults` if any.
    pub(crate) fn new(link: Link, faults: Option<LinkFaults>) -> FaultyLink {
        if let Some(f) = &faults {
            tracing::info!("link {}: injecting faults {f}", link.url());
        }
        FaultyLink {
            link,
            faults: faults.map(|f| Box::new(Faults::new(f))),
        }
    }

    /// What the faults did so far.
    pub(crate) fn fault_stats(&self) -> FaultStats {
        self.faults
            .as_ref()
            .map_or_else(FaultStats::default, |f| FaultStats {
                from_link: f.from_link.counters(),
                to_link: f.to_link.counters(),
            })
    }

    /// [`Link::recv_batch`] through the faults: held frames from the link come first
    /// once due, and the wait also ends when a held frame to the link is due (sent
    /// here, then 0 returned if nothing else came). Cancel-safe but for a held frame
    /// whose send is cancelled (lost, as a faulty link may).
    pub(crate) async fn recv_batch(
        &mut self,
        bufs: &mut [Vec<u8>],
        spans: &mut [(usize, usize)],
    ) -> io::Result<usize> {
        let Some(faults) = self.faults.as_deref_mut() else {
            return self.link.recv_batch(bufs, spans).await;
        };
        loop {
            let at = now();
            send_due(&mut self.link, &mut faults.to_link, at).await?;
            let released = faults.from_link.release_into(at, bufs, spans);
            if released > 0 {
                return Ok(released);
            }
            let next = faults.next_due();
            let received = tokio::select! {
                r = self.link.recv_batch(bufs, spans) => r?,
                () = sleep_until(next) => continue,
            };
            if received == 0 {
                return Ok(0);
            }
            let kept = faults.from_link.admit_batch(now(), bufs, spans, received);
            if kept > 0 {
                return Ok(kept);
            }
        }
    }

    /// [`Link::send`] through the faults; held frames to the link that are due go
    /// after it.
    pub(crate) async fn send(&mut self, buf: &mut [u8], headroom: usize) -> io::Result<()> {
        let Some(faults) = self.faults.as_deref_mut() else {
            return self.link.send(buf, headroom).await;
        };
        let now = now();
        let pass = match buf.get_mut(headroom..) {
            Some(frame) => faults.to_link.admit(now, frame) == Verdict::Pass,
            None => true,
        };
        if pass {
            self.link.send(buf, headroom).await?;
        }
        send_due(&mut self.link, &mut faults.to_link, now).await
    }

    /// [`Link::send_batch`]; frame by frame through the faults.
    pub(crate) async fn send_batch(
        &mut self,
        bufs: &mut [Vec<u8>],
        items: &[(usize, usize)],
        headroom: usize,
    ) -> io::Result<()> {
        if self.faults.is_none() {
            return self.link.send_batch(bufs, items, headroom).await;
        }
        for &(i, end) in items {
            self.send(&mut bufs[i][..end], headroom).await?;
        }
        Ok(())
    }

    /// [`Link::drain`], after the held frames to the link, each when due. Unbounded:
    /// the caller sets the deadline.
    pub(crate) async fn drain(&mut self) {
        if let Some(faults) = self.faults.as_deref_mut() {
            while let Some(at) = faults.to_link.next_due() {
                sleep_until(Some(at)).await;
                if send_due(&mut self.link, &mut faults.to_link, now())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
        self.link.drain().await;
    }
}

#[cfg(test)]
mod tests;
