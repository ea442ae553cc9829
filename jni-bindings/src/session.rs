//! One emulator: its configuration, its Java callbacks and, once started, the thread
//! that runs the driver and calls the listener.
//!
//! Each started session owns a thread `tapemu-N` running a current-thread tokio runtime
//! with the driver task and a session task. The session task forwards driver events and
//! callback-mode frames to Java and carries out commands from Java threads (attach or
//! detach the TUN, stats, stop). Java threads wait for a command's answer, except on the
//! session thread itself (a listener calling back in), where waiting would deadlock: there
//! commands are queued and their errors logged.
//!
//! Sessions live in a registry keyed by the `long` handle Java holds, so a stale or
//! forged handle finds nothing and becomes an `IllegalStateException`, never a dangling
//! pointer.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use tapemu::driver::{
    channel, Driver, DriverConfig, DriverEvent, DriverEvents, DriverHandle, DriverStats, LinkSpec,
};
use tapemu::Stats;
use tokio::sync::mpsc;

use crate::callbacks::{EventKind, JavaCallbacks};
use crate::config::{Addressing, EmulatorConfig, LinkSpec as ConfigLink};
use crate::error::{Error, Result};
use crate::lease;
use tapemu::{Event, Ipv4Event};

/// Frames buffered each way between the app's link and the driver in callback mode.
const CHANNEL_CAPACITY: usize = 1024;
/// Longest a Java thread waits for the session thread to answer a command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

static SESSIONS: Mutex<Option<HashMap<i64, Arc<Session>>>> = Mutex::new(None);
static NEXT_ID: AtomicI64 = AtomicI64::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Registers a new session and returns its handle.
pub fn register(config: EmulatorConfig, callbacks: JavaCallbacks) -> i64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let session = Arc::new(Session {
        id,
        config,
        callbacks: Arc::new(callbacks),
        state: Mutex::new(State::Created),
        callback_frames_dropped: Arc::new(AtomicU64::new(0)),
        last_stats: Mutex::new(None),
    });
    lock(&SESSIONS)
        .get_or_insert_with(HashMap::new)
        .insert(id, session);
    id
}

/// The session behind a handle.
pub fn get(id: i64) -> Result<Arc<Session>> {
    lock(&SESSIONS)
        .as_ref()
        .and_then(|m| m.get(&id).cloned())
        .ok_or_else(|| Error::IllegalState("TapEmulator is closed".into()))
}

/// Removes a session from the registry and stops it. Unknown handles are ignored
/// (close is idempotent).
pub fn close(id: i64) {
    let session = lock(&SESSIONS).as_mut().and_then(|m| m.remove(&id));
    if let Some(session) = session {
        session.stop();
    }
}

/// Sessions not yet closed.
pub fn live_count() -> usize {
    lock(&SESSIONS).as_ref().map_or(0, HashMap::len)
}

enum Command {
    AttachTun(OwnedFd, Option<SyncSender<Result<()>>>),
    DetachTun(Option<SyncSender<()>>),
    Stats(SyncSender<DriverStats>),
    Stop,
}

struct Running {
    commands: mpsc::UnboundedSender<Command>,
    to_driver: Option<mpsc::Sender<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
}

enum State {
    Created,
    /// `start()` is opening the link.
    Starting,
    Running(Running),
    Closed,
}

/// One emulator.
pub struct Session {
    id: i64,
    config: EmulatorConfig,
    callbacks: Arc<JavaCallbacks>,
    state: Mutex<State>,
    callback_frames_dropped: Arc<AtomicU64>,
    last_stats: Mutex<Option<Vec<i64>>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Names of the values [`Session::stats`] returns, in order.
pub fn stat_names() -> Vec<String> {
    let mut names: Vec<String> = Stats::default()
        .fields()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.extend(
        [
            "drops_total",
            "tun_attached",
            "link_dropped_out",
            "link_dropped_in",
            "tun_dropped_out",
            "dropped_no_tun",
            "link_reconnects",
            "wakeups",
            "callback_frames_dropped",
        ]
        .map(String::from),
    );
    names
}

fn stat_values(s: &DriverStats, callback_dropped: u64) -> Vec<i64> {
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let mut values: Vec<i64> = s.tap.fields().into_iter().map(|(_, v)| as_i64(v)).collect();
    values.extend_from_slice(&[
        as_i64(s.tap.drops_total()),
        i64::from(s.tun_attached),
        as_i64(s.link_dropped_out),
        as_i64(s.link_dropped_in),
        as_i64(s.tun_dropped_out),
        as_i64(s.dropped_no_tun),
        as_i64(s.link_reconnects),
        as_i64(s.wakeups),
        as_i64(callback_dropped),
    ]);
    values
}

impl Session {
    fn on_session_thread(running: &Running) -> bool {
        std::thread::current().id() == running.thread_id
    }

    /// Starts the session thread and the driver; returns once the link is open.
    ///
    /// The state lock is not held while the link opens, so a `protect` callback may call
    /// back into the emulator (it then sees it as starting).
    pub fn start(&self) -> Result<()> {
        {
            let mut state = lock(&self.state);
            match *state {
                State::Created => *state = State::Starting,
                State::Starting | State::Running(_) => {
                    return Err(Error::IllegalState("TapEmulator already started".into()))
                }
                State::Closed => return Err(Error::IllegalState("TapEmulator is closed".into())),
            }
        }
        let result = self.spawn();
        let mut state = lock(&self.state);
        match (result, &*state) {
            (Ok(running), State::Starting) => {
                *state = State::Running(running);
                Ok(())
            }
            (Ok(running), _) => {
                // Closed while starting (possibly by a listener reacting to the first
                // events): the start worked, so finish the close it missed.
                drop(state);
                Self::stop_running(self.id, running);
                Ok(())
            }
            (Err(e), State::Starting) => {
                *state = State::Created;
                Err(e)
            }
            (Err(e), _) => Err(e),
        }
    }

    fn spawn(&self) -> Result<Running> {
        let (link, peer) = match &self.config.link {
            ConfigLink::Callback => {
                let (spec, peer) = channel(CHANNEL_CAPACITY);
                (spec, Some(peer))
            }
            ConfigLink::Url(url) => (
                url.url
                    .parse::<LinkSpec>()
                    .map_err(|e| Error::IllegalArgument(e.to_string()))?,
                None,
            ),
        };
        let to_driver = peer.as_ref().map(|p| p.to_driver.clone());
        let protect_callbacks = self.callbacks.clone();
        let driver_config = DriverConfig {
            tap: self.config.core_config(),
            socket_hook: Some(Arc::new(move |fd: RawFd| {
                if protect_callbacks.protect(fd) {
                    Ok(())
                } else {
                    Err(std::io::Error::other(format!(
                        "protect({fd}) refused by the app"
                    )))
                }
            })),
            ..DriverConfig::default()
        };
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (started_tx, started_rx) = sync_channel::<Result<()>>(1);
        let task = SessionTask {
            callbacks: self.callbacks.clone(),
            static_lease: match &self.config.addressing {
                Addressing::Static(iface) => Some(lease::encode_static(iface, self.config.mtu)),
                Addressing::Dhcp => None,
            },
            link_mtu: self.config.mtu,
        };
        let thread = std::thread::Builder::new()
            .name(format!("tapemu-{}", self.id))
            .spawn(move || task.run(driver_config, link, peer, command_rx, started_tx))
            .map_err(|e| Error::Io(format!("cannot spawn the emulator thread: {e}")))?;
        let thread_id = thread.thread().id();
        match started_rx.recv() {
            Ok(Ok(())) => Ok(Running {
                commands,
                to_driver,
                thread: Some(thread),
                thread_id,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(Error::Io("the emulator thread ended while starting".into()))
            }
        }
    }

    fn running<T>(&self, f: impl FnOnce(&Running) -> Result<T>) -> Result<T> {
        match &*lock(&self.state) {
            State::Running(r) => f(r),
            State::Created => Err(Error::IllegalState("TapEmulator not started".into())),
            State::Starting => Err(Error::IllegalState("TapEmulator is starting".into())),
            State::Closed => Err(Error::IllegalState("TapEmulator is closed".into())),
        }
    }

    /// Hands the TUN fd to the driver.
    ///
    /// Ownership: a negative or closed `fd`, or an emulator not running
    /// (`IllegalStateException`), leaves `fd` to the caller. Otherwise the emulator owns
    /// it from this call on, whatever the outcome: it is attached, or closed on failure
    /// (an `IOException`); if the emulator does not answer within [`COMMAND_TIMEOUT`]
    /// the `IOException` says so and the emulator still attaches or closes it later.
    pub fn attach_tun(&self, fd: RawFd) -> Result<()> {
        if fd < 0 {
            return Err(Error::Io(format!("invalid TUN fd {fd}")));
        }
        // SAFETY: F_GETFD only queries the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::Io(format!("TUN fd {fd} is not open: {e}")));
        }
        let (sender, wait) = self.running(|r| {
            let wait = !Self::on_session_thread(r);
            Ok((r.commands.clone(), wait))
        })?;
        // SAFETY: the caller hands over ownership of this open fd (as after detachFd()).
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // A session thread that has ended gives the command back: the fd returns to the
        // caller unclosed, as when the emulator is not running.
        let stopped = |e: mpsc::error::SendError<Command>| {
            if let Command::AttachTun(owned, _) = e.0 {
                let _ = owned.into_raw_fd();
            }
            Error::IllegalState("TapEmulator has stopped".into())
        };
        if !wait {
            return sender
                .send(Command::AttachTun(owned, None))
                .map_err(stopped);
        }
        let (tx, rx) = sync_channel(1);
        sender
            .send(Command::AttachTun(owned, Some(tx)))
            .map_err(stopped)?;
        match rx.recv_timeout(COMMAND_TIMEOUT) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(Error::Io(format!(
                "TUN fd {fd}: the emulator did not answer within {COMMAND_TIMEOUT:?}; \
                 it owns the fd and attaches or closes it when it gets to it"
            ))),
            // The session thread dropped the command, and the fd with it.
            Err(RecvTimeoutError::Disconnected) => Err(Error::Io(format!(
                "TUN fd {fd}: the emulator stopped before attaching it; the fd is closed"
            ))),
        }
    }

    /// Detaches and closes the TUN.
    pub fn detach_tun(&self) -> Result<()> {
        let (sender, wait) =
            self.running(|r| Ok((r.commands.clone(), !Self::on_session_thread(r))))?;
        if !wait {
            return sender
                .send(Command::DetachTun(None))
                .map_err(|_| Error::IllegalState("TapEmulator has stopped".into()));
        }
        let (tx, rx) = sync_channel(1);
        sender
            .send(Command::DetachTun(Some(tx)))
            .map_err(|_| Error::IllegalState("TapEmulator has stopped".into()))?;
        rx.recv_timeout(COMMAND_TIMEOUT)
            .map_err(|_| Error::IllegalState("TapEmulator has stopped".into()))
    }

    /// Callback mode: a frame from the app's link. A full queue or an empty frame drops
    /// it (counted as `callback_frames_dropped`).
    pub fn send_frame(&self, frame: Vec<u8>) -> Result<()> {
        let sender = self.running(|r| {
            r.to_driver.clone().ok_or_else(|| {
                Error::IllegalState("sendFrame needs callback mode (no link URL)".into())
            })
        })?;
        if frame.is_empty() {
            self.callback_frames_dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        match sender.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.callback_frames_dropped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(Error::IllegalState("TapEmulator has stopped".into()))
            }
        }
    }

    /// The counters, in [`stat_names`] order. Before start they are all zero; on the
    /// session thread, or once stopped, they are the last ones taken.
    pub fn stats(&self) -> Vec<i64> {
        let dropped = self.callback_frames_dropped.load(Ordering::Relaxed);
        let fresh = self
            .running(|r| Ok((r.commands.clone(), !Self::on_session_thread(r))))
            .ok()
            .filter(|(_, wait)| *wait)
            .and_then(|(sender, _)| {
                let (tx, rx) = sync_channel(1);
                sender.send(Command::Stats(tx)).ok()?;
                rx.recv_timeout(COMMAND_TIMEOUT).ok()
            })
            .map(|s| stat_values(&s, dropped));
        let mut last = lock(&self.last_stats);
        if let Some(values) = fresh {
            *last = Some(values.clone());
            return values;
        }
        last.clone().unwrap_or_else(|| {
            let mut zeros = vec![0; stat_names().len()];
            if let Some(v) = zeros.last_mut() {
                *v = i64::try_from(dropped).unwrap_or(i64::MAX);
            }
            zeros
        })
    }

    /// Stops the driver (releasing the lease) and, unless called on the session thread,
    /// waits for the thread to end.
    fn stop(&self) {
        let _ = self.stats();
        let old = std::mem::replace(&mut *lock(&self.state), State::Closed);
        if let State::Running(r) = old {
            Self::stop_running(self.id, r);
        }
    }

    /// Asks the session thread to stop and, unless this is that thread, waits for it.
    fn stop_running(id: i64, mut r: Running) {
        let _ = r.commands.send(Command::Stop);
        let on_thread = Self::on_session_thread(&r);
        if let Some(thread) = r.thread.take() {
            if !on_thread && thread.join().is_err() {
                tracing::error!("tapemu-{id} thread panicked");
            }
        }
    }
}

/// What runs on the session thread.
struct SessionTask {
    callbacks: Arc<JavaCallbacks>,
    static_lease: Option<String>,
    link_mtu: u16,
}

impl SessionTask {
    fn run(
        self,
        config: DriverConfig,
        link: LinkSpec,
        peer: Option<tapemu::driver::ChannelPeer>,
        commands: mpsc::UnboundedReceiver<Command>,
        started: SyncSender<Result<()>>,
    ) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = started.send(Err(Error::Io(format!("cannot build the runtime: {e}"))));
                return;
            }
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let this = &self;
            runtime.block_on(async move {
                let (handle, events) = match Driver::start(config, link, None).await {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = started.send(Err(Error::Io(e.to_string())));
                        return;
                    }
                };
                let _ = started.send(Ok(()));
                this.serve(handle, events, peer, commands).await;
            })
        }));
        if let Err(p) = outcome {
            let msg = crate::error::panic_message(p.as_ref());
            tracing::error!("tapemu session thread panicked: {msg}");
            self.callbacks.event(
                EventKind::Stopped,
                Some(&format!("internal error: {msg}")),
                None,
            );
        }
    }

    async fn serve(
        &self,
        handle: DriverHandle,
        mut events: DriverEvents,
        peer: Option<tapemu::driver::ChannelPeer>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let (mut from_driver, _to_driver) = match peer {
            Some(p) => (Some(p.from_driver), Some(p.to_driver)),
            None => (None, None),
        };
        loop {
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    None | Some(Command::Stop) => {
                        handle.stop().await;
                        // Deliver what the orderly stop produced, ending with Stopped.
                        while let Some(event) = events.recv().await {
                            if self.deliver(event) {
                                break;
                            }
                        }
                        return;
                    }
                    Some(command) => self.command(&handle, command).await,
                },
                event = events.recv() => match event {
                    None => return,
                    Some(event) => {
                        if self.deliver(event) {
                            return;
                        }
                    }
                },
                frame = async {
                    match from_driver.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match frame {
                    Some(frame) => self.callbacks.frame(&frame),
                    None => from_driver = None,
                },
            }
        }
    }

    async fn command(&self, handle: &DriverHandle, command: Command) {
        match command {
            Command::AttachTun(fd, reply) => {
                let result = handle
                    .attach_tun(fd)
                    .await
                    .map(drop)
                    .map_err(|e| Error::Io(format!("{e}; the TUN fd is closed")));
                match reply {
                    Some(reply) => {
                        let _ = reply.send(result);
                    }
                    None => {
                        if let Err(e) = result {
                            tracing::warn!("attachTun: {e}");
                        }
                    }
                }
            }
            Command::DetachTun(reply) => {
                if let Err(e) = handle.detach_tun().await {
                    tracing::warn!("detachTun: {e}");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
            }
            Command::Stats(reply) => {
                if let Ok(stats) = handle.stats().await {
                    let _ = reply.send(stats);
                }
            }
            Command::Stop => {}
        }
    }

    /// Forwards one driver event to Java; true when it was the last (`Stopped`).
    fn deliver(&self, event: DriverEvent) -> bool {
        match event {
            DriverEvent::Tap(event) => self.tap_event(event),
            DriverEvent::Link(status) => tracing::info!("link: {status:?}"),
            DriverEvent::TunFailed(e) => tracing::warn!("TUN failed and was detached: {e}"),
            DriverEvent::Stopped { error } => {
                self.callbacks.event(
                    EventKind::Stopped,
                    error.map(|e| e.to_string()).as_deref(),
                    None,
                );
                return true;
            }
            other => tracing::debug!("driver event {other:?}"),
        }
        false
    }

    fn tap_event(&self, event: Event) {
        let cb = &self.callbacks;
        match event {
            Event::Ipv4(Ipv4Event::Up(_)) => {
                if let Some(lease) = &self.static_lease {
                    cb.event(EventKind::LeaseAcquired, Some(lease), None);
                }
            }
            Event::Ipv4(Ipv4Event::AddressConflict { address, mac }) => cb.event(
                EventKind::AddressConflict,
                Some(&address.to_string()),
                Some(&mac.to_string()),
            ),
            other => lease::forward(cb, other, self.link_mtu),
        }
    }
}
