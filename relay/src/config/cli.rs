//! The command-line flags ([`Cli`]) for the common single-listener case, and their raw form:
//! the flags are kept as text and turned into the same raw form as a file, so that a bad value
//! goes through the same validation and gets the same one-line message.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};

use super::raw::{RawFile, RawHealth, RawListener, Scalar};
use super::CLI_LISTENER_NAME;

/// Command-line flags. Values are taken as text and checked by
/// [`Config::from_args`](super::Config::from_args), so that a bad one gets the same one-line
/// message as in a file.
#[derive(Debug, Clone, Default, clap::Parser)]
#[command(
    name = "ferry-relay",
    version,
    about = "Ferry's zero-copy TCP relay",
    after_help = "DURATION is a number with a unit: 250ms, 5s, 10m, 1h, 1d, 1m30s. SIZE is \
                  bytes, or a number with KiB or MiB: 65536, 256KiB, 1MiB. Each has a range \
                  (relay.example.toml lists them).\n\
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
    /// Capacity of each splice pipe: bytes, or KiB/MiB, 4KiB to 1MiB [default: 256KiB]
    #[arg(long, value_name = "SIZE", allow_negative_numbers = true)]
    pub pipe_size: Option<String>,
    /// Connections to each upstream kept open ahead of need, 0 to 64 [default: 0]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub warm: Option<String>,
    /// Close a warm connection older than this, 100ms to 1h [default: 3s]
    #[arg(long, value_name = "DURATION")]
    pub warm_max_idle: Option<String>,
    /// Congestion control towards the upstreams, or "default" [default: bbr]
    #[arg(long, value_name = "NAME")]
    pub congestion: Option<String>,
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

impl Cli {
    pub(super) fn globals(&self) -> RawFile {
        RawFile {
            metrics: text(&self.metrics),
            log_format: text(&self.log_format),
            grace: text(&self.grace),
            ..RawFile::default()
        }
    }

    pub(super) fn listener(&self) -> RawListener {
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
            pipe_size: text(&self.pipe_size),
            warm: text(&self.warm),
            warm_max_idle: text(&self.warm_max_idle),
            congestion: text(&self.congestion),
            health: Some(RawHealth {
                interval: text(&self.health_interval),
                timeout: text(&self.health_timeout),
                rise: text(&self.health_rise),
                fall: text(&self.health_fall),
            }),
        }
    }

    /// The first listener flag given, if any: they conflict with `--config`.
    pub(super) fn listener_flag(&self) -> Option<&'static str> {
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
            ("--pipe-size", self.pipe_size.is_some()),
            ("--warm", self.warm.is_some()),
            ("--warm-max-idle", self.warm_max_idle.is_some()),
            ("--congestion", self.congestion.is_some()),
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

/// One of clap's own errors (an unknown flag, a missing value, a stray word) as one line like
/// every other refusal: clap's message without `error: `, the usage block and the tips, but
/// with clap's "similar flag" if it has one. `args` is the command line clap was given (the
/// program name first), to tell a flag that lost its value from an unknown flag.
pub fn flag_error(e: &clap::Error, args: &[OsString]) -> String {
    if e.kind() == ErrorKind::UnknownArgument {
        if let Some(line) = hyphen_value(e, args) {
            return line;
        }
    }
    let text = e.render().to_string();
    // The message may take more than one line; the usage and the tips follow a blank line.
    let message: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    let message = message.join(" ");
    let mut line = message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_owned();
    if let Some(ContextValue::String(similar)) = e.get(ContextKind::SuggestedArg) {
        line += &format!(" (did you mean '{similar}'?)");
    }
    line
}

/// `--grace -1s`: clap reads a value that starts with `-` (and is not a plain negative
/// number) as a flag, and reports an unknown `-1`; the operator meant a value.
fn hyphen_value(e: &clap::Error, args: &[OsString]) -> Option<String> {
    let Some(ContextValue::String(unknown)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let command = <Cli as clap::CommandFactory>::command();
    args.windows(2).find_map(|pair| {
        let (flag, value) = (pair[0].to_str()?, pair[1].to_str()?);
        if !value.starts_with(unknown.as_str()) || value.starts_with("--") {
            return None;
        }
        let long = flag.strip_prefix("--")?;
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(long))?;
        arg.get_action().takes_values().then(|| {
            format!(
                "{flag} {value} is not valid: a value that starts with '-' is read as a flag; \
                 write {flag}={value}"
            )
        })
    })
}
