//! The `ferry-relay` binary (work in progress).
fn main() {}
