//! ARP (RFC 826) for Ethernet and IPv4: parsing, and building the requests, replies,
//! probes and announcements (RFC 5227) a Linux host sends.
//!
//! The learning and answering rules live in [`crate::ipv4`], which owns the neighbour
//! cache; this module only turns packets into values and back.

use std::net::Ipv4Addr;

use etherparse::{ArpEthIpv4Packet, ArpHardwareId, ArpOperation, ArpPacketSlice, EtherType};

use crate::wire::ethernet::{self, ether_type, MacAddr};

/// Length of an ARP frame as Linux sends it: 14-byte header plus the 28-byte body.
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + ArpEthIpv4Packet::LEN;

/// Request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// "Who has target_ip?"
    Request,
    /// "target_ip is at sender_mac."
    Reply,
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    /// Request or reply.
    pub operation: Operation,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address (0.0.0.0 in an RFC 5227 probe).
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (zero in requests).
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

/// Why an ARP payload was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ArpError {
    /// Shorter than its own header says.
    #[error("truncated ARP packet")]
    Truncated,
    /// Not Ethernet hardware and IPv4 protocol addresses.
    #[error("ARP for other hardware or protocol types")]
    Unsupported,
    /// An operation other than request (1) or reply (2).
    #[error("ARP operation other than request or reply")]
    UnknownOperation,
}

impl ArpPacket {
    /// Parses the payload of an ARP frame (after the Ethernet header).
    pub fn parse(payload: &[u8]) -> Result<ArpPacket, ArpError> {
        let slice = ArpPacketSlice::from_slice(payload).map_err(|_| ArpError::Truncated)?;
        if slice.hw_addr_type() != ArpHardwareId::ETHERNET
            || slice.proto_addr_type() != EtherType::IPV4
            || slice.hw_addr_size() != 6
            || slice.proto_addr_size() != 4
        {
            return Err(ArpError::Unsupported);
        }
        let operation = match slice.operation() {
            ArpOperation::REQUEST => Operation::Request,
            ArpOperation::REPLY => Operation::Reply,
            _ => return Err(ArpError::UnknownOperation),
        };
        let packet = slice
            .to_packet()
            .try_eth_ipv4()
            .map_err(|_| ArpError::Unsupported)?;
        Ok(ArpPacket {
            operation,
            sender_mac: MacAddr(packet.sender_mac),
            sender_ip: packet.sender_ipv4_addr(),
            target_mac: MacAddr(packet.target_mac),
            target_ip: packet.target_ipv4_addr(),
        })
    }

    /// A request for `target_ip` from `sender_mac`/`sender_ip`.
    pub fn request(sender_mac: MacAddr, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            operation: Operation::Request,
            sender_mac,
            sender_ip,
            target_mac: MacAddr::ZERO,
            target_ip,
        }
    }

    /// The reply to `request`, saying `our_ip` is at `our_mac`.
    pub fn reply_to(request: &ArpPacket, our_mac: MacAddr, our_ip: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            operation: Operation::Reply,
            sender_mac: our_mac,
            sender_ip: our_ip,
            target_mac: request.sender_mac,
            target_ip: request.sender_ip,
        }
    }

    /// An RFC 5227 probe: a request for `candidate` with sender address 0.0.0.0.
    pub fn probe(our_mac: MacAddr, candidate: Ipv4Addr) -> ArpPacket {
        ArpPacket::request(our_mac, Ipv4Addr::UNSPECIFIED, candidate)
    }

    /// An RFC 5227 announcement: a request with sender and target both `our_ip`.
    pub fn announcement(our_mac: MacAddr, our_ip: Ipv4Addr) -> ArpPacket {
        ArpPacket::request(our_mac, our_ip, our_ip)
    }

    /// True for a probe (sender address 0.0.0.0).
    pub fn is_probe(&self) -> bool {
        self.sender_ip.is_unspecified()
    }

    /// The 28-byte ARP body.
    pub fn to_bytes(&self) -> [u8; ArpEthIpv4Packet::LEN] {
        ArpEthIpv4Packet {
            operation: match self.operation {
                Operation::Request => ArpOperation::REQUEST,
                Operation::Reply => ArpOperation::REPLY,
            },
            sender_mac: self.sender_mac.0,
            sender_ipv4: self.sender_ip.octets(),
            target_mac: self.target_mac.0,
            target_ipv4: self.target_ip.octets(),
        }
        .to_bytes()
    }

    /// The whole Ethernet frame: to `dst`, from the sender MAC, 42 bytes as Linux sends it.
    pub fn to_frame(&self, dst: MacAddr) -> Vec<u8> {
        ethernet::build_frame(dst, self.sender_mac, ether_type::ARP, &self.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x14]);

    #[test]
    fn round_trips_request_and_reply() {
        let req = ArpPacket::request(
            A,
            Ipv4Addr::new(192, 0, 2, 10),
            Ipv4Addr::new(192, 0, 2, 20),
        );
        let frame = req.to_frame(MacAddr::BROADCAST);
        assert_eq!(frame.len(), FRAME_LEN);
        let parsed = ArpPacket::parse(&frame[ethernet::HEADER_LEN..]).unwrap();
        assert_eq!(parsed, req);
        let reply = ArpPacket::reply_to(&parsed, B, Ipv4Addr::new(192, 0, 2, 20));
        assert_eq!(reply.target_mac, A);
        assert_eq!(reply.target_ip, Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(ArpPacket::parse(&reply.to_bytes()).unwrap(), reply);
    }

    #[test]
    fn rejects_truncated_and_foreign_arp() {
        let req = ArpPacket::request(
            A,
            Ipv4Addr::new(192, 0, 2, 10),
            Ipv4Addr::new(192, 0, 2, 20),
        );
        let bytes = req.to_bytes();
        assert_eq!(ArpPacket::parse(&bytes[..20]), Err(ArpError::Truncated));
        let mut other_hw = bytes;
        other_hw[1] = 6; // IEEE 802 instead of Ethernet
        assert_eq!(ArpPacket::parse(&other_hw), Err(ArpError::Unsupported));
        let mut rarp = bytes;
        rarp[7] = 3;
        assert_eq!(ArpPacket::parse(&rarp), Err(ArpError::UnknownOperation));
    }

    #[test]
    fn probe_and_announcement_shapes() {
        let ip = Ipv4Addr::new(192, 0, 2, 123);
        let probe = ArpPacket::probe(A, ip);
        assert!(probe.is_probe());
        assert_eq!(probe.target_ip, ip);
        let ann = ArpPacket::announcement(A, ip);
        assert_eq!(ann.sender_ip, ip);
        assert_eq!(ann.target_ip, ip);
        assert_eq!(ann.target_mac, MacAddr::ZERO);
    }
}
