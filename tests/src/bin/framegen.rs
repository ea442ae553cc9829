//! `framegen`: floods a network interface with raw Ethernet frames of one kind, as fast as
//! it can, for the flood tests (`tests/tests/flood.rs`).
//!
//! ```text
//! framegen --iface vxlan0 --kind arp --count 1000000 --seconds 20 \
//!          --target-mac 02:00:00:00:f1:01 --target-ip 192.0.2.150
//! ```
//!
//! `--pool` distinct frames are built first, then written round-robin with an `AF_PACKET`
//! socket bound to the interface, in batches of [`BATCH`] with one `sendmmsg` each,
//! bypassing the qdisc. It stops after `--count`
//! frames or `--seconds`, whichever comes first, and prints one JSON line:
//! `{"kind":"arp","sent":N,"seconds":S,"rate":N/S,"send_errors":E}`.
//!
//! Kinds (every address random per frame unless said otherwise; all checksums valid):
//! - `arp`: half requests for `--target-ip` (broadcast), half replies to `--target-mac`,
//!   from random sender MACs and addresses in 198.18.0.0/15 (the benchmarking range of
//!   RFC 2544: enough addresses to overflow any neighbour table, none of them the LAN's
//!   real hosts), or from a pool of `--senders N` such pairs.
//! - `nd`: half NS for `--target-ip6` to its solicited-node group (with a source
//!   link-layer address option), half unsolicited NA for random targets to ff02::1; hop
//!   limit 255, random link-local sources.
//! - `ra`: router advertisements to ff02::1 from one of 64 routers (plus the LAN's real
//!   router when `--ra-router ADDR --ra-router-mac MAC` name it, so the default router
//!   itself comes and goes), each with two prefix information options (A and L set)
//!   drawn from 256 /64 prefixes, a random router lifetime (zero one time in four) and an
//!   MTU option.
//! - `dhcp`: DHCPOFFER/DHCPACK look-alikes from 192.0.2.1:67 to the broadcast address
//!   with random xids, chaddr `--target-mac`, a random yiaddr in the /24 and a 120 s lease.
//! - `garbage`: 14 to 1514 random bytes behind a destination of broadcast or
//!   `--target-mac` and an EtherType of IPv4, ARP, IPv6 or a random one.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode};
use dhcproto::{Encodable, Encoder};
use etherparse::icmpv6::{
    NeighborAdvertisementHeader, PrefixInformation, RouterAdvertisementHeader,
};
use etherparse::{ArpHardwareId, ArpOperation, ArpPacket, EtherType, Icmpv6Type, PacketBuilder};

/// Frames per `sendmmsg`.
const BATCH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Arp,
    Nd,
    Ra,
    Dhcp,
    Garbage,
}

/// Floods an interface with raw Ethernet frames of one kind.
#[derive(Debug, Parser)]
#[command(name = "framegen")]
struct Args {
    /// The interface to write to.
    #[arg(long)]
    iface: String,
    /// What to send.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Most frames to send.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Most seconds to send for.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// The MAC of the host under attack.
    #[arg(long, value_parser = parse_mac, default_value = "02:00:00:00:00:01")]
    target_mac: [u8; 6],
    /// The IPv4 address of the host under attack (its /24 is the LAN).
    #[arg(long, default_value = "192.0.2.100")]
    target_ip: Ipv4Addr,
    /// The IPv6 address of the host under attack (NS target).
    #[arg(long, default_value = "fe80::1")]
    target_ip6: Ipv6Addr,
    /// `arp`: draw the senders from a pool of this many (MAC, address) pairs instead of
    /// a new one per frame (0), to hold the target's table at about this size.
    #[arg(long, default_value_t = 0)]
    senders: usize,
    /// `ra`: also advertise as this router (the LAN's real one).
    #[arg(long, requires = "ra_router_mac")]
    ra_router: Option<Ipv6Addr>,
    /// `ra`: the MAC of `--ra-router`.
    #[arg(long, value_parser = parse_mac)]
    ra_router_mac: Option<[u8; 6]>,
    /// Distinct frames built before sending starts and then sent round-robin (at most
    /// `--count`). 16384 keeps every table of the target churning (its caps are far
    /// smaller) and costs at most 25 MiB.
    #[arg(long, default_value_t = 16384)]
    pool: usize,
    /// Seed of the random source.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = parts
            .next()
            .and_then(|p| u8::from_str_radix(p, 16).ok())
            .ok_or_else(|| format!("{s:?} is not a MAC address"))?;
    }
    if parts.next().is_some() {
        return Err(format!("{s:?} is not a MAC address"));
    }
    Ok(mac)
}

/// SplitMix64: fast, seedable, and good enough to make addresses unpredictable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// A random locally administered unicast MAC.
    fn mac(&mut self) -> [u8; 6] {
        let mut mac = [0u8; 6];
        self.fill(&mut mac);
        mac[0] = (mac[0] & 0xfc) | 0x02;
        mac
    }

    /// A random link-local address.
    fn link_local(&mut self) -> Ipv6Addr {
        let iid = self.next();
        Ipv6Addr::from((0xfe80u128 << 112) | u128::from(iid))
    }
}

/// Builds frames of one kind.
struct Generator {
    kind: Kind,
    rng: Rng,
    target_mac: [u8; 6],
    target_ip: Ipv4Addr,
    target_ip6: Ipv6Addr,
    /// The `arp` kind's pool of senders (empty: a new one per frame).
    senders: Vec<([u8; 6], Ipv4Addr)>,
    /// The `ra` kind's routers and prefixes.
    routers: Vec<([u8; 6], Ipv6Addr)>,
    prefixes: Vec<u64>,
}

/// A random address in 198.18.0.0/15.
fn spoofed_sender(rng: &mut Rng) -> Ipv4Addr {
    Ipv4Addr::from(0xc612_0000 | (rng.next() as u32 & 0x1_ffff))
}

fn solicited_node(addr: Ipv6Addr) -> (Ipv6Addr, [u8; 6]) {
    let o = addr.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    );
    (group, [0x33, 0x33, 0xff, o[13], o[14], o[15]])
}

impl Generator {
    fn new(args: &Args) -> Generator {
        let mut rng = Rng(args.seed);
        let senders = (0..args.senders)
            .map(|_| (rng.mac(), spoofed_sender(&mut rng)))
            .collect();
        let mut routers: Vec<([u8; 6], Ipv6Addr)> =
            (0..64).map(|_| (rng.mac(), rng.link_local())).collect();
        if let (Some(addr), Some(mac)) = (args.ra_router, args.ra_router_mac) {
            routers.push((mac, addr));
        }
        let prefixes = (0..256)
            .map(|_| (0x2001_0db8u64 << 32) | (rng.next() & 0xffff_ffff))
            .collect();
        Generator {
            kind: args.kind,
            rng,
            target_mac: args.target_mac,
            target_ip: args.target_ip,
            target_ip6: args.target_ip6,
            senders,
            routers,
            prefixes,
        }
    }

    /// A random address in the target's /24, never the target's own.
    fn lan_address(&mut self) -> Ipv4Addr {
        let base = u32::from(self.target_ip) & 0xffff_ff00;
        loop {
            let a = Ipv4Addr::from(base | (1 + self.rng.below(254)) as u32);
            if a != self.target_ip {
                return a;
            }
        }
    }

    fn frame(&mut self, out: &mut Vec<u8>) {
        out.clear();
        let written = match self.kind {
            Kind::Arp => self.arp(out),
            Kind::Nd => self.nd(out),
            Kind::Ra => self.ra(out),
            Kind::Dhcp => self.dhcp(out),
            Kind::Garbage => {
                self.garbage(out);
                Ok(())
            }
        };
        if let Err(e) = written {
            // Every input of the builders is valid by construction.
            panic!("building a {:?} frame: {e}", self.kind);
        }
    }

    fn arp(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let (sender_mac, sender_ip) = if self.senders.is_empty() {
            (self.rng.mac(), spoofed_sender(&mut self.rng))
        } else {
            self.senders[self.rng.below(self.senders.len() as u64) as usize]
        };
        // A request asks for the target's address; a reply tells the target that
        // `sender_ip` is at `sender_mac`. Both name the target's address as the target.
        let (dst, op, target_mac) = if self.rng.below(2) == 0 {
            ([0xff; 6], ArpOperation::REQUEST, [0u8; 6])
        } else {
            (self.target_mac, ArpOperation::REPLY, self.target_mac)
        };
        let arp = ArpPacket::new(
            ArpHardwareId::ETHERNET,
            EtherType::IPV4,
            op,
            &sender_mac,
            &sender_ip.octets(),
            &target_mac,
            &self.target_ip.octets(),
        )
        .map_err(|e| e.to_string())?;
        PacketBuilder::ethernet2(sender_mac, dst)
            .arp(arp)
            .write(out)
            .map_err(|e| e.to_string())
    }

    fn nd(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let mac = self.rng.mac();
        let src = self.rng.link_local();
        let mut payload = Vec::with_capacity(24);
        if self.rng.below(2) == 0 {
            let (group, group_mac) = solicited_node(self.target_ip6);
            payload.extend_from_slice(&self.target_ip6.octets());
            // Source link-layer address option (type 1, 8 bytes).
            payload.extend_from_slice(&[1, 1]);
            payload.extend_from_slice(&mac);
            PacketBuilder::ethernet2(mac, group_mac)
                .ipv6(src.octets(), group.octets(), 255)
                .icmpv6(Icmpv6Type::NeighborSolicitation)
                .write(out, &payload)
                .map_err(|e| e.to_string())
        } else {
            let target = self.rng.link_local();
            payload.extend_from_slice(&target.octets());
            // Target link-layer address option (type 2, 8 bytes).
            payload.extend_from_slice(&[2, 1]);
            payload.extend_from_slice(&mac);
            let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
            PacketBuilder::ethernet2(mac, [0x33, 0x33, 0, 0, 0, 1])
                .ipv6(src.octets(), all_nodes.octets(), 255)
                .icmpv6(Icmpv6Type::NeighborAdvertisement(
                    NeighborAdvertisementHeader {
                        router: false,
                        solicited: false,
                        r#override: true,
                    },
                ))
                .write(out, &payload)
                .map_err(|e| e.to_string())
        }
    }

    fn ra(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let (mac, src) = self.routers[self.rng.below(self.routers.len() as u64) as usize];
        let lifetime = match self.rng.below(4) {
            0 => 0,
            _ => 1 + self.rng.below(9000) as u16,
        };
        // Reachable time and retransmission timer (0: unspecified), then the options.
        let mut payload = vec![0u8; 8];
        for _ in 0..2 {
            let prefix = self.prefixes[self.rng.below(self.prefixes.len() as u64) as usize];
            let valid_lifetime = 600 + self.rng.below(86_400) as u32;
            let info = PrefixInformation {
                prefix_length: 64,
                on_link: true,
                autonomous_address_configuration: true,
                valid_lifetime,
                preferred_lifetime: valid_lifetime / 2,
                prefix: (u128::from(prefix) << 64).to_be_bytes(),
            };
            payload.extend_from_slice(&info.to_bytes());
        }
        // The MTU and source link-layer address options (etherparse only reads those).
        payload.extend_from_slice(&[5, 1, 0, 0]);
        payload.extend_from_slice(&1500u32.to_be_bytes());
        payload.extend_from_slice(&[1, 1]);
        payload.extend_from_slice(&mac);
        let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        PacketBuilder::ethernet2(mac, [0x33, 0x33, 0, 0, 0, 1])
            .ipv6(src.octets(), all_nodes.octets(), 255)
            .icmpv6(Icmpv6Type::RouterAdvertisement(RouterAdvertisementHeader {
                cur_hop_limit: 64,
                managed_address_config: false,
                other_config: false,
                router_lifetime: lifetime,
            }))
            .write(out, &payload)
            .map_err(|e| e.to_string())
    }

    fn dhcp(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let server = Ipv4Addr::from(u32::from(self.target_ip) & 0xffff_ff00 | 1);
        let yiaddr = self.lan_address();
        let kind = if self.rng.below(2) == 0 {
            MessageType::Offer
        } else {
            MessageType::Ack
        };
        let mut msg = Message::new_with_id(
            self.rng.next() as u32,
            Ipv4Addr::UNSPECIFIED,
            yiaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &self.target_mac,
        );
        msg.set_opcode(Opcode::BootReply)
            .set_flags(Flags::default());
        let opts = msg.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        opts.insert(DhcpOption::ServerIdentifier(server));
        opts.insert(DhcpOption::AddressLeaseTime(120));
        opts.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
        opts.insert(DhcpOption::Router(vec![server]));
        let mut payload = Vec::with_capacity(300);
        msg.encode(&mut Encoder::new(&mut payload))
            .map_err(|e| e.to_string())?;
        PacketBuilder::ethernet2(self.rng.mac(), [0xff; 6])
            .ipv4(server.octets(), [255; 4], 64)
            .udp(67, 68)
            .write(out, &payload)
            .map_err(|e| e.to_string())
    }

    fn garbage(&mut self, out: &mut Vec<u8>) {
        let len = 14 + self.rng.below(1501) as usize;
        out.resize(len, 0);
        self.rng.fill(out);
        let dst = if self.rng.below(2) == 0 {
            [0xff; 6]
        } else {
            self.target_mac
        };
        out[..6].copy_from_slice(&dst);
        let ether_type: u16 = match self.rng.below(4) {
            0 => 0x0800,
            1 => 0x0806,
            2 => 0x86dd,
            _ => self.rng.next() as u16,
        };
        out[12..14].copy_from_slice(&ether_type.to_be_bytes());
    }
}

/// A raw `AF_PACKET` socket bound to one interface.
struct PacketSocket {
    fd: libc::c_int,
}

impl PacketSocket {
    fn open(iface: &str) -> io::Result<PacketSocket> {
        let name = std::ffi::CString::new(iface)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name"))?;
        // SAFETY: if_nametoindex reads a NUL-terminated string that outlives the call.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: socket has no memory-safety preconditions. Protocol 0: send only, no
        // frame is ever received on this socket.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let sock = PacketSocket { fd };
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = index as i32;
        // SAFETY: `addr` is a valid sockaddr_ll and the length given is its size.
        let rc = unsafe {
            libc::bind(
                sock.fd,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let one: libc::c_int = 1;
        // SAFETY: PACKET_QDISC_BYPASS takes an int, which `one` is, for the call's length.
        // Failure only means the frames go through the qdisc, so it is ignored.
        unsafe {
            libc::setsockopt(
                sock.fd,
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        Ok(sock)
    }

    /// Sends `frames` with one `sendmmsg`; returns how many went.
    fn send_batch(&self, frames: &[Vec<u8>]) -> io::Result<usize> {
        let mut iovs: Vec<libc::iovec> = frames
            .iter()
            .map(|f| libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                // SAFETY: mmsghdr is plain old data; all-zero is a valid value.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        // SAFETY: every mmsghdr points to one iovec in `iovs`, each pointing into a frame
        // of `frames`; all of them outlive the call, and the kernel only reads them.
        let n =
            unsafe { libc::sendmmsg(self.fd, msgs.as_mut_ptr(), msgs.len() as libc::c_uint, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: `fd` is a socket this value owns and nothing else closes.
        unsafe {
            libc::close(self.fd);
        }
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let sock = match PacketSocket::open(&args.iface) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("framegen: AF_PACKET socket on {}: {e}", args.iface);
            return std::process::ExitCode::from(1);
        }
    };
    let mut generator = Generator::new(&args);
    // Frames are built before the clock starts and sent round-robin, so building them
    // never limits the rate.
    let pool_size = (args.pool.max(1) as u64).min(args.count.max(1)) as usize;
    let pool: Vec<Vec<u8>> = (0..pool_size)
        .map(|_| {
            let mut frame = Vec::new();
            generator.frame(&mut frame);
            frame.shrink_to_fit();
            frame
        })
        .collect();
    let limit = Duration::from_secs_f64(args.seconds.max(0.0));
    let start = Instant::now();
    let (mut sent, mut send_errors) = (0u64, 0u64);
    let mut next = 0;
    while sent < args.count && start.elapsed() < limit {
        let n = (args.count - sent)
            .min(BATCH as u64)
            .min((pool.len() - next) as u64) as usize;
        let batch = &pool[next..next + n];
        let mut off = 0;
        while off < n && start.elapsed() < limit {
            match sock.send_batch(&batch[off..]) {
                Ok(k) if k > 0 => {
                    off += k;
                    sent += k as u64;
                }
                Ok(_) => send_errors += 1,
                // The device queue is full: try again (the time limit still holds).
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => send_errors += 1,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("framegen: sendmmsg on {}: {e}", args.iface);
                    return std::process::ExitCode::from(1);
                }
            }
        }
        next = (next + n) % pool.len();
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "kind": format!("{:?}", args.kind).to_ascii_lowercase(),
            "sent": sent,
            "seconds": seconds,
            "rate": sent as f64 / seconds.max(1e-9),
            "send_errors": send_errors,
        })
    );
    std::process::ExitCode::SUCCESS
}
