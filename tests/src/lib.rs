//! Shared helpers for tapemu's integration tests.
