//! The stateless DHCPv6 client (RFC 8415 §18.2.6): when a router advertises the O (or
//! M) flag, an Information-Request asks for DNS servers and search domains, which join
//! those from the RA's RDNSS/DNSSL options, and are refreshed after the server's
//! information refresh time. Addresses are not leased by DHCPv6.
//!
//! The messages themselves are in [`crate::wire::dhcpv6`].

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngExt};

use super::{expiry, Ipv6Host};
use crate::io::Timer;
use crate::stats::Stats;
use crate::wire::dhcpv6::{self, Dhcpv6Info};
use crate::wire::icmp::Endpoints;

/// Information-Request timing (RFC 8415 §7.6: `INF_MAX_DELAY`, `INF_TIMEOUT`,
/// `INF_MAX_RT`) and the default and floor of the refresh time (`IRT_DEFAULT`,
/// `IRT_MINIMUM`).
const INF_MAX_DELAY_MS: u64 = 1000;
const INF_TIMEOUT: Duration = Duration::from_secs(1);
const INF_MAX_RT: Duration = Duration::from_secs(3600);
const IRT_DEFAULT: u32 = 86400;
const IRT_MINIMUM: u32 = 600;

/// A running Information-Request exchange.
#[derive(Debug, Clone, Copy)]
struct InfoRequest {
    xid: [u8; 3],
    started: Instant,
    next: Instant,
    timeout: Duration,
}

/// The client's state: an exchange in progress, or the time to refresh what the last
/// Reply gave.
#[derive(Debug, Default)]
pub(super) struct Dhcpv6Client {
    request: Option<InfoRequest>,
    refresh: Option<Instant>,
    /// What the last accepted Reply gave.
    pub(super) info: Dhcpv6Info,
}

impl Dhcpv6Client {
    /// The next retransmission or refresh.
    pub(super) fn next_timer(&self) -> Option<Timer> {
        Timer::earliest([
            self.request.map(|r| Timer::new(r.next, "dhcpv6")),
            self.refresh.map(|at| Timer::new(at, "dhcpv6 refresh")),
        ])
    }
}

impl Ipv6Host {
    /// An RA with the O or M flag: ask, unless asking or already answered.
    pub(super) fn dhcp_wanted(&mut self, now: Instant, rng: &mut StdRng) {
        if self.config.dhcpv6 && self.dhcp.request.is_none() && self.dhcp.refresh.is_none() {
            self.start_dhcp(now, rng);
        }
    }

    fn start_dhcp(&mut self, now: Instant, rng: &mut StdRng) {
        let mut xid = [0u8; 3];
        rng.fill_bytes(&mut xid);
        let delay = Duration::from_millis(rng.random_range(0..INF_MAX_DELAY_MS));
        self.dhcp.request = Some(InfoRequest {
            xid,
            started: now,
            next: now + delay,
            timeout: INF_TIMEOUT,
        });
    }

    /// Starts the refresh and sends the Information-Request due at `now`.
    pub(super) fn send_dhcp(&mut self, now: Instant, rng: &mut StdRng, stats: &mut Stats) {
        if self.dhcp.refresh.is_some_and(|t| t <= now) {
            self.dhcp.refresh = None;
            self.start_dhcp(now, rng);
        }
        let Some(mut request) = self.dhcp.request.filter(|r| r.next <= now) else {
            return;
        };
        // RFC 8415 §15: RT = 2 RTprev ± 10 %, at most INF_MAX_RT.
        let jitter = rng.random_range(-0.1..0.1);
        request.timeout = request.timeout.mul_f64(2.0 + jitter).min(INF_MAX_RT);
        request.next = now + request.timeout;
        self.dhcp.request = Some(request);
        let Some(src) = self.link_local() else {
            return;
        };
        let elapsed = now.saturating_duration_since(request.started).as_millis() / 10;
        let elapsed = u16::try_from(elapsed).unwrap_or(u16::MAX);
        let ends = Endpoints::to_group(self.mac, src, dhcpv6::ALL_SERVERS);
        if let Some(frame) = dhcpv6::information_request(&ends, request.xid, elapsed) {
            stats.dhcpv6.requests_out += 1;
            self.push_frame(stats, frame);
        }
    }

    /// A DHCPv6 message to our client port: the Reply to our exchange, or dropped.
    pub(super) fn handle_dhcp_reply(&mut self, now: Instant, reply: &[u8], stats: &mut Stats) {
        let Some(request) = self.dhcp.request else {
            stats.dhcpv6.drop_invalid += 1;
            return;
        };
        let duid = dhcpv6::duid_ll(self.mac);
        let Ok(mut info) = dhcpv6::parse_reply(reply, request.xid, &duid) else {
            stats.dhcpv6.drop_invalid += 1;
            return;
        };
        stats.dhcpv6.replies_in += 1;
        // Bounded like the RA's lists; what the bound refuses is counted with theirs.
        let max = self.config.max_dns;
        let refused = info.dns.len().saturating_sub(max) + info.search.len().saturating_sub(max);
        stats.ndp.drop_table_limit += refused as u64;
        info.dns.truncate(max);
        info.search.truncate(max);
        let refresh = info.refresh.unwrap_or(IRT_DEFAULT).max(IRT_MINIMUM);
        self.dhcp.request = None;
        self.dhcp.refresh = expiry(now, refresh);
        self.dhcp.info = info;
        self.check_changed();
    }
}
