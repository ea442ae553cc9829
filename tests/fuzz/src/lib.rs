//! The input format and the harness shared by tapemu's fuzz targets.
//!
//! A fuzz input is a [`Script`]: a sequence of [`Step`]s (link frames, TUN packets, clock
//! steps and drains of the output queues), decoded with `arbitrary`'s [`Unstructured`] from
//! a byte format simple enough that `examples/fuzz-seeds.rs` writes it from the recorded
//! pcaps in `tests/data/`:
//!
//! | tag byte (mod 4) | then | step |
//! |---|---|---|
//! | 0 | fixup byte, length (u16 BE), frame | [`Step::Link`] |
//! | 1 | length (u16 BE), IP packet | [`Step::Tun`] (a link frame when TUN steps are off) |
//! | 2 | milliseconds (u32 BE) | [`Step::Advance`] |
//! | 3 | — | [`Step::Drain`] |
//!
//! [`run`] feeds one script to three hosts in turn (a static address with IPv6, a DHCP
//! client without IPv6, IPv6 only), each with small limits so they are reached, and checks
//! after every step the invariants that must hold whatever arrives from the network:
//! the output queues never hold more than their configured maximum, the neighbour caches
//! never more than `max_entries`, no counter ever goes down, a delivered range lies in the
//! frame and holds an IP packet, every frame sent carries our MAC as its source, and the
//! timers make progress (after `handle_timeout(now)`, `poll_timeout()` is past `now` within
//! a bounded number of calls).

pub mod parsers;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use tapemu::{
    Config, DhcpConfig, Egress, Ingress, Ipv4Interface, Ipv4Mode, Ipv6Config, Ipv6Mode, MacAddr,
    NeighbourConfig, Stats, Tap, Transmit, HEADROOM,
};

/// Most steps decoded from one input.
pub const MAX_STEPS: usize = 512;
/// Longest clock step: long enough to expire a short lease or a router in one step (longer
/// spans take several), short enough that catching up on every timer stays fast: a DHCP
/// client without a server retransmits every minute or so, and encoding each message
/// dominated the run time with four-hour steps.
pub const MAX_ADVANCE: Duration = Duration::from_secs(15 * 60);
/// Most timer wake-ups run while catching up one clock step.
const MAX_WAKEUPS_PER_STEP: usize = 2_000;
/// `handle_timeout(now)` must move `poll_timeout()` past `now` within this many calls.
const MAX_CALLS_TO_SETTLE: usize = 64;

/// [`Step::Link`] fixup bit: a unicast destination MAC becomes the host's own MAC, so
/// recorded frames addressed to another host reach the protocol code.
pub const FIXUP_DST_MAC: u8 = 1;
/// [`Step::Link`] fixup bit: in an IPv4 UDP datagram to port 68, the DHCP xid and
/// chaddr become those of the last DHCP message the host sent, and the UDP checksum is
/// zeroed (none), so recorded server replies reach the DHCP client's state machine.
pub const FIXUP_DHCP_XID: u8 = 2;

/// One input of the frame targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// One thing that happens to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An Ethernet frame from the link, after the `FIXUP_*` bits in `fixup` are applied.
    Link {
        /// `FIXUP_*` bits.
        fixup: u8,
        /// The frame.
        frame: Vec<u8>,
    },
    /// An IP packet from the TUN.
    Tun(Vec<u8>),
    /// The clock moves on by this much; every timer due on the way runs at its time.
    Advance(Duration),
    /// The caller takes everything queued by `poll_transmit` and `poll_event`.
    Drain,
}

impl Script {
    /// Decodes a script; TUN packets are link frames unless `tun` is set.
    pub fn decode(data: &[u8], tun: bool) -> Script {
        let mut u = Unstructured::new(data);
        let mut steps = Vec::new();
        while !u.is_empty() && steps.len() < MAX_STEPS {
            match decode_step(&mut u, tun) {
                Ok(step) => steps.push(step),
                Err(_) => break,
            }
        }
        Script { steps }
    }

    /// The bytes [`Script::decode`] turns back into this script (frames longer than
    /// 65535 bytes are cut).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let put_bytes = |out: &mut Vec<u8>, bytes: &[u8]| {
            let len = bytes.len().min(usize::from(u16::MAX));
            out.extend_from_slice(&(len as u16).to_be_bytes());
            out.extend_from_slice(&bytes[..len]);
        };
        for step in &self.steps {
            match step {
                Step::Link { fixup, frame } => {
                    out.extend_from_slice(&[0, *fixup]);
                    put_bytes(&mut out, frame);
                }
                Step::Tun(packet) => {
                    out.push(1);
                    put_bytes(&mut out, packet);
                }
                Step::Advance(d) => {
                    out.push(2);
                    let ms = u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
                    out.extend_from_slice(&ms.to_be_bytes());
                }
                Step::Drain => out.push(3),
            }
        }
        out
    }
}

impl<'a> Arbitrary<'a> for Script {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut steps = Vec::new();
        while !u.is_empty() && steps.len() < MAX_STEPS {
            steps.push(decode_step(u, true)?);
        }
        Ok(Script { steps })
    }
}

fn take_u16(u: &mut Unstructured<'_>) -> arbitrary::Result<usize> {
    let b = u.bytes(2)?;
    Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
}

/// Up to `len` bytes: an input that ends early still gives its last frame.
fn take_bytes(u: &mut Unstructured<'_>, len: usize) -> arbitrary::Result<Vec<u8>> {
    let n = len.min(u.len());
    Ok(u.bytes(n)?.to_vec())
}

fn decode_step(u: &mut Unstructured<'_>, tun: bool) -> arbitrary::Result<Step> {
    let tag: u8 = u.arbitrary()?;
    Ok(match tag % 4 {
        0 => {
            let fixup: u8 = u.arbitrary()?;
            let len = take_u16(u)?;
            Step::Link {
                fixup,
                frame: take_bytes(u, len)?,
            }
        }
        1 => {
            let len = take_u16(u)?;
            let bytes = take_bytes(u, len)?;
            if tun {
                Step::Tun(bytes)
            } else {
                Step::Link {
                    fixup: 0,
                    frame: bytes,
                }
            }
        }
        2 => {
            let b = u.bytes(4)?;
            let ms = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            Step::Advance(Duration::from_millis(ms).min(MAX_ADVANCE))
        }
        _ => Step::Drain,
    })
}

/// The hosts every script is run against, in order: a static address (192.0.2.20/24 via
/// 192.0.2.1, host B of the recordings) with IPv6, a DHCP client (the recordings' client
/// MAC) without IPv6, and IPv6 only with stateless DHCPv6.
pub fn hosts() -> Vec<Config> {
    let limits = |mac: [u8; 6]| Config {
        mac: Some(MacAddr(mac)),
        neighbour: NeighbourConfig {
            max_entries: 8,
            queue_packets_per_neighbour: 4,
            queue_bytes_per_neighbour: 8 * 1024,
            queue_bytes_total: 16 * 1024,
            ..NeighbourConfig::default()
        },
        max_pending_transmits: 32,
        max_pending_events: 8,
        ..Config::default()
    };
    let small_v6 = Ipv6Config {
        max_addresses: 4,
        max_routers: 3,
        max_prefixes: 4,
        max_dns: 3,
        max_groups: 4,
        ..Ipv6Config::default()
    };
    let gateway = Ipv4Addr::new(192, 0, 2, 1);
    vec![
        Config {
            ipv4: Ipv4Mode::Static(Ipv4Interface::new(
                Ipv4Addr::new(192, 0, 2, 20),
                24,
                Some(gateway),
            )),
            ipv6: Ipv6Mode::Slaac(small_v6.clone()),
            ..limits([2, 0, 0, 0, 0, 0x14])
        },
        Config {
            ipv4: Ipv4Mode::Dhcp(DhcpConfig::default()),
            ipv6: Ipv6Mode::Disabled,
            ..limits([2, 0, 0, 0, 0, 0x64])
        },
        Config {
            ipv4: Ipv4Mode::Disabled,
            ipv6: Ipv6Mode::Slaac(Ipv6Config {
                dhcpv6: true,
                ..small_v6
            }),
            ..limits([2, 0, 0, 0, 0, 0x0a])
        },
    ]
}

/// Runs `script` against every host of [`hosts`], panicking when an invariant breaks.
pub fn run(script: &Script) {
    for config in hosts() {
        Harness::new(config).run(script);
    }
}

/// One host under test and what the checks remember between steps.
struct Harness {
    tap: Tap,
    config: Config,
    now: Instant,
    /// The counters after the last step.
    counters: Stats,
    /// xid of the last DHCP message the host sent.
    last_xid: Option<[u8; 4]>,
}

impl Harness {
    fn new(config: Config) -> Harness {
        let now = Instant::now();
        let tap = Tap::new(config.clone(), now);
        let counters = tap.stats();
        Harness {
            tap,
            config,
            now,
            counters,
            last_xid: None,
        }
    }

    fn run(&mut self, script: &Script) {
        let initial = self.tap.stats();
        for step in &script.steps {
            match step {
                Step::Link { fixup, frame } => self.link(*fixup, frame),
                Step::Tun(packet) => self.tun(packet),
                Step::Advance(by) => self.advance(*by),
                Step::Drain => self.drain(),
            }
            self.check();
        }
        self.drain();
        self.check();
        check_counters_grew(&initial, &self.tap.stats());
    }

    fn link(&mut self, fixup: u8, frame: &[u8]) {
        let mut frame = frame.to_vec();
        if fixup & FIXUP_DST_MAC != 0 && frame.len() >= 6 && frame[0] & 1 == 0 {
            frame[..6].copy_from_slice(&self.tap.mac().0);
        }
        if fixup & FIXUP_DHCP_XID != 0 {
            if let Some(xid) = self.last_xid {
                patch_dhcp_reply(&mut frame, xid, self.tap.mac());
            }
        }
        if let Ingress::Deliver(range) = self.tap.handle_link_frame(self.now, &frame) {
            assert!(
                range.start <= range.end && range.end <= frame.len(),
                "delivered range {range:?} outside a {}-byte frame",
                frame.len()
            );
            let version = frame[range.clone()].first().map(|b| b >> 4);
            assert!(
                matches!(version, Some(4 | 6)),
                "delivered something that is not an IP packet: {:02x?}",
                &frame[range]
            );
        }
    }

    fn tun(&mut self, packet: &[u8]) {
        let mut buf = vec![0u8; HEADROOM + packet.len()];
        buf[HEADROOM..].copy_from_slice(packet);
        if self.tap.handle_tun_packet(self.now, &mut buf) == Egress::Send {
            self.check_sent_frame(&buf);
        }
    }

    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        let mut wakeups = 0;
        while let Some(at) = self.tap.poll_timeout() {
            if at > until || wakeups == MAX_WAKEUPS_PER_STEP {
                break;
            }
            self.now = self.now.max(at);
            self.settle();
            wakeups += 1;
            // A caller that does not drain loses outputs (counted); one that does keeps
            // the queues short. Alternate, so both paths are taken.
            if wakeups % 2 == 0 {
                self.drain();
            }
        }
        self.now = until;
        self.settle();
    }

    /// Runs the timers due now until none is, as a driver loop would.
    fn settle(&mut self) {
        for _ in 0..MAX_CALLS_TO_SETTLE {
            self.tap.handle_timeout(self.now);
            if self.tap.poll_timeout().is_none_or(|t| t > self.now) {
                return;
            }
        }
        panic!(
            "timers do not make progress: poll_timeout() is still {:?} after {MAX_CALLS_TO_SETTLE} calls of handle_timeout(now)",
            self.tap.poll_timeout().map(|t| t.saturating_duration_since(self.now))
        );
    }

    fn drain(&mut self) {
        let mut transmits = 0;
        while let Some(t) = self.tap.poll_transmit() {
            transmits += 1;
            match t {
                Transmit::Link(frame) => {
                    self.check_sent_frame(&frame);
                    if let Some(xid) = dhcp_request_xid(&frame) {
                        self.last_xid = Some(xid);
                    }
                }
                Transmit::Tun(packet) => {
                    let version = packet.first().map(|b| b >> 4);
                    assert!(
                        matches!(version, Some(4 | 6)),
                        "a TUN output that is not an IP packet: {packet:02x?}"
                    );
                }
            }
        }
        assert!(
            transmits <= self.config.max_pending_transmits,
            "{transmits} outputs queued, the limit is {}",
            self.config.max_pending_transmits
        );
        let mut events = 0;
        while self.tap.poll_event().is_some() {
            events += 1;
        }
        assert!(
            events <= self.config.max_pending_events,
            "{events} events queued, the limit is {}",
            self.config.max_pending_events
        );
    }

    fn check_sent_frame(&self, frame: &[u8]) {
        assert!(frame.len() >= 14, "a {}-byte frame was sent", frame.len());
        assert_eq!(
            frame[6..12],
            self.tap.mac().0,
            "a frame was sent with another host's source MAC"
        );
    }

    fn check(&mut self) {
        let max = self.config.neighbour.max_entries;
        let (arp, ndp) = (self.tap.arp_cache().len(), self.tap.ndp_cache().len());
        assert!(arp <= max, "{arp} ARP cache entries, the limit is {max}");
        assert!(ndp <= max, "{ndp} NDP cache entries, the limit is {max}");
        let counters = self.tap.stats();
        if counters != self.counters {
            let went_down = counter_values(&self.counters)
                .zip(counter_values(&counters))
                .any(|(before, after)| after < before);
            if went_down {
                check_counters_grew(&self.counters, &counters);
            }
            self.counters = counters;
        }
    }
}

/// Every counter's value, group by group in [`Stats::fields`]'s order, without the
/// `group.name` strings that make `Stats::fields` cost an allocation per counter (it was
/// most of the run time when called after every step). A group missing here is still
/// checked from the start to the end of each run.
fn counter_values(s: &Stats) -> impl Iterator<Item = u64> {
    [
        s.link.fields(),
        s.tun.fields(),
        s.ipv4.fields(),
        s.arp.fields(),
        s.arp_cache.fields(),
        s.dhcp.fields(),
        s.ipv6.fields(),
        s.ndp.fields(),
        s.ndp_cache.fields(),
        s.mld.fields(),
        s.dhcpv6.fields(),
        s.queues.fields(),
    ]
    .into_iter()
    .flatten()
    .map(|(_, v)| v)
}

/// Panics, naming the counter, if one of `new` is below its value in `old`.
fn check_counters_grew(old: &Stats, new: &Stats) {
    let (old, new) = (old.fields(), new.fields());
    assert_eq!(old.len(), new.len(), "the counter set changed");
    for ((name, before), (_, after)) in old.iter().zip(&new) {
        assert!(
            after >= before,
            "counter {name} went down from {before} to {after}"
        );
    }
}

/// The xid of a DHCP message we sent (IPv4, UDP 68 → 67), if `frame` is one.
fn dhcp_request_xid(frame: &[u8]) -> Option<[u8; 4]> {
    let payload = udp_payload(frame, 67)?;
    payload.get(4..8)?.try_into().ok()
}

/// Offset of the UDP payload of an untagged IPv4 UDP frame to `port`.
fn udp_payload_offset(frame: &[u8], port: u16) -> Option<usize> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ihl = usize::from(frame.get(14)? & 0x0f) * 4;
    if *frame.get(14 + 9)? != 17 {
        return None;
    }
    let udp = 14 + ihl;
    let dst = frame.get(udp + 2..udp + 4)?;
    (u16::from_be_bytes([dst[0], dst[1]]) == port).then_some(udp + 8)
}

fn udp_payload(frame: &[u8], port: u16) -> Option<&[u8]> {
    frame.get(udp_payload_offset(frame, port)?..)
}

/// Puts `xid` and `mac` (chaddr) into a DHCP reply (UDP to port 68) and zeroes its UDP
/// checksum, which IPv4 allows.
fn patch_dhcp_reply(frame: &mut [u8], xid: [u8; 4], mac: MacAddr) {
    let Some(at) = udp_payload_offset(frame, 68) else {
        return;
    };
    if frame.len() < at + 34 {
        return;
    }
    frame[at + 4..at + 8].copy_from_slice(&xid);
    frame[at + 28..at + 34].copy_from_slice(&mac.0);
    frame[at - 2..at].copy_from_slice(&[0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_is_identity() {
        let script = Script {
            steps: vec![
                Step::Drain,
                Step::Link {
                    fixup: 3,
                    frame: vec![1, 2, 3],
                },
                Step::Tun(vec![0x45; 20]),
                Step::Advance(Duration::from_millis(1500)),
            ],
        };
        assert_eq!(Script::decode(&script.encode(), true), script);
    }

    #[test]
    fn truncated_input_keeps_its_last_frame() {
        let script = Script::decode(&[0, 1, 0, 10, 0xaa, 0xbb], true);
        assert_eq!(
            script.steps,
            vec![Step::Link {
                fixup: 1,
                frame: vec![0xaa, 0xbb]
            }]
        );
    }
}
