//! Counters exported through the proxy-wasm metrics API; Envoy shows them on its admin `/stats`
//! (and `/stats/prometheus`) next to its own.
//!
//! Each HTTP context adds up its figures and flushes them once, when the stream is logged, so a
//! request costs a handful of host calls however many chunks its body has.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// The counters, by name. Every name starts with `ferry.`.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    /// Requests for a mirror host, rewritten mirror -> origin.
    RequestsMirror,
    /// Requests for any other host, passed through untouched.
    RequestsOther,
    /// Response bodies streamed through the rewriter.
    BodiesRewritten,
    /// Mirror response bodies decoded (gzip, deflate, br, zstd) before they were rewritten: the
    /// origin compressed although asked for identity.
    BodiesDecoded,
    /// Mirror response bodies passed untouched because of a `Content-Encoding` the filter does
    /// not decode.
    BodiesPassedCompressed,
    /// Mirror response bodies passed untouched because they were 206 partial content.
    BodiesPassedPartial,
    /// Body bytes that entered the rewriter.
    BodyBytesIn,
    /// Body bytes the rewriter produced.
    BodyBytesOut,
    /// Domain names replaced in bodies.
    BodyMatches,
    /// Header values rewritten, requests and responses.
    HeadersRewritten,
    /// Responses reset because trailers followed a body whose last bytes were undecided.
    BodiesResetUndecidedTail,
    /// Responses reset because their encoded body was corrupt, truncated or mislabelled.
    BodiesResetBadEncoding,
    /// Responses reset because their encoded body went over `decompression` limits.
    BodiesResetDecodeLimit,
    /// Responses reset because a host call failed in the middle of the body.
    BodiesResetHostError,
    /// Mirror requests whose `Range` was dropped so that the whole rewritten body is sent.
    RangesDropped,
    /// Mirror request bodies rewritten mirror -> origin (held or streamed).
    RequestBodiesRewritten,
    /// Mirror request bodies passed as sent because of their `Content-Encoding`.
    RequestBodiesPassedCompressed,
    /// Mirror request bodies passed as sent because their length is over `hold_bytes`.
    RequestBodiesPassedLarge,
    /// Mirror requests reset because their body could not reach the origin faithfully.
    RequestBodiesReset,
    /// Request body bytes into the rewriter.
    RequestBodyBytesIn,
    /// Request body bytes out of it.
    RequestBodyBytesOut,
    /// Names replaced in request bodies.
    RequestBodyMatches,
    /// Host calls that failed; the response went on unmodified from that point.
    HostErrors,
    /// `integrity` attributes dropped from same-site scripts and stylesheets in HTML.
    IntegrityRemoved,
    /// Geo redirects sent.
    Redirects,
    /// Requests from a redirected country that stayed because of the opt-out cookie.
    RedirectOptOuts,
}

const ALL: [(Counter, &str); 26] = [
    (Counter::RequestsMirror, "ferry.requests_mirror"),
    (Counter::RequestsOther, "ferry.requests_other"),
    (Counter::BodiesRewritten, "ferry.bodies_rewritten"),
    (Counter::BodiesDecoded, "ferry.bodies_decoded"),
    (
        Counter::BodiesPassedCompressed,
        "ferry.bodies_passed_compressed",
    ),
    (Counter::BodiesPassedPartial, "ferry.bodies_passed_partial"),
    (Counter::BodyBytesIn, "ferry.body_bytes_in"),
    (Counter::BodyBytesOut, "ferry.body_bytes_out"),
    (Counter::BodyMatches, "ferry.body_matches"),
    (Counter::HeadersRewritten, "ferry.headers_rewritten"),
    (
        Counter::BodiesResetUndecidedTail,
        "ferry.bodies_reset_undecided_tail",
    ),
    (
        Counter::BodiesResetBadEncoding,
        "ferry.bodies_reset_bad_encoding",
    ),
    (
        Counter::BodiesResetDecodeLimit,
        "ferry.bodies_reset_decode_limit",
    ),
    (
        Counter::BodiesResetHostError,
        "ferry.bodies_reset_host_error",
    ),
    (Counter::RangesDropped, "ferry.ranges_dropped"),
    (
        Counter::RequestBodiesRewritten,
        "ferry.request_bodies_rewritten",
    ),
    (
        Counter::RequestBodiesPassedCompressed,
        "ferry.request_bodies_passed_compressed",
    ),
    (
        Counter::RequestBodiesPassedLarge,
        "ferry.request_bodies_passed_large",
    ),
    (Counter::RequestBodiesReset, "ferry.request_bodies_reset"),
    (Counter::RequestBodyBytesIn, "ferry.request_body_bytes_in"),
    (Counter::RequestBodyBytesOut, "ferry.request_body_bytes_out"),
    (Counter::RequestBodyMatches, "ferry.request_body_matches"),
    (Counter::HostErrors, "ferry.host_errors"),
    (Counter::IntegrityRemoved, "ferry.integrity_removed"),
    (Counter::Redirects, "ferry.redirects"),
    (Counter::RedirectOptOuts, "ferry.redirect_opt_outs"),
];

// `Counter as usize` indexes `ALL`.
const _: () = {
    let mut i = 0;
    while i < ALL.len() {
        assert!(ALL[i].0 as usize == i);
        i += 1;
    }
};

/// Metric ids, defined once per VM in `on_configure`.
#[derive(Debug, Default)]
pub struct Metrics {
    ids: [Option<u32>; ALL.len()],
}

impl Metrics {
    /// Defines every counter. A counter Envoy refuses is logged and then ignored: metrics must
    /// never stop traffic.
    pub fn define() -> Metrics {
        let mut m = Metrics::default();
        for (i, (_, name)) in ALL.iter().enumerate() {
            match hostcalls::define_metric(MetricType::Counter, name) {
                Ok(id) => m.ids[i] = Some(id),
                Err(status) => log::warn!("metric {name} unavailable: {status:?}"),
            }
        }
        m
    }

    /// Adds `n` to a counter (nothing for zero).
    pub fn add(&self, counter: Counter, n: u64) {
        let Some(id) = self.ids[counter as usize] else {
            return;
        };
        if n > 0 {
            // A failure here would only lose a figure; nothing to do about it on the data path.
            let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

/// The figures one HTTP context collects before flushing them.
#[derive(Debug, Default)]
pub struct Tally {
    pub body_bytes_in: u64,
    pub body_bytes_out: u64,
    pub body_matches: u64,
    pub headers_rewritten: u64,
    pub host_errors: u64,
    pub integrity_removed: u64,
    pub request_body_bytes_in: u64,
    pub request_body_bytes_out: u64,
    pub request_body_matches: u64,
}

impl Tally {
    pub fn flush(&mut self, metrics: &Metrics) {
        let t = std::mem::take(self);
        metrics.add(Counter::BodyBytesIn, t.body_bytes_in);
        metrics.add(Counter::BodyBytesOut, t.body_bytes_out);
        metrics.add(Counter::BodyMatches, t.body_matches);
        metrics.add(Counter::HeadersRewritten, t.headers_rewritten);
        metrics.add(Counter::HostErrors, t.host_errors);
        metrics.add(Counter::IntegrityRemoved, t.integrity_removed);
        metrics.add(Counter::RequestBodyBytesIn, t.request_body_bytes_in);
        metrics.add(Counter::RequestBodyBytesOut, t.request_body_bytes_out);
        metrics.add(Counter::RequestBodyMatches, t.request_body_matches);
    }
}
