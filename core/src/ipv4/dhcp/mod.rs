//! A DHCPv4 client (RFC 2131) with RFC 5227 address probing, driven by
//! `crate::ipv4::Ipv4Host`.
//!
//! The client is sans-IO like the rest of the core: the host hands it the UDP
//! datagrams that arrive on port 68, the ARP packets it sees and the time, and carries
//! out the `Action`s it returns (frames to send, the interface to configure, events).
//! It never calls back into its owner.
//!
//! # Behaviour
//!
//! * States INIT → SELECTING → REQUESTING → (probe) → BOUND → RENEWING → REBINDING,
//!   and INIT-REBOOT/REBOOTING when [`DhcpConfig::remembered_lease`] (unexpired) or
//!   [`DhcpConfig::remembered_address`] is set.
//! * After a change of network (`crate::Tap::network_changed`) a lease in force is
//!   confirmed with an INIT-REBOOT request (RFC 2131 §3.2, §4.3.2) while still in use:
//!   an ACK renews it, a NAK drops it and starts over, and silence until
//!   [`DhcpConfig::reboot_timeout`] keeps it on its normal T1/T2 schedule.
//! * Retransmission in SELECTING, REQUESTING and REBOOTING after 4, 8, 16, 32, 64, 64 …
//!   seconds, each ±1 s of jitter from the Tap's seeded RNG. REQUESTING gives up and
//!   restarts after five transmissions; REBOOTING falls back to INIT after
//!   [`DhcpConfig::reboot_timeout`] (10 s like dhclient).
//! * Lease times as in [`crate::ipv4::lease`]: T1/T2 from the server when consistent,
//!   else 0.5 and 0.875 of the lease; the lease runs out at the server's expiry, however
//!   short. RENEWING unicasts to the server identifier through the normal egress path;
//!   REBINDING broadcasts. Both retry after half the remaining time (to T2, resp. to
//!   expiry), at least 60 s, never past T2 resp. the expiry. 0xffffffff is an infinite
//!   lease with no renewal at all. After a lease shorter than [`MIN_LEASE`] runs out,
//!   discovery waits until [`MIN_LEASE`] after it was acquired.
//! * DHCPNAK → INIT; repeated NAKs back off like retransmissions so that a
//!   misconfigured server cannot make us loop at wire speed.
//! * RFC 5227 probing of an acknowledged address before it is used, shortened for a
//!   mobile client: [`DhcpConfig::probe_count`] probes spread evenly over
//!   [`DhcpConfig::probe_wait`] (1 s by default) instead of the RFC's 1–2 s gaps plus
//!   `ANNOUNCE_WAIT` (up to ~7 s). Any ARP from another MAC that claims the address,
//!   or probes for it, is a conflict: DHCPDECLINE, wait 10 s (RFC 2131 §3.1), start
//!   over. Once bound, the host announces the address twice.
//! * Discovery starts at once: the RFC 2131 §4.4.1 random 1–10 s wait before the first
//!   DHCPDISCOVER is left out (a single VPN client has nobody to desynchronise from).
//! * A renewal or rebinding ACK for a different address is used at once (no probe) and
//!   reported as [`DhcpEvent::LeaseChanged`].
//! * Everything runs with no TUN attached: the lease events carry what a
//!   `VpnService.Builder` or `ip addr`/`ip route` needs, and ARP for the leased address
//!   is answered as soon as it is bound.
//!
//! Replies are accepted only from UDP port 67 to port 68, with a correct UDP checksum
//! (or none), op BOOTREPLY, our chaddr and the current xid; everything else is dropped
//! and counted in the `dhcp.drop_*` counters of [`crate::Stats`]. The wire format is
//! [`crate::wire::dhcpv4`].

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::{MessageType, Opcode};
use rand::rngs::StdRng;
use rand::{Rng, RngExt};

use crate::io::Timer;
use crate::ipv4::route::Ipv4Interface;
use crate::stats::Stats;
use crate::wire::arp::ArpPacket;
use crate::wire::dhcpv4::{usable_unicast, ClientDatagram, Reply};
use crate::wire::ethernet::MacAddr;

pub use crate::ipv4::lease::{Lease, LeaseLostReason, MIN_LEASE};
pub use crate::wire::dhcpv4::{BOOTP_MIN_LEN, CLIENT_PORT, SERVER_PORT};

/// Configuration of the DHCPv4 client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    /// Host name sent in option 12 (1–255 bytes; otherwise not sent).
    pub hostname: Option<String>,
    /// Client identifier (option 61); `None` sends `0x01` followed by our MAC.
    pub client_id: Option<Vec<u8>>,
    /// An address from an earlier lease: start in INIT-REBOOT and ask for it again.
    /// [`DhcpConfig::remembered_lease`], when set, takes precedence.
    pub remembered_address: Option<Ipv4Addr>,
    /// The lease of an earlier run (see `present::StoredLease` for its stored form):
    /// while it has not expired, start in INIT-REBOOT and ask for its address again,
    /// without a DHCPDISCOVER; once expired, start with discovery. It is not used
    /// before a server acknowledges it, and an unanswered request falls back to
    /// discovery after [`DhcpConfig::reboot_timeout`].
    pub remembered_lease: Option<Lease>,
    /// Probe an acknowledged address with ARP (RFC 5227) before using it.
    pub probe: bool,
    /// How long the whole probe phase lasts. RFC 5227 takes 1–9 s; the default of 1 s
    /// is a deliberate shortening for mobile clients (a conflicting host answers ARP
    /// within milliseconds).
    pub probe_wait: Duration,
    /// Probes sent during [`DhcpConfig::probe_wait`], evenly spaced (RFC 5227: 3).
    pub probe_count: u8,
    /// How long INIT-REBOOT keeps asking for the remembered address before it falls
    /// back to discovery, and how long the confirmation after a change of network
    /// waits before the lease goes back to its T1/T2 schedule.
    pub reboot_timeout: Duration,
}

impl Default for DhcpConfig {
    fn default() -> Self {
        DhcpConfig {
            hostname: None,
            client_id: None,
            remembered_address: None,
            remembered_lease: None,
            probe: true,
            probe_wait: Duration::from_secs(1),
            probe_count: 3,
            reboot_timeout: Duration::from_secs(10),
        }
    }
}

/// The state of the DHCP client (RFC 2131 figure 5, plus probing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DhcpState {
    /// Waiting to start discovery (after a NAK, a decline or an expiry).
    Init,
    /// DHCPDISCOVER sent, waiting for an offer.
    Selecting,
    /// DHCPREQUEST for an offer sent, waiting for the ACK.
    Requesting,
    /// INIT-REBOOT/REBOOTING: DHCPREQUEST for the remembered address sent; also while
    /// a lease still in use is confirmed after a change of network.
    Rebooting,
    /// Acknowledged; probing the address with ARP before using it.
    Probing,
    /// The lease is in use.
    Bound,
    /// Past T1: renewing by unicast with the server that gave the lease.
    Renewing,
    /// Past T2: rebinding by broadcast with any server.
    Rebinding,
    /// Stopped by [`crate::Tap::release`].
    Released,
}

/// What the DHCP client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DhcpEvent {
    /// DHCP gave us our first lease; the interface is configured and the TUN can be
    /// created with it.
    LeaseAcquired(Lease),
    /// The lease was renewed with the same address: nothing to rebuild, though routes,
    /// DNS or times may have changed.
    LeaseRenewed(Lease),
    /// A renewal or rebinding gave a different address: the TUN must be rebuilt.
    LeaseChanged {
        /// The lease that was in force.
        old: Lease,
        /// The lease now in force.
        new: Lease,
    },
    /// The lease is gone and the address removed; DHCP starts over (unless released).
    LeaseLost {
        /// The address we no longer have.
        address: Ipv4Addr,
        /// Why.
        reason: LeaseLostReason,
    },
    /// An acknowledged address was in use by another host (RFC 5227 probe); it was
    /// declined and DHCP starts over.
    LeaseDeclined {
        /// The address we declined.
        address: Ipv4Addr,
        /// The MAC of the host that uses it.
        mac: MacAddr,
    },
}

/// What the client asks its owner to do.
#[derive(Debug)]
// Events are rare and short-lived: boxing the lease would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Action {
    /// Send this complete Ethernet frame.
    Link(Vec<u8>),
    /// Route this frame like TUN traffic (ARP for the next hop): an IPv4 packet behind
    /// [`crate::HEADROOM`] bytes for the Ethernet header. It is our own traffic: no
    /// ICMP error about it ever goes to the TUN.
    Route(Vec<u8>),
    /// Send an RFC 5227 ARP probe for the address.
    Probe(Ipv4Addr),
    /// Configure (or remove) the IPv4 interface; the lease in force, if any, says which
    /// MTU goes with it.
    Configure(Option<Ipv4Interface>),
    /// Report an event.
    Event(DhcpEvent),
}

/// A DHCPRELEASE to send before the address goes away.
#[derive(Debug)]
pub(crate) struct Release {
    /// The frame, its Ethernet header left for the owner to write.
    pub frame: Vec<u8>,
    /// Where it goes.
    pub server: Ipv4Addr,
    /// The MAC the server's last ACK came from.
    pub server_mac: Option<MacAddr>,
}

/// Wait before starting over after a DHCPDECLINE (RFC 2131 §3.1 step 5).
const DECLINE_RESTART: Duration = Duration::from_secs(10);
/// Least wait between retransmissions while renewing or rebinding (RFC 2131 §4.4.5).
const MIN_RENEW_RETRY: Duration = Duration::from_secs(60);
/// Transmissions of a DHCPREQUEST in REQUESTING before starting over.
const MAX_REQUESTS: u32 = 5;

/// Why the client's timer runs.
mod reason {
    pub const START: &str = "dhcp start";
    pub const RETRANSMIT: &str = "dhcp retransmit";
    pub const REBOOT_TIMEOUT: &str = "dhcp reboot timeout";
    pub const PROBE: &str = "dhcp probe";
    pub const RENEW: &str = "dhcp renew (T1)";
    pub const REBIND: &str = "dhcp rebind (T2)";
    pub const EXPIRY: &str = "dhcp expiry";
}

#[derive(Debug, Clone)]
enum State {
    Init,
    Selecting,
    Requesting {
        address: Ipv4Addr,
        server: Ipv4Addr,
    },
    Rebooting {
        address: Ipv4Addr,
        /// The address is a remembered lease's, still valid: we held it until now, so
        /// the server's ACK binds it without an ARP probe.
        held: bool,
    },
    /// INIT-REBOOT for the lease in force after a change of network; it stays in use.
    Confirming {
        address: Ipv4Addr,
    },
    Probing {
        lease: Lease,
        sent: u8,
        started: Instant,
    },
    Bound,
    Renewing,
    Rebinding,
    Released,
}

/// The DHCPv4 client state machine. See the [module documentation](self).
#[derive(Debug)]
pub(crate) struct DhcpClient {
    config: DhcpConfig,
    mac: MacAddr,
    client_id: Vec<u8>,
    max_message_size: u16,
    state: State,
    /// Transaction id of the exchange in progress.
    xid: u32,
    /// When the exchange in progress began (for `secs`).
    started: Instant,
    /// When the first DHCPREQUEST of the exchange went out: the lease counts from here.
    requested_at: Instant,
    /// Transmissions in the exchange in progress.
    attempts: u32,
    /// The next timer: a retransmission, the next probe, T1, T2 or expiry.
    timer: Option<Timer>,
    /// The lease in force (BOUND, RENEWING, REBINDING).
    lease: Option<Lease>,
    /// Ethernet source of the last ACK.
    server_mac: Option<MacAddr>,
    /// NAKs since the last lease, for the restart backoff.
    naks: u32,
    actions: Vec<Action>,
}

impl DhcpClient {
    /// A client that starts (INIT or INIT-REBOOT) at `now`.
    pub fn new(config: DhcpConfig, mac: MacAddr, mtu: u16, now: Instant) -> DhcpClient {
        let client_id = match &config.client_id {
            Some(id) if !id.is_empty() && id.len() <= 255 => id.clone(),
            _ => {
                let mut id = vec![1];
                id.extend_from_slice(&mac.0);
                id
            }
        };
        let state = match reboot::remembered(&config, now) {
            Some((address, held)) => State::Rebooting { address, held },
            None => State::Init,
        };
        DhcpClient {
            config,
            mac,
            client_id,
            max_message_size: mtu.max(576),
            state,
            xid: 0,
            started: now,
            requested_at: now,
            attempts: 0,
            timer: Some(Timer::new(now, reason::START)),
            lease: None,
            server_mac: None,
            naks: 0,
            actions: Vec::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> DhcpState {
        match self.state {
            State::Init => DhcpState::Init,
            State::Selecting => DhcpState::Selecting,
            State::Requesting { .. } => DhcpState::Requesting,
            State::Rebooting { .. } | State::Confirming { .. } => DhcpState::Rebooting,
            State::Probing { .. } => DhcpState::Probing,
            State::Bound => DhcpState::Bound,
            State::Renewing => DhcpState::Renewing,
            State::Rebinding => DhcpState::Rebinding,
            State::Released => DhcpState::Released,
        }
    }

    /// The lease in force.
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// When [`DhcpClient::handle_timeout`] must run next, and why.
    pub fn poll_timeout(&self) -> Option<Timer> {
        self.timer
    }

    /// Everything asked for since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Runs the timer if it is due.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut StdRng, stats: &mut Stats) {
        // Each step sets a timer in the future, so this runs at most a few rounds.
        for _ in 0..8 {
            match self.timer {
                Some(t) if t.at <= now => self.on_timer(now, rng, stats),
                _ => return,
            }
        }
    }

    fn set_timer(&mut self, at: Instant, reason: &'static str) {
        self.timer = Some(Timer::new(at, reason));
    }

    /// A retransmission after `delay`, unless `limit` (with its own reason) comes first.
    fn retransmit_or(&mut self, at: Instant, limit: Instant, limit_reason: &'static str) {
        if at < limit {
            self.set_timer(at, reason::RETRANSMIT);
        } else {
            self.set_timer(limit, limit_reason);
        }
    }

    fn on_timer(&mut self, now: Instant, rng: &mut StdRng, stats: &mut Stats) {
        match self.state.clone() {
            State::Init => self.start_selecting(now, rng, stats),
            State::Selecting => {
                self.send_discover(now, stats);
                self.set_timer(now + backoff(self.attempts, rng), reason::RETRANSMIT);
            }
            State::Requesting { address, server } => {
                if self.attempts >= MAX_REQUESTS {
                    self.restart(now, Duration::ZERO);
                    return;
                }
                self.send_request_selecting(now, address, server, stats);
                self.set_timer(now + backoff(self.attempts, rng), reason::RETRANSMIT);
            }
            State::Rebooting { address, .. } => self.reboot_timer(now, address, rng, stats),
            State::Confirming { address } => self.confirm_timer(now, address, rng, stats),
            State::Probing { .. } => self.probe_step(now),
            State::Bound | State::Renewing | State::Rebinding => self.lease_timer(now, rng, stats),
            State::Released => self.timer = None,
        }
    }

    /// T1, T2, expiry and the retransmissions in between.
    pub(super) fn lease_timer(&mut self, now: Instant, rng: &mut StdRng, stats: &mut Stats) {
        let Some(lease) = self.lease.clone() else {
            self.restart(now, Duration::ZERO);
            return;
        };
        let (Some(t1), Some(t2), Some(expiry)) =
            (lease.renew_at(), lease.rebind_at(), lease.expires_at())
        else {
            self.timer = None; // infinite lease
            return;
        };
        if now >= expiry {
            self.lose(now, LeaseLostReason::Expired);
            return;
        }
        if now >= t2 {
            if !matches!(self.state, State::Rebinding) {
                self.state = State::Rebinding;
                self.new_exchange(now, rng);
            }
            self.send_request_bound(now, &lease, false, stats);
            self.retransmit_or(now + half_or_minimum(expiry - now), expiry, reason::EXPIRY);
        } else if now >= t1 {
            if !matches!(self.state, State::Renewing) {
                self.state = State::Renewing;
                self.new_exchange(now, rng);
            }
            self.send_request_bound(now, &lease, true, stats);
            self.retransmit_or(now + half_or_minimum(t2 - now), t2, reason::REBIND);
        } else {
            self.set_timer(t1, reason::RENEW);
        }
    }

    pub(super) fn new_exchange(&mut self, now: Instant, rng: &mut StdRng) {
        self.xid = rng.next_u32();
        self.started = now;
        self.requested_at = now;
        self.attempts = 0;
    }

    fn start_selecting(&mut self, now: Instant, rng: &mut StdRng, stats: &mut Stats) {
        self.state = State::Selecting;
        self.new_exchange(now, rng);
        self.send_discover(now, stats);
        self.set_timer(now + backoff(0, rng), reason::RETRANSMIT);
    }

    /// Back to INIT; discovery starts after `delay`.
    pub(super) fn restart(&mut self, now: Instant, delay: Duration) {
        self.state = State::Init;
        self.set_timer(now + delay, reason::START);
    }

    /// The lease is gone: remove the address, report, start over.
    fn lose(&mut self, now: Instant, reason: LeaseLostReason) {
        let mut delay = Duration::ZERO;
        if let Some(lease) = self.lease.take() {
            if reason == LeaseLostReason::Expired {
                delay = (lease.acquired_at + MIN_LEASE).saturating_duration_since(now);
            }
            self.actions.push(Action::Configure(None));
            self.actions.push(Action::Event(DhcpEvent::LeaseLost {
                address: lease.address,
                reason,
            }));
        }
        self.restart(now, delay);
    }

    fn bind(&mut self, now: Instant, lease: Lease) {
        self.naks = 0;
        self.state = State::Bound;
        // The T1 timer; an infinite lease has none. If T1 is already past (a slow
        // probe, a late ACK), the timer runs at once and renews.
        self.timer = lease
            .renew_at()
            .map(|t1| Timer::new(t1.max(now), reason::RENEW));
        self.actions
            .push(Action::Configure(Some(lease.interface())));
        let event = match self.lease.replace(lease.clone()) {
            None => DhcpEvent::LeaseAcquired(lease),
            Some(old) if old.address == lease.address => DhcpEvent::LeaseRenewed(lease),
            Some(old) => DhcpEvent::LeaseChanged { old, new: lease },
        };
        self.actions.push(Action::Event(event));
    }

    /// Takes an ARP packet seen on the link: a conflict while probing declines.
    pub fn handle_arp(
        &mut self,
        now: Instant,
        arp: &ArpPacket,
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
        let State::Probing { lease, .. } = &self.state else {
            return;
        };
        let candidate = lease.address;
        let conflict = arp.sender_mac != self.mac
            && (arp.sender_ip == candidate || (arp.is_probe() && arp.target_ip == candidate));
        if !conflict {
            return;
        }
        let server = lease.server;
        stats.dhcp.declines += 1;
        self.new_exchange(now, rng);
        self.send_decline(now, candidate, server, stats);
        self.actions.push(Action::Event(DhcpEvent::LeaseDeclined {
            address: candidate,
            mac: arp.sender_mac,
        }));
        self.restart(now, DECLINE_RESTART);
    }

    /// Gives up the lease: the DHCPRELEASE to send, if a lease was in force. The
    /// client stops.
    pub fn release(
        &mut self,
        now: Instant,
        rng: &mut StdRng,
        stats: &mut Stats,
    ) -> Option<Release> {
        self.state = State::Released;
        self.timer = None;
        let lease = self.lease.take()?;
        self.new_exchange(now, rng);
        self.actions.push(Action::Configure(None));
        self.actions.push(Action::Event(DhcpEvent::LeaseLost {
            address: lease.address,
            reason: LeaseLostReason::Released,
        }));
        let frame = self.release_frame(now, &lease)?;
        stats.dhcp.messages_out += 1;
        Some(Release {
            frame,
            server: lease.server,
            server_mac: self.server_mac,
        })
    }

    /// Takes a UDP datagram that arrived on port 68, from `src_mac`.
    pub fn handle_message(
        &mut self,
        now: Instant,
        src_mac: MacAddr,
        datagram: ClientDatagram<'_>,
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
        if !datagram.valid || datagram.src_port != SERVER_PORT {
            stats.dhcp.drop_malformed += 1;
            return;
        }
        let Some(reply) = Reply::parse(datagram.payload) else {
            stats.dhcp.drop_malformed += 1;
            return;
        };
        stats.dhcp.options_ignored += reply.options.ignored;
        if reply.op != Opcode::BootReply || reply.chaddr != self.mac || reply.xid != self.xid {
            stats.dhcp.drop_not_ours += 1;
            return;
        }
        match (self.state.clone(), reply.message_type) {
            (State::Selecting, MessageType::Offer) => {
                let (Some(server), true) = (reply.server_id, usable_unicast(reply.yiaddr)) else {
                    stats.dhcp.drop_invalid += 1;
                    return;
                };
                stats.dhcp.messages_in += 1;
                // Same xid, new request: the lease counts from this request.
                self.requested_at = now;
                self.attempts = 0;
                self.state = State::Requesting {
                    address: reply.yiaddr,
                    server,
                };
                self.send_request_selecting(now, reply.yiaddr, server, stats);
                self.set_timer(now + backoff(0, rng), reason::RETRANSMIT);
            }
            (State::Requesting { server, .. }, MessageType::Ack) => {
                if reply.server_id.is_some_and(|s| s != server) {
                    stats.dhcp.drop_not_ours += 1;
                    return;
                }
                self.acked(now, src_mac, &reply, Some(server), stats);
            }
            (State::Rebooting { .. } | State::Confirming { .. }, MessageType::Ack) => {
                self.acked(now, src_mac, &reply, Some(datagram.src), stats);
            }
            (State::Renewing | State::Rebinding, MessageType::Ack) => {
                let server = self.lease.as_ref().map(|l| l.server);
                self.acked(now, src_mac, &reply, server, stats);
            }
            (State::Requesting { server, .. }, MessageType::Nak) => {
                if reply.server_id.is_some_and(|s| s != server) {
                    stats.dhcp.drop_not_ours += 1;
                    return;
                }
                stats.dhcp.messages_in += 1;
                self.nakked(now, rng);
            }
            (State::Rebooting { .. }, MessageType::Nak) => {
                stats.dhcp.messages_in += 1;
                self.nakked(now, rng);
            }
            (State::Renewing | State::Rebinding | State::Confirming { .. }, MessageType::Nak) => {
                stats.dhcp.messages_in += 1;
                self.lose(now, LeaseLostReason::Nak);
                self.nakked(now, rng);
            }
            _ => stats.dhcp.drop_unexpected += 1,
        }
    }

    /// Starts over after a NAK: at once the first time, then backing off.
    fn nakked(&mut self, now: Instant, rng: &mut StdRng) {
        let delay = match self.naks {
            0 => Duration::ZERO,
            n => backoff(n - 1, rng),
        };
        self.naks = self.naks.saturating_add(1);
        self.restart(now, delay);
    }

    fn acked(
        &mut self,
        now: Instant,
        src_mac: MacAddr,
        reply: &Reply,
        fallback_server: Option<Ipv4Addr>,
        stats: &mut Stats,
    ) {
        let server = reply
            .server_id
            .or(fallback_server.filter(|s| usable_unicast(*s)));
        let lease = server.and_then(|server| Lease::from_reply(reply, server, self.requested_at));
        let Some(lease) = lease else {
            stats.dhcp.drop_invalid += 1;
            return;
        };
        stats.dhcp.messages_in += 1;
        self.server_mac = Some(src_mac);
        // A lease we held until a restart (a remembered, unexpired lease) is ours on
        // the LAN already: no probe, so a restarted emulator is back at once. Its
        // announcements on binding defend it as any bound address.
        let fresh = match self.state {
            State::Requesting { .. } => true,
            State::Rebooting { address, held } => !(held && lease.address == address),
            _ => false,
        };
        if fresh && self.config.probe {
            self.state = State::Probing {
                lease,
                sent: 0,
                started: now,
            };
            self.probe_step(now);
        } else {
            self.bind(now, lease);
        }
    }

    /// Sends the next probe, or binds when the probe phase passed without conflict.
    fn probe_step(&mut self, now: Instant) {
        let State::Probing {
            lease,
            sent,
            started,
        } = &mut self.state
        else {
            return;
        };
        let count = self.config.probe_count.max(1);
        if *sent < count {
            self.actions.push(Action::Probe(lease.address));
            *sent += 1;
            let at = *started + self.config.probe_wait * u32::from(*sent) / u32::from(count);
            self.set_timer(at, reason::PROBE);
        } else {
            let lease = lease.clone();
            self.bind(now, lease);
        }
    }
}

/// RFC 2131 §4.1 retransmission delay after the `attempts`-th transmission: 4, 8, 16,
/// 32, then 64 s, each ±1 s.
fn backoff(attempts: u32, rng: &mut StdRng) -> Duration {
    let base_ms = 4000u64 << attempts.saturating_sub(1).min(4);
    let jitter: u64 = rng.random_range(0..=2000);
    Duration::from_millis(base_ms - 1000 + jitter)
}

/// Half of `remaining`, but at least 60 s (RFC 2131 §4.4.5).
fn half_or_minimum(remaining: Duration) -> Duration {
    (remaining / 2).max(MIN_RENEW_RETRY)
}

mod messages;
mod reboot;
#[cfg(test)]
mod tests;
