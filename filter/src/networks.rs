//! IP networks (CIDR blocks) and a set of them that answers "is this address inside?" fast.
//!
//! The geo redirect can take a visitor's country from the downstream address instead of a
//! header (Istio's proxy has no geoip filter). A whole country's list, such as mainland China's
//! from the APNIC delegation data (about 8,700 IPv4 and 3,800 IPv6 blocks), is parsed once per
//! configuration into two sorted vectors of disjoint, merged `[first, last]` ranges; a lookup is
//! one binary search. IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are looked up as IPv4.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a network was refused. The message is written to follow the offending value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("expected an IPv4 or IPv6 network such as 1.0.1.0/24 or 240e::/20")]
    Syntax,
    #[error("the prefix length is larger than {0}")]
    PrefixTooLong(u8),
    #[error("address bits are set beyond the prefix length; the network is {0}")]
    HostBits(NetworkDisplay),
}

/// A network in CIDR notation (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// How a network is printed in an error message (`Copy`, so errors stay small and comparable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkDisplay(Cidr);

impl std::fmt::Display for NetworkDisplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.0.addr, self.0.prefix)
    }
}

impl Cidr {
    /// Parses `1.0.1.0/24`, `240e::/20` or a bare address. Bits set after the prefix are an
    /// error (`1.0.1.1/24`): such a line is usually a typo, and the error names the network.
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::Syntax)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| CidrError::Syntax)?
            }
            Some(_) => return Err(CidrError::Syntax),
        };
        if prefix > max {
            return Err(CidrError::PrefixTooLong(max));
        }
        let cidr = Cidr { addr, prefix };
        let (first, _) = cidr.range();
        let network = match addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(first as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(first)),
        };
        if network != addr {
            return Err(CidrError::HostBits(NetworkDisplay(Cidr {
                addr: network,
                prefix,
            })));
        }
        Ok(cidr)
    }

    /// The first and last address, as integers (IPv4 in the low 32 bits).
    fn range(&self) -> (u128, u128) {
        match self.addr {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                (u128::from(a & mask), u128::from(a | !mask))
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                (a & mask, a | !mask)
            }
        }
    }
}

/// A set of networks. Build it with [`NetworkSet::from_cidrs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl NetworkSet {
    /// The set covering every given network; overlapping and adjacent ones are merged.
    pub fn from_cidrs(cidrs: impl IntoIterator<Item = Cidr>) -> NetworkSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for cidr in cidrs {
            let (first, last) = cidr.range();
            match cidr.addr {
                IpAddr::V4(_) => v4.push((first as u32, last as u32)),
                IpAddr::V6(_) => v6.push((first, last)),
            }
        }
        NetworkSet {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    /// Whether `addr` is inside one of the networks.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => find(&self.v4, u32::from(v4)),
                None => find(&self.v6, u128::from(a)),
            },
        }
    }

    /// How many disjoint ranges the set holds (IPv4, IPv6), after merging.
    pub fn ranges(&self) -> (usize, usize) {
        (self.v4.len(), self.v6.len())
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

fn merge<T: Ord + Copy + One>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match out.last_mut() {
            // Overlapping or adjacent (`first` right after `prev.1`).
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

/// `x + 1` without overflow, for the two integer widths used here.
trait One: Sized {
    fn checked_next(self) -> Option<Self>;
}

impl One for u32 {
    fn checked_next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl One for u128 {
    fn checked_next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(list: &[&str]) -> NetworkSet {
        NetworkSet::from_cidrs(list.iter().map(|s| Cidr::parse(s).unwrap()))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_table() {
        let ok: &[(&str, &str, u8)] = &[
            ("1.0.1.0/24", "1.0.1.0", 24),
            ("0.0.0.0/0", "0.0.0.0", 0),
            ("203.0.113.7", "203.0.113.7", 32),
            ("240e::/20", "240e::", 20),
            ("::/0", "::", 0),
            ("2001:db8::1", "2001:db8::1", 128),
        ];
        for (s, addr, prefix) in ok {
            let c = Cidr::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!((c.addr, c.prefix), (ip(addr), *prefix), "{s}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "expected"),
            ("1.0.1/24", "expected"),
            ("1.0.1.0/", "expected"),
            ("1.0.1.0/+4", "expected"),
            ("1.0.1.0/24/1", "expected"),
            ("1.0.1.0 /24", "expected"),
            ("1.0.1.0/33", "larger than 32"),
            ("240e::/129", "larger than 128"),
            ("1.0.1.1/24", "the network is 1.0.1.0/24"),
            ("240e::1/20", "the network is 240e::/20"),
            ("example.com/8", "expected"),
        ];
        for (s, needle) in bad {
            let e = Cidr::parse(s).expect_err(s).to_string();
            assert!(e.contains(needle), "{s}: {e:?} lacks {needle:?}");
        }
    }

    #[test]
    fn membership_at_the_edges() {
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
        // Adjacent blocks merge into one range.
        assert_eq!(s.ranges(), (2, 1));
    }

    #[test]
    fn whole_spaces_and_overlaps() {
        let s = set(&["0.0.0.0/0", "10.0.0.0/8", "::/0"]);
        assert!(s.contains(ip("255.255.255.255")) && s.contains(ip("ffff::1")));
        assert_eq!(s.ranges(), (1, 1));
        assert!(NetworkSet::default().is_empty());
        assert!(!NetworkSet::default().contains(ip("1.2.3.4")));
    }

    /// Random networks against a linear scan of the same networks.
    #[test]
    fn matches_a_linear_scan() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut cidrs = Vec::new();
        for _ in 0..3000 {
            let prefix = 8 + (next() % 25) as u8;
            let a = (next() as u32) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            cidrs.push(Cidr {
                addr: IpAddr::V4(Ipv4Addr::from(a)),
                prefix,
            });
        }
        let s = NetworkSet::from_cidrs(cidrs.iter().copied());
        for _ in 0..20_000 {
            let a = next() as u32;
            let linear = cidrs.iter().any(|c| {
                let (first, last) = c.range();
                (first..=last).contains(&u128::from(a))
            });
            assert_eq!(s.contains(IpAddr::V4(Ipv4Addr::from(a))), linear, "{a:#x}");
        }
    }
}
