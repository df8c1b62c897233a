//! A direction's behaviour, parsed from `delay=100ms,jitter=2ms,loss=1%,rate=100mbit,queue=50ms`
//! (every key optional, in any order). Values are checked: a delay or jitter of at most 10 s,
//! a loss below 100 %, a rate from 64 kbit/s to 100 Gbit/s, a queue of 1 ms to 10 s.

use std::time::Duration;

/// What one direction of the link does to the packets that cross it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Direction {
    /// Propagation delay.
    pub delay: Duration,
    /// At most this much extra delay, uniformly distributed (order is kept).
    pub jitter: Duration,
    /// Probability that a packet is lost, in `0.0..1.0`.
    pub loss: f64,
    /// Bottleneck rate in bits per second; `None`: no bottleneck.
    pub rate: Option<u64>,
    /// The longest a packet may wait at the bottleneck before it is dropped.
    pub queue: Duration,
}

impl Default for Direction {
    fn default() -> Direction {
        Direction {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            rate: None,
            queue: Duration::from_millis(100),
        }
    }
}

/// Why a direction's specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{0:?}: expected KEY=VALUE with KEY one of delay, jitter, loss, rate, queue")]
    Item(String),
    #[error("{key}={value}: {reason}")]
    Value {
        key: &'static str,
        value: String,
        reason: &'static str,
    },
}

impl std::str::FromStr for Direction {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Direction, SpecError> {
        let mut out = Direction::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((key, value)) = item.split_once('=') else {
                return Err(SpecError::Item(item.to_owned()));
            };
            let (key, value) = (key.trim(), value.trim());
            let bad = |key, reason| SpecError::Value {
                key,
                value: value.to_owned(),
                reason,
            };
            match key {
                "delay" => {
                    out.delay =
                        duration(value, Duration::from_secs(10)).map_err(|r| bad("delay", r))?
                }
                "jitter" => {
                    out.jitter =
                        duration(value, Duration::from_secs(10)).map_err(|r| bad("jitter", r))?
                }
                "queue" => {
                    out.queue =
                        duration(value, Duration::from_secs(10)).map_err(|r| bad("queue", r))?;
                    if out.queue < Duration::from_millis(1) {
                        return Err(bad("queue", "at least 1ms"));
                    }
                }
                "loss" => out.loss = loss(value).map_err(|r| bad("loss", r))?,
                "rate" => out.rate = Some(rate(value).map_err(|r| bad("rate", r))?),
                _ => return Err(SpecError::Item(item.to_owned())),
            }
        }
        Ok(out)
    }
}

/// `250ms`, `1.5s`, `800us`, `0`.
fn duration(text: &str, max: Duration) -> Result<Duration, &'static str> {
    const UNITS: &str = "expected a duration such as 100ms, 1.5s or 800us";
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if text == "0" {
        ("0", 1.0)
    } else {
        return Err(UNITS);
    };
    let value: f64 = number.parse().map_err(|_| UNITS)?;
    if !value.is_finite() || value < 0.0 {
        return Err(UNITS);
    }
    let seconds = value * scale;
    if seconds > max.as_secs_f64() {
        return Err("at most 10s");
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// `1%`, `0.5%` or a fraction `0.01`.
fn loss(text: &str) -> Result<f64, &'static str> {
    const FORM: &str = "expected a percentage such as 1% or 0.5%";
    let value = match text.strip_suffix('%') {
        Some(p) => p.parse::<f64>().map_err(|_| FORM)? / 100.0,
        None => text.parse::<f64>().map_err(|_| FORM)?,
    };
    if !(0.0..1.0).contains(&value) {
        return Err("from 0% to below 100%");
    }
    Ok(value)
}

/// `100mbit`, `1gbit`, `512kbit`: bits per second.
fn rate(text: &str) -> Result<u64, &'static str> {
    const FORM: &str = "expected a rate such as 100mbit, 1gbit or 512kbit";
    let lower = text.to_ascii_lowercase();
    let (number, scale) = if let Some(n) = lower.strip_suffix("gbit") {
        (n.to_owned(), 1e9)
    } else if let Some(n) = lower.strip_suffix("mbit") {
        (n.to_owned(), 1e6)
    } else if let Some(n) = lower.strip_suffix("kbit") {
        (n.to_owned(), 1e3)
    } else {
        return Err(FORM);
    };
    let value: f64 = number.parse().map_err(|_| FORM)?;
    let bits = value * scale;
    if !(64e3..=100e9).contains(&bits) {
        return Err("from 64kbit to 100gbit");
    }
    Ok(bits as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let d: Direction = "delay=100ms, jitter=2ms,loss=1%,rate=100mbit,queue=50ms"
            .parse()
            .unwrap();
        assert_eq!(d.delay, Duration::from_millis(100));
        assert_eq!(d.jitter, Duration::from_millis(2));
        assert!((d.loss - 0.01).abs() < 1e-12);
        assert_eq!(d.rate, Some(100_000_000));
        assert_eq!(d.queue, Duration::from_millis(50));
        assert_eq!("".parse::<Direction>().unwrap(), Direction::default());
        let d: Direction = "delay=1.5s,loss=0.002,rate=512kbit".parse().unwrap();
        assert_eq!(d.delay, Duration::from_millis(1500));
        assert!((d.loss - 0.002).abs() < 1e-12);
        assert_eq!(d.rate, Some(512_000));
    }

    #[test]
    fn refuses_with_the_key_and_the_reason() {
        let cases = [
            ("delay", "\"delay\": expected KEY=VALUE"),
            ("speed=1", "\"speed=1\": expected KEY=VALUE"),
            ("delay=100", "delay=100: expected a duration"),
            ("delay=-1ms", "delay=-1ms: expected a duration"),
            ("delay=11s", "delay=11s: at most 10s"),
            ("loss=100%", "loss=100%: from 0% to below 100%"),
            ("loss=-1%", "loss=-1%: from 0% to below 100%"),
            ("loss=lots", "loss=lots: expected a percentage"),
            ("rate=10kbit", "rate=10kbit: from 64kbit to 100gbit"),
            ("rate=100", "rate=100: expected a rate"),
            ("queue=0", "queue=0: at least 1ms"),
        ];
        for (text, want) in cases {
            let err = text.parse::<Direction>().expect_err(text).to_string();
            assert!(err.starts_with(want), "{text}: {err}");
        }
    }
}
