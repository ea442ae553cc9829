//! JNI bridge for tapemu: the native side of the Java API in `jni-bindings/java`
//! (package `io.tapemu`), for Android `VpnService` apps and desktop JVMs.
//!
//! * [`exports`]: one `Java_*` function per `native` method. Each catches panics and
//!   maps errors to `IllegalArgumentException` (bad configuration),
//!   `IllegalStateException` (closed, not started, wrong mode) or `IOException` (fd and
//!   link trouble).
//! * [`session`]: a registry of emulators keyed by the Java handle; each started one
//!   owns a thread running the tokio driver and calling the listener.
//! * [`callbacks`]: calls into Java from that thread, attached to the JVM, with cached
//!   method ids and a local frame per call.
//! * [`config`]: validation of what Java passes in.
//! * [`logging`]: logcat on Android, plain `tracing` elsewhere.

pub mod callbacks;
pub mod config;
pub mod error;
pub mod exports;
pub mod lease;
pub mod logging;
pub mod session;
pub mod tun;
