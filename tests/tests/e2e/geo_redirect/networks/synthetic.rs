//! A China-sized delegation file, made up: about 8,700 IPv4 and 3,800 IPv6 CN delegations in
//! the RIR format, with the sizes real ones have (mostly /24 to /22 and IPv6 /32, now and then
//! a /13 or a /20, IPv4 counts that are not powers of two), never overlapping, often adjacent,
//! and some JP and US delegations in the gaps. Deterministic (SplitMix64 from a fixed seed), so
//! a failure replays.
//!
//! Besides the file, [`Delegations`] keeps what the test needs to know without trusting the
//! tools under test: every block, addresses to probe, and the number of ranges the CN blocks
//! make once adjacent ones are merged.

use ferry_tests::body::Rng;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// How many CN delegations of each family, as in APNIC's data for mainland China.
pub const CN_IPV4: usize = 8_700;
pub const CN_IPV6: usize = 3_800;

/// The /8s the IPv4 blocks come from: APNIC space, clear of loopback and the documentation
/// ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) that the test uses as "unknown".
const IPV4_POOL: [u8; 44] = [
    1, 14, 27, 36, 39, 42, 43, 49, 58, 59, 60, 61, 101, 103, 106, 110, 111, 112, 113, 114, 115,
    116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 139, 140, 144, 150, 153, 157, 159, 161, 163,
    171, 175, 180, 182,
];

/// IPv4 address counts and their weights (per mille).
const IPV4_SIZES: [(u32, u64); 16] = [
    (256, 300),
    (512, 100),
    (768, 25),
    (1024, 280),
    (1536, 15),
    (2048, 80),
    (2560, 5),
    (3072, 5),
    (4096, 70),
    (8192, 45),
    (16_384, 30),
    (32_768, 15),
    (65_536, 20),
    (131_072, 6),
    (262_144, 3),
    (524_288, 1),
];

/// IPv6 prefix lengths and their weights (per mille).
const IPV6_SIZES: [(u8, u64); 15] = [
    (20, 2),
    (22, 2),
    (24, 3),
    (28, 20),
    (29, 120),
    (30, 50),
    (31, 40),
    (32, 550),
    (33, 20),
    (34, 10),
    (35, 10),
    (36, 20),
    (40, 30),
    (44, 40),
    (48, 83),
];

/// APNIC's IPv6 space, 2400::/12, where the IPv6 blocks come from.
const IPV6_START: u128 = 0x2400 << 112;
const IPV6_END: u128 = 0x2410 << 112;
/// A /32, the unit of the gaps between IPv6 blocks.
const SLASH32: u128 = 1 << 96;

/// Who a block is delegated to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    Cn,
    Jp,
    Us,
}

impl Holder {
    fn code(self) -> &'static str {
        match self {
            Holder::Cn => "CN",
            Holder::Jp => "JP",
            Holder::Us => "US",
        }
    }
}

/// An IPv4 delegation: `count` addresses from `first` (not always a power of two).
#[derive(Clone, Copy, Debug)]
pub struct V4 {
    pub holder: Holder,
    pub first: u32,
    pub count: u32,
}

impl V4 {
    pub fn last(&self) -> u32 {
        self.first + (self.count - 1)
    }
}

/// An IPv6 delegation: `first/prefix`.
#[derive(Clone, Copy, Debug)]
pub struct V6 {
    pub holder: Holder,
    pub first: u128,
    pub prefix: u8,
}

impl V6 {
    pub fn last(&self) -> u128 {
        self.first | (u128::MAX >> self.prefix)
    }
}

/// The generated delegations, and addresses that no delegation holds.
pub struct Delegations {
    pub v4: Vec<V4>,
    pub v6: Vec<V6>,
    /// IPv4 addresses in gaps between blocks, right after a CN block.
    pub v4_gaps: Vec<u32>,
    /// IPv6 addresses in gaps, right after a CN block.
    pub v6_gaps: Vec<u128>,
}

/// The picks the generator needs beyond [`Rng`].
trait Picks {
    fn pick<T: Copy>(&mut self, table: &[(T, u64)]) -> T;
    fn other_holder(&mut self) -> Holder;
}

impl Picks for Rng {
    /// A value from a `(value, weight per mille)` table.
    fn pick<T: Copy>(&mut self, table: &[(T, u64)]) -> T {
        let mut roll = self.below(1000);
        for &(value, weight) in table {
            if roll < weight {
                return value;
            }
            roll -= weight;
        }
        table[table.len() - 1].0
    }

    /// JP (most of the time) or US for a delegated gap.
    fn other_holder(&mut self) -> Holder {
        if self.below(10) < 7 {
            Holder::Jp
        } else {
            Holder::Us
        }
    }
}

impl Delegations {
    /// The delegations for `seed`.
    pub fn generate(seed: u64) -> Self {
        let mut rng = Rng(seed);
        let mut out = Self {
            v4: Vec::new(),
            v6: Vec::new(),
            v4_gaps: Vec::new(),
            v6_gaps: Vec::new(),
        };
        out.generate_v4(&mut rng);
        out.generate_v6(&mut rng);
        out
    }

    fn generate_v4(&mut self, rng: &mut Rng) {
        let mut pool = IPV4_POOL.iter();
        let mut slash8 = next_slash8(&mut pool);
        let mut cursor = u64::from(slash8) << 24;
        let mut cn = 0;
        let mut in_slash8 = 0;
        while cn < CN_IPV4 {
            let count = rng.pick(&IPV4_SIZES);
            // Powers of two are aligned to their size, like CIDR blocks; other counts (768,
            // 1536) to a /24, so that they split into different blocks.
            let align = if count.is_power_of_two() { count } else { 256 };
            let start = cursor.next_multiple_of(u64::from(align));
            // At most 250 CN delegations a /8 (spread over the pool), and never past its end.
            let end = (u64::from(slash8) + 1) << 24;
            if start + u64::from(count) > end || in_slash8 == 250 {
                slash8 = next_slash8(&mut pool);
                cursor = u64::from(slash8) << 24;
                in_slash8 = 0;
                continue;
            }
            in_slash8 += 1;
            // Inside one /8 of the pool, so below 2^32.
            let first = start as u32;
            self.v4.push(V4 {
                holder: Holder::Cn,
                first,
                count,
            });
            cn += 1;
            cursor = start + u64::from(count);
            // A third are adjacent to the next block; the rest leave a gap of up to 16 /24s,
            // one in ten of them delegated to another country.
            if rng.below(3) == 0 {
                continue;
            }
            let gap = 256 * (1 + rng.below(16));
            if cursor + gap > end {
                continue;
            }
            if rng.below(10) == 0 {
                self.v4.push(V4 {
                    holder: rng.other_holder(),
                    first: cursor as u32,
                    count: gap as u32,
                });
            } else {
                self.v4_gaps.push(cursor as u32);
            }
            cursor += gap;
        }
    }

    fn generate_v6(&mut self, rng: &mut Rng) {
        let mut cursor = IPV6_START;
        let mut cn = 0;
        while cn < CN_IPV6 {
            let prefix = rng.pick(&IPV6_SIZES);
            let size = 1u128 << (128 - prefix);
            let first = cursor.next_multiple_of(size);
            assert!(
                first + size <= IPV6_END,
                "the generator ran out of IPv6 space"
            );
            self.v6.push(V6 {
                holder: Holder::Cn,
                first,
                prefix,
            });
            cn += 1;
            cursor = first + size;
            if rng.below(3) == 0 {
                continue;
            }
            // A gap of up to 8 /32s, at a /32 boundary.
            let gap_start = cursor.next_multiple_of(SLASH32);
            let gap = SLASH32 * u128::from(1 + rng.below(8));
            if rng.below(10) == 0 {
                self.v6.push(V6 {
                    holder: rng.other_holder(),
                    first: gap_start,
                    prefix: 32,
                });
                cursor = gap_start + SLASH32;
            } else {
                self.v6_gaps.push(cursor);
                cursor = gap_start + gap;
            }
        }
    }

    /// The blocks of `holder`.
    pub fn v4_of(&self, holder: Holder) -> impl Iterator<Item = &V4> {
        self.v4.iter().filter(move |block| block.holder == holder)
    }

    /// The blocks of `holder`.
    pub fn v6_of(&self, holder: Holder) -> impl Iterator<Item = &V6> {
        self.v6.iter().filter(move |block| block.holder == holder)
    }

    /// How many ranges the CN blocks make once adjacent ones are merged (IPv4, IPv6): what the
    /// filter reports when it loads them.
    pub fn cn_ranges(&self) -> (usize, usize) {
        let v4 = self
            .v4_of(Holder::Cn)
            .map(|b| (u128::from(b.first), u128::from(b.last())));
        let v6 = self.v6_of(Holder::Cn).map(|b| (b.first, b.last()));
        (merged(v4.collect()), merged(v6.collect()))
    }

    /// How many addresses the CN blocks hold (IPv4, IPv6).
    pub fn cn_addresses(&self) -> (u128, u128) {
        let v4 = self.v4_of(Holder::Cn).map(|b| u128::from(b.count)).sum();
        let v6 = self
            .v6_of(Holder::Cn)
            .map(|b| 1u128 << (128 - b.prefix))
            .sum();
        (v4, v6)
    }

    /// The file in the RIR format, sorted like APNIC's (by country, type, address), with the
    /// version line, the summaries, a comment and a few ASN lines.
    pub fn to_rir_file(&self) -> String {
        let mut lines: Vec<(&str, u8, u128, String)> = Vec::new();
        for block in &self.v4 {
            let start = Ipv4Addr::from(block.first);
            let line = format!(
                "apnic|{}|ipv4|{start}|{}|20110414|allocated",
                block.holder.code(),
                block.count
            );
            lines.push((block.holder.code(), 4, u128::from(block.first), line));
        }
        for block in &self.v6 {
            let start = Ipv6Addr::from(block.first);
            let line = format!(
                "apnic|{}|ipv6|{start}|{}|20130315|allocated",
                block.holder.code(),
                block.prefix
            );
            lines.push((block.holder.code(), 6, block.first, line));
        }
        lines.sort();
        let mut text = String::new();
        let total = lines.len() + 3;
        let _ = writeln!(text, "2|apnic|20250101|{total}|19830613|20241231|+1000");
        let _ = writeln!(text, "apnic|*|asn|*|3|summary");
        let _ = writeln!(text, "apnic|*|ipv4|*|{}|summary", self.v4.len());
        let _ = writeln!(text, "apnic|*|ipv6|*|{}|summary", self.v6.len());
        let _ = writeln!(text, "# synthetic data for Ferry's tests, not APNIC's");
        for asn in [
            "apnic|CN|asn|4134|1|20020101|allocated",
            "apnic|CN|asn|4837|1|20020101|allocated",
            "apnic|JP|asn|2497|1|19970101|allocated",
        ] {
            let _ = writeln!(text, "{asn}");
        }
        for (_, _, _, line) in lines {
            let _ = writeln!(text, "{line}");
        }
        text
    }
}

/// The next /8 of the pool.
fn next_slash8(pool: &mut std::slice::Iter<'_, u8>) -> u8 {
    *pool
        .next()
        .expect("the generator ran out of IPv4 /8s; make IPV4_POOL longer")
}

/// How many ranges `ranges` (disjoint `[first, last]`) make once adjacent ones are merged.
fn merged(mut ranges: Vec<(u128, u128)>) -> usize {
    ranges.sort_unstable();
    let mut count = 0;
    let mut end: Option<u128> = None;
    for (first, last) in ranges {
        match end {
            Some(prev) if prev.checked_add(1) == Some(first) => {}
            _ => count += 1,
        }
        end = Some(last);
    }
    count
}
