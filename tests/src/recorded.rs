//! Frames recorded from real hosts and servers (`tests/data/*.pcap`; how each was
//! captured is in `tests/data/README.md`).

use std::path::{Path, PathBuf};

/// The path of a file in `tests/data/`.
pub fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

/// Every frame of a recorded Ethernet pcap in `tests/data/`, in order.
///
/// Panics with the file name when the file is missing or not an Ethernet pcap.
pub fn frames(name: &str) -> Vec<Vec<u8>> {
    read_pcap(&data_path(name))
}

/// Every frame of the Ethernet pcap at `path`, in order; panics, naming the file, when it
/// is missing, unreadable or not an Ethernet capture.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = pcap_file::pcap::PcapReader::new(file)
        .unwrap_or_else(|e| panic!("{}: not a pcap: {e}", path.display()));
    assert_eq!(
        reader.header().datalink,
        pcap_file::DataLink::ETHERNET,
        "{}: not an Ethernet capture",
        path.display()
    );
    let mut frames = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        frames.push(packet.data.into_owned());
    }
    frames
}

/// The source MAC of a frame.
pub fn src_mac(frame: &[u8]) -> [u8; 6] {
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&frame[6..12]);
    mac
}
