//! The commands beside the TUN's: network change, the next timer, poke; the MAC and
//! the stored lease, which need no round trip; and the counters' names and values.

use tapemu::driver::DriverStats;
use tapemu::Stats;

use super::{lock, Answer, Session, COMMAND_TIMEOUT};
use crate::error::{Error, Result};

impl Session {
    /// The MAC the emulated host uses (given, or drawn when the emulator was created).
    pub fn mac(&self) -> String {
        self.config.mac().to_string()
    }

    /// The lease in force, in its stored form (`present::StoredLease` JSON), or `None`
    /// (no lease yet, lost, or a static address). Kept by the session thread before it
    /// calls the listener, so a listener may read it too.
    pub fn stored_lease(&self) -> Option<String> {
        lock(&self.stored_lease).clone()
    }

    /// Socket-pair link: hands the app's end of the pair out, once; the caller owns it
    /// from then on.
    pub fn take_peer_fd(&self) -> Result<std::os::fd::RawFd> {
        use std::os::fd::IntoRawFd;
        if !matches!(self.config.link, crate::config::LinkSpec::SocketPair) {
            return Err(Error::IllegalState(
                "peerFd() needs TapConfig.Builder.socketPair()".into(),
            ));
        }
        lock(&self.pair_peer)
            .take()
            .map(IntoRawFd::into_raw_fd)
            .ok_or_else(|| Error::IllegalState("peerFd() was called already".into()))
    }

    /// Runs a command that answers `()` and maps what came of it: queued from the
    /// session thread (a listener) counts as done.
    pub(super) fn unit_command<F>(
        &self,
        what: &str,
        command: impl FnOnce(tapemu::driver::DriverHandle) -> F,
    ) -> Result<()>
    where
        F: std::future::Future<Output = std::result::Result<(), tapemu::driver::DriverError>>
            + Send
            + 'static,
    {
        self.wait_for_link();
        let control = self.control()?;
        let what_owned = what.to_string();
        let answer = control.command(move |driver| {
            let future = command(driver);
            async move {
                let result = future.await;
                if let Err(e) = &result {
                    tracing::warn!("{what_owned}: {e}");
                }
                result.is_ok()
            }
        });
        match answer {
            Answer::Done(true) | Answer::Queued => Ok(()),
            Answer::Done(false) | Answer::Gone => {
                Err(Error::IllegalState("TapEmulator has stopped".into()))
            }
            Answer::Late => Err(Error::IllegalState(format!(
                "{what}: TapEmulator did not answer within {COMMAND_TIMEOUT:?}"
            ))),
        }
    }

    /// The network under the link changed: every link socket is opened again (and
    /// protected again), then the emulated host re-announces itself and confirms its
    /// lease. Waits for the link to open first, like `attach_tun`.
    pub fn network_changed(&self) -> Result<()> {
        self.unit_command("networkChanged", |driver| async move {
            driver.network_changed().await
        })
    }

    /// Runs the protocol timers that are due now.
    pub fn poke(&self) -> Result<()> {
        self.unit_command("poke", |driver| async move { driver.poke().await })
    }

    /// When the next protocol timer is due, in nanoseconds on `CLOCK_BOOTTIME`
    /// (Android's `SystemClock.elapsedRealtimeNanos()`), or -1 when none runs. Not from
    /// the session thread (a listener), which would wait for itself.
    pub fn next_timer(&self) -> Result<i64> {
        self.wait_for_link();
        let control = self.control()?;
        if control.on_session_thread() {
            return Err(Error::IllegalState(
                "nextTimerElapsedRealtimeNanos() cannot be called from a listener method".into(),
            ));
        }
        match control.command(|driver| async move { driver.next_timer().await }) {
            Answer::Done(Ok(Some(timer))) => {
                tracing::debug!("next timer: {}", timer.reason);
                Ok(i64::try_from(timer.boottime_nanos()).unwrap_or(i64::MAX))
            }
            Answer::Done(Ok(None)) => Ok(-1),
            Answer::Done(Err(_)) | Answer::Gone | Answer::Queued => {
                Err(Error::IllegalState("TapEmulator has stopped".into()))
            }
            Answer::Late => Err(Error::IllegalState(format!(
                "TapEmulator did not answer within {COMMAND_TIMEOUT:?}"
            ))),
        }
    }
}

/// Names of the values [`Session::stats`] returns, in order.
pub fn stat_names() -> Vec<String> {
    let mut names: Vec<String> = Stats::default()
        .fields()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.extend(
        [
            "drops_total",
            "tun_attached",
            "link_dropped_out",
            "link_dropped_in",
            "tun_dropped_out",
            "dropped_no_tun",
            "link_reconnects",
            "wakeups",
            "callback_frames_refused",
            "callback_frames_dropped",
            "tun_dropped_in",
            "tun_super_segments_in",
            "tun_super_segments_out",
        ]
        .map(String::from),
    );
    names
}

pub(super) fn stat_values(
    s: &DriverStats,
    callback_refused: u64,
    callback_dropped: u64,
) -> Vec<i64> {
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let mut values: Vec<i64> = s.tap.fields().into_iter().map(|(_, v)| as_i64(v)).collect();
    values.extend_from_slice(&[
        as_i64(s.tap.drops_total()),
        i64::from(s.tun_attached),
        as_i64(s.link_dropped_out),
        as_i64(s.link_dropped_in),
        as_i64(s.tun_dropped_out),
        as_i64(s.dropped_no_tun),
        as_i64(s.link_reconnects),
        as_i64(s.wakeups),
        as_i64(callback_refused),
        as_i64(callback_dropped),
        as_i64(s.tun_dropped_in),
        as_i64(s.tun_super_segments_in),
        as_i64(s.tun_super_segments_out),
    ]);
    values
}
