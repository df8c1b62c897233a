//! The shipped Envoy configs, patched for a test: ports, the origin, the `.wasm`, the filter chain,
//! and for the node configs files, the relay range, the GeoIP database and the origin's TLS.
//!
//! Tests run the very configs that ship (`envoy/ferry.yaml`, and `envoy/us-east.yaml` and
//! `envoy/redirect.yaml` through [`EnvoyConfig::load`]), changed only where a test must: every
//! listener on 127.0.0.1 with an ephemeral port (admin reports each one's port by name), the
//! `origin` cluster pointed at the test origin, the absolute path of the built `.wasm`, and
//! optionally another plugin configuration, fewer filters, or HTTP/2 to the origin. For the node
//! configs also: the files under `/etc` replaced by local ones ([`EnvoyConfig::file`], see
//! [`node`](super::node)), the relays' address range (`direct_source_prefix_ranges`), the
//! country database, and the origin's CA, SNI and certificate name. Filters are found by their
//! `@type`, not their names.
//!
//! Every patch fails with [`ConfigError::Missing`] when the config has nothing it applies to, so
//! a change to a shipped config cannot silently make a test test something else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::yaml::{
    at, http_filters, is_type, listener_name, named, patch_geoip_db, patch_relay_prefixes,
    patch_virtual_host, set_socket, type_of, yaml, COMPRESSOR, PROTOCOL_OPTIONS, UPSTREAM_TLS,
    WASM,
};
use crate::paths;

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
    #[error("{name} names {path}, which is not in ferry_tests::envoy::node::FILES")]
    Undocumented { name: String, path: String },
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
    origin_host: Option<(String, u16)>,
    origin_ca: Option<PathBuf>,
    origin_name: Option<String>,
    listeners: Vec<(String, SocketAddr)>,
    files: Vec<(String, PathBuf)>,
    relay_prefixes: Option<Vec<String>>,
    geoip_db: Option<PathBuf>,
    virtual_hosts: Vec<(String, Vec<String>)>,
    wasm: Option<PathBuf>,
    plugin_config: Option<String>,
    compressor: bool,
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
            origin_host: None,
            origin_ca: None,
            origin_name: None,
            listeners: Vec::new(),
            files: Vec::new(),
            relay_prefixes: None,
            geoip_db: None,
            virtual_hosts: Vec::new(),
            wasm: None,
            plugin_config: None,
            compressor: true,
            ferry: true,
            origin_http2: false,
            log_level: "info".to_owned(),
        })
    }

    /// The main listener (the one named `mirror`, else the first) listens on `addr` (default
    /// 127.0.0.1:0, an ephemeral port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The listener named `name` listens on `addr` (default: 127.0.0.1:0 for every listener).
    pub fn listener_addr(mut self, name: &str, addr: SocketAddr) -> Self {
        self.listeners.push((name.to_owned(), addr));
        self
    }

    /// Replace the file path `shipped` (one of [`node::FILES`](super::node::FILES)) wherever the
    /// config names it by `local`.
    pub fn file(mut self, shipped: &str, local: impl Into<PathBuf>) -> Self {
        self.files.push((shipped.to_owned(), local.into()));
        self
    }

    /// Accept connections only from `cidrs` (e.g. `127.0.0.0/8`): replaces the
    /// `direct_source_prefix_ranges` of every filter chain that has them (the relays' range).
    pub fn relay_prefixes(mut self, cidrs: &[&str]) -> Self {
        self.relay_prefixes = Some(cidrs.iter().map(|cidr| (*cidr).to_owned()).collect());
        self
    }

    /// The geoip filter reads this country database.
    pub fn geoip_db(mut self, path: impl Into<PathBuf>) -> Self {
        self.geoip_db = Some(path.into());
        self
    }

    /// The virtual host named `name` (in every route config that has one) serves `domains`.
    pub fn virtual_host_domains(mut self, name: &str, domains: &[&str]) -> Self {
        let domains = domains.iter().map(|domain| (*domain).to_owned()).collect();
        self.virtual_hosts.push((name.to_owned(), domains));
        self
    }

    /// Send the `origin` cluster's traffic to `host:port` (a name Envoy resolves).
    pub fn origin_host(mut self, host: &str, port: u16) -> Self {
        self.origin_host = Some((host.to_owned(), port));
        self
    }

    /// Verify the origin's certificate against the CA certificates in `path` (the `origin`
    /// cluster's `trusted_ca`).
    pub fn origin_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.origin_ca = Some(path.into());
        self
    }

    /// Send `name` as SNI to the origin and require it in the origin's certificate (the `origin`
    /// cluster's `sni` and its one DNS subject alternative name matcher).
    pub fn origin_name(mut self, name: &str) -> Self {
        self.origin_name = Some(name.to_owned());
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

    /// Puts Envoy's PROXY protocol listener filter on the `mirror` listener of
    /// `envoy/ferry.yaml`, so tests can present any client address in a PROXY header.
    ///
    /// # Panics
    /// If the config has no listener named `mirror`.
    pub fn with_proxy_protocol(self) -> Self {
        self.edit(|doc| {
            let filter: Value = serde_yaml::from_str(
                r#"
name: envoy.filters.listener.proxy_protocol
typed_config:
  "@type": type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol
"#,
            )
            .expect("valid YAML");
            let listener = doc["static_resources"]["listeners"]
                .as_sequence_mut()
                .and_then(|listeners| {
                    listeners
                        .iter_mut()
                        .find(|l| l["name"].as_str() == Some("mirror"))
                })
                .expect("the config has a listener named mirror");
            listener["listener_filters"] = Value::Sequence(vec![filter]);
        })
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

        for (shipped, local) in &self.files {
            if super::node::substitute(&mut doc, shipped, &local.display().to_string()) == 0 {
                return Err(missing(&format!("the file {shipped}")));
            }
        }
        self.patch_listeners(&mut doc, &missing)?;
        if let Some(cidrs) = &self.relay_prefixes {
            patch_relay_prefixes(&mut doc, cidrs, &missing)?;
        }
        if let Some(path) = &self.geoip_db {
            patch_geoip_db(&mut doc, path, &missing)?;
        }
        for (name, domains) in &self.virtual_hosts {
            patch_virtual_host(&mut doc, name, domains, &missing)?;
        }

        let mut found_ferry = false;
        for filters in http_filters(&mut doc) {
            let dropped = |filter: &Value| {
                (!self.compressor && is_type(filter, COMPRESSOR))
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

        // `origin`, and its variants (`origin_ws`): the same origin, patched the same way.
        let clusters = at(&mut doc, &["static_resources", "clusters"])
            .and_then(Value::as_sequence_mut)
            .ok_or_else(|| missing("static_resources.clusters"))?;
        let mut found_origin = false;
        for cluster in clusters.iter_mut() {
            let name = cluster.get("name").and_then(Value::as_str).unwrap_or("");
            if name != "origin" && !name.starts_with("origin_") {
                continue;
            }
            found_origin |= name == "origin";
            self.patch_origin_cluster(cluster, &missing)?;
        }
        if !found_origin {
            return Err(missing("the cluster named `origin`"));
        }
        let cluster = named(at(&mut doc, &["static_resources", "clusters"]), "origin")
            .ok_or_else(|| missing("the cluster named `origin`"))?;
        if self.origin_http2 {
            // HTTP/2 with prior knowledge, keeping the cluster's other protocol options.
            let map = cluster
                .as_mapping_mut()
                .ok_or_else(|| missing("cluster origin as a mapping"))?;
            let typed = map
                .entry("typed_extension_protocol_options".into())
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            let options = typed
                .as_mapping_mut()
                .ok_or_else(|| missing("cluster origin: typed_extension_protocol_options"))?
                .entry(PROTOCOL_OPTIONS.into())
                .or_insert_with(|| {
                    yaml(&format!(
                        "'@type': type.googleapis.com/{PROTOCOL_OPTIONS}\n"
                    ))
                });
            let options = options
                .as_mapping_mut()
                .ok_or_else(|| missing("cluster origin: HttpProtocolOptions"))?;
            options.remove("auto_config");
            options.insert(
                "explicit_http_config".into(),
                yaml("http2_protocol_options: {}\n"),
            );
        }
        Ok(doc)
    }

    /// The origin's address and TLS (CA, SNI, certificate name) in one origin cluster.
    fn patch_origin_cluster(
        &self,
        cluster: &mut Value,
        missing: &dyn Fn(&str) -> ConfigError,
    ) -> Result<(), ConfigError> {
        if self.origin.is_some() || self.origin_host.is_some() {
            let socket = at(
                cluster,
                &["load_assignment", "endpoints", "0", "lb_endpoints", "0"],
            )
            .and_then(|endpoint| at(endpoint, &["endpoint", "address", "socket_address"]))
            .ok_or_else(|| missing("cluster origin: its first endpoint's socket_address"))?;
            if let Some(origin) = self.origin {
                set_socket(socket, origin);
            }
            if let Some((host, port)) = &self.origin_host {
                let mut map = Mapping::new();
                map.insert("address".into(), host.clone().into());
                map.insert("port_value".into(), u64::from(*port).into());
                *socket = Value::Mapping(map);
            }
        }
        if self.origin_ca.is_some() || self.origin_name.is_some() {
            self.patch_origin_tls(cluster, missing)?;
        }
        Ok(())
    }

    /// Every listener on 127.0.0.1:0, or where [`EnvoyConfig::listen`] and
    /// [`EnvoyConfig::listener_addr`] say.
    fn patch_listeners(
        &self,
        doc: &mut Value,
        missing: &dyn Fn(&str) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let listeners = at(doc, &["static_resources", "listeners"])
            .and_then(Value::as_sequence_mut)
            .filter(|listeners| !listeners.is_empty())
            .ok_or_else(|| missing("static_resources.listeners"))?;
        let main = listeners
            .iter()
            .position(|listener| listener_name(listener) == Some("mirror"))
            .unwrap_or(0);
        for (name, _) in &self.listeners {
            if !listeners
                .iter()
                .any(|listener| listener_name(listener) == Some(name))
            {
                return Err(missing(&format!("the listener named `{name}`")));
            }
        }
        for (index, listener) in listeners.iter_mut().enumerate() {
            let name = listener_name(listener).unwrap_or("?").to_owned();
            let wanted = self.listeners.iter().find(|(n, _)| *n == name);
            let addr = match wanted {
                Some((_, addr)) => *addr,
                None if index == main => self.listen,
                None => SocketAddr::from(([127, 0, 0, 1], 0)),
            };
            let socket = at(listener, &["address", "socket_address"])
                .ok_or_else(|| missing(&format!("listener {name}: address.socket_address")))?;
            set_socket(socket, addr);
            if addr.port() == 0 {
                // With SO_REUSEPORT (Envoy's default), bind(0) may hand out a port another
                // Envoy of this user already listens on, and the two would share connections:
                // tests running side by side would see each other's traffic.
                if let Value::Mapping(map) = listener {
                    map.insert("enable_reuse_port".into(), false.into());
                }
            }
        }
        Ok(())
    }

    /// The origin's CA, SNI and certificate name in the `origin` cluster's TLS context.
    fn patch_origin_tls(
        &self,
        cluster: &mut Value,
        missing: &dyn Fn(&str) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let context = cluster
            .get_mut("transport_socket")
            .and_then(|socket| socket.get_mut("typed_config"))
            .filter(|config| type_of(config) == Some(UPSTREAM_TLS))
            .ok_or_else(|| missing("cluster origin: an UpstreamTlsContext transport socket"))?;
        if let Some(name) = &self.origin_name {
            let sni = context
                .get_mut("sni")
                .ok_or_else(|| missing("cluster origin: UpstreamTlsContext.sni"))?;
            *sni = Value::String(name.clone());
            let matchers = at(
                context,
                &[
                    "common_tls_context",
                    "validation_context",
                    "match_typed_subject_alt_names",
                ],
            )
            .and_then(Value::as_sequence_mut)
            .filter(|matchers| matchers.len() == 1)
            .ok_or_else(|| {
                missing("cluster origin: exactly one match_typed_subject_alt_names matcher")
            })?;
            let exact = at(&mut matchers[0], &["matcher", "exact"])
                .ok_or_else(|| missing("cluster origin: a SAN matcher with `exact`"))?;
            *exact = Value::String(name.clone());
        }
        if let Some(ca) = &self.origin_ca {
            let filename = at(
                context,
                &[
                    "common_tls_context",
                    "validation_context",
                    "trusted_ca",
                    "filename",
                ],
            )
            .ok_or_else(|| missing("cluster origin: validation_context.trusted_ca.filename"))?;
            *filename = Value::String(ca.display().to_string());
        }
        Ok(())
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
            .origin_http2();
        let text = config.render();
        assert!(!text.contains(COMPRESSOR), "{text}");
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

    fn us_east() -> EnvoyConfig {
        EnvoyConfig::load(&super::super::node::us_east())
            .expect("envoy/us-east.yaml loads")
            .wasm("/opt/ferry/test.wasm")
    }

    #[test]
    fn the_node_patches_reach_every_place_they_name() {
        use super::super::node::{file_paths, MIRROR_CERT, SYSTEM_CA};
        let origin = SocketAddr::from(([127, 0, 0, 1], 4443));
        let doc = patched(
            us_east()
                .file(MIRROR_CERT, "/tmp/m.crt")
                .relay_prefixes(&["127.0.0.0/8"])
                .geoip_db("/tmp/geo.mmdb")
                .origin(origin)
                .origin_ca("/tmp/ca.pem")
                .origin_name("origin.test")
                .virtual_host_domains("ferry", &["a.test"]),
        );
        let text = serde_yaml::to_string(&doc).expect("renders");
        for listener in doc["static_resources"]["listeners"]
            .as_sequence()
            .expect("listeners")
        {
            let socket = &listener["address"]["socket_address"];
            assert_eq!(socket["address"].as_str(), Some("127.0.0.1"), "{text}");
            assert_eq!(socket["port_value"].as_u64(), Some(0), "{text}");
            let range =
                &listener["filter_chains"][0]["filter_chain_match"]["direct_source_prefix_ranges"];
            assert_eq!(range[0]["address_prefix"].as_str(), Some("127.0.0.0"));
            assert_eq!(range[0]["prefix_len"].as_u64(), Some(8));
        }
        let files = file_paths(&doc);
        assert!(
            files.contains("/tmp/m.crt") && !files.contains(MIRROR_CERT),
            "{files:?}"
        );
        assert!(files.contains("/tmp/geo.mmdb") && files.contains("/tmp/ca.pem"));
        assert!(!files.contains(SYSTEM_CA), "{files:?}");
        assert!(text.contains("sni: origin.test"), "{text}");
        assert!(text.contains("exact: origin.test"), "{text}");
        assert!(text.contains("port_value: 4443"), "{text}");
        assert!(text.contains("- a.test"), "{text}");
    }

    #[test]
    fn a_patch_with_nothing_to_patch_is_an_error() {
        let ferry = || EnvoyConfig::shipped().wasm("/opt/ferry/test.wasm");
        let cases: Vec<(&str, EnvoyConfig)> = vec![
            ("relay range", ferry().relay_prefixes(&["127.0.0.0/8"])),
            ("geoip", ferry().geoip_db("/tmp/geo.mmdb")),
            ("origin TLS", ferry().origin_ca("/tmp/ca.pem")),
            ("file", us_east().file("/etc/ferry/nothing.pem", "/tmp/x")),
            (
                "listener",
                us_east().listener_addr("nope", SocketAddr::from(([127, 0, 0, 1], 1))),
            ),
            (
                "virtual host",
                us_east().virtual_host_domains("nope", &["a.test"]),
            ),
        ];
        for (what, config) in cases {
            match config.try_render() {
                Err(ConfigError::Missing { .. }) => {}
                other => panic!("{what}: expected a Missing error, got {other:?}"),
            }
        }
    }
}
