//! The raw form: what the file (or the flags) said, before any check. Everything is optional
//! and every scalar is kept as written, so that validation (not serde) decides what is wrong
//! and says it in one line.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A scalar as written: TOML gives any of the three, flags give text. Checking the type in
/// validation (rather than in serde) lets a wrong one get the same message as a bad value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
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
pub(super) struct RawFile {
    pub(super) metrics: Option<Scalar>,
    pub(super) log_format: Option<Scalar>,
    pub(super) grace: Option<Scalar>,
    pub(super) defaults: Option<RawListener>,
    #[serde(default)]
    pub(super) listener: Vec<RawListener>,
}

/// A `[[listener]]` table, or `[defaults]` (which may not set the first four).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListener {
    pub(super) name: Option<Scalar>,
    pub(super) listen: Option<Scalar>,
    pub(super) upstreams: Option<Vec<Scalar>>,
    pub(super) backups: Option<Vec<Scalar>>,
    pub(super) proxy_protocol: Option<Scalar>,
    pub(super) balance: Option<Scalar>,
    pub(super) max_connections: Option<Scalar>,
    pub(super) max_per_ip: Option<Scalar>,
    pub(super) allow: Option<Vec<Scalar>>,
    pub(super) deny: Option<Vec<Scalar>>,
    pub(super) accept_proxy_from: Option<Vec<Scalar>>,
    pub(super) connect_timeout: Option<Scalar>,
    pub(super) idle_timeout: Option<Scalar>,
    pub(super) half_close_timeout: Option<Scalar>,
    pub(super) proxy_header_timeout: Option<Scalar>,
    pub(super) keepalive: Option<Scalar>,
    pub(super) nodelay: Option<Scalar>,
    pub(super) splice: Option<Scalar>,
    pub(super) pipe_size: Option<Scalar>,
    pub(super) warm: Option<Scalar>,
    pub(super) warm_max_idle: Option<Scalar>,
    pub(super) congestion: Option<Scalar>,
    pub(super) health: Option<RawHealth>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub(super) interval: Option<Scalar>,
    pub(super) timeout: Option<Scalar>,
    pub(super) rise: Option<Scalar>,
    pub(super) fall: Option<Scalar>,
}
