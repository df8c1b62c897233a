//! Tests of the end-to-end harness itself (the `ferry_tests` library), not of Ferry: one test
//! binary, a module per part.
//!
//! - `envoy_and_origin`: Envoy without the filter carries the demo site, trailers and large
//!   bodies unchanged; the origin's encoders; Envoy refusing a bad plugin configuration with
//!   the filter's log line; the TLS origin and client.
//! - `browser`: the browser driver (headless Chromium over the DevTools protocol) against test
//!   servers.
//! - `mmdb`: the MaxMind DB writer against the `maxminddb` crate.
//!
//! Ferry's own end-to-end tests are the other test binary, `tests/e2e/`. Run one part with
//! `cargo test -p ferry-tests --test harness browser::`.

mod browser;
mod envoy_and_origin;
mod mmdb;
