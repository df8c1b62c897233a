use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferry_testkit::Rng;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn set(list: &[&str]) -> NetworkSet {
    list.iter().map(|s| s.parse::<Cidr>().unwrap()).collect()
}

#[test]
fn parses_and_prints_normalised_networks() {
    let cases = [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.1.2.3", "10.1.2.3/32"),
        ("10.1.2.3/32", "10.1.2.3/32"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("192.168.0.0/016", "192.168.0.0/16"),
        ("1.0.1.0/24", "1.0.1.0/24"),
        ("240e::/20", "240e::/20"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("2001:db8::1", "2001:db8::1/128"),
        ("::/0", "::/0"),
        // IPv4-mapped networks are IPv4 networks.
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:10.1.2.3", "10.1.2.3/32"),
        ("::ffff:0.0.0.0/96", "0.0.0.0/0"),
        // IPv4-compatible ones are not.
        ("::10.0.0.0/104", "::a00:0/104"),
    ];
    for (input, want) in cases {
        let cidr: Cidr = input
            .parse()
            .unwrap_or_else(|e| panic!("{input}: unexpected error {e}"));
        assert_eq!(cidr.to_string(), want, "{input}");
        assert_eq!(
            cidr.to_string().parse::<Cidr>(),
            Ok(cidr),
            "{input} printed and read"
        );
    }
}

#[test]
fn refuses_bad_networks_with_a_reason() {
    for (input, want) in cases::REFUSED {
        match input.parse::<Cidr>() {
            Ok(c) => panic!("{input:?}: parsed as {c}"),
            Err(e) => assert_eq!(e.to_string(), *want, "{input:?}"),
        }
    }
}

#[test]
fn new_checks_what_parse_checks() {
    assert_eq!(
        Cidr::new(ip("10.0.0.0"), 33),
        Err(CidrError::PrefixTooLong {
            prefix: 33,
            max: 32
        })
    );
    assert_eq!(
        Cidr::new(ip("::ffff:10.0.0.0"), 104).map(|c| c.to_string()),
        Ok("10.0.0.0/8".to_owned())
    );
    assert!(matches!(
        Cidr::new(ip("10.0.0.1"), 8),
        Err(CidrError::HostBits { .. })
    ));
}

#[test]
fn the_mapping_rule_for_a_network_and_for_a_set() {
    for (network, addr, want) in cases::CONTAINS {
        let cidr: Cidr = network.parse().unwrap();
        assert_eq!(cidr.contains(ip(addr)), *want, "{network} contains {addr}");
        assert_eq!(
            set(&[network]).contains(ip(addr)),
            *want,
            "set of {network} contains {addr}"
        );
    }
}

#[test]
fn set_membership_at_the_edges() {
    let s = set(&["1.0.1.0/24", "1.0.2.0/23", "36.96.0.0/11", "240e::/20"]);
    for inside in [
        "1.0.1.0",
        "1.0.1.255",
        "1.0.2.0",
        "1.0.3.255",
        "36.96.0.0",
        "36.127.255.255",
        "240e::",
        "240e:fff:ffff:ffff:ffff:ffff:ffff:ffff",
        "::ffff:1.0.1.9",
    ] {
        assert!(s.contains(ip(inside)), "{inside} should be inside");
    }
    for outside in [
        "1.0.0.255",
        "1.0.4.0",
        "36.95.255.255",
        "36.128.0.0",
        "0.0.0.0",
        "255.255.255.255",
        "240d:ffff::",
        "240e:1000::",
        "::1",
        "::ffff:8.8.8.8",
    ] {
        assert!(!s.contains(ip(outside)), "{outside} should be outside");
    }
    // Adjacent networks merge into one range.
    assert_eq!(s.ranges(), (2, 1));
}

#[test]
fn whole_spaces_and_overlaps() {
    let s = set(&["0.0.0.0/0", "10.0.0.0/8", "::/0"]);
    assert!(s.contains(ip("255.255.255.255")) && s.contains(ip("ffff::1")));
    assert_eq!(s.ranges(), (1, 1));
    assert!(NetworkSet::default().is_empty());
    assert!(!NetworkSet::default().contains(ip("1.2.3.4")));
    assert!(!NetworkSet::default().contains(ip("::1")));
}

/// Random networks of both families against a linear scan of the same networks.
#[test]
fn the_set_matches_a_linear_scan() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut cidrs = Vec::new();
    for _ in 0..3000 {
        let cidr = if rng.below(2) == 0 {
            let prefix = 8 + rng.below(25) as u8;
            let a =
                rng.next_u64() as u32 & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            Cidr::new(IpAddr::V4(Ipv4Addr::from(a)), prefix)
        } else {
            // Under 2000::/4, so some random probes fall inside.
            let prefix = 4 + rng.below(61) as u8;
            let a = (rng.u128() >> 4 | 0x2 << 124)
                & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            Cidr::new(IpAddr::V6(Ipv6Addr::from(a)), prefix)
        };
        cidrs.push(cidr.unwrap());
    }
    let s: NetworkSet = cidrs.iter().copied().collect();
    for i in 0..10_000u32 {
        let addr = match i % 3 {
            0 => IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32)),
            1 => IpAddr::V6(Ipv6Addr::from(rng.u128() >> 4 | 0x2 << 124)),
            // A mapped address: the IPv4 networks decide.
            _ => IpAddr::V6(Ipv4Addr::from(rng.next_u64() as u32).to_ipv6_mapped()),
        };
        let linear = cidrs.iter().any(|c| c.contains(addr));
        assert_eq!(s.contains(addr), linear, "{addr}");
    }
}
