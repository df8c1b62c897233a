//! The proxy-wasm glue: moves headers and body chunks between Envoy and the host-independent
//! core. Compiled for `wasm32` only.
//!
//! Envoy's rules shape this file:
//! * Response headers leave Envoy when `on_http_response_headers` returns, so everything a
//!   rewritten body implies for them (`Content-Length`, `ETag`) is decided there.
//! * `set_buffer` on a body accepts a replace of the whole current buffer (start 0, size = its
//!   length) or an append; anything else is an error on which the SDK panics and the VM dies.
//!   This file only ever replaces the whole buffer.
//! * Returning `Pause` from a body callback makes Envoy keep the chunk and call again with it
//!   and the next chunk together. Over the buffer limit that ends the response (500 or reset),
//!   so bodies stream with `Continue`, and `Pause` is used for one purpose only: when a chunk
//!   ends in bytes that could still become a domain name, Envoy keeps them (with the chunk)
//!   until the next chunk decides. Because Envoy holds them, they also survive a response that
//!   ends with trailers, where no body callback ever sees `end_of_stream`: the trailers
//!   callback still reaches the paused buffer and flushes it.
//! * The SDK's header getters panic on values that are not UTF-8; only byte getters are used.

mod metrics;

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

use crate::body::BodyRewriter;
use crate::config::Config;
use crate::domain::HostMap;
use crate::headers;
use crate::policy::{self, BodyPlan, PassReason, ResponseFacts};
use crate::redirect::{Decision, RedirectConfig, RequestFacts, Stay};
use crate::rewrite;
use metrics::{Counter, Metrics, Tally};

/// The largest buffer the filter asks Envoy to hold (`Action::Pause`) while a domain name may
/// be split across chunks; Envoy then adds the next chunk to it, and over its buffer limit
/// (1 MiB by default) it would reset the response. Larger chunks have their undecided tail cut
/// off and carried instead.
const PAUSE_LIMIT: usize = 128 * 1024;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// What every request shares: the validated configuration and what is compiled from it.
struct Shared {
    config: Config,
    hosts: HostMap,
    body: BodyRewriter,
    metrics: Rc<Metrics>,
}

#[derive(Default)]
struct Root {
    shared: Option<Rc<Shared>>,
    metrics: Option<Rc<Metrics>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(raw)) if !raw.is_empty() => raw,
            _ => {
                log::error!(
                    "no plugin configuration; expected a JSON object such as \
                     {{\"domains\": [{{\"origin\": \"example.com\", \"mirror\": \"example.cn\"}}]}}"
                );
                return false;
            }
        };
        let config = match Config::from_json(&raw) {
            Ok(config) => config,
            Err(e) => {
                log::error!("invalid configuration: {e}");
                return false;
            }
        };
        let body = match BodyRewriter::new(&config) {
            Ok(r) => r,
            Err(e) => {
                log::error!("invalid configuration: domains: {e}");
                return false;
            }
        };
        let metrics = self
            .metrics
            .get_or_insert_with(|| Rc::new(Metrics::define()))
            .clone();
        let pairs: Vec<String> = config
            .domains
            .iter()
            .map(|d| {
                let sub = if d.subdomains { " (+subdomains)" } else { "" };
                format!("{} -> {}{sub}", d.mirror, d.origin)
            })
            .collect();
        log::info!("configured {}", pairs.join(", "));
        if let Some(r) = &config.redirect {
            let source = match (&r.country_header, &r.networks) {
                (Some(h), Some(n)) => {
                    let (v4, v6) = n.ranges();
                    format!("header {h}, else the address ({v4} IPv4 + {v6} IPv6 ranges)")
                }
                (Some(h), None) => format!("header {h}"),
                (None, Some(n)) => {
                    let (v4, v6) = n.ranges();
                    format!("the address ({v4} IPv4 + {v6} IPv6 ranges)")
                }
                (None, None) => "nothing".to_string(),
            };
            log::info!(
                "geo redirect {} for {} (country from {source})",
                r.status,
                r.countries.join(",")
            );
        }
        self.shared = Some(Rc::new(Shared {
            hosts: HostMap::new(&config.domains),
            body,
            config,
            metrics,
        }));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            shared: self.shared.clone(),
            mirror: false,
            body: Body::Pass,
            tally: Tally::default(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The response body of one stream.
enum Body {
    /// Not ours, or passed byte for byte.
    Pass,
    /// Streamed through the rewriter.
    Rewrite(Flow),
}

/// Where a rewritten body stands between two callbacks.
#[derive(Default)]
struct Flow {
    /// The raw bytes before the first byte still to decide.
    context: rewrite::Context,
    /// The response is HTML (same-site `integrity` attributes may be dropped).
    html: bool,
    /// Envoy holds the undecided tail for us, with the chunk it ended (`Action::Pause`).
    paused: bool,
    /// While paused: how many bytes at the front of Envoy's buffer are final output.
    done: usize,
    /// Otherwise: the undecided tail, cut off the previous chunk, to put in front of the next.
    carry: Vec<u8>,
}

struct Stream {
    /// `None` only if Envoy created a stream without a configuration; then everything passes.
    shared: Option<Rc<Shared>>,
    /// The request was for a mirror host.
    mirror: bool,
    body: Body,
    tally: Tally,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            return Action::Continue;
        };
        let map = MapType::HttpRequestHeaders;
        // One host call decides about most requests (those for other hosts).
        let origin_authority = hostcalls::get_map_value_bytes(map, ":authority")
            .ok()
            .flatten()
            .and_then(|authority| headers::request_authority(&shared.hosts, &authority));
        let Some(origin_authority) = origin_authority else {
            if let Some(redirect) = &shared.config.redirect {
                if let Some(action) = self.geo_redirect(&shared, redirect) {
                    return action;
                }
            }
            shared.metrics.add(Counter::RequestsOther, 1);
            return Action::Continue;
        };
        self.mirror = true;
        shared.metrics.add(Counter::RequestsMirror, 1);
        self.set_header(map, ":authority", &origin_authority);
        let pairs = hostcalls::get_map_bytes(map).unwrap_or_default();
        for (name, value) in &pairs {
            if name == "origin" || name == "referer" {
                if let Some(new) = headers::request_url(&shared.hosts, value) {
                    self.set_header(map, name, &new);
                }
            }
        }
        if shared.config.identity_encoding {
            // Not counted as a rewrite: it is a request to the origin, not a translation.
            if hostcalls::set_map_value_bytes(map, "accept-encoding", Some(b"identity")).is_err() {
                self.tally.host_errors += 1;
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone().filter(|_| self.mirror) else {
            return Action::Continue;
        };
        let map = MapType::HttpResponseHeaders;
        let Ok(pairs) = hostcalls::get_map_bytes(map) else {
            self.tally.host_errors += 1;
            return Action::Continue;
        };
        let first = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_slice())
        };
        let facts = ResponseFacts {
            status: first(":status")
                .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok())
                .unwrap_or(0),
            content_type: first("content-type"),
            content_encoding: first("content-encoding"),
            headers_only: end_of_stream,
        };
        let decision = policy::decide(&shared.config, &facts);

        for name in &shared.config.response_headers {
            self.rewrite_response_header(&shared, &pairs, name);
        }
        if decision.reframe {
            for name in ["content-length", "accept-ranges"] {
                if first(name).is_some() && hostcalls::remove_map_value(map, name).is_err() {
                    self.tally.host_errors += 1;
                }
            }
        }
        if decision.weaken_etag {
            if let Some(weak) = first("etag").and_then(policy::weak_etag) {
                self.set_header(map, "etag", &weak);
            }
        }
        match decision.body {
            BodyPlan::Rewrite => {
                shared.metrics.add(Counter::BodiesRewritten, 1);
                let html = first("content-type")
                    .map(policy::media_type)
                    .is_some_and(|t| t == "text/html" || t == "application/xhtml+xml");
                self.body = Body::Rewrite(Flow {
                    html,
                    ..Flow::default()
                });
            }
            BodyPlan::Pass(PassReason::Compressed) => {
                shared.metrics.add(Counter::BodiesPassedCompressed, 1)
            }
            BodyPlan::Pass(PassReason::Partial) => {
                shared.metrics.add(Counter::BodiesPassedPartial, 1)
            }
            BodyPlan::Pass(_) => {}
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.rewrite_body(body_size, end_of_stream)
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        // No body callback will see end_of_stream. A tail that Envoy holds for us (the usual
        // case: chunks are small) is flushed through the paused buffer. A tail cut off a large
        // chunk cannot be: the body can no longer be written once trailers flow.
        match &self.body {
            Body::Rewrite(flow) if flow.paused => {
                self.rewrite_body(usize::MAX, true);
            }
            Body::Rewrite(flow) if !flow.carry.is_empty() => {
                log::warn!(
                    "{} body bytes held for a possible domain name were dropped: trailers \
                     followed a chunk larger than {PAUSE_LIMIT} bytes; lower the origin \
                     cluster's per_connection_buffer_limit_bytes",
                    flow.carry.len()
                );
                self.tally.tails_dropped += 1;
            }
            _ => {}
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if let Some(shared) = &self.shared {
            self.tally.flush(&shared.metrics);
        }
    }
}

impl Stream {
    /// Sends the geo redirect if the request gets one (then returns the action to end the
    /// request's filter chain with).
    fn geo_redirect(&mut self, shared: &Shared, redirect: &RedirectConfig) -> Option<Action> {
        let Ok(pairs) = hostcalls::get_map_bytes(MapType::HttpRequestHeaders) else {
            self.tally.host_errors += 1;
            return None;
        };
        let first = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_slice())
        };
        let cookies: Vec<&[u8]> = pairs
            .iter()
            .filter(|(k, _)| k == "cookie")
            .map(|(_, v)| v.as_slice())
            .collect();
        let facts = RequestFacts {
            method: first(":method").unwrap_or_default(),
            authority: first(":authority").unwrap_or_default(),
            path: first(":path").unwrap_or_default(),
            country: redirect.country_header.as_deref().and_then(first),
            cookies: &cookies,
            fetch_mode: first("sec-fetch-mode"),
        };
        let source = || {
            let raw = hostcalls::get_property(vec!["source", "address"]).ok()??;
            let text = std::str::from_utf8(&raw).ok()?;
            match text.parse::<SocketAddr>() {
                Ok(addr) => Some(addr.ip()),
                Err(_) => text.parse::<IpAddr>().ok(),
            }
        };
        match redirect.decide(&shared.hosts, &facts, source) {
            Decision::Redirect(r) => {
                let max_age = r.cache_control.as_str();
                let headers = vec![
                    ("location", r.location.as_str()),
                    ("cache-control", max_age),
                    ("content-type", "text/html; charset=utf-8"),
                ];
                match hostcalls::send_http_response(
                    u32::from(r.status),
                    headers,
                    Some(r.body.as_bytes()),
                ) {
                    Ok(()) => {
                        shared.metrics.add(Counter::Redirects, 1);
                        Some(Action::Pause)
                    }
                    Err(status) => {
                        log::warn!("cannot send the geo redirect: {status:?}");
                        self.tally.host_errors += 1;
                        None
                    }
                }
            }
            Decision::Stay(Stay::OptOut) => {
                shared.metrics.add(Counter::RedirectOptOuts, 1);
                None
            }
            Decision::Stay(_) => None,
        }
    }

    fn set_header(&mut self, map: MapType, name: &str, value: &[u8]) {
        match hostcalls::set_map_value_bytes(map, name, Some(value)) {
            Ok(()) => self.tally.headers_rewritten += 1,
            Err(_) => self.tally.host_errors += 1,
        }
    }

    /// Rewrites every value of one response header; several values (`Set-Cookie`) keep their
    /// order.
    fn rewrite_response_header(
        &mut self,
        shared: &Shared,
        pairs: &[(String, Vec<u8>)],
        name: &str,
    ) {
        let values: Vec<&[u8]> = pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
            .collect();
        let new: Vec<Option<Vec<u8>>> = values
            .iter()
            .map(|v| headers::response_value(name, v, &shared.hosts, &shared.body.rewriter))
            .collect();
        let changed = new.iter().filter(|n| n.is_some()).count();
        if changed == 0 {
            return;
        }
        let map = MapType::HttpResponseHeaders;
        let ok = if values.len() == 1 {
            let value = new[0].as_deref().unwrap_or(values[0]);
            hostcalls::set_map_value_bytes(map, name, Some(value)).is_ok()
        } else {
            hostcalls::remove_map_value(map, name).is_ok()
                && values.iter().zip(&new).all(|(old, new)| {
                    let value = new.as_deref().unwrap_or(old);
                    hostcalls::add_map_value_bytes(map, name, value).is_ok()
                })
        };
        if ok {
            self.tally.headers_rewritten += changed as u64;
        } else {
            self.tally.host_errors += 1;
        }
    }

    /// Rewrites the body Envoy hands over: while paused, the bytes of earlier chunks (of which
    /// the first `done` are final) and the new chunk; otherwise the new chunk, behind any tail
    /// carried from the previous one.
    fn rewrite_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            return Action::Continue;
        };
        let Body::Rewrite(flow) = &mut self.body else {
            return Action::Continue;
        };
        let buffer = match hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size) {
            Ok(buffer) => buffer.unwrap_or_default(),
            Err(_) => return self.give_up(),
        };
        let start = if flow.paused { flow.done } else { 0 };
        let Some(fresh) = buffer.get(start..) else {
            return self.give_up();
        };
        let carried = std::mem::take(&mut flow.carry);
        let joined;
        let input: &[u8] = if carried.is_empty() {
            fresh
        } else {
            joined = [carried.as_slice(), fresh].concat();
            &joined
        };

        let mut out = Vec::new();
        let step = shared
            .body
            .step(flow.context, input, end_of_stream, flow.html, &mut out);
        let consumed = step.consumed;
        let decided: &[u8] = if step.changed {
            &out
        } else {
            &input[..consumed]
        };
        let tail = &input[consumed..];
        // Envoy may hold a small buffer for us; a large one could reach its buffer limit, so
        // then the undecided tail is cut off and carried in front of the next chunk instead.
        let pause = !tail.is_empty() && buffer.len() <= PAUSE_LIMIT;
        let rewritten = step.changed || !carried.is_empty() || (!tail.is_empty() && !pause);
        let keep_tail = pause && !tail.is_empty();
        let result = if !rewritten {
            Ok(())
        } else if start == 0 && !keep_tail {
            // The common case: the new buffer is exactly the decided output.
            hostcalls::set_buffer(BufferType::HttpResponseBody, 0, buffer.len(), decided)
        } else {
            let mut new = Vec::with_capacity(start + decided.len() + tail.len());
            new.extend_from_slice(&buffer[..start]);
            new.extend_from_slice(decided);
            if keep_tail {
                new.extend_from_slice(tail);
            }
            hostcalls::set_buffer(BufferType::HttpResponseBody, 0, buffer.len(), &new)
        };
        if result.is_err() {
            return self.give_up();
        }
        self.tally.body_bytes_in += consumed as u64;
        self.tally.body_bytes_out += decided.len() as u64;
        self.tally.body_matches += step.matches as u64;
        self.tally.integrity_removed += step.integrity_removed as u64;
        flow.context = flow.context.advance(&input[..consumed]);
        flow.paused = pause;
        flow.done = start + decided.len();
        if pause {
            Action::Pause
        } else {
            flow.carry = tail.to_vec();
            Action::Continue
        }
    }

    /// A host call failed: let the rest of the body through untouched.
    fn give_up(&mut self) -> Action {
        self.tally.host_errors += 1;
        self.body = Body::Pass;
        Action::Continue
    }
}
