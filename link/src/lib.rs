//! An emulated long link (say Shanghai <-> US East over a private line: 200 ms RTT, some loss,
//! a bandwidth cap) for tests and benchmarks, on a kernel without netem.
//!
//! Two network namespaces, `<name>-cn` and `<name>-us`, each with a TUN device `link0`
//! (`10.88.0.1` in cn, `10.88.0.2` in us, point to point, MTU 1500) and loopback up. A
//! user-space forwarder reads every packet one side's kernel sends into its TUN device and
//! writes it into the other side's, after the direction's [`Shaper`] has decided when, or
//! whether: the kernel's own TCP runs on both ends, so handshakes, congestion control, loss
//! recovery and pacing are the real ones.
//!
//! What a direction does to a packet ([`Direction`], parsed from `delay=100ms,loss=1%,...`):
//! - `rate`: a bottleneck that sends one packet at a time at that many bits per second, FIFO;
//!   a packet that would wait there longer than `queue` is dropped (tail drop, as a router's
//!   buffer does). Without `rate` there is no bottleneck and nothing queues.
//! - `loss`: each packet is dropped with that probability, independently (after the
//!   bottleneck, as on the wire).
//! - `delay` and `jitter`: the propagation delay, plus a uniform extra of up to `jitter`; a
//!   packet is never delivered before the one sent ahead of it (real paths rarely reorder, and
//!   reordering would make TCP see loss that was not there).
//!
//! The [`Shaper`] is pure (time is passed in) and tested without root; [`emulator`] holds the
//! namespaces, devices and threads.

pub mod emulator;
mod shaper;
mod spec;

pub use shaper::{Shaper, Verdict};
pub use spec::{Direction, SpecError};

/// The address of the cn side's end of the link.
pub const CN_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 88, 0, 1);
/// The address of the us side's end of the link.
pub const US_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 88, 0, 2);
/// The MTU of both TUN devices: what a cross-border path carries.
pub const MTU: u16 = 1500;
