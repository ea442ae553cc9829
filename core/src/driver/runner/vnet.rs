//! The runner's path for a TUN with virtio-net headers (`IFF_VNET_HDR` with TSO/USO):
//! super-segments read from the TUN are split into packets behind the usual headroom,
//! and TCP segments from the link are coalesced into super-segments for the TUN. The
//! algorithms are the pure `crate::offload`; this is where they meet the fds.

use std::time::Instant;

use super::{count_write, Runner, TUN_OFFSET};
use crate::driver::DriverError;
use crate::offload::{complete_checksum, GsoType, Push, SuperSegment, VirtioNetHdr};

/// Largest read from a TUN with virtio-net headers.
const VNET_READ: usize = VirtioNetHdr::LEN + 65535;
/// Segments sent per batch from a TUN with virtio-net headers: a 64 KiB TCP
/// super-segment of 1,448-byte segments is 46.
const VNET_SEGMENTS: usize = 64;

impl Runner {
    /// Allocates what a TUN with virtio-net headers needs, once one is attached.
    pub(super) fn prepare_tun_bufs(&mut self) {
        if !self.tun.as_ref().is_some_and(|t| t.has_vnet_hdr()) || !self.vnet_bufs.is_empty() {
            return;
        }
        // As many reads per wake-up as a plain TUN gets (`DriverConfig::batch`): small
        // packets (UDP, ACKs) come one per read here too. Zeroed allocations: a read
        // touches only the pages it fills.
        let batch = self.link_bufs.len();
        self.vnet_bufs = vec![vec![0; VNET_READ]; batch];
        self.vnet_lens = vec![0; batch];
        let segment = self.tun_bufs.first().map_or(0, Vec::len);
        let count = self.tun_bufs.len().max(VNET_SEGMENTS);
        self.tun_bufs.resize(count, vec![0; segment]);
        self.tun_lens.resize(count, 0);
    }

    /// Splits what a TUN with virtio-net headers read into packets in `tun_bufs` and
    /// sends them as [`Runner::handle_tun_packets`] does, a pool of segments at a time.
    pub(super) async fn handle_vnet_reads(
        &mut self,
        now: Instant,
        n: usize,
    ) -> Result<(), DriverError> {
        let mut reads = std::mem::take(&mut self.vnet_bufs);
        let result = self.segment_reads(now, &mut reads, n).await;
        self.vnet_bufs = reads;
        result
    }

    async fn segment_reads(
        &mut self,
        now: Instant,
        reads: &mut [Vec<u8>],
        n: usize,
    ) -> Result<(), DriverError> {
        self.ready.clear();
        let mut used = 0;
        for (i, read) in reads.iter_mut().enumerate().take(n) {
            let Some(read) = read.get_mut(..self.vnet_lens[i]) else {
                continue;
            };
            let Ok(hdr) = VirtioNetHdr::parse(read) else {
                self.tun_dropped_in += 1;
                continue;
            };
            let packet = &mut read[VirtioNetHdr::LEN..];
            if hdr.gso_type == GsoType::None {
                let room = self.tun_bufs[0].len() - TUN_OFFSET;
                if complete_checksum(&hdr, packet).is_err() || packet.len() > room {
                    self.tun_dropped_in += 1;
                    continue;
                }
                if used == self.tun_bufs.len() {
                    self.send_ready().await?;
                    used = 0;
                }
                self.tun_bufs[used][TUN_OFFSET..TUN_OFFSET + packet.len()].copy_from_slice(packet);
                self.egress(now, used, packet.len());
                used += 1;
                continue;
            }
            let Ok(sup) = SuperSegment::parse(&hdr, packet) else {
                self.tun_dropped_in += 1;
                continue;
            };
            self.tun_super_segments_in += 1;
            for index in 0..sup.count() {
                if used == self.tun_bufs.len() {
                    self.send_ready().await?;
                    used = 0;
                }
                match sup.write(index, &mut self.tun_bufs[used][TUN_OFFSET..]) {
                    Ok(len) => self.egress(now, used, len),
                    Err(_) => {
                        // Segments larger than the MTU: the rest would be too.
                        self.tun_dropped_in += 1;
                        break;
                    }
                }
                used += 1;
            }
        }
        self.send_ready().await
    }

    /// Writes the IP packet `link_bufs[i][at..end]` to a TUN with virtio-net headers
    /// through the coalescing table: what the table closes first, then the packet itself
    /// if it passes through, behind a header written over the Ethernet header in front
    /// of it (no copy).
    pub(super) fn deliver_vnet(&mut self, i: usize, at: usize, end: usize) {
        let Some(tun) = &self.tun else {
            self.dropped_no_tun += 1;
            return;
        };
        let dropped = &mut self.tun_dropped_out;
        let buf = &mut self.link_bufs[i];
        let push = self.gro.push(&buf[at..end]);
        while let Some(sup) = self.gro.pop_ready() {
            count_write(tun.write_raw(sup), dropped);
        }
        if push == Push::PassThrough {
            let result = match at.checked_sub(VirtioNetHdr::LEN) {
                Some(hdr_at) => {
                    VirtioNetHdr::NONE.emit(&mut buf[hdr_at..at]);
                    tun.write_raw(&buf[hdr_at..end])
                }
                None => tun.write(&buf[at..end]),
            };
            count_write(result, dropped);
        }
    }

    /// Writes what the coalescing table still holds: at the end of every link batch, so
    /// nothing waits for a later one.
    pub(super) fn flush_vnet(&mut self) {
        let Some(tun) = &self.tun else {
            return;
        };
        self.gro.flush();
        while let Some(sup) = self.gro.pop_ready() {
            count_write(tun.write_raw(sup), &mut self.tun_dropped_out);
        }
    }
}
