//! Ferry's proxy-wasm HTTP filter: serve an origin site (example.com) under a mirror domain
//! (example.cn) from inside Envoy, without touching the site.
//!
//! Requests for a mirror host go to the origin as if they were for the origin host; responses
//! to them are rewritten so that the browser only ever sees the mirror domain: headers such as
//! `Location`, `Set-Cookie` and `Content-Security-Policy`, and the body of text responses,
//! chunk by chunk as Envoy streams it. Requests for any other host pass through untouched.
//!
//! # Layout
//!
//! The core is host-independent and tested natively with `cargo test`; only `plugin` touches
//! the proxy-wasm ABI and is compiled for `wasm32` alone.
//!
//! * [`config`]: the JSON plugin configuration, parsed then validated.
//! * [`domain`]: domain-name validation, label-boundary byte classes, host mapping.
//! * [`rewrite`]: the streaming origin -> mirror body rewriter.
//! * [`integrity`]: dropping `integrity` attributes of same-site scripts and stylesheets.
//! * [`multipart`]: `multipart/form-data` request bodies, text parts rewritten, files untouched.
//! * [`body`]: the body pipeline of one step (integrity, then domains).
//! * [`stream`]: the streaming driver: per chunk, what Envoy is told to do with it.
//! * [`decode`]: gzip, deflate, brotli and zstd decoding for origins that compress anyway.
//! * [`headers`]: which request and response headers change, and how.
//! * [`policy`]: per-response decisions: rewrite the body or not, `Content-Length`, `ETag`.
//! * [`redirect`]: the geo redirect of visitors from listed countries to the mirror host.
//! * [`networks`]: CIDR networks and the fast address set behind address-based geo lookups.
//! * `plugin` (wasm32 only): the proxy-wasm root and HTTP contexts, and the metrics.
#![forbid(unsafe_code)]

pub mod body;
pub mod config;
pub mod decode;
pub mod domain;
pub mod headers;
pub mod integrity;
pub mod multipart;
pub mod policy;
pub mod redirect;
pub mod rewrite;
pub mod stream;
#[doc(hidden)]
pub mod testing;

#[cfg(target_arch = "wasm32")]
mod plugin;
