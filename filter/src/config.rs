//! Plugin configuration: the JSON that Envoy hands to `on_configure`, parsed, then validated.
//!
//! Parsing is strict: an unknown field is an error (a typo must never pass silently), and every
//! error names the field path and the offending value, e.g.
//! `domains[1].mirror: "example.cn" is also domains[0].mirror`. The result is a [`Config`] of
//! typed, normalised values that the rest of the filter trusts without further checks.

use serde::Deserialize;
use std::collections::HashSet;

use crate::decode::DecodeLimits;
pub use crate::domain::DomainPair;
use crate::domain::{self, DomainError};
use crate::redirect::RedirectConfig;
use crate::rewrite::EmailPolicy;
use ferry_net::CidrError;

mod redirect;
mod requests;

pub use requests::{LargeRequests, RequestBodies, DEFAULT_REQUEST_CONTENT_TYPES};

/// Response content types that are rewritten when the configuration does not list its own:
/// every type of today's web platform that carries URLs as text. `application/*+json` and
/// `application/*+xml` are the structured-syntax suffixes (RFC 6839): vendor JSON APIs
/// (`application/vnd.api+json`, `application/problem+json`), feeds, manifests, DASH manifests.
pub const DEFAULT_CONTENT_TYPES: &[&str] = &[
    "text/html",
    "application/xhtml+xml",
    "text/css",
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "text/x-javascript",
    "application/ecmascript",
    "text/ecmascript",
    "application/json",
    "text/json",
    "application/*+json",
    "application/x-ndjson",
    "application/xml",
    "text/xml",
    "application/*+xml",
    "image/svg+xml",
    "text/plain",
    "text/event-stream",
    "application/vnd.apple.mpegurl",
    "application/x-mpegurl",
    "audio/mpegurl",
    "text/vtt",
];

/// Response headers whose values are rewritten origin -> mirror when the configuration does not
/// list its own: the headers of today's web platform whose value may carry a URL or an origin,
/// and the legacy ones still sent (`X-Content-Security-Policy`, `X-WebKit-CSP`, WordPress's
/// `X-Pingback`). `set-cookie` is special: only its `Domain` attribute is rewritten. Not
/// `WWW-Authenticate`: a Digest `realm` is part of the password hash, and a rewritten realm
/// would break the login.
pub const DEFAULT_RESPONSE_HEADERS: &[&str] = &[
    "location",
    "content-location",
    "refresh",
    "link",
    "set-cookie",
    "access-control-allow-origin",
    "content-security-policy",
    "content-security-policy-report-only",
    "reporting-endpoints",
    "report-to",
    "timing-allow-origin",
    "sourcemap",
    "x-sourcemap",
    "x-frame-options",
    "permissions-policy",
    "permissions-policy-report-only",
    "feature-policy",
    "speculation-rules",
    "x-xss-protection",
    "expect-ct",
    "x-content-security-policy",
    "x-webkit-csp",
    "x-pingback",
];

/// Why a configuration was refused. The message names the field and the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("configuration is not valid JSON for ferry: {path}: {message}")]
    Parse { path: String, message: String },
    #[error("domains: at least one {{\"origin\", \"mirror\"}} pair is required")]
    NoDomains,
    #[error("domains[{index}].{field}: {value:?} is not a valid domain name: {source}")]
    BadDomain {
        index: usize,
        field: &'static str,
        value: String,
        source: DomainError,
    },
    #[error("domains[{index}].{field}: {value:?} is also domains[{other}].{other_field}")]
    Duplicate {
        index: usize,
        field: &'static str,
        value: String,
        other: usize,
        other_field: &'static str,
    },
    #[error("{field}[{index}]: {value:?} is not valid: {reason}")]
    BadListItem {
        field: &'static str,
        index: usize,
        value: String,
        reason: &'static str,
    },
    #[error("{field}: the list is empty; leave the field out to use the defaults")]
    EmptyList { field: &'static str },
    #[error("{field}: {value:?} is not valid: {reason}")]
    Invalid {
        field: String,
        value: String,
        reason: String,
    },
    #[error("redirect.networks.{country}[{index}]: {value:?} is not valid: {source}")]
    BadNetwork {
        country: String,
        index: usize,
        value: String,
        source: CidrError,
    },
}

fn invalid(
    field: impl Into<String>,
    value: impl ToString,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// A field that takes one of a few words; absent, it is the first of `choices` (the default).
fn parse_choice<T: Copy>(
    field: &str,
    value: Option<&str>,
    choices: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(value) = value else {
        return Ok(choices[0].1);
    };
    match choices.iter().find(|(word, _)| *word == value) {
        Some(&(_, choice)) => Ok(choice),
        None => {
            let words: Vec<String> = choices
                .iter()
                .enumerate()
                .map(|(i, (word, _))| match i {
                    0 => format!("\"{word}\" (the default)"),
                    _ => format!("\"{word}\""),
                })
                .collect();
            Err(invalid(
                field,
                value,
                format!("expected {}", words.join(" or ")),
            ))
        }
    }
}

/// The JSON document as written by the operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    domains: Vec<RawDomain>,
    #[serde(default)]
    content_types: Option<Vec<String>>,
    #[serde(default)]
    response_headers: Option<Vec<String>>,
    #[serde(default = "default_true")]
    identity_encoding: bool,
    #[serde(default)]
    redirect: Option<redirect::RawRedirect>,
    #[serde(default)]
    integrity: Option<String>,
    #[serde(default)]
    decompression: Option<RawDecompression>,
    #[serde(default)]
    emails: Option<String>,
    #[serde(default)]
    request_bodies: Option<requests::RawRequestBodies>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDecompression {
    #[serde(default)]
    max_bytes: Option<u64>,
    #[serde(default)]
    max_ratio: Option<u64>,
}

/// Bounds of `decompression.max_bytes` and `decompression.max_ratio`.
const MAX_BYTES_RANGE: (u64, u64) = (1 << 20, 1 << 30);
const MAX_RATIO_RANGE: (u64, u64) = (10, 1_000_000);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    origin: String,
    mirror: String,
    #[serde(default)]
    subdomains: bool,
}

fn default_true() -> bool {
    true
}

/// A content type the filter rewrites: an exact `type/subtype`, a `type/*` family, or a
/// `type/*+suffix` structured syntax (`application/*+json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentTypeRule {
    Exact(String),
    Family(String),
    /// The type and the suffix with its `+`.
    Suffix(String, String),
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub domains: Vec<DomainPair>,
    pub content_types: Vec<ContentTypeRule>,
    /// Lowercase response header names to rewrite.
    pub response_headers: Vec<String>,
    /// Ask the origin for an uncompressed response (`Accept-Encoding: identity`).
    pub identity_encoding: bool,
    /// The geo redirect, if configured.
    pub redirect: Option<RedirectConfig>,
    /// What happens to `integrity` attributes of same-site scripts and stylesheets in HTML.
    pub integrity: IntegrityPolicy,
    /// How far a compressed response body may decode.
    pub decode_limits: DecodeLimits,
    /// Whether the domains of e-mail addresses are rewritten (both ways).
    pub emails: EmailPolicy,
    /// Which request bodies are rewritten mirror -> origin, and how.
    pub request_bodies: RequestBodies,
}

/// Subresource Integrity: a same-site script or stylesheet whose content the filter rewrites
/// no longer matches its `integrity` hash, and the browser would refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityPolicy {
    /// Drop `integrity` from `<script>` and `<link>` tags whose URL is relative or names a
    /// configured (origin or mirror) host. Third-party resources keep theirs. The default.
    DropSameSite,
    /// Leave every `integrity` attribute alone (for sites whose same-site resources never
    /// contain an origin domain name).
    Keep,
}

/// Default redirect status, cache lifetime and exempt paths.
pub const DEFAULT_REDIRECT_STATUS: u16 = 301;
pub const DEFAULT_REDIRECT_MAX_AGE: u32 = 3600;
pub const DEFAULT_EXEMPT_PATHS: &[&str] = &["/.well-known/"];
/// The header Envoy's geoip filter is configured to set in the shipped configs.
pub const DEFAULT_COUNTRY_HEADER: &str = "x-geo-country";

impl Config {
    /// Parses and validates the plugin configuration.
    pub fn from_json(json: &[u8]) -> Result<Config, ConfigError> {
        let de = &mut serde_json::Deserializer::from_slice(json);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::Parse {
                path: if path == "." {
                    "(document)".into()
                } else {
                    path
                },
                message: e.into_inner().to_string(),
            }
        })?;
        raw.validate()
    }

    /// Whether a response with this media type (lowercase, without parameters) is rewritten.
    pub fn rewrites_content_type(&self, media_type: &str) -> bool {
        matches_content_type(&self.content_types, media_type)
    }

    /// Whether a request body with this media type (lowercase, without parameters) is
    /// rewritten.
    pub fn rewrites_request_type(&self, media_type: &str) -> bool {
        matches_content_type(&self.request_bodies.content_types, media_type)
    }
}

/// Whether `media_type` (lowercase, without parameters) is one of `rules`.
fn matches_content_type(rules: &[ContentTypeRule], media_type: &str) -> bool {
    rules.iter().any(|rule| match rule {
        ContentTypeRule::Exact(t) => t == media_type,
        ContentTypeRule::Family(prefix) => media_type
            .strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.starts_with('/')),
        ContentTypeRule::Suffix(kind, suffix) => media_type
            .strip_prefix(kind.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|sub| sub.len() > suffix.len() && sub.ends_with(suffix.as_str())),
    })
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        if self.domains.is_empty() {
            return Err(ConfigError::NoDomains);
        }
        let mut domains = Vec::with_capacity(self.domains.len());
        for (index, d) in self.domains.into_iter().enumerate() {
            let check = |field: &'static str, value: String| {
                domain::normalize(&value).map_err(|source| ConfigError::BadDomain {
                    index,
                    field,
                    value,
                    source,
                })
            };
            let origin = check("origin", d.origin)?;
            let mirror = check("mirror", d.mirror)?;
            domains.push(DomainPair {
                origin,
                mirror,
                subdomains: d.subdomains,
            });
        }
        check_unique(&domains)?;

        let content_types = match self.content_types {
            None => DEFAULT_CONTENT_TYPES
                .iter()
                .map(|t| parse_content_type(t).expect("valid defaults"))
                .collect(),
            Some(list) => parse_list("content_types", list, parse_content_type)?,
        };
        let response_headers = match self.response_headers {
            None => DEFAULT_RESPONSE_HEADERS
                .iter()
                .map(|h| (*h).to_string())
                .collect(),
            Some(list) => parse_list("response_headers", list, parse_header_name)?,
        };
        let integrity = parse_choice(
            "integrity",
            self.integrity.as_deref(),
            &[
                ("drop_same_site", IntegrityPolicy::DropSameSite),
                ("keep", IntegrityPolicy::Keep),
            ],
        )?;
        let redirect = match self.redirect {
            None => None,
            Some(raw) => Some(raw.validate(&domains)?),
        };
        let emails = parse_choice(
            "emails",
            self.emails.as_deref(),
            &[
                ("keep", EmailPolicy::Keep),
                ("rewrite", EmailPolicy::Rewrite),
            ],
        )?;
        let request_bodies = match self.request_bodies {
            None => requests::RawRequestBodies::default().validate()?,
            Some(raw) => raw.validate()?,
        };
        let decode_limits = match self.decompression {
            None => DecodeLimits::default(),
            Some(raw) => raw.validate()?,
        };
        Ok(Config {
            domains,
            content_types,
            response_headers,
            identity_encoding: self.identity_encoding,
            redirect,
            integrity,
            decode_limits,
            emails,
            request_bodies,
        })
    }
}

impl RawDecompression {
    fn validate(self) -> Result<DecodeLimits, ConfigError> {
        let defaults = DecodeLimits::default();
        let within = |field: &str, value: Option<u64>, default: u64, (min, max): (u64, u64)| {
            let value = value.unwrap_or(default);
            if (min..=max).contains(&value) {
                Ok(value)
            } else {
                Err(invalid(
                    format!("decompression.{field}"),
                    value,
                    format!("expected {min} to {max}"),
                ))
            }
        };
        Ok(DecodeLimits {
            max_bytes: within(
                "max_bytes",
                self.max_bytes,
                defaults.max_bytes,
                MAX_BYTES_RANGE,
            )?,
            max_ratio: within(
                "max_ratio",
                self.max_ratio,
                defaults.max_ratio,
                MAX_RATIO_RANGE,
            )?,
        })
    }
}

/// Every origin and every mirror appears once, and no name is both an origin and a mirror (a
/// request would be rewritten into a name that is rewritten back).
fn check_unique(domains: &[DomainPair]) -> Result<(), ConfigError> {
    let mut seen: Vec<(&str, usize, &'static str)> = Vec::new();
    for (index, d) in domains.iter().enumerate() {
        for (field, value) in [("origin", &d.origin), ("mirror", &d.mirror)] {
            if let Some(&(_, other, other_field)) = seen.iter().find(|(v, ..)| *v == value) {
                return Err(ConfigError::Duplicate {
                    index,
                    field,
                    value: value.clone(),
                    other,
                    other_field,
                });
            }
            seen.push((value, index, field));
        }
    }
    Ok(())
}

fn parse_list<T>(
    field: &'static str,
    list: Vec<String>,
    parse: fn(&str) -> Result<T, &'static str>,
) -> Result<Vec<T>, ConfigError> {
    if list.is_empty() {
        return Err(ConfigError::EmptyList { field });
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (index, value) in list.into_iter().enumerate() {
        let lower = value.trim().to_ascii_lowercase();
        if !seen.insert(lower.clone()) {
            return Err(ConfigError::BadListItem {
                field,
                index,
                value,
                reason: "listed twice",
            });
        }
        match parse(&lower) {
            Ok(item) => out.push(item),
            Err(reason) => {
                return Err(ConfigError::BadListItem {
                    field,
                    index,
                    value,
                    reason,
                })
            }
        }
    }
    Ok(out)
}

fn is_token(s: &str) -> bool {
    // RFC 9110 token characters.
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_content_type(s: &str) -> Result<ContentTypeRule, &'static str> {
    const EXPECTED: &str = "expected type/subtype, e.g. text/html, text/* or application/*+json";
    let Some((kind, sub)) = s.split_once('/') else {
        return Err(EXPECTED);
    };
    if !is_token(kind) || kind.contains('*') {
        return Err(EXPECTED);
    }
    if sub == "*" {
        return Ok(ContentTypeRule::Family(kind.to_string()));
    }
    if let Some(suffix) = sub.strip_prefix("*+") {
        if is_token(suffix) && !suffix.contains(['*', '+']) {
            return Ok(ContentTypeRule::Suffix(
                kind.to_string(),
                format!("+{suffix}"),
            ));
        }
        return Err(EXPECTED);
    }
    if !is_token(sub) || sub.contains('*') {
        return Err(EXPECTED);
    }
    Ok(ContentTypeRule::Exact(s.to_string()))
}

fn parse_header_name(s: &str) -> Result<String, &'static str> {
    if !is_token(s) {
        return Err("not an HTTP header name");
    }
    if s.starts_with(':') || matches!(s, "content-length" | "content-encoding" | "etag") {
        return Err("this header is managed by the filter itself");
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests;
