//! Header lists as the tests see them: `(name, value)` pairs in wire order, duplicates kept.
//!
//! A `Vec<(String, String)>` is what a test wants to assert on (several `Set-Cookie` lines, their
//! order); [`HeaderLookup`] adds case-insensitive lookups to it. Conversions to and from hyper's
//! `HeaderMap` live here so the origin and the client agree on them.

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Case-insensitive lookups on a list of `(name, value)` pairs.
pub trait HeaderLookup {
    /// The first value of header `name`.
    fn header(&self, name: &str) -> Option<&str>;
    /// Every value of header `name`, in order.
    fn header_all(&self, name: &str) -> Vec<&str>;
    /// Whether header `name` is present at all.
    fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

impl HeaderLookup for [(String, String)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn header_all(&self, name: &str) -> Vec<&str> {
        self.iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

impl HeaderLookup for Vec<(String, String)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }

    fn header_all(&self, name: &str) -> Vec<&str> {
        self.as_slice().header_all(name)
    }
}

/// A hyper header map as a list (lowercase names; values that are not UTF-8 made lossy).
pub fn to_list(map: &HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// One header, checked: a test that writes an invalid one has a bug, so this panics naming it.
pub fn parse(name: &str, value: &str) -> (HeaderName, HeaderValue) {
    let parsed_name = HeaderName::from_bytes(name.as_bytes())
        .unwrap_or_else(|err| panic!("header name {name:?} is not valid: {err}"));
    let parsed_value = HeaderValue::from_str(value)
        .unwrap_or_else(|err| panic!("header {name}: value {value:?} is not valid: {err}"));
    (parsed_name, parsed_value)
}

/// A list of checked headers as a hyper header map.
pub fn to_map(list: &[(HeaderName, HeaderValue)]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(list.len());
    for (name, value) in list {
        map.append(name.clone(), value.clone());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case_and_keep_duplicates() {
        let list = vec![
            ("set-cookie".to_owned(), "a=1".to_owned()),
            ("Content-Type".to_owned(), "text/html".to_owned()),
            ("Set-Cookie".to_owned(), "b=2".to_owned()),
        ];
        assert_eq!(list.header("content-type"), Some("text/html"));
        assert_eq!(list.header_all("SET-COOKIE"), ["a=1", "b=2"]);
        assert!(!list.has_header("location"));
    }
}
