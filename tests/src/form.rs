//! `application/x-www-form-urlencoded` as browsers write it (WHATWG URL standard): encoding a
//! form's fields for a post, and decoding a posted body back into fields, for the round-trip
//! tests.

/// The fields, encoded as a browser posts them: `*-._` and alphanumerics as they are, space as
/// `+`, every other byte percent-encoded.
pub fn encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", encode_part(name), encode_part(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        match b {
            b'*' | b'-' | b'.' | b'_' => out.push(b as char),
            b if b.is_ascii_alphanumeric() => out.push(b as char),
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The fields of a posted body, decoded (`+` is a space, `%XX` a byte; invalid escapes are kept
/// as they are, as browsers do).
pub fn decode(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, value) = match part.iter().position(|&b| b == b'=') {
                Some(eq) => (&part[..eq], &part[eq + 1..]),
                None => (part, &b""[..]),
            };
            (decode_part(name), decode_part(value))
        })
        .collect()
}

fn decode_part(part: &[u8]) -> String {
    let mut out = Vec::with_capacity(part.len());
    let mut i = 0;
    while i < part.len() {
        match part[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < part.len() => {
                match std::str::from_utf8(&part[i + 1..i + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_gives_the_fields_back() {
        let fields = [
            ("email", "admin@example.com"),
            ("next", "https://www.example.com/a?b=c&d=e f"),
            ("note", "100% ~ +1 \u{e9}"),
        ];
        let body = encode(&fields);
        assert_eq!(
            body,
            "email=admin%40example.com&next=https%3A%2F%2Fwww.example.com%2Fa%3Fb%3Dc%26d%3De+f\
             &note=100%25+%7E+%2B1+%C3%A9"
        );
        let back = decode(body.as_bytes());
        let want: Vec<(String, String)> = fields
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(back, want);
        assert_eq!(
            decode(b"a=%zz&b"),
            [("a".into(), "%zz".into()), ("b".into(), "".into())]
        );
    }
}
