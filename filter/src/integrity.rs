//! Subresource Integrity in HTML: dropping `integrity` attributes of same-site scripts and
//! stylesheets, whose content the filter may rewrite (a rewritten file no longer matches its
//! hash, and the browser would refuse to run or apply it).
//!
//! A tag is same-site when its URL (`src` of `<script>`, `href` of `<link>`) is relative or
//! names a configured host, origin or mirror (scheme-relative `//host/...` included). Other
//! tags, third-party CDNs in particular, keep their `integrity`: the filter never touches
//! those files, and the hash still protects them.
//!
//! # Streaming
//!
//! [`IntegrityStripper::strip`] works on one chunk of HTML at a time. A `<script` or `<link`
//! tag that is not complete at the end of a chunk is left unconsumed, to be presented again
//! with the next chunk (at most [`MAX_TAG`] bytes; a longer tag is passed as it is). The
//! search itself is for the word `integrity` (see [`SPELLINGS`]), which real pages contain a
//! handful of times, so HTML without it costs one SIMD substring scan plus a look at the last
//! `<` of each chunk.
//!
//! A tag is taken to be a `<`, bytes that are neither `<` nor `>`, and a `>`, so that a body
//! cut into chunks anywhere gives the same result as the whole body. The known limit that
//! follows: a `<script>` or `<link>` with a `<` or `>` inside a quoted attribute value keeps
//! its `integrity` (the page then degrades as it would without this module, never further).

use memchr::memmem::Finder;
use memchr::{memchr2, memrchr, memrchr2};

use crate::domain::{split_port, Direction, HostMap};

/// What is searched for: the attribute name without its first letter (a hit counts when an
/// `i` or `I` precedes it), so `integrity` and `Integrity` are found in one pass. HTML
/// attribute names are case-insensitive, but a case-insensitive search (an Aho-Corasick
/// automaton) ran at about 2 GB/s natively, a fifth of the rewriter's speed, and in Envoy each
/// extra SIMD substring pass over a 1.9 MB page cost about 15% of its requests/s. Spellings
/// such as `INTEGRITY` keep their attribute (SRI dates from 2016; upper-case HTML does not
/// use it).
pub const SPELLINGS: [&str; 1] = ["ntegrity"];

/// The longest incomplete tag held over to the next chunk.
pub const MAX_TAG: usize = 8 * 1024;

/// What [`IntegrityStripper::strip`] did with its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stripped {
    /// Input bytes decided; `input[consumed..]` (an incomplete tag) must come again.
    pub consumed: usize,
    /// `integrity` attributes removed.
    pub removed: usize,
}

/// Finds and removes same-site `integrity` attributes; build one per configuration.
#[derive(Debug, Clone)]
pub struct IntegrityStripper {
    words: [Finder<'static>; SPELLINGS.len()],
}

impl Default for IntegrityStripper {
    fn default() -> Self {
        Self::new()
    }
}

impl IntegrityStripper {
    pub fn new() -> IntegrityStripper {
        IntegrityStripper {
            words: SPELLINGS.map(|w| Finder::new(w.as_bytes()).into_owned()),
        }
    }

    /// Strips one chunk. Returns `None` when the whole input is decided and unchanged (the
    /// caller then uses it as it is); otherwise `out` receives the output for
    /// `input[..consumed]`.
    pub fn strip(
        &self,
        input: &[u8],
        last: bool,
        hosts: &HostMap,
        out: &mut Vec<u8>,
    ) -> Option<Stripped> {
        let limit = if last { input.len() } else { held_from(input) };
        let mut hits: Vec<usize> = Vec::new();
        for word in &self.words {
            hits.extend(
                word.find_iter(&input[..limit])
                    .filter(|&at| at > 0 && matches!(input[at - 1], b'i' | b'I'))
                    .map(|at| at - 1),
            );
        }
        if hits.is_empty() && limit == input.len() {
            return None;
        }
        hits.sort_unstable();
        let mut removals: Vec<(usize, usize)> = Vec::new();
        let mut from = 0;
        for at in hits {
            if at < from {
                continue;
            }
            from = at + "integrity".len();
            let Some(tag) = enclosing_tag(&input[..limit], at) else {
                continue;
            };
            for span in same_site_integrity(&input[tag.clone()], hosts) {
                removals.push((tag.start + span.0, tag.start + span.1));
            }
            from = from.max(tag.end);
        }
        if removals.is_empty() && limit == input.len() {
            return None;
        }
        out.reserve(limit);
        let mut copied = 0;
        for &(start, end) in &removals {
            out.extend_from_slice(&input[copied..start]);
            copied = end;
        }
        out.extend_from_slice(&input[copied..limit]);
        Some(Stripped {
            consumed: limit,
            removed: removals.len(),
        })
    }
}

/// Where the input stops being decided: at the `<` of a trailing `<script` or `<link` tag
/// (or of a trailing `<`, `<scr`, `<li`... that may still become one), else its end.
fn held_from(input: &[u8]) -> usize {
    match memrchr2(b'<', b'>', input) {
        Some(lt) if input[lt] == b'<' && input.len() - lt <= MAX_TAG => {
            let rest = &input[lt + 1..];
            let could_be = |name: &[u8]| {
                if rest.len() <= name.len() {
                    name[..rest.len()].eq_ignore_ascii_case(rest)
                } else {
                    rest[..name.len()].eq_ignore_ascii_case(name) && ends_name(rest[name.len()])
                }
            };
            if could_be(b"script") || could_be(b"link") {
                lt
            } else {
                input.len()
            }
        }
        _ => input.len(),
    }
}

fn ends_name(b: u8) -> bool {
    b.is_ascii_whitespace() || b == b'/' || b == b'>'
}

/// The `<script ...>` or `<link ...>` tag around `at` (from its `<` to just past its `>`), if
/// `at` is inside one that ends within `input` and is at most [`MAX_TAG`] long.
///
/// A tag here is a `<`, then bytes that are neither `<` nor `>`, then `>`: the same rule for a
/// whole body and for one cut into chunks (see [`held_from`]), which keeps streaming exact.
fn enclosing_tag(input: &[u8], at: usize) -> Option<std::ops::Range<usize>> {
    let lt = memrchr2(b'<', b'>', &input[..at]).filter(|&i| input[i] == b'<')?;
    let name = &input[lt + 1..];
    let is = |n: &[u8]| {
        name.len() > n.len() && name[..n.len()].eq_ignore_ascii_case(n) && ends_name(name[n.len()])
    };
    if !is(b"script") && !is(b"link") {
        return None;
    }
    let gt = at + memchr2(b'<', b'>', &input[at..]).filter(|&i| input[at + i] == b'>')?;
    (gt + 1 - lt <= MAX_TAG).then_some(lt..gt + 1)
}

/// One attribute of a tag: where it starts (after the whitespace that precedes it), where it
/// ends, its name, and its value (unquoted).
struct Attribute<'a> {
    lead: usize,
    /// Where its name starts (after the whitespace from `lead`).
    start: usize,
    end: usize,
    name: &'a [u8],
    value: &'a [u8],
}

/// Splits a complete tag (`<name ... >`) into its attributes.
fn attributes(tag: &[u8]) -> Vec<Attribute<'_>> {
    let mut out = Vec::new();
    let mut i = 1;
    while i < tag.len() && !ends_name(tag[i]) {
        i += 1;
    }
    loop {
        let lead = i;
        while i < tag.len() && (tag[i].is_ascii_whitespace() || tag[i] == b'/') {
            i += 1;
        }
        if i >= tag.len() || tag[i] == b'>' {
            return out;
        }
        let name_start = i;
        while i < tag.len() && !tag[i].is_ascii_whitespace() && !b"/>=".contains(&tag[i]) {
            i += 1;
        }
        let name = &tag[name_start..i];
        let mut j = i;
        while j < tag.len() && tag[j].is_ascii_whitespace() {
            j += 1;
        }
        let mut value: &[u8] = b"";
        if tag.get(j) == Some(&b'=') {
            j += 1;
            while j < tag.len() && tag[j].is_ascii_whitespace() {
                j += 1;
            }
            match tag.get(j) {
                Some(&q @ (b'"' | b'\'')) => {
                    let start = j + 1;
                    let len = tag[start..]
                        .iter()
                        .position(|&b| b == q)
                        // Unterminated: up to, never including, the tag's closing `>`.
                        .unwrap_or(tag.len().saturating_sub(1).saturating_sub(start));
                    value = &tag[start..start + len];
                    j = start + len + 1;
                }
                _ => {
                    let start = j;
                    while j < tag.len() && !tag[j].is_ascii_whitespace() && tag[j] != b'>' {
                        j += 1;
                    }
                    value = &tag[start..j];
                }
            }
            i = j;
        }
        out.push(Attribute {
            lead,
            start: name_start,
            // Never the closing `>`: removals stay inside the tag (see `crate::body`).
            end: i.min(tag.len().saturating_sub(1)),
            name,
            value,
        });
    }
}

/// The span (leading whitespace included) of the tag's `integrity` attribute, if the tag
/// loads a same-site URL.
///
/// Every `integrity` attribute goes (a browser would enforce a second one). The whitespace
/// before one goes with it, unless the next byte would then touch the previous token
/// (`<script integrity="x"src=...>` must not become `<scriptsrc=...>`): then one whitespace
/// byte stays.
fn same_site_integrity(tag: &[u8], hosts: &HostMap) -> Vec<(usize, usize)> {
    let attrs = attributes(tag);
    // `enclosing_tag` only passes `<script` and `<link` tags.
    let url_attr: &[u8] = if tag
        .get(1..7)
        .is_some_and(|n| n.eq_ignore_ascii_case(b"script"))
    {
        b"src"
    } else {
        b"href"
    };
    let same_site = attrs
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(url_attr))
        .is_some_and(|url| is_same_site(url.value, hosts));
    if !same_site {
        return Vec::new();
    }
    attrs
        .iter()
        .filter(|a| a.name.eq_ignore_ascii_case(b"integrity"))
        .map(|a| {
            let separated = tag
                .get(a.end)
                .is_none_or(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/');
            if separated || a.start == a.lead {
                (a.lead, a.end)
            } else {
                (a.lead + 1, a.end)
            }
        })
        .collect()
}

/// Whether a URL, as written in an attribute, is relative or names a configured host.
pub fn is_same_site(url: &[u8], hosts: &HostMap) -> bool {
    // As browsers parse http(s) URLs: tabs and newlines are dropped, `\` is `/`.
    let url: Vec<u8> = url
        .trim_ascii()
        .iter()
        .filter(|&&b| !matches!(b, b'\t' | b'\r' | b'\n'))
        .map(|&b| if b == b'\\' { b'/' } else { b })
        .collect();
    let url = url.as_slice();
    let after_scheme = match scheme_end(url) {
        Some(colon) => {
            let scheme = &url[..colon];
            if !scheme.eq_ignore_ascii_case(b"https") && !scheme.eq_ignore_ascii_case(b"http") {
                // data:, blob:, javascript:... nothing the filter serves.
                return false;
            }
            &url[colon + 1..]
        }
        None => url,
    };
    let Some(authority_on) = after_scheme.strip_prefix(b"//") else {
        // A path: relative to the page, which is ours.
        return true;
    };
    let end = authority_on
        .iter()
        .position(|b| b"/?#\\".contains(b))
        .unwrap_or(authority_on.len());
    let authority = &authority_on[..end];
    let host_port = match memrchr(b'@', authority) {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let (host, _) = split_port(host_port);
    hosts.is_mirror(host) || hosts.map(host, Direction::OriginToMirror).is_some()
}

/// The index of the `:` ending a URL scheme (`[A-Za-z][A-Za-z0-9+.-]*:`), if there is one.
fn scheme_end(url: &[u8]) -> Option<usize> {
    let colon = memchr::memchr(b':', url)?;
    let scheme = &url[..colon];
    let valid = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"+.-".contains(&b));
    valid.then_some(colon)
}

#[cfg(test)]
mod tests;
