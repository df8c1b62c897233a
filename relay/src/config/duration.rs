//! Durations as written in flags and files: a number with a unit, never a bare number (its unit
//! would be a guess).

use std::time::Duration;

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
        let too_large = || "too large".to_string();
        let n: u32 = number.parse().map_err(|_| too_large())?;
        total = per_unit
            .checked_mul(n)
            .and_then(|d| total.checked_add(d))
            .ok_or_else(too_large)?;
        rest = tail;
    }
    Ok(total)
}
