//! Finding and changing things in an Envoy config as a YAML document: filters by their `@type`,
//! listeners and virtual hosts by name, and the patches that apply to every place they name.
//!
//! Each patch reports whether it found anything; [`EnvoyConfig`](super::EnvoyConfig) turns
//! "nothing found" into [`ConfigError::Missing`].

use std::net::SocketAddr;
use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::ConfigError;

pub(super) const COMPRESSOR: &str = "envoy.extensions.filters.http.compressor.v3.Compressor";
pub(super) const WASM: &str = "envoy.extensions.filters.http.wasm.v3.Wasm";
pub(super) const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
pub(super) const PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
pub(super) const MAXMIND: &str = "envoy.extensions.geoip_providers.maxmind.v3.MaxMindConfig";
pub(super) const UPSTREAM_TLS: &str =
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";

/// Replace the `direct_source_prefix_ranges` of every filter chain that has them.
pub(super) fn patch_relay_prefixes(
    doc: &mut Value,
    cidrs: &[String],
    missing: &dyn Fn(&str) -> ConfigError,
) -> Result<(), ConfigError> {
    let mut ranges = Vec::new();
    for cidr in cidrs {
        let (address, len) = cidr
            .split_once('/')
            .and_then(|(address, len)| Some((address, len.parse::<u64>().ok()?)))
            .ok_or_else(|| missing(&format!("a CIDR in {cidr:?}")))?;
        let mut range = Mapping::new();
        range.insert("address_prefix".into(), address.into());
        range.insert("prefix_len".into(), len.into());
        ranges.push(Value::Mapping(range));
    }
    let mut patched = 0;
    let listeners = at(doc, &["static_resources", "listeners"])
        .and_then(Value::as_sequence_mut)
        .ok_or_else(|| missing("static_resources.listeners"))?;
    for chain in listeners
        .iter_mut()
        .filter_map(|listener| listener.get_mut("filter_chains")?.as_sequence_mut())
        .flat_map(|chains| chains.iter_mut())
    {
        if let Some(prefixes) = at(
            chain,
            &["filter_chain_match", "direct_source_prefix_ranges"],
        ) {
            *prefixes = Value::Sequence(ranges.clone());
            patched += 1;
        }
    }
    if patched == 0 {
        return Err(missing("a filter chain with direct_source_prefix_ranges"));
    }
    Ok(())
}

/// Set the domains of every virtual host named `name`.
pub(super) fn patch_virtual_host(
    doc: &mut Value,
    name: &str,
    domains: &[String],
    missing: &dyn Fn(&str) -> ConfigError,
) -> Result<(), ConfigError> {
    let mut patched = 0;
    let listeners = at(doc, &["static_resources", "listeners"])
        .and_then(Value::as_sequence_mut)
        .ok_or_else(|| missing("static_resources.listeners"))?;
    let hcms = listeners
        .iter_mut()
        .filter_map(|listener| listener.get_mut("filter_chains")?.as_sequence_mut())
        .flat_map(|chains| chains.iter_mut())
        .filter_map(|chain| chain.get_mut("filters")?.as_sequence_mut())
        .flat_map(|filters| filters.iter_mut())
        .filter(|filter| is_type(filter, HCM));
    for hcm in hcms {
        let Some(hosts) = at(hcm, &["typed_config", "route_config", "virtual_hosts"])
            .and_then(Value::as_sequence_mut)
        else {
            continue;
        };
        for host in hosts
            .iter_mut()
            .filter(|host| listener_name(host) == Some(name))
        {
            let list = host
                .get_mut("domains")
                .ok_or_else(|| missing(&format!("virtual host {name}: domains")))?;
            *list = Value::Sequence(domains.iter().cloned().map(Value::String).collect());
            patched += 1;
        }
    }
    if patched == 0 {
        return Err(missing(&format!("a virtual host named `{name}`")));
    }
    Ok(())
}

/// Point every MaxMind geoip provider at the country database `path`.
pub(super) fn patch_geoip_db(
    doc: &mut Value,
    path: &Path,
    missing: &dyn Fn(&str) -> ConfigError,
) -> Result<(), ConfigError> {
    let mut patched = 0;
    for filters in http_filters(doc) {
        for filter in filters.iter_mut() {
            let Some(provider) = at(filter, &["typed_config", "provider", "typed_config"]) else {
                continue;
            };
            if type_of(provider) != Some(MAXMIND) {
                continue;
            }
            let db = provider
                .get_mut("country_db_path")
                .ok_or_else(|| missing("geoip filter: country_db_path"))?;
            *db = Value::String(path.display().to_string());
            patched += 1;
        }
    }
    if patched == 0 {
        return Err(missing("a geoip filter with the MaxMind provider"));
    }
    Ok(())
}

/// The `name` of a listener (or of anything else with a `name`).
pub(super) fn listener_name(listener: &Value) -> Option<&str> {
    listener.get("name").and_then(Value::as_str)
}

/// The proto name in the `@type` of a typed config.
pub(super) fn type_of(config: &Value) -> Option<&str> {
    config
        .get("@type")
        .and_then(Value::as_str)
        .and_then(|url| url.rsplit('/').next())
}

/// The value at `path` under `value`; a numeric step indexes a sequence.
pub(super) fn at<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter()
        .try_fold(value, |value, step| match step.parse::<usize>() {
            Ok(index) => value.as_sequence_mut()?.get_mut(index),
            Err(_) => value.get_mut(*step),
        })
}

/// The element of a sequence whose `name` is `name`.
pub(super) fn named<'a>(seq: Option<&'a mut Value>, name: &str) -> Option<&'a mut Value> {
    seq?.as_sequence_mut()?
        .iter_mut()
        .find(|item| item.get("name").and_then(Value::as_str) == Some(name))
}

/// Whether a filter's `typed_config` has the `@type` of `proto`.
pub(super) fn is_type(filter: &Value, proto: &str) -> bool {
    let found = filter
        .get("typed_config")
        .and_then(|config| config.get("@type"))
        .and_then(Value::as_str);
    found.and_then(|url| url.rsplit('/').next()) == Some(proto)
}

/// The `http_filters` lists of every HTTP connection manager in every listener.
pub(super) fn http_filters(doc: &mut Value) -> Vec<&mut Vec<Value>> {
    let Some(listeners) =
        at(doc, &["static_resources", "listeners"]).and_then(Value::as_sequence_mut)
    else {
        return Vec::new();
    };
    listeners
        .iter_mut()
        .filter_map(|listener| listener.get_mut("filter_chains")?.as_sequence_mut())
        .flat_map(|chains| chains.iter_mut())
        .filter_map(|chain| chain.get_mut("filters")?.as_sequence_mut())
        .flat_map(|filters| filters.iter_mut())
        .filter(|filter| is_type(filter, HCM))
        .filter_map(|hcm| at(hcm, &["typed_config", "http_filters"])?.as_sequence_mut())
        .collect()
}

/// Set a `socket_address` mapping to `addr`.
pub(super) fn set_socket(socket: &mut Value, addr: SocketAddr) {
    let mut map = Mapping::new();
    map.insert("address".into(), addr.ip().to_string().into());
    map.insert("port_value".into(), u64::from(addr.port()).into());
    *socket = Value::Mapping(map);
}

/// A YAML snippet written in this file.
pub(super) fn yaml(text: &str) -> Value {
    // The snippets are constants of this module, checked by its tests.
    serde_yaml::from_str(text).expect("built-in YAML snippet is valid")
}
