//! Deterministic large bodies and a streaming digest, so 8-64 MiB responses never sit in memory.
//!
//! A [`Generator`] yields the byte at any offset, so the origin can stream a body in chunks of any
//! size and a test can compute what it expects at any offset, or the digest of the whole, without
//! holding either. [`Digest`] and [`Rng`] are `ferry_testkit`'s, re-exported.

use bytes::Bytes;
pub use ferry_testkit::{splitmix64, Digest, Rng};

/// A deterministic, random-access source of body bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Generator {
    /// `unit` repeated end to end (cut at the body's length). Choose a unit whose length is
    /// prime to the chunk size and every match in it straddles a chunk boundary somewhere.
    Repeat(Bytes),
    /// Pseudo-random bytes (splitmix64 of the seed and the 8-byte block index): a binary body.
    Random(u64),
    /// Blocks of `filler` pseudo-random lowercase letters and spaces, each followed by `unit`:
    /// text that gzip compresses about 2:1, like real pages (Envoy's decompressor refuses ratios
    /// over 100 by default, which `Repeat` easily exceeds). The filler holds no `.`, so it never
    /// forms a domain; swap `unit` for its expected rewrite and the same seed and filler give
    /// the expected output, block for block.
    Text {
        /// Seeds the filler.
        seed: u64,
        /// Filler bytes before each `unit`.
        filler: usize,
        /// The text at the end of every block.
        unit: Bytes,
    },
}

impl Generator {
    /// `unit` repeated; an empty unit behaves as a single space.
    pub fn repeat(unit: impl Into<Bytes>) -> Self {
        let unit = unit.into();
        Self::Repeat(if unit.is_empty() {
            Bytes::from_static(b" ")
        } else {
            unit
        })
    }

    /// Text blocks of `filler` random letters and spaces, each followed by `unit`.
    pub fn text(seed: u64, filler: usize, unit: impl Into<Bytes>) -> Self {
        Self::Text {
            seed,
            filler,
            unit: unit.into(),
        }
    }

    /// The length of one block of a `Text` generator or one unit of a `Repeat` (1 for `Random`).
    pub fn block_len(&self) -> u64 {
        match self {
            Self::Repeat(unit) => unit.len().max(1) as u64,
            Self::Random(_) => 1,
            Self::Text { filler, unit, .. } => (filler + unit.len()).max(1) as u64,
        }
    }

    /// Fill `buf` with the bytes at `offset..offset + buf.len()`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        match self {
            Self::Repeat(unit) => {
                let unit: &[u8] = if unit.is_empty() { b" " } else { unit };
                // The remainder is below unit.len(), a usize, so it fits back into one.
                let mut at = (offset % unit.len() as u64) as usize;
                for byte in buf.iter_mut() {
                    *byte = unit[at];
                    at += 1;
                    if at == unit.len() {
                        at = 0;
                    }
                }
            }
            Self::Random(seed) => {
                for (i, byte) in buf.iter_mut().enumerate() {
                    let position = offset + i as u64;
                    let block = splitmix64(seed ^ (position / 8));
                    *byte = block.to_le_bytes()[(position % 8) as usize];
                }
            }
            Self::Text { seed, filler, unit } => {
                const LETTERS: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz  e a ";
                let block_len = self.block_len();
                for (i, byte) in buf.iter_mut().enumerate() {
                    let position = offset + i as u64;
                    let (block, at) = (position / block_len, (position % block_len) as usize);
                    *byte = match at.checked_sub(*filler) {
                        Some(in_unit) => unit[in_unit],
                        None => {
                            let mixed = splitmix64(seed ^ splitmix64(block) ^ at as u64);
                            LETTERS[(mixed % 32) as usize]
                        }
                    };
                }
            }
        }
    }

    /// The bytes at `offset..offset + len`.
    pub fn bytes(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.fill(offset, &mut buf);
        buf
    }

    /// The digest of the first `len` bytes, computed in bounded memory.
    pub fn digest(&self, len: u64) -> Digest {
        let mut digest = Digest::new();
        let mut buf = vec![0; 64 * 1024];
        let mut offset = 0;
        while offset < len {
            let n = buf.len().min((len - offset) as usize);
            self.fill(offset, &mut buf[..n]);
            digest.update(&buf[..n]);
            offset += n as u64;
        }
        digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_offset_gives_the_same_bytes_as_the_whole() {
        for generator in [
            Generator::repeat("abcdefg"),
            Generator::Random(7),
            Generator::text(3, 5, " https://example.com/ "),
        ] {
            let whole = generator.bytes(0, 100);
            for offset in 0..100 {
                assert_eq!(
                    generator.bytes(offset as u64, 100 - offset),
                    whole[offset..]
                );
            }
        }
    }

    #[test]
    fn the_digest_is_split_invariant() {
        let generator = Generator::Random(1);
        let data = generator.bytes(0, 200_000);
        let mut split = Digest::new();
        for piece in data.chunks(777) {
            split.update(piece);
        }
        assert_eq!(split, Digest::of(&data));
        assert_eq!(generator.digest(200_000), Digest::of(&data));
        assert_ne!(Digest::of(b"ab"), Digest::of(b"ba"));
    }

    #[test]
    fn text_blocks_end_with_the_unit_and_hold_no_dot_elsewhere() {
        let generator = Generator::text(9, 40, "|https://example.com/|");
        let blocks = generator.bytes(0, 3 * generator.block_len() as usize);
        let text = String::from_utf8(blocks).expect("ASCII");
        assert_eq!(text.matches("|https://example.com/|").count(), 3);
        assert_eq!(text.matches('.').count(), 3, "{text}");
    }
}

/// A page full of origin-domain names at random offsets, and what the mirror must serve for it:
/// `origin` is what the origin sends, `mirror` the same page with every name that is on a label
/// boundary rewritten (and every decoy left alone), built side by side so that no rewriter is
/// needed to know the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorPage {
    pub origin: Bytes,
    pub mirror: Bytes,
}

/// (origin text, mirror text) pieces: names in every form the filter rewrites, and decoys.
const PAGE_PIECES: &[(&str, &str)] = &[
    ("https://example.com/", "https://example.cn/"),
    (
        "<a href=\"https://www.example.com/a?b=c\">",
        "<a href=\"https://www.example.cn/a?b=c\">",
    ),
    ("//static.example.com/x.png", "//static.example.cn/x.png"),
    ("HTTPS://WWW.EXAMPLE.COM/", "HTTPS://WWW.EXAMPLE.CN/"),
    ("Example.com", "Example.cn"),
    ("write to help@example.com", "write to help@example.com"),
    (
        "{\"u\":\"https:\\/\\/example.com\\/p\"}",
        "{\"u\":\"https:\\/\\/example.cn\\/p\"}",
    ),
    (
        "?next=https%3A%2F%2Fexample.com%2F",
        "?next=https%3A%2F%2Fexample.cn%2F",
    ),
    ("(example.com)", "(example.cn)"),
    ("example.com.", "example.cn."),
    ("example.community", "example.community"),
    ("myexample.com", "myexample.com"),
    ("example.com.au", "example.com.au"),
    ("example.com-shop.org", "example.com-shop.org"),
    ("example.co", "example.co"),
    ("the mirror example.cn", "the mirror example.cn"),
];

/// Words between the pieces: no dots, nothing that could continue a name.
const PAGE_WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "<p>",
    "</p>",
    "<div class=\"x\">",
    "</div>",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
];

impl MirrorPage {
    /// About `len` bytes (never less), a name every ~`spacing` bytes on average, ending in
    /// `</html>` and a line break.
    pub fn random(seed: u64, len: usize, spacing: usize) -> MirrorPage {
        let mut rng = Rng(seed);
        let mut origin = Vec::with_capacity(len + 256);
        let mut mirror = Vec::with_capacity(len + 256);
        let push = |o: &mut Vec<u8>, m: &mut Vec<u8>, a: &str, b: &str| {
            o.extend_from_slice(a.as_bytes());
            m.extend_from_slice(b.as_bytes());
        };
        push(
            &mut origin,
            &mut mirror,
            "<!doctype html>\n<html><body>\n",
            "<!doctype html>\n<html><body>\n",
        );
        let words_per_piece = (spacing / 7).max(1) as u64;
        while origin.len() < len {
            if rng.below(words_per_piece) == 0 {
                let (a, b) = PAGE_PIECES[rng.below(PAGE_PIECES.len() as u64) as usize];
                push(&mut origin, &mut mirror, a, b);
            } else {
                let w = PAGE_WORDS[rng.below(PAGE_WORDS.len() as u64) as usize];
                push(&mut origin, &mut mirror, w, w);
            }
            let sep = if rng.below(12) == 0 { "\n" } else { " " };
            push(&mut origin, &mut mirror, sep, sep);
        }
        push(
            &mut origin,
            &mut mirror,
            "\n</body></html>\n",
            "\n</body></html>\n",
        );
        MirrorPage {
            origin: origin.into(),
            mirror: mirror.into(),
        }
    }
}

/// `body` cut into chunks of random sizes from 1 byte to `max` (small ones as often as large
/// ones, on a log scale), as an origin that writes whatever it has produces them.
pub fn random_chunks(rng: &mut Rng, body: &Bytes, max: usize) -> Vec<Bytes> {
    let bits = (usize::BITS - max.max(1).leading_zeros()) as u64;
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let cap = 1usize << rng.below(bits + 1);
        let len = (1 + rng.below(cap.min(max) as u64) as usize).min(body.len() - at);
        chunks.push(body.slice(at..at + len));
        at += len;
    }
    chunks
}
