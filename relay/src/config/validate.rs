//! Validation: the raw form becomes a [`Config`]. Global settings, `[defaults]` over the
//! built-in defaults, then each listener over those, then the rules that span listeners
//! (unique names and listen addresses, no upstream that one of our own listeners would
//! accept: see `host`). Every duration, count and size is held to its range in `bounds`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::bounds::{self, Bounds};
use super::duration::format_duration;
use super::field::{Ctx, Source};
use super::host::{accepts, HostAddrs};
use super::raw::{RawFile, RawListener, Scalar};
use super::{
    Balance, Config, ConfigError, HealthConfig, ListenerConfig, LogFormat, ProxyVersion,
    UpstreamConfig,
};
use ferry_net::NetworkSet;

/// The global settings, each `None` where not given.
pub(super) struct Globals {
    pub(super) metrics: Option<SocketAddr>,
    pub(super) log_format: Option<LogFormat>,
    pub(super) grace: Option<Duration>,
}

impl Globals {
    pub(super) fn validate(raw: &RawFile, cx: &Ctx<'_>) -> Result<Globals, ConfigError> {
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
                .map(|v| cx.duration("grace", v, bounds::GRACE))
                .transpose()?,
        })
    }
}

/// Every per-listener setting at its built-in default; name, listen and upstreams are filled
/// in from the listener itself.
pub(super) fn builtin() -> ListenerConfig {
    ListenerConfig {
        name: String::new(),
        listen: SocketAddr::from(([0, 0, 0, 0], 0)),
        upstreams: Vec::new(),
        proxy_protocol: ProxyVersion::None,
        balance: Balance::RoundRobin,
        max_connections: None,
        max_per_ip: None,
        allow: NetworkSet::default(),
        deny: NetworkSet::default(),
        accept_proxy_from: NetworkSet::default(),
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(600),
        half_close_timeout: Duration::from_secs(60),
        proxy_header_timeout: Duration::from_secs(5),
        keepalive: Some(Duration::from_secs(60)),
        nodelay: true,
        splice: true,
        // Measured (BENCHMARKS.md, ferry-relay): one stream ran fastest with 256 KiB pipes on
        // both machines measured (19.6 against 15.0 Gbit/s with 64 KiB on one), and 1 MiB did
        // no better; each such pipe is 64 pages of the user's pipe-user-pages-soft budget, and
        // only a bulk transfer holds one.
        pipe_size: Some(256 << 10),
        warm: 0,
        warm_max_idle: Duration::from_secs(3),
        congestion: Some("bbr".to_owned()),
        health: HealthConfig {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        },
    }
}

pub(super) fn validate(
    raw: &RawFile,
    source: &Source,
    host: &HostAddrs,
) -> Result<Config, ConfigError> {
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
    if raw.listener.len() > bounds::LISTENERS {
        return Err(top.rule(format!(
            "{} listeners: at most {} (one [[listener]] table each)",
            raw.listener.len(),
            bounds::LISTENERS
        )));
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
    // An upstream that one of our own listeners accepts would loop connections until the
    // descriptors run out (directly, or through the other listener).
    for listener in &listeners {
        let cx = top.within(&format!("listener {:?}", listener.name));
        for upstream in &listener.upstreams {
            let Some(other) = listeners
                .iter()
                .find(|other| accepts(other.listen, upstream.addr, host))
            else {
                continue;
            };
            let key = if upstream.backup {
                "backup"
            } else {
                "upstream"
            };
            let value = Scalar::Text(upstream.addr.to_string());
            let mut reason = if other.listen == upstream.addr {
                format!("it is the listen address of listener {:?}", other.name)
            } else {
                format!(
                    "it is an address of this host, and listener {:?} listens on {}",
                    other.name, other.listen
                )
            };
            if other.name == listener.name {
                reason += ": it would forward to itself";
            }
            return Err(cx.invalid(key, &value, reason));
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
    let count = primaries.len() + backups.len();
    if count > bounds::UPSTREAMS {
        return Err(cx.rule(format!(
            "{count} upstreams and backups: at most {} in all",
            bounds::UPSTREAMS
        )));
    }
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
        l.max_connections = cx.limit("max_connections", v, bounds::CONNECTIONS)?;
    }
    if let Some(v) = &raw.max_per_ip {
        l.max_per_ip = cx.limit("max_per_ip", v, bounds::CONNECTIONS)?;
    }
    if let Some(list) = &raw.allow {
        l.allow = cx.cidrs("allow", list)?.into_iter().collect();
    }
    if let Some(list) = &raw.deny {
        l.deny = cx.cidrs("deny", list)?.into_iter().collect();
    }
    if let Some(list) = &raw.accept_proxy_from {
        let senders = cx.cidrs("accept_proxy_from", list)?;
        if let Some(i) = senders.iter().position(|c| c.prefix() == 0) {
            let reason = "it would let any client choose its address; list the load balancers";
            return Err(cx.invalid("accept_proxy_from", &list[i], reason));
        }
        l.accept_proxy_from = senders.into_iter().collect();
    }
    let timeouts: [(_, _, _, Bounds<Duration>); 4] = [
        (
            "connect_timeout",
            &raw.connect_timeout,
            &mut l.connect_timeout,
            bounds::CONNECT_TIMEOUT,
        ),
        (
            "idle_timeout",
            &raw.idle_timeout,
            &mut l.idle_timeout,
            bounds::IDLE_TIMEOUT,
        ),
        (
            "half_close_timeout",
            &raw.half_close_timeout,
            &mut l.half_close_timeout,
            bounds::HALF_CLOSE_TIMEOUT,
        ),
        (
            "proxy_header_timeout",
            &raw.proxy_header_timeout,
            &mut l.proxy_header_timeout,
            bounds::PROXY_HEADER_TIMEOUT,
        ),
    ];
    for (key, value, slot, range) in timeouts {
        if let Some(v) = value {
            *slot = cx.duration(key, v, range)?;
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
    if let Some(v) = &raw.pipe_size {
        let range = bounds::PIPE_SIZE;
        let reason = format!(
            "{} (a page to the kernel's default fs.pipe-max-size)",
            range.size_reason()
        );
        let size = cx.size("pipe_size", v, range, &reason)?;
        // At most 1 MiB: a usize on any target.
        l.pipe_size = Some(usize::try_from(size).map_err(|_| cx.invalid("pipe_size", v, reason))?);
    }
    if let Some(v) = &raw.warm {
        let range = bounds::WARM;
        let n = cx.count("warm", v, range, &range.reason())?;
        // At most 64.
        l.warm = usize::try_from(n).map_err(|_| cx.invalid("warm", v, range.reason()))?;
    }
    if let Some(v) = &raw.warm_max_idle {
        l.warm_max_idle = cx.duration("warm_max_idle", v, bounds::WARM_MAX_IDLE)?;
    }
    if let Some(v) = &raw.congestion {
        let name = cx.text("congestion", v)?;
        l.congestion = match name {
            "default" => None,
            _ if !name.is_empty()
                && name.len() < 16
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                Some(name.to_owned())
            }
            _ => {
                return Err(cx.invalid(
                    "congestion",
                    v,
                    "expected a congestion control algorithm such as bbr or cubic, or default",
                ))
            }
        };
    }
    if let Some(h) = &raw.health {
        if let Some(v) = &h.interval {
            l.health.interval = cx.duration("health.interval", v, bounds::HEALTH_INTERVAL)?;
        }
        if let Some(v) = &h.timeout {
            l.health.timeout = cx.duration("health.timeout", v, bounds::HEALTH_TIMEOUT)?;
        }
        let range = bounds::RISE_FALL;
        for (key, value, slot) in [
            ("health.rise", &h.rise, &mut l.health.rise),
            ("health.fall", &h.fall, &mut l.health.fall),
        ] {
            if let Some(v) = value {
                let n = cx.count(key, v, range, &range.reason())?;
                // At most 100: a u32.
                *slot = u32::try_from(n).map_err(|_| cx.invalid(key, v, range.reason()))?;
            }
        }
        if l.health.timeout > l.health.interval {
            match &h.timeout {
                // Only the interval was set here: the inherited timeout follows it down.
                None => l.health.timeout = l.health.interval,
                Some(v) => {
                    let reason = format!(
                        "must not exceed {} ({})",
                        cx.field("health.interval"),
                        format_duration(l.health.interval)
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
    match value {
        Scalar::Bool(false) => Ok(None),
        Scalar::Text(s) if s == "off" => Ok(None),
        Scalar::Bool(true) => Ok(builtin().keepalive),
        _ => {
            let reason = "must be from 1s to 32767s (the kernel's TCP_KEEPIDLE range), or off";
            cx.duration_or("keepalive", value, bounds::KEEPALIVE, reason)
                .map(Some)
        }
    }
}
