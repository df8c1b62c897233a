//! What the tests of every Ferry crate share (the filter's unit tests, the relay's tests, the
//! end-to-end harness): one deterministic pseudo-random generator, so a failing random test
//! replays from its seed, and one digest of a byte stream that is the same however the stream
//! was split, so tests of many-MiB transfers compare digests instead of holding the bytes.
//!
//! Neither is cryptographic: [`Rng`] is SplitMix64 over a counter, [`Digest`] an FNV-style hash
//! of 8-byte words plus the length; any lost, duplicated, reordered or altered byte changes the
//! digest.

/// A deterministic pseudo-random generator (SplitMix64 over a counter): the same seed gives the
/// same sequence on every machine.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let out = splitmix64(self.0);
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        out
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// An index in `0..n` (`n` > 0): a pick from a slice of length `n`.
    pub fn index(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// 128 random bits.
    pub fn u128(&mut self) -> u128 {
        (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// SplitMix64's output function: a well-mixed 64-bit hash of a 64-bit input (also what makes
/// random-access pseudo-random bodies: the bytes of block `i` are `splitmix64(seed ^ i)`).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The digest of a byte stream: its length and a hash of its 8-byte words, counted from the
/// start of the stream, so feeding the same bytes in any pieces gives an equal digest (the
/// value depends only on the bytes fed). Equality compares [`Digest::finish`].
#[derive(Debug, Clone, Copy)]
pub struct Digest {
    len: u64,
    hash: u64,
    tail: [u8; 8],
    tail_len: usize,
}

impl Digest {
    const OFFSET_BASIS: u64 = 0xCBF2_9CE4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01B3;

    /// The digest of nothing.
    pub fn new() -> Digest {
        Digest {
            len: 0,
            hash: Self::OFFSET_BASIS,
            tail: [0; 8],
            tail_len: 0,
        }
    }

    /// The digest of `data` in one go.
    pub fn of(data: &[u8]) -> Digest {
        let mut digest = Digest::new();
        digest.update(data);
        digest
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Feeds the next bytes of the stream.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.tail_len > 0 {
            let take = (8 - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&data[..take]);
            self.tail_len += take;
            data = &data[take..];
            if self.tail_len < 8 {
                return;
            }
            self.mix(u64::from_le_bytes(self.tail));
            self.tail_len = 0;
        }
        let mut words = data.chunks_exact(8);
        for word in &mut words {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(word);
            self.mix(u64::from_le_bytes(bytes));
        }
        let rest = words.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    /// The length and the hash with the unfinished word folded in.
    pub fn finish(&self) -> (u64, u64) {
        let mut done = *self;
        for i in 0..self.tail_len {
            done.mix(u64::from(self.tail[i]) | 0x100);
        }
        (done.len, done.hash)
    }

    fn mix(&mut self, word: u64) {
        self.hash = (self.hash ^ word).wrapping_mul(Self::PRIME).rotate_left(23);
    }
}

impl PartialEq for Digest {
    fn eq(&self, other: &Digest) -> bool {
        self.finish() == other.finish()
    }
}

impl Eq for Digest {}

impl Default for Digest {
    fn default() -> Digest {
        Digest::new()
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (len, hash) = self.finish();
        write!(f, "{len} bytes, hash {hash:016x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_the_same_at_every_split() {
        let mut data = vec![0; 67];
        Rng(3).fill(&mut data);
        let whole = Digest::of(&data);
        for a in 0..=data.len() {
            for b in a..=data.len() {
                let mut split = Digest::new();
                split.update(&data[..a]);
                split.update(&data[a..b]);
                split.update(&data[b..]);
                assert_eq!(split, whole, "split at {a} and {b}");
            }
        }
        assert_eq!(whole.len(), 67);
    }

    #[test]
    fn digest_sees_order_length_and_content() {
        assert_ne!(Digest::of(b"ab").finish(), Digest::of(b"ba").finish());
        assert_ne!(Digest::of(b"a").finish(), Digest::of(b"a\0").finish());
        assert_ne!(Digest::of(b"").finish(), Digest::of(b"\0").finish());
        let mut data = vec![0; 4096];
        Rng(9).fill(&mut data);
        let whole = Digest::of(&data).finish();
        for at in [0, 7, 8, 4095] {
            let mut changed = data.clone();
            changed[at] ^= 1;
            assert_ne!(Digest::of(&changed).finish(), whole, "byte {at} flipped");
        }
    }

    #[test]
    fn rng_replays_from_its_seed_and_stays_in_range() {
        let (mut a, mut b) = (Rng(42), Rng(42));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            assert!(a.below(7) < 7);
            assert!(b.index(3) < 3);
            assert!(a.index(3) < 3);
            assert!(b.below(7) < 7);
        }
        assert_ne!(Rng(1).next_u64(), Rng(2).next_u64());
    }
}
