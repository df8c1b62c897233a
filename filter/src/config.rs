//! Plugin configuration: the JSON that Envoy hands to `on_configure`, parsed, then validated.
//!
//! Parsing is strict: an unknown field is an error (a typo must never pass silently), and every
//! error names the field path and the offending value, e.g.
//! `domains[1].mirror: "example.cn" is also domains[0].mirror`. The result is a [`Config`] of
//! typed, normalised values that the rest of the filter trusts without further checks.

use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};

use crate::domain::{self, Direction, DomainError, HostMap};
use crate::networks::{Cidr, CidrError, NetworkSet};
use crate::redirect::RedirectConfig;

/// Response content types that are rewritten when the configuration does not list its own.
pub const DEFAULT_CONTENT_TYPES: &[&str] = &[
    "text/html",
    "text/css",
    "text/javascript",
    "application/javascript",
    "application/json",
    "application/ld+json",
    "application/manifest+json",
    "application/xml",
    "text/xml",
    "application/rss+xml",
    "application/atom+xml",
    "image/svg+xml",
    "text/plain",
];

/// Response headers whose values are rewritten origin -> mirror when the configuration does not
/// list its own. `set-cookie` is special: only its `Domain` attribute is rewritten.
pub const DEFAULT_RESPONSE_HEADERS: &[&str] = &[
    "location",
    "content-location",
    "refresh",
    "link",
    "set-cookie",
    "access-control-allow-origin",
    "content-security-policy",
    "content-security-policy-report-only",
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
    redirect: Option<RawRedirect>,
    #[serde(default)]
    integrity: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedirect {
    countries: Vec<String>,
    #[serde(default)]
    country_header: Option<String>,
    #[serde(default)]
    networks: Option<BTreeMap<String, RawNetworks>>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    max_age: Option<u32>,
    #[serde(default)]
    exempt_paths: Option<Vec<String>>,
    #[serde(default)]
    opt_out_cookie: Option<String>,
    #[serde(default)]
    hosts: Option<Vec<String>>,
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    port: Option<u16>,
}

/// A country's networks: a JSON list of strings, or one string of whitespace-separated
/// networks (what a conversion of the APNIC delegation file pastes most easily).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawNetworks {
    List(Vec<String>),
    Text(String),
}

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

/// One origin <-> mirror pair, normalised to lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPair {
    pub origin: String,
    pub mirror: String,
    /// Whether `sub.origin` <-> `sub.mirror` as well.
    pub subdomains: bool,
}

/// A content type the filter rewrites: an exact `type/subtype` or a `type/*` family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentTypeRule {
    Exact(String),
    Family(String),
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
        self.content_types.iter().any(|rule| match rule {
            ContentTypeRule::Exact(t) => t == media_type,
            ContentTypeRule::Family(prefix) => media_type
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.starts_with('/')),
        })
    }
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
                .map(|t| ContentTypeRule::Exact((*t).to_string()))
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
        let integrity = match self.integrity.as_deref() {
            None | Some("drop_same_site") => IntegrityPolicy::DropSameSite,
            Some("keep") => IntegrityPolicy::Keep,
            Some(other) => {
                return Err(invalid(
                    "integrity",
                    other,
                    "expected \"drop_same_site\" (the default) or \"keep\"",
                ))
            }
        };
        let redirect = match self.redirect {
            None => None,
            Some(raw) => Some(raw.validate(&domains)?),
        };
        Ok(Config {
            domains,
            content_types,
            response_headers,
            identity_encoding: self.identity_encoding,
            redirect,
            integrity,
        })
    }
}

impl RawRedirect {
    fn validate(self, domains: &[DomainPair]) -> Result<RedirectConfig, ConfigError> {
        if self.countries.is_empty() {
            return Err(ConfigError::EmptyList {
                field: "redirect.countries",
            });
        }
        let mut countries: Vec<String> = Vec::with_capacity(self.countries.len());
        for (index, code) in self.countries.iter().enumerate() {
            let upper = code.trim().to_ascii_uppercase();
            if upper.len() != 2 || !upper.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(invalid(
                    format!("redirect.countries[{index}]"),
                    code,
                    "expected a two-letter ISO 3166-1 country code such as \"CN\"",
                ));
            }
            if countries.contains(&upper) {
                return Err(invalid(
                    format!("redirect.countries[{index}]"),
                    code,
                    "listed twice",
                ));
            }
            countries.push(upper);
        }

        let networks = match self.networks {
            None => None,
            Some(map) => Some(parse_networks(map, &countries)?),
        };
        // Without networks the header is the only source, so it has a default; with networks
        // it is used only when named (a header nobody sanitizes must not decide).
        let country_header = match (self.country_header, &networks) {
            (Some(name), _) => {
                let lower = name.trim().to_ascii_lowercase();
                if !is_token(&lower) || lower.starts_with(':') {
                    return Err(invalid(
                        "redirect.country_header",
                        name,
                        "not an HTTP header name",
                    ));
                }
                Some(lower)
            }
            (None, None) => Some(DEFAULT_COUNTRY_HEADER.to_string()),
            (None, Some(_)) => None,
        };

        let status = self.status.unwrap_or(DEFAULT_REDIRECT_STATUS);
        if !matches!(status, 301 | 302 | 303 | 307 | 308) {
            return Err(invalid(
                "redirect.status",
                status,
                "expected a redirect status: 301, 302, 303, 307 or 308",
            ));
        }
        let max_age = self.max_age.unwrap_or(DEFAULT_REDIRECT_MAX_AGE);
        if max_age > 31_536_000 {
            return Err(invalid(
                "redirect.max_age",
                max_age,
                "more than a year (31536000 s)",
            ));
        }

        let exempt_paths = match self.exempt_paths {
            None => DEFAULT_EXEMPT_PATHS
                .iter()
                .map(|p| (*p).to_string())
                .collect(),
            Some(list) => {
                for (index, p) in list.iter().enumerate() {
                    if !p.starts_with('/') || !p.bytes().all(|b| (0x21..0x7f).contains(&b)) {
                        return Err(invalid(
                            format!("redirect.exempt_paths[{index}]"),
                            p,
                            "expected a path prefix starting with '/', e.g. \"/.well-known/\"",
                        ));
                    }
                }
                list
            }
        };

        let opt_out_cookie = match self.opt_out_cookie {
            None => None,
            Some(name) if is_token(&name) => Some(name),
            Some(name) => {
                return Err(invalid(
                    "redirect.opt_out_cookie",
                    name,
                    "not a cookie name",
                ));
            }
        };

        let map = HostMap::new(domains);
        let hosts = match self.hosts {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(ConfigError::EmptyList {
                    field: "redirect.hosts",
                })
            }
            Some(list) => {
                let mut out = Vec::with_capacity(list.len());
                for (index, host) in list.into_iter().enumerate() {
                    let field = format!("redirect.hosts[{index}]");
                    let name = match domain::normalize(&host) {
                        Ok(name) => name,
                        Err(e) => return Err(invalid(field, host, e.to_string())),
                    };
                    if map.is_mirror(name.as_bytes()) {
                        return Err(invalid(
                            field,
                            host,
                            "it is a mirror host; only origin hosts are redirected",
                        ));
                    }
                    if map
                        .map(name.as_bytes(), Direction::OriginToMirror)
                        .is_none()
                    {
                        return Err(invalid(field, host, "it is not an origin domain in `domains` (or a subdomain of one with subdomains: true)"));
                    }
                    out.push(name);
                }
                Some(out)
            }
        };

        let scheme = match self.scheme.as_deref() {
            None | Some("https") => "https",
            Some("http") => "http",
            Some(other) => {
                return Err(invalid(
                    "redirect.scheme",
                    other,
                    "expected \"https\" or \"http\"",
                ))
            }
        };
        if self.port == Some(0) {
            return Err(invalid(
                "redirect.port",
                0,
                "expected a port from 1 to 65535",
            ));
        }

        Ok(RedirectConfig {
            countries,
            country_header,
            networks,
            status,
            max_age,
            exempt_paths,
            opt_out_cookie,
            hosts,
            scheme,
            port: self.port,
        })
    }
}

/// Every country's networks, as one set: only membership in a redirected country matters.
fn parse_networks(
    map: BTreeMap<String, RawNetworks>,
    countries: &[String],
) -> Result<NetworkSet, ConfigError> {
    let mut cidrs = Vec::new();
    for (country, list) in map {
        if !countries.contains(&country) {
            return Err(invalid(
                format!("redirect.networks.{country}"),
                &country,
                "this country is not in redirect.countries (use upper-case codes); its networks would never be used",
            ));
        }
        let items: Vec<&str> = match &list {
            RawNetworks::List(items) => items.iter().map(String::as_str).collect(),
            RawNetworks::Text(text) => text.split_ascii_whitespace().collect(),
        };
        for (index, item) in items.into_iter().enumerate() {
            match Cidr::parse(item.trim()) {
                Ok(cidr) => cidrs.push(cidr),
                Err(source) => {
                    return Err(ConfigError::BadNetwork {
                        country,
                        index,
                        value: item.to_string(),
                        source,
                    })
                }
            }
        }
    }
    let set = NetworkSet::from_cidrs(cidrs);
    if set.is_empty() {
        return Err(ConfigError::EmptyList {
            field: "redirect.networks",
        });
    }
    Ok(set)
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
    let Some((kind, sub)) = s.split_once('/') else {
        return Err("expected type/subtype, e.g. text/html or text/*");
    };
    if !is_token(kind) || kind == "*" {
        return Err("expected type/subtype, e.g. text/html or text/*");
    }
    if sub == "*" {
        return Ok(ContentTypeRule::Family(kind.to_string()));
    }
    if !is_token(sub) {
        return Err("expected type/subtype, e.g. text/html or text/*");
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
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        Config::from_json(json.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn issue_example_parses_with_defaults() {
        let c = Config::from_json(
            br#"{"domains": [
              {"origin": "example.com", "mirror": "example.cn", "subdomains": true},
              {"origin": "examplecdn.net", "mirror": "cdn.example.cn", "subdomains": true}]}"#,
        )
        .unwrap();
        assert_eq!(c.domains.len(), 2);
        assert_eq!(c.domains[1].mirror, "cdn.example.cn");
        assert!(c.identity_encoding);
        assert!(c.rewrites_content_type("text/html"));
        assert!(c.rewrites_content_type("image/svg+xml"));
        assert!(!c.rewrites_content_type("image/png"));
        assert_eq!(c.response_headers.len(), DEFAULT_RESPONSE_HEADERS.len());
    }

    #[test]
    fn domains_are_normalised_to_lowercase() {
        let c =
            Config::from_json(br#"{"domains":[{"origin":"Example.COM","mirror":"EXAMPLE.cn"}]}"#)
                .unwrap();
        assert_eq!(c.domains[0].origin, "example.com");
        assert_eq!(c.domains[0].mirror, "example.cn");
        assert!(!c.domains[0].subdomains, "subdomains defaults to false");
    }

    #[test]
    fn every_error_names_the_field_and_the_value() {
        let cases: &[(&str, &[&str])] = &[
            ("not json", &["(document)", "expected"]),
            ("{}", &["missing field `domains`"]),
            (r#"{"domains": []}"#, &["domains", "at least one"]),
            (
                r#"{"domains": [{"origin": "", "mirror": "example.cn"}]}"#,
                &["domains[0].origin", "\"\"", "empty"],
            ),
            (
                r#"{"domains": [{"origin": "exa mple.com", "mirror": "example.cn"}]}"#,
                &["domains[0].origin", "\"exa mple.com\""],
            ),
            (
                r#"{"domains": [{"origin": "example.com", "mirror": "example.cn", "subdomains": "yes"}]}"#,
                &["domains[0].subdomains", "\"yes\"", "boolean"],
            ),
            (
                r#"{"domains": [{"origin": "example.com", "mirror": "example.cn", "subdomain": true}]}"#,
                &["domains[0]", "unknown field `subdomain`"],
            ),
            (
                r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}], "typo": 1}"#,
                &["unknown field `typo`"],
            ),
            (
                r#"{"domains": [{"origin": "a.com", "mirror": "example.cn"},
                                {"origin": "b.com", "mirror": "example.cn"}]}"#,
                &["domains[1].mirror", "\"example.cn\"", "domains[0].mirror"],
            ),
            (
                r#"{"domains": [{"origin": "example.com", "mirror": "example.com"}]}"#,
                &["domains[0].mirror", "\"example.com\"", "domains[0].origin"],
            ),
            (
                r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                    "content_types": ["text/html", "html"]}"#,
                &["content_types[1]", "\"html\"", "type/subtype"],
            ),
            (
                r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                    "content_types": []}"#,
                &["content_types", "empty"],
            ),
            (
                r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                    "response_headers": ["location", "Location"]}"#,
                &["response_headers[1]", "\"Location\"", "twice"],
            ),
            (
                r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                    "response_headers": ["content-length"]}"#,
                &["response_headers[0]", "managed by the filter"],
            ),
            (
                r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                    "identity_encoding": 1}"#,
                &["identity_encoding", "integer `1`", "boolean"],
            ),
            (
                r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                    "integrity": "drop"}"#,
                &["integrity", "\"drop\"", "drop_same_site"],
            ),
        ];
        for (json, needles) in cases {
            let message = err(json);
            for needle in *needles {
                assert!(
                    message.contains(needle),
                    "error for {json} is {message:?}, which lacks {needle:?}"
                );
            }
            assert!(!message.contains('\n'), "one line: {message:?}");
        }
    }

    #[test]
    fn redirect_errors_name_the_field_and_the_value() {
        let cases: &[(&str, &[&str])] = &[
            (r#"{}"#, &["redirect", "missing field `countries`"]),
            (r#"{"countries": []}"#, &["redirect.countries", "empty"]),
            (
                r#"{"countries": ["China"]}"#,
                &["redirect.countries[0]", "\"China\"", "two-letter"],
            ),
            (
                r#"{"countries": ["CN", "cn"]}"#,
                &["redirect.countries[1]", "twice"],
            ),
            (
                r#"{"countries": ["CN"], "status": 302.5}"#,
                &["redirect.status"],
            ),
            (
                r#"{"countries": ["CN"], "status": 200}"#,
                &["redirect.status", "200", "301, 302"],
            ),
            (
                r#"{"countries": ["CN"], "max_age": 99999999}"#,
                &["redirect.max_age", "99999999", "year"],
            ),
            (
                r#"{"countries": ["CN"], "max_age": -1}"#,
                &["redirect.max_age", "-1"],
            ),
            (
                r#"{"countries": ["CN"], "country_header": "x geo"}"#,
                &["redirect.country_header", "\"x geo\""],
            ),
            (
                r#"{"countries": ["CN"], "exempt_paths": ["/ok", "health"]}"#,
                &["redirect.exempt_paths[1]", "\"health\"", "'/'"],
            ),
            (
                r#"{"countries": ["CN"], "opt_out_cookie": "a=b"}"#,
                &["redirect.opt_out_cookie", "\"a=b\""],
            ),
            (
                r#"{"countries": ["CN"], "hosts": []}"#,
                &["redirect.hosts", "empty"],
            ),
            (
                r#"{"countries": ["CN"], "hosts": ["example.cn"]}"#,
                &["redirect.hosts[0]", "\"example.cn\"", "mirror"],
            ),
            (
                r#"{"countries": ["CN"], "hosts": ["other.test"]}"#,
                &["redirect.hosts[0]", "\"other.test\"", "not an origin"],
            ),
            (
                r#"{"countries": ["CN"], "hosts": ["www.example.com"]}"#,
                &["redirect.hosts[0]", "not an origin"],
            ),
            (
                r#"{"countries": ["CN"], "scheme": "ftp"}"#,
                &["redirect.scheme", "\"ftp\""],
            ),
            (
                r#"{"countries": ["CN"], "port": 0}"#,
                &["redirect.port", "1 to 65535"],
            ),
            (
                r#"{"countries": ["CN"], "port": 70000}"#,
                &["redirect.port", "70000"],
            ),
            (
                r#"{"countries": ["CN"], "networks": {"HK": ["1.0.1.0/24"]}}"#,
                &["redirect.networks.HK", "not in redirect.countries"],
            ),
            (
                r#"{"countries": ["CN"], "networks": {"CN": ["1.0.1.0/24", "1.0.2.1/23"]}}"#,
                &["redirect.networks.CN[1]", "\"1.0.2.1/23\"", "1.0.2.0/23"],
            ),
            (
                r#"{"countries": ["CN"], "networks": {"CN": "1.0.1.0/24  bogus"}}"#,
                &["redirect.networks.CN[1]", "\"bogus\""],
            ),
            (
                r#"{"countries": ["CN"], "networks": {"CN": []}}"#,
                &["redirect.networks", "empty"],
            ),
            (
                r#"{"countries": ["CN"], "networks": {"CN": 5}}"#,
                &["redirect.networks"],
            ),
            (
                r#"{"countries": ["CN"], "country": "CN"}"#,
                &["redirect", "unknown field `country`"],
            ),
        ];
        for (redirect, needles) in cases {
            let json = format!(
                r#"{{"domains": [{{"origin": "example.com", "mirror": "example.cn"}}], "redirect": {redirect}}}"#
            );
            let message = err(&json);
            for needle in *needles {
                assert!(
                    message.contains(needle),
                    "error for {redirect} is {message:?}, which lacks {needle:?}"
                );
            }
            assert!(!message.contains('\n'), "one line: {message:?}");
        }
    }

    #[test]
    fn redirect_defaults() {
        let c = Config::from_json(
            br#"{"domains":[{"origin":"example.com","mirror":"example.cn"}],
                 "redirect": {"countries": ["cn"]}}"#,
        )
        .unwrap();
        let r = c.redirect.unwrap();
        assert_eq!(r.countries, ["CN"]);
        assert_eq!(r.country_header.as_deref(), Some(DEFAULT_COUNTRY_HEADER));
        assert_eq!((r.status, r.max_age), (301, 3600));
        assert_eq!(r.exempt_paths, ["/.well-known/"]);
        assert_eq!(
            (r.scheme, r.port, r.hosts, r.opt_out_cookie),
            ("https", None, None, None)
        );
        assert!(r.networks.is_none());
        assert_eq!(c.integrity, IntegrityPolicy::DropSameSite);
    }

    #[test]
    fn content_type_families() {
        let c = Config::from_json(
            br#"{"domains":[{"origin":"example.com","mirror":"example.cn"}],
                 "content_types":["text/*","application/json"]}"#,
        )
        .unwrap();
        assert!(c.rewrites_content_type("text/html"));
        assert!(c.rewrites_content_type("text/x-anything"));
        assert!(c.rewrites_content_type("application/json"));
        assert!(!c.rewrites_content_type("textual/html"));
        assert!(!c.rewrites_content_type("application/javascript"));
    }
}
