//! INIT-REBOOT (RFC 2131 §3.2, §4.3.2): asking again for an address we had, at start
//! (a remembered lease or address) and after a change of network, when the lease in
//! force is confirmed while it stays in use.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;

use super::{backoff, reason, DhcpClient, DhcpConfig, State};
use crate::stats::Stats;
use crate::wire::dhcpv4::usable_unicast;

/// The address to ask for at start, if any, and whether we held it under a lease: the
/// remembered lease's while it has not expired at `now`, else the remembered address.
pub(super) fn remembered(config: &DhcpConfig, now: Instant) -> Option<(Ipv4Addr, bool)> {
    let address = match &config.remembered_lease {
        Some(lease) if lease.expires_at().is_none_or(|at| at > now) => Some((lease.address, true)),
        Some(_) => None,
        None => config.remembered_address.map(|a| (a, false)),
    };
    address.filter(|(a, _)| usable_unicast(*a))
}

impl DhcpClient {
    /// The link moved (another network, or the same one through another path):
    /// confirm the lease in force with an INIT-REBOOT request, keeping it in use
    /// meanwhile; an exchange in progress starts again at once. The first message
    /// goes when the timer runs at `now`.
    pub fn network_changed(&mut self, now: Instant) {
        match self.state.clone() {
            State::Bound | State::Renewing | State::Rebinding | State::Confirming { .. } => {
                match self.lease.as_ref().map(|l| l.address) {
                    Some(address) => self.state = State::Confirming { address },
                    None => self.state = State::Init,
                }
            }
            // An acknowledged address that is still being probed came from the old
            // network: ask for it again rather than start using it.
            State::Probing { lease, .. } => {
                self.state = State::Rebooting {
                    address: lease.address,
                    held: false,
                }
            }
            State::Rebooting { .. } => {}
            State::Selecting | State::Requesting { .. } => self.state = State::Init,
            // INIT waits on purpose (after a NAK or a decline); RELEASED has stopped.
            State::Init | State::Released => return,
        }
        self.attempts = 0;
        self.set_timer(now, reason::START);
    }

    /// REBOOTING: the request for the remembered address and its retransmissions;
    /// discovery after [`DhcpConfig::reboot_timeout`] without an answer.
    pub(super) fn reboot_timer(
        &mut self,
        now: Instant,
        address: Ipv4Addr,
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
        if self.attempts == 0 {
            self.new_exchange(now, rng);
        } else if now >= self.started + self.config.reboot_timeout {
            self.restart(now, Duration::ZERO);
            return;
        }
        self.send_request_reboot(now, address, stats);
        let retry = now + backoff(self.attempts, rng);
        let deadline = self.started + self.config.reboot_timeout;
        self.retransmit_or(retry, deadline, reason::REBOOT_TIMEOUT);
    }

    /// Confirming the lease in force after a change of network: the request and its
    /// retransmissions. Without an answer by [`DhcpConfig::reboot_timeout`] (or the
    /// lease's expiry, if sooner) the lease goes on as it was: RFC 2131 §3.2 lets a
    /// client use it until it expires, so the T1/T2 schedule takes over again.
    pub(super) fn confirm_timer(
        &mut self,
        now: Instant,
        address: Ipv4Addr,
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
        if self.attempts == 0 {
            self.new_exchange(now, rng);
        }
        let expiry = self.lease.as_ref().and_then(|l| l.expires_at());
        let timeout = self.started + self.config.reboot_timeout;
        let deadline = expiry.map_or(timeout, |e| e.min(timeout));
        if self.attempts > 0 && now >= deadline {
            self.state = State::Bound;
            self.lease_timer(now, rng, stats);
            return;
        }
        self.send_request_reboot(now, address, stats);
        let retry = now + backoff(self.attempts, rng);
        self.retransmit_or(retry, deadline, reason::REBOOT_TIMEOUT);
    }
}
