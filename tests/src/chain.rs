//! The whole deployment chain on loopback: visitor -> `ferry-relay` -> Envoy running the shipped
//! `envoy/us-east.yaml` -> the origin over TLS.
//!
//! [`Chain::start`] makes a local CA and certificates (the mirror's and the origin domain's for
//! Envoy, the origin's own), a country database from `tests/data/geo-sample.txt`, starts a TLS
//! test origin serving the demo [`Site`] (or nothing, for tests that add routes, or no local
//! origin at all when the chain points at a real one), Envoy with the node config patched only
//! where loopback demands ([`EnvoyConfig`]: addresses, files, the relay range 127.0.0.0/8, the
//! database, the origin's address and CA), and a relay in front with up to three listeners:
//!
//! - `visitors`: what browsers connect to; PROXY v2 to Envoy's `https` listener.
//! - `balancer`: the same, but trusting PROXY headers from 127.0.0.0/8, as from an L4 balancer,
//!   so a test can present any client address (1.0.1.7 in China, 8.8.8.8 in the United States)
//!   with [`Chain::client_from`].
//! - `http`: to Envoy's plain `http` listener, when the config has one.
//!
//! Everything stops when the [`Chain`] is dropped.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::client::Client;
use crate::envoy::node::{self, MIRROR_CERT, MIRROR_KEY, ORIGIN_CERT, ORIGIN_KEY};
use crate::envoy::{Envoy, EnvoyConfig};
use crate::origin::{Origin, Protocol};
use crate::pki::{Leaf, Pki};
use crate::relay::{Relay, RelayListener, RelayOptions};
use crate::site::Site;

/// The relay listener browsers use.
pub const VISITORS: &str = "visitors";
/// The relay listener that trusts PROXY headers from loopback.
pub const BALANCER: &str = "balancer";
/// The relay listener for plain HTTP.
pub const HTTP: &str = "http";

/// Where the origin is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginKind {
    /// A local TLS test origin serving the demo site.
    Site,
    /// A local TLS test origin with no routes: the test adds them ([`Chain::origin`]).
    Empty,
    /// A real origin at `host:port`, verified against the CA bundle `ca`; `host` is the SNI
    /// and the name its certificate must carry. With an `address`, Envoy connects there instead
    /// of resolving `host` (as curl's `--resolve` does).
    Remote {
        host: String,
        port: u16,
        ca: PathBuf,
        address: Option<SocketAddr>,
    },
}

/// How to build the chain. [`ChainOptions::default`] is the shipped node on loopback.
#[derive(Clone, Debug)]
pub struct ChainOptions {
    /// The Envoy config (default `envoy/us-east.yaml`).
    pub config: PathBuf,
    /// Where the CA, certificates and database go (default: a temp dir removed on drop).
    pub dir: Option<PathBuf>,
    /// The origin.
    pub origin: OriginKind,
    /// What the local origin speaks (ALPN `h2` and `http/1.1` by default; Envoy's origin
    /// cluster takes HTTP/2 when offered).
    pub origin_protocol: Protocol,
    /// The origin domain (default `example.com`, as in the shipped config).
    pub origin_domain: String,
    /// The mirror domain (default `example.cn`).
    pub mirror_domain: String,
    /// The names on the local origin's certificate (default the origin domain and its
    /// wildcard); another name shows that Envoy verifies it.
    pub origin_cert_names: Option<Vec<String>>,
    /// A certificate and key for the mirror domain instead of one from the local CA.
    pub mirror_cert: Option<(PathBuf, PathBuf)>,
    /// The relays' range Envoy accepts connections from (default `127.0.0.0/8`).
    pub relay_prefixes: Vec<String>,
    /// Where the relay's `visitors` listener accepts (default 127.0.0.1, a free port).
    pub relay_listen: SocketAddr,
    /// Where Envoy's admin listens (default 127.0.0.1, an ephemeral port).
    pub admin: SocketAddr,
    /// Another plugin configuration for the filter (default: the config's own, with the
    /// domains replaced when they are not the defaults).
    pub plugin_config: Option<String>,
    /// A country database instead of the one built from `tests/data/geo-sample.txt`.
    pub geo_db: Option<PathBuf>,
    /// Envoy's log level (default `info`).
    pub log_level: String,
    /// Run across an emulated long link: the relay in the first namespace (the visitors'
    /// side), Envoy and the origin in the second, Envoy's listeners on the link's address
    /// there (see [`ChainOptions::across`]). `None`: everything on this loopback.
    pub namespaces: Option<(String, String)>,
}

impl Default for ChainOptions {
    fn default() -> Self {
        Self {
            config: node::us_east(),
            dir: None,
            origin: OriginKind::Site,
            origin_protocol: Protocol::Auto,
            origin_domain: "example.com".to_owned(),
            mirror_domain: "example.cn".to_owned(),
            origin_cert_names: None,
            mirror_cert: None,
            relay_prefixes: vec!["127.0.0.0/8".to_owned()],
            relay_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            plugin_config: None,
            geo_db: None,
            log_level: "info".to_owned(),
            namespaces: None,
        }
    }
}

impl ChainOptions {
    /// A local origin with no routes.
    pub fn empty_origin(mut self) -> Self {
        self.origin = OriginKind::Empty;
        self
    }

    /// The local origin speaks only `protocol` (e.g. HTTP/1.1, so Envoy's cluster uses it).
    pub fn origin_protocol(mut self, protocol: Protocol) -> Self {
        self.origin_protocol = protocol;
        self
    }

    /// The local origin's certificate carries `names` (instead of the origin domain's).
    pub fn origin_cert_names(mut self, names: &[&str]) -> Self {
        self.origin_cert_names = Some(names.iter().map(|name| (*name).to_owned()).collect());
        self
    }

    /// Envoy accepts connections only from `cidrs`.
    pub fn relay_prefixes(mut self, cidrs: &[&str]) -> Self {
        self.relay_prefixes = cidrs.iter().map(|cidr| (*cidr).to_owned()).collect();
        self
    }

    /// The chain split across `link`: the relay on its cn side, Envoy (listening on the link's
    /// us address) and the origin on its us side; Envoy accepts the relay's link address. A
    /// visitor must then connect from the cn side ([`crate::link::in_namespace`]).
    pub fn across(mut self, link: &crate::link::Link) -> Self {
        self.namespaces = Some((link.cn().to_owned(), link.us().to_owned()));
        self.relay_prefixes = vec![format!("{}/32", crate::link::CN_ADDR)];
        self
    }

    /// The filter gets this plugin configuration.
    pub fn plugin_config(mut self, json: &str) -> Self {
        self.plugin_config = Some(json.to_owned());
        self
    }

    /// Whether the domains are the shipped config's, so that nothing about them is patched.
    fn shipped_domains(&self) -> bool {
        self.origin_domain == "example.com" && self.mirror_domain == "example.cn"
    }
}

/// A running chain. Dropping it stops the relay, Envoy and the origin.
pub struct Chain {
    relay: Relay,
    envoy: Envoy,
    /// What Envoy was started with, for [`Chain::restart_envoy`].
    envoy_config: EnvoyConfig,
    /// The us side's namespace, when the chain runs across a link.
    us: Option<String>,
    origin: Option<Origin>,
    site: Site,
    pki: Pki,
    mirror: Leaf,
    origin_leaf: Leaf,
    mirror_files: (PathBuf, PathBuf),
    plugin_config: String,
    // Last: the files must outlive the processes that read them.
    _temp: Option<tempfile::TempDir>,
}

impl Chain {
    /// Start the chain.
    ///
    /// # Panics
    /// If anything fails to start (a missing Envoy, `.wasm` or `ferry-relay` included), with
    /// the reason.
    pub fn start(options: ChainOptions) -> Self {
        Self::try_start(options).unwrap_or_else(|err| panic!("the chain did not start: {err}"))
    }

    /// Start the chain; on failure, why (Envoy's and the relay's log tails included).
    pub fn try_start(options: ChainOptions) -> Result<Self, String> {
        let (temp, dir) = match &options.dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("ferry-chain-")
                    .tempdir()
                    .map_err(|err| format!("cannot make a temp dir: {err}"))?;
                let dir = temp.path().to_owned();
                (Some(temp), dir)
            }
        };
        let pki = Pki::new(&dir).map_err(|err| err.to_string())?;
        let mirror = issue(&pki, "mirror", &options.mirror_domain)?;
        let origin_leaf = issue(&pki, "origin", &options.origin_domain)?;
        let mirror_files = options
            .mirror_cert
            .clone()
            .unwrap_or_else(|| (mirror.cert_pem.clone(), mirror.key_pem.clone()));
        let geo_db = match &options.geo_db {
            Some(path) => path.clone(),
            None => {
                let path = dir.join("geo.mmdb");
                node::write_sample_db(&path)?;
                path
            }
        };

        let mut config = EnvoyConfig::load(&options.config)
            .map_err(|err| err.to_string())?
            .admin(options.admin)
            .log_level(&options.log_level)
            .file(MIRROR_CERT, &mirror_files.0)
            .file(MIRROR_KEY, &mirror_files.1)
            .file(ORIGIN_CERT, &origin_leaf.cert_pem)
            .file(ORIGIN_KEY, &origin_leaf.key_pem)
            .relay_prefixes(&strs(&options.relay_prefixes))
            .geoip_db(&geo_db);
        let plugin_config = plugin_config(&config, &options)?;
        config = config.plugin_config(plugin_config.clone());
        if !options.shipped_domains() {
            let (origin, mirror) = (&options.origin_domain, &options.mirror_domain);
            let domains = [
                mirror.clone(),
                wildcard(mirror),
                origin.clone(),
                wildcard(origin),
            ];
            config = config.virtual_host_domains("ferry", &strs(&domains));
        }
        let site = Site::from_plugin_config(&plugin_config)?;
        // Across a link, each part starts on a thread inside its side's namespace: the
        // sockets it makes (and the processes it starts) live there.
        let (cn, us) = match &options.namespaces {
            Some((cn, us)) => (Some(cn.as_str()), Some(us.as_str())),
            None => (None, None),
        };
        if us.is_some() {
            let on_link = SocketAddr::from((crate::link::US_ADDR, 0));
            config = config.listener_addr("https", on_link);
        }
        let (config, origin) = within(us, || with_origin(config, &options, &pki, &site))?;
        let envoy = within(us, || Envoy::try_start(&config)).map_err(|err| err.to_string())?;
        let relay = within(cn, || start_relay(&envoy, options.relay_listen))?;
        Ok(Self {
            relay,
            envoy,
            envoy_config: config,
            us: us.map(str::to_owned),
            origin,
            site,
            pki,
            mirror,
            origin_leaf,
            mirror_files,
            plugin_config,
            _temp: temp,
        })
    }

    /// Restarts Envoy on the same addresses: the running one stops, and with it every
    /// connection it held (the relay's warm ones included); a new one starts on its ports.
    pub fn restart_envoy(&mut self) -> Result<(), String> {
        let mut config = self.envoy_config.clone();
        for (name, addr) in self.envoy.listeners() {
            config = config.listener_addr(name, *addr);
        }
        self.envoy.stop_in_place();
        self.envoy = within(self.us.as_deref(), || Envoy::try_start(&config))
            .map_err(|err| err.to_string())?;
        Ok(())
    }

    /// Where visitors connect: the relay's `visitors` listener.
    pub fn relay_addr(&self) -> SocketAddr {
        self.relay.listener(VISITORS)
    }

    /// The relay listener that reads a PROXY header from the client first.
    pub fn balancer_addr(&self) -> SocketAddr {
        self.relay.listener(BALANCER)
    }

    /// The relay listener for plain HTTP, if Envoy has an `http` listener.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.envoy
            .listeners()
            .iter()
            .any(|(name, _)| name == "http")
            .then(|| self.relay.listener(HTTP))
    }

    /// An HTTPS client through the relay, sending and verifying `host` (a mirror or origin
    /// host such as `www.example.cn`).
    pub fn client(&self, host: &str) -> Client {
        Client::https(self.relay_addr(), host, &self.ca_path())
    }

    /// An HTTPS client through the relay that poses as a visitor from `ip`: it connects to the
    /// `balancer` listener and sends a PROXY v1 header for `ip` first.
    pub fn client_from(&self, ip: IpAddr, host: &str) -> Client {
        let header = match ip {
            IpAddr::V4(ip) => format!("PROXY TCP4 {ip} 127.0.0.1 40000 443\r\n"),
            IpAddr::V6(ip) => format!("PROXY TCP6 {ip} ::1 40000 443\r\n"),
        };
        Client::https(self.balancer_addr(), host, &self.ca_path()).with_preamble(header)
    }

    /// The CA that issued every local certificate (`ca.pem`).
    pub fn ca_path(&self) -> PathBuf {
        self.pki.ca_path()
    }

    /// The directory of the CA, certificates and database.
    pub fn dir(&self) -> &Path {
        self.pki.dir()
    }

    /// The mirror certificate Envoy presents, from the local CA (unused if the options gave
    /// another one).
    pub fn mirror_leaf(&self) -> &Leaf {
        &self.mirror
    }

    /// The mirror certificate and key files Envoy uses.
    pub fn mirror_files(&self) -> &(PathBuf, PathBuf) {
        &self.mirror_files
    }

    /// The origin-domain certificate Envoy presents.
    pub fn origin_leaf(&self) -> &Leaf {
        &self.origin_leaf
    }

    /// The SubjectPublicKeyInfo (DER) of the mirror certificate from the local CA.
    pub fn mirror_spki(&self) -> &[u8] {
        &self.mirror.spki_der
    }

    /// The local origin.
    ///
    /// # Panics
    /// If the chain points at a remote origin.
    pub fn origin(&self) -> &Origin {
        self.local_origin()
            .expect("this chain has no local origin (it points at a remote one)")
    }

    /// The local test origin, or `None` when the chain points at a remote one.
    pub fn local_origin(&self) -> Option<&Origin> {
        self.origin.as_ref()
    }

    /// The demo site's domains, as the plugin configuration says.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// The plugin configuration the filter runs with.
    pub fn plugin_config(&self) -> &str {
        &self.plugin_config
    }

    /// Envoy: listeners, stats, logs, the access log.
    pub fn envoy(&self) -> &Envoy {
        &self.envoy
    }

    /// Envoy, to watch whether it exits.
    pub fn envoy_mut(&mut self) -> &mut Envoy {
        &mut self.envoy
    }

    /// The relay.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }
}

/// `*.domain`.
fn wildcard(domain: &str) -> String {
    format!("*.{domain}")
}

/// The strings of `items`.
fn strs(items: &[String]) -> Vec<&str> {
    items.iter().map(String::as_str).collect()
}

/// A certificate for `domain` and its subdomains, as `<stem>.crt` and `<stem>.key`.
fn issue(pki: &Pki, stem: &str, domain: &str) -> Result<Leaf, String> {
    pki.issue_as(stem, &[domain, &wildcard(domain)])
        .map_err(|err| err.to_string())
}

/// Point `config` at the origin the options ask for, starting the local one if that is it.
fn with_origin(
    config: EnvoyConfig,
    options: &ChainOptions,
    pki: &Pki,
    site: &Site,
) -> Result<(EnvoyConfig, Option<Origin>), String> {
    if let OriginKind::Remote {
        host,
        port,
        ca,
        address,
    } = &options.origin
    {
        let config = match address {
            Some(address) => config.origin(*address),
            None => config.origin_host(host, *port),
        };
        return Ok((config.origin_ca(ca).origin_name(host), None));
    }
    let domain = &options.origin_domain;
    let names = options
        .origin_cert_names
        .clone()
        .unwrap_or_else(|| vec![domain.clone(), wildcard(domain)]);
    let leaf = pki
        .issue_as("upstream", &strs(&names))
        .map_err(|err| err.to_string())?;
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let origin = Origin::bind_tls(any_port, options.origin_protocol, &leaf)
        .map_err(|err| format!("cannot start the TLS test origin: {err}"))?;
    if options.origin == OriginKind::Site {
        site.install(&origin);
    }
    let mut config = config.origin(origin.addr()).origin_ca(pki.ca_path());
    if !options.shipped_domains() {
        config = config.origin_name(domain);
    }
    Ok((config, Some(origin)))
}

/// `f`, on a thread in network namespace `ns` if there is one.
fn within<T: Send>(ns: Option<&str>, f: impl FnOnce() -> T + Send) -> T {
    match ns {
        Some(ns) => crate::link::in_namespace(ns, f),
        None => f(),
    }
}

/// The relay in front of Envoy's `https` (and `http`) listener.
fn start_relay(envoy: &Envoy, listen: SocketAddr) -> Result<Relay, String> {
    let https = envoy.listener("https");
    let mut options = RelayOptions {
        listeners: vec![
            // As deployed: warm connections to Envoy (relay/relay.example.toml).
            RelayListener::new(VISITORS, https).listen(listen).warm(2),
            RelayListener::new(BALANCER, https).accept_proxy_from("127.0.0.0/8"),
        ],
        metrics: true,
    };
    if let Some((_, http)) = envoy.listeners().iter().find(|(name, _)| name == "http") {
        options = options.listener(RelayListener::new(HTTP, *http));
    }
    Relay::try_start(&options).map_err(|err| err.to_string())
}

/// The plugin configuration: the options' own, else the config's, with its first domain pair
/// set to the chain's domains when they are not the shipped ones.
fn plugin_config(config: &EnvoyConfig, options: &ChainOptions) -> Result<String, String> {
    if let Some(json) = &options.plugin_config {
        return Ok(json.clone());
    }
    let shipped = config.plugin_config_json().ok_or_else(|| {
        format!(
            "{}: no Ferry plugin configuration",
            options.config.display()
        )
    })?;
    if (
        options.origin_domain.as_str(),
        options.mirror_domain.as_str(),
    ) == ("example.com", "example.cn")
    {
        return Ok(shipped);
    }
    let mut json: serde_json::Value = serde_json::from_str(&shipped)
        .map_err(|err| format!("the shipped plugin configuration is not JSON: {err}"))?;
    let pair = json["domains"]
        .get_mut(0)
        .ok_or("the shipped plugin configuration has no domain pair")?;
    pair["origin"] = options.origin_domain.clone().into();
    pair["mirror"] = options.mirror_domain.clone().into();
    Ok(json.to_string())
}
