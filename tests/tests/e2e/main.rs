//! Ferry end to end: the real Envoy with the built filter, the shipped node configs behind
//! `ferry-relay`, headless Chromium and real origins (gunicorn, Django), all on loopback. One
//! test binary (one link), one module per feature; each module's `//!` says what it pins down
//! and where related tests are:
//!
//! - `rewrite_headers`: which requests are Ferry's and what the origin sees of them (`Host`,
//!   `Origin`, `Referer`, path and query); response headers that carry URLs and cookies; HEAD,
//!   204 and 304.
//! - `rewrite_bodies`: response bodies: label boundaries, escaped forms, names split across
//!   chunks, huge bodies in bounded memory, content types, codings, framing, trailers; with
//!   `rewrite_bodies::streaming_matrix` (every protocol, coding and ending at once) and
//!   `rewrite_bodies::bad_bodies` (corrupt, truncated and mislabelled bodies, bombs).
//! - `no_leaks`: no origin name reaches a mirror visitor through any text type, URL header,
//!   byte range or event stream.
//! - `round_trip`: what the mirror showed comes back to the origin as the origin wrote it:
//!   forms, JSON, multipart uploads, held and streamed request bodies.
//! - `websockets`: upgrades pass through the shipped configs, their messages untouched.
//! - `geo_redirect`: the 301 for visitors from listed countries, through `envoy/us-east.yaml`
//!   and `envoy/redirect.yaml`; with `geo_redirect::networks` (address mode, a China-sized
//!   list) and `geo_redirect::geoip` (Envoy's geoip filter reading a database of ours).
//! - `chain`: visitor -> ferry-relay -> `envoy/us-east.yaml` -> TLS origin: TLS, PROXY
//!   headers, who may connect, the access log, the origin's certificate; with `chain::relay`
//!   (the relay in front of the minimal config) and `chain::real_origin` (gunicorn).
//! - `browser`: headless Chromium through the whole chain, a Django admin edit included.
//! - `deploy`: every shipped Envoy config validates; with `deploy::istio` and
//!   `deploy::compose`, the deployment files that cannot run here.
//! - `tools`: `tools/rir-networks` and `ferry-mmdb`.
//! - `config_and_metrics`: the filter's counters on Envoy's admin, and plugin configurations
//!   Envoy refuses.
//!
//! `support` holds the helpers several features use. The tests of the harness itself (origin,
//! client, browser driver, MaxMind DB writer) are the other test binary, `tests/harness/`.
//!
//! A new test goes into its feature's module (a new feature gets a module and a line above); a
//! new file in `tests/tests/` would be one more binary to link.
//!
//! One feature: `cargo test -p ferry-tests --test e2e geo_redirect::`. The tests need Envoy,
//! the `.wasm` and `ferry-relay` (some Chromium and gunicorn), and fail saying how to get a
//! missing one. They share this process and run in parallel, a test beside any other: each
//! starts its own processes on ephemeral ports and writes only into its own temp dir, and none
//! sets environment variables or measures anything but the processes it started.

mod browser;
mod chain;
mod config_and_metrics;
mod deploy;
mod geo_redirect;
mod no_leaks;
mod rewrite_bodies;
mod rewrite_headers;
mod round_trip;
mod support;
mod tools;
mod websockets;
