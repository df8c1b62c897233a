//! ferry-relay: the zero-copy TCP relay for the China-side host. It accepts the visitors'
//! TLS connections for the mirror domain and forwards the bytes, untouched, across the private
//! link to the Envoy node, telling Envoy the real client address with a PROXY header.
//!
//! # Layout
//!
//! Plain code first, sockets and syscalls at the edge:
//!
//! * [`config`]: command line and TOML file, parsed then validated (exit 64 on bad input,
//!   before any port is bound).
//! * [`cidr`]: IPv4/IPv6 CIDR lists for allow/deny and trusted PROXY senders.
//! * [`proxy_protocol`]: PROXY protocol v1/v2 headers, written and read.
//! * [`upstream`]: upstream pools, balancing, and the rise/fall health state.
//! * [`limits`]: per-listener and per-client-address connection limits.
//! * [`metrics`]: the counters and the Prometheus endpoint.
//! * [`splice`] (the only module with `unsafe`): pipes and `splice(2)`.
//! * [`forward`]: bidirectional forwarding of one connection, splice with a copy fallback,
//!   half-close, resets and timeouts.
//! * [`health`]: active TCP health checks.
//! * [`connection`]: one connection from accept to close (PROXY header, ACL, limits, connect
//!   with retries, forwarding).
//! * [`server`]: listeners (`SO_REUSEPORT`, one socket per worker), accept loops, reload and
//!   drain.
//!
//! `main.rs` parses the flags, sets up logging and signals, and runs a [`server::Server`].
#![deny(unsafe_code)]

pub mod cidr;
pub mod config;
pub mod connection;
pub mod forward;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod proxy_protocol;
pub mod server;
#[allow(unsafe_code)]
pub mod splice;
pub mod upstream;
