//! Receive-side coalescing (GRO) of TCP segments for one TUN write each.
//!
//! Segments of one flow that arrive in order are merged into a super-segment behind a
//! virtio-net header asking for GSO, which the kernel takes as one packet. The rules
//! follow the kernel's own `tcp_gro_receive`, stricter where that keeps the merge
//! lossless (re-segmenting the result gives back the very packets that went in):
//! - same addresses, ports and IP version; no IPv4 options or IPv6 extension headers;
//! - contiguous sequence numbers, the same ACK, window and TCP options (byte for byte);
//! - flags ACK, optionally PSH, ECE, and CWR on the first segment only; no SYN, FIN, RST
//!   or URG; a PSH segment ends the super-segment;
//! - the same TTL/hop limit, TOS/traffic class and DF (and IPv6 flow label); IPv4
//!   identifications counting up by one unless DF is set (RFC 6864);
//! - every payload `gso_size` long (the first one's) but the last, which may be shorter
//!   and ends the super-segment; valid IP and TCP checksums (a merged packet gets a
//!   fresh checksum from the kernel, so a corrupt one must not be merged).
//!
//! Anything else passes through untouched. A packet of a flow that has a pending
//! super-segment but cannot join it (a FIN, a bare ACK, a gap) closes that
//! super-segment first, so nothing within a flow is ever reordered.
//!
//! Memory is bounded: `max_flows` flows pending at once, each buffer at most `max_len`
//! bytes, `max_flows + 1` buffers in all, allocated on first use and reused.

use std::collections::VecDeque;

use etherparse::checksum::Sum16BitWords;

use super::{fold, is_tcp, GsoType, IpLayout, VirtioNetHdr, PROTO_TCP, TCP_MIN_HEADER_LEN};

/// TCP flag bits (byte 13 of the header).
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const URG: u8 = 0x20;
const ECE: u8 = 0x40;
const CWR: u8 = 0x80;
/// IPv4 "don't fragment" (byte 6).
const DF: u8 = 0x40;
const HDR: usize = VirtioNetHdr::LEN;

/// Limits of a [`Gro`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroConfig {
    /// Flows with a super-segment pending at once (at least 1); a packet of one more
    /// flow passes through.
    pub max_flows: usize,
    /// Largest IP packet built, in bytes (at most 65535).
    pub max_len: usize,
}

impl Default for GroConfig {
    fn default() -> GroConfig {
        GroConfig {
            max_flows: 8,
            max_len: usize::from(u16::MAX),
        }
    }
}

/// What [`Gro::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Push {
    /// Copied into a pending super-segment: nothing to write now.
    Held,
    /// Write the packet as it is (behind [`VirtioNetHdr::NONE`]), after everything
    /// [`Gro::pop_ready`] hands out first.
    PassThrough,
}

/// Counters of a [`Gro`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroStats {
    /// Packets pushed.
    pub packets: u64,
    /// Packets passed through as they came.
    pub passed_through: u64,
    /// Packets appended to a pending super-segment.
    pub merged: u64,
    /// Super-segments of two packets or more handed out.
    pub super_segments: u64,
    /// Held packets handed out alone (nothing joined them).
    pub singles: u64,
}

/// The receive-side coalescing table. Per batch of packets from the link:
///
/// ```
/// # use tapemu::offload::{Gro, GroConfig, Push, VirtioNetHdr};
/// # fn write_tun(_: &[u8]) {}
/// # fn demo(packets: &[Vec<u8>]) {
/// let mut gro = Gro::new(GroConfig::default());
/// for packet in packets {
///     let push = gro.push(packet);
///     while let Some(sup) = gro.pop_ready() {
///         write_tun(sup); // virtio-net header and packet, ready for the TUN
///     }
///     if push == Push::PassThrough {
///         // A driver writes the header into the headroom in front of the packet.
///         write_tun(&[&VirtioNetHdr::NONE.to_bytes()[..], packet].concat());
///     }
/// }
/// gro.flush();
/// while let Some(sup) = gro.pop_ready() {
///     write_tun(sup);
/// }
/// # }
/// ```
pub struct Gro {
    config: GroConfig,
    /// Buffers: a virtio-net header, then the packet being built.
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Slots with an open flow, oldest first.
    pending: Vec<usize>,
    /// Closed slots, in the order they must be written.
    ready: VecDeque<usize>,
    /// The slot [`Gro::pop_ready`] last lent out, free again at the next call.
    lent: Option<usize>,
    stats: GroStats,
}

#[derive(Default)]
struct Slot {
    buf: Vec<u8>,
    flow: Flow,
}

/// The state of a pending super-segment; its headers are those of its first packet, at
/// `buf[HDR..]`.
#[derive(Debug, Clone, Copy, Default)]
struct Flow {
    key: FlowKey,
    v6: bool,
    l4: usize,
    headers_len: usize,
    gso_size: usize,
    next_seq: u32,
    next_id: u16,
    segments: usize,
}

/// Which flow a TCP packet belongs to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FlowKey {
    v6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    ports: [u8; 4],
}

/// What a packet is, for coalescing.
enum Class<'p> {
    /// Not TCP: no flow to keep in order.
    Other,
    /// Possibly TCP, but its ports cannot be read (a fragment, a truncated header): every
    /// flow between these addresses is closed.
    Unkeyed {
        v6: bool,
        src: [u8; 16],
        dst: [u8; 16],
    },
    /// TCP that must not be merged.
    Barrier(FlowKey),
    /// TCP that may be merged.
    Candidate(Segment<'p>),
}

/// A TCP segment that may be merged.
struct Segment<'p> {
    packet: &'p [u8],
    key: FlowKey,
    l4: usize,
    headers_len: usize,
    seq: u32,
    flags: u8,
}

impl Segment<'_> {
    fn payload(&self) -> &[u8] {
        &self.packet[self.headers_len..]
    }
}

impl std::fmt::Debug for Gro {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gro")
            .field("config", &self.config)
            .field("pending", &self.pending.len())
            .field("ready", &self.ready.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Gro {
    /// An empty table with these limits.
    pub fn new(config: GroConfig) -> Gro {
        let config = GroConfig {
            max_flows: config.max_flows.max(1),
            max_len: config.max_len.min(usize::from(u16::MAX)),
        };
        let slots = config.max_flows + 1;
        Gro {
            config,
            slots: (0..slots).map(|_| Slot::default()).collect(),
            free: (0..slots).rev().collect(),
            pending: Vec::with_capacity(config.max_flows),
            ready: VecDeque::with_capacity(slots),
            lent: None,
            stats: GroStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> GroStats {
        self.stats
    }

    /// Takes one IP packet from the link (Ethernet header stripped, padding trimmed).
    ///
    /// Whatever [`Gro::pop_ready`] hands out after this call came before `packet` and
    /// must be written first; then, for [`Push::PassThrough`], `packet` itself.
    pub fn push(&mut self, packet: &[u8]) -> Push {
        self.reclaim_lent();
        self.stats.packets += 1;
        let push = match classify(packet, self.config.max_len) {
            Class::Other => Push::PassThrough,
            Class::Unkeyed { v6, src, dst } => {
                self.close_where(|k| k.v6 == v6 && k.src == src && k.dst == dst);
                Push::PassThrough
            }
            Class::Barrier(key) => {
                self.close_where(|k| *k == key);
                Push::PassThrough
            }
            Class::Candidate(seg) => self.merge_or_start(&seg),
        };
        if push == Push::PassThrough {
            self.stats.passed_through += 1;
        }
        push
    }

    /// Closes every pending super-segment (call at the end of a batch): afterwards
    /// [`Gro::pop_ready`] hands them all out.
    pub fn flush(&mut self) {
        self.reclaim_lent();
        self.close_where(|_| true);
    }

    /// The next closed super-segment, oldest first: a virtio-net header followed by an
    /// IP packet, to be written to the TUN as it is. The slice is valid until the next
    /// call on the table.
    pub fn pop_ready(&mut self) -> Option<&[u8]> {
        self.reclaim_lent();
        let slot = self.ready.pop_front()?;
        self.lent = Some(slot);
        Some(&self.slots[slot].buf)
    }

    fn reclaim_lent(&mut self) {
        if let Some(slot) = self.lent.take() {
            self.free.push(slot);
        }
    }

    fn merge_or_start(&mut self, seg: &Segment<'_>) -> Push {
        let pending = self
            .pending
            .iter()
            .position(|&s| self.slots[s].flow.key == seg.key);
        if let Some(pos) = pending {
            let slot = &mut self.slots[self.pending[pos]];
            if can_append(slot, seg, self.config.max_len) {
                let full = append(slot, seg, self.config.max_len);
                self.stats.merged += 1;
                if full {
                    self.close(pos);
                }
                return Push::Held;
            }
            self.close(pos);
        }
        // A PSH segment ends a super-segment: alone, there is nothing to merge it with.
        if seg.flags & PSH != 0 || self.pending.len() >= self.config.max_flows {
            return Push::PassThrough;
        }
        let Some(slot) = self.free.pop() else {
            // Only if the caller left ready super-segments unread.
            return Push::PassThrough;
        };
        let max_len = self.config.max_len;
        let s = &mut self.slots[slot];
        s.buf.clear();
        s.buf.reserve(HDR + max_len);
        s.buf.extend_from_slice(&[0; HDR]);
        s.buf.extend_from_slice(seg.packet);
        let id = u16::from_be_bytes([seg.packet[4], seg.packet[5]]);
        s.flow = Flow {
            key: seg.key,
            v6: seg.key.v6,
            l4: seg.l4,
            headers_len: seg.headers_len,
            gso_size: seg.payload().len(),
            next_seq: seg.seq.wrapping_add(seg.payload().len() as u32),
            next_id: id.wrapping_add(1),
            segments: 1,
        };
        self.pending.push(slot);
        Push::Held
    }

    /// Closes the pending flows whose key matches, oldest first.
    fn close_where(&mut self, matches: impl Fn(&FlowKey) -> bool) {
        let mut pos = 0;
        while pos < self.pending.len() {
            if matches(&self.slots[self.pending[pos]].flow.key) {
                self.close(pos);
            } else {
                pos += 1;
            }
        }
    }

    /// Moves `pending[pos]` to the ready queue, its headers and virtio-net header final.
    fn close(&mut self, pos: usize) {
        let slot = self.pending.remove(pos);
        let Slot { buf, flow } = &mut self.slots[slot];
        let hdr = if flow.segments == 1 {
            self.stats.singles += 1;
            VirtioNetHdr::NONE
        } else {
            self.stats.super_segments += 1;
            finish_headers(flow, &mut buf[HDR..])
        };
        buf[..HDR].copy_from_slice(&hdr.to_bytes());
        self.ready.push_back(slot);
    }
}

/// Rewrites the lengths and checksums of a merged packet for a TUN write and returns its
/// virtio-net header: the transport checksum is left partial (the pseudo-header sum), as
/// the kernel expects with `NEEDS_CSUM`.
fn finish_headers(flow: &Flow, packet: &mut [u8]) -> VirtioNetHdr {
    let ip = IpLayout {
        v6: flow.v6,
        l4_offset: flow.l4,
        proto: PROTO_TCP,
        ipv4_options: false,
    };
    let len = packet.len();
    ip.set_length(packet, len);
    let csum = fold(&ip.pseudo_header_sum(packet, len - flow.l4));
    packet[flow.l4 + 16..flow.l4 + 18].copy_from_slice(&csum.to_be_bytes());
    VirtioNetHdr {
        needs_csum: true,
        data_valid: false,
        gso_type: if flow.v6 {
            GsoType::TcpV6
        } else {
            GsoType::TcpV4
        },
        ecn: packet[flow.l4 + 13] & CWR != 0,
        // Headers are at most 40 + 60 (no extensions) or 60 + 60 bytes.
        hdr_len: flow.headers_len as u16,
        gso_size: flow.gso_size as u16,
        csum_start: flow.l4 as u16,
        csum_offset: 16,
    }
}

/// Whether `seg` continues the super-segment in `slot` (see the module's rules).
fn can_append(slot: &Slot, seg: &Segment<'_>, max_len: usize) -> bool {
    let flow = &slot.flow;
    let first = &slot.buf[HDR..HDR + flow.headers_len];
    let pkt = seg.packet;
    let (l4, payload) = (flow.l4, seg.payload().len());
    let same = |r: std::ops::Range<usize>| first[r.clone()] == pkt[r];
    let ip_same = if flow.v6 {
        same(0..4) && pkt[7] == first[7]
    } else {
        let df = pkt[6] & DF;
        pkt[1] == first[1]
            && df == first[6] & DF
            && pkt[8] == first[8]
            && (df != 0 || u16::from_be_bytes([pkt[4], pkt[5]]) == flow.next_id)
    };
    // A pending super-segment always ends on a full segment: a short one closes it.
    seg.headers_len == flow.headers_len
        && seg.l4 == l4
        && payload <= flow.gso_size
        && slot.buf.len() - HDR + payload <= max_len
        && seg.seq == flow.next_seq
        && seg.flags & CWR == 0
        && seg.flags & !PSH == first[l4 + 13] & !(PSH | CWR)
        && ip_same
        && same(l4 + 8..l4 + 13)
        && same(l4 + 14..l4 + 16)
        && same(l4 + TCP_MIN_HEADER_LEN..flow.headers_len)
}

/// Appends `seg`'s payload; returns whether the super-segment is now complete: a PSH or
/// short segment ended it, or another full one would not fit.
fn append(slot: &mut Slot, seg: &Segment<'_>, max_len: usize) -> bool {
    let payload = seg.payload();
    slot.buf.extend_from_slice(payload);
    let flow = &mut slot.flow;
    flow.next_seq = flow.next_seq.wrapping_add(payload.len() as u32);
    flow.next_id = flow.next_id.wrapping_add(1);
    flow.segments += 1;
    if seg.flags & PSH != 0 {
        slot.buf[HDR + flow.l4 + 13] |= PSH;
    }
    seg.flags & PSH != 0
        || payload.len() < flow.gso_size
        || slot.buf.len() - HDR + flow.gso_size > max_len
}

/// Sorts a packet from the link (see [`Class`]).
fn classify(packet: &[u8], max_len: usize) -> Class<'_> {
    let Ok(ip) = IpLayout::parse(packet) else {
        return unkeyed(packet);
    };
    if !is_tcp(ip.proto) {
        return Class::Other;
    }
    let l4 = ip.l4_offset;
    let Some(ports) = packet.get(l4..l4 + 4) else {
        return unkeyed(packet);
    };
    let (src, dst) = ip.addresses(packet);
    let mut key = FlowKey {
        v6: ip.v6,
        ports: [ports[0], ports[1], ports[2], ports[3]],
        ..FlowKey::default()
    };
    key.src[..src.len()].copy_from_slice(src);
    key.dst[..dst.len()].copy_from_slice(dst);

    let Some(&data_offset) = packet.get(l4 + 12) else {
        return Class::Barrier(key);
    };
    let headers_len = l4 + usize::from(data_offset >> 4) * 4;
    let ip_len = if ip.v6 {
        usize::from(u16::from_be_bytes([packet[4], packet[5]])) + 40
    } else {
        usize::from(u16::from_be_bytes([packet[2], packet[3]]))
    };
    let no_extras = !ip.ipv4_options && (!ip.v6 || l4 == 40);
    let flags = packet.get(l4 + 13).copied().unwrap_or(0);
    let flags_ok = flags & ACK != 0 && flags & (FIN | SYN | RST | URG) == 0;
    let candidate = no_extras
        && flags_ok
        && headers_len >= l4 + TCP_MIN_HEADER_LEN
        && headers_len < packet.len()
        && ip_len == packet.len()
        && packet.len() <= max_len
        && checksums_valid(&ip, packet);
    if !candidate {
        return Class::Barrier(key);
    }
    debug_assert_eq!(flags & !(ACK | PSH | ECE | CWR), 0);
    let seq = u32::from_be_bytes([
        packet[l4 + 4],
        packet[l4 + 5],
        packet[l4 + 6],
        packet[l4 + 7],
    ]);
    Class::Candidate(Segment {
        packet,
        key,
        l4,
        headers_len,
        seq,
        flags,
    })
}

/// The class of a packet whose transport header cannot be reached: the addresses when
/// it may be TCP, else [`Class::Other`].
fn unkeyed(packet: &[u8]) -> Class<'_> {
    let mut src = [0; 16];
    let mut dst = [0; 16];
    match packet.first().map(|b| b >> 4) {
        Some(4) if packet.len() >= 20 && packet[9] == PROTO_TCP => {
            src[..4].copy_from_slice(&packet[12..16]);
            dst[..4].copy_from_slice(&packet[16..20]);
            Class::Unkeyed {
                v6: false,
                src,
                dst,
            }
        }
        // The upper protocol may sit behind extension headers: assume TCP.
        Some(6) if packet.len() >= 40 => {
            src.copy_from_slice(&packet[8..24]);
            dst.copy_from_slice(&packet[24..40]);
            Class::Unkeyed { v6: true, src, dst }
        }
        _ => Class::Other,
    }
}

/// Whether the IPv4 header checksum and the TCP checksum hold.
fn checksums_valid(ip: &IpLayout, packet: &[u8]) -> bool {
    let l4 = ip.l4_offset;
    let ip_ok = ip.v6
        || Sum16BitWords::new()
            .add_slice(&packet[..l4])
            .ones_complement()
            == 0;
    ip_ok
        && ip
            .pseudo_header_sum(packet, packet.len() - l4)
            .add_2bytes(super::sum::payload_sum(&packet[l4..]))
            .ones_complement()
            == 0
}
