//! How a [`CountryDb`] becomes the bytes of a `.mmdb` file: the trie becomes search-tree nodes
//! (equal neighbours merged, `::ffff:0:0/96` pointed at the IPv4 subtree), each country one
//! record of the data section, and the metadata a map after the marker.

use std::collections::HashMap;

use super::{Country, CountryDb};

/// Marks the start of the metadata section.
const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
/// Zero bytes between the search tree and the data section.
const DATA_SEPARATOR: usize = 16;

/// The whole file: search tree, separator, data section, marker, metadata.
pub(super) fn file(db: &CountryDb) -> Vec<u8> {
    let tree = Emitter::run(db);
    let node_count = tree.nodes.len() as u64;
    let value = |record: Record| match record {
        Record::Empty => node_count,
        Record::Data(offset) => node_count + DATA_SEPARATOR as u64 + u64::from(offset),
        // Nodes were pushed children first, the root last: number them backwards.
        Record::Node(index) => node_count - 1 - u64::from(index),
    };
    let largest = node_count + (DATA_SEPARATOR + tree.data.len()) as u64;
    let record_size = [24, 28, 32]
        .into_iter()
        .find(|&bits| bits >= db.min_record_size && largest < 1 << bits)
        .unwrap_or(32);
    let mut out = Vec::with_capacity(tree.nodes.len() * usize::from(record_size) / 4);
    for [left, right] in tree.nodes.iter().rev() {
        write_node(&mut out, record_size, value(*left), value(*right));
    }
    out.extend_from_slice(&[0; DATA_SEPARATOR]);
    out.extend_from_slice(&tree.data);
    out.extend_from_slice(METADATA_MARKER);
    metadata(&mut out, db, node_count, record_size);
    out
}

/// The metadata map (after the marker).
fn metadata(out: &mut Vec<u8>, db: &CountryDb, node_count: u64, record_size: u16) {
    header(out, MAP, 9);
    string(out, "binary_format_major_version");
    uint(out, UINT16, 2);
    string(out, "binary_format_minor_version");
    uint(out, UINT16, 0);
    string(out, "build_epoch");
    uint(out, UINT64, db.build_epoch);
    string(out, "database_type");
    string(out, &db.database_type);
    string(out, "description");
    header(out, MAP, 1);
    string(out, "en");
    string(out, &db.description);
    string(out, "ip_version");
    uint(out, UINT16, 6);
    string(out, "languages");
    header(out, ARRAY, 1);
    string(out, "en");
    string(out, "node_count");
    uint(out, UINT32, node_count);
    string(out, "record_size");
    uint(out, UINT16, u64::from(record_size));
}

/// A search-tree record before numbering: no data, a data offset, or a node in push order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Record {
    Empty,
    Data(u32),
    Node(u32),
}

/// Turns the trie into search-tree nodes and a data section.
struct Emitter<'a> {
    db: &'a CountryDb,
    nodes: Vec<[Record; 2]>,
    data: Vec<u8>,
    offsets: HashMap<Country, u32>,
    /// The IPv4 subtree's record, once written; `::/96` and `::ffff:0:0/96` both use it.
    ipv4: Option<Record>,
}

impl<'a> Emitter<'a> {
    fn run(db: &'a CountryDb) -> Self {
        let mut emitter = Self {
            db,
            nodes: Vec::new(),
            data: Vec::new(),
            offsets: HashMap::new(),
            ipv4: None,
        };
        // The IPv4 subtree first, with the country of the IPv6 network around it, if any, so
        // that its alias can point at it wherever the walk meets it.
        let mut around = None;
        let mut node = 0u32;
        for _ in 0..96 {
            around = db.nodes[node as usize].country.or(around);
            node = db.nodes[node as usize].children[0];
        }
        let ipv4 = emitter.emit(db.ipv4, around, false);
        emitter.ipv4 = Some(ipv4);
        emitter.emit(0, None, true);
        emitter
    }

    /// The record for trie node `node` under a network of country `around`. Two equal leaf
    /// records make no node (the network is wider than inserted, same answers); the root is
    /// always a node.
    fn emit(&mut self, node: u32, around: Option<Country>, root: bool) -> Record {
        if node == self.db.mapped || node == self.db.ipv4 {
            if let Some(ipv4) = self.ipv4 {
                return ipv4;
            }
        }
        let trie = &self.db.nodes[node as usize];
        let (children, here) = (trie.children, trie.country.or(around));
        if children == [0, 0] && !root {
            return self.leaf(here);
        }
        let mut records = [Record::Empty; 2];
        for (record, child) in records.iter_mut().zip(children) {
            *record = if child == 0 {
                self.leaf(here)
            } else {
                self.emit(child, here, false)
            };
        }
        if records[0] == records[1] && !matches!(records[0], Record::Node(_)) && !root {
            return records[0];
        }
        self.nodes.push(records);
        // At most one node per trie node, and there are fewer than MAX_NODES = 2^28 of those.
        Record::Node((self.nodes.len() - 1) as u32)
    }

    /// The record of `country`'s data, written on first use.
    fn leaf(&mut self, country: Option<Country>) -> Record {
        let Some(country) = country else {
            return Record::Empty;
        };
        let data = &mut self.data;
        let offset = *self.offsets.entry(country).or_insert_with(|| {
            // At most 26 * 26 countries of under 200 bytes each.
            let offset = data.len() as u32;
            country_record(data, country);
            offset
        });
        Record::Data(offset)
    }
}

/// Write one node of two records.
fn write_node(out: &mut Vec<u8>, record_size: u16, left: u64, right: u64) {
    let (l, r) = (left.to_be_bytes(), right.to_be_bytes());
    match record_size {
        24 => {
            out.extend_from_slice(&l[5..]);
            out.extend_from_slice(&r[5..]);
        }
        // 28 bits: the low 24 bits of each record around a middle byte holding the top four
        // bits of the left record, then of the right one.
        28 => {
            out.extend_from_slice(&l[5..]);
            out.push(((l[4] & 0x0f) << 4) | (r[4] & 0x0f));
            out.extend_from_slice(&r[5..]);
        }
        _ => {
            out.extend_from_slice(&l[4..]);
            out.extend_from_slice(&r[4..]);
        }
    }
}

/// `{"country": C, "registered_country": C}` with `C = {"iso_code": .., "names": {"en": ..}}`.
fn country_record(out: &mut Vec<u8>, country: Country) {
    let name = english_name(country.code());
    header(out, MAP, 2);
    for key in ["country", "registered_country"] {
        string(out, key);
        header(out, MAP, if name.is_some() { 2 } else { 1 });
        string(out, "iso_code");
        string(out, country.code());
        if let Some(name) = name {
            string(out, "names");
            header(out, MAP, 1);
            string(out, "en");
            string(out, name);
        }
    }
}

/// English names of the countries this project's tests and demo meet; others get no `names`.
fn english_name(code: &str) -> Option<&'static str> {
    const NAMES: &[(&str, &str)] = &[
        ("AU", "Australia"),
        ("BR", "Brazil"),
        ("CA", "Canada"),
        ("CN", "China"),
        ("DE", "Germany"),
        ("FR", "France"),
        ("GB", "United Kingdom"),
        ("HK", "Hong Kong"),
        ("IN", "India"),
        ("JP", "Japan"),
        ("KR", "South Korea"),
        ("MO", "Macao"),
        ("NL", "Netherlands"),
        ("RU", "Russia"),
        ("SG", "Singapore"),
        ("TW", "Taiwan"),
        ("US", "United States"),
    ];
    NAMES
        .iter()
        .find(|(known, _)| *known == code)
        .map(|(_, name)| *name)
}

// Data-section type numbers (types above 7 take an extra byte, holding the number minus 7).
const STRING: u8 = 2;
const UINT16: u8 = 5;
const UINT32: u8 = 6;
const MAP: u8 = 7;
const UINT64: u8 = 9;
const ARRAY: u8 = 11;

/// A field's control byte(s): the type, then a size (bytes, or entries of a map or array) of
/// under 29 in the byte itself, else 29, 30 or 31 and 1, 2 or 3 more bytes. Sizes here are
/// short strings and small maps, far below the format's limit of 16,843,036.
fn header(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (code, extra, rest) = match size {
        0..29 => (size as u8, 0, 0),
        29..285 => (29, 1, size - 29),
        285..65_821 => (30, 2, size - 285),
        _ => (31, 3, size - 65_821),
    };
    if kind <= 7 {
        out.push((kind << 5) | code);
    } else {
        out.push(code);
        out.push(kind - 7);
    }
    let rest = (rest as u64).to_be_bytes();
    out.extend_from_slice(&rest[8 - extra..]);
}

/// A UTF-8 string field.
fn string(out: &mut Vec<u8>, text: &str) {
    header(out, STRING, text.len());
    out.extend_from_slice(text.as_bytes());
}

/// An unsigned integer field in as few bytes as it needs (none for zero).
fn uint(out: &mut Vec<u8>, kind: u8, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    header(out, kind, bytes.len() - skip);
    out.extend_from_slice(&bytes[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_follow_the_spec_examples() {
        let encoded = |kind: u8, size: usize| {
            let mut out = Vec::new();
            header(&mut out, kind, size);
            out
        };
        // The examples of the spec's "Payload Size" section.
        assert_eq!(encoded(STRING, 2), [0b0100_0010]);
        assert_eq!(encoded(STRING, 28), [0b0101_1100]);
        assert_eq!(encoded(STRING, 80), [0b0101_1101, 51]);
        assert_eq!(encoded(STRING, 13_392), [0b0101_1110, 0x33, 0x33]);
        assert_eq!(encoded(STRING, 3_421_264), [0b0101_1111, 0x33, 0x33, 0x33]);
        // Extended types: a zero type in the first byte, the type minus 7 in the second.
        assert_eq!(encoded(ARRAY, 1), [0b0000_0001, 4]);
        assert_eq!(encoded(UINT64, 30), [0b0001_1101, 2, 1]);
    }

    #[test]
    fn integers_use_the_fewest_bytes() {
        let encoded = |value: u64| {
            let mut out = Vec::new();
            uint(&mut out, UINT32, value);
            out
        };
        assert_eq!(encoded(0), [0b1100_0000]);
        assert_eq!(encoded(6), [0b1100_0001, 6]);
        assert_eq!(encoded(0x1_0000), [0b1100_0011, 1, 0, 0]);
    }

    #[test]
    fn records_of_28_bits_share_a_middle_byte() {
        let mut out = Vec::new();
        write_node(&mut out, 28, 0x0abc_def1, 0x0123_4567);
        assert_eq!(out, [0xbc, 0xde, 0xf1, 0xa1, 0x23, 0x45, 0x67]);
        out.clear();
        write_node(&mut out, 24, 0x00ab_cdef, 0x0012_3456);
        assert_eq!(out, [0xab, 0xcd, 0xef, 0x12, 0x34, 0x56]);
    }

    #[test]
    fn equal_neighbours_need_no_node() {
        let mut split = CountryDb::new();
        split.insert_str("10.0.0.0/9", "CN").expect("valid");
        split.insert_str("10.128.0.0/9", "CN").expect("valid");
        let mut whole = CountryDb::new();
        whole.insert_str("10.0.0.0/8", "CN").expect("valid");
        split.set_build_epoch(1);
        whole.set_build_epoch(1);
        assert_eq!(split.to_bytes(), whole.to_bytes());
    }
}
