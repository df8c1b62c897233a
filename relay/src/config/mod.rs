//! The relay's configuration: command-line flags for the common single-listener case, or a
//! TOML file for several listeners. Both are parsed into the same loose raw form, then
//! validated once into a [`Config`] of typed values that the rest of the relay trusts.
//!
//! Every refusal is one line that names the field and the value, e.g.
//! `relay.toml: listener "https": upstream "10.1.0.5" is not valid: missing port` or
//! `--max-connections 0 is not valid: must be from 1 to 1000000, or unlimited`; the binary
//! prints it and exits with [`EX_USAGE`] before binding any port (clap's own errors, such as
//! an unknown flag, are made one line too: [`flag_error`]). See `relay.example.toml` for the
//! file.
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
//!   a bare number is refused, since its unit would be a guess. Sizes are bytes, or `KiB` /
//!   `MiB` (`"256KiB"`).
//! * Every duration, count and size has a range (`bounds`); the message names it.
//! * No upstream may be an address that one of our own listeners accepts, the wildcard
//!   included (`0.0.0.0:443` forwarding to `127.0.0.1:443`, or to any address of this host
//!   on port 443): the relay would connect to itself until the descriptors run out. The
//!   binary passes this host's addresses in ([`HostAddrs`]); the rule itself is plain code.
//! * The file is read only if it is a regular file of at most 1 MiB (`file`).
//!
//! # Layout
//!
//! * this file: the validated types, [`ConfigError`], and [`Config::from_args`] /
//!   [`Config::from_toml_str`], which run the steps below;
//! * `cli`: the clap flags ([`Cli`]), their raw form, and clap's errors as one line;
//! * `file`: reading the `--config` file, bounded in size and time;
//! * `raw`: the raw form the TOML file is deserialized into, before any check;
//! * `field`: checking one raw value, with a message that names the field and the value;
//! * `bounds`: the range of every duration, count and size, with the reason for each;
//! * `host`: this host's addresses, and whether a listener would accept an upstream's address;
//! * `validate`: raw form to [`Config`]: defaults, listeners, cross-listener rules;
//! * `duration`, `size`: [`parse_duration`], [`parse_size`] and their inverses.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_net::NetworkSet;

mod bounds;
mod cli;
mod duration;
mod field;
mod file;
mod host;
mod raw;
mod size;
#[cfg(test)]
mod tests;
mod validate;

pub use bounds::MAX_FILE_BYTES;
pub use cli::{flag_error, Cli};
pub use duration::{format_duration, parse_duration};
pub use host::HostAddrs;
pub use size::{format_size, parse_size};

use field::{Ctx, Source};
use raw::RawFile;
use validate::{validate, Globals};

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
    pub allow: NetworkSet,
    /// These clients are refused (deny wins over allow).
    pub deny: NetworkSet,
    /// Load balancers trusted to send a PROXY header (see the module doc).
    pub accept_proxy_from: NetworkSet,
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
    /// `F_SETPIPE_SZ` for the splice pipes, 4 KiB to 1 MiB (the kernel rounds up to a power
    /// of two pages); 256 KiB unless configured. `None` (not reachable from the config) keeps
    /// the kernel's default, 64 KiB.
    pub pipe_size: Option<usize>,
    /// Connections to each upstream kept open ahead of need (0: none; see `crate::warm`).
    pub warm: usize,
    /// A warm connection older than this is closed (before the upstream's own timeout for a
    /// connection that has sent nothing).
    pub warm_max_idle: Duration,
    /// `TCP_CONGESTION` for the connections to the upstreams (the long link); `None`: the
    /// kernel's default. Whether the kernel offers it is checked at start.
    pub congestion: Option<String>,
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
    /// Not a regular file, too large, or not UTF-8.
    #[error("cannot read {}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
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

impl Config {
    /// The configuration the flags describe: the file named by `--config` (read now, with the
    /// global flags applied over it), or else the single listener of the flags. `host`: this
    /// host's addresses, for refusing a listener that would forward to itself.
    pub fn from_args(cli: &Cli, host: &HostAddrs) -> Result<Config, ConfigError> {
        let globals = cli.globals();
        let Some(path) = &cli.config else {
            let raw = RawFile {
                listener: vec![cli.listener()],
                ..globals
            };
            return validate(&raw, &Source::Cli, host);
        };
        if let Some(flag) = cli.listener_flag() {
            return Err(ConfigError::WithConfig { flag });
        }
        let text = file::read(path)?;
        let mut config = Config::from_toml_str(&text, path, host)?;
        let over = Globals::validate(&globals, &Ctx::top(&Source::Cli))?;
        config.metrics = over.metrics.or(config.metrics);
        config.log_format = over.log_format.unwrap_or(config.log_format);
        config.grace = over.grace.unwrap_or(config.grace);
        Ok(config)
    }

    /// The configuration in a TOML document; `origin` (its path) prefixes every message.
    pub fn from_toml_str(
        text: &str,
        origin: &Path,
        host: &HostAddrs,
    ) -> Result<Config, ConfigError> {
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
        validate(&raw, &Source::File(origin.to_owned()), host)
    }
}
