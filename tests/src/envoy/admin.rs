//! Envoy's admin API as the harness reads it: readiness, the bound listener port, stats.
//!
//! Admin's `/ready` says `LIVE` once every cluster and listener is initialised; only then does
//! `/listeners?format=json` report the ports the kernel gave the listeners (port 0 in the
//! config). `/stats` is plain `name: value` lines; histograms do not parse as numbers and are
//! skipped.

use std::net::{IpAddr, SocketAddr};

use crate::client::{Client, Request};

/// The value of the stat in admin `/stats` text whose name ends with `suffix`, e.g.
/// `ferry.requests_rewritten`; an exact name wins over suffix matches.
///
/// # Panics
/// If several stats end with `suffix` and none is named exactly that: the test must say which.
pub fn stat_value(stats: &str, suffix: &str) -> Option<u64> {
    let parsed: Vec<(&str, u64)> = stats
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(": ")?;
            Some((name, value.trim().parse().ok()?))
        })
        .collect();
    if let Some((_, value)) = parsed.iter().find(|(name, _)| *name == suffix) {
        return Some(*value);
    }
    let matches: Vec<&(&str, u64)> = parsed
        .iter()
        .filter(|(name, _)| name.ends_with(suffix))
        .collect();
    match matches.as_slice() {
        [] => None,
        [(_, value)] => Some(*value),
        several => panic!("several stats end with {suffix:?}: {several:?}"),
    }
}

/// Ask admin whether Envoy is live and where every listener is bound, in admin's order.
pub(super) fn listeners_when_ready(admin: &Client) -> Result<Vec<(String, SocketAddr)>, String> {
    let ready = admin
        .send(&Request::get("admin", "/ready"))
        .map_err(|err| format!("admin /ready: {err}"))?;
    if ready.status != 200 || ready.text().trim() != "LIVE" {
        return Err(format!(
            "admin /ready says {}: {}",
            ready.status,
            ready.text().trim()
        ));
    }
    let listeners = admin
        .send(&Request::get("admin", "/listeners?format=json"))
        .map_err(|err| format!("admin /listeners: {err}"))?;
    let json: serde_json::Value = serde_json::from_slice(&listeners.body)
        .map_err(|err| format!("admin /listeners is not JSON: {err}"))?;
    let statuses = json["listener_statuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if statuses.is_empty() {
        return Err(format!("admin /listeners lists no listener: {json}"));
    }
    statuses.iter().map(bound_listener).collect()
}

/// The name and the bound address of one entry of admin `/listeners?format=json`.
fn bound_listener(status: &serde_json::Value) -> Result<(String, SocketAddr), String> {
    let name = status["name"]
        .as_str()
        .ok_or_else(|| format!("a listener without a name: {status}"))?;
    let socket = &status["local_address"]["socket_address"];
    let port = socket["port_value"]
        .as_u64()
        .and_then(|port| u16::try_from(port).ok())
        .filter(|port| *port != 0)
        .ok_or_else(|| format!("the `{name}` listener has no port yet: {status}"))?;
    let ip = match socket["address"].as_str().map(str::parse) {
        Some(Ok::<IpAddr, _>(ip)) if !ip.is_unspecified() => ip,
        _ => IpAddr::from([127, 0, 0, 1]),
    };
    Ok((name.to_owned(), SocketAddr::new(ip, port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exact_name_wins_and_histograms_are_skipped() {
        let stats = "cluster.origin.upstream_rq_total: 3\n\
                     http.ferry.downstream_rq_total: 5\n\
                     http.ferry.downstream_rq_time: P0(nan,1) P25(nan,2)\n\
                     wasmcustom.ferry.requests_rewritten: 2\n";
        assert_eq!(stat_value(stats, "ferry.requests_rewritten"), Some(2));
        assert_eq!(stat_value(stats, "http.ferry.downstream_rq_total"), Some(5));
        assert_eq!(stat_value(stats, "downstream_rq_time"), None);
        assert_eq!(stat_value(stats, "missing"), None);
    }
}
