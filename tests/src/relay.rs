//! The `ferry-relay` binary for a test: started from a generated TOML file, ready when it says
//! so, killed on drop.
//!
//! [`Relay::start`] writes [`RelayOptions`] as a relay config file (the format of
//! `relay/relay.example.toml`: one `[[listener]]` per [`RelayListener`], JSON logs, no drain on
//! exit) into a temp dir and runs `ferry-relay --config` on it (the binary from
//! [`paths::relay_bin`]; a missing one fails with "run `cargo build -p ferry-relay`"). It is ready
//! when its log says `listening` for every listener (a probe connection would be relayed like any
//! other, PROXY header included), within 10 s; if it exits first, the error carries its log.
//!
//! The relay cannot report the port it bound, so a listener asked for on port 0 gets a port the
//! harness reserves first: a socket bound to port 0 with `SO_REUSEPORT` (not listening), kept
//! until the relay listens. The relay binds its own `SO_REUSEPORT` sockets next to it, while the
//! kernel hands that port to no other `bind(0)` (it only shares ports that are asked for by
//! number), so no other Envoy or relay of a parallel test can end up sharing it. Should the bind
//! fail anyway, the relay is started again on new ports (three attempts).

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::paths;

/// How long the relay gets to listen.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(20);
/// Starts on fresh ports after a failed bind.
const ATTEMPTS: usize = 3;

/// The PROXY protocol header the relay sends upstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// No header: the upstream sees the relay's address.
    None,
    /// The text header, `PROXY TCP4 ...\r\n`.
    V1,
    /// The binary header.
    #[default]
    V2,
}

impl ProxyProtocol {
    /// The value in the relay's config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }
}

/// One relay listener: where it accepts, where it forwards, what it sends and trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayListener {
    /// The listener's name, in the relay's logs and metrics (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Where it accepts; port 0 for a free port.
    pub listen: SocketAddr,
    /// The upstreams it balances over.
    pub upstreams: Vec<SocketAddr>,
    /// The header it sends upstream.
    pub proxy_protocol: ProxyProtocol,
    /// CIDRs of L4 balancers whose own PROXY header the relay reads (and passes on the client
    /// address it carries); anyone else sending one is refused.
    pub accept_proxy_from: Vec<String>,
}

impl RelayListener {
    /// A listener on 127.0.0.1 (a free port) forwarding to `upstream` with a PROXY v2 header.
    pub fn new(name: &str, upstream: SocketAddr) -> Self {
        Self {
            name: name.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstreams: vec![upstream],
            proxy_protocol: ProxyProtocol::V2,
            accept_proxy_from: Vec::new(),
        }
    }

    /// Accept on `addr` (port 0 for a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Send `version` upstream.
    pub fn proxy_protocol(mut self, version: ProxyProtocol) -> Self {
        self.proxy_protocol = version;
        self
    }

    /// Read PROXY headers from connections from `cidr` (e.g. `127.0.0.0/8`).
    pub fn accept_proxy_from(mut self, cidr: &str) -> Self {
        self.accept_proxy_from.push(cidr.to_owned());
        self
    }
}

/// What to run: the listeners, and whether to serve metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayOptions {
    /// The listeners, at least one.
    pub listeners: Vec<RelayListener>,
    /// Serve Prometheus metrics on a free port of 127.0.0.1.
    pub metrics: bool,
}

impl RelayOptions {
    /// One listener named `default` forwarding to `upstream` (PROXY v2, no trusted balancer).
    pub fn new(upstream: SocketAddr) -> Self {
        Self {
            listeners: vec![RelayListener::new("default", upstream)],
            metrics: false,
        }
    }

    /// The first listener sends `version` upstream.
    pub fn proxy_protocol(mut self, version: ProxyProtocol) -> Self {
        self.first().proxy_protocol = version;
        self
    }

    /// The first listener reads PROXY headers from connections from `cidr`.
    pub fn accept_proxy_from(mut self, cidr: &str) -> Self {
        self.first().accept_proxy_from.push(cidr.to_owned());
        self
    }

    /// The first listener accepts on `addr`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.first().listen = addr;
        self
    }

    /// Another listener.
    pub fn listener(mut self, listener: RelayListener) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Serve metrics (see [`Relay::metrics`]).
    pub fn with_metrics(mut self) -> Self {
        self.metrics = true;
        self
    }

    fn first(&mut self) -> &mut RelayListener {
        // Built with one listener by `new`, and listeners are only ever added.
        self.listeners
            .first_mut()
            .expect("RelayOptions always has a first listener")
    }

    /// The relay config file for these options, with the addresses to use.
    fn to_toml(&self, listens: &[SocketAddr], metrics: Option<SocketAddr>) -> String {
        let quoted = |items: &mut dyn Iterator<Item = String>| {
            items
                .map(|item| format!("{item:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut toml = String::from(
            "# Written by ferry_tests::relay for one test.\nlog_format = \"json\"\ngrace = \"0s\"\n",
        );
        if let Some(addr) = metrics {
            let _ = writeln!(toml, "metrics = \"{addr}\"");
        }
        for (listener, listen) in self.listeners.iter().zip(listens) {
            let _ = write!(
                toml,
                "\n[[listener]]\nname = {:?}\nlisten = \"{listen}\"\nupstreams = [{}]\n\
                 proxy_protocol = \"{}\"\naccept_proxy_from = [{}]\n",
                listener.name,
                quoted(&mut listener.upstreams.iter().map(ToString::to_string)),
                listener.proxy_protocol.as_str(),
                quoted(&mut listener.accept_proxy_from.iter().cloned()),
            );
        }
        toml
    }
}

/// Why the relay did not start; `log` is everything it wrote.
#[derive(Debug, thiserror::Error)]
#[error("{reason}{}", log_tail(.log))]
pub struct RelayError {
    /// What went wrong.
    pub reason: String,
    /// The relay's output.
    pub log: String,
}

fn log_tail(log: &str) -> String {
    if log.trim().is_empty() {
        return String::new();
    }
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    format!("\n--- last lines of the ferry-relay log ---\n{tail}")
}

/// A running `ferry-relay`. Dropping it kills the process.
pub struct Relay {
    child: Child,
    dir: tempfile::TempDir,
    listeners: Vec<(String, SocketAddr)>,
    metrics: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
}

impl Relay {
    /// Start the relay and wait until every listener listens.
    ///
    /// # Panics
    /// If the binary is missing or the relay does not start, with its log.
    pub fn start(options: &RelayOptions) -> Self {
        Self::try_start(options).unwrap_or_else(|err| panic!("ferry-relay did not start: {err}"))
    }

    /// Start the relay; on failure, the reason and its log.
    pub fn try_start(options: &RelayOptions) -> Result<Self, RelayError> {
        let fail = |reason: String| RelayError {
            reason,
            log: String::new(),
        };
        if options.listeners.is_empty() {
            return Err(fail("no listener to run".to_owned()));
        }
        let bin = paths::try_relay_bin().map_err(fail)?;
        let mut last = None;
        for _ in 0..ATTEMPTS {
            match Self::attempt(&bin, options) {
                Ok(relay) => return Ok(relay),
                // Someone took a port between our check and the relay's bind: new ports.
                Err(err) if err.log.contains("Address already in use") => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| fail("no attempt was made".to_owned())))
    }

    fn attempt(bin: &std::path::Path, options: &RelayOptions) -> Result<Self, RelayError> {
        let fail = |reason: String| RelayError {
            reason,
            log: String::new(),
        };
        // Held until the relay listens (or fails); see the module docs.
        let mut reservations = Vec::new();
        let mut reserve = |addr: SocketAddr| {
            let (addr, reservation) =
                reserve_port(addr).map_err(|err| fail(format!("cannot reserve a port: {err}")))?;
            reservations.extend(reservation);
            Ok::<_, RelayError>(addr)
        };
        let listens = options
            .listeners
            .iter()
            .map(|listener| reserve(listener.listen))
            .collect::<Result<Vec<_>, _>>()?;
        let metrics = if options.metrics {
            Some(reserve(SocketAddr::from(([127, 0, 0, 1], 0)))?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("ferry-relay-")
            .tempdir()
            .map_err(|err| fail(format!("cannot make a temp dir: {err}")))?;
        let config = dir.path().join("relay.toml");
        std::fs::write(&config, options.to_toml(&listens, metrics))
            .map_err(|err| fail(format!("cannot write {}: {err}", config.display())))?;
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| fail(format!("cannot run {}: {err}", bin.display())))?;
        let log = Arc::new(Mutex::new(String::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            collect(pipe, Arc::clone(&log));
        }
        let listeners = options
            .listeners
            .iter()
            .zip(&listens)
            .map(|(listener, addr)| (listener.name.clone(), *addr))
            .collect();
        let mut relay = Self {
            child,
            dir,
            listeners,
            metrics,
            log,
        };
        relay.wait_ready()?;
        drop(reservations);
        Ok(relay)
    }

    /// Wait until the log says `listening` for every listener.
    fn wait_ready(&mut self) -> Result<(), RelayError> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let log = self.log();
            let listening = listening_names(&log);
            if self
                .listeners
                .iter()
                .all(|(name, _)| listening.iter().any(|n| n == name))
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return Err(RelayError {
                    reason: format!("ferry-relay exited ({status}) before it listened"),
                    log: self.log(),
                });
            }
            if Instant::now() >= deadline {
                return Err(RelayError {
                    reason: format!("ferry-relay did not listen within {START_DEADLINE:?}"),
                    log: self.log(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Where the first listener accepts.
    pub fn addr(&self) -> SocketAddr {
        self.listeners[0].1
    }

    /// Where the listener named `name` accepts.
    ///
    /// # Panics
    /// If there is no such listener.
    pub fn listener(&self, name: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, addr)| *addr)
            .unwrap_or_else(|| panic!("the relay has no listener named {name:?}"))
    }

    /// The config file the relay runs with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("relay.toml")
    }

    /// Everything the relay logged so far (JSON lines).
    pub fn log(&self) -> String {
        lock(&self.log).clone()
    }

    /// The relay's Prometheus text.
    ///
    /// # Panics
    /// If the relay was started without metrics, or they cannot be fetched.
    pub fn metrics(&self) -> String {
        let addr = self.metrics.expect("the relay was started without metrics");
        let client = crate::Client::http1(addr).with_timeout(Duration::from_secs(5));
        let response = client.get("relay", "/metrics");
        assert_eq!(response.status, 200, "relay /metrics: {}", response.text());
        response.text()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `addr`, or, if its port is 0, the same IP with a free port and the socket that holds it: bound
/// with `SO_REUSEADDR` and `SO_REUSEPORT` (so the relay, which sets both, can bind next to it),
/// never listening (so it takes no connection).
fn reserve_port(addr: SocketAddr) -> std::io::Result<(SocketAddr, Option<socket2::Socket>)> {
    if addr.port() != 0 {
        return Ok((addr, None));
    }
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    let bound = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("the reserved socket has no IP address"))?;
    Ok((bound, Some(socket)))
}

/// Append everything `pipe` yields to `log`, on a thread of its own.
fn collect(mut pipe: Box<dyn std::io::Read + Send>, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            lock(&log).push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

/// The listener names of the `listening` lines of a JSON log.
fn listening_names(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "listening")
        .filter_map(|line| line["fields"]["listener"].as_str().map(str::to_owned))
        .collect()
}

/// Lock `mutex`, ignoring poisoning (a reader thread cannot leave the text half-written).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_file_has_one_table_per_listener() {
        let upstream = SocketAddr::from(([127, 0, 0, 1], 443));
        let options = RelayOptions::new(upstream)
            .proxy_protocol(ProxyProtocol::V1)
            .listener(RelayListener::new("balancer", upstream).accept_proxy_from("127.0.0.0/8"));
        let listens = [
            SocketAddr::from(([127, 0, 0, 1], 1001)),
            SocketAddr::from(([127, 0, 0, 1], 1002)),
        ];
        let toml = options.to_toml(&listens, None);
        assert_eq!(toml.matches("[[listener]]").count(), 2, "{toml}");
        assert!(toml.contains("name = \"default\"\nlisten = \"127.0.0.1:1001\"\nupstreams = [\"127.0.0.1:443\"]\nproxy_protocol = \"v1\"\naccept_proxy_from = []"), "{toml}");
        assert!(
            toml.contains("accept_proxy_from = [\"127.0.0.0/8\"]"),
            "{toml}"
        );
        assert!(!toml.contains("metrics"), "{toml}");
    }

    #[test]
    fn listening_lines_are_found_by_listener() {
        let log = r#"{"fields":{"message":"listening","listener":"a","listen":"127.0.0.1:1"}}
not json
{"fields":{"message":"accepted","listener":"b"}}"#;
        assert_eq!(listening_names(log), ["a"]);
    }
}
