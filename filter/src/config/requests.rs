//! The `request_bodies` section of the configuration: which request bodies are rewritten
//! mirror -> origin, and how their length reaches the origin.

use serde::Deserialize;

use super::{invalid, parse_choice, parse_content_type, parse_list, ConfigError, ContentTypeRule};

/// Request content types whose bodies are rewritten when the configuration does not list its
/// own: what browsers and API clients send back to a site (forms, JSON, XML, plain text).
pub const DEFAULT_REQUEST_CONTENT_TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "application/json",
    "text/json",
    "application/*+json",
    "application/xml",
    "text/xml",
    "application/*+xml",
    "text/plain",
];

/// The most `hold_bytes` may be (what Envoy holds of a request body counts against the
/// stream's buffer limit: keep it within the smallest HTTP/2 stream window and listener limit
/// of the node).
const MAX_HOLD_BYTES: u64 = 1 << 20;

/// Which request bodies are rewritten, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBodies {
    pub content_types: Vec<ContentTypeRule>,
    /// A body with a `Content-Length` up to this many bytes is held whole (with the request's
    /// headers), rewritten, and sent with its exact new length. 0: never.
    pub hold_bytes: u64,
    /// What happens to a body with a `Content-Length` over `hold_bytes`.
    pub large: LargeRequests,
}

/// What happens to a request body with a `Content-Length` too large to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LargeRequests {
    /// It reaches the origin as the visitor sent it, with its `Content-Length` (mirror names
    /// in it stay). The default: many origins (Django on a WSGI server among them) lose a
    /// request body sent without a length.
    Pass,
    /// It is rewritten as it streams and reaches the origin without a `Content-Length`
    /// (chunked over HTTP/1.1), for origins that take that.
    Stream,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRequestBodies {
    #[serde(default)]
    content_types: Option<Vec<String>>,
    #[serde(default)]
    hold_bytes: Option<u64>,
    #[serde(default)]
    large: Option<String>,
}

impl RawRequestBodies {
    pub(super) fn validate(self) -> Result<RequestBodies, ConfigError> {
        let content_types = match self.content_types {
            None => DEFAULT_REQUEST_CONTENT_TYPES
                .iter()
                .map(|t| parse_content_type(t).expect("valid defaults"))
                .collect(),
            Some(list) => parse_list("request_bodies.content_types", list, parse_content_type)?,
        };
        let hold_bytes = self.hold_bytes.unwrap_or(0);
        if hold_bytes > MAX_HOLD_BYTES {
            return Err(invalid(
                "request_bodies.hold_bytes",
                hold_bytes,
                format!("expected 0 to {MAX_HOLD_BYTES}"),
            ));
        }
        let large = parse_choice(
            "request_bodies.large",
            self.large.as_deref(),
            &[
                ("pass", LargeRequests::Pass),
                ("stream", LargeRequests::Stream),
            ],
        )?;
        Ok(RequestBodies {
            content_types,
            hold_bytes,
            large,
        })
    }
}
