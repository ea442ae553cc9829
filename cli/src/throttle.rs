//! A rate limiter for configuration writes: at most one per interval, the latest value
//! wins. A flood of router advertisements must not become a flood of netlink writes.

use std::time::{Duration, Instant};

/// Lets a value through at most once per `interval`; a value offered too soon waits,
/// replacing any older one still waiting.
#[derive(Debug)]
pub struct Throttle<T> {
    interval: Duration,
    last: Option<Instant>,
    waiting: Option<T>,
}

impl<T> Throttle<T> {
    /// Nothing let through yet: the first value passes at once.
    pub fn new(interval: Duration) -> Throttle<T> {
        Throttle {
            interval,
            last: None,
            waiting: None,
        }
    }

    /// Offers `value` at `now`: it comes back to be applied at once if the interval
    /// since the last one has passed, else it waits for [`Throttle::poll`].
    #[must_use]
    pub fn offer(&mut self, now: Instant, value: T) -> Option<T> {
        if self.last.is_none_or(|last| now >= last + self.interval) {
            self.last = Some(now);
            self.waiting = None;
            Some(value)
        } else {
            self.waiting = Some(value);
            None
        }
    }

    /// When the waiting value may be applied, if one waits.
    pub fn deadline(&self) -> Option<Instant> {
        match (&self.waiting, self.last) {
            (Some(_), Some(last)) => Some(last + self.interval),
            _ => None,
        }
    }

    /// The waiting value, once its time has come at `now`.
    #[must_use]
    pub fn poll(&mut self, now: Instant) -> Option<T> {
        let due = self.deadline().is_some_and(|at| now >= at);
        if !due {
            return None;
        }
        self.last = Some(now);
        self.waiting.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_per_second_and_the_latest_wins() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = Throttle::new(Duration::from_secs(1));
        assert_eq!(t.deadline(), None);
        assert_eq!(t.offer(ms(0), "a"), Some("a"));
        assert_eq!(t.deadline(), None, "nothing waits");
        // A burst within the second: held back, each replacing the last.
        assert_eq!(t.offer(ms(100), "b"), None);
        assert_eq!(t.offer(ms(500), "c"), None);
        assert_eq!(t.deadline(), Some(ms(1000)));
        assert_eq!(t.poll(ms(999)), None);
        assert_eq!(t.poll(ms(1000)), Some("c"));
        assert_eq!(t.poll(ms(1000)), None, "once");
        assert_eq!(t.deadline(), None);
        // The next second counts from the write just made.
        assert_eq!(t.offer(ms(1500), "d"), None);
        assert_eq!(t.deadline(), Some(ms(2000)));
        assert_eq!(t.poll(ms(2300)), Some("d"));
        // Quiet long enough: straight through, and nothing left waiting.
        assert_eq!(t.offer(ms(3300), "e"), Some("e"));
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn a_value_through_at_once_drops_an_older_waiting_one() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(1));
        assert_eq!(t.offer(t0, 1), Some(1));
        assert_eq!(t.offer(t0 + Duration::from_millis(10), 2), None);
        // The caller polled late: the next offer passes and the stale one is gone.
        assert_eq!(t.offer(t0 + Duration::from_secs(5), 3), Some(3));
        assert_eq!(t.poll(t0 + Duration::from_secs(10)), None);
    }
}
