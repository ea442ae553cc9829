//! A scripted LAN for driver tests on a channel link: a DHCP server that offers and
//! acknowledges every request (renewals and rebinds included) and answers ARP for its
//! address, and a router whose advertisements the tests send.

use std::net::{Ipv4Addr, Ipv6Addr};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use tokio::sync::mpsc;

use crate::wire::arp::{ArpPacket, Operation};
use crate::wire::icmp::Endpoints;
use crate::wire::ndp::{self, PrefixInfo, RouterAdvert, ALL_NODES};
use crate::MacAddr;

pub(super) const SERVER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
pub(super) const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub(super) const OFFERED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
pub(super) const ROUTER_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// A DHCP message the server received, and when (on tokio's clock).
#[derive(Debug)]
pub(super) struct Received {
    pub(super) kind: MessageType,
    /// Where the client sent it (broadcast for discovery and rebinding).
    pub(super) ip_dst: Ipv4Addr,
    /// The client's address field (0 in INIT-REBOOT, ours when renewing).
    pub(super) ciaddr: Ipv4Addr,
    /// The requested address (option 50), sent in SELECTING and INIT-REBOOT.
    pub(super) requested: Option<Ipv4Addr>,
    pub(super) at: tokio::time::Instant,
}

/// Serves `from_driver` until the driver ends, answering on `to_driver` with leases of
/// `lease_secs`; reports every DHCP message it gets on the returned channel.
pub(super) fn spawn_dhcp_server(
    mut from_driver: mpsc::Receiver<Vec<u8>>,
    to_driver: mpsc::Sender<Vec<u8>>,
    lease_secs: u32,
) -> mpsc::UnboundedReceiver<Received> {
    let (seen, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(frame) = from_driver.recv().await {
            let reply = if let Some((msg, ip_dst)) = dhcp_to_server(&frame) {
                let Some(kind) = msg.opts().msg_type() else {
                    continue;
                };
                let requested = match msg.opts().get(OptionCode::RequestedIpAddress) {
                    Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
                    _ => None,
                };
                let _ = seen.send(Received {
                    kind,
                    ip_dst,
                    ciaddr: msg.ciaddr(),
                    requested,
                    at: tokio::time::Instant::now(),
                });
                match kind {
                    MessageType::Discover => Some(reply(&msg, MessageType::Offer, lease_secs)),
                    MessageType::Request => Some(reply(&msg, MessageType::Ack, lease_secs)),
                    _ => None,
                }
            } else {
                arp_reply(&frame)
            };
            if let Some(reply) = reply {
                if to_driver.send(reply).await.is_err() {
                    return;
                }
            }
        }
    });
    received
}

/// The DHCP message in a frame to UDP port 67, and its IP destination.
fn dhcp_to_server(frame: &[u8]) -> Option<(Message, Ipv4Addr)> {
    let sliced = etherparse::SlicedPacket::from_ethernet(frame).ok()?;
    let Some(etherparse::NetSlice::Ipv4(ipv4)) = sliced.net else {
        return None;
    };
    let Some(etherparse::TransportSlice::Udp(udp)) = sliced.transport else {
        return None;
    };
    if udp.destination_port() != 67 {
        return None;
    }
    let msg = Message::decode(&mut Decoder::new(udp.payload())).ok()?;
    Some((msg, ipv4.header().destination_addr()))
}

/// The server's answer to an ARP request for its address.
fn arp_reply(frame: &[u8]) -> Option<Vec<u8>> {
    if frame.get(12..14)? != [0x08, 0x06] {
        return None;
    }
    let arp = ArpPacket::parse(frame.get(14..)?).ok()?;
    (arp.operation == Operation::Request && arp.target_ip == SERVER_IP)
        .then(|| ArpPacket::reply_to(&arp, SERVER_MAC, SERVER_IP).to_frame(arp.sender_mac))
}

/// A broadcast reply of `kind` to `to`, offering [`OFFERED`].
fn reply(to: &Message, kind: MessageType, lease_secs: u32) -> Vec<u8> {
    let mut msg = Message::new_with_id(
        to.xid(),
        to.ciaddr(),
        OFFERED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &to.chaddr()[..6],
    );
    msg.set_opcode(Opcode::BootReply)
        .set_flags(Flags::default());
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(SERVER_IP));
    opts.insert(DhcpOption::AddressLeaseTime(lease_secs));
    opts.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
    opts.insert(DhcpOption::Router(vec![SERVER_IP]));
    let mut payload = Vec::new();
    msg.encode(&mut Encoder::new(&mut payload))
        .expect("encodable");
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2(SERVER_MAC.0, MacAddr::BROADCAST.0)
        .ipv4(SERVER_IP.octets(), Ipv4Addr::BROADCAST.octets(), 64)
        .udp(67, 68)
        .write(&mut frame, &payload)
        .expect("frame");
    frame
}

/// A router advertisement from [`ROUTER_LL`] for 2001:db8:1::/64, as the default router
/// for `router_lifetime` seconds (0: not a default router).
pub(super) fn router_advertisement(router_lifetime: u16) -> Vec<u8> {
    let ra = RouterAdvert {
        cur_hop_limit: 64,
        router_lifetime,
        source_mac: Some(SERVER_MAC),
        prefixes: vec![PrefixInfo {
            prefix: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0),
            prefix_len: 64,
            on_link: true,
            autonomous: true,
            valid_lifetime: 86400,
            preferred_lifetime: 14400,
        }],
        ..RouterAdvert::default()
    };
    ndp::router_advertisement(&Endpoints::to_group(SERVER_MAC, ROUTER_LL, ALL_NODES), &ra)
}
