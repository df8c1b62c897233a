//! End-to-end test harness for Ferry: a real Envoy running the built filter, in front of a
//! programmable test origin, driven by a blocking HTTP client; the whole deployment chain
//! (ferry-relay, Envoy with a node config, an HTTPS origin) on loopback; and the demo site.
//!
//! Everything listens on 127.0.0.1 with ephemeral ports, every process is polled for readiness
//! with a deadline and stopped on drop, and a missing Envoy, `.wasm` or `ferry-relay` fails the
//! test with a message that says how to get it, never a silent skip.
//!
//! # Layout
//! - [`paths`]: the workspace root, the built `.wasm`, the Envoy binary, the relay binary.
//! - [`envoy`]: [`EnvoyConfig`] (a shipped config, `envoy/ferry.yaml` or a node config, patched
//!   for a test), [`Envoy`] (the process: start, readiness, admin, stats, logs, validate, stop)
//!   and [`envoy::node`] (the files the node configs name, and local stand-ins for them).
//! - [`form`]: form bodies (`application/x-www-form-urlencoded`) encoded and decoded as
//!   browsers do.
//! - [`gunicorn`]: [`gunicorn::Gunicorn`], a real application server (gunicorn, gthread, TLS)
//!   serving `tests/data/wsgi_site.py`, for tests that need an origin nobody here wrote.
//! - [`origin`]: [`Origin`], the test origin server (HTTP/1.1 and h2c, or HTTPS) that records
//!   requests.
//! - [`reply`]: [`Reply`], what the origin answers on a route: status, headers, body chunks,
//!   trailers, gzip, generated bodies of any size.
//! - [`client`]: [`Client`], a blocking HTTP/1.1 and h2c client (or HTTPS with a given CA and
//!   server name), whole or streamed responses; [`websocket`] adds WebSocket exchanges to it.
//! - [`pki`]: [`pki::Pki`], a local CA writing `ca.pem` and leaf certificates as PEM files.
//! - [`relay`]: [`relay::Relay`], the `ferry-relay` binary run from a generated config or a
//!   command line, its addresses read from its log (the relay's own tests use it too).
//! - [`chain`]: [`chain::Chain`], relay -> Envoy (`envoy/us-east.yaml`) -> HTTPS origin.
//! - [`body`]: [`Generator`] of deterministic large bodies and the streaming [`Digest`].
//! - [`headers`]: header lists with duplicates, and case-insensitive lookups on them.
//! - [`site`]: the demo site, full of origin-domain references and decoys.
//! - [`browser`]: [`browser::Browser`], a headless Chromium driven over the DevTools protocol,
//!   and the [`browser::Page`] record of every request it made and every console error.
//! - [`link`]: [`link::Link`], the emulated long link (`ferry-link`) between two network
//!   namespaces, and [`link::in_namespace`] to put sockets on either side.
//! - [`mmdb`]: [`mmdb::CountryDb`], a writer of MaxMind DB country databases for Envoy's geoip
//!   filter, from networks or a `NETWORK COUNTRY` text file.
//!
//! The `ferry-demo` binary (`src/bin/ferry-demo.rs`) runs the whole chain in front of the demo
//! site (or a real origin); `ferry-mmdb` (`src/bin/ferry-mmdb.rs`) turns `NETWORK COUNTRY`
//! lines into a country database; `ferry-wan` (`src/bin/ferry-wan/`) does the parts of
//! `./run bench-wan` that need this harness (files, the origin, page loads in Chromium); `tests/harness/` tests this harness itself.
//!
//! # Example
//! ```no_run
//! use ferry_tests::{Client, Envoy, EnvoyConfig, Origin, Reply};
//!
//! let origin = Origin::start();
//! origin.route("/", Reply::html("<a href=\"https://www.example.com/\">home</a>"));
//! let envoy = Envoy::start(&EnvoyConfig::shipped().origin(origin.addr()));
//! let response = Client::http1(envoy.listener_addr()).get("www.example.cn", "/");
//! assert_eq!(response.status, 200);
//! assert_eq!(origin.last_request().unwrap().host(), Some("www.example.com"));
//! ```

pub mod body;
pub mod browser;
pub mod chain;
pub mod client;
pub mod envoy;
pub mod form;
pub mod gunicorn;
pub mod headers;
pub mod link;
pub mod mmdb;
pub mod origin;
pub mod paths;
pub mod pki;
pub mod relay;
pub mod reply;
pub mod site;
pub mod websocket;

pub use body::{Digest, Generator, MirrorPage};
pub use client::{Client, Request, Response, Streamed};
pub use envoy::{Envoy, EnvoyConfig};
pub use headers::HeaderLookup;
pub use origin::{Origin, Recorded};
pub use reply::{Encoding, Reply};
pub use site::Site;
