//! The `tapemu` command line.
fn main() {}
