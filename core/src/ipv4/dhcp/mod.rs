//! A DHCPv4 client (RFC 2131) with RFC 5227 address probing, driven by [`crate::Tap`].
//!
//! The client is sans-IO like the rest of the core: [`crate::Tap`] hands it the UDP
//! payloads that arrive on port 68, the ARP packets it sees and the time, and carries
//! out what it asks for (frames to send, the interface to configure, events).
//!
//! # Behaviour
//!
//! * States INIT → SELECTING → REQUESTING → (probe) → BOUND → RENEWING → REBINDING,
//!   and INIT-REBOOT/REBOOTING when [`DhcpConfig::remembered_address`] is set.
//! * Retransmission in SELECTING, REQUESTING and REBOOTING after 4, 8, 16, 32, 64, 64 …
//!   seconds, each ±1 s of jitter from the Tap's seeded RNG. REQUESTING gives up and
//!   restarts after five transmissions; REBOOTING falls back to INIT after
//!   [`DhcpConfig::reboot_timeout`] (10 s like dhclient).
//! * T1/T2 from the server when consistent (T1 < T2 < lease), else 0.5 and 0.875 of the
//!   lease. RENEWING unicasts to the server identifier through the normal egress path;
//!   REBINDING broadcasts. Both retry after half the remaining time (to T2, resp. to
//!   expiry), at least 60 s. Leases shorter than [`MIN_LEASE`] are clamped to it;
//!   0xffffffff is an infinite lease with no renewal at all.
//! * DHCPNAK → INIT; repeated NAKs back off like retransmissions so that a
//!   misconfigured server cannot make us loop at wire speed.
//! * RFC 5227 probing of an acknowledged address before it is used, shortened for a
//!   mobile client: [`DhcpConfig::probe_count`] probes spread evenly over
//!   [`DhcpConfig::probe_wait`] (1 s by default) instead of the RFC's 1–2 s gaps plus
//!   `ANNOUNCE_WAIT` (up to ~7 s). Any ARP from another MAC that claims the address,
//!   or probes for it, is a conflict: DHCPDECLINE, wait 10 s (RFC 2131 §3.1), start
//!   over. Once bound, [`crate::Tap::set_ipv4`] announces the address twice.
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
//! and counted in the `drop_dhcp_*` counters of [`crate::Stats`]. DHCP traffic is never
//! delivered to the TUN while the IPv4 mode is DHCP.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use etherparse::{Ipv4HeaderSlice, PacketBuilder};
use rand::rngs::StdRng;
use rand::{Rng, RngExt};

use crate::ipv4::route::{prefix_mask, Ipv4Interface, Ipv4Route};
use crate::stats::Stats;
use crate::wire::arp::ArpPacket;
use crate::wire::ethernet::MacAddr;

/// Shortest lease accepted; shorter leases are treated as this long.
pub const MIN_LEASE: Duration = Duration::from_secs(60);

/// Configuration of the DHCPv4 client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    /// Host name sent in option 12 (1–255 bytes; otherwise not sent).
    pub hostname: Option<String>,
    /// Client identifier (option 61); `None` sends `0x01` followed by our MAC.
    pub client_id: Option<Vec<u8>>,
    /// An address from an earlier lease: start in INIT-REBOOT and ask for it again.
    pub remembered_address: Option<Ipv4Addr>,
    /// Probe an acknowledged address with ARP (RFC 5227) before using it.
    pub probe: bool,
    /// How long the whole probe phase lasts. RFC 5227 takes 1–9 s; the default of 1 s
    /// is a deliberate shortening for mobile clients (a conflicting host answers ARP
    /// within milliseconds).
    pub probe_wait: Duration,
    /// Probes sent during [`DhcpConfig::probe_wait`], evenly spaced (RFC 5227: 3).
    pub probe_count: u8,
    /// How long INIT-REBOOT keeps asking for the remembered address before it falls
    /// back to discovery.
    pub reboot_timeout: Duration,
}

impl Default for DhcpConfig {
    fn default() -> Self {
        DhcpConfig {
            hostname: None,
            client_id: None,
            remembered_address: None,
            probe: true,
            probe_wait: Duration::from_secs(1),
            probe_count: 3,
            reboot_timeout: Duration::from_secs(10),
        }
    }
}

/// A lease: everything a `VpnService.Builder` or `ip addr`/`ip route` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Our address (yiaddr).
    pub address: Ipv4Addr,
    /// Prefix length from the subnet mask (option 1), else the address class.
    pub prefix_len: u8,
    /// The default gateway: the 0.0.0.0/0 entry of the classless static routes when
    /// option 121 is present (RFC 3442: the router option is then ignored), else the
    /// first router (option 3).
    pub gateway: Option<Ipv4Addr>,
    /// The routes beyond the subnet: option 121 if present, else a default route via
    /// the first router. An on-link route has `gateway: None`.
    pub routes: Vec<Ipv4Route>,
    /// DNS servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// Domain name (option 15).
    pub domain: Option<String>,
    /// Domain search list (option 119), without trailing dots.
    pub search: Vec<String>,
    /// Interface MTU (option 26); values under 68 are ignored.
    pub mtu: Option<u16>,
    /// Broadcast address (option 28).
    pub broadcast: Option<Ipv4Addr>,
    /// Lease duration after clamping to [`MIN_LEASE`]; `None` is an infinite lease.
    pub lease_time: Option<Duration>,
    /// Time from `acquired_at` to RENEWING, as used (`None` for an infinite lease).
    pub t1: Option<Duration>,
    /// Time from `acquired_at` to REBINDING, as used (`None` for an infinite lease).
    pub t2: Option<Duration>,
    /// The server identifier (option 54).
    pub server: Ipv4Addr,
    /// When the request that obtained the lease was first sent: lease times count from
    /// here (RFC 2131 §4.4.1).
    pub acquired_at: Instant,
}

impl Lease {
    /// When the lease runs out, or `None` if it is infinite.
    pub fn expires_at(&self) -> Option<Instant> {
        self.lease_time.map(|d| self.acquired_at + d)
    }

    /// The interface configuration the lease gives.
    pub fn interface(&self) -> crate::ipv4::route::Ipv4Interface {
        crate::ipv4::route::Ipv4Interface {
            address: self.address,
            prefix_len: self.prefix_len,
            routes: self.routes.clone(),
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
    /// INIT-REBOOT/REBOOTING: DHCPREQUEST for the remembered address sent.
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

/// Why a lease was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseLostReason {
    /// Neither renewal nor rebinding succeeded before the lease ran out.
    Expired,
    /// A server answered a renewal or rebinding with DHCPNAK.
    Nak,
    /// Given up by [`crate::Tap::release`].
    Released,
}

/// UDP port of DHCP servers.
pub const SERVER_PORT: u16 = 67;
/// UDP port of DHCP clients.
pub const CLIENT_PORT: u16 = 68;
/// Smallest BOOTP message (RFC 1542 §2.1); shorter ones are padded.
pub const BOOTP_MIN_LEN: usize = 300;
/// Length of the fixed BOOTP header plus the magic cookie.
const HEADER_LEN: usize = 240;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Wait before starting over after a DHCPDECLINE (RFC 2131 §3.1 step 5).
const DECLINE_RESTART: Duration = Duration::from_secs(10);
/// Least wait between retransmissions while renewing or rebinding (RFC 2131 §4.4.5).
const MIN_RENEW_RETRY: Duration = Duration::from_secs(60);
/// Transmissions of a DHCPREQUEST in REQUESTING before starting over.
const MAX_REQUESTS: u32 = 5;
/// IP TTL of our DHCP messages.
const TTL: u8 = 64;
/// The options we ask for (option 55), in the order the server should consider them.
const REQUESTED_OPTIONS: [u8; 12] = [1, 121, 3, 6, 15, 119, 26, 28, 51, 54, 58, 59];

/// A UDP datagram to the DHCP client port, found in an IPv4 packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UdpDatagram<'a> {
    /// IP source.
    pub src: Ipv4Addr,
    /// UDP source port.
    pub src_port: u16,
    /// False when the UDP checksum is present and wrong, or the lengths disagree.
    pub valid: bool,
    /// The UDP payload.
    pub payload: &'a [u8],
}

/// If `packet` (a whole, checked IPv4 packet whose header `ip` the caller has already
/// parsed) is an unfragmented UDP datagram to port 68, the datagram.
pub(crate) fn client_port_payload<'a>(
    ip: &Ipv4HeaderSlice<'_>,
    packet: &'a [u8],
) -> Option<UdpDatagram<'a>> {
    if ip.protocol() != etherparse::IpNumber::UDP || ip.is_fragmenting_payload() {
        return None;
    }
    let segment = packet.get(ip.slice().len()..)?;
    let header = segment.get(..8)?;
    if u16::from_be_bytes([header[2], header[3]]) != CLIENT_PORT {
        return None;
    }
    let src_port = u16::from_be_bytes([header[0], header[1]]);
    let udp_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let checksum = u16::from_be_bytes([header[6], header[7]]);
    let Some(datagram) = segment.get(..udp_len).filter(|_| udp_len >= 8) else {
        return Some(UdpDatagram {
            src: ip.source_addr(),
            src_port,
            valid: false,
            payload: &[],
        });
    };
    let valid = checksum == 0 || {
        let sum = etherparse::checksum::Sum16BitWords::new()
            .add_4bytes(ip.source())
            .add_4bytes(ip.destination())
            .add_2bytes([0, 17])
            .add_2bytes((udp_len as u16).to_be_bytes())
            .add_slice(datagram);
        sum.ones_complement() == 0
    };
    Some(UdpDatagram {
        src: ip.source_addr(),
        src_port,
        valid,
        payload: &datagram[8..],
    })
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

/// What the client asks [`crate::Tap`] to do.
#[derive(Debug)]
// Events are rare and short-lived: boxing the lease would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Action {
    /// Send this complete Ethernet frame.
    Link(Vec<u8>),
    /// Route this IPv4 packet like TUN traffic (ARP for the next hop).
    Route(Vec<u8>),
    /// Send an RFC 5227 ARP probe for the address.
    Probe(Ipv4Addr),
    /// Configure (or remove) the IPv4 interface.
    Configure(Option<Ipv4Interface>),
    /// Report an event.
    Event(DhcpEvent),
}

/// A DHCPRELEASE to send before the address goes away.
#[derive(Debug)]
pub(crate) struct Release {
    /// The IPv4 packet.
    pub packet: Vec<u8>,
    /// Where it goes.
    pub server: Ipv4Addr,
    /// The MAC the server's last ACK came from.
    pub server_mac: Option<MacAddr>,
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
    timer: Option<Instant>,
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
        let state = match config.remembered_address {
            Some(address) if usable_unicast(address) => State::Rebooting { address },
            _ => State::Init,
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
            timer: Some(now),
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
            State::Rebooting { .. } => DhcpState::Rebooting,
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

    /// When [`DhcpClient::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
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
                Some(t) if t <= now => self.on_timer(now, rng, stats),
                _ => return,
            }
        }
    }

    fn on_timer(&mut self, now: Instant, rng: &mut StdRng, stats: &mut Stats) {
        match self.state.clone() {
            State::Init => self.start_selecting(now, rng, stats),
            State::Selecting => {
                self.send_discover(now, stats);
                self.timer = Some(now + backoff(self.attempts, rng));
            }
            State::Requesting { address, server } => {
                if self.attempts >= MAX_REQUESTS {
                    self.restart(now, Duration::ZERO);
                    return;
                }
                self.send_request_selecting(now, address, server, stats);
                self.timer = Some(now + backoff(self.attempts, rng));
            }
            State::Rebooting { address } => {
                if self.attempts == 0 {
                    self.new_exchange(now, rng);
                } else if now >= self.started + self.config.reboot_timeout {
                    self.restart(now, Duration::ZERO);
                    return;
                }
                self.send_request_reboot(now, address, stats);
                let retry = now + backoff(self.attempts, rng);
                self.timer = Some(retry.min(self.started + self.config.reboot_timeout));
            }
            State::Probing { .. } => self.probe_step(now),
            State::Bound | State::Renewing | State::Rebinding => self.lease_timer(now, rng, stats),
            State::Released => self.timer = None,
        }
    }

    /// T1, T2, expiry and the retransmissions in between.
    fn lease_timer(&mut self, now: Instant, rng: &mut StdRng, stats: &mut Stats) {
        let Some(lease) = self.lease.clone() else {
            self.restart(now, Duration::ZERO);
            return;
        };
        let (Some(t1), Some(t2), Some(expiry)) = (
            lease.t1.map(|t| lease.acquired_at + t),
            lease.t2.map(|t| lease.acquired_at + t),
            lease.expires_at(),
        ) else {
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
            self.timer = Some(expiry.min(now + half_or_minimum(expiry - now)));
        } else if now >= t1 {
            if !matches!(self.state, State::Renewing) {
                self.state = State::Renewing;
                self.new_exchange(now, rng);
            }
            self.send_request_bound(now, &lease, true, stats);
            self.timer = Some(t2.min(now + half_or_minimum(t2 - now)));
        } else {
            self.timer = Some(t1);
        }
    }

    fn new_exchange(&mut self, now: Instant, rng: &mut StdRng) {
        self.xid = rng.next_u32();
        self.started = now;
        self.requested_at = now;
        self.attempts = 0;
    }

    fn start_selecting(&mut self, now: Instant, rng: &mut StdRng, stats: &mut Stats) {
        self.state = State::Selecting;
        self.new_exchange(now, rng);
        self.send_discover(now, stats);
        self.timer = Some(now + backoff(0, rng));
    }

    /// Back to INIT; discovery starts after `delay`.
    fn restart(&mut self, now: Instant, delay: Duration) {
        self.state = State::Init;
        self.timer = Some(now + delay);
    }

    /// The lease is gone: remove the address, report, start over.
    fn lose(&mut self, now: Instant, reason: LeaseLostReason) {
        if let Some(lease) = self.lease.take() {
            self.actions.push(Action::Configure(None));
            self.actions.push(Action::Event(DhcpEvent::LeaseLost {
                address: lease.address,
                reason,
            }));
        }
        self.restart(now, Duration::ZERO);
    }

    fn bind(&mut self, now: Instant, lease: Lease) {
        self.naks = 0;
        self.state = State::Bound;
        self.actions
            .push(Action::Configure(Some(lease.interface())));
        let event = match self.lease.replace(lease.clone()) {
            None => DhcpEvent::LeaseAcquired(lease),
            Some(old) if old.address == lease.address => DhcpEvent::LeaseRenewed(lease),
            Some(old) => DhcpEvent::LeaseChanged { old, new: lease },
        };
        self.actions.push(Action::Event(event));
        // The T1 timer; an infinite lease has none. If T1 is already past (a slow
        // probe, a late ACK), the timer runs at once and renews.
        self.timer = self
            .lease
            .as_ref()
            .and_then(|l| l.t1.map(|t1| (l.acquired_at + t1).max(now)));
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
        let options = vec![
            DhcpOption::MessageType(MessageType::Decline),
            DhcpOption::ClientIdentifier(self.client_id.clone()),
            DhcpOption::RequestedIpAddress(candidate),
            DhcpOption::ServerIdentifier(server),
        ];
        let payload = self.encode(now, Ipv4Addr::UNSPECIFIED, options);
        self.broadcast(Ipv4Addr::UNSPECIFIED, payload, stats);
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
        let options = vec![
            DhcpOption::MessageType(MessageType::Release),
            DhcpOption::ClientIdentifier(self.client_id.clone()),
            DhcpOption::ServerIdentifier(lease.server),
        ];
        let payload = self.encode(now, lease.address, options);
        stats.dhcp.messages_out += 1;
        self.actions.push(Action::Configure(None));
        self.actions.push(Action::Event(DhcpEvent::LeaseLost {
            address: lease.address,
            reason: LeaseLostReason::Released,
        }));
        Some(Release {
            packet: udp_packet(lease.address, lease.server, &payload),
            server: lease.server,
            server_mac: self.server_mac,
        })
    }

    /// Takes a UDP datagram that arrived on port 68.
    pub fn handle_message(
        &mut self,
        now: Instant,
        src_mac: MacAddr,
        datagram: UdpDatagram<'_>,
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
        if !datagram.valid || datagram.src_port != SERVER_PORT {
            stats.dhcp.drop_malformed += 1;
            return;
        }
        let Some(reply) = Reply::parse(datagram.payload, stats) else {
            stats.dhcp.drop_malformed += 1;
            return;
        };
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
                self.timer = Some(now + backoff(0, rng));
            }
            (State::Requesting { server, .. }, MessageType::Ack) => {
                if reply.server_id.is_some_and(|s| s != server) {
                    stats.dhcp.drop_not_ours += 1;
                    return;
                }
                self.acked(now, src_mac, &reply, Some(server), stats);
            }
            (State::Rebooting { .. }, MessageType::Ack) => {
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
            (State::Renewing | State::Rebinding, MessageType::Nak) => {
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
        let Some(lease) = server.and_then(|server| reply.lease(server, self.requested_at)) else {
            stats.dhcp.drop_invalid += 1;
            return;
        };
        stats.dhcp.messages_in += 1;
        self.server_mac = Some(src_mac);
        let fresh = matches!(
            self.state,
            State::Requesting { .. } | State::Rebooting { .. }
        );
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
            self.timer =
                Some(*started + self.config.probe_wait * u32::from(*sent) / u32::from(count));
        } else {
            let lease = lease.clone();
            self.bind(now, lease);
        }
    }

    /// The options every DISCOVER and REQUEST carries.
    fn common_options(&self, message_type: MessageType) -> Vec<DhcpOption> {
        let mut options = vec![
            DhcpOption::MessageType(message_type),
            DhcpOption::ClientIdentifier(self.client_id.clone()),
            DhcpOption::MaxMessageSize(self.max_message_size),
            DhcpOption::ParameterRequestList(
                REQUESTED_OPTIONS
                    .iter()
                    .map(|&c| OptionCode::from(c))
                    .collect(),
            ),
        ];
        if let Some(name) = self
            .config
            .hostname
            .as_ref()
            .filter(|n| !n.is_empty() && n.len() <= 255)
        {
            options.push(DhcpOption::Hostname(name.clone()));
        }
        options
    }

    fn send_discover(&mut self, now: Instant, stats: &mut Stats) {
        self.attempts += 1;
        let options = self.common_options(MessageType::Discover);
        let payload = self.encode(now, Ipv4Addr::UNSPECIFIED, options);
        self.broadcast(Ipv4Addr::UNSPECIFIED, payload, stats);
    }

    fn send_request_selecting(
        &mut self,
        now: Instant,
        address: Ipv4Addr,
        server: Ipv4Addr,
        stats: &mut Stats,
    ) {
        self.attempts += 1;
        let mut options = self.common_options(MessageType::Request);
        options.push(DhcpOption::RequestedIpAddress(address));
        options.push(DhcpOption::ServerIdentifier(server));
        let payload = self.encode(now, Ipv4Addr::UNSPECIFIED, options);
        self.broadcast(Ipv4Addr::UNSPECIFIED, payload, stats);
    }

    fn send_request_reboot(&mut self, now: Instant, address: Ipv4Addr, stats: &mut Stats) {
        self.attempts += 1;
        let mut options = self.common_options(MessageType::Request);
        options.push(DhcpOption::RequestedIpAddress(address));
        let payload = self.encode(now, Ipv4Addr::UNSPECIFIED, options);
        self.broadcast(Ipv4Addr::UNSPECIFIED, payload, stats);
    }

    /// A REQUEST from RENEWING (unicast to the server, routed) or REBINDING (broadcast).
    fn send_request_bound(
        &mut self,
        now: Instant,
        lease: &Lease,
        unicast: bool,
        stats: &mut Stats,
    ) {
        self.attempts += 1;
        let options = self.common_options(MessageType::Request);
        let payload = self.encode(now, lease.address, options);
        if unicast {
            stats.dhcp.messages_out += 1;
            let packet = udp_packet(lease.address, lease.server, &payload);
            self.actions.push(Action::Route(packet));
        } else {
            self.broadcast(lease.address, payload, stats);
        }
    }

    /// Encodes a BOOTREQUEST with `options`, padded to [`BOOTP_MIN_LEN`].
    fn encode(&self, now: Instant, ciaddr: Ipv4Addr, options: Vec<DhcpOption>) -> Vec<u8> {
        let secs = now.saturating_duration_since(self.started).as_secs();
        let mut msg = Message::new_with_id(
            self.xid,
            ciaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &self.mac.0,
        );
        msg.set_secs(u16::try_from(secs).unwrap_or(u16::MAX));
        for option in options {
            msg.opts_mut().insert(option);
        }
        let mut buf = Vec::with_capacity(BOOTP_MIN_LEN);
        // Encoding into a Vec only fails on values dhcproto cannot represent, and all
        // of ours are bounded above; an empty message would be dropped by any server.
        if msg.encode(&mut Encoder::new(&mut buf)).is_err() {
            buf.clear();
        }
        if buf.len() < BOOTP_MIN_LEN {
            buf.resize(BOOTP_MIN_LEN, 0);
        }
        buf
    }

    /// Queues `payload` as a broadcast from `src`:68 to 255.255.255.255:67.
    fn broadcast(&mut self, src: Ipv4Addr, payload: Vec<u8>, stats: &mut Stats) {
        stats.dhcp.messages_out += 1;
        let builder = PacketBuilder::ethernet2(self.mac.0, MacAddr::BROADCAST.0)
            .ipv4(src.octets(), Ipv4Addr::BROADCAST.octets(), TTL)
            .udp(CLIENT_PORT, SERVER_PORT);
        let mut frame = Vec::with_capacity(builder.size(payload.len()));
        if builder.write(&mut frame, &payload).is_ok() {
            self.actions.push(Action::Link(frame));
        }
    }
}

/// An IPv4/UDP packet from `src`:68 to `dst`:67.
fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let builder =
        PacketBuilder::ipv4(src.octets(), dst.octets(), TTL).udp(CLIENT_PORT, SERVER_PORT);
    let mut packet = Vec::with_capacity(builder.size(payload.len()));
    if builder.write(&mut packet, payload).is_err() {
        packet.clear();
    }
    packet
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

/// An address a host can have: not 0.0.0.0, broadcast, multicast, loopback or class E.
fn usable_unicast(addr: Ipv4Addr) -> bool {
    !(addr.is_unspecified()
        || addr.is_broadcast()
        || addr.is_multicast()
        || addr.is_loopback()
        || addr.octets()[0] >= 240)
}

/// The prefix length of the classful network of `addr` (used without option 1).
fn classful_prefix(addr: Ipv4Addr) -> u8 {
    match addr.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// A DHCP reply, with the options the client uses.
#[derive(Debug)]
struct Reply {
    op: Opcode,
    xid: u32,
    chaddr: MacAddr,
    yiaddr: Ipv4Addr,
    message_type: MessageType,
    server_id: Option<Ipv4Addr>,
    options: Options,
}

/// The options of a reply the lease is built from, each already validated.
#[derive(Debug, Default)]
struct Options {
    subnet_mask: Option<u8>,
    bad_subnet_mask: bool,
    routers: Vec<Ipv4Addr>,
    dns: Vec<Ipv4Addr>,
    domain: Option<String>,
    search: Vec<String>,
    mtu: Option<u16>,
    broadcast: Option<Ipv4Addr>,
    lease_time: Option<u32>,
    t1: Option<u32>,
    t2: Option<u32>,
    classless_routes: Option<Vec<Ipv4Route>>,
}

impl Reply {
    /// Parses a BOOTREPLY. The fixed header goes through dhcproto; the options are
    /// walked here with bounds checks, because dhcproto 0.15's option decoder stops at
    /// the first option it dislikes and has `debug_assert!`s on the lengths of options
    /// 80, 94 and 152–155, which a hostile server controls (a panic in debug builds).
    fn parse(bytes: &[u8], stats: &mut Stats) -> Option<Reply> {
        let header = bytes.get(..HEADER_LEN)?;
        if header[236..240] != MAGIC {
            return None;
        }
        let msg = Message::decode(&mut Decoder::new(header)).ok()?;
        // Read chaddr from the raw header: dhcproto's `chaddr()` slices by the
        // sender-controlled hlen and panics when it is below 6 or above 16.
        let mut chaddr = [0u8; 6];
        if header[2] == 6 {
            chaddr.copy_from_slice(&header[28..34]);
        }
        let raw = RawOptions::collect(bytes)?;
        let message_type = match raw.get(53) {
            Some([t]) => MessageType::from(*t),
            _ => return None,
        };
        let server_id = raw.get(54).and_then(ipv4).filter(|a| usable_unicast(*a));
        let options = Options::parse(&raw, stats);
        Some(Reply {
            op: msg.opcode(),
            xid: msg.xid(),
            chaddr: MacAddr(chaddr),
            yiaddr: msg.yiaddr(),
            message_type,
            server_id,
            options,
        })
    }

    /// The lease this ACK gives, or `None` if it lacks what a lease needs.
    fn lease(&self, server: Ipv4Addr, acquired_at: Instant) -> Option<Lease> {
        let o = &self.options;
        if !usable_unicast(self.yiaddr) || o.bad_subnet_mask {
            return None;
        }
        let lease_secs = o.lease_time?;
        let prefix_len = o
            .subnet_mask
            .unwrap_or_else(|| classful_prefix(self.yiaddr));
        let (lease_time, t1, t2) = if lease_secs == u32::MAX {
            (None, None, None)
        } else {
            let lease = Duration::from_secs(lease_secs.into()).max(MIN_LEASE);
            let given = |v: Option<u32>| v.map(|s| Duration::from_secs(s.into()));
            let t2 = given(o.t2)
                .filter(|t| !t.is_zero() && *t < lease)
                .unwrap_or(lease * 7 / 8);
            let t1 = given(o.t1)
                .filter(|t| !t.is_zero() && *t < t2)
                .unwrap_or((lease / 2).min(t2));
            (Some(lease), Some(t1), Some(t2))
        };
        let (routes, gateway) = match &o.classless_routes {
            Some(routes) => {
                let gateway = routes
                    .iter()
                    .find(|r| r.prefix_len == 0)
                    .and_then(|r| r.gateway);
                (routes.clone(), gateway)
            }
            None => {
                let gateway = o.routers.first().copied();
                let routes = gateway.map(Ipv4Route::default_via).into_iter().collect();
                (routes, gateway)
            }
        };
        Some(Lease {
            address: self.yiaddr,
            prefix_len,
            gateway,
            routes,
            dns: o.dns.clone(),
            domain: o.domain.clone(),
            search: o.search.clone(),
            mtu: o.mtu,
            broadcast: o.broadcast,
            lease_time,
            t1,
            t2,
            server,
            acquired_at,
        })
    }
}

/// The options of a message as raw values, with split options (RFC 3396) joined and
/// option overload (option 52) followed into the `file` and `sname` fields.
#[derive(Debug, Default)]
struct RawOptions {
    values: Vec<(u8, Vec<u8>)>,
}

impl RawOptions {
    /// `None` when the options area is truncated.
    fn collect(message: &[u8]) -> Option<RawOptions> {
        let mut raw = RawOptions::default();
        raw.walk(message.get(HEADER_LEN..)?)?;
        let overload = match raw.get(52) {
            Some([v]) => *v,
            _ => 0,
        };
        // RFC 3396 §5: options, then file, then sname.
        if overload & 1 != 0 {
            raw.walk(message.get(108..236)?)?;
        }
        if overload & 2 != 0 {
            raw.walk(message.get(44..108)?)?;
        }
        Some(raw)
    }

    fn walk(&mut self, mut area: &[u8]) -> Option<()> {
        loop {
            match area {
                [] | [255, ..] => return Some(()),
                [0, rest @ ..] => area = rest,
                [code, len, rest @ ..] => {
                    let len = usize::from(*len);
                    let value = rest.get(..len)?;
                    match self.values.iter_mut().find(|(c, _)| c == code) {
                        Some((_, existing)) => existing.extend_from_slice(value),
                        None => self.values.push((*code, value.to_vec())),
                    }
                    area = &rest[len..];
                }
                [_] => return None,
            }
        }
    }

    fn get(&self, code: u8) -> Option<&[u8]> {
        self.values
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }
}

fn ipv4(value: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(value).ok().map(Ipv4Addr::from)
}

fn ipv4_list(value: &[u8]) -> Option<Vec<Ipv4Addr>> {
    if value.is_empty() || value.len() % 4 != 0 {
        return None;
    }
    Some(value.chunks_exact(4).filter_map(ipv4).collect())
}

fn u32_value(value: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(value).ok().map(u32::from_be_bytes)
}

/// A string option: UTF-8, trailing NULs (which some servers send) removed.
fn string_value(value: &[u8]) -> Option<String> {
    let end = value.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let s = std::str::from_utf8(&value[..end]).ok()?;
    (!s.is_empty() && !s.contains('\0')).then(|| s.to_owned())
}

impl Options {
    /// Validates each option; a malformed one is counted and left out.
    fn parse(raw: &RawOptions, stats: &mut Stats) -> Options {
        let mut o = Options::default();
        let mut check = |present: bool, ok: bool| {
            if present && !ok {
                stats.dhcp.options_ignored += 1;
            }
        };
        if let Some(v) = raw.get(1) {
            let mask = u32_value(v);
            o.subnet_mask = mask.and_then(|m| {
                let len = m.leading_ones() as u8;
                (prefix_mask(len) == m).then_some(len)
            });
            o.bad_subnet_mask = o.subnet_mask.is_none();
        }
        if let Some(v) = raw.get(3) {
            o.routers = ipv4_list(v).unwrap_or_default();
            o.routers.retain(|a| usable_unicast(*a));
            check(true, !o.routers.is_empty());
        }
        if let Some(v) = raw.get(6) {
            o.dns = ipv4_list(v).unwrap_or_default();
            check(true, !o.dns.is_empty());
        }
        if let Some(v) = raw.get(15) {
            o.domain = string_value(v);
            check(true, o.domain.is_some());
        }
        if let Some(v) = raw.get(119) {
            let search = decode_domain_list(v);
            check(true, search.is_some());
            o.search = search.unwrap_or_default();
        }
        if let Some(v) = raw.get(26) {
            o.mtu = <[u8; 2]>::try_from(v)
                .ok()
                .map(u16::from_be_bytes)
                .filter(|m| *m >= 68);
            check(true, o.mtu.is_some());
        }
        if let Some(v) = raw.get(28) {
            o.broadcast = ipv4(v);
            check(true, o.broadcast.is_some());
        }
        o.lease_time = raw.get(51).and_then(u32_value);
        check(raw.get(51).is_some(), o.lease_time.is_some());
        o.t1 = raw.get(58).and_then(u32_value);
        check(raw.get(58).is_some(), o.t1.is_some());
        o.t2 = raw.get(59).and_then(u32_value);
        check(raw.get(59).is_some(), o.t2.is_some());
        if let Some(v) = raw.get(121) {
            o.classless_routes = decode_classless_routes(v);
            check(true, o.classless_routes.is_some());
        }
        o
    }
}

/// Option 121 (RFC 3442): (width, significant destination octets, router)*. A
/// router of 0.0.0.0 is an on-link route. `None` if malformed or empty.
fn decode_classless_routes(mut v: &[u8]) -> Option<Vec<Ipv4Route>> {
    let mut routes = Vec::new();
    while let [width, rest @ ..] = v {
        if *width > 32 {
            return None;
        }
        let octets = usize::from(width.div_ceil(8));
        let dest = rest.get(..octets)?;
        let router = ipv4(rest.get(octets..octets + 4)?)?;
        let mut d = [0u8; 4];
        d[..octets].copy_from_slice(dest);
        let destination = Ipv4Addr::from(u32::from_be_bytes(d) & prefix_mask(*width));
        routes.push(Ipv4Route {
            destination,
            prefix_len: *width,
            gateway: (!router.is_unspecified()).then_some(router),
        });
        v = &rest[octets + 4..];
    }
    (!routes.is_empty()).then_some(routes)
}

/// Most search domains taken from option 119.
const MAX_SEARCH_DOMAINS: usize = 32;

/// Option 119 (RFC 3397): DNS names in wire format, with compression pointers into
/// the option itself. `None` if malformed.
fn decode_domain_list(v: &[u8]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut pos = 0;
    // Each name may point back into earlier ones: cap the list so a long option cannot
    // expand into megabytes of names.
    while pos < v.len() && names.len() < MAX_SEARCH_DOMAINS {
        let (name, next) = decode_name(v, pos)?;
        if !name.is_empty() {
            names.push(name);
        }
        pos = next;
    }
    Some(names)
}

/// The name at `start` and the offset after it (after the first pointer, if any).
fn decode_name(v: &[u8], start: usize) -> Option<(String, usize)> {
    let mut labels: Vec<&str> = Vec::new();
    // Length of the dotted name so far; checked as it grows, so compression pointers
    // cannot make a small option expand into a large name.
    let mut name_len = 0usize;
    let mut pos = start;
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *v.get(pos)?;
        match len {
            0 => {
                let next = end.unwrap_or(pos + 1);
                return Some((labels.join("."), next));
            }
            1..=63 => {
                name_len += usize::from(len) + usize::from(!labels.is_empty());
                if name_len > 253 {
                    return None;
                }
                let label = v.get(pos + 1..pos + 1 + usize::from(len))?;
                labels.push(std::str::from_utf8(label).ok()?);
                pos += 1 + usize::from(len);
            }
            0xc0..=0xff => {
                let target = usize::from(u16::from_be_bytes([len, *v.get(pos + 1)?]) & 0x3fff);
                // Pointers must go backwards: no loops.
                if target >= pos || jumps > 64 {
                    return None;
                }
                jumps += 1;
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests;
