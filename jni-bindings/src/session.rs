//! One emulator: its configuration, its Java callbacks and, once started, the thread
//! that runs the driver and calls the listener.
//!
//! Each started session owns a thread `tapemu-N` running a current-thread tokio runtime
//! with the driver task and a forwarding task, which hands driver events (as JSON, see
//! [`crate::events`]) and callback-mode frames to Java. Commands from Java (attach or
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
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use tapemu::driver::{
    channel, ChannelPeer, Driver, DriverConfig, DriverEvent, DriverHandle, DriverStats, LinkSpec,
};
use tapemu::Stats;
use tokio::runtime::Handle as RuntimeHandle;
use tokio::sync::mpsc;

use crate::callbacks::JavaCallbacks;
use crate::config::{EmulatorConfig, LinkSpec as ConfigLink};
use crate::error::{Error, Result};
use crate::events;

/// What the driver reports, as the session thread receives it.
type Events = tapemu::driver::DriverEvents;

/// Frames buffered each way between the app's link and the driver in callback mode.
const CHANNEL_CAPACITY: usize = 1024;
/// Longest a Java thread waits for the driver to answer a command.
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

struct Running {
    control: Control,
    to_driver: Option<mpsc::Sender<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
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
        let (started_tx, started_rx) = sync_channel(1);
        let thread = SessionThread {
            callbacks: self.callbacks.clone(),
            is_static: self.config.is_static(),
            link_mtu: self.config.tap.mtu,
        };
        let thread = std::thread::Builder::new()
            .name(format!("tapemu-{}", self.id))
            .spawn(move || thread.run(driver_config, link, peer, started_tx))
            .map_err(|e| Error::Io(format!("cannot spawn the emulator thread: {e}")))?;
        let thread_id = thread.thread().id();
        match started_rx.recv() {
            Ok(Ok((driver, runtime))) => Ok(Running {
                control: Control {
                    driver,
                    runtime,
                    thread_id,
                },
                to_driver,
                thread: Some(thread),
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

    fn control(&self) -> Result<Control> {
        self.running(|r| Ok(r.control.clone()))
    }

    /// Hands the TUN fd to the driver.
    ///
    /// Ownership: a negative or closed `fd`, an emulator not running or whose driver
    /// has stopped (`IllegalStateException`), leaves `fd` to the caller. Otherwise the
    /// emulator owns it from this call on, whatever the outcome: it is attached, or
    /// closed on failure (an `IOException`); if the emulator does not answer within
    /// [`COMMAND_TIMEOUT`] the `IOException` says so and the emulator still attaches or
    /// closes it later.
    pub fn attach_tun(&self, fd: RawFd) -> Result<()> {
        if fd < 0 {
            return Err(Error::Io(format!("invalid TUN fd {fd}")));
        }
        // SAFETY: F_GETFD only queries the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::Io(format!("TUN fd {fd} is not open: {e}")));
        }
        let control = self.control()?;
        if control.driver.is_stopped() {
            return Err(Error::IllegalState("TapEmulator has stopped".into()));
        }
        // SAFETY: the caller hands over ownership of this open fd (as after detachFd()).
        let tun = unsafe { OwnedFd::from_raw_fd(fd) };
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
                 it owns the fd and attaches or closes it when it gets to it"
            ))),
            Answer::Gone => Err(Error::Io(format!(
                "TUN fd {fd}: the emulator stopped before attaching it; the fd is closed"
            ))),
        }
    }

    /// Detaches and closes the TUN.
    pub fn detach_tun(&self) -> Result<()> {
        let answer = self.control()?.command(|driver| async move {
            let result = driver.detach_tun().await.map(drop);
            if let Err(e) = &result {
                tracing::warn!("detachTun: {e}");
            }
            result.is_ok()
        });
        match answer {
            Answer::Done(true) | Answer::Queued => Ok(()),
            Answer::Done(false) | Answer::Gone => {
                Err(Error::IllegalState("TapEmulator has stopped".into()))
            }
            Answer::Late => Err(Error::IllegalState(format!(
                "TapEmulator did not answer within {COMMAND_TIMEOUT:?}"
            ))),
        }
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
        let fresh = match self
            .control()
            .map(|c| c.command(|d| async move { d.stats().await }))
        {
            Ok(Answer::Done(Ok(stats))) => Some(stat_values(&stats, dropped)),
            _ => None,
        };
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

    /// Stops the driver and, unless this is the session thread, waits for that thread:
    /// it ends once it has delivered the driver's last event.
    fn stop_running(id: i64, mut r: Running) {
        let on_session_thread = r.control.on_session_thread();
        if !r.control.driver.is_stopped() {
            // Waits for the stop (at most about the driver's stop deadline) unless on
            // the session thread; the join below waits for the last event either way.
            let _ = r
                .control
                .command(|driver| async move { driver.stop().await });
        }
        if let Some(thread) = r.thread.take() {
            if !on_session_thread && thread.join().is_err() {
                tracing::error!("tapemu-{id} thread panicked");
            }
        }
    }
}

/// The driver handle and the runtime it runs on, or why it did not start.
type Started = Result<(DriverHandle, RuntimeHandle)>;

/// What runs on the session thread.
struct SessionThread {
    callbacks: Arc<JavaCallbacks>,
    is_static: bool,
    link_mtu: u16,
}

impl SessionThread {
    fn run(
        self,
        config: DriverConfig,
        link: LinkSpec,
        peer: Option<ChannelPeer>,
        started: SyncSender<Started>,
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
                let (driver, events) = match Driver::start(config, link, None).await {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = started.send(Err(Error::Io(e.to_string())));
                        return;
                    }
                };
                let _ = started.send(Ok((driver, RuntimeHandle::current())));
                this.forward(events, peer).await;
            })
        }));
        if let Err(p) = outcome {
            let msg = crate::error::panic_message(p.as_ref());
            tracing::error!("tapemu session thread panicked: {msg}");
            let error = format!("internal error: {msg}");
            self.callbacks.event(&events::stopped(Some(&error)));
        }
    }

    /// Hands driver events and callback-mode frames to Java until the driver's last
    /// event.
    async fn forward(&self, mut events: Events, peer: Option<ChannelPeer>) {
        let (mut from_driver, _to_driver) = match peer {
            Some(p) => (Some(p.from_driver), Some(p.to_driver)),
            None => (None, None),
        };
        loop {
            tokio::select! {
                biased;
                event = events.recv() => {
                    let Some(event) = event else { return };
                    let last = matches!(event, DriverEvent::Stopped { .. });
                    if let Some(json) = events::to_java(&event, self.is_static, self.link_mtu) {
                        self.callbacks.event(&json);
                    }
                    if last {
                        return;
                    }
                }
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
}
