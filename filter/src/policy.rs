//! Per-response decisions, taken once in the response-headers phase.
//!
//! Envoy sends response headers downstream before the first body byte, so whatever a rewritten
//! body implies for the headers must be decided here, from the headers alone: whether the body
//! is rewritten at all (and decoded first, when the origin compressed it anyway), and then that
//! `Content-Length` goes (Envoy re-frames the response, as chunked in HTTP/1.1),
//! `Accept-Ranges` goes (byte ranges of the origin's body do not address the rewritten one),
//! digests of the body go (`Content-Digest`, `Repr-Digest`, `Digest`, `Content-MD5`: the bytes
//! change), `Content-Encoding` goes for a decoded body, and a strong `ETag` becomes weak.
//!
//! The request side is decided in the request-headers phase the same way
//! ([`decide_request`]): whether a mirror request's body is rewritten mirror -> origin, and how
//! its length reaches the origin: held whole and sent with its exact new `Content-Length`, or
//! streamed without one, or passed as it is.

use crate::config::{Config, LargeRequests};
use crate::decode::{Coding, ContentEncoding};
use crate::multipart::Multipart;
use crate::stream::BodyKind;

/// What happens to a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPlan {
    /// Stream it through the rewriter, decoding it first if it has a coding.
    Rewrite(Option<Coding>),
    /// Pass it byte for byte.
    Pass(PassReason),
}

/// Why a body of a mirror response is passed untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassReason {
    /// HEAD, 1xx, 204, 304, or headers that end the stream.
    NoBody,
    /// The content type is not one the configuration rewrites (images, fonts, archives, ...).
    ContentType,
    /// A `Content-Encoding` Ferry cannot decode: never rewritten blindly.
    Compressed,
    /// A 206 partial response: its byte ranges refer to the origin's body.
    Partial,
}

/// The response headers the decision depends on.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseFacts<'a> {
    pub status: u16,
    pub content_type: Option<&'a [u8]>,
    pub content_encoding: Option<&'a [u8]>,
    /// The response has no body (Envoy ended the stream with the headers, or HEAD).
    pub headers_only: bool,
}

/// The decision for one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub body: BodyPlan,
    /// Remove `Content-Length`, `Accept-Ranges` and the body digests ([`BODY_HEADERS`]): the
    /// body's bytes and length may change.
    pub reframe: bool,
    /// Remove `Content-Encoding`: the body is decoded before it is rewritten.
    pub decode: bool,
    /// Turn a strong `ETag` into a weak one.
    pub weaken_etag: bool,
}

/// The headers that describe the origin's exact body bytes, removed from a rewritten response.
pub const BODY_HEADERS: &[&str] = &[
    "content-length",
    "accept-ranges",
    "content-digest",
    "repr-digest",
    "digest",
    "content-md5",
];

/// Decides what to do with the response to a mirror request.
pub fn decide(config: &Config, facts: &ResponseFacts<'_>) -> Decision {
    let rewritable = facts
        .content_type
        .is_some_and(|ct| config.rewrites_content_type(&media_type(ct)));
    let coding = match ContentEncoding::from_header(facts.content_encoding) {
        ContentEncoding::Identity => Ok(None),
        ContentEncoding::Decodable(coding) => Ok(Some(coding)),
        ContentEncoding::Unsupported => Err(()),
    };
    let no_body = facts.headers_only || matches!(facts.status, 100..=199 | 204 | 304);
    let body = match coding {
        _ if !rewritable => BodyPlan::Pass(PassReason::ContentType),
        Err(()) => BodyPlan::Pass(PassReason::Compressed),
        Ok(_) if facts.status == 206 => BodyPlan::Pass(PassReason::Partial),
        Ok(_) if no_body => BodyPlan::Pass(PassReason::NoBody),
        Ok(coding) => BodyPlan::Rewrite(coding),
    };
    // A HEAD answer or a 304 describes the body a GET would get, which is rewritten: it must
    // carry the same headers as that GET would.
    let would_rewrite = matches!(body, BodyPlan::Rewrite(_))
        || (body == BodyPlan::Pass(PassReason::NoBody) && facts.status != 204);
    Decision {
        body,
        reframe: would_rewrite,
        decode: would_rewrite && matches!(coding, Ok(Some(_))),
        weaken_etag: would_rewrite || facts.status == 304,
    }
}

/// Whether the media type is HTML (where same-site `integrity` attributes may be dropped).
pub fn is_html(media_type: &str) -> bool {
    media_type == "text/html" || media_type == "application/xhtml+xml"
}

/// The request headers the request-body decision depends on.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestBodyFacts<'a> {
    /// The request has no body (Envoy ended the stream with the headers).
    pub headers_only: bool,
    /// An upgrade (WebSocket) or CONNECT: what follows is not a body.
    pub upgrade: bool,
    pub content_type: Option<&'a [u8]>,
    pub content_encoding: Option<&'a [u8]>,
    pub content_length: Option<&'a [u8]>,
}

/// What happens to a mirror request's body.
#[derive(Debug, Clone)]
pub enum RequestBodyPlan {
    /// It reaches the origin as the visitor sent it.
    Pass(RequestPass),
    /// Held whole with the request's headers, rewritten, sent with its exact new
    /// `Content-Length`.
    Hold(BodyKind),
    /// Rewritten as it streams, without a `Content-Length`.
    Stream(BodyKind),
}

/// Why a mirror request's body is passed as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestPass {
    /// No body, or an empty one.
    NoBody,
    /// An upgrade or a CONNECT tunnel.
    Upgrade,
    /// A type the configuration does not rewrite (or a multipart body without a boundary).
    ContentType,
    /// A `Content-Encoding`: compressed request bodies are never rewritten.
    Compressed,
    /// A `Content-Length` over `request_bodies.hold_bytes`, with `large: pass`.
    Large,
}

/// Decides what to do with the body of a mirror request.
pub fn decide_request(config: &Config, facts: &RequestBodyFacts<'_>) -> RequestBodyPlan {
    use RequestBodyPlan::{Hold, Pass, Stream};
    if facts.headers_only {
        return Pass(RequestPass::NoBody);
    }
    if facts.upgrade {
        return Pass(RequestPass::Upgrade);
    }
    let Some(content_type) = facts.content_type else {
        return Pass(RequestPass::ContentType);
    };
    let media = media_type(content_type);
    if !config.rewrites_request_type(&media) {
        return Pass(RequestPass::ContentType);
    }
    if ContentEncoding::from_header(facts.content_encoding) != ContentEncoding::Identity {
        return Pass(RequestPass::Compressed);
    }
    let kind = if media == "multipart/form-data" {
        match Multipart::from_content_type(content_type) {
            Some(multipart) => BodyKind::Multipart(multipart),
            None => return Pass(RequestPass::ContentType),
        }
    } else {
        BodyKind::Text
    };
    let length = facts
        .content_length
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
    let bodies = &config.request_bodies;
    match length {
        Some(0) => Pass(RequestPass::NoBody),
        Some(n) if n <= bodies.hold_bytes => Hold(kind),
        Some(_) if bodies.large == LargeRequests::Pass => Pass(RequestPass::Large),
        _ => Stream(kind),
    }
}

/// `text/html; charset=utf-8` -> `text/html`.
pub fn media_type(content_type: &[u8]) -> String {
    let end = content_type
        .iter()
        .position(|&b| b == b';')
        .unwrap_or(content_type.len());
    String::from_utf8_lossy(content_type[..end].trim_ascii()).to_ascii_lowercase()
}

/// `"abc"` -> `W/"abc"`; `None` for an ETag that is already weak (or not an ETag).
pub fn weak_etag(etag: &[u8]) -> Option<Vec<u8>> {
    let etag = etag.trim_ascii();
    if etag.starts_with(b"W/") || etag.first() != Some(&b'"') {
        return None;
    }
    let mut out = Vec::with_capacity(etag.len() + 2);
    out.extend_from_slice(b"W/");
    out.extend_from_slice(etag);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_json(br#"{"domains":[{"origin":"example.com","mirror":"example.cn"}]}"#)
            .unwrap()
    }

    #[test]
    fn decisions() {
        use BodyPlan::*;
        use PassReason::*;
        let c = config();
        let html = Some(&b"text/html; charset=UTF-8"[..]);
        let png = Some(&b"image/png"[..]);
        let gzip = Some(&b"gzip"[..]);
        let br = Some(&b"br"[..]);
        let stacked = Some(&b"gzip, gzip"[..]);
        let plain = Rewrite(None);
        // (status, type, encoding, headers_only) -> (body, reframe, decode, weaken)
        let cases = [
            ((200, html, None, false), (plain, true, false, true)),
            (
                (200, Some(&b"Application/JSON"[..]), None, false),
                (plain, true, false, true),
            ),
            (
                (200, html, Some(&b"identity"[..]), false),
                (plain, true, false, true),
            ),
            ((404, html, None, false), (plain, true, false, true)),
            (
                (200, png, None, false),
                (Pass(ContentType), false, false, false),
            ),
            (
                (200, None, None, false),
                (Pass(ContentType), false, false, false),
            ),
            (
                (200, html, gzip, false),
                (Rewrite(Some(Coding::Gzip)), true, true, true),
            ),
            (
                (200, html, br, false),
                (Rewrite(Some(Coding::Brotli)), true, true, true),
            ),
            (
                (200, png, gzip, false),
                (Pass(ContentType), false, false, false),
            ),
            (
                (200, html, stacked, false),
                (Pass(Compressed), false, false, false),
            ),
            (
                (206, html, None, false),
                (Pass(Partial), false, false, false),
            ),
            (
                (206, html, gzip, false),
                (Pass(Partial), false, false, false),
            ),
            ((200, html, None, true), (Pass(NoBody), true, false, true)),
            ((200, html, gzip, true), (Pass(NoBody), true, true, true)),
            (
                (304, None, None, true),
                (Pass(ContentType), false, false, true),
            ),
            ((304, html, None, true), (Pass(NoBody), true, false, true)),
            ((204, html, None, true), (Pass(NoBody), false, false, false)),
        ];
        for ((status, ct, ce, headers_only), (body, reframe, decode, weaken)) in cases {
            let facts = ResponseFacts {
                status,
                content_type: ct,
                content_encoding: ce,
                headers_only,
            };
            let d = decide(&c, &facts);
            assert_eq!(
                (d.body, d.reframe, d.decode, d.weaken_etag),
                (body, reframe, decode, weaken),
                "{facts:?}"
            );
        }
    }

    #[test]
    fn request_body_decisions() {
        let config = |extra: &str| {
            Config::from_json(
                format!(
                    r#"{{"domains":[{{"origin":"example.com","mirror":"example.cn"}}]{extra}}}"#
                )
                .as_bytes(),
            )
            .unwrap()
        };
        let held = config(r#","request_bodies":{"hold_bytes":65536}"#);
        let streamed = config(r#","request_bodies":{"hold_bytes":1024,"large":"stream"}"#);
        let default = config("");
        let form = Some(&b"application/x-www-form-urlencoded"[..]);
        let multipart = Some(&b"multipart/form-data; boundary=xyz"[..]);
        let facts = |content_type, length: Option<&'static [u8]>| RequestBodyFacts {
            content_type,
            content_length: length,
            ..RequestBodyFacts::default()
        };
        let plan =
            |config: &Config, facts: RequestBodyFacts<'_>| match decide_request(config, &facts) {
                RequestBodyPlan::Pass(reason) => format!("pass {reason:?}"),
                RequestBodyPlan::Hold(kind) => format!("hold {}", kind_name(&kind)),
                RequestBodyPlan::Stream(kind) => format!("stream {}", kind_name(&kind)),
            };
        let cases: Vec<(&Config, RequestBodyFacts<'_>, &str)> = vec![
            (&held, facts(form, Some(b"100")), "hold text"),
            (&held, facts(form, Some(b"65536")), "hold text"),
            (&held, facts(form, Some(b"65537")), "pass Large"),
            (&held, facts(form, None), "stream text"),
            (&held, facts(form, Some(b"0")), "pass NoBody"),
            (&held, facts(multipart, Some(b"100")), "hold multipart"),
            (
                &held,
                facts(Some(b"multipart/form-data"), Some(b"100")),
                "pass ContentType",
            ),
            (
                &held,
                facts(Some(b"application/JSON"), Some(b"10")),
                "hold text",
            ),
            (
                &held,
                facts(Some(b"application/vnd.x+json"), Some(b"10")),
                "hold text",
            ),
            (
                &held,
                facts(Some(b"image/png"), Some(b"10")),
                "pass ContentType",
            ),
            (&held, facts(None, Some(b"10")), "pass ContentType"),
            (
                &held,
                RequestBodyFacts {
                    content_encoding: Some(b"gzip"),
                    ..facts(form, Some(b"10"))
                },
                "pass Compressed",
            ),
            (
                &held,
                RequestBodyFacts {
                    upgrade: true,
                    ..facts(form, Some(b"10"))
                },
                "pass Upgrade",
            ),
            (
                &held,
                RequestBodyFacts {
                    headers_only: true,
                    ..facts(form, None)
                },
                "pass NoBody",
            ),
            (&streamed, facts(form, Some(b"100000")), "stream text"),
            (&streamed, facts(form, Some(b"1000")), "hold text"),
            // By default nothing is held (it needs allow_on_headers_stop_iteration in Envoy).
            (&default, facts(form, Some(b"100")), "pass Large"),
            (&default, facts(form, None), "stream text"),
        ];
        for (config, facts, want) in cases {
            assert_eq!(plan(config, facts), want, "{facts:?}");
        }
    }

    fn kind_name(kind: &BodyKind) -> &'static str {
        match kind {
            BodyKind::Text => "text",
            BodyKind::Html => "html",
            BodyKind::Multipart(_) => "multipart",
        }
    }

    #[test]
    fn etags() {
        assert_eq!(weak_etag(b"\"abc\"").as_deref(), Some(&b"W/\"abc\""[..]));
        assert_eq!(weak_etag(b"W/\"abc\""), None);
        assert_eq!(weak_etag(b"abc"), None);
    }

    #[test]
    fn media_types() {
        assert_eq!(media_type(b" Text/HTML ; charset=utf-8"), "text/html");
        assert_eq!(media_type(b"application/json"), "application/json");
        assert_eq!(media_type(b"\xff/x"), "\u{fffd}/x");
    }
}
