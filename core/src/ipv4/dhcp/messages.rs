//! The messages the DHCP client sends: which options each carries, and how each leaves
//! (broadcast frames, a unicast renewal routed like TUN traffic, the release).

use std::net::Ipv4Addr;
use std::time::Instant;

use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};

use super::{Action, DhcpClient, Lease};
use crate::stats::Stats;
use crate::wire::dhcpv4::{self, Addressing};
use crate::wire::ethernet::MacAddr;

/// The options we ask for (option 55), in the order the server should consider them.
const REQUESTED_OPTIONS: [u8; 12] = [1, 121, 3, 6, 15, 119, 26, 28, 51, 54, 58, 59];

impl DhcpClient {
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

    pub(super) fn send_discover(&mut self, now: Instant, stats: &mut Stats) {
        self.attempts += 1;
        let options = self.common_options(MessageType::Discover);
        let msg = self.message(now, Ipv4Addr::UNSPECIFIED, options);
        self.broadcast(&msg, Ipv4Addr::UNSPECIFIED, stats);
    }

    pub(super) fn send_request_selecting(
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
        let msg = self.message(now, Ipv4Addr::UNSPECIFIED, options);
        self.broadcast(&msg, Ipv4Addr::UNSPECIFIED, stats);
    }

    pub(super) fn send_request_reboot(
        &mut self,
        now: Instant,
        address: Ipv4Addr,
        stats: &mut Stats,
    ) {
        self.attempts += 1;
        let mut options = self.common_options(MessageType::Request);
        options.push(DhcpOption::RequestedIpAddress(address));
        let msg = self.message(now, Ipv4Addr::UNSPECIFIED, options);
        self.broadcast(&msg, Ipv4Addr::UNSPECIFIED, stats);
    }

    /// A REQUEST from RENEWING (unicast to the server, routed) or REBINDING (broadcast).
    pub(super) fn send_request_bound(
        &mut self,
        now: Instant,
        lease: &Lease,
        unicast: bool,
        stats: &mut Stats,
    ) {
        self.attempts += 1;
        let options = self.common_options(MessageType::Request);
        let msg = self.message(now, lease.address, options);
        if !unicast {
            self.broadcast(&msg, lease.address, stats);
        } else if let Some(frame) =
            dhcpv4::emit_frame(&msg, self.to_server(lease.address, lease.server))
        {
            stats.dhcp.messages_out += 1;
            self.actions.push(Action::Route(frame));
        }
    }

    /// A BOOTREQUEST of the exchange in progress with `options`.
    fn message(&self, now: Instant, ciaddr: Ipv4Addr, options: Vec<DhcpOption>) -> Message {
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
        msg
    }

    /// Unicast from `src`:68 to `server`:67, the Ethernet header left to the router.
    fn to_server(&self, src: Ipv4Addr, server: Ipv4Addr) -> Addressing {
        Addressing {
            src_mac: self.mac,
            dst_mac: None,
            src,
            dst: server,
        }
    }

    /// Queues `msg` as a broadcast from `src`:68 to 255.255.255.255:67.
    fn broadcast(&mut self, msg: &Message, src: Ipv4Addr, stats: &mut Stats) {
        let to = Addressing {
            src_mac: self.mac,
            dst_mac: Some(MacAddr::BROADCAST),
            src,
            dst: Ipv4Addr::BROADCAST,
        };
        // Encoding fails only on values dhcproto cannot represent, and ours are bounded.
        if let Some(frame) = dhcpv4::emit_frame(msg, to) {
            stats.dhcp.messages_out += 1;
            self.actions.push(Action::Link(frame));
        }
    }

    /// A DHCPDECLINE of `candidate`, offered by `server`, broadcast.
    pub(super) fn send_decline(
        &mut self,
        now: Instant,
        candidate: Ipv4Addr,
        server: Ipv4Addr,
        stats: &mut Stats,
    ) {
        let options = vec![
            DhcpOption::MessageType(MessageType::Decline),
            DhcpOption::ClientIdentifier(self.client_id.clone()),
            DhcpOption::RequestedIpAddress(candidate),
            DhcpOption::ServerIdentifier(server),
        ];
        let msg = self.message(now, Ipv4Addr::UNSPECIFIED, options);
        self.broadcast(&msg, Ipv4Addr::UNSPECIFIED, stats);
    }

    /// The DHCPRELEASE of `lease`, its Ethernet header left for the owner.
    pub(super) fn release_frame(&self, now: Instant, lease: &Lease) -> Option<Vec<u8>> {
        let options = vec![
            DhcpOption::MessageType(MessageType::Release),
            DhcpOption::ClientIdentifier(self.client_id.clone()),
            DhcpOption::ServerIdentifier(lease.server),
        ];
        let msg = self.message(now, lease.address, options);
        dhcpv4::emit_frame(&msg, self.to_server(lease.address, lease.server))
    }
}
