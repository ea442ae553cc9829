//! Logging. Everywhere the crate logs through `tracing`; on Android a minimal
//! subscriber writing to logcat (tag `tapemu`) is installed when the library loads,
//! unless the app installed its own. Elsewhere the embedding process chooses the
//! subscriber (host JVM tests run without one) until Java sets a level with
//! `TapEmulator.setLogLevel`, which installs one writing to stderr. Either way
//! [`set_level`] is the filter: INFO unless set.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU8, Ordering};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata};

/// Android log priorities (`android/log.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Priority {
    /// `ANDROID_LOG_VERBOSE`
    Verbose = 2,
    /// `ANDROID_LOG_DEBUG`
    Debug = 3,
    /// `ANDROID_LOG_INFO`
    Info = 4,
    /// `ANDROID_LOG_WARN`
    Warn = 5,
    /// `ANDROID_LOG_ERROR`
    Error = 6,
}

impl From<&Level> for Priority {
    fn from(level: &Level) -> Self {
        match *level {
            Level::TRACE => Priority::Verbose,
            Level::DEBUG => Priority::Debug,
            Level::INFO => Priority::Info,
            Level::WARN => Priority::Warn,
            Level::ERROR => Priority::Error,
        }
    }
}

/// Formats an event as one line: `target: message key=value ...`.
pub fn format_event(event: &Event<'_>) -> String {
    struct Line(String);
    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.0, "{value:?} ");
            } else {
                let _ = write!(self.0, "{}={value:?} ", field.name());
            }
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "message" {
                let _ = write!(self.0, "{value} ");
            } else {
                let _ = write!(self.0, "{}={value:?} ", field.name());
            }
        }
    }
    let mut line = Line(format!("{}: ", event.metadata().target()));
    event.record(&mut line);
    line.0.trim_end().to_string()
}

/// The most verbose level logged by the subscribers installed here: 0 off, 1 error,
/// 2 warn, 3 info, 4 debug, 5 trace.
static LEVEL: AtomicU8 = AtomicU8::new(3);

fn level_number(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

/// Sets the most verbose level logged (see [`LEVEL`]'s numbers; larger is clamped),
/// from now on and at every call site.
pub fn set_level(level: u8) {
    LEVEL.store(level.min(5), Ordering::Relaxed);
    #[cfg(not(target_os = "android"))]
    {
        let _ = tracing::subscriber::set_global_default(LineSubscriber::new(
            Level::TRACE,
            |p: Priority, line: &str| eprintln!("tapemu {p:?}: {line}"),
        ));
    }
    tracing::callsite::rebuild_interest_cache();
}

/// A `tracing` subscriber that hands each event, formatted, to a sink (logcat on
/// Android). Spans are not tracked. Events below `min`, or beyond the level
/// [`set_level`] set, are skipped.
pub struct LineSubscriber<F> {
    sink: F,
    min: Level,
}

impl<F> LineSubscriber<F> {
    /// A subscriber passing events at `min` or more severe to `sink`.
    pub fn new(min: Level, sink: F) -> Self {
        LineSubscriber { sink, min }
    }
}

impl<F: Fn(Priority, &str) + Send + Sync + 'static> tracing::Subscriber for LineSubscriber<F> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.min
            && level_number(metadata.level()) <= LEVEL.load(Ordering::Relaxed)
    }
    fn register_callsite(
        &self,
        metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // Asked again on every event: the level can change at run time.
        if *metadata.level() <= self.min {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
    fn new_span(&self, _span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _span: &tracing::span::Id, _values: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}
    fn event(&self, event: &Event<'_>) {
        (self.sink)(
            Priority::from(event.metadata().level()),
            &format_event(event),
        );
    }
    fn enter(&self, _span: &tracing::span::Id) {}
    fn exit(&self, _span: &tracing::span::Id) {}
}

impl<F> fmt::Debug for LineSubscriber<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineSubscriber")
            .field("min", &self.min)
            .finish_non_exhaustive()
    }
}

#[cfg(target_os = "android")]
mod android {
    use std::ffi::{c_char, c_int, CString};

    use super::Priority;

    #[link(name = "log")]
    extern "C" {
        fn __android_log_write(prio: c_int, tag: *const c_char, text: *const c_char) -> c_int;
    }

    /// Writes one line to logcat under the tag `tapemu`.
    pub fn write(priority: Priority, line: &str) {
        let text = CString::new(line.replace('\0', "\\0")).unwrap_or_default();
        // SAFETY: both pointers are valid NUL-terminated strings for the call.
        unsafe {
            __android_log_write(priority as c_int, c"tapemu".as_ptr(), text.as_ptr());
        }
    }
}

/// Installs the logcat subscriber as the global default on Android (a no-op if one is
/// already set, and everywhere else).
pub fn init() {
    #[cfg(target_os = "android")]
    {
        let _ = tracing::subscriber::set_global_default(LineSubscriber::new(
            Level::TRACE,
            android::write,
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn events_reach_the_sink_formatted() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink_lines = lines.clone();
        let sub = LineSubscriber::new(Level::INFO, move |p, l: &str| {
            sink_lines.lock().unwrap().push((p, l.to_string()));
        });
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(fd = 3, "protect failed");
            tracing::debug!("not shown");
        });
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].0, Priority::Warn);
        assert!(lines[0].1.contains("protect failed"), "{}", lines[0].1);
        assert!(lines[0].1.contains("fd=3"), "{}", lines[0].1);
    }

    #[test]
    fn set_level_filters_at_run_time() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink_lines = lines.clone();
        let sub = LineSubscriber::new(Level::TRACE, move |_, l: &str| {
            sink_lines.lock().unwrap().push(l.to_string());
        });
        tracing::subscriber::with_default(sub, || {
            set_level(2);
            tracing::info!("hidden");
            tracing::warn!("shown");
            set_level(4);
            tracing::debug!("now shown");
            set_level(3);
        });
        assert_eq!(
            *lines.lock().unwrap(),
            vec![
                "logging::tests: shown".to_string(),
                "logging::tests: now shown".to_string()
            ]
            .into_iter()
            .map(|l| format!("tapemu_jni::{l}"))
            .collect::<Vec<_>>()
        );
    }
}
