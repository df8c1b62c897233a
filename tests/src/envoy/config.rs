//! The shipped Envoy config, patched for a test: ports, the origin, the `.wasm`, the filter chain.
//!
//! Tests run the very config that ships (`envoy/ferry.yaml`), changed only where a test must:
//! listen on 127.0.0.1 with an ephemeral port, point the `origin` cluster at the test origin, use
//! the absolute path of the built `.wasm`, and optionally another plugin configuration, fewer
//! filters, or HTTP/2 to the origin. Filters are found by their `@type`, not their names.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::paths;

const COMPRESSOR: &str = "envoy.extensions.filters.http.compressor.v3.Compressor";
const DECOMPRESSOR: &str = "envoy.extensions.filters.http.decompressor.v3.Decompressor";
const WASM: &str = "envoy.extensions.filters.http.wasm.v3.Wasm";
const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Why a configuration could not be loaded or patched.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{name} is not valid YAML: {source}")]
    Yaml {
        name: String,
        source: serde_yaml::Error,
    },
    #[error("{name}: {what} not found")]
    Missing { name: String, what: String },
    #[error("{0}")]
    Artifact(String),
    #[error("cannot render the Envoy config: {0}")]
    Render(#[source] serde_yaml::Error),
}

/// An Envoy configuration to start: a loaded YAML document plus the patches to apply to it.
#[derive(Clone, Debug)]
pub struct EnvoyConfig {
    doc: Value,
    name: String,
    listen: SocketAddr,
    admin: SocketAddr,
    origin: Option<SocketAddr>,
    wasm: Option<PathBuf>,
    plugin_config: Option<String>,
    compressor: bool,
    decompressor: bool,
    ferry: bool,
    origin_http2: bool,
    log_level: String,
}

impl EnvoyConfig {
    /// `envoy/ferry.yaml`, to be run on 127.0.0.1 with ephemeral listener and admin ports.
    ///
    /// # Panics
    /// If the shipped config cannot be read or parsed.
    pub fn shipped() -> Self {
        Self::load(&paths::shipped_config()).unwrap_or_else(|err| panic!("{err}"))
    }

    /// The config in the YAML file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// The config in `text`; `name` says where it came from in error messages.
    pub fn parse(name: &str, text: &str) -> Result<Self, ConfigError> {
        let doc = serde_yaml::from_str(text).map_err(|source| ConfigError::Yaml {
            name: name.to_owned(),
            source,
        })?;
        Ok(Self {
            doc,
            name: name.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            origin: None,
            wasm: None,
            plugin_config: None,
            compressor: true,
            decompressor: true,
            ferry: true,
            origin_http2: false,
            log_level: "info".to_owned(),
        })
    }

    /// Listen on `addr` (default 127.0.0.1:0, an ephemeral port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Serve admin on `addr` (default 127.0.0.1:0, an ephemeral port).
    pub fn admin(mut self, addr: SocketAddr) -> Self {
        self.admin = addr;
        self
    }

    /// Send the `origin` cluster's traffic to `addr`.
    pub fn origin(mut self, addr: SocketAddr) -> Self {
        self.origin = Some(addr);
        self
    }

    /// Load the filter from `path` (default [`paths::wasm_path`]).
    pub fn wasm(mut self, path: impl Into<PathBuf>) -> Self {
        self.wasm = Some(path.into());
        self
    }

    /// Give the filter this plugin configuration (a JSON string) instead of the shipped one.
    pub fn plugin_config(mut self, json: impl Into<String>) -> Self {
        self.plugin_config = Some(json.into());
        self
    }

    /// Remove the compressor filter (responses reach the client as the filter left them).
    pub fn without_compressor(mut self) -> Self {
        self.compressor = false;
        self
    }

    /// Remove the decompressor filter (the filter sees the origin's encoding).
    pub fn without_decompressor(mut self) -> Self {
        self.decompressor = false;
        self
    }

    /// Remove the Ferry filter: the "no filter" baseline. No `.wasm` is needed then.
    pub fn without_ferry(mut self) -> Self {
        self.ferry = false;
        self
    }

    /// Speak HTTP/2 with prior knowledge to the origin (so the origin can send trailers).
    pub fn origin_http2(mut self) -> Self {
        self.origin_http2 = true;
        self
    }

    /// Envoy's log level (default `info`): trace, debug, info, warning, error, critical, off.
    pub fn log_level(mut self, level: &str) -> Self {
        level.clone_into(&mut self.log_level);
        self
    }

    /// Change the document directly, for what the other options do not cover. Runs now, before
    /// the other patches, which are applied when the config is rendered.
    pub fn edit(mut self, edit: impl FnOnce(&mut Value)) -> Self {
        edit(&mut self.doc);
        self
    }

    /// The listener address asked for (port 0 means ephemeral).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The log level Envoy is to run with.
    pub fn level(&self) -> &str {
        &self.log_level
    }

    /// The plugin configuration the filter will get: the one given, else the document's.
    pub fn plugin_config_json(&self) -> Option<String> {
        if let Some(json) = &self.plugin_config {
            return Some(json.clone());
        }
        let mut doc = self.doc.clone();
        let filter = http_filters(&mut doc)
            .into_iter()
            .flat_map(|filters| filters.iter_mut())
            .find(|filter| is_type(filter, WASM))?;
        let value = at(
            filter,
            &["typed_config", "config", "configuration", "value"],
        )?;
        value.as_str().map(str::to_owned)
    }

    /// The patched YAML.
    ///
    /// # Panics
    /// If a patch finds nothing to patch or the `.wasm` is missing, with the reason.
    pub fn render(&self) -> String {
        self.try_render().unwrap_or_else(|err| panic!("{err}"))
    }

    /// The patched YAML, or why it cannot be made.
    pub fn try_render(&self) -> Result<String, ConfigError> {
        let doc = self.patched()?;
        serde_yaml::to_string(&doc).map_err(ConfigError::Render)
    }

    /// The document with every patch applied.
    fn patched(&self) -> Result<Value, ConfigError> {
        let mut doc = self.doc.clone();
        let missing = |what: &str| ConfigError::Missing {
            name: self.name.clone(),
            what: what.to_owned(),
        };
        let admin = at(&mut doc, &["admin", "address", "socket_address"])
            .ok_or_else(|| missing("admin.address.socket_address"))?;
        set_socket(admin, self.admin);

        let listener = named(at(&mut doc, &["static_resources", "listeners"]), "mirror")
            .ok_or_else(|| missing("the listener named `mirror`"))?;
        let socket = at(listener, &["address", "socket_address"])
            .ok_or_else(|| missing("listener mirror: address.socket_address"))?;
        set_socket(socket, self.listen);

        let mut found_ferry = false;
        for filters in http_filters(&mut doc) {
            let dropped = |filter: &Value| {
                (!self.compressor && is_type(filter, COMPRESSOR))
                    || (!self.decompressor && is_type(filter, DECOMPRESSOR))
                    || (!self.ferry && is_type(filter, WASM))
            };
            filters.retain(|filter| !dropped(filter));
            for filter in filters.iter_mut().filter(|filter| is_type(filter, WASM)) {
                found_ferry = true;
                self.patch_wasm(filter, &missing)?;
            }
        }
        if self.ferry && self.plugin_config.is_some() && !found_ferry {
            return Err(missing("a wasm http filter to configure"));
        }

        let cluster = named(at(&mut doc, &["static_resources", "clusters"]), "origin")
            .ok_or_else(|| missing("the cluster named `origin`"))?;
        if let Some(origin) = self.origin {
            let socket = at(
                cluster,
                &["load_assignment", "endpoints", "0", "lb_endpoints", "0"],
            )
            .and_then(|endpoint| at(endpoint, &["endpoint", "address", "socket_address"]))
            .ok_or_else(|| missing("cluster origin: its first endpoint's socket_address"))?;
            set_socket(socket, origin);
        }
        if self.origin_http2 {
            let options = yaml(&format!(
                "{PROTOCOL_OPTIONS}:\n  '@type': type.googleapis.com/{PROTOCOL_OPTIONS}\n  \
                 explicit_http_config: {{ http2_protocol_options: {{}} }}\n"
            ));
            let map = cluster
                .as_mapping_mut()
                .ok_or_else(|| missing("cluster origin as a mapping"))?;
            map.insert("typed_extension_protocol_options".into(), options);
        }
        Ok(doc)
    }

    /// Point a wasm filter at the `.wasm` and give it the plugin configuration.
    fn patch_wasm(
        &self,
        filter: &mut Value,
        missing: &dyn Fn(&str) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let wasm = match &self.wasm {
            Some(path) => std::path::absolute(path).unwrap_or_else(|_| path.clone()),
            None => paths::try_wasm_path().map_err(ConfigError::Artifact)?,
        };
        let config = at(filter, &["typed_config", "config"])
            .ok_or_else(|| missing("wasm filter: typed_config.config"))?;
        let filename = at(config, &["vm_config", "code", "local", "filename"])
            .ok_or_else(|| missing("wasm filter: vm_config.code.local.filename"))?;
        *filename = Value::String(wasm.display().to_string());
        if let Some(json) = &self.plugin_config {
            let value = at(config, &["configuration", "value"])
                .ok_or_else(|| missing("wasm filter: configuration.value"))?;
            *value = Value::String(json.clone());
        }
        Ok(())
    }
}

/// The value at `path` under `value`; a numeric step indexes a sequence.
fn at<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter()
        .try_fold(value, |value, step| match step.parse::<usize>() {
            Ok(index) => value.as_sequence_mut()?.get_mut(index),
            Err(_) => value.get_mut(*step),
        })
}

/// The element of a sequence whose `name` is `name`.
fn named<'a>(seq: Option<&'a mut Value>, name: &str) -> Option<&'a mut Value> {
    seq?.as_sequence_mut()?
        .iter_mut()
        .find(|item| item.get("name").and_then(Value::as_str) == Some(name))
}

/// Whether a filter's `typed_config` has the `@type` of `proto`.
fn is_type(filter: &Value, proto: &str) -> bool {
    let found = filter
        .get("typed_config")
        .and_then(|config| config.get("@type"))
        .and_then(Value::as_str);
    found.and_then(|url| url.rsplit('/').next()) == Some(proto)
}

/// The `http_filters` lists of every HTTP connection manager in every listener.
fn http_filters(doc: &mut Value) -> Vec<&mut Vec<Value>> {
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
fn set_socket(socket: &mut Value, addr: SocketAddr) {
    let mut map = Mapping::new();
    map.insert("address".into(), addr.ip().to_string().into());
    map.insert("port_value".into(), u64::from(addr.port()).into());
    *socket = Value::Mapping(map);
}

/// A YAML snippet written in this file.
fn yaml(text: &str) -> Value {
    // The snippets are constants of this module, checked by its tests.
    serde_yaml::from_str(text).expect("built-in YAML snippet is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patched(config: EnvoyConfig) -> Value {
        serde_yaml::from_str(&config.render()).expect("rendered YAML parses")
    }

    #[test]
    fn the_baseline_has_no_wasm_and_listens_on_an_ephemeral_port() {
        let origin = SocketAddr::from(([127, 0, 0, 1], 4321));
        let doc = patched(EnvoyConfig::shipped().without_ferry().origin(origin));
        let text = serde_yaml::to_string(&doc).expect("renders");
        assert!(!text.contains(WASM), "{text}");
        assert!(text.contains("port_value: 4321"), "{text}");
        let listener = &doc["static_resources"]["listeners"][0]["address"]["socket_address"];
        assert_eq!(listener["address"].as_str(), Some("127.0.0.1"));
        assert_eq!(listener["port_value"].as_u64(), Some(0));
    }

    #[test]
    fn filters_can_be_dropped_and_the_origin_can_speak_http2() {
        let config = EnvoyConfig::shipped()
            .without_ferry()
            .without_compressor()
            .without_decompressor()
            .origin_http2();
        let text = config.render();
        assert!(
            !text.contains(COMPRESSOR) && !text.contains(DECOMPRESSOR),
            "{text}"
        );
        assert!(text.contains("http2_protocol_options"), "{text}");
    }

    #[test]
    fn the_shipped_plugin_config_is_readable() {
        let json = EnvoyConfig::shipped()
            .plugin_config_json()
            .expect("present");
        assert!(json.contains("\"domains\""), "{json}");
        let other = EnvoyConfig::shipped()
            .plugin_config("{}")
            .plugin_config_json();
        assert_eq!(other.as_deref(), Some("{}"));
    }
}
