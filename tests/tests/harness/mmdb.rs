//! The MaxMind DB writer (`ferry_tests::mmdb`) against an independent reader, the `maxminddb`
//! crate: on tables of addresses and on thousands of random networks compared with a naive
//! lookup.
//!
//! Envoy's geoip filter reading such a database is tested in the `e2e` binary
//! (`geo_redirect::geoip`), the `ferry-mmdb` binary in `tools` there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ferry_tests::body::Rng;
use ferry_tests::mmdb::{self, Cidr, CountryDb};
use maxminddb::{geoip2, Reader};

/// A database from `text`, built at a fixed time so that equal inputs give equal bytes.
fn db(text: &str) -> CountryDb {
    let mut db = CountryDb::from_text(text).unwrap_or_else(|err| panic!("{err}"));
    db.set_build_epoch(1_700_000_000);
    db
}

/// A reader of `db`'s bytes, after the crate's full verification of the file.
fn reader(db: &CountryDb) -> Reader<Vec<u8>> {
    let reader = Reader::from_source(db.to_bytes()).expect("the file opens");
    reader.verify().expect("the file verifies");
    reader
}

/// The country ISO code the reader gives `ip`.
fn country(reader: &Reader<Vec<u8>>, ip: IpAddr) -> Option<String> {
    let found = reader.lookup(ip).expect("lookup");
    let record: Option<geoip2::Country> = found.decode().expect("the record decodes");
    record.and_then(|record| record.country.iso_code.map(str::to_owned))
}

/// Assert the country of every `(address, country)` case.
fn assert_countries(reader: &Reader<Vec<u8>>, cases: &[(&str, Option<&str>)]) {
    for (ip, expected) in cases {
        let ip: IpAddr = ip.parse().expect("a test address");
        assert_eq!(country(reader, ip).as_deref(), *expected, "{ip}");
    }
}

#[test]
fn addresses_inside_outside_and_at_the_edges_of_networks() {
    let reader = reader(&db("1.0.1.0/24 CN\n\
                             36.96.0.0/11 cn  # lowercase is accepted\n\
                             8.8.8.8 US\n\
                             240e::/20 CN\n\
                             2001:db8::/32 US\n"));
    assert_countries(
        &reader,
        &[
            ("1.0.0.255", None),
            ("1.0.1.0", Some("CN")),
            ("1.0.1.7", Some("CN")),
            ("1.0.1.255", Some("CN")),
            ("1.0.2.0", None),
            ("36.95.255.255", None),
            ("36.96.0.0", Some("CN")),
            ("36.127.255.255", Some("CN")),
            ("36.128.0.0", None),
            ("8.8.8.7", None),
            ("8.8.8.8", Some("US")),
            ("8.8.8.9", None),
            ("0.0.0.0", None),
            ("255.255.255.255", None),
            ("240d:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("240e::", Some("CN")),
            ("240e:fff:ffff:ffff:ffff:ffff:ffff:ffff", Some("CN")),
            ("240e:1000::", None),
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("2001:db8::1", Some("US")),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", Some("US")),
            ("2001:db9::", None),
            ("::", None),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ],
    );
}

#[test]
fn the_most_specific_network_wins_in_any_insert_order() {
    let nested = [
        "10.0.0.0/8 US",
        "10.1.0.0/16 CN",
        "10.1.2.0/24 US",
        "10.1.2.128/25 JP",
        "10.1.2.200/32 CN",
        "2400::/12 SG",
        "2400:cb00::/32 US",
    ];
    let forward = db(&nested.join("\n"));
    let backward = db(&nested.iter().rev().copied().collect::<Vec<_>>().join("\n"));
    assert!(
        forward.to_bytes() == backward.to_bytes(),
        "the insert order changed the file"
    );
    assert_countries(
        &reader(&backward),
        &[
            ("9.255.255.255", None),
            ("10.0.0.1", Some("US")),
            ("10.1.0.0", Some("CN")),
            ("10.1.1.255", Some("CN")),
            ("10.1.2.0", Some("US")),
            ("10.1.2.127", Some("US")),
            ("10.1.2.128", Some("JP")),
            ("10.1.2.199", Some("JP")),
            ("10.1.2.200", Some("CN")),
            ("10.1.2.201", Some("JP")),
            ("10.1.3.0", Some("CN")),
            ("10.2.0.0", Some("US")),
            ("11.0.0.0", None),
            ("2400::1", Some("SG")),
            ("2400:cb00::1", Some("US")),
            ("2400:cb01::", Some("SG")),
        ],
    );
}

#[test]
fn inserting_a_network_again_replaces_its_country() {
    let reader = reader(&db("1.0.1.0/24 CN\n1.0.1.0/24 US\n"));
    assert_countries(&reader, &[("1.0.1.1", Some("US"))]);
}

#[test]
fn ipv4_mapped_addresses_find_the_ipv4_network() {
    let reader = reader(&db("1.0.1.0/24 CN\n\
                             8.8.8.0/24 US\n\
                             ::ffff:5.5.5.0/120 DE  # stored as 5.5.5.0/24\n"));
    assert_countries(
        &reader,
        &[
            ("::ffff:1.0.1.7", Some("CN")),
            ("::ffff:8.8.8.8", Some("US")),
            ("::ffff:1.0.2.0", None),
            ("5.5.5.5", Some("DE")),
            ("::ffff:5.5.5.5", Some("DE")),
            // The IPv4 subtree's own place, ::/96 ("IPv4-compatible" addresses).
            ("::1.0.1.7", Some("CN")),
        ],
    );
}

#[test]
fn an_ipv6_network_around_the_ipv4_space_covers_unlisted_ipv4_addresses() {
    let reader = reader(&db("::/0 AQ\n1.0.1.0/24 CN\n"));
    assert_countries(
        &reader,
        &[
            ("1.0.1.1", Some("CN")),
            ("::ffff:1.0.1.1", Some("CN")),
            ("9.9.9.9", Some("AQ")),
            ("::ffff:9.9.9.9", Some("AQ")),
            ("2001:db8::1", Some("AQ")),
        ],
    );
}

#[test]
fn metadata_and_records_are_those_of_a_country_database() {
    let mut db = db("1.0.1.0/24 CN\n2001:db8::/32 AQ\n");
    db.set_description("a test database").expect("short enough");
    let reader = reader(&db);
    let meta = reader.metadata();
    assert_eq!(meta.binary_format_major_version, 2);
    assert_eq!(meta.binary_format_minor_version, 0);
    assert_eq!(meta.ip_version, 6);
    assert_eq!(meta.record_size, 24);
    assert_eq!(meta.database_type, mmdb::DEFAULT_DATABASE_TYPE);
    assert_eq!(meta.build_epoch, 1_700_000_000);
    assert_eq!(meta.languages, ["en"]);
    assert_eq!(
        meta.description.get("en").map(String::as_str),
        Some("a test database")
    );
    let bytes = db.to_bytes();
    let tree_bytes = meta.node_count as usize * 6;
    assert_eq!(bytes[tree_bytes..tree_bytes + 16], [0; 16], "the separator");

    let found = reader
        .lookup("1.0.1.1".parse().expect("ip"))
        .expect("lookup");
    let record: geoip2::Country = found.decode().expect("decodes").expect("has data");
    assert_eq!(record.country.iso_code, Some("CN"));
    assert_eq!(record.country.names.english, Some("China"));
    assert_eq!(record.registered_country.iso_code, Some("CN"));
    assert_eq!(found.network().expect("network").to_string(), "1.0.1.0/24");

    // A code without a known English name gets no `names`, and two networks of one country
    // share one record.
    let antarctica = |ip: &str| {
        let found = reader.lookup(ip.parse().expect("ip")).expect("lookup");
        let record: geoip2::Country = found.decode().expect("decodes").expect("has data");
        assert_eq!(record.country.iso_code, Some("AQ"));
        assert!(record.country.names.is_empty());
        found.offset()
    };
    assert_eq!(antarctica("2001:db8::1"), antarctica("2001:db8:ffff::1"));
}

#[test]
fn an_empty_database_is_valid_and_knows_no_address() {
    let reader = reader(&db("# nothing yet\n\n"));
    assert_countries(
        &reader,
        &[("1.0.1.1", None), ("::ffff:1.0.1.1", None), ("::1", None)],
    );
}

#[test]
fn the_shipped_sample_builds() {
    let mut db = CountryDb::from_file(&mmdb::sample_path()).unwrap_or_else(|err| panic!("{err}"));
    db.set_build_epoch(0);
    assert_countries(
        &reader(&db),
        &[
            ("127.0.0.2", Some("CN")),
            ("127.0.0.3", Some("US")),
            ("127.0.0.1", None),
            ("1.0.1.7", Some("CN")),
            ("8.8.8.8", Some("US")),
            ("192.0.2.1", Some("CN")),
            ("198.51.100.1", Some("US")),
            ("203.0.113.7", None),
            ("2001:db8:86::1", Some("CN")),
            ("2001:db8:1::1", Some("US")),
            ("2001:db8:2::1", None),
        ],
    );
}

#[test]
fn bad_input_is_refused_with_the_line_and_the_reason() {
    let cases = [
        ("1.0.1.0/24 CHN", "line 1: \"CHN\" is not a country code"),
        ("1.0.1.0/24 C1", "\"C1\" is not a country code"),
        ("1.0.1.0/24", "line 1: expected NETWORK COUNTRY"),
        ("1.0.1.0/24 CN US", "expected NETWORK COUNTRY"),
        (
            "# ok\n\n1.0.1.0/33 CN",
            "line 3: \"1.0.1.0/33\" is not a network: prefix length 33 is over 32",
        ),
        ("1.0.1.0/x CN", "prefix length \"x\" is not a number"),
        (
            "1.0.1.7/24 CN",
            "host bits are set (the network is 1.0.1.0/24)",
        ),
        ("example.com/24 CN", "not an IP address"),
    ];
    for (text, expected) in cases {
        let err = CountryDb::from_text(text).expect_err(text).to_string();
        assert!(err.contains(expected), "{text:?}: {err}");
    }
    // The workspace's one rule for networks (`ferry_net::cases`), through a database line:
    // refused with the same reason as everywhere else.
    for (network, reason) in ferry_net::cases::REFUSED {
        if network.is_empty() || network.contains(char::is_whitespace) {
            continue; // not one field of a line
        }
        let err = CountryDb::from_text(&format!("{network} CN"))
            .expect_err(network)
            .to_string();
        assert!(
            err.ends_with(&format!("{network:?} is not a network: {reason}")),
            "{network:?}: {err}"
        );
    }
    let mut db = CountryDb::new();
    assert!(db.set_min_record_size(26).is_err());
    assert!(db.set_database_type(&"x".repeat(5000)).is_err());
    let err = CountryDb::from_file(Path::new("/nonexistent/geo.txt")).expect_err("missing");
    assert!(
        err.to_string()
            .starts_with("cannot read /nonexistent/geo.txt"),
        "{err}"
    );
}

#[test]
fn write_puts_the_whole_file_in_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("country.mmdb");
    let db = db("1.0.1.0/24 CN\n");
    db.write(&path).expect("written");
    db.write(&path).expect("replaced");
    assert!(std::fs::read(&path).expect("read") == db.to_bytes());
    let names: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
    assert_eq!(names.len(), 1, "no temp file is left behind: {names:?}");
}

const COUNTRIES: [&str; 6] = ["CN", "US", "HK", "JP", "DE", "AQ"];

/// A random network: IPv4 /8 to /32, or IPv6 /16 to /128 inside 2000::/3 (clear of the IPv4
/// space at `::/96`).
fn random_network(rng: &mut Rng) -> Cidr {
    if rng.below(2) == 0 {
        let ip = IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32));
        network_at(ip, 8 + rng.below(25) as u8)
    } else {
        let ip = IpAddr::V6(Ipv6Addr::from((rng.u128() >> 3) | (1 << 125)));
        network_at(ip, 16 + rng.below(113) as u8)
    }
}

/// A random network inside `outer` (perhaps `outer` itself).
fn random_inner(outer: &Cidr, rng: &mut Rng) -> Cidr {
    let max = if outer.network().is_ipv4() { 32 } else { 128 };
    let prefix = outer.prefix() + rng.below(u64::from(max - outer.prefix()) + 1) as u8;
    let inside = match outer.network() {
        IpAddr::V4(v4) => {
            let host = u32::MAX.checked_shr(u32::from(outer.prefix())).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(
                u32::from(v4) | (rng.next_u64() as u32 & host),
            ))
        }
        IpAddr::V6(v6) => {
            let host = u128::MAX
                .checked_shr(u32::from(outer.prefix()))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) | (rng.u128() & host)))
        }
    };
    network_at(inside, prefix)
}

/// The network of length `prefix` that contains `ip`.
fn network_at(ip: IpAddr, prefix: u8) -> Cidr {
    let masked = match ip {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & keep))
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & keep))
        }
    };
    Cidr::new(masked, prefix).expect("masked")
}

/// The address `delta` after `ip` (wrapping).
fn step(ip: IpAddr, delta: i8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(
            u32::from(v4).wrapping_add_signed(i32::from(delta)),
        )),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(
            u128::from(v6).wrapping_add_signed(i128::from(delta)),
        )),
    }
}

/// The answer by definition: the longest network that contains `ip`, the last inserted of
/// equals.
fn naive(networks: &[(Cidr, &str)], ip: IpAddr) -> Option<String> {
    let mut best: Option<&(Cidr, &str)> = None;
    for entry in networks.iter().filter(|(network, _)| network.contains(ip)) {
        if best.is_none_or(|(found, _)| entry.0.prefix() >= found.prefix()) {
            best = Some(entry);
        }
    }
    best.map(|(_, country)| (*country).to_owned())
}

/// Build `networks` with each record size and compare every probe with [`naive`]: each
/// network's edges and their neighbours, an address inside, the IPv4-mapped form of IPv4
/// probes, and random addresses.
fn compare_with_naive(networks: &[(Cidr, &str)], rng: &mut Rng) {
    let mut probes = Vec::new();
    for (network, _) in networks {
        let (first, last) = (network.network(), network.last());
        probes.extend([first, last, step(first, -1), step(last, 1)]);
        if let IpAddr::V4(v4) = first {
            probes.push(IpAddr::V6(v4.to_ipv6_mapped()));
        }
    }
    for _ in 0..1000 {
        probes.push(IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32)));
        probes.push(IpAddr::V6(Ipv6Addr::from((rng.u128() >> 3) | (1 << 125))));
    }
    for record_size in [24, 28, 32] {
        let mut db = CountryDb::new();
        db.set_min_record_size(record_size).expect("a valid size");
        for (network, country) in networks {
            db.insert(*network, country).expect("a valid country");
        }
        let reader = reader(&db);
        assert_eq!(reader.metadata().record_size, record_size);
        for &ip in &probes {
            let expected = match ip {
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => naive(networks, IpAddr::V4(v4)),
                    None => naive(networks, ip),
                },
                IpAddr::V4(_) => naive(networks, ip),
            };
            assert_eq!(
                country(&reader, ip),
                expected,
                "{ip}, {record_size}-bit records"
            );
        }
    }
}

#[test]
fn thousands_of_random_disjoint_networks_match_a_naive_lookup() {
    let mut rng = Rng(0x5eed_0001);
    let mut networks: Vec<(Cidr, &str)> = Vec::new();
    while networks.len() < 3000 {
        let candidate = random_network(&mut rng);
        let overlaps = networks.iter().any(|(network, _)| {
            network.contains(candidate.network()) || candidate.contains(network.network())
        });
        if !overlaps {
            let country = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
            networks.push((candidate, country));
        }
    }
    compare_with_naive(&networks, &mut rng);
}

#[test]
fn thousands_of_random_nested_networks_match_the_longest_prefix() {
    let mut rng = Rng(0x5eed_0002);
    let mut networks: Vec<(Cidr, &str)> = Vec::new();
    while networks.len() < 2000 {
        // Half of them inside an earlier one (or equal to it), so that nesting and re-inserts
        // are common.
        let network = match networks.len() {
            n if n > 0 && rng.below(2) == 0 => {
                let (outer, _) = networks[rng.below(n as u64) as usize];
                random_inner(&outer, &mut rng)
            }
            _ => random_network(&mut rng),
        };
        let country = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
        networks.push((network, country));
    }
    compare_with_naive(&networks, &mut rng);
}
