//! The geo redirect: visitors from the configured countries who ask for an origin host
//! (example.com) get one permanent redirect to the same path on the mirror host (example.cn).
//!
//! The decision is a pure function of the request's method, authority, path, cookies and
//! country, so it is tested here without a host. The rules, in the order they are checked:
//!
//! 1. Only `GET` and `HEAD` are redirected; a form post must not turn into a `GET` elsewhere.
//!    And only page loads: a request whose `Sec-Fetch-Mode` says it is not a navigation (a
//!    font, a `fetch`, a script loaded from another site) stays, because a redirect answered to
//!    a cross-origin request fails its CORS check in the browser and the request would break.
//!    Requests without the header (older browsers, curl) are treated as page loads.
//! 2. Only requests for a redirect host: by default every origin domain (and its subdomains
//!    where the pair has `subdomains`), or the configured `hosts`. A mirror host is never
//!    redirected, whatever the configuration says, so a loop is impossible.
//! 3. The path must be an origin-form path (`/...`) of visible ASCII, and not under an exempt
//!    prefix (by default `/.well-known/`, so certificate and other automated checks still reach
//!    the origin domain).
//! 4. A visitor carrying the opt-out cookie stays.
//! 5. The country comes from the country header (set by Envoy's geoip filter or a trusted CDN)
//!    or, where the configuration gives networks, from the downstream address. Only a listed
//!    country is redirected; an unknown country never is.
//!
//! The `Location` is built only from configured names: the scheme, the mirror host that the
//! request's host maps to, the optional configured port, and the request's path and query
//! byte for byte. Nothing from the `Host` header reaches it except through that mapping, so it
//! cannot be made to point anywhere else (no open redirect). The response carries
//! `Cache-Control: private, max-age=...`: a shared cache must never serve one country's
//! redirect to everyone, and the browser re-checks after `max_age` seconds.

use std::net::IpAddr;

use crate::domain::{split_port, Direction, HostMap};
use ferry_net::NetworkSet;

/// The redirect configuration, validated (see `config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectConfig {
    /// Upper-case ISO 3166-1 alpha-2 codes.
    pub countries: Vec<String>,
    /// Lower-case request header that carries the visitor's country, if it is used.
    pub country_header: Option<String>,
    /// The networks of the listed countries, if the country comes from the downstream address.
    pub networks: Option<NetworkSet>,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    /// `Cache-Control: private, max-age=<max_age>`.
    pub max_age: u32,
    /// Path prefixes that are never redirected.
    pub exempt_paths: Vec<String>,
    /// A cookie whose presence keeps the visitor on the origin domain.
    pub opt_out_cookie: Option<String>,
    /// Lower-case origin host names to redirect; `None`: every origin domain.
    pub hosts: Option<Vec<String>>,
    /// `https` or `http`.
    pub scheme: &'static str,
    /// The port to put in the `Location`, if not the scheme's default.
    pub port: Option<u16>,
}

/// What the decision needs to know about a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    pub method: &'a [u8],
    /// `:authority` (`host[:port]`).
    pub authority: &'a [u8],
    /// `:path`, with the query.
    pub path: &'a [u8],
    /// The value of the country header, if the request has it.
    pub country: Option<&'a [u8]>,
    /// Every `Cookie` header value.
    pub cookies: &'a [&'a [u8]],
    /// `Sec-Fetch-Mode`, if the browser sent it.
    pub fetch_mode: Option<&'a [u8]>,
}

/// The redirect to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectResponse {
    pub status: u16,
    pub location: String,
    pub cache_control: String,
    /// A short HTML page with a link, for clients that do not follow redirects.
    pub body: String,
}

/// Why a request is not redirected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stay {
    Method,
    /// A browser's subresource, `fetch` or XHR (`Sec-Fetch-Mode` other than `navigate`).
    NotNavigation,
    /// Not a redirect host (a mirror host, another site, an IP literal).
    Host,
    /// Not an origin-form path of visible ASCII.
    Path,
    Exempt,
    OptOut,
    /// No country: no header and no address, or an address in none of the networks.
    UnknownCountry,
    OtherCountry,
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Redirect(RedirectResponse),
    Stay(Stay),
}

impl RedirectConfig {
    /// Decides about one request. `source` (the downstream address) is only asked for when the
    /// country comes from the networks, so the caller's host call happens only then.
    pub fn decide(
        &self,
        hosts: &HostMap,
        request: &RequestFacts<'_>,
        source: impl FnOnce() -> Option<IpAddr>,
    ) -> Decision {
        if request.method != b"GET" && request.method != b"HEAD" {
            return Decision::Stay(Stay::Method);
        }
        if request
            .fetch_mode
            .is_some_and(|mode| !mode.trim_ascii().eq_ignore_ascii_case(b"navigate"))
        {
            return Decision::Stay(Stay::NotNavigation);
        }
        let Some(mirror_host) = self.mirror_host(hosts, request.authority) else {
            return Decision::Stay(Stay::Host);
        };
        let path = request.path;
        if path.first() != Some(&b'/') || !path.iter().all(|&b| (0x21..0x7f).contains(&b)) {
            return Decision::Stay(Stay::Path);
        }
        if self
            .exempt_paths
            .iter()
            .any(|prefix| path.starts_with(prefix.as_bytes()))
        {
            return Decision::Stay(Stay::Exempt);
        }
        if let Some(name) = &self.opt_out_cookie {
            if request.cookies.iter().any(|v| has_cookie(v, name)) {
                return Decision::Stay(Stay::OptOut);
            }
        }
        match self.country(request, source) {
            Country::Listed => {}
            Country::Other => return Decision::Stay(Stay::OtherCountry),
            Country::Unknown => return Decision::Stay(Stay::UnknownCountry),
        }
        // Checked above: visible ASCII only, so this is valid UTF-8 and a valid header value.
        let path = String::from_utf8_lossy(path);
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let location = format!("{}://{mirror_host}{port}{path}", self.scheme);
        Decision::Redirect(RedirectResponse {
            status: self.status,
            cache_control: format!("private, max-age={}", self.max_age),
            body: format!(
                "<!DOCTYPE html>\n<title>Moved</title>\n<p>This page is at <a href=\"{0}\">{0}</a>.</p>\n",
                html_escape(&location)
            ),
            location,
        })
    }

    /// The mirror host a redirect goes to, if the authority names a redirect host.
    fn mirror_host(&self, hosts: &HostMap, authority: &[u8]) -> Option<String> {
        let (host, _port) = split_port(authority);
        let host = host.strip_suffix(b".").unwrap_or(host);
        if hosts.is_mirror(host) {
            return None;
        }
        if let Some(list) = &self.hosts {
            if !list.iter().any(|h| h.as_bytes().eq_ignore_ascii_case(host)) {
                return None;
            }
        }
        let mirror = hosts.map(host, Direction::OriginToMirror)?;
        // Configured names and label bytes of the request's subdomain prefix (checked by
        // `HostMap`): ASCII, so this conversion never replaces anything.
        String::from_utf8(mirror).ok()
    }

    fn country(
        &self,
        request: &RequestFacts<'_>,
        source: impl FnOnce() -> Option<IpAddr>,
    ) -> Country {
        if self.country_header.is_some() {
            if let Some(value) = request.country.map(<[u8]>::trim_ascii) {
                if !value.is_empty() {
                    let listed = self
                        .countries
                        .iter()
                        .any(|c| c.as_bytes().eq_ignore_ascii_case(value));
                    return if listed {
                        Country::Listed
                    } else {
                        Country::Other
                    };
                }
            }
        }
        match (
            &self.networks,
            self.networks.as_ref().and_then(|_| source()),
        ) {
            (Some(networks), Some(addr)) if networks.contains(addr) => Country::Listed,
            (Some(_), Some(_)) => Country::Other,
            _ => Country::Unknown,
        }
    }
}

enum Country {
    Listed,
    Other,
    Unknown,
}

/// Whether a `Cookie` header value has a cookie named `name` (names are case-sensitive).
fn has_cookie(header: &[u8], name: &str) -> bool {
    header.split(|&b| b == b';').any(|pair| {
        let pair = pair.trim_ascii();
        let cookie_name = pair.split(|&b| b == b'=').next().unwrap_or(pair);
        cookie_name.trim_ascii() == name.as_bytes()
    })
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
