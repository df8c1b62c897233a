//! Domain names: validation of configured names, the byte classes that decide label
//! boundaries, and mapping a whole host name between its mirror and origin forms.
//!
//! Everything here works on bytes and ASCII case-insensitively; nothing assumes UTF-8.

/// One origin <-> mirror pair, normalised to lowercase (by [`crate::config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPair {
    pub origin: String,
    pub mirror: String,
    /// Whether `sub.origin` <-> `sub.mirror` as well.
    pub subdomains: bool,
}

/// Why a configured domain name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("it is empty")]
    Empty,
    #[error("it is longer than 253 characters")]
    TooLong,
    #[error("it has an empty label (a leading, trailing or doubled dot)")]
    EmptyLabel,
    #[error("a label is longer than 63 characters")]
    LabelTooLong,
    #[error("only letters, digits, '-' and '.' are allowed")]
    BadCharacter,
    #[error("a label starts or ends with '-'")]
    HyphenAtEdge,
}

/// Validates a domain name from the configuration and returns it in lowercase.
pub fn normalize(name: &str) -> Result<String, DomainError> {
    if name.is_empty() {
        return Err(DomainError::Empty);
    }
    if name.len() > 253 {
        return Err(DomainError::TooLong);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(DomainError::LabelTooLong);
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(DomainError::BadCharacter);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(DomainError::HyphenAtEdge);
        }
    }
    Ok(name.to_ascii_lowercase())
}

/// A byte that may appear inside a DNS label: `[A-Za-z0-9-]`.
#[inline]
pub fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// A byte that continues a word after a domain: `[A-Za-z0-9_-]`.
#[inline]
pub fn is_word_byte(b: u8) -> bool {
    is_label_byte(b) || b == b'_'
}

/// Maps whole host names (as in `Host`, `Origin`, a cookie's `Domain`) between mirror and origin.
#[derive(Debug, Clone)]
pub struct HostMap {
    pairs: Vec<DomainPair>,
}

/// Which way a host is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Requests: a mirror host becomes the origin host.
    MirrorToOrigin,
    /// Responses: an origin host becomes the mirror host.
    OriginToMirror,
}

impl HostMap {
    pub fn new(pairs: &[DomainPair]) -> HostMap {
        HostMap {
            pairs: pairs.to_vec(),
        }
    }

    /// Maps `host` (no port, any case, an optional trailing dot) in the given direction.
    /// The most specific configured name wins: with `example.cn` (subdomains) and
    /// `cdn.example.cn`, the host `cdn.example.cn` maps through the second pair.
    /// Returns `None` when the host is not one of ours.
    pub fn map(&self, host: &[u8], direction: Direction) -> Option<Vec<u8>> {
        let host = host.strip_suffix(b".").unwrap_or(host);
        let mut best: Option<(&DomainPair, usize)> = None;
        for pair in &self.pairs {
            let (from, _) = endpoints(pair, direction);
            let Some(prefix_len) = host_prefix(host, from.as_bytes(), pair.subdomains) else {
                continue;
            };
            if best.is_none_or(|(b, _)| endpoints(b, direction).0.len() < from.len()) {
                best = Some((pair, prefix_len));
            }
        }
        let (pair, prefix_len) = best?;
        let (_, to) = endpoints(pair, direction);
        let mut out = Vec::with_capacity(prefix_len + to.len());
        out.extend(host[..prefix_len].iter().map(u8::to_ascii_lowercase));
        out.extend_from_slice(to.as_bytes());
        Some(out)
    }

    /// Maps an authority (`host[:port]`), keeping the port. Bracketed IPv6 literals are never
    /// ours and return `None`.
    pub fn map_authority(&self, authority: &[u8], direction: Direction) -> Option<Vec<u8>> {
        let (host, port) = split_port(authority);
        let mut out = self.map(host, direction)?;
        out.extend_from_slice(port);
        Some(out)
    }

    /// Whether `authority` names one of the configured mirror hosts.
    pub fn is_mirror(&self, authority: &[u8]) -> bool {
        let (host, _) = split_port(authority);
        let host = host.strip_suffix(b".").unwrap_or(host);
        self.pairs
            .iter()
            .any(|p| host_prefix(host, p.mirror.as_bytes(), p.subdomains).is_some())
    }
}

fn endpoints(pair: &DomainPair, direction: Direction) -> (&str, &str) {
    match direction {
        Direction::MirrorToOrigin => (&pair.mirror, &pair.origin),
        Direction::OriginToMirror => (&pair.origin, &pair.mirror),
    }
}

/// If `host` is `domain` or (with `subdomains`) `something.domain`, the length of the part
/// before `domain` (including its dot).
fn host_prefix(host: &[u8], domain: &[u8], subdomains: bool) -> Option<usize> {
    if host.len() < domain.len() {
        return None;
    }
    let split = host.len() - domain.len();
    if !host[split..].eq_ignore_ascii_case(domain) {
        return None;
    }
    if split == 0 {
        return Some(0);
    }
    let prefix = &host[..split];
    let labels = &prefix[..prefix.len().saturating_sub(1)];
    let valid_sub = subdomains
        && prefix.len() >= 2
        && prefix.ends_with(b".")
        && labels
            .iter()
            .all(|&b| is_label_byte(b) || b == b'.' || b == b'_')
        // No empty label: `..example.com` or `.a.example.com` is not a host name.
        && !labels.starts_with(b".")
        && !labels.windows(2).any(|w| w == b"..");
    valid_sub.then_some(split)
}

/// Splits `host:port` into the host and the `:port` suffix (empty when there is none).
pub fn split_port(authority: &[u8]) -> (&[u8], &[u8]) {
    if authority.first() == Some(&b'[') {
        // An IPv6 literal; the host part is never a configured domain name.
        return (authority, b"");
    }
    match authority.iter().rposition(|&b| b == b':') {
        Some(i) if authority[i + 1..].iter().all(u8::is_ascii_digit) => {
            (&authority[..i], &authority[i..])
        }
        _ => (authority, b""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> HostMap {
        let mut pairs = crate::testing::example_pairs();
        pairs.push(DomainPair {
            origin: "static.test".into(),
            mirror: "static.example.org".into(),
            subdomains: false,
        });
        HostMap::new(&pairs)
    }

    #[test]
    fn normalize_accepts_and_lowercases() {
        assert_eq!(normalize("WWW.Example.COM").unwrap(), "www.example.com");
        assert_eq!(normalize("localhost").unwrap(), "localhost");
        assert_eq!(normalize("xn--fiqs8s.cn").unwrap(), "xn--fiqs8s.cn");
    }

    #[test]
    fn normalize_refuses_bad_names() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = ["abcdefghi"; 26].join(".");
        let cases: &[(&str, DomainError)] = &[
            ("", DomainError::Empty),
            ("example.com.", DomainError::EmptyLabel),
            (".example.com", DomainError::EmptyLabel),
            ("example..com", DomainError::EmptyLabel),
            ("exa mple.com", DomainError::BadCharacter),
            ("example.com/", DomainError::BadCharacter),
            ("https://example.com", DomainError::BadCharacter),
            ("*.example.com", DomainError::BadCharacter),
            ("-example.com", DomainError::HyphenAtEdge),
            (&long_label, DomainError::LabelTooLong),
            (&long_name, DomainError::TooLong),
        ];
        for (name, want) in cases {
            assert_eq!(normalize(name), Err(*want), "{name:?}");
        }
    }

    #[test]
    fn hosts_map_both_ways() {
        use Direction::*;
        let m = map();
        let cases: &[(&str, Direction, Option<&str>)] = &[
            ("example.cn", MirrorToOrigin, Some("example.com")),
            ("WWW.Example.CN", MirrorToOrigin, Some("www.example.com")),
            ("a.b.example.cn", MirrorToOrigin, Some("a.b.example.com")),
            ("example.cn.", MirrorToOrigin, Some("example.com")),
            // The more specific mirror wins over the subdomain rule of example.cn.
            ("cdn.example.cn", MirrorToOrigin, Some("examplecdn.net")),
            (
                "img.cdn.example.cn",
                MirrorToOrigin,
                Some("img.examplecdn.net"),
            ),
            ("static.example.org", MirrorToOrigin, Some("static.test")),
            // No subdomains for that pair.
            ("www.static.example.org", MirrorToOrigin, None),
            ("myexample.cn", MirrorToOrigin, None),
            ("example.cn.evil.com", MirrorToOrigin, None),
            (".example.cn", MirrorToOrigin, None),
            ("example.com", MirrorToOrigin, None),
            ("example.com", OriginToMirror, Some("example.cn")),
            ("www.example.com", OriginToMirror, Some("www.example.cn")),
            (
                "img.examplecdn.net",
                OriginToMirror,
                Some("img.cdn.example.cn"),
            ),
            ("example.community", OriginToMirror, None),
            ("example.cn", OriginToMirror, None),
        ];
        for (host, dir, want) in cases {
            let got = m.map(host.as_bytes(), *dir);
            assert_eq!(
                got.as_deref(),
                want.map(str::as_bytes),
                "{host} {dir:?}: got {:?}",
                got.as_deref().map(String::from_utf8_lossy)
            );
        }
    }

    #[test]
    fn authorities_keep_their_port() {
        let m = map();
        let got = m.map_authority(b"www.example.cn:8443", Direction::MirrorToOrigin);
        assert_eq!(got.as_deref(), Some(&b"www.example.com:8443"[..]));
        assert_eq!(
            m.map_authority(b"[::1]:443", Direction::MirrorToOrigin),
            None
        );
        assert!(m.is_mirror(b"Example.CN:80"));
        assert!(m.is_mirror(b"www.example.cn"));
        assert!(!m.is_mirror(b"example.com"));
        assert!(!m.is_mirror(b"www.static.example.org"));
    }

    #[test]
    fn split_port_cases() {
        assert_eq!(split_port(b"a.b:80"), (&b"a.b"[..], &b":80"[..]));
        assert_eq!(split_port(b"a.b"), (&b"a.b"[..], &b""[..]));
        assert_eq!(split_port(b"a.b:x"), (&b"a.b:x"[..], &b""[..]));
        assert_eq!(split_port(b"[::1]:80"), (&b"[::1]:80"[..], &b""[..]));
    }
}
