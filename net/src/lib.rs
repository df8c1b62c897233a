//! IP networks for every part of Ferry that reads them: the filter's geo redirect
//! (`redirect.networks`, a whole country's list), the relay's allow and deny lists and trusted
//! PROXY senders, and the test tools that write country databases. One parser, one rule, one
//! set, so a network means the same thing wherever an operator writes it.
//!
//! - [`Cidr`] is strict: `1.0.1.1/24` (host bits set) is an error naming the network
//!   (`1.0.1.0/24`), not silently widened, because it is almost always a typo for a longer
//!   prefix, and on an access list a typo is a hole. A bare address is a network of one (`/32`,
//!   `/128`). The prefix is one to three ASCII digits (`/016` is 16). The arithmetic is
//!   [`ipnet`]'s.
//! - **IPv4-mapped IPv6** (`::ffff:a.b.c.d`, what a dual-stack `[::]` socket reports for an IPv4
//!   client) is IPv4 everywhere: a mapped address matches IPv4 networks, and a mapped network
//!   (`::ffff:10.0.0.0/104`) *is* the IPv4 network (`10.0.0.0/8`). Otherwise the families never
//!   meet: `::/0` is every IPv6 address and no IPv4 one, `0.0.0.0/0` every IPv4 address, and an
//!   IPv4-compatible address (`::10.1.2.3`, deprecated) is IPv6. [`cases::CONTAINS`] is the
//!   table that pins this down; each user runs it through its own entry point.
//! - [`NetworkSet`] holds any number of networks as sorted, merged ranges: a lookup is one
//!   binary search (China's ~12,500 blocks merge to a few thousand ranges).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// One network: an address with no bit set after the prefix, and the prefix length. IPv4-mapped
/// networks are stored as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(IpNet);

/// Why a network was refused. The message follows the offending value (`10.0.0.0/33: prefix
/// length 33 is over 32`): every user shows the value itself, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("not an IP address (expected a network such as 1.0.1.0/24 or 240e::/20)")]
    BadAddress,
    #[error("prefix length {0:?} is not a number")]
    BadPrefix(String),
    #[error("prefix length {prefix} is over {max}")]
    PrefixTooLong { prefix: u32, max: u8 },
    #[error("host bits are set (the network is {network})")]
    HostBits { network: Cidr },
}

impl Cidr {
    /// The network `addr/prefix`; `addr` must have no bit set after the prefix. A mapped
    /// `::ffff:a.b.c.d/p` (`p` >= 96) is the IPv4 network `a.b.c.d/(p - 96)`.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, CidrError> {
        let max = max_prefix(addr);
        if prefix > max {
            return Err(CidrError::PrefixTooLong {
                prefix: u32::from(prefix),
                max,
            });
        }
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
                _ => (addr, prefix),
            },
            IpAddr::V4(_) => (addr, prefix),
        };
        // The prefix fits the family (checked above, and mapping keeps it in range).
        let net = IpNet::new(addr, prefix).map_err(|_| CidrError::PrefixTooLong {
            prefix: u32::from(prefix),
            max: max_prefix(addr),
        })?;
        let network = net.trunc();
        if network.addr() != addr {
            return Err(CidrError::HostBits {
                network: Cidr(network),
            });
        }
        Ok(Cidr(net))
    }

    /// The first address (host bits clear).
    pub fn network(&self) -> IpAddr {
        self.0.network()
    }

    /// The last address.
    pub fn last(&self) -> IpAddr {
        self.0.broadcast()
    }

    /// The prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub fn prefix(&self) -> u8 {
        self.0.prefix_len()
    }

    /// Whether `ip` is in the network (IPv4-mapped addresses are IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }

    /// The first and last address as integers (IPv4 in the low 32 bits).
    fn range(&self) -> (u128, u128) {
        (bits(self.network()), bits(self.last()))
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `1.0.1.0/24`, `240e::/20`, or a bare address.
    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::BadAddress)?;
        let prefix = match prefix {
            None => max_prefix(addr),
            Some(digits) => {
                if digits.is_empty()
                    || digits.len() > 3
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(CidrError::BadPrefix(digits.to_owned()));
                }
                // At most three ASCII digits: below 1000.
                let value: u32 = digits
                    .parse()
                    .map_err(|_| CidrError::BadPrefix(digits.to_owned()))?;
                let max = max_prefix(addr);
                if value > u32::from(max) {
                    return Err(CidrError::PrefixTooLong { prefix: value, max });
                }
                // At most 128 after the check.
                value as u8
            }
        };
        Cidr::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix())
    }
}

/// A set of networks: is this address in any of them? Overlapping and adjacent networks are
/// merged into disjoint ranges, kept sorted, per family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl NetworkSet {
    /// Whether `addr` is in one of the networks (IPv4-mapped addresses are IPv4).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr.to_canonical() {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => find(&self.v6, u128::from(a)),
        }
    }

    /// How many disjoint ranges the set holds (IPv4, IPv6), after merging.
    pub fn ranges(&self) -> (usize, usize) {
        (self.v4.len(), self.v6.len())
    }

    /// Whether the set holds no address.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

impl FromIterator<Cidr> for NetworkSet {
    fn from_iter<I: IntoIterator<Item = Cidr>>(cidrs: I) -> NetworkSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for cidr in cidrs {
            let (first, last) = cidr.range();
            match cidr.network() {
                // IPv4 ranges hold 32-bit values (see `range`).
                IpAddr::V4(_) => v4.push((first as u32, last as u32)),
                IpAddr::V6(_) => v6.push((first, last)),
            }
        }
        NetworkSet {
            v4: merge(v4),
            v6: merge(v6),
        }
    }
}

fn merge<T: Ord + Copy + Next>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match out.last_mut() {
            // Overlapping, or adjacent (`first` right after `prev.1`).
            Some(prev) if first <= prev.1 || prev.1.checked_next() == Some(first) => {
                if last > prev.1 {
                    prev.1 = last;
                }
            }
            _ => out.push((first, last)),
        }
    }
    out.shrink_to_fit();
    out
}

fn find<T: Ord + Copy>(ranges: &[(T, T)], addr: T) -> bool {
    // The last range that starts at or before `addr`.
    let i = ranges.partition_point(|&(first, _)| first <= addr);
    i > 0 && addr <= ranges[i - 1].1
}

/// `x + 1` without overflow, for the two integer widths of the set.
trait Next: Sized {
    fn checked_next(self) -> Option<Self>;
}

impl Next for u32 {
    fn checked_next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Next for u128 {
    fn checked_next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

/// The tables that pin the rules down, for each user of this crate to run through its own entry
/// point (a filter config, a relay flag, a database line), so no user can read a network
/// differently.
#[doc(hidden)]
pub mod cases {
    /// `(network, address, whether the network contains the address)`.
    pub const CONTAINS: &[(&str, &str, bool)] = &[
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
        ("::ffff:10.0.0.0/104", "11.0.0.1", false),
        ("::ffff:0.0.0.0/96", "198.51.100.1", true),
        ("::ffff:0.0.0.0/96", "2001:db8::1", false),
        ("192.168.1.128/25", "192.168.1.127", false),
        ("192.168.1.128/25", "192.168.1.128", true),
        ("192.168.1.128/25", "192.168.1.255", true),
        // An IPv4-compatible (not mapped) address is IPv6.
        ("10.0.0.0/8", "::10.1.2.3", false),
        ("::/96", "10.1.2.3", false),
        ("::/96", "::10.1.2.3", true),
    ];

    const NOT_AN_ADDRESS: &str =
        "not an IP address (expected a network such as 1.0.1.0/24 or 240e::/20)";

    /// `(text, the error's message)`: networks every user refuses, with the same reason.
    pub const REFUSED: &[(&str, &str)] = &[
        ("10.0.0.0/33", "prefix length 33 is over 32"),
        ("2001:db8::/129", "prefix length 129 is over 128"),
        ("::ffff:10.0.0.0/130", "prefix length 130 is over 128"),
        ("10.0.0.0/999", "prefix length 999 is over 32"),
        ("10.0.0.0/1000", "prefix length \"1000\" is not a number"),
        ("10.0.0.0/", "prefix length \"\" is not a number"),
        ("10.0.0.0/+8", "prefix length \"+8\" is not a number"),
        ("10.0.0.0/8/8", "prefix length \"8/8\" is not a number"),
        ("10.0.0.0/ 8", "prefix length \" 8\" is not a number"),
        ("10.0.0/8", NOT_AN_ADDRESS),
        ("", NOT_AN_ADDRESS),
        ("example.com/8", NOT_AN_ADDRESS),
        ("fe80::1%eth0/64", NOT_AN_ADDRESS),
        (" 10.0.0.0/8", NOT_AN_ADDRESS),
        (
            "10.1.0.0/8",
            "host bits are set (the network is 10.0.0.0/8)",
        ),
        (
            "1.0.1.1/24",
            "host bits are set (the network is 1.0.1.0/24)",
        ),
        (
            "2001:db8::1/64",
            "host bits are set (the network is 2001:db8::/64)",
        ),
        (
            "::ffff:10.1.0.0/104",
            "host bits are set (the network is 10.0.0.0/8)",
        ),
        ("::ffff:0:0/80", "host bits are set (the network is ::/80)"),
    ];
}

#[cfg(test)]
mod tests;
