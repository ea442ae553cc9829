//! The driver's clock: the `Instant`s it hands the `Tap` keep counting while the device
//! is suspended, so lease, neighbour and router lifetimes are judged against real time
//! after a resume (a phone spends most of its life asleep; `CLOCK_MONOTONIC`, which
//! `Instant` and tokio's timers read, stops meanwhile).
//!
//! The two clocks are read through [`DriverClock`], so tests can run the driver on
//! tokio's paused time and make `CLOCK_BOOTTIME` jump while tokio's clock does not
//! ([`SimulatedClock`]).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sys;

/// The two clocks the driver reads.
pub trait DriverClock: Send + Sync + fmt::Debug {
    /// Time since a fixed origin, including the time the device spent suspended
    /// (`CLOCK_BOOTTIME`): what protocol timers are judged against.
    fn boottime(&self) -> Duration;

    /// Now on tokio's clock, which the driver's one sleep is measured on (it stops
    /// while the device is suspended).
    fn tokio_now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    /// True when [`DriverClock::boottime`] is the kernel's `CLOCK_BOOTTIME`: the driver
    /// then sleeps on a `CLOCK_BOOTTIME` timer, which fires on the wake-up after a
    /// suspend; otherwise on tokio's sleep.
    fn is_kernel_boottime(&self) -> bool {
        false
    }
}

/// The real clocks: `CLOCK_BOOTTIME` (on Linux and Android; elsewhere the monotonic
/// clock) and tokio's.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl DriverClock for SystemClock {
    fn boottime(&self) -> Duration {
        sys::boot_time()
    }

    fn is_kernel_boottime(&self) -> bool {
        cfg!(any(target_os = "linux", target_os = "android"))
    }
}

/// A clock for tests: `CLOCK_BOOTTIME` follows tokio's clock (paused or not) plus
/// every [`SimulatedClock::suspend`], which advances it while tokio's clock stands
/// still, as a suspended device would. Clones share the same time.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Clone)]
pub struct SimulatedClock {
    origin: tokio::time::Instant,
    suspended: Arc<std::sync::Mutex<Duration>>,
}

#[cfg(any(test, feature = "test-util"))]
impl SimulatedClock {
    /// A clock whose boot time starts at zero now.
    pub fn new() -> SimulatedClock {
        SimulatedClock {
            origin: tokio::time::Instant::now(),
            suspended: Arc::default(),
        }
    }

    /// Simulates a suspend of `duration`: boot time jumps ahead, tokio's clock does not.
    pub fn suspend(&self, duration: Duration) {
        let mut suspended = self
            .suspended
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *suspended += duration;
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Default for SimulatedClock {
    fn default() -> Self {
        SimulatedClock::new()
    }
}

#[cfg(any(test, feature = "test-util"))]
impl DriverClock for SimulatedClock {
    fn boottime(&self) -> Duration {
        let suspended = *self
            .suspended
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokio::time::Instant::now().saturating_duration_since(self.origin) + suspended
    }
}

/// Maps a [`DriverClock`]'s boot time onto the `Instant`s the `Tap` takes, and those
/// back onto tokio's clock for the driver's sleep.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    source: Arc<dyn DriverClock>,
    base: Instant,
    base_boot: Duration,
}

impl Clock {
    /// A clock whose `now()` starts at the current `Instant`.
    pub(crate) fn new(source: Arc<dyn DriverClock>) -> Clock {
        Clock {
            base: Instant::now(),
            base_boot: source.boottime(),
            source,
        }
    }

    /// Now, on a timeline that advances with the boot time.
    pub(crate) fn now(&self) -> Instant {
        self.base + self.source.boottime().saturating_sub(self.base_boot)
    }

    /// The boot time (see [`DriverClock::boottime`]) at which `at`, a time on this
    /// clock, falls.
    pub(crate) fn boottime_of(&self, at: Instant) -> Duration {
        match at.checked_duration_since(self.base) {
            Some(after) => self.base_boot + after,
            None => self.base_boot.saturating_sub(self.base.duration_since(at)),
        }
    }

    /// Whether the source is the kernel's `CLOCK_BOOTTIME`.
    pub(crate) fn is_kernel_boottime(&self) -> bool {
        self.source.is_kernel_boottime()
    }

    /// The tokio instant at which `deadline` (a time on this clock) falls if the device
    /// is not suspended meanwhile.
    pub(crate) fn tokio_deadline(&self, deadline: Instant) -> tokio::time::Instant {
        self.source.tokio_now() + deadline.saturating_duration_since(self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_time_never_goes_back() {
        let clock = Clock::new(Arc::new(SystemClock));
        let mut last = clock.now();
        for _ in 0..1000 {
            let now = clock.now();
            assert!(now >= last);
            last = now;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_map_onto_tokio_time() {
        let clock = Clock::new(Arc::new(SimulatedClock::new()));
        let start = tokio::time::Instant::now();
        let deadline = clock.now() + Duration::from_millis(500);
        assert_eq!(
            clock.tokio_deadline(deadline),
            start + Duration::from_millis(500)
        );
        // A deadline in the past is due at once.
        let past = clock.tokio_deadline(clock.now() - Duration::from_secs(1));
        assert_eq!(past, start);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(clock.now() - deadline, Duration::from_millis(2500));
    }

    #[tokio::test(start_paused = true)]
    async fn instants_map_onto_boot_time() {
        let simulated = SimulatedClock::new();
        simulated.suspend(Duration::from_secs(100));
        let clock = Clock::new(Arc::new(simulated));
        let now = clock.now();
        assert_eq!(clock.boottime_of(now), Duration::from_secs(100));
        assert_eq!(
            clock.boottime_of(now + Duration::from_secs(5)),
            Duration::from_secs(105)
        );
        assert_eq!(
            clock.boottime_of(now - Duration::from_secs(5)),
            Duration::from_secs(95)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_suspend_moves_boot_time_and_not_tokio_time() {
        let simulated = SimulatedClock::new();
        let clock = Clock::new(Arc::new(simulated.clone()));
        let before = clock.now();
        let tokio_before = tokio::time::Instant::now();
        let deadline = before + Duration::from_secs(3600);
        simulated.suspend(Duration::from_secs(7200));
        assert_eq!(clock.now() - before, Duration::from_secs(7200));
        assert_eq!(tokio::time::Instant::now(), tokio_before);
        // The deadline passed during the suspend: it is due now, not in an hour.
        assert_eq!(clock.tokio_deadline(deadline), tokio_before);
    }
}
