//! ferry-relay: the zero-copy TCP relay for the China-side host. It accepts the visitors'
//! TLS connections for the mirror domain and forwards the bytes, untouched, across the private
//! link to the Envoy node, telling Envoy the real client address with a PROXY header.
//!
//! # Layout
//!
//! Plain code first, sockets and syscalls at the edge. A module imports only modules listed
//! above it (`tools/module_cycles.py relay/src` prints the graph):
//!
//! * Networks (allow/deny lists, trusted PROXY senders) are `ferry_net`'s, shared with the filter.
//! * [`config`]: command line and TOML file, parsed then validated (exit 64 on bad input,
//!   before any port is bound).
//! * [`proxy_protocol`]: PROXY protocol v1/v2 headers, written and read.
//! * [`limits`]: per-listener and per-client-address connection limits, and the reasons a
//!   connection is refused.
//! * [`warm`]: an upstream's warm connections (handshake done ahead of need), taken only when
//!   alive and silent.
//! * [`upstream`]: upstream pools, balancing, the rise/fall health state, the connect (with
//!   the congestion control asked for) and the refill of the warm connections.
//! * [`splice`] (the only module with `unsafe`): pipes and `splice(2)`.
//! * [`pipe_pool`]: the bounded pool of empty pipes that connections borrow from.
//! * [`forward`]: bidirectional forwarding of one connection, splice with a copy fallback,
//!   half-close, resets and timeouts.
//! * [`health`]: active TCP health checks.
//! * [`metrics`]: what is counted, and its Prometheus text.
//! * [`metrics_endpoint`]: the HTTP server for `GET /metrics`.
//! * [`connection`]: one connection from accept to close (PROXY header, ACL, limits, connect
//!   with retries, forwarding).
//! * [`server`]: listeners (`SO_REUSEPORT`, one socket per worker, port 0 shared), accept
//!   loops, reload and drain.
//!
//! `main.rs` parses the flags, sets up logging and signals, and runs a [`server::Server`].
#![deny(unsafe_code)]

pub mod config;
pub mod connection;
pub mod forward;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod metrics_endpoint;
pub mod pipe_pool;
pub mod proxy_protocol;
pub mod server;
#[allow(unsafe_code)]
pub mod splice;
pub mod upstream;
pub mod warm;
