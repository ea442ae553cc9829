//! One emulator: its configuration, its Java callbacks and, once started, the thread
//! that runs the driver and calls the listener.
//!
//! Each started session owns a thread `tapemu-N` running a current-thread tokio runtime:
//! it opens the link (within [`SessionOptions::link_timeout`]; `start()` does not wait
//! for it, a failure reaches Java as the `stopped` event), then runs the driver task
//! and a forwarding task, which hands driver events (as JSON, see [`crate::events`])
//! and callback-mode frames (in batches, see [`crate::callbacks`]) to Java. Commands from Java (attach or
//! detach the TUN, stats, stop) call the [`DriverHandle`] directly: the call is spawned
//! onto that runtime and a Java thread waits for its answer, except on the session
//! thread itself (a listener calling back in), where waiting would deadlock: there the
//! command runs once the listener returns and its errors are logged.
//!
//! Sessions live in a registry keyed by the `long` handle Java holds, so a stale or
//! forged handle finds nothing and becomes an `IllegalStateException`, never a dangling
//! pointer.

use std::collections::HashMap;
use std::future::Future;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use tapemu::driver::{
    batch_channel, BatchPeer, BatchSender, Driver, DriverConfig, DriverEvent, DriverHandle,
    FrameBatch, LinkSpec,
};
use tokio::runtime::Handle as RuntimeHandle;
use tokio::sync::oneshot;

use crate::callbacks::JavaCallbacks;
use crate::config::{EmulatorConfig, LinkSpec as ConfigLink};
use crate::error::{Error, Result};
use crate::events;

mod commands;
mod frames;
pub use commands::stat_names;
use commands::stat_values;
pub use frames::take_fd;

/// What the driver reports, as the session thread receives it.
type Events = tapemu::driver::DriverEvents;

/// Frames buffered each way between the app's link and the driver in callback mode.
const CHANNEL_CAPACITY: usize = 1024;
/// Most batches from the driver the session thread hands Java per wake-up (batched mode:
/// as few upcalls as fit the buffer).
const OUT_BATCHES: usize = 16;
/// Longest a Java thread waits for the driver to answer a command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

static SESSIONS: Mutex<Option<HashMap<i64, Arc<Session>>>> = Mutex::new(None);
static NEXT_ID: AtomicI64 = AtomicI64::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a session runs, beside the emulated host's own configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// Longest the link may take to open (name lookup and first TCP connect).
    pub link_timeout: Duration,
    /// Whether a built-in link's sockets go through the listener's `protect`.
    pub protect_sockets: bool,
    /// Whether callback-mode frames reach Java in batches (`onNativeFrames`) rather
    /// than one upcall each (`onNativeFrame`).
    pub batch_frames: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            link_timeout: Duration::from_secs(10),
            protect_sockets: true,
            batch_frames: true,
        }
    }
}

/// Registers a new session and returns its handle. `pair` is the socket pair of a
/// socket-pair link: the driver's end, then the app's.
pub fn register(
    config: EmulatorConfig,
    options: SessionOptions,
    callbacks: JavaCallbacks,
    pair: Option<(OwnedFd, OwnedFd)>,
) -> i64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (ours, peer) = pair.map_or((None, None), |(o, p)| (Some(o), Some(p)));
    let session = Arc::new(Session {
        id,
        config,
        options,
        callbacks: Arc::new(callbacks),
        state: Mutex::new(State::Created),
        link_settled: Condvar::new(),
        callback_frames_dropped: Arc::new(AtomicU64::new(0)),
        callback_frames_refused: AtomicU64::new(0),
        last_stats: Mutex::new(None),
        stored_lease: Mutex::new(None),
        pair_ours: Mutex::new(ours),
        pair_peer: Mutex::new(peer),
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

/// Removes a session from the registry, stops it (releasing the lease first only if
/// `release`) and returns its last counters. Unknown handles are ignored (close is
/// idempotent): `None`.
pub fn close(id: i64, release: bool) -> Option<Vec<i64>> {
    let session = lock(&SESSIONS).as_mut().and_then(|m| m.remove(&id));
    session.map(|session| session.stop(release))
}

/// Sessions not yet closed.
pub fn live_count() -> usize {
    lock(&SESSIONS).as_ref().map_or(0, HashMap::len)
}

/// How a command sent to the driver came out.
enum Answer<T> {
    /// Its result.
    Done(T),
    /// Sent from the session thread: it runs once the listener returns.
    Queued,
    /// No answer within [`COMMAND_TIMEOUT`] (a listener blocking the session thread).
    Late,
    /// The session thread ended without running it.
    Gone,
}

/// Sends commands to a running driver; cloned out of the state lock before waiting, so
/// a listener calling back in meanwhile never waits for that lock.
#[derive(Clone)]
struct Control {
    driver: DriverHandle,
    runtime: RuntimeHandle,
    thread_id: ThreadId,
}

impl Control {
    fn on_session_thread(&self) -> bool {
        std::thread::current().id() == self.thread_id
    }

    /// Runs `command` with the driver on the session's runtime and, from any thread but
    /// the session thread, waits for its result.
    fn command<T, F>(&self, command: impl FnOnce(DriverHandle) -> F) -> Answer<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = sync_channel(1);
        let future = command(self.driver.clone());
        // On a runtime that has shut down the task is dropped unrun: `Gone` below.
        self.runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        if self.on_session_thread() {
            return Answer::Queued;
        }
        match rx.recv_timeout(COMMAND_TIMEOUT) {
            Ok(value) => Answer::Done(value),
            Err(RecvTimeoutError::Timeout) => Answer::Late,
            Err(RecvTimeoutError::Disconnected) => Answer::Gone,
        }
    }
}

/// Where a started session's link is.
enum Link {
    /// The session thread is opening it.
    Opening,
    /// Open: the driver runs.
    Open(Control),
    /// It could not be opened (the listener got `onStopped` with this error).
    Failed(String),
}

/// A started session: its thread and its link.
struct Started {
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
    /// Tells the session thread to give up opening the link.
    cancel: Option<oneshot::Sender<()>>,
    /// Callback mode: frames from the app's link to the driver (usable at once).
    to_driver: Option<BatchSender>,
    link: Link,
}

enum State {
    Created,
    Started(Started),
    Closed,
}

/// One emulator.
pub struct Session {
    id: i64,
    config: EmulatorConfig,
    options: SessionOptions,
    callbacks: Arc<JavaCallbacks>,
    state: Mutex<State>,
    /// Notified when a started session's link opens or fails, or the session closes.
    link_settled: Condvar,
    callback_frames_dropped: Arc<AtomicU64>,
    callback_frames_refused: AtomicU64,
    last_stats: Mutex<Option<Vec<i64>>>,
    /// The lease in force in its stored form (JSON), kept by the session thread.
    stored_lease: Mutex<Option<String>>,
    /// Socket-pair link: the driver's end until `start` hands it to the link.
    pair_ours: Mutex<Option<OwnedFd>>,
    /// Socket-pair link: the app's end until `peerFd()` hands it out; closed with the
    /// session if never taken.
    pair_peer: Mutex<Option<OwnedFd>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts the session thread, which opens the link and runs the driver; returns at
    /// once. Whether the link opened reaches Java through the listener: the first
    /// events, or `onStopped(error)`.
    pub fn start(self: &Arc<Self>) -> Result<()> {
        let mut state = lock(&self.state);
        match *state {
            State::Created => {}
            State::Started(_) => {
                return Err(Error::IllegalState("TapEmulator already started".into()))
            }
            State::Closed => return Err(Error::IllegalState("TapEmulator is closed".into())),
        }
        let (link, peer) = match &self.config.link {
            ConfigLink::Callback => {
                let (spec, peer) = batch_channel(CHANNEL_CAPACITY);
                (spec, Some(peer))
            }
            ConfigLink::SocketPair => {
                let ours = lock(&self.pair_ours)
                    .take()
                    .ok_or_else(|| Error::IllegalState("the socket pair's end is gone".into()))?;
                (LinkSpec::fd(ours), None)
            }
            ConfigLink::Url(url) => (
                url.url
                    .parse::<LinkSpec>()
                    .map_err(|e| Error::IllegalArgument(e.to_string()))?,
                None,
            ),
        };
        let to_driver = peer.as_ref().map(|p| p.to_driver.clone());
        let socket_hook: Option<tapemu::driver::SocketHook> = if self.options.protect_sockets {
            let protect_callbacks = self.callbacks.clone();
            Some(Arc::new(move |fd: RawFd| {
                if protect_callbacks.protect(fd) {
                    Ok(())
                } else {
                    Err(std::io::Error::other(format!(
                        "protect({fd}) refused by the app"
                    )))
                }
            }))
        } else {
            None
        };
        let driver_config = DriverConfig {
            tap: self.config.core_config(),
            socket_hook,
            // A whole window of an app that keeps 64 frames in flight per driver pass:
            // measured 7 % more batched round trips than 32 (BENCHMARKS.md, FrameBench).
            batch: 64,
            ..DriverConfig::default()
        };
        let (cancel, cancelled) = oneshot::channel();
        let thread = SessionThread {
            session: self.clone(),
            is_static: self.config.is_static(),
            link_mtu: self.config.tap.mtu,
        };
        let handle = std::thread::Builder::new()
            .name(format!("tapemu-{}", self.id))
            .spawn(move || thread.run(driver_config, link, peer, cancelled))
            .map_err(|e| Error::IllegalState(format!("cannot spawn the emulator thread: {e}")))?;
        // The thread takes this lock once the link is open: it waits for the state below.
        *state = State::Started(Started {
            thread_id: handle.thread().id(),
            thread: Some(handle),
            cancel: Some(cancel),
            to_driver,
            link: Link::Opening,
        });
        Ok(())
    }

    fn running<T>(&self, f: impl FnOnce(&Started, &Control) -> Result<T>) -> Result<T> {
        match &*lock(&self.state) {
            State::Started(s) => match &s.link {
                Link::Open(control) => f(s, control),
                Link::Opening => Err(Error::IllegalState("TapEmulator is starting".into())),
                Link::Failed(e) => {
                    Err(Error::IllegalState(format!("TapEmulator has stopped: {e}")))
                }
            },
            State::Created => Err(Error::IllegalState("TapEmulator not started".into())),
            State::Closed => Err(Error::IllegalState("TapEmulator is closed".into())),
        }
    }

    /// Waits, at most [`COMMAND_TIMEOUT`], while the link opens; not on the session
    /// thread (a `protect` callback), which is the one opening it.
    fn wait_for_link(&self) {
        let mut state = lock(&self.state);
        let deadline = std::time::Instant::now() + COMMAND_TIMEOUT;
        while let State::Started(s) = &*state {
            let opening = matches!(s.link, Link::Opening);
            let now = std::time::Instant::now();
            if !opening || std::thread::current().id() == s.thread_id || now >= deadline {
                return;
            }
            state = self
                .link_settled
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn control(&self) -> Result<Control> {
        self.running(|_, c| Ok(c.clone()))
    }

    /// Hands the TUN to the driver (`tun`, taken from the caller's `fd` by [`take_fd`]):
    /// it is attached or, on any failure, closed at once. If the emulator does not
    /// answer within [`COMMAND_TIMEOUT`] the `IOException` says so and the emulator
    /// attaches or closes it when it gets to it.
    pub fn attach_tun(&self, tun: OwnedFd, fd: RawFd) -> Result<()> {
        self.wait_for_link();
        let control = self.control()?;
        if control.driver.is_stopped() {
            return Err(Error::IllegalState(
                "TapEmulator has stopped; the TUN fd is closed".into(),
            ));
        }
        let answer = control.command(|driver| async move {
            // The fd it replaces, if any, is closed here.
            let result = driver.attach_tun(tun).await.map(drop);
            if let Err(e) = &result {
                tracing::warn!("attachTun({fd}): {e}; the fd is closed");
            }
            result.map_err(|e| e.to_string())
        });
        match answer {
            Answer::Done(result) => {
                result.map_err(|e| Error::Io(format!("{e}; the TUN fd is closed")))
            }
            Answer::Queued => Ok(()),
            Answer::Late => Err(Error::Io(format!(
                "TUN fd {fd}: the emulator did not answer within {COMMAND_TIMEOUT:?}; \
                 it attaches or closes the fd when it gets to it"
            ))),
            Answer::Gone => Err(Error::Io(format!(
                "TUN fd {fd}: the emulator stopped before attaching it; the fd is closed"
            ))),
        }
    }

    /// Detaches and closes the TUN. While the link opens nothing can be attached: a
    /// no-op.
    pub fn detach_tun(&self) -> Result<()> {
        if let State::Started(Started {
            link: Link::Opening,
            ..
        }) = &*lock(&self.state)
        {
            return Ok(());
        }
        self.unit_command("detachTun", |driver| async move {
            driver.detach_tun().await.map(drop)
        })
    }

    /// The counters, in [`stat_names`] order. Before start they are all zero; on the
    /// session thread, or once stopped, they are the last ones taken.
    pub fn stats(&self) -> Vec<i64> {
        let dropped = self.callback_frames_dropped.load(Ordering::Relaxed);
        let refused = self.callback_frames_refused.load(Ordering::Relaxed);
        let fresh = match self
            .control()
            .map(|c| c.command(|d| async move { d.stats().await }))
        {
            Ok(Answer::Done(Ok(stats))) => Some(stat_values(&stats, refused, dropped)),
            _ => None,
        };
        let mut last = lock(&self.last_stats);
        if let Some(values) = fresh {
            *last = Some(values.clone());
            return values;
        }
        let mut values = last.clone().unwrap_or_else(|| vec![0; stat_names().len()]);
        // These two are counted here, not by the driver: always current.
        let n = values.len();
        if n >= 2 {
            values[n - 2] = i64::try_from(refused).unwrap_or(i64::MAX);
            values[n - 1] = i64::try_from(dropped).unwrap_or(i64::MAX);
        }
        values
    }

    /// Stops the driver (releasing the lease only if `release`) and, unless called on
    /// the session thread, waits for the thread to end. Returns the last counters.
    fn stop(&self, release: bool) -> Vec<i64> {
        let stats = self.stats();
        let old = std::mem::replace(&mut *lock(&self.state), State::Closed);
        self.link_settled.notify_all();
        if let State::Started(started) = old {
            Self::stop_started(self.id, started, release);
        }
        stats
    }

    /// Stops the driver, or the opening of the link, and, unless this is the session
    /// thread, waits for that thread: it ends once it has delivered the last event.
    fn stop_started(id: i64, mut s: Started, release: bool) {
        let on_session_thread = std::thread::current().id() == s.thread_id;
        if let Some(cancel) = s.cancel.take() {
            let _ = cancel.send(());
        }
        if let Link::Open(control) = &s.link {
            if !control.driver.is_stopped() {
                // Waits for the stop (at most about the driver's stop deadline) unless
                // on the session thread; the join below waits for the last event.
                let _ =
                    control.command(move |driver| async move { driver.shutdown(release).await });
            }
        }
        if let Some(thread) = s.thread.take() {
            if !on_session_thread && thread.join().is_err() {
                tracing::error!("tapemu-{id} thread panicked");
            }
        }
    }

    /// The session thread: the link opened. Returns false if the session was closed
    /// meanwhile (the driver must then be stopped).
    fn link_opened(&self, control: Control) -> bool {
        match &mut *lock(&self.state) {
            State::Started(s) => {
                s.link = Link::Open(control);
                self.link_settled.notify_all();
                true
            }
            State::Created | State::Closed => false,
        }
    }

    /// The session thread: the link could not be opened.
    fn link_failed(&self, error: &str) {
        if let State::Started(s) = &mut *lock(&self.state) {
            s.link = Link::Failed(error.to_string());
        }
        self.link_settled.notify_all();
    }
}

/// What runs on the session thread.
struct SessionThread {
    session: Arc<Session>,
    is_static: bool,
    link_mtu: u16,
}

impl SessionThread {
    fn run(
        self,
        config: DriverConfig,
        link: LinkSpec,
        peer: Option<BatchPeer>,
        cancelled: oneshot::Receiver<()>,
    ) {
        let callbacks = self.session.callbacks.clone();
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let error = format!("cannot build the runtime: {e}");
                self.session.link_failed(&error);
                callbacks.event(&events::stopped(Some(&error)));
                return;
            }
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(self.open_and_forward(config, link, peer, cancelled));
        }));
        if let Err(p) = outcome {
            let msg = crate::error::panic_message(p.as_ref());
            tracing::error!("tapemu session thread panicked: {msg}");
            let error = format!("internal error: {msg}");
            callbacks.event(&events::stopped(Some(&error)));
        }
    }

    async fn open_and_forward(
        &self,
        config: DriverConfig,
        link: LinkSpec,
        peer: Option<BatchPeer>,
        cancelled: oneshot::Receiver<()>,
    ) {
        let timeout = self.session.options.link_timeout;
        let url = link.to_string();
        let opened = tokio::select! {
            opened = tokio::time::timeout(timeout, Driver::start(config, link, None)) => opened,
            _ = cancelled => {
                // Closed while the link was opening.
                self.session.callbacks.event(&events::stopped(None));
                return;
            }
        };
        let (driver, events) = match opened {
            Ok(Ok(started)) => started,
            Ok(Err(e)) => return self.fail(&e.to_string()),
            Err(_) => {
                return self.fail(&format!(
                    "link {url}: not open within {} ms (name lookup and connect)",
                    timeout.as_millis()
                ))
            }
        };
        let control = Control {
            driver: driver.clone(),
            runtime: RuntimeHandle::current(),
            thread_id: std::thread::current().id(),
        };
        if !self.session.link_opened(control) {
            // Closed just as the link opened: stop the driver; its last event follows.
            tokio::spawn(async move { driver.stop().await });
        }
        self.forward(events, peer).await;
    }

    fn fail(&self, error: &str) {
        tracing::warn!("tapemu-{}: {error}", self.session.id);
        self.session.link_failed(error);
        self.session.callbacks.event(&events::stopped(Some(error)));
    }

    /// Hands driver events and callback-mode frames to Java until the driver's last
    /// event.
    async fn forward(&self, mut events: Events, mut peer: Option<BatchPeer>) {
        let callbacks = &self.session.callbacks;
        let batched = self.session.options.batch_frames;
        let mut batches: Vec<FrameBatch> = Vec::with_capacity(OUT_BATCHES);
        loop {
            tokio::select! {
                biased;
                event = events.recv() => {
                    let Some(event) = event else { return };
                    let last = matches!(event, DriverEvent::Stopped { .. });
                    if let Some(stored) = events::stored_lease(&event) {
                        *lock(&self.session.stored_lease) = stored;
                    }
                    if let Some(json) = events::to_java(&event, self.is_static, self.link_mtu) {
                        callbacks.event(&json);
                    }
                    if last {
                        return;
                    }
                }
                n = async {
                    match peer.as_mut() {
                        Some(p) => p.from_driver.recv_many(&mut batches, OUT_BATCHES).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let Some(p) = peer.as_ref() else { continue };
                    if n == 0 {
                        peer = None;
                        continue;
                    }
                    if batched {
                        callbacks.frames(batches.iter().flat_map(FrameBatch::iter));
                    } else {
                        for frame in batches.iter().flat_map(FrameBatch::iter) {
                            callbacks.frame(frame);
                        }
                    }
                    p.taken(batches.iter().map(|b| b.frames).sum());
                    for batch in batches.drain(..) {
                        p.recycle(batch);
                    }
                }
            }
        }
    }
}
