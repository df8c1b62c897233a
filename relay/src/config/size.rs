//! Sizes in bytes as written in flags and files: a whole number of bytes (`65536`), or a number
//! with a binary unit (`64KiB`, `1MiB`). Decimal units (`KB`, `k`) are refused: whether they
//! mean 1000 or 1024 would be a guess. [`format_size`] writes them back the same way.

/// Parses `"65536"`, `"64KiB"` or `"1MiB"`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(if text.is_empty() {
            "empty size".into()
        } else {
            format!("expected a number before {text:?}")
        });
    }
    let (number, unit) = text.split_at(digits);
    let per_unit: u64 = match unit {
        "" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        _ if unit.starts_with('.') => return Err("use whole numbers (1536KiB, not 1.5MiB)".into()),
        _ => {
            return Err(format!(
                "unknown unit {unit:?} (use KiB, MiB, or none for bytes)"
            ))
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(per_unit))
        .ok_or_else(|| super::duration::TOO_LARGE.to_string())
}

/// `n` in the largest binary unit that is exact: `"4KiB"`, `"1MiB"`, `"5000"`.
pub fn format_size(n: u64) -> String {
    match n {
        0 => "0".into(),
        n if n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => n.to_string(),
    }
}
