//! ferry-relay: the zero-copy TCP relay for the China-side host (work in progress).
//!
//! # Layout
//!
//! * `config`: command line and TOML file, parsed then validated (exit 64 on bad input).
//! * `cidr`: IPv4/IPv6 CIDR lists for allow/deny and trusted PROXY senders.
//! * `proxy_protocol`: PROXY protocol v1/v2 headers, written and read.
//! * `splice` (the only module with `unsafe`): pipes and `splice(2)`.
//! * `forward`: bidirectional forwarding of one connection, splice with a copy fallback.
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
