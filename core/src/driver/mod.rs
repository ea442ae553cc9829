//! The async driver (feature `tokio`): runs a [`Tap`](crate::Tap) between an optional
//! TUN and a link on a tokio runtime the embedder owns.
//!
//! The loop (`runner.rs`) reads TUN packets and link frames in batches, drains the
//! `Tap`'s transmits, and sleeps exactly until its next timer: while idle nothing wakes
//! it but the next protocol timer. It never waits for a peer nor for the embedder:
//! control commands come first, the TUN and the link take turns, timers run after every
//! wake-up that finds them due, a TCP link whose peer falls behind pauses TUN reads and
//! drops (and counts) the frames it cannot queue, and events go to a bounded queue
//! ([`DriverEvents`]) that drops (and counts) only what an embedder can do without. The
//! TUN is an owned fd (a Linux `/dev/net/tun` fd from [`open_tun`] or an Android
//! `VpnService` fd) that may be attached after the lease and swapped later.
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
//!
//! # Threads
//!
//! [`DriverHandle`] is `Clone + Send + Sync` and may be used from any thread:
//!
//! - the `async` methods from tasks on any runtime;
//! - the `send_*` methods from anywhere, the driver's own runtime thread included (a
//!   listener called from a task there): they queue the command and return at once
//!   with a [`Reply`] that may be awaited, waited for off the runtime, or dropped;
//! - the `blocking_*` methods from threads that run no tokio runtime (a Java thread):
//!   on a runtime thread, where waiting could deadlock the driver itself, they fail
//!   with [`DriverError::OnRuntimeThread`] instead of blocking.

mod clock;
mod events;
pub mod link;
mod runner;
mod stats;
mod sys;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

#[cfg(any(test, feature = "test-util"))]
pub use self::clock::SimulatedClock;
pub use self::clock::{DriverClock, SystemClock};
pub use self::events::{DriverEvents, EVENT_CAPACITY};
pub use self::link::{
    batch_channel, channel, BatchClosed, BatchPeer, BatchSender, ChannelPeer, FdSpec, FrameBatch,
    LengthPrefix, LinkSpec, LinkStatus, ParseLinkError, Remote,
};
pub use self::link::{FaultCounters, FaultDirection, FaultStats, LinkFaults, ParseFaultsError};
use self::link::{Link, LinkOptions};
use self::runner::Runner;
pub use self::stats::DriverStats;
pub use self::sys::{frame_socket_pair, PacketFd};
#[cfg(target_os = "linux")]
pub use self::sys::{open_tun_device, open_tun_offload, DeviceKind, TunOffload};
use crate::{Config, Event};

/// Called with the raw fd of every socket a link opens, before it connects: on
/// Android, `VpnService.protect(fd)`, so the link's own traffic bypasses the VPN.
/// An error aborts opening the socket.
pub type SocketHook = Arc<dyn Fn(RawFd) -> io::Result<()> + Send + Sync>;

/// Resolves a link URL's host name and port to addresses, on every (re)open of the link;
/// called on a blocking thread (never the driver's loop), within
/// [`DriverConfig::connect_timeout`]. On Android: `Network.getAllByName` on the
/// underlying network, so the VPN's own DNS is not asked to find the VPN's server.
pub type Resolver = Arc<dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// Default of [`DriverConfig::connect_timeout`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`DriverConfig::tcp_user_timeout`].
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Most droppable events queued for a consumer that is behind (see
    /// [`DriverEvents`]); lease events are never dropped.
    pub event_capacity: usize,
    /// See [`SocketHook`].
    pub socket_hook: Option<SocketHook>,
    /// See [`FrameHook`].
    pub frame_hook: Option<FrameHook>,
    /// See [`Resolver`]; the system resolver when `None`.
    pub resolver: Option<Resolver>,
    /// Longest a host name resolution may take, and (TCP) a connection.
    pub connect_timeout: Duration,
    /// How long a TCP link's sent data may stay unacknowledged before the connection is
    /// given up and made again (`TCP_USER_TIMEOUT`); a link URL's `?user_timeout_ms=`
    /// overrides it.
    pub tcp_user_timeout: Duration,
    /// The clocks the driver reads: [`SystemClock`] but in tests.
    pub clock: Arc<dyn DriverClock>,
    /// Faults to inject on the link, whatever its kind (testing lossy links).
    pub link_faults: Option<LinkFaults>,
    /// The TUN given to [`Driver::start`] was opened with `IFF_VNET_HDR`
    /// ([`open_tun_offload`]): it reads TCP/UDP super-segments, which the driver splits,
    /// and takes coalesced TCP segments. `false` (the default) for a plain TUN, such as
    /// an Android `VpnService` fd. A TUN attached later says so itself
    /// ([`DriverHandle::attach_tun_vnet_hdr`]).
    pub tun_vnet_hdr: bool,
    /// Datagram sends fail with this errno while it is not 0.
    #[cfg(test)]
    pub(crate) send_fault: Option<Arc<std::sync::atomic::AtomicI32>>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            tap: Config::default(),
            batch: 32,
            event_capacity: EVENT_CAPACITY,
            socket_hook: None,
            frame_hook: None,
            resolver: None,
            connect_timeout: CONNECT_TIMEOUT,
            tcp_user_timeout: TCP_USER_TIMEOUT,
            clock: Arc::new(SystemClock),
            link_faults: None,
            tun_vnet_hdr: false,
            #[cfg(test)]
            send_fault: None,
        }
    }
}

impl std::fmt::Debug for DriverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverConfig")
            .field("tap", &self.tap)
            .field("batch", &self.batch)
            .field("event_capacity", &self.event_capacity)
            .field("socket_hook", &self.socket_hook.is_some())
            .field("frame_hook", &self.frame_hook.is_some())
            .field("resolver", &self.resolver.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .field("tcp_user_timeout", &self.tcp_user_timeout)
            .field("clock", &self.clock)
            .field("link_faults", &self.link_faults)
            .field("tun_vnet_hdr", &self.tun_vnet_hdr)
            .finish()
    }
}

/// What the driver reports, in order, through [`DriverEvents`].
#[derive(Debug, Clone)]
#[non_exhaustive]
// Events are rare (leases, link changes): matching on them by value beats boxing.
#[allow(clippy::large_enum_variant)]
pub enum DriverEvent {
    /// An event of the emulated host (lease acquired, renewed, lost, conflicts, …).
    Tap(Event),
    /// The link went up or down.
    Link(LinkStatus),
    /// The TUN failed and was detached; attach a new one.
    TunFailed(Arc<io::Error>),
    /// The driver ended: after [`DriverHandle::stop`] (`error: None`) or on a fatal
    /// error. The last event.
    Stopped {
        /// Why it stopped, if it was not asked to.
        error: Option<DriverError>,
    },
}

/// The driver's next protocol deadline ([`DriverHandle::next_timer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextTimer {
    /// When it is due, on `CLOCK_BOOTTIME` (the driver's [`DriverClock::boottime`]):
    /// the scale of Android's `SystemClock.elapsedRealtimeNanos()`, for an
    /// `AlarmManager` alarm on `ELAPSED_REALTIME_WAKEUP`.
    pub boottime: Duration,
    /// Which timer, e.g. `"dhcp renew (T1)"`.
    pub reason: &'static str,
}

impl NextTimer {
    /// [`NextTimer::boottime`] in nanoseconds.
    pub fn boottime_nanos(&self) -> u64 {
        u64::try_from(self.boottime.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What went wrong: the driver's errors, typed for embedders to match on.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The link could not be opened (for TCP: the first connection failed).
    #[error("link {url}: {source}")]
    LinkOpen {
        /// The link's URL.
        url: String,
        /// The cause.
        #[source]
        source: Arc<io::Error>,
    },
    /// An open link failed: fatal for a datagram link, retried for TCP.
    #[error("link {url}: {source}")]
    Link {
        /// The link's URL.
        url: String,
        /// The cause.
        #[source]
        source: Arc<io::Error>,
    },
    /// The TUN fd could not be used.
    #[error("TUN: {0}")]
    Tun(#[source] Arc<io::Error>),
    /// The driver has stopped: the command was not carried out.
    #[error("the driver has stopped")]
    Stopped,
    /// The driver's command queue is full (a burst of commands sent without waiting);
    /// the command was not sent.
    #[error("the driver's command queue is full")]
    Busy,
    /// A `blocking_*` call on a thread that runs a tokio runtime, where waiting could
    /// keep the driver itself from answering; use the `send_*` or `async` variant.
    #[error("blocking call on a tokio runtime thread")]
    OnRuntimeThread,
}

/// A request to the runner; each carries where its answer goes.
pub(crate) enum Command {
    AttachTun {
        fd: OwnedFd,
        vnet_hdr: bool,
        reply: oneshot::Sender<Result<Option<OwnedFd>, DriverError>>,
    },
    DetachTun(oneshot::Sender<Result<Option<OwnedFd>, DriverError>>),
    Stats(oneshot::Sender<Result<DriverStats, DriverError>>),
    NetworkChanged(oneshot::Sender<Result<(), DriverError>>),
    NextTimer(oneshot::Sender<Result<Option<NextTimer>, DriverError>>),
    Poke(oneshot::Sender<Result<(), DriverError>>),
    Stop {
        release: bool,
        done: oneshot::Sender<Result<(), DriverError>>,
    },
}

/// The command attaching `fd`.
fn attach(
    fd: OwnedFd,
    vnet_hdr: bool,
    reply: oneshot::Sender<Result<Option<OwnedFd>, DriverError>>,
) -> Command {
    Command::AttachTun {
        fd,
        vnet_hdr,
        reply,
    }
}

/// Commands sent without waiting that the driver has not taken yet.
const COMMAND_CAPACITY: usize = 64;

/// Longest [`DriverHandle::stop`] spends sending what is pending (the DHCPRELEASE)
/// before the driver ends anyway.
pub const STOP_DEADLINE: Duration = Duration::from_secs(1);

/// Entry points of the driver.
#[derive(Debug)]
pub struct Driver;

impl Driver {
    /// Opens the link and spawns the driver on the current tokio runtime. Fails with
    /// [`DriverError::LinkOpen`] (naming the URL) when the link cannot be opened.
    pub async fn start(
        config: DriverConfig,
        link: LinkSpec,
        tun: Option<OwnedFd>,
    ) -> Result<(DriverHandle, DriverEvents), DriverError> {
        let tun = tun.map(|fd| tun_fd(fd, config.tun_vnet_hdr)).transpose()?;
        let link = Link::open(link, LinkOptions::new(&config)).await?;
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (events_tx, events) = events::queue(config.event_capacity);
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
    ) -> (DriverHandle, DriverEvents) {
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (events_tx, events) = events::queue(config.event_capacity);
        let options = LinkOptions::new(&config);
        runtime.spawn(async move {
            let opened = async {
                let vnet_hdr = config.tun_vnet_hdr;
                let tun = tun.map(|fd| tun_fd(fd, vnet_hdr)).transpose()?;
                let link = Link::open(link, options).await?;
                Ok::<_, DriverError>((link, tun))
            }
            .await;
            match opened {
                Ok((link, tun)) => {
                    Runner::new(config, link, tun, command_rx, events_tx)
                        .run()
                        .await
                }
                Err(e) => events_tx.close(DriverEvent::Stopped { error: Some(e) }),
            }
        });
        (DriverHandle { commands }, events)
    }
}

/// `fd` as the driver reads it: with virtio-net headers if `vnet_hdr` says so or, on
/// Linux, if it is a TUN opened with `IFF_VNET_HDR`, whoever opened it.
fn tun_fd(fd: OwnedFd, vnet_hdr: bool) -> Result<PacketFd, DriverError> {
    #[cfg(target_os = "linux")]
    let vnet_hdr = vnet_hdr || sys::has_vnet_hdr(std::os::fd::AsFd::as_fd(&fd));
    let tun = if vnet_hdr {
        PacketFd::with_vnet_hdr(fd)
    } else {
        PacketFd::new(fd)
    };
    tun.map_err(|e| DriverError::Tun(Arc::new(e)))
}

/// The answer to a command sent with a `send_*` method of [`DriverHandle`]: await it (a
/// future), wait for it off the runtime ([`Reply::blocking_wait`]), or drop it (the
/// command is carried out all the same).
#[derive(Debug)]
pub struct Reply<T> {
    rx: oneshot::Receiver<Result<T, DriverError>>,
}

impl<T> Future for Reply<T> {
    type Output = Result<T, DriverError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(DriverError::Stopped)))
    }
}

impl<T> Reply<T> {
    /// Waits for the answer, blocking this thread; [`DriverError::OnRuntimeThread`] on a
    /// thread that runs a tokio runtime.
    pub fn blocking_wait(self) -> Result<T, DriverError> {
        off_runtime()?;
        self.rx.blocking_recv().unwrap_or(Err(DriverError::Stopped))
    }
}

/// [`DriverError::OnRuntimeThread`] on a thread where blocking could deadlock.
fn off_runtime() -> Result<(), DriverError> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Err(DriverError::OnRuntimeThread),
        Err(_) => Ok(()),
    }
}

/// Controls a running driver from any thread (see [Threads](self#threads)). Cloneable;
/// when every handle is dropped the driver stops as if [`DriverHandle::stop`] had been
/// called.
#[derive(Debug, Clone)]
pub struct DriverHandle {
    commands: mpsc::Sender<Command>,
}

impl DriverHandle {
    /// Queues a command without waiting: [`DriverError::Busy`] when the queue is full,
    /// [`DriverError::Stopped`] when the driver is gone.
    fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, DriverError>>) -> Command,
    ) -> Result<Reply<T>, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.commands.try_send(make(tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => DriverError::Busy,
            mpsc::error::TrySendError::Closed(_) => DriverError::Stopped,
        })?;
        Ok(Reply { rx })
    }

    /// Queues a command, waiting for room, and waits for its answer.
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, DriverError>>) -> Command,
    ) -> Result<T, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| DriverError::Stopped)?;
        Reply { rx }.await
    }

    /// Queues a command, blocking this thread for room, and waits for its answer.
    fn blocking_request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, DriverError>>) -> Command,
    ) -> Result<T, DriverError> {
        off_runtime()?;
        let (tx, rx) = oneshot::channel();
        self.commands
            .blocking_send(make(tx))
            .map_err(|_| DriverError::Stopped)?;
        Reply { rx }.blocking_wait()
    }

    /// Attaches a TUN fd (made non-blocking here); returns the one it replaces. The fd
    /// is closed if the driver has stopped. On Linux a TUN opened with `IFF_VNET_HDR`
    /// ([`open_tun_offload`]) is recognised (`TUNGETIFF`) and read with its headers.
    pub async fn attach_tun(&self, tun: OwnedFd) -> Result<Option<OwnedFd>, DriverError> {
        self.request(|reply| attach(tun, false, reply)).await
    }

    /// [`DriverHandle::attach_tun`] for a TUN opened with `IFF_VNET_HDR`
    /// ([`open_tun_offload`]).
    pub async fn attach_tun_vnet_hdr(&self, tun: OwnedFd) -> Result<Option<OwnedFd>, DriverError> {
        self.request(|reply| attach(tun, true, reply)).await
    }

    /// Detaches the TUN and returns its fd; the emulated host stays on the link
    /// (keeps its lease, answers ARP) without one.
    pub async fn detach_tun(&self) -> Result<Option<OwnedFd>, DriverError> {
        self.request(Command::DetachTun).await
    }

    /// The counters.
    pub async fn stats(&self) -> Result<DriverStats, DriverError> {
        self.request(Command::Stats).await
    }

    /// Stops the driver in order: releases the lease (DHCPRELEASE), sends what is
    /// pending, then ends. Returns once it has ended, within about
    /// [`STOP_DEADLINE`] even if the link cannot take what is pending.
    pub async fn stop(&self) {
        self.shutdown(true).await;
    }

    /// Stops the driver without releasing the lease: the server keeps it until it
    /// expires, so an app started again gets the same address (see
    /// [`DriverHandle::shutdown`]).
    pub async fn stop_keep_lease(&self) {
        self.shutdown(false).await;
    }

    /// The network under the link changed (Wi-Fi to cellular, a new address): every
    /// link socket is opened again (the socket hook called again, host names resolved
    /// again), a TCP link reconnecting at once; once the link is open again the
    /// emulated host re-announces itself (gratuitous ARP, unsolicited NA, an
    /// INIT-REBOOT DHCPREQUEST, a router solicitation). The lease is kept.
    pub async fn network_changed(&self) -> Result<(), DriverError> {
        self.request(Command::NetworkChanged).await
    }

    /// The next protocol deadline, to set an alarm that wakes the device for it (then
    /// call [`DriverHandle::poke`]); `None` when no timer runs.
    pub async fn next_timer(&self) -> Result<Option<NextTimer>, DriverError> {
        self.request(Command::NextTimer).await
    }

    /// Runs the timers that are due now (after an alarm woke the device).
    pub async fn poke(&self) -> Result<(), DriverError> {
        self.request(Command::Poke).await
    }

    /// Stops the driver, releasing the lease first only if `release`; without it the
    /// server keeps the lease until it expires (to be asked for again later with
    /// [`crate::DhcpConfig::remembered_address`]). Returns once the driver has ended.
    pub async fn shutdown(&self, release: bool) {
        let _ = self.request(|done| Command::Stop { release, done }).await;
    }

    /// [`DriverHandle::attach_tun`] without waiting; safe on any thread.
    pub fn send_attach_tun(&self, tun: OwnedFd) -> Result<Reply<Option<OwnedFd>>, DriverError> {
        self.send(|reply| attach(tun, false, reply))
    }

    /// [`DriverHandle::detach_tun`] without waiting; safe on any thread.
    pub fn send_detach_tun(&self) -> Result<Reply<Option<OwnedFd>>, DriverError> {
        self.send(Command::DetachTun)
    }

    /// [`DriverHandle::stats`] without waiting; safe on any thread.
    pub fn send_stats(&self) -> Result<Reply<DriverStats>, DriverError> {
        self.send(Command::Stats)
    }

    /// [`DriverHandle::shutdown`] without waiting; safe on any thread. The reply comes
    /// once the driver has ended.
    pub fn send_shutdown(&self, release: bool) -> Result<Reply<()>, DriverError> {
        self.send(|done| Command::Stop { release, done })
    }

    /// [`DriverHandle::network_changed`] without waiting; safe on any thread.
    pub fn send_network_changed(&self) -> Result<Reply<()>, DriverError> {
        self.send(Command::NetworkChanged)
    }

    /// [`DriverHandle::next_timer`] without waiting; safe on any thread.
    pub fn send_next_timer(&self) -> Result<Reply<Option<NextTimer>>, DriverError> {
        self.send(Command::NextTimer)
    }

    /// [`DriverHandle::poke`] without waiting; safe on any thread.
    pub fn send_poke(&self) -> Result<Reply<()>, DriverError> {
        self.send(Command::Poke)
    }

    /// [`DriverHandle::attach_tun`] for threads without a runtime.
    pub fn blocking_attach_tun(&self, tun: OwnedFd) -> Result<Option<OwnedFd>, DriverError> {
        self.blocking_request(|reply| attach(tun, false, reply))
    }

    /// [`DriverHandle::detach_tun`] for threads without a runtime.
    pub fn blocking_detach_tun(&self) -> Result<Option<OwnedFd>, DriverError> {
        self.blocking_request(Command::DetachTun)
    }

    /// [`DriverHandle::stats`] for threads without a runtime.
    pub fn blocking_stats(&self) -> Result<DriverStats, DriverError> {
        self.blocking_request(Command::Stats)
    }

    /// [`DriverHandle::shutdown`] for threads without a runtime: returns once the
    /// driver has ended ([`DriverError::Stopped`] if it already had).
    pub fn blocking_shutdown(&self, release: bool) -> Result<(), DriverError> {
        self.blocking_request(|done| Command::Stop { release, done })
    }

    /// [`DriverHandle::network_changed`] for threads without a runtime.
    pub fn blocking_network_changed(&self) -> Result<(), DriverError> {
        self.blocking_request(Command::NetworkChanged)
    }

    /// [`DriverHandle::next_timer`] for threads without a runtime.
    pub fn blocking_next_timer(&self) -> Result<Option<NextTimer>, DriverError> {
        self.blocking_request(Command::NextTimer)
    }

    /// [`DriverHandle::poke`] for threads without a runtime.
    pub fn blocking_poke(&self) -> Result<(), DriverError> {
        self.blocking_request(Command::Poke)
    }

    /// True once the driver has ended.
    pub fn is_stopped(&self) -> bool {
        self.commands.is_closed()
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
