//! The async driver (feature `tokio`): runs a [`Tap`] between an optional TUN and a
//! link on a tokio runtime the embedder owns.
//!
//! The loop reads TUN packets and link frames in batches, drains
//! [`Tap::poll_transmit`], and sleeps exactly until [`Tap::poll_timeout`]: while idle
//! nothing wakes it but the next protocol timer. It never waits for a peer: control
//! commands come first, the TUN and the link take turns, timers run after every
//! wake-up that finds them due, and a TCP link whose peer falls behind pauses TUN reads
//! and drops (and counts) the frames it cannot queue instead of blocking the loop. The TUN is an owned fd (a Linux
//! `/dev/net/tun` fd from [`open_tun`] or an Android `VpnService` fd) that may be
//! attached after the lease and swapped later.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tapemu::driver::{Driver, DriverConfig, DriverEvent};
//! let link = "vxlan://198.51.100.1:4789?vni=42".parse()?;
//! let (handle, mut events) = Driver::start(DriverConfig::default(), link, None).await?;
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}");
//!     if matches!(event, DriverEvent::Stopped { .. }) { break; }
//! }
//! handle.stop().await;
//! # Ok(()) }
//! ```

mod clock;
pub mod link;
mod sys;

use std::future::Future;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use self::clock::Clock;
pub use self::link::{channel, ChannelPeer, LengthPrefix, LinkError, LinkSpec, LinkStatus};
use self::link::{Link, LINK_HEADROOM, MAX_FRAME};
pub use self::sys::PacketFd;
#[cfg(target_os = "linux")]
pub use self::sys::{open_tun_device, DeviceKind};
use crate::{Config, Egress, Event, Ingress, Lease, Stats, Tap, Transmit, HEADROOM};

/// Called with the raw fd of every socket a link opens, before it connects: on
/// Android, `VpnService.protect(fd)`, so the link's own traffic bypasses the VPN.
/// An error aborts opening the socket.
pub type SocketHook = Arc<dyn Fn(RawFd) -> io::Result<()> + Send + Sync>;

/// Called with every frame crossing the link, in both directions (a pcap writer).
pub type FrameHook = Box<dyn FnMut(Direction, &[u8]) + Send>;

/// Which way a frame crossed the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received from the link.
    FromLink,
    /// Sent to the link.
    ToLink,
}

/// How to run the driver.
pub struct DriverConfig {
    /// The emulated host.
    pub tap: Config,
    /// Most packets read from the TUN, or frames from the link, per wake-up.
    pub batch: usize,
    /// See [`SocketHook`].
    pub socket_hook: Option<SocketHook>,
    /// See [`FrameHook`].
    pub frame_hook: Option<FrameHook>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            tap: Config::default(),
            batch: 32,
            socket_hook: None,
            frame_hook: None,
        }
    }
}

impl std::fmt::Debug for DriverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverConfig")
            .field("tap", &self.tap)
            .field("batch", &self.batch)
            .field("socket_hook", &self.socket_hook.is_some())
            .field("frame_hook", &self.frame_hook.is_some())
            .finish()
    }
}

/// What the driver reports, in order, on the receiver [`Driver::start`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// Events are rare (leases, link changes): matching on them by value beats boxing.
#[allow(clippy::large_enum_variant)]
pub enum DriverEvent {
    /// An event of the emulated host (lease acquired, renewed, lost, conflicts, …).
    Tap(Event),
    /// The link went up or down.
    Link(LinkStatus),
    /// The TUN failed and was detached; attach a new one.
    TunFailed(String),
    /// The driver ended: after [`DriverHandle::stop`] (`error: None`) or on a fatal
    /// error. The last event.
    Stopped {
        /// Why it stopped, if it was not asked to.
        error: Option<String>,
    },
}

/// Counters of the driver and its [`Tap`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverStats {
    /// The emulated host's counters.
    pub tap: Stats,
    /// Whether a TUN is attached.
    pub tun_attached: bool,
    /// Frames the link could not take (down, buffer full, a TCP peer not reading) and
    /// dropped.
    pub link_dropped_out: u64,
    /// Frames from the link dropped before the emulated host: empty, too large, or
    /// (VXLAN) from another source or VNI.
    pub link_dropped_in: u64,
    /// Packets the TUN could not take and dropped.
    pub tun_dropped_out: u64,
    /// Link frames or TUN packets that arrived while no TUN was attached.
    pub dropped_no_tun: u64,
    /// Times a connection-oriented link reconnected.
    pub link_reconnects: u64,
    /// Times the loop woke up.
    pub wakeups: u64,
    /// The link's URL.
    pub link: String,
    /// The DHCP lease in force, if any.
    pub lease: Option<Lease>,
}

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The link could not be opened.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The TUN fd could not be used.
    #[error("TUN: {0}")]
    Tun(io::Error),
    /// The driver has stopped.
    #[error("the driver has stopped")]
    Stopped,
}

enum Command {
    AttachTun(
        OwnedFd,
        oneshot::Sender<Result<Option<OwnedFd>, DriverError>>,
    ),
    DetachTun(oneshot::Sender<Option<OwnedFd>>),
    Stats(oneshot::Sender<DriverStats>),
    Stop {
        release: bool,
        done: oneshot::Sender<()>,
    },
}

/// Controls a running driver. Cloneable; when every handle is dropped the driver
/// stops as if [`DriverHandle::stop`] had been called.
#[derive(Debug, Clone)]
pub struct DriverHandle {
    commands: mpsc::UnboundedSender<Command>,
}

/// Entry points of the driver.
#[derive(Debug)]
pub struct Driver;

impl Driver {
    /// Opens the link and spawns the driver on the current tokio runtime. Fails with a
    /// [`LinkError`] naming the URL when the link cannot be opened.
    pub async fn start(
        config: DriverConfig,
        link: LinkSpec,
        tun: Option<OwnedFd>,
    ) -> Result<(DriverHandle, mpsc::UnboundedReceiver<DriverEvent>), DriverError> {
        let tun = tun
            .map(PacketFd::new)
            .transpose()
            .map_err(DriverError::Tun)?;
        let link = Link::open(link, config.socket_hook.clone()).await?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let runner = Runner::new(config, link, tun, command_rx, events_tx);
        tokio::spawn(runner.run());
        Ok((DriverHandle { commands }, events))
    }

    /// Like [`Driver::start`] from outside the runtime (e.g. a JNI thread): spawns on
    /// `runtime` and returns at once. A link that fails to open ends the driver with
    /// [`DriverEvent::Stopped`] carrying the error.
    pub fn spawn(
        runtime: &tokio::runtime::Handle,
        config: DriverConfig,
        link: LinkSpec,
        tun: Option<OwnedFd>,
    ) -> (DriverHandle, mpsc::UnboundedReceiver<DriverEvent>) {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        runtime.spawn(async move {
            let opened = async {
                let tun = tun
                    .map(PacketFd::new)
                    .transpose()
                    .map_err(DriverError::Tun)?;
                let link = Link::open(link, config.socket_hook.clone()).await?;
                Ok::<_, DriverError>((link, tun))
            }
            .await;
            match opened {
                Ok((link, tun)) => {
                    Runner::new(config, link, tun, command_rx, events_tx)
                        .run()
                        .await
                }
                Err(e) => {
                    let _ = events_tx.send(DriverEvent::Stopped {
                        error: Some(e.to_string()),
                    });
                }
            }
        });
        (DriverHandle { commands }, events)
    }
}

impl DriverHandle {
    async fn request<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).ok()?;
        rx.await.ok()
    }

    /// Attaches a TUN fd (made non-blocking here); returns the one it replaces.
    pub async fn attach_tun(&self, tun: OwnedFd) -> Result<Option<OwnedFd>, DriverError> {
        self.request(|tx| Command::AttachTun(tun, tx))
            .await
            .unwrap_or(Err(DriverError::Stopped))
    }

    /// Detaches the TUN and returns its fd; the emulated host stays on the link
    /// (keeps its lease, answers ARP) without one.
    pub async fn detach_tun(&self) -> Result<Option<OwnedFd>, DriverError> {
        self.request(Command::DetachTun)
            .await
            .ok_or(DriverError::Stopped)
    }

    /// The counters.
    pub async fn stats(&self) -> Result<DriverStats, DriverError> {
        self.request(Command::Stats)
            .await
            .ok_or(DriverError::Stopped)
    }

    /// Stops the driver in order: releases the lease (DHCPRELEASE), sends what is
    /// pending, then ends. Returns once it has ended, within about
    /// [`STOP_DEADLINE`] even if the link cannot take what is pending.
    pub async fn stop(&self) {
        self.shutdown(true).await;
    }

    /// Stops the driver, releasing the lease first only if `release`; without it the
    /// server keeps the lease until it expires (to be asked for again later with
    /// [`crate::DhcpConfig::remembered_address`]). Returns once the driver has ended.
    pub async fn shutdown(&self, release: bool) {
        let _ = self.request(|done| Command::Stop { release, done }).await;
    }

    /// True once the driver has ended.
    pub fn is_stopped(&self) -> bool {
        self.commands.is_closed()
    }
}

struct Runner {
    tap: Tap,
    /// Keeps counting while the device is suspended (`CLOCK_BOOTTIME`).
    clock: Clock,
    tun: Option<PacketFd>,
    link: Link,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<DriverEvent>,
    frame_hook: Option<FrameHook>,
    tun_bufs: Vec<Vec<u8>>,
    tun_lens: Vec<usize>,
    link_bufs: Vec<Vec<u8>>,
    link_spans: Vec<(usize, usize)>,
    /// TUN buffers holding a frame for the link: (index, end).
    ready: Vec<(usize, usize)>,
    /// Whose turn it is when both the link and the TUN are ready.
    link_first: bool,
    tun_dropped_out: u64,
    dropped_no_tun: u64,
    link_dropped_in: u64,
    wakeups: u64,
}

enum Wake {
    Command(Option<Command>),
    Link(io::Result<usize>),
    Tun(io::Result<usize>),
    Timer,
}

/// Offset of the IP packet in a TUN read buffer: link headroom, then Ethernet headroom.
const TUN_OFFSET: usize = LINK_HEADROOM + HEADROOM;

/// Longest [`DriverHandle::stop`] spends sending what is pending (the DHCPRELEASE)
/// before the driver ends anyway.
pub const STOP_DEADLINE: Duration = Duration::from_secs(1);

impl Runner {
    fn new(
        config: DriverConfig,
        link: Link,
        tun: Option<PacketFd>,
        commands: mpsc::UnboundedReceiver<Command>,
        events: mpsc::UnboundedSender<DriverEvent>,
    ) -> Runner {
        let batch = config.batch.max(1);
        let clock = Clock::new();
        // Zeroed allocations: pages are touched only as packets fill them.
        let tun_mtu = usize::from(config.tap.mtu).max(1500);
        Runner {
            tap: Tap::new(config.tap, clock.now()),
            clock,
            tun,
            link,
            commands,
            events,
            frame_hook: config.frame_hook,
            tun_bufs: vec![vec![0; TUN_OFFSET + tun_mtu]; batch],
            tun_lens: vec![0; batch],
            link_bufs: vec![vec![0; MAX_FRAME]; batch],
            link_spans: vec![(0, 0); batch],
            ready: Vec::with_capacity(batch),
            link_first: false,
            tun_dropped_out: 0,
            dropped_no_tun: 0,
            link_dropped_in: 0,
            wakeups: 0,
        }
    }

    fn stats(&self) -> DriverStats {
        DriverStats {
            tap: self.tap.stats(),
            tun_attached: self.tun.is_some(),
            link_dropped_out: self.link.dropped_out,
            link_dropped_in: self.link_dropped_in,
            tun_dropped_out: self.tun_dropped_out,
            dropped_no_tun: self.dropped_no_tun,
            link_reconnects: self.link.reconnects,
            wakeups: self.wakeups,
            link: self.link.url().to_owned(),
            lease: self.tap.lease().cloned(),
        }
    }

    async fn run(mut self) {
        let error = self.run_loop().await.err();
        if let Some(e) = &error {
            tracing::error!("{e}");
        }
        let _ = self.events.send(DriverEvent::Stopped { error });
    }

    async fn run_loop(&mut self) -> Result<(), String> {
        let far_future = tokio::time::Instant::now() + Duration::from_secs(86400 * 365);
        loop {
            self.flush_outputs().await?;
            let deadline = self.tap.poll_timeout();
            let sleep_until = deadline.map_or(far_future, |d| self.clock.tokio_deadline(d));
            // A TCP link that cannot keep up pauses the TUN (its own queue holds or drops
            // the excess); the link itself and everything else go on.
            let wake = {
                // A TCP link that cannot keep up pauses the TUN (its own queue holds or
                // drops the excess); the link itself and everything else go on.
                let tun = self.tun.as_ref().filter(|_| !self.link.congested());
                let (tun_bufs, tun_lens) = (&mut self.tun_bufs, &mut self.tun_lens);
                let mut tun_read = pin!(async move {
                    match tun {
                        Some(t) => t.read_batch(tun_bufs, TUN_OFFSET, tun_lens).await,
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
                tokio::select! {
                    biased;
                    c = self.commands.recv() => Wake::Command(c),
                    wake = data => wake,
                    () = tokio::time::sleep_until(sleep_until), if deadline.is_some() => Wake::Timer,
                }
            };
            self.wakeups += 1;
            let now = self.clock.now();
            match wake {
                Wake::Command(None) => return self.stop(true).await,
                Wake::Command(Some(command)) => match command {
                    Command::Stop { release, done } => {
                        let result = self.stop(release).await;
                        let _ = done.send(());
                        return result;
                    }
                    Command::Stats(reply) => {
                        let _ = reply.send(self.stats());
                    }
                    Command::AttachTun(fd, reply) => match PacketFd::new(fd) {
                        Ok(tun) => {
                            let old = self.tun.replace(tun).map(PacketFd::into_inner);
                            let _ = reply.send(Ok(old));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(DriverError::Tun(e)));
                        }
                    },
                    Command::DetachTun(reply) => {
                        let _ = reply.send(self.tun.take().map(PacketFd::into_inner));
                    }
                },
                Wake::Timer => {}
                Wake::Link(Err(e)) => return Err(format!("link {}: {e}", self.link.url())),
                Wake::Link(Ok(n)) => {
                    self.link_first = false;
                    self.handle_link_frames(now, n);
                }
                Wake::Tun(Err(e)) => {
                    let error = format!("TUN read: {e}");
                    tracing::warn!("{error}; detaching the TUN");
                    self.tun = None;
                    let _ = self.events.send(DriverEvent::TunFailed(error));
                }
                Wake::Tun(Ok(n)) => {
                    self.link_first = true;
                    self.handle_tun_packets(now, n).await?;
                }
            }
            // Whatever woke the loop, timers that are due run now: under a steady load
            // the sleep branch may never be the one selected.
            if self.tap.poll_timeout().is_some_and(|t| t <= now) {
                self.tap.handle_timeout(now);
            }
            self.report_link_status();
        }
    }

    fn handle_link_frames(&mut self, now: Instant, n: usize) {
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
            if let Ingress::Deliver(range) = self.tap.handle_link_frame(now, frame) {
                let packet = &frame[range];
                match &self.tun {
                    Some(tun) => {
                        if let Err(e) = tun.write(packet) {
                            self.tun_dropped_out += 1;
                            tracing::debug!("TUN write: {e}");
                        }
                    }
                    None => self.dropped_no_tun += 1,
                }
            }
        }
    }

    /// Forwards the link's status changes (a link that closes may still have reported
    /// what it carried before; a failed write also takes it down).
    fn report_link_status(&mut self) {
        for status in self.link.take_status() {
            match &status {
                LinkStatus::Up => tracing::info!("link {} up", self.link.url()),
                LinkStatus::Down { error, .. } => tracing::warn!("{error}"),
            }
            let _ = self.events.send(DriverEvent::Link(status));
        }
    }

    async fn handle_tun_packets(&mut self, now: Instant, n: usize) -> Result<(), String> {
        self.ready.clear();
        for i in 0..n {
            let end = TUN_OFFSET + self.tun_lens[i];
            let buf = &mut self.tun_bufs[i][..end];
            if self.tap.handle_tun_packet(now, &mut buf[LINK_HEADROOM..]) == Egress::Send {
                if let Some(hook) = &mut self.frame_hook {
                    hook(Direction::ToLink, &buf[LINK_HEADROOM..]);
                }
                self.ready.push((i, end));
            }
        }
        // Frames the Tap queued meanwhile (ARP, flushed neighbour queues) go first.
        self.flush_outputs().await?;
        self.link
            .send_batch(&mut self.tun_bufs, &self.ready, LINK_HEADROOM)
            .await
            .map_err(|e| format!("link {}: {e}", self.link.url()))?;
        self.link.flush();
        Ok(())
    }

    /// Carries out every pending transmit and forwards every pending event.
    async fn flush_outputs(&mut self) -> Result<(), String> {
        let mut sent = false;
        while let Some(transmit) = self.tap.poll_transmit() {
            match transmit {
                Transmit::Link(mut frame) => {
                    if let Some(hook) = &mut self.frame_hook {
                        hook(Direction::ToLink, &frame);
                    }
                    self.link
                        .send(&mut frame, 0)
                        .await
                        .map_err(|e| format!("link {}: {e}", self.link.url()))?;
                    sent = true;
                }
                Transmit::Tun(packet) => match &self.tun {
                    Some(tun) => {
                        if tun.write(&packet).is_err() {
                            self.tun_dropped_out += 1;
                        }
                    }
                    None => self.dropped_no_tun += 1,
                },
            }
        }
        if sent {
            self.link.flush();
        }
        while let Some(event) = self.tap.poll_event() {
            let _ = self.events.send(DriverEvent::Tap(event));
        }
        Ok(())
    }

    /// The orderly end: release the lease, send what is pending, for at most
    /// [`STOP_DEADLINE`]: a link that cannot take it must not keep the driver alive.
    async fn stop(&mut self, release: bool) -> Result<(), String> {
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

/// Creates (or opens) the Linux TUN device `name` (`IFF_TUN | IFF_NO_PI`), returning
/// the non-blocking fd and the device's name.
#[cfg(target_os = "linux")]
pub fn open_tun(name: &str) -> io::Result<(OwnedFd, String)> {
    open_tun_device(name, DeviceKind::Tun)
}

#[cfg(test)]
mod tests;
