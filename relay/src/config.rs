//! The relay's configuration: command-line flags for the common single-listener case, or a
//! TOML file for several listeners. Both are parsed into the same loose raw form, then
//! validated once into a [`Config`] of typed values that the rest of the relay trusts.
//!
//! Every refusal is one line that names the field and the value, e.g.
//! `relay.toml: listener "https": upstream "10.1.0.5" is not valid: missing port` or
//! `--max-connections 0 is not valid: must be greater than zero`; the binary prints it and
//! exits with [`EX_USAGE`] before binding any port. See `relay.example.toml` for the file.
//!
//! Decisions worth knowing:
//! * Addresses are `IP:port` only. Host names are refused rather than resolved: the upstreams
//!   sit on a private link at fixed addresses, and a DNS answer at startup (or at a SIGHUP)
//!   would be one more way for a reload to fail or to change where traffic goes.
//! * The file's `[defaults]` table holds any per-listener setting; a listener's own value
//!   replaces it (lists are replaced, not merged; `[health]` is merged key by key).
//! * With `--config`, listener flags are an error, but `--metrics`, `--log-format` and
//!   `--grace` override the file (re-applied on every reload).
//! * `accept_proxy_from`: when it is set, a connection from a listed address must open with a
//!   PROXY header (read whole within `proxy_header_timeout`), and one from anywhere else that
//!   opens with a PROXY header is refused. `allow`, `deny` and `max_per_ip` then apply to the
//!   client address carried in the header, not to the balancer's. A block of every address
//!   (`0.0.0.0/0`, `::/0`) is refused there: it would let any client choose its address.
//! * Durations are strings with units (`"250ms"`, `"5s"`, `"10m"`, `"1h"`, `"1d"`, `"1m30s"`);
//!   a bare number is refused, since its unit would be a guess.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::cidr::{Cidr, CidrList};

/// Exit status for bad flags or a bad file (BSD `sysexits.h`).
pub const EX_USAGE: i32 = 64;

/// The name of the listener the command line describes, unless `--name` says otherwise.
pub const CLI_LISTENER_NAME: &str = "default";

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// At least one; names and listen addresses are unique.
    pub listeners: Vec<ListenerConfig>,
    /// Where the Prometheus text endpoint listens; `None`: no endpoint.
    pub metrics: Option<SocketAddr>,
    pub log_format: LogFormat,
    /// How long SIGTERM waits for open connections after the listeners close (may be zero).
    pub grace: Duration,
}

/// One listening address and where its connections go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Unique; letters, digits, `-`, `_` and `.` (it labels metrics and log lines).
    pub name: String,
    /// Port 0 asks the kernel for a free port (tests).
    pub listen: SocketAddr,
    /// At least one primary; backups serve only when every primary is down.
    pub upstreams: Vec<UpstreamConfig>,
    /// The PROXY header written to the upstream before the client's bytes.
    pub proxy_protocol: ProxyVersion,
    pub balance: Balance,
    /// Open connections at most; `None`: no limit.
    pub max_connections: Option<usize>,
    /// Open connections per client address at most; `None`: no limit.
    pub max_per_ip: Option<usize>,
    /// If not empty, only these clients are served.
    pub allow: CidrList,
    /// These clients are refused (deny wins over allow).
    pub deny: CidrList,
    /// Load balancers trusted to send a PROXY header (see the module doc).
    pub accept_proxy_from: CidrList,
    /// For one upstream connect; then the next upstream is tried.
    pub connect_timeout: Duration,
    /// A connection with no byte in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// How long one direction may stay open after the other has closed (no CLOSE_WAIT piles).
    pub half_close_timeout: Duration,
    /// For reading a trusted balancer's whole PROXY header.
    pub proxy_header_timeout: Duration,
    /// TCP keep-alive idle time on both sockets; `None`: off.
    pub keepalive: Option<Duration>,
    /// TCP_NODELAY on both sockets.
    pub nodelay: bool,
    /// Forward with `splice(2)`; `false` forces the plain copy (for debugging).
    pub splice: bool,
    pub health: HealthConfig,
}

/// One upstream address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub addr: SocketAddr,
    /// Used only when no primary upstream is up.
    pub backup: bool,
}

/// Which PROXY header the upstream gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyVersion {
    #[default]
    None,
    V1,
    V2,
}

/// How a listener picks an upstream for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastConnections,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Active TCP checks: an upstream goes down after `fall` failed checks in a row and comes back
/// after `rise` good ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    pub interval: Duration,
    /// A check connect not done by then fails; at most `interval` (an inherited timeout longer
    /// than a listener's own interval is lowered to it).
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

/// Why the configuration was refused; `Display` is the one line to print.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// `at` is empty or ends with ": " (e.g. `relay.toml: listener "https": `).
    #[error("{at}{field} {value} is not valid: {reason}")]
    Invalid {
        at: String,
        field: String,
        value: String,
        reason: String,
    },
    #[error("{at}{message}")]
    Rule { at: String, message: String },
    #[error("{flag} cannot be used with --config: listener settings go in the file")]
    WithConfig { flag: &'static str },
}

/// Command-line flags. Values are taken as text and checked by [`Config::from_args`], so that a
/// bad one gets the same one-line message as in a file.
#[derive(Debug, Clone, Default, clap::Parser)]
#[command(
    name = "ferry-relay",
    version,
    about = "Ferry's zero-copy TCP relay",
    after_help = "DURATION is a number with a unit: 250ms, 5s, 10m, 1h, 1d, 1m30s.\n\
                  With --config, only --metrics, --log-format and --grace may be added; they \
                  override the file. Bad flags or files: one line on stderr, exit status 64."
)]
pub struct Cli {
    /// Read the listeners from this TOML file (no listener flags then)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check the configuration and exit (0 if valid, 64 if not)
    #[arg(long)]
    pub check: bool,
    /// Name of the listener, in metrics and logs [default: default]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Address to accept connections on, IP:port
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Upstream IP:port (repeat, or separate with commas)
    #[arg(long, value_name = "ADDR", value_delimiter = ',')]
    pub upstream: Vec<String>,
    /// Backup upstream IP:port, used only when every upstream is down
    #[arg(long, value_name = "ADDR", value_delimiter = ',')]
    pub backup: Vec<String>,
    /// PROXY header sent upstream: v1, v2 or none [default: none]
    #[arg(long, value_name = "VERSION")]
    pub proxy_protocol: Option<String>,
    /// round-robin or least-conn [default: round-robin]
    #[arg(long, value_name = "POLICY")]
    pub balance: Option<String>,
    /// Open connections at most [default: unlimited]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_connections: Option<String>,
    /// Open connections per client IP at most [default: unlimited]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_per_ip: Option<String>,
    /// Serve only these clients (CIDR; repeat, or separate with commas)
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub allow: Vec<String>,
    /// Refuse these clients (CIDR; wins over --allow)
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub deny: Vec<String>,
    /// Load balancers trusted to send a PROXY header (CIDR)
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub accept_proxy_from: Vec<String>,
    /// Upstream connect deadline; then the next upstream is tried [default: 5s]
    #[arg(long, value_name = "DURATION")]
    pub connect_timeout: Option<String>,
    /// Close a connection with no byte either way for this long [default: 10m]
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// Close a half-closed connection after this long [default: 60s]
    #[arg(long, value_name = "DURATION")]
    pub half_close_timeout: Option<String>,
    /// Deadline for a trusted balancer's whole PROXY header [default: 5s]
    #[arg(long, value_name = "DURATION")]
    pub proxy_header_timeout: Option<String>,
    /// TCP keep-alive idle time, or "off" [default: 60s]
    #[arg(long, value_name = "DURATION")]
    pub keepalive: Option<String>,
    /// Leave Nagle's algorithm on (no TCP_NODELAY)
    #[arg(long)]
    pub no_nodelay: bool,
    /// Never use splice(2); always copy
    #[arg(long)]
    pub no_splice: bool,
    /// Time between health checks of each upstream [default: 2s]
    #[arg(long, value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Health check connect deadline, at most the interval [default: 1s]
    #[arg(long, value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Good checks in a row that bring an upstream up [default: 2]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub health_rise: Option<String>,
    /// Failed checks in a row that take an upstream down [default: 3]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub health_fall: Option<String>,
    /// Prometheus endpoint, IP:port
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// text or json [default: text]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// On SIGTERM, how long to wait for open connections [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<String>,
}

impl Config {
    /// The configuration the flags describe: the file named by `--config` (read now, with the
    /// global flags applied over it), or else the single listener of the flags.
    pub fn from_args(cli: &Cli) -> Result<Config, ConfigError> {
        let globals = cli.globals();
        let Some(path) = &cli.config else {
            let raw = RawFile {
                listener: vec![cli.listener()],
                ..globals
            };
            return validate(&raw, &Source::Cli);
        };
        if let Some(flag) = cli.listener_flag() {
            return Err(ConfigError::WithConfig { flag });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let mut config = Config::from_toml_str(&text, path)?;
        let over = Globals::validate(&globals, &Ctx::top(&Source::Cli))?;
        config.metrics = over.metrics.or(config.metrics);
        config.log_format = over.log_format.unwrap_or(config.log_format);
        config.grace = over.grace.unwrap_or(config.grace);
        Ok(config)
    }

    /// The configuration in a TOML document; `origin` (its path) prefixes every message.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |span| span.start).min(text.len());
            let before = text.as_bytes().get(..at).unwrap_or_default();
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            ConfigError::Syntax {
                path: origin.to_owned(),
                line,
                column: at - line_start + 1,
                message: e.message().trim().replace('\n', "; "),
            }
        })?;
        validate(&raw, &Source::File(origin.to_owned()))
    }
}

impl Cli {
    fn globals(&self) -> RawFile {
        RawFile {
            metrics: text(&self.metrics),
            log_format: text(&self.log_format),
            grace: text(&self.grace),
            ..RawFile::default()
        }
    }

    fn listener(&self) -> RawListener {
        let list = |v: &[String]| Some(v.iter().cloned().map(Scalar::Text).collect::<Vec<_>>());
        let nonempty = |v: &[String]| if v.is_empty() { None } else { list(v) };
        RawListener {
            name: Some(Scalar::Text(
                self.name
                    .clone()
                    .unwrap_or_else(|| CLI_LISTENER_NAME.into()),
            )),
            listen: text(&self.listen),
            upstreams: list(&self.upstream),
            backups: nonempty(&self.backup),
            proxy_protocol: text(&self.proxy_protocol),
            balance: text(&self.balance),
            max_connections: text(&self.max_connections),
            max_per_ip: text(&self.max_per_ip),
            allow: nonempty(&self.allow),
            deny: nonempty(&self.deny),
            accept_proxy_from: nonempty(&self.accept_proxy_from),
            connect_timeout: text(&self.connect_timeout),
            idle_timeout: text(&self.idle_timeout),
            half_close_timeout: text(&self.half_close_timeout),
            proxy_header_timeout: text(&self.proxy_header_timeout),
            keepalive: text(&self.keepalive),
            nodelay: self.no_nodelay.then_some(Scalar::Bool(false)),
            splice: self.no_splice.then_some(Scalar::Bool(false)),
            health: Some(RawHealth {
                interval: text(&self.health_interval),
                timeout: text(&self.health_timeout),
                rise: text(&self.health_rise),
                fall: text(&self.health_fall),
            }),
        }
    }

    /// The first listener flag given, if any: they conflict with `--config`.
    fn listener_flag(&self) -> Option<&'static str> {
        let given = [
            ("--name", self.name.is_some()),
            ("--listen", self.listen.is_some()),
            ("--upstream", !self.upstream.is_empty()),
            ("--backup", !self.backup.is_empty()),
            ("--proxy-protocol", self.proxy_protocol.is_some()),
            ("--balance", self.balance.is_some()),
            ("--max-connections", self.max_connections.is_some()),
            ("--max-per-ip", self.max_per_ip.is_some()),
            ("--allow", !self.allow.is_empty()),
            ("--deny", !self.deny.is_empty()),
            ("--accept-proxy-from", !self.accept_proxy_from.is_empty()),
            ("--connect-timeout", self.connect_timeout.is_some()),
            ("--idle-timeout", self.idle_timeout.is_some()),
            ("--half-close-timeout", self.half_close_timeout.is_some()),
            (
                "--proxy-header-timeout",
                self.proxy_header_timeout.is_some(),
            ),
            ("--keepalive", self.keepalive.is_some()),
            ("--no-nodelay", self.no_nodelay),
            ("--no-splice", self.no_splice),
            ("--health-interval", self.health_interval.is_some()),
            ("--health-timeout", self.health_timeout.is_some()),
            ("--health-rise", self.health_rise.is_some()),
            ("--health-fall", self.health_fall.is_some()),
        ];
        given.into_iter().find(|&(_, on)| on).map(|(flag, _)| flag)
    }
}

fn text(value: &Option<String>) -> Option<Scalar> {
    value.clone().map(Scalar::Text)
}

/// Parses a duration such as `"250ms"`, `"5s"`, `"10m"`, `"1h"`, `"1d"` or `"1m30s"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number before {rest:?}"));
        }
        let (number, tail) = rest.split_at(digits);
        let units = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(units);
        let per_unit = match unit {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86400),
            "" if tail.starts_with('.') => {
                return Err("use whole numbers (1500ms, not 1.5s)".into())
            }
            "" if tail.is_empty() => return Err("missing unit (use ms, s, m, h or d)".into()),
            "" => return Err(format!("unexpected {tail:?}")),
            _ => return Err(format!("unknown unit {unit:?} (use ms, s, m, h or d)")),
        };
        let too_large = || "too large".to_string();
        let n: u32 = number.parse().map_err(|_| too_large())?;
        total = per_unit
            .checked_mul(n)
            .and_then(|d| total.checked_add(d))
            .ok_or_else(too_large)?;
        rest = tail;
    }
    Ok(total)
}

// ---------------------------------------------------------------------------------------------
// The raw form: what the file (or the flags) said, before any check.

/// A scalar as written: TOML gives any of the three, flags give text. Checking the type in
/// validation (rather than in serde) lets a wrong one get the same message as a bad value.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, an integer or a boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom(format!("integer {v} is too large")))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    metrics: Option<Scalar>,
    log_format: Option<Scalar>,
    grace: Option<Scalar>,
    defaults: Option<RawListener>,
    #[serde(default)]
    listener: Vec<RawListener>,
}

/// A `[[listener]]` table, or `[defaults]` (which may not set the first four).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    name: Option<Scalar>,
    listen: Option<Scalar>,
    upstreams: Option<Vec<Scalar>>,
    backups: Option<Vec<Scalar>>,
    proxy_protocol: Option<Scalar>,
    balance: Option<Scalar>,
    max_connections: Option<Scalar>,
    max_per_ip: Option<Scalar>,
    allow: Option<Vec<Scalar>>,
    deny: Option<Vec<Scalar>>,
    accept_proxy_from: Option<Vec<Scalar>>,
    connect_timeout: Option<Scalar>,
    idle_timeout: Option<Scalar>,
    half_close_timeout: Option<Scalar>,
    proxy_header_timeout: Option<Scalar>,
    keepalive: Option<Scalar>,
    nodelay: Option<Scalar>,
    splice: Option<Scalar>,
    health: Option<RawHealth>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    interval: Option<Scalar>,
    timeout: Option<Scalar>,
    rise: Option<Scalar>,
    fall: Option<Scalar>,
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// Where the raw values came from: it decides how fields are named in messages.
enum Source {
    Cli,
    File(PathBuf),
}

/// Where in the configuration a value sits, for messages.
struct Ctx<'a> {
    source: &'a Source,
    /// Empty, or ends with ": ".
    at: String,
}

impl<'a> Ctx<'a> {
    fn top(source: &'a Source) -> Ctx<'a> {
        let at = match source {
            Source::Cli => String::new(),
            Source::File(path) => format!("{}: ", path.display()),
        };
        Ctx { source, at }
    }

    fn within(&self, scope: &str) -> Ctx<'a> {
        match self.source {
            Source::Cli => Ctx::top(self.source),
            Source::File(_) => Ctx {
                source: self.source,
                at: format!("{}{scope}: ", self.at),
            },
        }
    }

    /// `health.interval` in a file is `--health-interval` on the command line.
    fn field(&self, key: &str) -> String {
        match self.source {
            Source::Cli => format!("--{}", key.replace(['_', '.'], "-")),
            Source::File(_) => key.to_owned(),
        }
    }

    fn show(&self, value: &Scalar) -> String {
        match (value, self.source) {
            (Scalar::Text(s), Source::Cli) if !s.is_empty() && s.bytes().all(shell_safe) => {
                s.clone()
            }
            (Scalar::Text(s), _) => format!("{s:?}"),
            (Scalar::Int(n), _) => n.to_string(),
            (Scalar::Bool(b), _) => b.to_string(),
        }
    }

    fn invalid(&self, key: &str, value: &Scalar, reason: impl fmt::Display) -> ConfigError {
        ConfigError::Invalid {
            at: self.at.clone(),
            field: self.field(key),
            value: self.show(value),
            reason: reason.to_string(),
        }
    }

    fn rule(&self, message: impl fmt::Display) -> ConfigError {
        ConfigError::Rule {
            at: self.at.clone(),
            message: message.to_string(),
        }
    }

    fn missing(&self, key: &str) -> ConfigError {
        match self.source {
            Source::Cli => self.rule(format!("{} is required", self.field(key))),
            Source::File(_) => self.rule(format!("{key} is missing")),
        }
    }

    fn text<'v>(&self, key: &str, value: &'v Scalar) -> Result<&'v str, ConfigError> {
        match value {
            Scalar::Text(s) => Ok(s),
            _ => Err(self.invalid(key, value, "expected a string")),
        }
    }

    fn addr(&self, key: &str, value: &Scalar) -> Result<SocketAddr, ConfigError> {
        parse_addr(self.text(key, value)?).map_err(|reason| self.invalid(key, value, reason))
    }

    fn duration(&self, key: &str, value: &Scalar) -> Result<Duration, ConfigError> {
        let text = match value {
            Scalar::Text(s) => s,
            _ => return Err(self.invalid(key, value, "expected a string such as \"5s\"")),
        };
        parse_duration(text).map_err(|reason| self.invalid(key, value, reason))
    }

    /// A duration greater than zero.
    fn timeout(&self, key: &str, value: &Scalar) -> Result<Duration, ConfigError> {
        let d = self.duration(key, value)?;
        if d.is_zero() {
            return Err(self.invalid(key, value, "must be greater than zero"));
        }
        Ok(d)
    }

    /// A whole number of at least one.
    fn count(&self, key: &str, value: &Scalar) -> Result<u64, ConfigError> {
        let n = match value {
            Scalar::Int(n) => *n,
            Scalar::Text(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
                .parse()
                .map_err(|_| self.invalid(key, value, "too large"))?,
            Scalar::Text(s) if s.starts_with('-') => -1,
            _ => return Err(self.invalid(key, value, "expected a whole number")),
        };
        u64::try_from(n)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| self.invalid(key, value, "must be greater than zero"))
    }

    /// A limit: a count, or "unlimited".
    fn limit(&self, key: &str, value: &Scalar) -> Result<Option<usize>, ConfigError> {
        if *value == Scalar::Text("unlimited".into()) {
            return Ok(None);
        }
        let n = self.count(key, value)?;
        usize::try_from(n)
            .map(Some)
            .map_err(|_| self.invalid(key, value, "too large"))
    }

    fn bool(&self, key: &str, value: &Scalar) -> Result<bool, ConfigError> {
        match value {
            Scalar::Bool(b) => Ok(*b),
            _ => Err(self.invalid(key, value, "expected true or false")),
        }
    }

    fn choice<T: Copy>(
        &self,
        key: &str,
        value: &Scalar,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let text = self.text(key, value)?;
        choices
            .iter()
            .find(|(name, _)| *name == text)
            .map(|&(_, v)| v)
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                self.invalid(key, value, format!("expected {}", names.join(", ")))
            })
    }

    fn cidrs(&self, key: &str, values: &[Scalar]) -> Result<CidrList, ConfigError> {
        values
            .iter()
            .map(|value| {
                self.text(key, value)?
                    .parse::<Cidr>()
                    .map_err(|e| self.invalid(key, value, e.kind()))
            })
            .collect()
    }
}

fn shell_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b".:/_-+[]%,@".contains(&b)
}

/// `IP:port`, with a reason an operator can act on when it is not.
fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => return Err("missing port".into()),
        Ok(IpAddr::V6(_)) => return Err("missing port (write IPv6 as [addr]:port)".into()),
        Err(_) => {}
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        if inner.parse::<IpAddr>().is_ok() {
            return Err("missing port".into());
        }
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("expected IP:port (host names are not resolved)".into());
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.parse::<IpAddr>().is_err() {
        return Err("expected IP:port (host names are not resolved)".into());
    }
    if port.is_empty() {
        return Err("missing port".into());
    }
    if port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {port} is over 65535"));
    }
    Err(format!("port {port:?} is not a number"))
}

/// The global settings, each `None` where not given.
struct Globals {
    metrics: Option<SocketAddr>,
    log_format: Option<LogFormat>,
    grace: Option<Duration>,
}

impl Globals {
    fn validate(raw: &RawFile, cx: &Ctx<'_>) -> Result<Globals, ConfigError> {
        let formats = [("text", LogFormat::Text), ("json", LogFormat::Json)];
        Ok(Globals {
            metrics: raw
                .metrics
                .as_ref()
                .map(|v| cx.addr("metrics", v))
                .transpose()?,
            log_format: raw
                .log_format
                .as_ref()
                .map(|v| cx.choice("log_format", v, &formats))
                .transpose()?,
            grace: raw
                .grace
                .as_ref()
                .map(|v| cx.duration("grace", v))
                .transpose()?,
        })
    }
}

/// Every per-listener setting at its built-in default; name, listen and upstreams are filled
/// in from the listener itself.
fn builtin() -> ListenerConfig {
    ListenerConfig {
        name: String::new(),
        listen: SocketAddr::from(([0, 0, 0, 0], 0)),
        upstreams: Vec::new(),
        proxy_protocol: ProxyVersion::None,
        balance: Balance::RoundRobin,
        max_connections: None,
        max_per_ip: None,
        allow: CidrList::default(),
        deny: CidrList::default(),
        accept_proxy_from: CidrList::default(),
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(600),
        half_close_timeout: Duration::from_secs(60),
        proxy_header_timeout: Duration::from_secs(5),
        keepalive: Some(Duration::from_secs(60)),
        nodelay: true,
        splice: true,
        health: HealthConfig {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        },
    }
}

fn validate(raw: &RawFile, source: &Source) -> Result<Config, ConfigError> {
    let top = Ctx::top(source);
    let globals = Globals::validate(raw, &top)?;
    let defaults = match &raw.defaults {
        None => builtin(),
        Some(d) => {
            let cx = top.within("defaults");
            let identity = [
                ("name", d.name.is_some()),
                ("listen", d.listen.is_some()),
                ("upstreams", d.upstreams.is_some()),
                ("backups", d.backups.is_some()),
            ];
            if let Some((key, _)) = identity.iter().find(|(_, set)| *set) {
                return Err(cx.rule(format!("{key} belongs in each [[listener]], not here")));
            }
            settings(d, &builtin(), &cx)?
        }
    };
    if raw.listener.is_empty() {
        return Err(top.rule("no listener: add a [[listener]] table"));
    }
    let mut listeners: Vec<ListenerConfig> = Vec::with_capacity(raw.listener.len());
    let mut names = HashMap::new();
    let mut listens = HashMap::new();
    for (i, rl) in raw.listener.iter().enumerate() {
        let mut cx = top.within(&format!("listener #{}", i + 1));
        let name = rl.name.as_ref().ok_or_else(|| cx.missing("name"))?;
        let text = cx.text("name", name)?;
        check_name(text).map_err(|reason| cx.invalid("name", name, reason))?;
        if let Some(first) = names.insert(text.to_owned(), i + 1) {
            return Err(cx.invalid("name", name, format!("already used by listener #{first}")));
        }
        cx = top.within(&format!("listener {text:?}"));
        let listen_raw = rl.listen.as_ref().ok_or_else(|| match source {
            Source::Cli => cx.rule("--listen is required, or --config FILE"),
            Source::File(_) => cx.missing("listen"),
        })?;
        let listen = cx.addr("listen", listen_raw)?;
        if listen.port() != 0 {
            if let Some(other) = listens.insert(listen, text.to_owned()) {
                let reason = format!("already used by listener {other:?}");
                return Err(cx.invalid("listen", listen_raw, reason));
            }
        }
        let mut listener = settings(rl, &defaults, &cx)?;
        listener.name = text.to_owned();
        listener.listen = listen;
        listener.upstreams = upstreams(rl, &cx)?;
        listeners.push(listener);
    }
    // An upstream that is one of our own listen addresses would loop connections forever.
    for listener in &listeners {
        let cx = top.within(&format!("listener {:?}", listener.name));
        for upstream in &listener.upstreams {
            if let Some(other) = listens.get(&upstream.addr) {
                let key = if upstream.backup {
                    "backup"
                } else {
                    "upstream"
                };
                let value = Scalar::Text(upstream.addr.to_string());
                let reason = format!("it is the listen address of listener {other:?}");
                return Err(cx.invalid(key, &value, reason));
            }
        }
    }
    Ok(Config {
        listeners,
        metrics: globals.metrics,
        log_format: globals.log_format.unwrap_or_default(),
        grace: globals.grace.unwrap_or(Duration::from_secs(30)),
    })
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > 64 {
        return Err("longer than 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err("only letters, digits, '-', '_' and '.' are allowed");
    }
    Ok(())
}

fn upstreams(raw: &RawListener, cx: &Ctx<'_>) -> Result<Vec<UpstreamConfig>, ConfigError> {
    let primaries = raw.upstreams.as_deref().unwrap_or_default();
    if primaries.is_empty() {
        return Err(match (cx.source, &raw.upstreams) {
            (Source::Cli, _) => cx.rule("--upstream is required (at least one)"),
            (Source::File(_), Some(_)) => cx.rule("upstreams is empty: at least one is required"),
            (Source::File(_), None) => cx.missing("upstreams"),
        });
    }
    let backups = raw.backups.as_deref().unwrap_or_default();
    let all = primaries
        .iter()
        .map(|v| ("upstream", v, false))
        .chain(backups.iter().map(|v| ("backup", v, true)));
    let mut out: Vec<UpstreamConfig> = Vec::with_capacity(primaries.len() + backups.len());
    for (key, value, backup) in all {
        let addr = cx.addr(key, value)?;
        let reason = if addr.port() == 0 {
            Some("port 0 cannot be connected to".to_string())
        } else if addr.ip().is_unspecified() {
            Some(format!("{} cannot be connected to", addr.ip()))
        } else if out.iter().any(|u| u.addr == addr) {
            Some("listed twice".to_string())
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(cx.invalid(key, value, reason));
        }
        out.push(UpstreamConfig { addr, backup });
    }
    Ok(out)
}

/// `base` with the settings `raw` gives replaced (name, listen and upstreams are left alone).
fn settings(
    raw: &RawListener,
    base: &ListenerConfig,
    cx: &Ctx<'_>,
) -> Result<ListenerConfig, ConfigError> {
    let mut l = base.clone();
    if let Some(v) = &raw.proxy_protocol {
        let choices = [
            ("none", ProxyVersion::None),
            ("v1", ProxyVersion::V1),
            ("v2", ProxyVersion::V2),
        ];
        l.proxy_protocol = cx.choice("proxy_protocol", v, &choices)?;
    }
    if let Some(v) = &raw.balance {
        let choices = [
            ("round-robin", Balance::RoundRobin),
            ("least-conn", Balance::LeastConnections),
        ];
        l.balance = cx.choice("balance", v, &choices)?;
    }
    if let Some(v) = &raw.max_connections {
        l.max_connections = cx.limit("max_connections", v)?;
    }
    if let Some(v) = &raw.max_per_ip {
        l.max_per_ip = cx.limit("max_per_ip", v)?;
    }
    if let Some(list) = &raw.allow {
        l.allow = cx.cidrs("allow", list)?;
    }
    if let Some(list) = &raw.deny {
        l.deny = cx.cidrs("deny", list)?;
    }
    if let Some(list) = &raw.accept_proxy_from {
        l.accept_proxy_from = cx.cidrs("accept_proxy_from", list)?;
        if let Some(i) = l.accept_proxy_from.iter().position(|c| c.prefix() == 0) {
            let reason = "it would let any client choose its address; list the load balancers";
            return Err(cx.invalid("accept_proxy_from", &list[i], reason));
        }
    }
    let timeouts = [
        (
            "connect_timeout",
            &raw.connect_timeout,
            &mut l.connect_timeout,
        ),
        ("idle_timeout", &raw.idle_timeout, &mut l.idle_timeout),
        (
            "half_close_timeout",
            &raw.half_close_timeout,
            &mut l.half_close_timeout,
        ),
        (
            "proxy_header_timeout",
            &raw.proxy_header_timeout,
            &mut l.proxy_header_timeout,
        ),
    ];
    for (key, value, slot) in timeouts {
        if let Some(v) = value {
            *slot = cx.timeout(key, v)?;
        }
    }
    if let Some(v) = &raw.keepalive {
        l.keepalive = keepalive(v, cx)?;
    }
    if let Some(v) = &raw.nodelay {
        l.nodelay = cx.bool("nodelay", v)?;
    }
    if let Some(v) = &raw.splice {
        l.splice = cx.bool("splice", v)?;
    }
    if let Some(h) = &raw.health {
        if let Some(v) = &h.interval {
            l.health.interval = cx.timeout("health.interval", v)?;
        }
        if let Some(v) = &h.timeout {
            l.health.timeout = cx.timeout("health.timeout", v)?;
        }
        for (key, value, slot) in [
            ("health.rise", &h.rise, &mut l.health.rise),
            ("health.fall", &h.fall, &mut l.health.fall),
        ] {
            if let Some(v) = value {
                *slot = u32::try_from(cx.count(key, v)?)
                    .map_err(|_| cx.invalid(key, v, "too large"))?;
            }
        }
        if l.health.timeout > l.health.interval {
            match &h.timeout {
                // Only the interval was set here: the inherited timeout follows it down.
                None => l.health.timeout = l.health.interval,
                Some(v) => {
                    let reason = format!(
                        "must not exceed {} ({:?})",
                        cx.field("health.interval"),
                        l.health.interval
                    );
                    return Err(cx.invalid("health.timeout", v, reason));
                }
            }
        }
    }
    Ok(l)
}

/// `false` or `"off"`: off; `true`: the default idle time; a duration: that idle time, which
/// the kernel takes in whole seconds from 1 to 32767 (TCP_KEEPIDLE).
fn keepalive(value: &Scalar, cx: &Ctx<'_>) -> Result<Option<Duration>, ConfigError> {
    let idle = match value {
        Scalar::Bool(false) => return Ok(None),
        Scalar::Text(s) if s == "off" => return Ok(None),
        Scalar::Bool(true) => return Ok(builtin().keepalive),
        _ => cx.duration("keepalive", value)?,
    };
    if idle < Duration::from_secs(1) || idle > Duration::from_secs(32767) {
        let reason = "must be from 1s to 32767s (the kernel's TCP_KEEPIDLE range), or off";
        return Err(cx.invalid("keepalive", value, reason));
    }
    Ok(Some(idle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn cidrs(list: &[&str]) -> CidrList {
        list.iter().map(|s| s.parse::<Cidr>().unwrap()).collect()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// A listener with the built-in defaults.
    fn listener(name: &str, listen: &str, upstreams: &[&str], backups: &[&str]) -> ListenerConfig {
        let mut l = builtin();
        l.name = name.into();
        l.listen = addr(listen);
        l.upstreams = (upstreams.iter().map(|u| (u, false)))
            .chain(backups.iter().map(|u| (u, true)))
            .map(|(u, backup)| UpstreamConfig {
                addr: addr(u),
                backup,
            })
            .collect();
        l
    }

    fn config(listeners: Vec<ListenerConfig>) -> Config {
        Config {
            listeners,
            metrics: None,
            log_format: LogFormat::Text,
            grace: secs(30),
        }
    }

    fn from_cli(args: &str) -> Result<Config, ConfigError> {
        let args = std::iter::once("ferry-relay").chain(args.split_whitespace());
        let cli = Cli::try_parse_from(args).map_err(|e| ConfigError::Rule {
            at: "clap: ".into(),
            message: e.to_string(),
        })?;
        Config::from_args(&cli)
    }

    fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text, Path::new("relay.toml"))
    }

    const BASE: &str = "--listen 0.0.0.0:443 --upstream 10.1.0.5:443";

    #[test]
    fn good_command_lines_give_these_values() {
        type Edit = fn(&mut Config);
        let cases: Vec<(String, Edit)> = vec![
            (BASE.into(), |_| {}),
            (
                "--listen 0.0.0.0:443 --upstream 10.1.0.5:443 --upstream 10.1.0.6:443 \
                 --backup 10.2.0.5:443 --proxy-protocol v2 --metrics 127.0.0.1:9090"
                    .into(),
                |c| {
                    c.listeners[0] = listener(
                        "default",
                        "0.0.0.0:443",
                        &["10.1.0.5:443", "10.1.0.6:443"],
                        &["10.2.0.5:443"],
                    );
                    c.listeners[0].proxy_protocol = ProxyVersion::V2;
                    c.metrics = Some(addr("127.0.0.1:9090"));
                },
            ),
            (
                "--listen [::]:443 --upstream [2001:db8::5]:443,10.1.0.6:443 --name https".into(),
                |c| {
                    c.listeners[0] = listener(
                        "https",
                        "[::]:443",
                        &["[2001:db8::5]:443", "10.1.0.6:443"],
                        &[],
                    );
                },
            ),
            (
                format!("{BASE} --proxy-protocol v1 --balance least-conn"),
                |c| {
                    c.listeners[0].proxy_protocol = ProxyVersion::V1;
                    c.listeners[0].balance = Balance::LeastConnections;
                },
            ),
            (
                format!("{BASE} --proxy-protocol none --balance round-robin"),
                |_| {},
            ),
            (
                format!("{BASE} --max-connections 10000 --max-per-ip 100"),
                |c| {
                    c.listeners[0].max_connections = Some(10000);
                    c.listeners[0].max_per_ip = Some(100);
                },
            ),
            (format!("{BASE} --max-connections unlimited"), |_| {}),
            (
                format!(
                    "{BASE} --allow 10.0.0.0/8,192.168.0.0/16 --allow ::ffff:172.16.0.0/108 \
                     --deny 10.9.0.0/16 --accept-proxy-from 10.0.0.5"
                ),
                |c| {
                    let l = &mut c.listeners[0];
                    l.allow = cidrs(&["10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12"]);
                    l.deny = cidrs(&["10.9.0.0/16"]);
                    l.accept_proxy_from = cidrs(&["10.0.0.5/32"]);
                },
            ),
            (
                format!(
                    "{BASE} --connect-timeout 250ms --idle-timeout 1h --half-close-timeout 1m30s \
                     --proxy-header-timeout 2s --keepalive off --no-nodelay --no-splice"
                ),
                |c| {
                    let l = &mut c.listeners[0];
                    l.connect_timeout = Duration::from_millis(250);
                    l.idle_timeout = secs(3600);
                    l.half_close_timeout = secs(90);
                    l.proxy_header_timeout = secs(2);
                    l.keepalive = None;
                    l.nodelay = false;
                    l.splice = false;
                },
            ),
            (format!("{BASE} --keepalive 2h"), |c| {
                c.listeners[0].keepalive = Some(secs(7200));
            }),
            (
                format!(
                    "{BASE} --health-interval 500ms --health-rise 1 --health-fall 5 \
                     --grace 0s --log-format json"
                ),
                |c| {
                    let h = &mut c.listeners[0].health;
                    h.interval = Duration::from_millis(500);
                    // The default 1s timeout follows a shorter interval down.
                    h.timeout = Duration::from_millis(500);
                    h.rise = 1;
                    h.fall = 5;
                    c.grace = Duration::ZERO;
                    c.log_format = LogFormat::Json;
                },
            ),
            (
                format!("{BASE} --health-interval 10s --health-timeout 10s"),
                |c| {
                    c.listeners[0].health.interval = secs(10);
                    c.listeners[0].health.timeout = secs(10);
                },
            ),
            // Port 0: the kernel picks (tests).
            ("--listen 127.0.0.1:0 --upstream 127.0.0.1:1".into(), |c| {
                c.listeners[0] = listener("default", "127.0.0.1:0", &["127.0.0.1:1"], &[]);
            }),
        ];
        for (args, edit) in cases {
            let mut want = config(vec![listener(
                "default",
                "0.0.0.0:443",
                &["10.1.0.5:443"],
                &[],
            )]);
            edit(&mut want);
            match from_cli(&args) {
                Ok(got) => assert_eq!(got, want, "{args}"),
                Err(e) => panic!("{args}: {e}"),
            }
        }
    }

    #[test]
    fn bad_command_lines_get_one_line_naming_the_flag_and_value() {
        let cases = [
            ("", "--listen is required, or --config FILE"),
            ("--upstream 10.1.0.5:443", "--listen is required, or --config FILE"),
            ("--listen 0.0.0.0:443", "--upstream is required (at least one)"),
            (
                "--listen 0.0.0.0 --upstream 10.1.0.5:443",
                "--listen 0.0.0.0 is not valid: missing port",
            ),
            (
                "--listen 0.0.0.0:443 --upstream 10.1.0.5",
                "--upstream 10.1.0.5 is not valid: missing port",
            ),
            (
                "--listen 0.0.0.0:443 --upstream envoy.internal:443",
                "--upstream envoy.internal:443 is not valid: expected IP:port (host names are not resolved)",
            ),
            (
                "--listen 0.0.0.0:443 --upstream ::1:443",
                "--upstream ::1:443 is not valid: missing port (write IPv6 as [addr]:port)",
            ),
            (
                "--listen 0.0.0.0:443 --upstream 10.1.0.5:70000",
                "--upstream 10.1.0.5:70000 is not valid: port 70000 is over 65535",
            ),
            (
                "--listen 0.0.0.0:443 --upstream 10.1.0.5:https",
                "--upstream 10.1.0.5:https is not valid: port \"https\" is not a number",
            ),
            (
                "--listen 0.0.0.0:443 --upstream 10.1.0.5:0",
                "--upstream 10.1.0.5:0 is not valid: port 0 cannot be connected to",
            ),
            (
                "--listen 0.0.0.0:443 --upstream 0.0.0.0:443",
                "--upstream 0.0.0.0:443 is not valid: 0.0.0.0 cannot be connected to",
            ),
            (
                "--listen 0.0.0.0:443 --upstream 10.1.0.5:443 --backup 10.1.0.5:443",
                "--backup 10.1.0.5:443 is not valid: listed twice",
            ),
            (
                "--listen 127.0.0.1:8443 --upstream 127.0.0.1:8443",
                "--upstream 127.0.0.1:8443 is not valid: it is the listen address of listener \"default\"",
            ),
            (
                "--max-connections 0",
                "--max-connections 0 is not valid: must be greater than zero",
            ),
            ("--max-per-ip -3", "--max-per-ip -3 is not valid: must be greater than zero"),
            ("--max-per-ip ten", "--max-per-ip ten is not valid: expected a whole number"),
            (
                "--max-connections 99999999999999999999",
                "--max-connections 99999999999999999999 is not valid: too large",
            ),
            ("--proxy-protocol v3", "--proxy-protocol v3 is not valid: expected none, v1, v2"),
            (
                "--balance leastconn",
                "--balance leastconn is not valid: expected round-robin, least-conn",
            ),
            ("--allow 10.0.0.0/33", "--allow 10.0.0.0/33 is not valid: prefix length 33 is over 32"),
            (
                "--deny 10.1.0.0/8",
                "--deny 10.1.0.0/8 is not valid: host bits are set (the block is 10.0.0.0/8)",
            ),
            (
                "--accept-proxy-from 0.0.0.0/0",
                "--accept-proxy-from 0.0.0.0/0 is not valid: it would let any client choose its address",
            ),
            ("--accept-proxy-from ::/0", "--accept-proxy-from ::/0 is not valid"),
            ("--connect-timeout 0s", "--connect-timeout 0s is not valid: must be greater than zero"),
            ("--idle-timeout 10", "--idle-timeout 10 is not valid: missing unit"),
            ("--half-close-timeout 5x", "--half-close-timeout 5x is not valid: unknown unit \"x\""),
            (
                "--proxy-header-timeout 1.5s",
                "--proxy-header-timeout 1.5s is not valid: use whole numbers (1500ms, not 1.5s)",
            ),
            ("--connect-timeout s", "--connect-timeout s is not valid: expected a number before \"s\""),
            (
                "--connect-timeout 99999999999d",
                "--connect-timeout 99999999999d is not valid: too large",
            ),
            ("--keepalive 100ms", "--keepalive 100ms is not valid: must be from 1s to 32767s"),
            ("--keepalive 10h", "--keepalive 10h is not valid: must be from 1s to 32767s"),
            ("--health-rise 0", "--health-rise 0 is not valid: must be greater than zero"),
            ("--health-fall 5000000000", "--health-fall 5000000000 is not valid: too large"),
            ("--health-interval 0ms", "--health-interval 0ms is not valid: must be greater than zero"),
            (
                "--health-interval 1s --health-timeout 2s",
                "--health-timeout 2s is not valid: must not exceed --health-interval (1s)",
            ),
            ("--metrics 127.0.0.1", "--metrics 127.0.0.1 is not valid: missing port"),
            ("--metrics localhost:9090", "--metrics localhost:9090 is not valid: expected IP:port"),
            ("--log-format yaml", "--log-format yaml is not valid: expected text, json"),
            ("--grace forever", "--grace forever is not valid: expected a number before \"forever\""),
            ("--name a/b", "--name a/b is not valid: only letters, digits"),
            (
                "--config relay.toml --upstream 10.1.0.5:443",
                "--upstream cannot be used with --config: listener settings go in the file",
            ),
            ("--config relay.toml --no-splice", "--no-splice cannot be used with --config"),
            ("--config /nonexistent/relay.toml", "cannot read /nonexistent/relay.toml: "),
        ];
        for (args, want) in cases {
            // A case that sets no --listen (nor --config) gets the valid base listener, so
            // that each case is wrong in one way only; the first two cases stand alone.
            let stands_alone = ["", "--upstream 10.1.0.5:443"].contains(&args);
            let args = if stands_alone || args.contains("--listen") || args.contains("--config") {
                args.to_owned()
            } else {
                format!("{BASE} {args}")
            };
            match from_cli(&args) {
                Ok(c) => panic!("{args}: accepted as {c:?}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains(want), "{args}:\n got {msg}\nwant {want}");
                    assert!(!msg.contains('\n'), "{args}: more than one line: {msg}");
                }
            }
        }
    }

    #[test]
    fn the_example_file_parses() {
        let c = from_toml(include_str!("../relay.example.toml")).unwrap();
        assert_eq!(c.metrics, Some(addr("127.0.0.1:9090")));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.grace, secs(30));
        let [https, http] = &c.listeners[..] else {
            panic!("two listeners: {c:?}")
        };
        let mut want = listener(
            "https",
            "0.0.0.0:443",
            &["10.1.0.5:443", "10.1.0.6:443"],
            &["10.2.0.5:443"],
        );
        want.proxy_protocol = ProxyVersion::V2;
        want.balance = Balance::LeastConnections;
        want.max_connections = Some(20000);
        want.max_per_ip = Some(256);
        want.deny = cidrs(&["198.51.100.0/24"]);
        want.accept_proxy_from = cidrs(&["10.0.0.0/28"]);
        assert_eq!(https, &want);

        let mut want = listener("http", "0.0.0.0:80", &["10.1.0.5:80", "10.1.0.6:80"], &[]);
        want.proxy_protocol = ProxyVersion::V2;
        want.max_connections = Some(5000);
        want.idle_timeout = secs(120);
        want.health.interval = secs(5);
        assert_eq!(http, &want);
    }

    #[test]
    fn config_flag_reads_the_file_and_global_flags_override_it() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/relay.example.toml");
        let c = from_cli(&format!("--config {path}")).unwrap();
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.metrics, Some(addr("127.0.0.1:9090")));

        let c = from_cli(&format!(
            "--config {path} --metrics 127.0.0.1:9191 --log-format text --grace 5s"
        ))
        .unwrap();
        assert_eq!(c.metrics, Some(addr("127.0.0.1:9191")));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.grace, secs(5));
        assert_eq!(c.listeners.len(), 2);

        let e = from_cli(&format!("--config {path} --grace 5")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--grace 5 is not valid: missing unit (use ms, s, m, h or d)"
        );
    }

    const ONE: &str = r#"
        [[listener]]
        name = "https"
        listen = "0.0.0.0:443"
        upstreams = ["10.1.0.5:443"]
    "#;

    #[test]
    fn good_files_give_these_values() {
        type Edit = fn(&mut Config);
        let cases: Vec<(String, Edit)> = vec![
            (ONE.into(), |_| {}),
            (
                format!("metrics = \"[::1]:9090\"\nlog_format = \"text\"\ngrace = \"1m\"\n{ONE}"),
                |c| {
                    c.metrics = Some(addr("[::1]:9090"));
                    c.grace = secs(60);
                },
            ),
            // Defaults apply; a listener's own value wins; lists are replaced; health merges.
            (
                format!(
                    r#"
                    [defaults]
                    proxy_protocol = "v1"
                    connect_timeout = "2s"
                    allow = ["10.0.0.0/8"]
                    keepalive = false
                    health = {{ rise = 4, timeout = "500ms" }}
                    {ONE}
                    connect_timeout = "3s"
                    allow = []
                    health = {{ fall = 1 }}
                    [[listener]]
                    name = "http"
                    listen = "0.0.0.0:80"
                    upstreams = ["10.1.0.5:80"]
                    backups = ["10.2.0.5:80"]
                    keepalive = true
                    "#
                ),
                |c| {
                    let l = &mut c.listeners[0];
                    l.proxy_protocol = ProxyVersion::V1;
                    l.connect_timeout = secs(3);
                    l.keepalive = None;
                    l.health.rise = 4;
                    l.health.timeout = Duration::from_millis(500);
                    l.health.fall = 1;
                    let mut http =
                        listener("http", "0.0.0.0:80", &["10.1.0.5:80"], &["10.2.0.5:80"]);
                    http.proxy_protocol = ProxyVersion::V1;
                    http.connect_timeout = secs(2);
                    http.allow = cidrs(&["10.0.0.0/8"]);
                    http.health.rise = 4;
                    http.health.timeout = Duration::from_millis(500);
                    c.listeners.push(http);
                },
            ),
            (
                format!(
                    "{ONE}max_connections = \"100\"\nmax_per_ip = 7\nnodelay = false\n\
                     splice = false\nkeepalive = \"off\"\nbalance = \"least-conn\"\n"
                ),
                |c| {
                    let l = &mut c.listeners[0];
                    l.max_connections = Some(100);
                    l.max_per_ip = Some(7);
                    l.nodelay = false;
                    l.splice = false;
                    l.keepalive = None;
                    l.balance = Balance::LeastConnections;
                },
            ),
            // Two listeners on port 0 are not a clash: the kernel gives each its own port.
            (
                r#"
                [[listener]]
                name = "a"
                listen = "127.0.0.1:0"
                upstreams = ["127.0.0.1:1"]
                [[listener]]
                name = "b"
                listen = "127.0.0.1:0"
                upstreams = ["127.0.0.1:1"]
                "#
                .into(),
                |c| {
                    c.listeners[0] = listener("a", "127.0.0.1:0", &["127.0.0.1:1"], &[]);
                    c.listeners
                        .push(listener("b", "127.0.0.1:0", &["127.0.0.1:1"], &[]));
                },
            ),
        ];
        for (text, edit) in cases {
            let mut want = config(vec![listener(
                "https",
                "0.0.0.0:443",
                &["10.1.0.5:443"],
                &[],
            )]);
            edit(&mut want);
            match from_toml(&text) {
                Ok(got) => assert_eq!(got, want, "{text}"),
                Err(e) => panic!("{text}: {e}"),
            }
        }
    }

    /// A `[[listener]]` table with these lines.
    fn table(lines: &[&str]) -> String {
        format!("[[listener]]\n{}\n", lines.join("\n"))
    }

    #[test]
    fn bad_files_get_one_line_naming_the_field_and_value() {
        let with = |extra: &str| format!("{ONE}{extra}\n");
        let name_x = r#"name = "x""#;
        let listen_443 = r#"listen = "0.0.0.0:443""#;
        let cases = [
            (
                String::new(),
                "relay.toml: no listener: add a [[listener]] table",
            ),
            (r#"grace = "30s""#.into(), "relay.toml: no listener"),
            (
                with(r#"conect_timeout = "5s""#),
                "relay.toml:6:5: unknown field `conect_timeout`, expected one of",
            ),
            (
                format!("colour = 1\n{ONE}"),
                "relay.toml:1:1: unknown field `colour`",
            ),
            (with("[listener.health]\nrate = 1"), "unknown field `rate`"),
            (with(r#"upstreams = ["10.1.0.6:443"]"#), "relay.toml:6"),
            (
                with("idle_timeout = 1.5"),
                "invalid type: floating point `1.5`",
            ),
            (
                table(&[listen_443]),
                "relay.toml: listener #1: name is missing",
            ),
            (
                table(&[name_x, r#"upstreams = ["10.1.0.5:443"]"#]),
                r#"relay.toml: listener "x": listen is missing"#,
            ),
            (
                table(&[name_x, listen_443]),
                r#"relay.toml: listener "x": upstreams is missing"#,
            ),
            (
                table(&[
                    name_x,
                    listen_443,
                    "upstreams = []",
                    r#"backups = ["10.1.0.5:443"]"#,
                ]),
                r#"relay.toml: listener "x": upstreams is empty: at least one is required"#,
            ),
            (
                table(&[r#"name = "x y""#, listen_443]),
                r#"relay.toml: listener #1: name "x y" is not valid: only letters"#,
            ),
            (
                table(&["name = 443", listen_443]),
                "relay.toml: listener #1: name 443 is not valid: expected a string",
            ),
            (
                table(&[name_x, listen_443, r#"upstreams = ["10.1.0.5"]"#]),
                r#"relay.toml: listener "x": upstream "10.1.0.5" is not valid: missing port"#,
            ),
            (
                ONE.to_owned() + &table(&[r#"name = "https""#, r#"listen = "0.0.0.0:80""#]),
                r#"relay.toml: listener #2: name "https" is not valid: already used by listener #1"#,
            ),
            (
                ONE.to_owned() + &table(&[r#"name = "b""#, listen_443]),
                r#"relay.toml: listener "b": listen "0.0.0.0:443" is not valid: already used by listener "https""#,
            ),
            (
                table(&[
                    r#"name = "b""#,
                    r#"listen = "127.0.0.1:8443""#,
                    r#"upstreams = ["10.1.0.5:443"]"#,
                ]) + &table(&[
                    r#"name = "c""#,
                    r#"listen = "127.0.0.1:9443""#,
                    r#"upstreams = ["10.1.0.5:443"]"#,
                    r#"backups = ["127.0.0.1:8443"]"#,
                ]),
                r#"relay.toml: listener "c": backup "127.0.0.1:8443" is not valid: it is the listen address of listener "b""#,
            ),
            (
                with("max_connections = 0"),
                r#"relay.toml: listener "https": max_connections 0 is not valid: must be greater than zero"#,
            ),
            (
                with("max_per_ip = true"),
                r#"listener "https": max_per_ip true is not valid: expected a whole number"#,
            ),
            (
                with("connect_timeout = 5"),
                r#"listener "https": connect_timeout 5 is not valid: expected a string such as "5s""#,
            ),
            (
                with(r#"idle_timeout = "0ms""#),
                r#"listener "https": idle_timeout "0ms" is not valid: must be greater than zero"#,
            ),
            (
                with(r#"nodelay = "yes""#),
                r#"listener "https": nodelay "yes" is not valid: expected true or false"#,
            ),
            (
                with("keepalive = 60"),
                r#"listener "https": keepalive 60 is not valid: expected a string such as "5s""#,
            ),
            (
                with("proxy_protocol = 2"),
                r#"listener "https": proxy_protocol 2 is not valid: expected a string"#,
            ),
            (
                with(r#"allow = ["10.0.0.0/8", "10.0.0.1/8"]"#),
                r#"listener "https": allow "10.0.0.1/8" is not valid: host bits are set"#,
            ),
            (
                with(r#"deny = ["bad"]"#),
                r#"listener "https": deny "bad" is not valid: not an IP address"#,
            ),
            (
                with(r#"accept_proxy_from = ["10.0.0.0/24", "::/0"]"#),
                r#"listener "https": accept_proxy_from "::/0" is not valid: it would let any client"#,
            ),
            (
                with(r#"health = { interval = "1s", timeout = "2s" }"#),
                r#"health.timeout "2s" is not valid: must not exceed health.interval (1s)"#,
            ),
            (
                with("health = { rise = 0 }"),
                r#"listener "https": health.rise 0 is not valid: must be greater than zero"#,
            ),
            (
                format!("[defaults]\nidle_timeout = \"10\"\n{ONE}"),
                r#"relay.toml: defaults: idle_timeout "10" is not valid: missing unit"#,
            ),
            (
                format!("[defaults]\n{listen_443}\n{ONE}"),
                "relay.toml: defaults: listen belongs in each [[listener]], not here",
            ),
            (
                format!("metrics = \"127.0.0.1\"\n{ONE}"),
                r#"relay.toml: metrics "127.0.0.1" is not valid: missing port"#,
            ),
            (
                format!("log_format = \"JSON\"\n{ONE}"),
                r#"relay.toml: log_format "JSON" is not valid: expected text, json"#,
            ),
            ("[[listener]\n".into(), "relay.toml:1:"),
            (
                "listener = 5".into(),
                "relay.toml:1:12: invalid type: integer `5`",
            ),
        ];
        for (text, want) in cases {
            match from_toml(&text) {
                Ok(c) => panic!("{text}: accepted as {c:?}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains(want), "{text}\n got {msg}\nwant {want}");
                    assert!(!msg.contains('\n'), "{text}: more than one line: {msg}");
                }
            }
        }
    }

    #[test]
    fn the_flag_definitions_are_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_units() {
        let good = [
            ("250ms", Duration::from_millis(250)),
            ("5s", secs(5)),
            ("10m", secs(600)),
            ("2h", secs(7200)),
            ("1d", secs(86400)),
            ("1m30s", secs(90)),
            ("0s", Duration::ZERO),
            ("1s500ms", Duration::from_millis(1500)),
        ];
        for (text, want) in good {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        let bad = [
            ("", "empty duration"),
            ("5", "missing unit (use ms, s, m, h or d)"),
            ("5sec", "unknown unit \"sec\" (use ms, s, m, h or d)"),
            ("5S", "unknown unit \"S\" (use ms, s, m, h or d)"),
            ("-5s", "expected a number before \"-5s\""),
            ("5 s", "unexpected \" s\""),
            (" 5s", "expected a number before \" 5s\""),
            ("1.5s", "use whole numbers (1500ms, not 1.5s)"),
            ("4294967296s", "too large"),
        ];
        for (text, want) in bad {
            assert_eq!(parse_duration(text), Err(want.to_string()), "{text}");
        }
    }
}
