//! A writer of MaxMind DB (`.mmdb`, format 2.0) country databases, so tests and the demo can give
//! Envoy's geoip filter a database of their own: nothing is downloaded, and MaxMind's data (with
//! its licence) is never needed.
//!
//! [`CountryDb`] maps networks to ISO 3166-1 country codes and writes a file that libmaxminddb
//! (inside Envoy) and the `maxminddb` crate read like a GeoLite2-Country database. Each network's
//! record is `{"country": {"iso_code": "CN", "names": {"en": "China"}}, "registered_country":
//! <the same>}`; Envoy's maxmind provider reads `country.iso_code` only.
//!
//! # The format, briefly (<https://maxmind.github.io/MaxMind-DB/>)
//! - **Search tree.** A binary trie over the 128 bits of an IPv6 address, node 0 the root. A node
//!   is two records (bit 0, bit 1) of `record_size` bits each, big-endian; this writer takes the
//!   smallest of 24, 28 and 32 that fits. A record below `node_count` is a node, `node_count`
//!   itself means "no data", and a larger value `v` points to byte `v - node_count - 16` of the
//!   data section.
//! - **IPv4.** The tree is an IPv6 one (`ip_version` 6) and IPv4 networks live under `::/96`:
//!   readers look IPv4 addresses up from the node reached after 96 zero bits. Like MaxMind's
//!   databases, `::ffff:0:0/96` points at that same subtree, so IPv4-mapped IPv6 addresses
//!   (`::ffff:1.0.1.7`) find their IPv4 network. The 6to4 alias (`2002::/16`) is not written.
//! - **Data section.** After 16 zero bytes, one self-describing value per distinct country (a
//!   control byte carries the type and the size), shared by every network of that country.
//! - **Metadata.** After the last `\xAB\xCD\xEFMaxMind.com`, a map: `node_count`, `record_size`,
//!   `ip_version`, `database_type`, `languages`, `binary_format_major_version` (2),
//!   `binary_format_minor_version` (0), `build_epoch` and `description`.
//!
//! # Overlapping networks
//! The most specific network that contains an address decides its country, whatever the order
//! of the inserts: `10.0.0.0/8 US` then `10.1.0.0/16 CN` (or the other way round) gives
//! `10.1.2.3` CN and `10.2.3.4` US. Inserting the very same network again replaces its country.
//! An IPv6 network inside `::ffff:0:0/96` is stored as the IPv4 network it maps; an IPv6 network
//! around `::/96` (such as `::/0`) also covers IPv4 addresses that no IPv4 network holds, since
//! `::a.b.c.d` and `a.b.c.d` are the same place in the tree.
//!
//! # Text format ([`CountryDb::from_text`])
//! One `NETWORK COUNTRY` pair a line, e.g. `1.0.1.0/24 CN` or `240e::/20 cn`; a bare address is
//! a single host; `#` starts a comment; blank lines are skipped. Errors name the line.
//!
//! This module holds the API and the trie the inserts build; `write` turns the trie into the
//! file's bytes.

use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub use ferry_net::Cidr;
use ferry_net::CidrError;

use crate::paths;

mod write;

/// What Envoy's geoip filter and GeoIP2 readers know a country database by. Envoy does not check
/// it; the `geoip2` reader libraries (Python, Go, Java) accept `country()` lookups by this name.
pub const DEFAULT_DATABASE_TYPE: &str = "GeoLite2-Country";

/// The description written unless another is set.
const DEFAULT_DESCRIPTION: &str = "Ferry test country database (generated; not MaxMind data)";
/// At most this many trie nodes; keeps every record value below 2^32 (a 32-bit record).
const MAX_NODES: usize = 1 << 28;
/// The longest `database_type` or description accepted (the whole metadata may be 128 KiB).
const MAX_METADATA_TEXT: usize = 4096;
/// The prefix of IPv4-mapped IPv6 addresses, `::ffff:0:0/96`, as the top 96 of 128 bits.
const MAPPED_PREFIX: u128 = 0xffff << 32;

/// Why a database could not be built or read from text.
#[derive(Debug, thiserror::Error)]
pub enum MmdbError {
    #[error("{text:?} is not a network: {reason}")]
    Network { text: String, reason: String },
    #[error("{0:?} is not a country code: expected two ASCII letters, such as CN")]
    Country(String),
    #[error("expected NETWORK COUNTRY (such as `1.0.1.0/24 CN`), found {0:?}")]
    Syntax(String),
    #[error("line {line}: {source}")]
    Line {
        line: usize,
        #[source]
        source: Box<MmdbError>,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{field} is {len} bytes long; at most {MAX_METADATA_TEXT} are allowed")]
    TooLong { field: &'static str, len: usize },
    #[error("record_size {0} is not 24, 28 or 32")]
    RecordSize(u16),
    #[error("the search tree would need more than {MAX_NODES} nodes")]
    TooLarge,
}

/// The network's place in the IPv6 search tree: its first 128-bit address and depth. IPv4
/// sits under `::/96` (`ferry_net` reads an IPv4-mapped network as the IPv4 one, so
/// `::ffff:0:0/96`, an alias of `::/96` in the tree, never gets a network of its own).
fn tree_key(network: &Cidr) -> (u128, u8) {
    match network.network() {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), network.prefix() + 96),
        IpAddr::V6(v6) => (u128::from(v6), network.prefix()),
    }
}

/// `text` as a network, or the error that names it.
fn parse_network(text: &str) -> Result<Cidr, MmdbError> {
    text.parse().map_err(|err: CidrError| MmdbError::Network {
        text: text.to_owned(),
        reason: err.to_string(),
    })
}

/// A two-letter ISO 3166-1 code, uppercase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Country([u8; 2]);

impl Country {
    fn parse(text: &str) -> Result<Self, MmdbError> {
        match text.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Ok(Self([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => Err(MmdbError::Country(text.to_owned())),
        }
    }

    fn code(&self) -> &str {
        // Both bytes are ASCII letters (checked in `parse`), so this is UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

/// A node of the build-time trie; child 0 means none (the root is never a child).
#[derive(Clone, Debug, Default)]
struct TrieNode {
    children: [u32; 2],
    country: Option<Country>,
}

/// A country database being built; see the module docs for the rules.
#[derive(Clone, Debug)]
pub struct CountryDb {
    nodes: Vec<TrieNode>,
    /// The trie node at `::/96`, the IPv4 root.
    ipv4: u32,
    /// The trie node at `::ffff:0:0/96`, written as a pointer to the IPv4 root.
    mapped: u32,
    database_type: String,
    description: String,
    build_epoch: u64,
    min_record_size: u16,
}

impl Default for CountryDb {
    fn default() -> Self {
        Self::new()
    }
}

impl CountryDb {
    /// An empty database, built now, of type [`DEFAULT_DATABASE_TYPE`].
    pub fn new() -> Self {
        let build_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let mut db = Self {
            nodes: vec![TrieNode::default()],
            ipv4: 0,
            mapped: 0,
            database_type: DEFAULT_DATABASE_TYPE.to_owned(),
            description: DEFAULT_DESCRIPTION.to_owned(),
            build_epoch,
            min_record_size: 24,
        };
        // 96 + 96 nodes, far below MAX_NODES.
        db.ipv4 = db.path_to(0, 96).unwrap_or(0);
        db.mapped = db.path_to(MAPPED_PREFIX, 96).unwrap_or(0);
        db
    }

    /// The database in `text` (see the module docs for the format).
    pub fn from_text(text: &str) -> Result<Self, MmdbError> {
        let mut db = Self::new();
        for (index, line) in text.lines().enumerate() {
            let content = line.split('#').next().unwrap_or_default();
            let fields: Vec<&str> = content.split_whitespace().collect();
            let inserted = match fields.as_slice() {
                [] => Ok(()),
                [network, country] => db.insert_str(network, country),
                _ => Err(MmdbError::Syntax(line.trim().to_owned())),
            };
            inserted.map_err(|err| MmdbError::Line {
                line: index + 1,
                source: Box::new(err),
            })?;
        }
        Ok(db)
    }

    /// The database in the text file at `path`; errors name the file and the line.
    pub fn from_file(path: &Path) -> Result<Self, MmdbError> {
        let text = std::fs::read_to_string(path).map_err(|source| MmdbError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_text(&text)
    }

    /// Map `network` to `country` (two ASCII letters, any case).
    pub fn insert(&mut self, network: Cidr, country: &str) -> Result<(), MmdbError> {
        let country = Country::parse(country)?;
        let (key, depth) = tree_key(&network);
        let node = self.path_to(key, depth)?;
        self.nodes[node as usize].country = Some(country);
        Ok(())
    }

    /// [`insert`](Self::insert) with the network as text, such as `1.0.1.0/24`.
    pub fn insert_str(&mut self, network: &str, country: &str) -> Result<(), MmdbError> {
        let network = parse_network(network)?;
        self.insert(network, country)
    }

    /// Set `database_type` (default [`DEFAULT_DATABASE_TYPE`]).
    pub fn set_database_type(&mut self, name: &str) -> Result<(), MmdbError> {
        self.database_type = checked_text("database_type", name)?;
        Ok(())
    }

    /// Set the English `description`.
    pub fn set_description(&mut self, text: &str) -> Result<(), MmdbError> {
        self.description = checked_text("description", text)?;
        Ok(())
    }

    /// Set `build_epoch` (default: when the database was created), e.g. for identical output.
    pub fn set_build_epoch(&mut self, seconds: u64) {
        self.build_epoch = seconds;
    }

    /// Write records of at least `bits` bits (24, 28 or 32; default 24). A larger size is used
    /// anyway when the tree needs it.
    pub fn set_min_record_size(&mut self, bits: u16) -> Result<(), MmdbError> {
        if !matches!(bits, 24 | 28 | 32) {
            return Err(MmdbError::RecordSize(bits));
        }
        self.min_record_size = bits;
        Ok(())
    }

    /// The `.mmdb` file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        write::file(self)
    }

    /// Write the file to `path` through a temp file in the same directory and a rename, so a
    /// running Envoy (which watches for files moved into place) reloads a whole database.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        // Temp files are created 0600; a database is for any reader.
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        file.write_all(&self.to_bytes())?;
        file.as_file().sync_all()?;
        file.persist(path).map_err(|err| err.error)?;
        Ok(())
    }

    /// The trie node at `depth` bits of `key`, created as needed.
    fn path_to(&mut self, key: u128, depth: u8) -> Result<u32, MmdbError> {
        let mut node = 0usize;
        for bit_index in 0..depth {
            let bit = ((key >> (127 - bit_index)) & 1) as usize;
            let child = self.nodes[node].children[bit];
            node = if child != 0 {
                child as usize
            } else {
                let new = self.nodes.len();
                if new >= MAX_NODES {
                    return Err(MmdbError::TooLarge);
                }
                self.nodes.push(TrieNode::default());
                // new < MAX_NODES = 2^28, so it fits in a u32.
                self.nodes[node].children[bit] = new as u32;
                new
            };
        }
        Ok(node as u32)
    }
}

/// `text` if it is short enough for the metadata section.
fn checked_text(field: &'static str, text: &str) -> Result<String, MmdbError> {
    if text.len() > MAX_METADATA_TEXT {
        return Err(MmdbError::TooLong {
            field,
            len: text.len(),
        });
    }
    Ok(text.to_owned())
}

/// `tests/data/geo-sample.txt`: the networks the demo builds its database from.
pub fn sample_path() -> PathBuf {
    paths::workspace_root().join("tests/data/geo-sample.txt")
}
