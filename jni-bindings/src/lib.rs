//! JNI bridge for tapemu.
