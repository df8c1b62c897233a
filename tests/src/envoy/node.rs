//! The shipped node configs, `envoy/us-east.yaml` and `envoy/redirect.yaml`, and the files they
//! name.
//!
//! A node config names its certificates, keys, GeoIP database, `.wasm` and CA bundle by absolute
//! paths under `/etc` ([`FILES`] lists every one, and only those may appear). Tests cannot
//! write there, so they substitute local stand-ins ([`LocalFiles`]: certificates from a local
//! CA, a country database built from `tests/data/geo-sample.txt`) for exactly those paths and
//! nothing else: [`with_local_files`] is what `envoy --mode validate` checks, and
//! [`EnvoyConfig::file`](super::EnvoyConfig::file) does the same for a config a test runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::ConfigError;
use crate::mmdb::{self, CountryDb};
use crate::paths;
use crate::pki::{Leaf, Pki};

/// The mirror domain's certificate chain (PEM).
pub const MIRROR_CERT: &str = "/etc/ferry/tls/mirror.crt";
/// The mirror domain's private key (PEM).
pub const MIRROR_KEY: &str = "/etc/ferry/tls/mirror.key";
/// The origin domain's certificate chain (PEM), for visitors who ask for the origin domain.
pub const ORIGIN_CERT: &str = "/etc/ferry/tls/origin.crt";
/// The origin domain's private key (PEM).
pub const ORIGIN_KEY: &str = "/etc/ferry/tls/origin.key";
/// The MaxMind country database of the geoip filter.
pub const GEOIP_DB: &str = "/etc/ferry/GeoLite2-Country.mmdb";
/// The built filter.
pub const WASM: &str = "/etc/ferry/ferry_filter.wasm";
/// The CA bundle the origin's certificate is verified against (Debian and Ubuntu's path).
pub const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Every file a node config may name, with what it is. A config that names another absolute
/// path fails [`with_local_files`], so no file can be added without a stand-in here.
pub const FILES: &[(&str, &str)] = &[
    (MIRROR_CERT, "mirror certificate"),
    (MIRROR_KEY, "mirror key"),
    (ORIGIN_CERT, "origin certificate"),
    (ORIGIN_KEY, "origin key"),
    (GEOIP_DB, "country database"),
    (WASM, "Ferry filter"),
    (SYSTEM_CA, "CA bundle for the origin"),
];

/// `envoy/us-east.yaml`.
pub fn us_east() -> PathBuf {
    paths::envoy_dir().join("us-east.yaml")
}

/// `envoy/redirect.yaml`.
pub fn redirect() -> PathBuf {
    paths::envoy_dir().join("redirect.yaml")
}

/// Local stand-ins for the files in [`FILES`], made in a directory.
#[derive(Debug)]
pub struct LocalFiles {
    /// The CA that issued both certificates; its `ca.pem` stands in for [`SYSTEM_CA`].
    pub pki: Pki,
    /// A certificate for `example.cn` and `*.example.cn`.
    pub mirror: Leaf,
    /// A certificate for `example.com` and `*.example.com`.
    pub origin: Leaf,
    /// A country database built from `tests/data/geo-sample.txt`.
    pub geoip_db: PathBuf,
    /// The built filter ([`paths::wasm_path`]): even `envoy --mode validate` loads it, and the
    /// filter checks its plugin configuration there.
    pub wasm: PathBuf,
}

impl LocalFiles {
    /// Make every stand-in in `dir`; fails if the filter is not built.
    pub fn generate(dir: &Path) -> Result<Self, String> {
        let pki = Pki::new(dir).map_err(|err| err.to_string())?;
        let mirror = pki
            .issue_as("mirror", &["example.cn", "*.example.cn"])
            .map_err(|err| err.to_string())?;
        let origin = pki
            .issue_as("origin", &["example.com", "*.example.com"])
            .map_err(|err| err.to_string())?;
        let geoip_db = dir.join("geo.mmdb");
        write_sample_db(&geoip_db)?;
        let wasm = paths::try_wasm_path()?;
        Ok(Self {
            pki,
            mirror,
            origin,
            geoip_db,
            wasm,
        })
    }

    /// The stand-in for the shipped path `shipped` (one of [`FILES`]).
    pub fn path_for(&self, shipped: &str) -> Option<PathBuf> {
        let path = match shipped {
            MIRROR_CERT => &self.mirror.cert_pem,
            MIRROR_KEY => &self.mirror.key_pem,
            ORIGIN_CERT => &self.origin.cert_pem,
            ORIGIN_KEY => &self.origin.key_pem,
            GEOIP_DB => &self.geoip_db,
            WASM => &self.wasm,
            SYSTEM_CA => return Some(self.pki.ca_path()),
            _ => return None,
        };
        Some(path.clone())
    }
}

/// Write the country database of `tests/data/geo-sample.txt` to `path`.
pub fn write_sample_db(path: &Path) -> Result<(), String> {
    let sample = mmdb::sample_path();
    let db = CountryDb::from_file(&sample).map_err(|err| format!("{}: {err}", sample.display()))?;
    db.write(path)
        .map_err(|err| format!("cannot write {}: {err}", path.display()))
}

/// Every absolute file path `doc` names: the string values of `filename` keys and of keys
/// ending in `_path` that start with `/`.
pub fn file_paths(doc: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    collect_paths(doc, &mut found);
    found
}

fn collect_paths(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Mapping(map) => {
            for (key, value) in map {
                let is_path_key = key
                    .as_str()
                    .is_some_and(|key| key == "filename" || key.ends_with("_path"));
                match value.as_str() {
                    Some(text) if is_path_key && text.starts_with('/') => {
                        found.insert(text.to_owned());
                    }
                    _ => collect_paths(value, found),
                }
            }
        }
        Value::Sequence(items) => items.iter().for_each(|item| collect_paths(item, found)),
        _ => {}
    }
}

/// Replace every string value equal to `from` under `doc` by `to`; how many were replaced.
pub fn substitute(doc: &mut Value, from: &str, to: &str) -> usize {
    match doc {
        Value::String(text) if text == from => {
            *text = to.to_owned();
            1
        }
        Value::Mapping(map) => map
            .iter_mut()
            .map(|(_, value)| substitute(value, from, to))
            .sum(),
        Value::Sequence(items) => items
            .iter_mut()
            .map(|item| substitute(item, from, to))
            .sum(),
        _ => 0,
    }
}

/// The config at `path` with every file it names replaced by its stand-in in `files`, and
/// nothing else changed, as YAML. Fails if it names a file that is not in [`FILES`].
pub fn with_local_files(path: &Path, files: &LocalFiles) -> Result<String, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut doc: Value = serde_yaml::from_str(&text).map_err(|source| ConfigError::Yaml {
        name: name.clone(),
        source,
    })?;
    for shipped in file_paths(&doc) {
        let local = files
            .path_for(&shipped)
            .ok_or_else(|| ConfigError::Undocumented {
                name: name.clone(),
                path: shipped.clone(),
            })?;
        substitute(&mut doc, &shipped, &local.display().to_string());
    }
    serde_yaml::to_string(&doc).map_err(ConfigError::Render)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_found_under_filename_and_path_keys_only() {
        let doc: Value = serde_yaml::from_str(
            "a: { filename: /x/cert.pem }\nb: [{ country_db_path: /x/db }]\n\
             c: { filename: relative.wasm, other: /not/a/file/key }\n",
        )
        .expect("YAML");
        let found: Vec<String> = file_paths(&doc).into_iter().collect();
        assert_eq!(found, ["/x/cert.pem", "/x/db"]);
        let mut doc = doc;
        assert_eq!(substitute(&mut doc, "/x/db", "/tmp/db"), 1);
        assert_eq!(doc["b"][0]["country_db_path"].as_str(), Some("/tmp/db"));
    }
}
