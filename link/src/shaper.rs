//! One direction's decisions, packet by packet: when a packet comes out of the link, or that it
//! does not. Pure: the caller passes the time in, so the tests run without a clock or root.

use std::time::{Duration, Instant};

use ferry_testkit::Rng;

use crate::Direction;

/// What becomes of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered at that time.
    Deliver(Instant),
    /// Lost on the way (the direction's `loss`).
    Lost,
    /// Dropped at the bottleneck: it would have waited longer than the direction's `queue`.
    Overflow,
}

/// The state of one direction: when its bottleneck is free again and when the last packet
/// comes out (so none overtakes it).
#[derive(Debug, Clone)]
pub struct Shaper {
    direction: Direction,
    rng: Rng,
    free_at: Option<Instant>,
    last_due: Option<Instant>,
}

impl Shaper {
    /// A direction with nothing in flight; `seed` makes its losses and jitter repeatable.
    pub fn new(direction: Direction, seed: u64) -> Shaper {
        Shaper {
            direction,
            rng: Rng(seed),
            free_at: None,
            last_due: None,
        }
    }

    /// The fate of a packet of `len` bytes that enters the link at `now` (calls come in the
    /// order the packets enter).
    pub fn admit(&mut self, now: Instant, len: usize) -> Verdict {
        let d = &self.direction;
        let sent = match d.rate {
            None => now,
            Some(rate) => {
                let start = self.free_at.map_or(now, |free| free.max(now));
                if start.duration_since(now) > d.queue {
                    return Verdict::Overflow;
                }
                let nanos = (len as u128 * 8 * 1_000_000_000) / u128::from(rate.max(1));
                let done = start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
                self.free_at = Some(done);
                done
            }
        };
        // A uniform draw in [0, 1) from the top 53 bits.
        if d.loss > 0.0 && (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= d.loss {
            return Verdict::Lost;
        }
        let jitter = match u64::try_from(d.jitter.as_nanos()) {
            Ok(0) | Err(_) => Duration::ZERO,
            Ok(max) => Duration::from_nanos(self.rng.below(max + 1)),
        };
        let due = (sent + d.delay + jitter).max(self.last_due.unwrap_or(now));
        self.last_due = Some(due);
        Verdict::Deliver(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaper(spec: &str) -> Shaper {
        Shaper::new(spec.parse().unwrap(), 1)
    }

    fn due(v: Verdict) -> Instant {
        match v {
            Verdict::Deliver(at) => at,
            other => panic!("expected a delivery, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_delay_delivers_everything_that_much_later() {
        let mut s = shaper("delay=100ms");
        let t0 = Instant::now();
        for i in 0..1000u64 {
            let now = t0 + Duration::from_micros(i * 10);
            assert_eq!(due(s.admit(now, 1500)), now + Duration::from_millis(100));
        }
    }

    #[test]
    fn jitter_adds_at_most_its_value_and_never_reorders() {
        let mut s = shaper("delay=50ms,jitter=20ms");
        let t0 = Instant::now();
        let mut last = t0;
        let mut spread = Duration::ZERO;
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_micros(i * 100);
            let at = due(s.admit(now, 100));
            assert!(at >= last, "packet {i} overtook the one before");
            let extra = at - now - Duration::from_millis(50);
            assert!(extra <= Duration::from_millis(20), "packet {i}: {extra:?}");
            spread = spread.max(extra);
            last = at;
        }
        assert!(
            spread > Duration::from_millis(15),
            "jitter never showed: {spread:?}"
        );
    }

    #[test]
    fn the_bottleneck_paces_and_drops_what_overflows_its_queue() {
        // 12 Mbit/s: a 1500-byte packet takes exactly 1 ms.
        let mut s = shaper("rate=12mbit,queue=10ms,delay=5ms");
        let t0 = Instant::now();
        let mut verdicts = Vec::new();
        for _ in 0..20 {
            verdicts.push(s.admit(t0, 1500));
        }
        for (i, v) in verdicts.iter().take(11).enumerate() {
            let want = t0 + Duration::from_millis(i as u64 + 1 + 5);
            assert_eq!(due(*v), want, "packet {i}");
        }
        assert!(verdicts[11..].iter().all(|v| *v == Verdict::Overflow));
        // Once the queue drains, packets pass again, paced from when the link is free.
        let later = t0 + Duration::from_millis(11);
        assert_eq!(due(s.admit(later, 1500)), later + Duration::from_millis(6));
        let idle = t0 + Duration::from_secs(1);
        assert_eq!(due(s.admit(idle, 750)), idle + Duration::from_micros(5500));
    }

    #[test]
    fn loss_drops_about_its_share_and_repeats_with_the_seed() {
        let count = |seed| {
            let mut s = Shaper::new("loss=1%".parse().unwrap(), seed);
            let now = Instant::now();
            (0..100_000)
                .filter(|_| s.admit(now, 1500) == Verdict::Lost)
                .count()
        };
        let lost = count(7);
        assert!((900..=1100).contains(&lost), "{lost} of 100,000 lost at 1%");
        assert_eq!(count(7), lost, "the same seed, the same losses");
        let mut clean = shaper("delay=1ms");
        let now = Instant::now();
        assert!((0..10_000).all(|_| clean.admit(now, 1500) != Verdict::Lost));
    }
}
