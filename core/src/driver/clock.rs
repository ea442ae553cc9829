//! The driver's clock: the `Instant`s it hands the `Tap` keep counting while the device
//! is suspended, so lease, neighbour and router lifetimes are judged against real time
//! after a resume (a phone spends most of its life asleep; `CLOCK_MONOTONIC`, which
//! `Instant` reads, stops meanwhile).

use std::time::{Duration, Instant};

/// Maps `CLOCK_BOOTTIME` (which includes time suspended) onto `Instant`s.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: Instant,
    base_boot: Duration,
}

impl Clock {
    /// A clock whose `now()` starts at the current `Instant`.
    pub(crate) fn new() -> Clock {
        Clock {
            base: Instant::now(),
            base_boot: boot_time(),
        }
    }

    /// Now, on a timeline that advances with `CLOCK_BOOTTIME`.
    pub(crate) fn now(&self) -> Instant {
        self.base + boot_time().saturating_sub(self.base_boot)
    }

    /// The tokio instant at which `deadline` (a time on this clock) falls.
    pub(crate) fn tokio_deadline(&self, deadline: Instant) -> tokio::time::Instant {
        tokio::time::Instant::now() + deadline.saturating_duration_since(self.now())
    }
}

/// Time since boot, suspend included.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn boot_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_BOOTTIME exists on every Linux
    // and Android kernel this runs on (2.6.39+).
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return monotonic_fallback();
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Elsewhere, time since the first call (suspend not included).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn boot_time() -> Duration {
    monotonic_fallback()
}

fn monotonic_fallback() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_monotonic_clock_while_awake() {
        let clock = Clock::new();
        let before = Instant::now();
        let a = clock.now();
        std::thread::sleep(Duration::from_millis(20));
        let b = clock.now();
        let after = Instant::now();
        assert!(b >= a + Duration::from_millis(20));
        // Without a suspend in between, the two clocks agree closely.
        let drift = (b - a).as_secs_f64() - (after - before).as_secs_f64();
        assert!(drift.abs() < 0.01, "drift {drift}");
    }

    #[tokio::test]
    async fn deadlines_map_onto_tokio_time() {
        let clock = Clock::new();
        let deadline = clock.now() + Duration::from_millis(500);
        let at = clock.tokio_deadline(deadline);
        let from_now = at - tokio::time::Instant::now();
        assert!(from_now <= Duration::from_millis(500));
        assert!(from_now > Duration::from_millis(400));
        // A deadline in the past is due at once.
        let past = clock.tokio_deadline(clock.now() - Duration::from_secs(1));
        assert!(past <= tokio::time::Instant::now());
    }
}
