//! The proxy-wasm glue: moves headers and body chunks between Envoy and the host-independent
//! core. Compiled for `wasm32` only.
//!
//! Envoy's rules shape this file:
//! * Response headers leave Envoy when `on_http_response_headers` returns, so everything a
//!   rewritten body implies for them (`Content-Length`, `Content-Encoding`, `ETag`) is decided
//!   there.
//! * A body callback sees one chunk. Whatever [`crate::stream`] plans for it is carried out at
//!   once: the chunk goes on unchanged (`Continue`), or replaced as a whole (`set_buffer` over
//!   the whole buffer, then `Continue`). The filter never returns `Pause` from a body callback
//!   to make Envoy keep a chunk: what Envoy keeps for a filter counts against the stream's
//!   buffer limit (an HTTP/2 stream window of 64 KiB in `envoy/us-east.yaml`), and over it
//!   Envoy resets the response. DESIGN.md has the details.
//! * When the core plans a failure, the chunk is emptied, the stream reset
//!   (`proxy_close_stream`, which Envoy runs right after the callback), and the callback returns
//!   `Pause` so that no end of stream can slip out first: the client sees a reset, never a clean
//!   shorter body.
//! * The SDK's header getters panic on values that are not UTF-8; only byte getters are used.

mod metrics;

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

use crate::body::BodyRewriter;
use crate::config::Config;
use crate::decode::Decoder;
use crate::domain::{split_port, HostMap};
use crate::headers;
use crate::policy::{
    self, BodyPlan, PassReason, RequestBodyFacts, RequestBodyPlan, RequestPass, ResponseFacts,
};
use crate::redirect::{Decision, RedirectConfig, RequestFacts, Stay};
use crate::stream::{BodyKind, BodyStream, Failure, Plan};
use metrics::{Counter, Metrics, Tally};

/// What a mirror request asks the origin for when `identity_encoding` is off: the codings the
/// filter decodes as they stream. Not zstd: it is decoded when an origin sends it anyway, but
/// its decoder releases bytes only a window behind (a page or an event stream can wait for
/// the end of its frame).
const DECODABLE: &[u8] = b"gzip, deflate, br";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// What every request shares: the validated configuration and what is compiled from it.
struct Shared {
    config: Config,
    hosts: HostMap,
    /// Origin -> mirror: response bodies and headers.
    body: BodyRewriter,
    /// Mirror -> origin: request bodies, paths, referers.
    requests: BodyRewriter,
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
        let pipelines = BodyRewriter::for_responses(&config)
            .and_then(|body| Ok((body, BodyRewriter::for_requests(&config)?)));
        let (body, requests) = match pipelines {
            Ok(pipelines) => pipelines,
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
        if config.request_bodies.hold_bytes > 0 {
            log::info!(
                "request bodies up to {} bytes are held whole (this needs \
                 allow_on_headers_stop_iteration: true in the wasm filter's config)",
                config.request_bodies.hold_bytes
            );
        }
        self.shared = Some(Rc::new(Shared {
            hosts: HostMap::new(&config.domains),
            body,
            requests,
            config,
            metrics,
        }));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            shared: self.shared.clone(),
            mirror: false,
            request: RequestBody::Pass,
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
    /// Not ours, passed byte for byte, or reset.
    Pass,
    /// Streamed through the core's driver.
    Rewrite(Box<BodyStream>),
}

/// The request body of one stream.
enum RequestBody {
    /// Not ours, or passed as the visitor sent it.
    Pass,
    /// Held whole by Envoy (the headers wait too), rewritten at its end, sent with its exact
    /// new `Content-Length`.
    Hold(Box<BodyStream>),
    /// Streamed through the core's driver, without a `Content-Length`.
    Stream(Box<BodyStream>),
}

struct Stream {
    /// `None` only if Envoy created a stream without a configuration; then everything passes.
    shared: Option<Rc<Shared>>,
    /// The request was for a mirror host.
    mirror: bool,
    request: RequestBody,
    body: Body,
    tally: Tally,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
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
        let first = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_slice())
        };
        // Origin and Referer name the origin at the port the request goes to it with.
        let (_, port) = split_port(&origin_authority);
        for (name, value) in &pairs {
            let new = match name.as_str() {
                "origin" => headers::request_url(&shared.hosts, value, port),
                "referer" => {
                    headers::request_referer(&shared.hosts, &shared.requests.rewriter, value, port)
                }
                ":path" => headers::request_path(&shared.requests.rewriter, value),
                _ => None,
            };
            if let Some(new) = new {
                self.set_header(map, name, &new);
            }
        }
        if first("range").is_some()
            && !headers::keeps_range(first(":path").unwrap_or_default(), first("sec-fetch-dest"))
        {
            for name in ["range", "if-range"] {
                if hostcalls::remove_map_value(map, name).is_err() {
                    self.tally.host_errors += 1;
                }
            }
            shared.metrics.add(Counter::RangesDropped, 1);
        }
        // Not counted as a rewrite: it is a request to the origin, not a translation.
        let accept: &[u8] = if shared.config.identity_encoding {
            b"identity"
        } else {
            DECODABLE
        };
        if hostcalls::set_map_value_bytes(map, "accept-encoding", Some(accept)).is_err() {
            self.tally.host_errors += 1;
        }
        let facts = RequestBodyFacts {
            headers_only: end_of_stream,
            upgrade: first("upgrade").is_some() || first(":method") == Some(&b"CONNECT"[..]),
            content_type: first("content-type"),
            content_encoding: first("content-encoding"),
            content_length: first("content-length"),
        };
        match policy::decide_request(&shared.config, &facts) {
            RequestBodyPlan::Pass(RequestPass::Compressed) => shared
                .metrics
                .add(Counter::RequestBodiesPassedCompressed, 1),
            RequestBodyPlan::Pass(RequestPass::Large) => {
                shared.metrics.add(Counter::RequestBodiesPassedLarge, 1)
            }
            RequestBodyPlan::Pass(_) => {}
            RequestBodyPlan::Hold(kind) => {
                shared.metrics.add(Counter::RequestBodiesRewritten, 1);
                self.request = RequestBody::Hold(Box::new(BodyStream::new(kind, None)));
                // The headers wait for the body (allow_on_headers_stop_iteration makes this a
                // plain StopIteration: the body callbacks still run).
                return Action::Pause;
            }
            RequestBodyPlan::Stream(kind) => {
                shared.metrics.add(Counter::RequestBodiesRewritten, 1);
                if facts.content_length.is_some()
                    && hostcalls::remove_map_value(map, "content-length").is_err()
                {
                    self.tally.host_errors += 1;
                }
                self.request = RequestBody::Stream(Box::new(BodyStream::new(kind, None)));
            }
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            return Action::Continue;
        };
        match &self.request {
            RequestBody::Pass => Action::Continue,
            // Envoy keeps every chunk (with the headers) until the end.
            RequestBody::Hold(_) if !end_of_stream => Action::Pause,
            RequestBody::Hold(_) => self.release_held_request(&shared, body_size),
            RequestBody::Stream(_) => self.stream_request(&shared, body_size, end_of_stream),
        }
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        let Some(shared) = self.shared.clone() else {
            return Action::Continue;
        };
        match &mut self.request {
            RequestBody::Hold(_) => self.release_held_request(&shared, usize::MAX),
            RequestBody::Stream(stream) => match stream.on_trailers() {
                Ok(()) => Action::Continue,
                Err(failure) => self.fail_request(&shared, &failure, 0),
            },
            RequestBody::Pass => Action::Continue,
        }
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
        let mut remove: Vec<&str> = headers::DROPPED_RESPONSE_HEADERS.to_vec();
        if decision.reframe {
            remove.extend_from_slice(policy::BODY_HEADERS);
        }
        if decision.decode {
            remove.push("content-encoding");
        }
        for name in remove {
            if first(name).is_some() && hostcalls::remove_map_value(map, name).is_err() {
                self.tally.host_errors += 1;
            }
        }
        if decision.weaken_etag {
            if let Some(weak) = first("etag").and_then(policy::weak_etag) {
                self.set_header(map, "etag", &weak);
            }
        }
        match decision.body {
            BodyPlan::Rewrite(coding) => {
                shared.metrics.add(Counter::BodiesRewritten, 1);
                if coding.is_some() {
                    shared.metrics.add(Counter::BodiesDecoded, 1);
                }
                let html = first("content-type")
                    .map(policy::media_type)
                    .is_some_and(|t| policy::is_html(&t));
                let decoder = coding.map(|c| Decoder::new(c, shared.config.decode_limits));
                self.body = Body::Rewrite(Box::new(BodyStream::new(BodyKind::text(html), decoder)));
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
        let Some(shared) = self.shared.clone() else {
            return Action::Continue;
        };
        let Body::Rewrite(stream) = &mut self.body else {
            return Action::Continue;
        };
        let buffer = BufferType::HttpResponseBody;
        match run_chunk(stream, &shared.body, buffer, body_size, end_of_stream) {
            Ok(_) => Action::Continue,
            Err(ChunkError::Failed(failure, len)) => self.fail(&shared, &failure, len),
            Err(ChunkError::Host(len)) => self.host_failure(&shared, len),
        }
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        let Some(shared) = self.shared.clone() else {
            return Action::Continue;
        };
        let Body::Rewrite(stream) = &mut self.body else {
            return Action::Continue;
        };
        match stream.on_trailers() {
            Ok(()) => Action::Continue,
            Err(failure) => self.fail(&shared, &failure, 0),
        }
    }

    fn on_log(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        self.end_response_body();
        self.end_request_body();
        self.tally.flush(&shared.metrics);
    }
}

impl Stream {
    /// The response body is done with (ended, reset, or the stream is logged): its figures go
    /// to the tally, and nothing more of it is rewritten.
    fn end_response_body(&mut self) {
        if let Body::Rewrite(stream) = std::mem::replace(&mut self.body, Body::Pass) {
            let stats = stream.stats();
            self.tally.body_bytes_in += stats.bytes_in;
            self.tally.body_bytes_out += stats.bytes_out;
            self.tally.body_matches += stats.matches;
            self.tally.integrity_removed += stats.integrity_removed;
        }
    }

    /// The request body is done with: its figures go to the tally.
    fn end_request_body(&mut self) {
        let request = std::mem::replace(&mut self.request, RequestBody::Pass);
        if let RequestBody::Hold(stream) | RequestBody::Stream(stream) = request {
            let stats = stream.stats();
            self.tally.request_body_bytes_in += stats.bytes_in;
            self.tally.request_body_bytes_out += stats.bytes_out;
            self.tally.request_body_matches += stats.matches;
        }
    }

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

    /// The end of a held request body (or its trailers): rewrite the whole body Envoy kept,
    /// give the headers its exact length, and let both go.
    fn release_held_request(&mut self, shared: &Shared, body_size: usize) -> Action {
        let RequestBody::Hold(stream) = &mut self.request else {
            return Action::Continue;
        };
        let buffer = BufferType::HttpRequestBody;
        match run_chunk(stream, &shared.requests, buffer, body_size, true) {
            Ok(length) => {
                let value = length.to_string();
                let map = MapType::HttpRequestHeaders;
                if hostcalls::set_map_value_bytes(map, "content-length", Some(value.as_bytes()))
                    .is_err()
                {
                    self.tally.host_errors += 1;
                }
                Action::Continue
            }
            Err(ChunkError::Failed(failure, len)) => self.fail_request(shared, &failure, len),
            Err(ChunkError::Host(_)) => self.fail_request_host(shared),
        }
    }

    /// A request body chunk through the driver, mirror -> origin.
    fn stream_request(&mut self, shared: &Shared, body_size: usize, end_of_stream: bool) -> Action {
        let RequestBody::Stream(stream) = &mut self.request else {
            return Action::Continue;
        };
        let buffer = BufferType::HttpRequestBody;
        match run_chunk(stream, &shared.requests, buffer, body_size, end_of_stream) {
            Ok(_) => Action::Continue,
            Err(ChunkError::Failed(failure, len)) => self.fail_request(shared, &failure, len),
            Err(ChunkError::Host(_)) => self.fail_request_host(shared),
        }
    }

    /// A request body that cannot reach the origin faithfully: reset the stream (the visitor
    /// sees the error; the origin never gets a changed or shortened body).
    fn fail_request(&mut self, shared: &Shared, failure: &Failure, chunk_len: usize) -> Action {
        shared.metrics.add(Counter::RequestBodiesReset, 1);
        log::warn!("request body reset: {failure}");
        self.reset_request(chunk_len)
    }

    fn fail_request_host(&mut self, shared: &Shared) -> Action {
        self.tally.host_errors += 1;
        shared.metrics.add(Counter::RequestBodiesReset, 1);
        log::warn!("a host call failed in a request body; the stream is reset");
        self.reset_request(0)
    }

    fn reset_request(&mut self, chunk_len: usize) -> Action {
        self.end_request_body();
        if chunk_len > 0 {
            let _ = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, chunk_len, &[]);
        }
        if hostcalls::reset_http_request().is_err() {
            self.tally.host_errors += 1;
        }
        Action::Pause
    }

    /// The body cannot be delivered faithfully: log why, count it, drop the chunk Envoy holds
    /// (`chunk_len` bytes, 0 in the trailers phase) and reset the stream. Returns the action that
    /// keeps anything else from leaving before the reset.
    fn fail(&mut self, shared: &Shared, failure: &Failure, chunk_len: usize) -> Action {
        let counter = match failure {
            Failure::TrailersAfterUndecided { .. } => Counter::BodiesResetUndecidedTail,
            Failure::Decode(e) if e.is_limit() => Counter::BodiesResetDecodeLimit,
            Failure::Decode(_) => Counter::BodiesResetBadEncoding,
        };
        shared.metrics.add(counter, 1);
        let path = hostcalls::get_property(vec!["request", "path"])
            .ok()
            .flatten()
            .unwrap_or_default();
        // The path without its query: a query can carry tokens, which have no place in logs.
        let path = path.split(|&b| b == b'?').next().unwrap_or_default();
        log::warn!(
            "response to {} reset: {failure}",
            String::from_utf8_lossy(path)
        );
        self.reset(chunk_len)
    }

    /// A host call failed in the middle of a body: the rest cannot be rewritten, and passing it
    /// on as it is could leak origin names or send encoded bytes as plain ones, so the stream is
    /// reset.
    fn host_failure(&mut self, shared: &Shared, chunk_len: usize) -> Action {
        self.tally.host_errors += 1;
        shared.metrics.add(Counter::BodiesResetHostError, 1);
        log::warn!("a host call failed in a response body; the stream is reset");
        self.reset(chunk_len)
    }

    fn reset(&mut self, chunk_len: usize) -> Action {
        self.end_response_body();
        if chunk_len > 0 {
            let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, chunk_len, &[]);
        }
        if hostcalls::reset_http_response().is_err() {
            self.tally.host_errors += 1;
        }
        Action::Pause
    }
}

/// Why a chunk could not go on: the body cannot be delivered faithfully, or a host call
/// failed; with the length of the chunk Envoy holds (to drop before the reset).
enum ChunkError {
    Failed(Failure, usize),
    Host(usize),
}

/// Puts the `body_size` bytes Envoy holds in `buffer` through `stream` and carries out its
/// plan; the length of what goes on, or why nothing may.
fn run_chunk(
    stream: &mut BodyStream,
    pipeline: &BodyRewriter,
    buffer: BufferType,
    body_size: usize,
    end_of_stream: bool,
) -> Result<usize, ChunkError> {
    let chunk = match hostcalls::get_buffer(buffer, 0, body_size) {
        Ok(chunk) => chunk.unwrap_or_default(),
        Err(_) => return Err(ChunkError::Host(body_size)),
    };
    let result = match stream.on_chunk(pipeline, &chunk, end_of_stream) {
        Plan::Keep => Ok(chunk.len()),
        Plan::Replace(bytes) => hostcalls::set_buffer(buffer, 0, chunk.len(), bytes)
            .map(|()| bytes.len())
            .map_err(|_| ChunkError::Host(chunk.len())),
        Plan::Fail(failure) => Err(ChunkError::Failed(failure, chunk.len())),
    };
    // The plan borrowed the stream's buffers until now.
    stream.shrink();
    result
}
