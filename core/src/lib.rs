//! tapemu core.
