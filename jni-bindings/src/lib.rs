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
//! * [`events`]: driver events as the JSON objects Java's listener dispatch reads, the
//!   CLI's own (`tapemu::present`).
//! * [`config`]: reading what Java passes in; the rules are the core's `Config::validate`.
//! * [`logging`]: logcat on Android, plain `tracing` elsewhere.

pub mod callbacks;
pub mod config;
pub mod error;
pub mod events;
pub mod exports;
pub mod logging;
pub mod session;
pub mod tun;
