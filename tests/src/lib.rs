//! Shared helpers for tapemu's integration tests.
//!
//! - [`lab`]: network namespaces, the standard LAN/host/phone topology with dnsmasq, and
//!   traffic checks (ping, verified TCP transfers, iperf3).
//! - [`recorded`]: frames recorded from real hosts and servers in `tests/data/`.
//! - [`tap`]: kernel TAP devices, used by the `l2peer` and `tap-vxlan-relay` test peers.
//! - [`sut`]: `tapemu run --json` in the lab: its event lines, and the reachability checks
//!   every end-to-end test makes of a leased phone.

pub mod lab;
pub mod recorded;
pub mod sut;
pub mod tap;

pub use lab::*;
