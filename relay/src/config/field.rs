//! Checking one raw value: each [`Ctx`] method turns a [`Scalar`] into a typed value or into a
//! [`ConfigError`] that says where it sits (file and listener) and names the field the way the
//! source spells it (`health.interval` in a file, `--health-interval` on the command line).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::bounds::Bounds;
use super::duration::TOO_LARGE;
use super::raw::Scalar;
use super::size::parse_size;
use super::{parse_duration, ConfigError};
use ferry_net::Cidr;

/// Where the raw values came from: it decides how fields are named in messages.
pub(super) enum Source {
    Cli,
    File(PathBuf),
}

/// Where in the configuration a value sits, for messages.
pub(super) struct Ctx<'a> {
    pub(super) source: &'a Source,
    /// Empty, or ends with ": ".
    at: String,
}

impl<'a> Ctx<'a> {
    pub(super) fn top(source: &'a Source) -> Ctx<'a> {
        let at = match source {
            Source::Cli => String::new(),
            Source::File(path) => format!("{}: ", path.display()),
        };
        Ctx { source, at }
    }

    pub(super) fn within(&self, scope: &str) -> Ctx<'a> {
        match self.source {
            Source::Cli => Ctx::top(self.source),
            Source::File(_) => Ctx {
                source: self.source,
                at: format!("{}{scope}: ", self.at),
            },
        }
    }

    /// `health.interval` in a file is `--health-interval` on the command line.
    pub(super) fn field(&self, key: &str) -> String {
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

    pub(super) fn invalid(
        &self,
        key: &str,
        value: &Scalar,
        reason: impl fmt::Display,
    ) -> ConfigError {
        ConfigError::Invalid {
            at: self.at.clone(),
            field: self.field(key),
            value: self.show(value),
            reason: reason.to_string(),
        }
    }

    pub(super) fn rule(&self, message: impl fmt::Display) -> ConfigError {
        ConfigError::Rule {
            at: self.at.clone(),
            message: message.to_string(),
        }
    }

    pub(super) fn missing(&self, key: &str) -> ConfigError {
        match self.source {
            Source::Cli => self.rule(format!("{} is required", self.field(key))),
            Source::File(_) => self.rule(format!("{key} is missing")),
        }
    }

    pub(super) fn text<'v>(&self, key: &str, value: &'v Scalar) -> Result<&'v str, ConfigError> {
        match value {
            Scalar::Text(s) => Ok(s),
            _ => Err(self.invalid(key, value, "expected a string")),
        }
    }

    pub(super) fn addr(&self, key: &str, value: &Scalar) -> Result<SocketAddr, ConfigError> {
        parse_addr(self.text(key, value)?).map_err(|reason| self.invalid(key, value, reason))
    }

    /// A duration within `bounds`; a value outside gets [`Bounds::reason`].
    pub(super) fn duration(
        &self,
        key: &str,
        value: &Scalar,
        bounds: Bounds<Duration>,
    ) -> Result<Duration, ConfigError> {
        self.duration_or(key, value, bounds, &bounds.reason())
    }

    /// A duration within `bounds`; a value outside gets `reason`.
    pub(super) fn duration_or(
        &self,
        key: &str,
        value: &Scalar,
        bounds: Bounds<Duration>,
        reason: &str,
    ) -> Result<Duration, ConfigError> {
        let text = match value {
            Scalar::Text(s) => s,
            _ => return Err(self.invalid(key, value, "expected a string such as \"5s\"")),
        };
        match parse_duration(text) {
            Ok(d) if bounds.contains(d) => Ok(d),
            Ok(_) => Err(self.invalid(key, value, reason)),
            Err(e) if e == TOO_LARGE => Err(self.invalid(key, value, reason)),
            Err(e) => Err(self.invalid(key, value, e)),
        }
    }

    /// A whole number within `bounds`; a value outside (negative, or past any integer
    /// included) gets `reason`.
    pub(super) fn count(
        &self,
        key: &str,
        value: &Scalar,
        bounds: Bounds<u64>,
        reason: &str,
    ) -> Result<u64, ConfigError> {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let n = match value {
            Scalar::Int(n) => u64::try_from(*n).ok(),
            Scalar::Text(s) if digits(s) => s.parse().ok(),
            Scalar::Text(s) if s.strip_prefix('-').is_some_and(digits) => None,
            _ => return Err(self.invalid(key, value, "expected a whole number")),
        };
        n.filter(|&n| bounds.contains(n))
            .ok_or_else(|| self.invalid(key, value, reason))
    }

    /// A limit: a count within `bounds`, or "unlimited".
    pub(super) fn limit(
        &self,
        key: &str,
        value: &Scalar,
        bounds: Bounds<u64>,
    ) -> Result<Option<usize>, ConfigError> {
        if *value == Scalar::Text("unlimited".into()) {
            return Ok(None);
        }
        let reason = format!("{}, or unlimited", bounds.reason());
        let n = self.count(key, value, bounds, &reason)?;
        // The bounds are far below usize::MAX on any target the relay builds for.
        usize::try_from(n)
            .map(Some)
            .map_err(|_| self.invalid(key, value, reason))
    }

    /// A size in bytes (`65536`, `"64KiB"`, `"1MiB"`) within `bounds`; a value outside gets
    /// `reason`.
    pub(super) fn size(
        &self,
        key: &str,
        value: &Scalar,
        bounds: Bounds<u64>,
        reason: &str,
    ) -> Result<u64, ConfigError> {
        let n = match value {
            Scalar::Int(n) => u64::try_from(*n).ok(),
            Scalar::Text(s) if s.strip_prefix('-').is_some_and(|r| parse_size(r).is_ok()) => None,
            Scalar::Text(s) => match parse_size(s) {
                Ok(n) => Some(n),
                Err(e) if e == TOO_LARGE => None,
                Err(e) => return Err(self.invalid(key, value, e)),
            },
            Scalar::Bool(_) => {
                return Err(self.invalid(key, value, "expected a size such as \"256KiB\""))
            }
        };
        n.filter(|&n| bounds.contains(n))
            .ok_or_else(|| self.invalid(key, value, reason))
    }

    pub(super) fn bool(&self, key: &str, value: &Scalar) -> Result<bool, ConfigError> {
        match value {
            Scalar::Bool(b) => Ok(*b),
            _ => Err(self.invalid(key, value, "expected true or false")),
        }
    }

    pub(super) fn choice<T: Copy>(
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

    pub(super) fn cidrs(&self, key: &str, values: &[Scalar]) -> Result<Vec<Cidr>, ConfigError> {
        values
            .iter()
            .map(|value| {
                self.text(key, value)?
                    .parse::<Cidr>()
                    .map_err(|e| self.invalid(key, value, e))
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
