//! The `ferry-relay` binary for a test: run from a generated config file ([`Relay::start`], for
//! the chain) or with a command line of its own ([`Relay::start_args`], for the relay's own
//! tests), ready when it says so, killed on drop; its log, metrics, signals and exit.
//!
//! [`Relay::start`] writes [`RelayOptions`] as a relay config file (the format of
//! `relay/relay.example.toml`: one `[[listener]]` per [`RelayListener`], no drain on exit) into
//! a temp dir and runs `ferry-relay --config` on it (the binary from [`paths::relay_bin`]; a
//! missing one fails with "run `cargo build -p ferry-relay`"). Either way the relay logs JSON
//! lines, and is ready when it logs `ready` (every port bound), within 10 s; if it exits first,
//! the error carries its log. A probe connection would not do: it would be relayed like any
//! other, PROXY header included.
//!
//! Addresses come from the relay itself: a listener asked for on port 0 gets its port from the
//! kernel, and the harness reads it from the `listening` line (fields `listener`, `address`);
//! the metrics endpoint's from `metrics endpoint listening`. Nothing is reserved beforehand,
//! so no other process can take a port between a check and the relay's bind.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::paths;

/// How long the relay gets to bind every port, and a metric or a log line to appear.
const DEADLINE: Duration = Duration::from_secs(10);
/// How often readiness, logs and metrics are polled.
const POLL: Duration = Duration::from_millis(20);
/// The `message` of the relay's log line once every port is bound.
const READY: &str = "ready";
/// The `message` of the line that gives a listener's bound `address`.
const LISTENING: &str = "listening";
/// The `message` of the line that gives the metrics endpoint's bound `address`.
const METRICS_LISTENING: &str = "metrics endpoint listening";

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
    /// Where it accepts; with port 0 the kernel chooses (see [`Relay::listener`]).
    pub listen: SocketAddr,
    /// The upstreams it balances over.
    pub upstreams: Vec<SocketAddr>,
    /// The header it sends upstream.
    pub proxy_protocol: ProxyProtocol,
    /// CIDRs of L4 balancers whose own PROXY header the relay reads (and passes on the client
    /// address it carries); anyone else sending one is refused.
    pub accept_proxy_from: Vec<String>,
    /// Warm connections kept to each upstream (0: none).
    pub warm: usize,
}

impl RelayListener {
    /// A listener on 127.0.0.1, port 0 (the kernel chooses), forwarding to `upstream` with a
    /// PROXY v2 header.
    pub fn new(name: &str, upstream: SocketAddr) -> Self {
        Self {
            name: name.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstreams: vec![upstream],
            proxy_protocol: ProxyProtocol::V2,
            accept_proxy_from: Vec::new(),
            warm: 0,
        }
    }

    /// Keep `count` warm connections to each upstream (`warm` in the relay's config).
    pub fn warm(mut self, count: usize) -> Self {
        self.warm = count;
        self
    }

    /// Accept on `addr` (port 0: the kernel chooses).
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
    /// Serve Prometheus metrics on a port of 127.0.0.1 the kernel chooses.
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

    /// The relay config file for these options.
    fn to_toml(&self) -> String {
        let quoted = |items: &mut dyn Iterator<Item = String>| {
            items
                .map(|item| format!("{item:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut toml =
            String::from("# Written by ferry_tests::relay for one test.\ngrace = \"0s\"\n");
        if self.metrics {
            toml.push_str("metrics = \"127.0.0.1:0\"\n");
        }
        for listener in &self.listeners {
            let _ = write!(
                toml,
                "\n[[listener]]\nname = {:?}\nlisten = \"{}\"\nupstreams = [{}]\n\
                 proxy_protocol = \"{}\"\naccept_proxy_from = [{}]\nwarm = {}\n",
                listener.name,
                listener.listen,
                quoted(&mut listener.upstreams.iter().map(ToString::to_string)),
                listener.proxy_protocol.as_str(),
                quoted(&mut listener.accept_proxy_from.iter().cloned()),
                listener.warm,
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
    /// The temp dir of the config file ([`Relay::start`] only).
    dir: Option<tempfile::TempDir>,
    /// The listener [`Relay::addr`] names.
    first: String,
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
        let Some(first) = options.listeners.first() else {
            return Err(RelayError::new("no listener to run".to_owned()));
        };
        let bin = paths::try_relay_bin().map_err(RelayError::new)?;
        let dir = tempfile::Builder::new()
            .prefix("ferry-relay-")
            .tempdir()
            .map_err(|err| RelayError::new(format!("cannot make a temp dir: {err}")))?;
        let config = dir.path().join("relay.toml");
        std::fs::write(&config, options.to_toml())
            .map_err(|err| RelayError::new(format!("cannot write {}: {err}", config.display())))?;
        let args = [OsString::from("--config"), config.into_os_string()];
        let mut relay = Self::spawn(&bin, &args)?;
        relay.dir = Some(dir);
        relay.first.clone_from(&first.name);
        Ok(relay)
    }

    /// Run `bin` with `args` (a `ferry-relay` command line; `--log-format json` is added) and
    /// wait until every port is bound. [`Relay::addr`] is then the first listener's address.
    ///
    /// # Panics
    /// If the relay does not start, with its log.
    pub fn start_args(bin: &Path, args: &[&str]) -> Self {
        Self::try_start_args(bin, args)
            .unwrap_or_else(|err| panic!("ferry-relay {args:?} did not start: {err}"))
    }

    /// Like [`Relay::start_args`]; on failure, the reason and its log.
    pub fn try_start_args(bin: &Path, args: &[&str]) -> Result<Self, RelayError> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let mut relay = Self::spawn(bin, &args)?;
        relay.first = listening(&relay.log())
            .first()
            .map(|(name, _)| name.clone())
            .ok_or_else(|| RelayError {
                reason: "ferry-relay is ready without a listener".to_owned(),
                log: relay.log(),
            })?;
        Ok(relay)
    }

    fn spawn(bin: &Path, args: &[OsString]) -> Result<Self, RelayError> {
        let mut child = Command::new(bin)
            .args(args)
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| RelayError::new(format!("cannot run {}: {err}", bin.display())))?;
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
        let mut relay = Self {
            child,
            dir: None,
            first: String::new(),
            log,
        };
        relay.wait_ready()?;
        Ok(relay)
    }

    /// Wait until the log says the relay is ready.
    fn wait_ready(&mut self) -> Result<(), RelayError> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if !messages(&self.log(), READY).is_empty() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return Err(RelayError {
                    reason: format!("ferry-relay exited ({status}) before it was ready"),
                    log: self.log(),
                });
            }
            if Instant::now() >= deadline {
                return Err(RelayError {
                    reason: format!("ferry-relay was not ready within {DEADLINE:?}"),
                    log: self.log(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Where the first listener accepts.
    pub fn addr(&self) -> SocketAddr {
        self.listener(&self.first)
    }

    /// Where the listener named `name` accepts, as the relay last bound it.
    ///
    /// # Panics
    /// If the relay has not logged such a listener.
    pub fn listener(&self, name: &str) -> SocketAddr {
        listening(&self.log())
            .into_iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, addr)| addr)
            .unwrap_or_else(|| panic!("the relay has no listener named {name:?}"))
    }

    /// The config file the relay runs with.
    ///
    /// # Panics
    /// If the relay was started with [`Relay::start_args`].
    pub fn config_path(&self) -> PathBuf {
        let dir = self
            .dir
            .as_ref()
            .expect("the relay runs with its own command line");
        dir.path().join("relay.toml")
    }

    /// Everything the relay logged so far (JSON lines).
    pub fn log(&self) -> String {
        lock(&self.log).clone()
    }

    /// Wait until the log contains `needle`.
    ///
    /// # Panics
    /// If it does not within 10 s, with the log.
    pub fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the relay's log lacks {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Where the metrics endpoint listens.
    ///
    /// # Panics
    /// If the relay was started without metrics.
    pub fn metrics_addr(&self) -> SocketAddr {
        messages(&self.log(), METRICS_LISTENING)
            .first()
            .and_then(|line| line["fields"]["address"].as_str()?.parse().ok())
            .expect("the relay was started without metrics")
    }

    /// The relay's Prometheus text.
    ///
    /// # Panics
    /// If the relay was started without metrics, or they cannot be fetched.
    pub fn metrics(&self) -> String {
        let client = crate::Client::http1(self.metrics_addr()).with_timeout(Duration::from_secs(5));
        let response = client.get("relay", "/metrics");
        assert_eq!(response.status, 200, "relay /metrics: {}", response.text());
        response.text()
    }

    /// The value of one series, named with its labels as the relay writes them
    /// (`ferry_relay_connections_total{listener="default"}`); `None` if there is no such line.
    pub fn metric(&self, series: &str) -> Option<u64> {
        sample(&self.metrics(), series)
    }

    /// Wait until `series` exists and its value satisfies `until`; returns that value.
    ///
    /// # Panics
    /// If that does not happen within 10 s, with the metrics.
    pub fn wait_metric(&self, series: &str, until: impl Fn(u64) -> bool) -> u64 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let text = self.metrics();
            match sample(&text, series) {
                Some(value) if until(value) => return value,
                value => assert!(
                    Instant::now() < deadline,
                    "{series} stayed at {value:?}:\n{text}"
                ),
            }
            std::thread::sleep(POLL);
        }
    }

    /// Send SIGHUP: the relay reads its configuration again.
    pub fn reload(&self) {
        self.signal(Signal::SIGHUP);
    }

    /// Send SIGTERM: the relay stops accepting and drains open connections.
    pub fn terminate(&self) {
        self.signal(Signal::SIGTERM);
    }

    fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.pid()).expect("a pid fits in an i32"));
        kill(pid, signal).unwrap_or_else(|err| panic!("cannot send {signal} to the relay: {err}"));
    }

    /// Wait up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("the relay's status") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
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

impl RelayError {
    fn new(reason: String) -> Self {
        Self {
            reason,
            log: String::new(),
        }
    }
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

/// The lines of a JSON log whose message is `message`.
fn messages(log: &str, message: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["fields"]["message"] == message)
        .collect()
}

/// Each `listening` line's listener name and bound address, in the order logged.
fn listening(log: &str) -> Vec<(String, SocketAddr)> {
    messages(log, LISTENING)
        .iter()
        .filter_map(|line| {
            let fields = &line["fields"];
            let address = fields["address"].as_str()?.parse().ok()?;
            Some((fields["listener"].as_str()?.to_owned(), address))
        })
        .collect()
}

/// The value of `series` (name and labels) in a Prometheus text.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
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
            .listener(
                RelayListener::new("balancer", upstream)
                    .listen(SocketAddr::from(([127, 0, 0, 1], 1002)))
                    .accept_proxy_from("127.0.0.0/8"),
            );
        let toml = options.to_toml();
        assert_eq!(toml.matches("[[listener]]").count(), 2, "{toml}");
        assert!(toml.contains("name = \"default\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"127.0.0.1:443\"]\nproxy_protocol = \"v1\"\naccept_proxy_from = []"), "{toml}");
        assert!(
            toml.contains("listen = \"127.0.0.1:1002\"\nupstreams = [\"127.0.0.1:443\"]\nproxy_protocol = \"v2\"\naccept_proxy_from = [\"127.0.0.0/8\"]"),
            "{toml}"
        );
        assert!(!toml.contains("metrics"), "{toml}");
        assert!(options
            .with_metrics()
            .to_toml()
            .contains("metrics = \"127.0.0.1:0\""));
    }

    #[test]
    fn addresses_are_read_from_the_log() {
        let log = r#"{"fields":{"message":"metrics endpoint listening","address":"127.0.0.1:9"}}
{"fields":{"message":"listening","listener":"a","address":"127.0.0.1:1","upstreams":1}}
not json
{"fields":{"message":"listening","listener":"b","address":"[::1]:2"}}
{"fields":{"message":"accepted","listener":"c","address":"127.0.0.1:3"}}
{"fields":{"message":"ready","listeners":2}}"#;
        let expected = [
            ("a".to_owned(), SocketAddr::from(([127, 0, 0, 1], 1))),
            ("b".to_owned(), "[::1]:2".parse().unwrap()),
        ];
        assert_eq!(listening(log), expected);
        assert_eq!(messages(log, METRICS_LISTENING).len(), 1);
        assert_eq!(messages(log, READY).len(), 1);
    }

    #[test]
    fn a_sample_is_found_by_its_whole_series() {
        let text = "# TYPE x_total counter\nx_total{a=\"1\"} 5\nx_total{a=\"12\"} 7\n";
        assert_eq!(sample(text, "x_total{a=\"1\"}"), Some(5));
        assert_eq!(sample(text, "x_total{a=\"12\"}"), Some(7));
        assert_eq!(sample(text, "x_total{a=\"2\"}"), None);
    }
}
