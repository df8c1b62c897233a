//! The `redirect` section of the configuration: the geo redirect's fields as written, and
//! their validation into a [`RedirectConfig`].

use serde::Deserialize;
use std::collections::BTreeMap;

use super::{invalid, is_token, ConfigError, DomainPair};
use super::{
    DEFAULT_COUNTRY_HEADER, DEFAULT_EXEMPT_PATHS, DEFAULT_REDIRECT_MAX_AGE, DEFAULT_REDIRECT_STATUS,
};
use crate::domain::{self, Direction, HostMap};
use crate::redirect::RedirectConfig;
use ferry_net::{Cidr, NetworkSet};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedirect {
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

impl RawRedirect {
    pub(super) fn validate(self, domains: &[DomainPair]) -> Result<RedirectConfig, ConfigError> {
        if self.countries.is_empty() {
            return Err(invalid(
                "redirect.countries",
                "[]",
                "at least one country code is required, e.g. [\"CN\"]",
            ));
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
            Some(map) => {
                // With networks as the only source, a listed country without networks would
                // silently never be redirected.
                if self.country_header.is_none() {
                    if let Some(missing) = countries.iter().find(|c| !map.contains_key(*c)) {
                        return Err(invalid(
                            format!("redirect.networks.{missing}"),
                            missing,
                            "this country is in redirect.countries but has no networks, and no country_header is named: its visitors would never be redirected",
                        ));
                    }
                }
                Some(parse_networks(map, &countries)?)
            }
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
            match item.trim().parse::<Cidr>() {
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
    let set: NetworkSet = cidrs.into_iter().collect();
    if set.is_empty() {
        return Err(invalid(
            "redirect.networks",
            "{}",
            "no networks at all; give each country's list, or leave the field out to use the country header",
        ));
    }
    Ok(set)
}
