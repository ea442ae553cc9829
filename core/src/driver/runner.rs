//! The driver's loop: one task that owns the `Tap`, the TUN and the link.
//!
//! One `select!` waits on the control commands, the TUN, the link and a single sleep
//! until the `Tap`'s next timer (a `CLOCK_BOOTTIME` timer with the system clock, so a
//! deadline passed during a suspend fires on waking); nothing else wakes it. Commands are polled first; the
//! TUN and the link take turns, so a flood from either side starves neither the other
//! side nor the protocol timers, which run after every wake-up that finds them due.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::clock::Clock;
use super::events::EventSender;
use super::link::faults::FaultyLink;
use super::link::{Link, LINK_HEADROOM, MAX_FRAME};
use super::sys::PacketFd;
use super::{
    Command, Direction, DriverConfig, DriverError, DriverEvent, DriverStats, FrameHook, LinkStatus,
    NextTimer, STOP_DEADLINE,
};
use crate::offload::{Gro, GroConfig};
use crate::{Egress, Ingress, Tap, Transmit, HEADROOM};

mod vnet;

/// Offset of the IP packet in a TUN read buffer: link headroom, then Ethernet headroom.
const TUN_OFFSET: usize = LINK_HEADROOM + HEADROOM;

/// What the loop sleeps on until the next protocol timer.
enum Sleep {
    /// A `CLOCK_BOOTTIME` timerfd: with the system clock.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Boot(super::sys::BootTimer),
    /// tokio's sleep, the deadline mapped onto tokio's clock: with a simulated clock.
    Tokio,
}

impl Sleep {
    fn new(clock: &Clock) -> Sleep {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if clock.is_kernel_boottime() {
            match super::sys::BootTimer::new() {
                Ok(timer) => return Sleep::Boot(timer),
                Err(e) => tracing::warn!("CLOCK_BOOTTIME timer: {e}; sleeping on tokio's clock"),
            }
        }
        let _ = clock;
        Sleep::Tokio
    }
}

pub(crate) struct Runner {
    tap: Tap,
    /// Keeps counting while the device is suspended (`CLOCK_BOOTTIME`).
    clock: Clock,
    sleep: Sleep,
    tun: Option<PacketFd>,
    link: FaultyLink,
    commands: mpsc::Receiver<Command>,
    events: EventSender,
    frame_hook: Option<FrameHook>,
    /// Packets read from a plain TUN, or segments of what a TUN with virtio-net headers
    /// read, each at [`TUN_OFFSET`].
    tun_bufs: Vec<Vec<u8>>,
    tun_lens: Vec<usize>,
    /// Reads from a TUN with virtio-net headers (allocated when one is attached).
    vnet_bufs: Vec<Vec<u8>>,
    vnet_lens: Vec<usize>,
    /// Coalesces TCP segments from the link for a TUN with virtio-net headers.
    gro: Gro,
    link_bufs: Vec<Vec<u8>>,
    link_spans: Vec<(usize, usize)>,
    /// TUN buffers holding a frame for the link: (index, end).
    ready: Vec<(usize, usize)>,
    /// Whose turn it is when both the link and the TUN are ready.
    link_first: bool,
    tun_dropped_out: u64,
    tun_dropped_in: u64,
    tun_super_segments_in: u64,
    dropped_no_tun: u64,
    link_dropped_in: u64,
    wakeups: u64,
    /// The emulated host re-announces itself (gratuitous ARP, unsolicited NA, DHCP
    /// confirmation, RS) once the link is open again: after a network change, or after
    /// the link came back up. Sent earlier, on a socket still opening, it would be lost.
    announce: bool,
}

enum Wake {
    Command(Option<Command>),
    Link(io::Result<usize>),
    Tun(io::Result<usize>),
    Timer,
}

/// Where to say that the driver has ended.
type StopDone = oneshot::Sender<Result<(), DriverError>>;

/// How the loop ended: on an error, or asked to, with where to say it has ended.
type Ended = (Result<(), DriverError>, Option<StopDone>);

impl Runner {
    pub(crate) fn new(
        config: DriverConfig,
        link: Link,
        tun: Option<PacketFd>,
        commands: mpsc::Receiver<Command>,
        events: EventSender,
    ) -> Runner {
        let batch = config.batch.max(1);
        let clock = Clock::new(config.clock);
        // Zeroed allocations: pages are touched only as packets fill them.
        let tun_mtu = usize::from(config.tap.mtu).max(1500);
        let mut runner = Runner {
            tap: Tap::new(config.tap, clock.now()),
            sleep: Sleep::new(&clock),
            clock,
            tun,
            link: FaultyLink::new(link, config.link_faults),
            commands,
            events,
            frame_hook: config.frame_hook,
            tun_bufs: vec![vec![0; TUN_OFFSET + tun_mtu]; batch],
            tun_lens: vec![0; batch],
            vnet_bufs: Vec::new(),
            vnet_lens: Vec::new(),
            gro: Gro::new(GroConfig::default()),
            link_bufs: vec![vec![0; MAX_FRAME]; batch],
            link_spans: vec![(0, 0); batch],
            ready: Vec::with_capacity(batch),
            link_first: false,
            tun_dropped_out: 0,
            tun_dropped_in: 0,
            tun_super_segments_in: 0,
            dropped_no_tun: 0,
            link_dropped_in: 0,
            wakeups: 0,
            announce: false,
        };
        runner.prepare_tun_bufs();
        runner
    }

    fn stats(&self) -> DriverStats {
        DriverStats {
            tap: self.tap.stats(),
            tun_attached: self.tun.is_some(),
            link_dropped_out: self.link.dropped_out(),
            link_dropped_in: self.link_dropped_in,
            link_queued: self.link.queued() as u64,
            tun_dropped_out: self.tun_dropped_out,
            tun_dropped_in: self.tun_dropped_in,
            tun_super_segments_in: self.tun_super_segments_in,
            tun_super_segments_out: self.gro.stats().super_segments,
            dropped_no_tun: self.dropped_no_tun,
            link_reconnects: self.link.reconnects(),
            events_dropped: self.events.dropped(),
            wakeups: self.wakeups,
            link: self.link.url().to_owned(),
            lease: self.tap.lease().cloned(),
            link_faults: self.link.fault_stats(),
        }
    }

    /// Runs until stopped or a fatal error; [`DriverEvent::Stopped`] is the last event,
    /// queued before whoever asked for the stop hears that it is done.
    pub(crate) async fn run(mut self) {
        let (result, done) = self.run_loop().await;
        let error = result.err();
        if let Some(e) = &error {
            tracing::error!("{e}");
        }
        self.commands.close();
        self.events.close(DriverEvent::Stopped { error });
        if let Some(done) = done {
            let _ = done.send(Ok(()));
        }
    }

    async fn run_loop(&mut self) -> Ended {
        let far_future = tokio::time::Instant::now() + Duration::from_secs(86400 * 365);
        loop {
            if let Err(e) = self.flush_outputs().await {
                return (Err(e), None);
            }
            let deadline = self.tap.poll_timeout();
            let sleep_until = deadline.map_or(far_future, |d| self.clock.tokio_deadline(d));
            #[cfg(any(target_os = "linux", target_os = "android"))]
            if let Sleep::Boot(timer) = &mut self.sleep {
                if let Err(e) = timer.arm(deadline.map(|d| self.clock.boottime_of(d))) {
                    tracing::warn!("CLOCK_BOOTTIME timer: {e}; sleeping on tokio's clock");
                    self.sleep = Sleep::Tokio;
                }
            }
            let wake = {
                // A TCP link that cannot keep up pauses the TUN (its own queue holds or
                // drops the excess); the link itself and everything else go on.
                let tun = self.tun.as_ref().filter(|_| !self.link.congested());
                let (tun_bufs, tun_lens, offset) = match tun {
                    Some(t) if t.has_vnet_hdr() => (&mut self.vnet_bufs, &mut self.vnet_lens, 0),
                    _ => (&mut self.tun_bufs, &mut self.tun_lens, TUN_OFFSET),
                };
                let mut tun_read = pin!(async move {
                    match tun {
                        Some(t) => t.read_batch(tun_bufs, offset, tun_lens).await,
                        None => std::future::pending().await,
                    }
                });
                let mut link_recv = pin!(self
                    .link
                    .recv_batch(&mut self.link_bufs, &mut self.link_spans));
                // The TUN and the link take turns: an app flooding the TUN must not
                // starve the link (ARP, DHCP), nor a flooding link the TUN.
                let link_first = self.link_first;
                let data = std::future::poll_fn(|cx| {
                    for link in [link_first, !link_first] {
                        if link {
                            if let Poll::Ready(r) = link_recv.as_mut().poll(cx) {
                                return Poll::Ready(Wake::Link(r));
                            }
                        } else if let Poll::Ready(r) = tun_read.as_mut().poll(cx) {
                            return Poll::Ready(Wake::Tun(r));
                        }
                    }
                    Poll::Pending
                });
                let sleep = &mut self.sleep;
                let timer = async move {
                    match sleep {
                        #[cfg(any(target_os = "linux", target_os = "android"))]
                        Sleep::Boot(timer) => {
                            if let Err(e) = timer.expired().await {
                                tracing::warn!(
                                    "CLOCK_BOOTTIME timer: {e}; sleeping on tokio's clock"
                                );
                                *sleep = Sleep::Tokio;
                            }
                        }
                        Sleep::Tokio => tokio::time::sleep_until(sleep_until).await,
                    }
                };
                tokio::select! {
                    biased;
                    c = self.commands.recv() => Wake::Command(c),
                    wake = data => wake,
                    () = timer, if deadline.is_some() => Wake::Timer,
                }
            };
            self.wakeups += 1;
            let now = self.clock.now();
            match wake {
                Wake::Command(None) => return (self.stop(true).await, None),
                Wake::Command(Some(command)) => {
                    if let Some((release, done)) = self.command(now, command) {
                        return (self.stop(release).await, Some(done));
                    }
                }
                Wake::Timer => {}
                Wake::Link(Err(e)) => return (Err(self.link.error(e)), None),
                Wake::Link(Ok(n)) => {
                    self.link_first = false;
                    self.handle_link_frames(now, n);
                }
                Wake::Tun(Err(e)) => {
                    tracing::warn!("TUN read: {e}; detaching the TUN");
                    self.tun = None;
                    self.events.push(DriverEvent::TunFailed(Arc::new(e)));
                }
                Wake::Tun(Ok(n)) => {
                    self.link_first = true;
                    let result = if self.tun.as_ref().is_some_and(PacketFd::has_vnet_hdr) {
                        self.handle_vnet_reads(now, n).await
                    } else {
                        self.handle_tun_packets(now, n).await
                    };
                    if let Err(e) = result {
                        return (Err(e), None);
                    }
                }
            }
            // Whatever woke the loop, timers that are due run now: under a steady load
            // the sleep branch may never be the one selected, and after a suspend the
            // sleep (on a clock that stood still) is late.
            if self.tap.poll_timeout().is_some_and(|t| t <= now) {
                self.tap.handle_timeout(now);
            }
            self.report_link_status();
            if self.announce && self.link.is_open() {
                self.announce = false;
                self.tap.network_changed(now);
            }
        }
    }

    /// Carries out a command; a stop is handed back to the loop, which ends.
    fn command(&mut self, now: Instant, command: Command) -> Option<(bool, StopDone)> {
        match command {
            Command::Stats(reply) => {
                let _ = reply.send(Ok(self.stats()));
            }
            Command::NetworkChanged(reply) => {
                tracing::info!("network changed: reopening link {}", self.link.url());
                self.link.network_changed();
                self.announce = true;
                let _ = reply.send(Ok(()));
            }
            Command::NextTimer(reply) => {
                let next = self.tap.next_timer().map(|t| NextTimer {
                    boottime: self.clock.boottime_of(t.at),
                    reason: t.reason,
                });
                let _ = reply.send(Ok(next));
            }
            Command::Poke(reply) => {
                if self.tap.poll_timeout().is_some_and(|t| t <= now) {
                    self.tap.handle_timeout(now);
                }
                let _ = reply.send(Ok(()));
            }
            Command::AttachTun {
                fd,
                vnet_hdr,
                reply,
            } => {
                let result = super::tun_fd(fd, vnet_hdr)
                    .map(|tun| self.tun.replace(tun).map(PacketFd::into_inner));
                self.prepare_tun_bufs();
                let _ = reply.send(result);
            }
            Command::DetachTun(reply) => {
                let _ = reply.send(Ok(self.tun.take().map(PacketFd::into_inner)));
            }
            Command::Stop { release, done } => return Some((release, done)),
        }
        None
    }

    fn handle_link_frames(&mut self, now: Instant, n: usize) {
        let vnet = self.tun.as_ref().is_some_and(PacketFd::has_vnet_hdr);
        for i in 0..n {
            let (start, end) = self.link_spans[i];
            if start == end {
                self.link_dropped_in += 1;
                continue;
            }
            let frame = &self.link_bufs[i][start..end];
            if let Some(hook) = &mut self.frame_hook {
                hook(Direction::FromLink, frame);
            }
            let Ingress::Deliver(range) = self.tap.handle_link_frame(now, frame) else {
                continue;
            };
            let (at, end) = (start + range.start, start + range.end);
            match &self.tun {
                Some(_) if vnet => self.deliver_vnet(i, at, end),
                Some(tun) => count_write(
                    tun.write(&self.link_bufs[i][at..end]),
                    &mut self.tun_dropped_out,
                ),
                None => self.dropped_no_tun += 1,
            }
        }
        if vnet {
            self.flush_vnet();
        }
    }

    /// Forwards the link's status changes (a link that closes may still have reported
    /// what it carried before; a failed write also takes it down).
    fn report_link_status(&mut self) {
        for status in self.link.take_status() {
            match &status {
                LinkStatus::Up => {
                    tracing::info!("link {} up", self.link.url());
                    // The path may have changed while the link was down (a TCP link
                    // that timed out after a roam): announce as after a link flap.
                    self.announce = true;
                }
                LinkStatus::Down { error, .. } => tracing::warn!("{error}"),
            }
            self.events.push(DriverEvent::Link(status));
        }
    }

    async fn handle_tun_packets(&mut self, now: Instant, n: usize) -> Result<(), DriverError> {
        self.ready.clear();
        for i in 0..n {
            self.egress(now, i, self.tun_lens[i]);
        }
        self.send_ready().await
    }

    /// Hands the packet in `tun_bufs[slot]` to the Tap and, if it makes a frame of it,
    /// queues the frame for [`Runner::send_ready`].
    fn egress(&mut self, now: Instant, slot: usize, len: usize) {
        let end = TUN_OFFSET + len;
        let buf = &mut self.tun_bufs[slot][..end];
        if self.tap.handle_tun_packet(now, &mut buf[LINK_HEADROOM..]) == Egress::Send {
            if let Some(hook) = &mut self.frame_hook {
                hook(Direction::ToLink, &buf[LINK_HEADROOM..]);
            }
            self.ready.push((slot, end));
        }
    }

    /// Sends the frames [`Runner::egress`] queued, after what the Tap queued meanwhile.
    async fn send_ready(&mut self) -> Result<(), DriverError> {
        // Frames the Tap queued meanwhile (ARP, flushed neighbour queues) go first.
        self.flush_outputs().await?;
        let sent = self
            .link
            .send_batch(&mut self.tun_bufs, &self.ready, LINK_HEADROOM)
            .await;
        sent.map_err(|e| self.link.error(e))?;
        self.link.flush();
        self.ready.clear();
        Ok(())
    }

    /// Carries out every pending transmit and forwards every pending event.
    async fn flush_outputs(&mut self) -> Result<(), DriverError> {
        let mut sent = false;
        while let Some(transmit) = self.tap.poll_transmit() {
            match transmit {
                Transmit::Link(mut frame) => {
                    if let Some(hook) = &mut self.frame_hook {
                        hook(Direction::ToLink, &frame);
                    }
                    let result = self.link.send(&mut frame, 0).await;
                    result.map_err(|e| self.link.error(e))?;
                    sent = true;
                }
                Transmit::Tun(packet) => match &self.tun {
                    Some(tun) => count_write(tun.write(&packet), &mut self.tun_dropped_out),
                    None => self.dropped_no_tun += 1,
                },
            }
        }
        if sent {
            self.link.flush();
        }
        while let Some(event) = self.tap.poll_event() {
            self.events.push(DriverEvent::Tap(event));
        }
        Ok(())
    }

    /// The orderly end: release the lease, send what is pending, for at most
    /// [`STOP_DEADLINE`]: a link that cannot take it must not keep the driver alive.
    async fn stop(&mut self, release: bool) -> Result<(), DriverError> {
        if release {
            // DHCPRELEASE goes out through the transmit queue.
            self.tap.release(self.clock.now());
        }
        let send = async {
            self.flush_outputs().await?;
            self.link.drain().await;
            Ok(())
        };
        match tokio::time::timeout(STOP_DEADLINE, send).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    "link {}: what was pending at stop was not sent within {STOP_DEADLINE:?}",
                    self.link.url()
                );
                Ok(())
            }
        }
    }
}

/// Counts a TUN write that failed: a full device queue drops the packet, as a NIC would.
fn count_write(result: io::Result<()>, dropped: &mut u64) {
    if let Err(e) = result {
        *dropped += 1;
        tracing::debug!("TUN write: {e}");
    }
}
