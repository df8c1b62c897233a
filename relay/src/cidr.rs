//! IPv4 and IPv6 CIDR blocks, and lists of them, for the allow/deny lists and the trusted
//! senders of PROXY headers.
//!
//! Parsing is strict: a block whose host bits are set (`10.1.0.0/8`) is an error, not silently
//! widened, because it is almost always a typo for a longer prefix (`10.1.0.0/16`), and on an
//! access list a typo is a hole. A bare address is a block of one (`/32` or `/128`).
//!
//! IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`, what a dual-stack `[::]` socket reports for an
//! IPv4 client) are IPv4 here: they match IPv4 blocks, and a mapped block such as
//! `::ffff:10.0.0.0/104` is stored as `10.0.0.0/8`. An IPv6 block never matches an IPv4 client
//! otherwise: `::/0` means every IPv6 address, `0.0.0.0/0` every IPv4 address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// One block of addresses: a network address (host bits clear) and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR block was refused; the message starts with the input, e.g.
/// `10.0.0.0/33: prefix length 33 is over 32`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input}: {kind}")]
pub struct CidrError {
    input: String,
    kind: CidrErrorKind,
}

/// The reason part of a [`CidrError`], for messages that show the input themselves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrErrorKind {
    #[error("not an IP address")]
    BadAddress,
    #[error("prefix length {0:?} is not a number")]
    BadPrefix(String),
    #[error("prefix length {prefix} is over {max}")]
    PrefixTooLong { prefix: u32, max: u8 },
    #[error("host bits are set (the block is {network})")]
    HostBits { network: String },
}

impl CidrError {
    /// The reason, without the input.
    pub fn kind(&self) -> &CidrErrorKind {
        &self.kind
    }
}

impl Cidr {
    /// The block `addr/prefix`; `addr` must have no host bits set.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, CidrErrorKind> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
                _ => (addr, prefix),
            },
            IpAddr::V4(_) => (addr, prefix),
        };
        let max = max_prefix(addr);
        if prefix > max {
            return Err(CidrErrorKind::PrefixTooLong {
                prefix: u32::from(prefix),
                max,
            });
        }
        let network = mask(addr, prefix);
        if network != addr {
            return Err(CidrErrorKind::HostBits {
                network: Cidr { network, prefix }.to_string(),
            });
        }
        Ok(Cidr { network, prefix })
    }

    /// The network address (host bits clear).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the block. IPv4-mapped IPv6 addresses are compared as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `addr` with every bit after the first `prefix` cleared; `prefix` is at most the family's
/// width (checked by the callers).
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & kept))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & kept))
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(input: &str) -> Result<Cidr, CidrError> {
        let fail = |kind| CidrError {
            input: input.to_owned(),
            kind,
        };
        let (addr, prefix) = match input.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (input, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| fail(CidrErrorKind::BadAddress))?;
        let prefix = match prefix {
            None => max_prefix(addr),
            Some(text) => {
                if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(fail(CidrErrorKind::BadPrefix(text.to_owned())));
                }
                // At most three ASCII digits: always a u32 below 1000.
                let value: u32 = text
                    .parse()
                    .map_err(|_| fail(CidrErrorKind::BadPrefix(text.to_owned())))?;
                let max = max_prefix(addr);
                if value > u32::from(max) {
                    return Err(fail(CidrErrorKind::PrefixTooLong { prefix: value, max }));
                }
                // value <= 128 after the check above.
                value as u8
            }
        };
        Cidr::new(addr, prefix).map_err(fail)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A list of blocks; an address is in the list when it is in any block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrList {
    blocks: Vec<Cidr>,
}

impl CidrList {
    pub fn new(blocks: Vec<Cidr>) -> CidrList {
        CidrList { blocks }
    }

    /// Whether `ip` is in any block (never, for an empty list).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|block| block.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Cidr> {
        self.blocks.iter()
    }
}

impl FromIterator<Cidr> for CidrList {
    fn from_iter<I: IntoIterator<Item = Cidr>>(iter: I) -> CidrList {
        CidrList::new(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_normalised_blocks() {
        let cases = [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.1.2.3", "10.1.2.3/32"),
            ("10.1.2.3/32", "10.1.2.3/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("192.168.0.0/016", "192.168.0.0/16"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("2001:db8::1", "2001:db8::1/128"),
            ("::/0", "::/0"),
            // IPv4-mapped blocks are IPv4 blocks.
            ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
            ("::ffff:10.1.2.3", "10.1.2.3/32"),
            ("::ffff:0.0.0.0/96", "0.0.0.0/0"),
        ];
        for (input, want) in cases {
            let cidr: Cidr = input
                .parse()
                .unwrap_or_else(|e| panic!("{input}: unexpected error {e}"));
            assert_eq!(cidr.to_string(), want, "{input}");
        }
    }

    #[test]
    fn refuses_bad_blocks_with_the_input_in_the_message() {
        let cases = [
            ("10.0.0.0/33", "10.0.0.0/33: prefix length 33 is over 32"),
            (
                "2001:db8::/129",
                "2001:db8::/129: prefix length 129 is over 128",
            ),
            ("10.0.0.0/999", "10.0.0.0/999: prefix length 999 is over 32"),
            (
                "10.0.0.0/1000",
                "10.0.0.0/1000: prefix length \"1000\" is not a number",
            ),
            ("10.0.0.0/", "10.0.0.0/: prefix length \"\" is not a number"),
            (
                "10.0.0.0/+8",
                "10.0.0.0/+8: prefix length \"+8\" is not a number",
            ),
            (
                "10.0.0.0/8/8",
                "10.0.0.0/8/8: prefix length \"8/8\" is not a number",
            ),
            (
                "10.0.0.0/ 8",
                "10.0.0.0/ 8: prefix length \" 8\" is not a number",
            ),
            ("10.0.0/8", "10.0.0/8: not an IP address"),
            ("", ": not an IP address"),
            ("example.com/8", "example.com/8: not an IP address"),
            ("fe80::1%eth0/64", "fe80::1%eth0/64: not an IP address"),
            (" 10.0.0.0/8", " 10.0.0.0/8: not an IP address"),
            (
                "10.1.0.0/8",
                "10.1.0.0/8: host bits are set (the block is 10.0.0.0/8)",
            ),
            (
                "2001:db8::1/64",
                "2001:db8::1/64: host bits are set (the block is 2001:db8::/64)",
            ),
            (
                "::ffff:10.1.0.0/104",
                "::ffff:10.1.0.0/104: host bits are set (the block is 10.0.0.0/8)",
            ),
        ];
        for (input, want) in cases {
            match input.parse::<Cidr>() {
                Ok(c) => panic!("{input}: parsed as {c}"),
                Err(e) => assert_eq!(e.to_string(), want),
            }
        }
    }

    #[test]
    fn contains_matches_by_prefix_and_maps_ipv4_in_ipv6() {
        let cases = [
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.0", false),
            ("10.0.0.0/8", "::ffff:10.1.2.3", true),
            ("10.0.0.0/8", "::ffff:11.1.2.3", false),
            ("10.1.2.3", "10.1.2.3", true),
            ("10.1.2.3", "10.1.2.4", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "::ffff:203.0.113.9", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("::/0", "2001:db8::1", true),
            ("::/0", "10.1.2.3", false),
            ("::/0", "::ffff:10.1.2.3", false),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::ffff:10.0.0.0/104", "10.9.9.9", true),
            ("::ffff:10.0.0.0/104", "::ffff:10.9.9.9", true),
            ("192.168.1.128/25", "192.168.1.127", false),
            ("192.168.1.128/25", "192.168.1.128", true),
            ("192.168.1.128/25", "192.168.1.255", true),
            // An IPv4-compatible (not mapped) address is IPv6.
            ("10.0.0.0/8", "::10.1.2.3", false),
        ];
        for (block, addr, want) in cases {
            let cidr: Cidr = block.parse().unwrap();
            assert_eq!(cidr.contains(ip(addr)), want, "{block} contains {addr}");
        }
    }

    #[test]
    fn a_list_contains_what_any_block_contains() {
        let list: CidrList = ["10.0.0.0/8", "2001:db8::/32"]
            .iter()
            .map(|s| s.parse::<Cidr>().unwrap())
            .collect();
        assert!(!list.is_empty());
        assert_eq!(list.len(), 2);
        assert!(list.contains(ip("10.1.1.1")));
        assert!(list.contains(ip("::ffff:10.1.1.1")));
        assert!(list.contains(ip("2001:db8::5")));
        assert!(!list.contains(ip("192.168.0.1")));

        let empty = CidrList::default();
        assert!(empty.is_empty());
        assert!(!empty.contains(ip("10.1.1.1")));
    }
}
