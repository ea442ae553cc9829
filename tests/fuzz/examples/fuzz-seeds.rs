//! Writes the seed corpora of the fuzz targets into `seeds/<target>/` from the recorded
//! pcaps in `tests/data/`: one seed per capture (every frame, with the time between frames
//! as clock steps and a drain after each) and one per frame, plus a list of link URLs.
//!
//! Run from `tests/fuzz`: `cargo run --example fuzz-seeds`. The output is deterministic.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tapemu_fuzz::parsers::{dhcp_input, ndp_input};
use tapemu_fuzz::{Script, Step, FIXUP_DHCP_XID, FIXUP_DST_MAC};

const CAPTURES: [&str; 5] = [
    "arp-kernel.pcap",
    "ipv4-mixed.pcap",
    "dhcp-dnsmasq.pcap",
    "dhcp-dnsmasq-nak.pcap",
    "ipv6-radvd.pcap",
];

/// Link URLs: every scheme and parameter, and near misses.
const URLS: [&str; 16] = [
    "udp://192.0.2.1:7000",
    "udp://192.0.2.1:7000?bind=0.0.0.0:7001",
    "udp://[2001:db8::1]:7000?bind=7001",
    "tcp://192.0.2.1:7001",
    "tcp://192.0.2.1:7001?len=2",
    "tcp://host.example:7001?len=4",
    "vxlan://198.51.100.1:4789?vni=42",
    "vxlan://198.51.100.1?vni=16777215&bind=198.51.100.2:4789",
    "vxlan://2001:db8::1?vni=1",
    "tap://tap0",
    "tap://a-very-long-interface-name",
    "udp://192.0.2.1",
    "tcp://:7001?len=3",
    "vxlan://198.51.100.1:4789?vni=16777216",
    "file:///dev/null",
    "udp://192.0.2.1:7000?bind",
];

fn read_pcap(path: &Path) -> Vec<(Duration, Vec<u8>)> {
    let file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = pcap_file::pcap::PcapReader::new(file)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push((packet.timestamp, packet.data.into_owned()));
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn link(frame: &[u8]) -> Step {
    Step::Link {
        fixup: FIXUP_DST_MAC | FIXUP_DHCP_XID,
        frame: frame.to_vec(),
    }
}

/// The IP packet of an untagged IPv4 or IPv6 frame.
fn ip_packet(frame: &[u8]) -> Option<&[u8]> {
    match frame.get(12..14)? {
        [0x08, 0x00] | [0x86, 0xdd] => frame.get(14..),
        _ => None,
    }
}

/// The UDP payload of an untagged IPv4 frame to or from a DHCP port (67, 68).
fn dhcp_payload(frame: &[u8]) -> Option<&[u8]> {
    let ip = ip_packet(frame).filter(|p| p.first().is_some_and(|b| b >> 4 == 4))?;
    let header_len = usize::from(ip.first()? & 0x0f) * 4;
    if *ip.get(9)? != 17 {
        return None;
    }
    let udp = ip.get(header_len..)?;
    let ports = [u16::from_be_bytes([udp[0], udp[1]]), u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?])];
    ports.iter().any(|p| *p == 67 || *p == 68).then(|| udp.get(8..))?
}

/// The ICMPv6 message of an untagged IPv6 frame without extension headers.
fn icmpv6_message(frame: &[u8]) -> Option<&[u8]> {
    let ip = ip_packet(frame).filter(|p| p.first().is_some_and(|b| b >> 4 == 6))?;
    (*ip.get(6)? == 58).then(|| ip.get(40..))?
}

/// Inputs of the `config_validate` target: `arbitrary` reads the fields from these bytes,
/// so they are only starting points of different lengths and shapes.
const CONFIG_SEEDS: [&[u8]; 4] = [
    b"",
    b"\x01\x1102:00:00:00:00:01\x01\x0b192.0.2.50\x18\x00\x00\x00",
    b"\x00\x00\x01\x05phone\xdc\x05\x00\x00\x01",
    b"\x01\x1401:00:5e:00:00:01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x14udp://192.0.2.1:7000",
];

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("../data");
    let seeds = root.join("seeds");
    for target in [
        "link_frames",
        "tun_and_link",
        "link_url",
        "dhcp_options",
        "ndp_options",
        "config_validate",
    ] {
        let _ = fs::remove_dir_all(seeds.join(target));
    }
    for capture in CAPTURES {
        let frames = read_pcap(&data.join(capture));
        let stem = capture.trim_end_matches(".pcap");
        // The whole capture, in time: a drain first so the DHCP client's xid is known.
        let mut whole = vec![Step::Drain];
        let mut mixed = vec![Step::Drain];
        let mut last = frames.first().map(|(t, _)| *t).unwrap_or_default();
        for (i, (at, frame)) in frames.iter().enumerate() {
            let gap = at.saturating_sub(last);
            last = *at;
            if !gap.is_zero() {
                whole.push(Step::Advance(gap));
                mixed.push(Step::Advance(gap));
            }
            whole.push(link(frame));
            whole.push(Step::Drain);
            // The TUN target gets every IP packet both ways: as a frame from the link
            // and as a packet from the TUN.
            mixed.push(link(frame));
            if let Some(packet) = ip_packet(frame) {
                mixed.push(Step::Tun(packet.to_vec()));
            }
            mixed.push(Step::Drain);
            if let Some(input) = dhcp_payload(frame).and_then(dhcp_input) {
                write(&seeds.join("dhcp_options"), &format!("{stem}-{i:02}"), &input);
            }
            if let Some(input) = icmpv6_message(frame).and_then(ndp_input) {
                write(&seeds.join("ndp_options"), &format!("{stem}-{i:02}"), &input);
            }
            let one = Script {
                steps: vec![Step::Drain, link(frame), Step::Drain],
            };
            write(
                &seeds.join("link_frames"),
                &format!("{stem}-{i:02}"),
                &one.encode(),
            );
        }
        write(
            &seeds.join("link_frames"),
            &format!("{stem}-all"),
            &Script { steps: whole }.encode(),
        );
        write(
            &seeds.join("tun_and_link"),
            &format!("{stem}-all"),
            &Script { steps: mixed }.encode(),
        );
    }
    for (i, url) in URLS.iter().enumerate() {
        write(
            &seeds.join("link_url"),
            &format!("url-{i:02}"),
            url.as_bytes(),
        );
    }
    for (i, seed) in CONFIG_SEEDS.iter().enumerate() {
        write(&seeds.join("config_validate"), &format!("config-{i:02}"), seed);
    }
    println!("seeds written to {}", seeds.display());
}
