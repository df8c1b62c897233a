//! Durations as written in flags and files: a number with a unit, never a bare number (its unit
//! would be a guess). [`format_duration`] writes them back the same way, for messages.

use std::time::Duration;

/// The reason [`parse_duration`] gives for a number past what a duration holds; a field with a
/// range reports its range instead.
pub(super) const TOO_LARGE: &str = "too large";

/// Parses a duration such as `"250ms"`, `"5s"`, `"10m"`, `"1h"`, `"1d"` or `"1m30s"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number before {rest:?}"));
        }
        let (number, tail) = rest.split_at(digits);
        let units = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(units);
        let per_unit = match unit {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86400),
            "" if tail.starts_with('.') => {
                return Err("use whole numbers (1500ms, not 1.5s)".into())
            }
            "" if tail.is_empty() => return Err("missing unit (use ms, s, m, h or d)".into()),
            "" => return Err(format!("unexpected {tail:?}")),
            _ => return Err(format!("unknown unit {unit:?} (use ms, s, m, h or d)")),
        };
        let too_large = || TOO_LARGE.to_string();
        let n: u32 = number.parse().map_err(|_| too_large())?;
        total = per_unit
            .checked_mul(n)
            .and_then(|d| total.checked_add(d))
            .ok_or_else(too_large)?;
        rest = tail;
    }
    Ok(total)
}

/// `d` as [`parse_duration`] reads it, in the largest units that are exact: `"1d"`, `"1m30s"`,
/// `"250ms"`, `"0s"` (below a millisecond is dropped: no setting is that fine).
pub fn format_duration(d: Duration) -> String {
    const UNITS: [(&str, u128); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = d.as_millis();
    if rest == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, per) in UNITS {
        if rest >= per {
            out += &format!("{}{unit}", rest / per);
            rest %= per;
        }
    }
    out
}
