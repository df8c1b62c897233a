//! The rewrite engine: finds origin domains in bytes and replaces them with their mirrors.
//!
//! One [`Rewriter`] is built per configuration and direction and shared by every request:
//! origin -> mirror for responses, mirror -> origin for requests ([`Direction`]), so that
//! whatever a page shows comes back to the origin as the origin wrote it. It searches all the
//! names it replaces at once (ASCII case-insensitive, leftmost-longest) and accepts a match only
//! on label boundaries:
//!
//! * before it: not `[A-Za-z0-9-]` (so `myexample.com` stays), and not `.` unless the pair has
//!   `subdomains` (then `www.example.com` becomes `www.example.cn`); a percent-escaped `/`, `:`
//!   or `@` (`%2F`, `%2f`, `%3A`, `%3a`, `%40`) right before it counts as a boundary, so
//!   `https%3A%2F%2Fexample.com` is rewritten;
//! * after it: not `[A-Za-z0-9_-]`, and not `.` followed by a label byte (so `example.community`,
//!   `example.com-shop.org` and `example.com.au` stay, while `example.com.` ending a sentence
//!   is rewritten);
//! * not the domain of an e-mail address, unless [`EmailPolicy::Rewrite`]: the byte before it is
//!   `@` (or `%40`) right after a local-part character, and what precedes that local part is not
//!   `//` (or `%2F%2F`), which would make it the user-info of a URL (`https://user@example.com/`
//!   is a URL and is rewritten; `help@example.com` and `mailto:help@example.com` are not). The
//!   user-info run looked back over stops at `&` and at an encoded `/`, `?` or `#`, so in a form
//!   `next=https%3A%2F%2Fa.org%2F&email=me%40example.com` the address is still an address.
//!
//! The replacement takes the case shape of what it replaces: all lowercase, ALL UPPERCASE, or
//! Capitalised; anything else becomes lowercase. So `EXAMPLE.COM` becomes `EXAMPLE.CN` and back,
//! and a value that goes through a page and back keeps its exact bytes.
//!
//! Candidates are found by scanning for dots (most origin domains have one) and comparing the
//! domains anchored at each, or with an Aho-Corasick automaton when an origin is a single label;
//! DESIGN.md explains the choice.
//!
//! Bodies arrive in chunks. [`Rewriter::rewrite_chunk`] consumes as much of its input as it
//! can decide and reports how many bytes it could not: the tail that could still become a match
//! once more bytes arrive (at most the longest origin domain plus one byte). The caller keeps
//! that tail and presents it again in front of the next chunk ([`crate::stream`] does), and the
//! result equals rewriting the whole body at once, which the tests check by splitting bodies at
//! every offset.

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};

use crate::domain::{is_label_byte, is_word_byte, Direction, DomainPair};

/// The longest user-info or e-mail local part looked at before an `@` (its bytes, percent
/// escapes included): past that, the address is taken as an e-mail address.
const MAX_LOCAL: usize = 128;

/// Bytes of context before a chunk that the boundary checks need: `%2F` before a name, and for
/// the e-mail rule `%2F%2F`, a local part and `%40`.
pub const CONTEXT: usize = MAX_LOCAL + 12;

/// Whether the domains of e-mail addresses are rewritten.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EmailPolicy {
    /// `help@example.com` stays in both directions: an address is data (the mirror domain
    /// rarely receives mail), and it must come back to the origin as it was.
    #[default]
    Keep,
    /// E-mail addresses are rewritten like any other name.
    Rewrite,
}

/// The replacement of one name.
#[derive(Debug, Clone)]
struct Rule {
    /// Lowercase name, as searched.
    origin: Box<[u8]>,
    /// Lowercase replacement.
    mirror: Box<[u8]>,
    subdomains: bool,
}

/// The compiled rewriter of one direction. Immutable and cheap to share.
#[derive(Debug, Clone)]
pub struct Rewriter {
    finder: Finder,
    rules: Vec<Rule>,
    longest: usize,
    emails: EmailPolicy,
}

/// Finds the leftmost candidate (the longest domain at the leftmost position), before any
/// boundary check.
#[derive(Debug, Clone)]
enum Finder {
    /// Every origin domain has a dot, and a match's first dot is the domain's first dot: scan
    /// for dots (SIMD memchr; a dot has no case) and compare the domains anchored there.
    Dots {
        /// Rule indexes by decreasing first-dot offset, then decreasing length: at one dot,
        /// the leftmost start comes first, and the longest domain among equal starts.
        order: Vec<usize>,
        /// Offset of each rule's first dot.
        dot: Vec<usize>,
    },
    /// A single-label origin (`localhost`): one automaton over all of them.
    Automaton(AhoCorasick),
}

impl Finder {
    fn new(rules: &[Rule]) -> Result<Finder, aho_corasick::BuildError> {
        let dots: Option<Vec<usize>> = rules
            .iter()
            .map(|r| r.origin.iter().position(|&b| b == b'.'))
            .collect();
        if let Some(dot) = dots {
            let mut order: Vec<usize> = (0..rules.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse((dot[i], rules[i].origin.len())));
            return Ok(Finder::Dots { order, dot });
        }
        let automaton = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(AhoCorasickKind::DFA))
            .build(rules.iter().map(|r| &r.origin))?;
        Ok(Finder::Automaton(automaton))
    }

    /// The leftmost candidate starting at or after `from`: `(start, end, rule)`.
    fn find(&self, rules: &[Rule], input: &[u8], from: usize) -> Option<(usize, usize, usize)> {
        match self {
            Finder::Automaton(ac) => ac
                .find(Input::new(input).range(from..input.len()))
                .map(|m| (m.start(), m.end(), m.pattern().as_usize())),
            Finder::Dots { order, dot } => {
                // A candidate starting at or after `from` has its first dot there too.
                let mut at = from;
                while let Some(i) = memchr::memchr(b'.', input.get(at..)?) {
                    let p = at + i;
                    for &r in order {
                        let origin = &rules[r].origin;
                        let Some(start) = p.checked_sub(dot[r]) else {
                            continue;
                        };
                        let end = start + origin.len();
                        if start >= from
                            && end <= input.len()
                            && input[start..end].eq_ignore_ascii_case(origin)
                        {
                            return Some((start, end, r));
                        }
                    }
                    at = p + 1;
                }
                None
            }
        }
    }
}

/// What [`Rewriter::rewrite_chunk`] did with its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes decided; `input[consumed..]` must be presented again with what follows.
    pub consumed: usize,
    /// Domains replaced. When zero, nothing was written and the output is `input[..consumed]`.
    pub matches: usize,
}

/// The raw bytes just before a chunk, for the boundary check across chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    bytes: [u8; CONTEXT],
    len: u8,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            bytes: [0; CONTEXT],
            len: 0,
        }
    }
}

impl Context {
    /// The context after `input` has been consumed behind `self`.
    pub fn advance(self, input: &[u8]) -> Context {
        let mut joined = [0u8; 2 * CONTEXT];
        let old = self.as_slice();
        let take = input.len().min(CONTEXT);
        let keep = (CONTEXT - take).min(old.len());
        joined[..keep].copy_from_slice(&old[old.len() - keep..]);
        joined[keep..keep + take].copy_from_slice(&input[input.len() - take..]);
        let mut bytes = [0u8; CONTEXT];
        bytes[..keep + take].copy_from_slice(&joined[..keep + take]);
        Context {
            bytes,
            len: (keep + take) as u8,
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Whether a match may end at `end`.
enum After {
    Accept,
    Reject,
    /// The bytes that decide it have not arrived yet.
    Undecided,
}

impl Rewriter {
    /// Compiles the origin -> mirror rewriter for these pairs (validated by
    /// [`crate::config`]), keeping e-mail addresses.
    pub fn new(pairs: &[DomainPair]) -> Result<Rewriter, aho_corasick::BuildError> {
        Self::build(pairs, Direction::OriginToMirror, EmailPolicy::Keep)
    }

    /// Compiles the rewriter of one direction: origin names become mirror names
    /// ([`Direction::OriginToMirror`], responses) or the reverse (requests).
    pub fn build(
        pairs: &[DomainPair],
        direction: Direction,
        emails: EmailPolicy,
    ) -> Result<Rewriter, aho_corasick::BuildError> {
        let rules: Vec<Rule> = pairs
            .iter()
            .map(|p| {
                let (from, to) = match direction {
                    Direction::OriginToMirror => (&p.origin, &p.mirror),
                    Direction::MirrorToOrigin => (&p.mirror, &p.origin),
                };
                Rule {
                    origin: from.to_ascii_lowercase().into_bytes().into(),
                    mirror: to.to_ascii_lowercase().into_bytes().into(),
                    subdomains: p.subdomains,
                }
            })
            .collect();
        let finder = Finder::new(&rules)?;
        let longest = rules.iter().map(|r| r.origin.len()).max().unwrap_or(0);
        Ok(Rewriter {
            finder,
            rules,
            longest,
            emails,
        })
    }

    /// The most bytes a chunk may leave unconsumed.
    pub fn max_hold(&self) -> usize {
        self.longest + 1
    }

    /// Rewrites a complete value, e.g. a header. `None` when nothing changed.
    pub fn rewrite_value(&self, value: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let p = self.rewrite_chunk(Context::default(), value, true, &mut out);
        (p.matches > 0).then_some(out)
    }

    /// Rewrites `input`, the bytes of a stream that follow `context`.
    ///
    /// When `last` is false, a tail of `input` that could still turn into a match (or whose
    /// match cannot yet be accepted or refused) is left unconsumed. When the returned
    /// `matches` is zero nothing was written to `out`; otherwise `out` received the output for
    /// `input[..consumed]`.
    pub fn rewrite_chunk(
        &self,
        context: Context,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Progress {
        let mut search_from = 0;
        let mut copied = 0;
        let mut matches = 0;
        let mut consumed = input.len();
        while let Some((start, end, rule)) = self.finder.find(&self.rules, input, search_from) {
            let rule = &self.rules[rule];
            let accepted = self.starts_on_boundary(context, input, start, rule.subdomains)
                && match after(input, end, last) {
                    After::Accept => true,
                    After::Reject => false,
                    After::Undecided => {
                        consumed = start;
                        break;
                    }
                };
            if !accepted {
                // A longer or shorter domain may still start further on.
                search_from = start + 1;
                continue;
            }
            if matches == 0 {
                out.reserve(input.len() + 64);
            }
            out.extend_from_slice(&input[copied..start]);
            push_shaped(out, &input[start..end], &rule.mirror);
            copied = end;
            search_from = end;
            matches += 1;
        }
        if !last && consumed == input.len() {
            consumed = self.partial_start(context, input, copied);
        }
        if matches > 0 {
            out.extend_from_slice(&input[copied..consumed]);
        }
        Progress { consumed, matches }
    }

    /// The start of the longest tail of `input` (not before `floor`) that is a proper prefix
    /// of some origin domain in a position where that domain would be accepted.
    fn partial_start(&self, context: Context, input: &[u8], floor: usize) -> usize {
        let lowest = input.len().saturating_sub(self.longest.saturating_sub(1));
        for start in lowest.max(floor)..input.len() {
            let tail = &input[start..];
            let could_match = self.rules.iter().any(|r| {
                r.origin.len() > tail.len()
                    && r.origin[..tail.len()].eq_ignore_ascii_case(tail)
                    && self.starts_on_boundary(context, input, start, r.subdomains)
            });
            if could_match {
                return start;
            }
        }
        input.len()
    }

    /// The byte before `start` (from `input`, else from `context`) allows a match there, and
    /// (with [`EmailPolicy::Keep`]) the match is not an e-mail address's domain.
    fn starts_on_boundary(
        &self,
        context: Context,
        input: &[u8],
        start: usize,
        subdomains: bool,
    ) -> bool {
        let before = Before {
            context,
            input,
            start,
        };
        let byte = before.at(1);
        let on_boundary = match byte {
            None => true,
            Some(b'.') => subdomains,
            Some(b) if is_label_byte(b) => {
                before.escape(1, b"%2F") || before.escape(1, b"%3A") || before.escape(1, b"%40")
            }
            Some(_) => true,
        };
        on_boundary && !(self.emails == EmailPolicy::Keep && before.is_email_domain())
    }
}

/// The bytes before a position: from `input`, else from the context before it.
struct Before<'a> {
    context: Context,
    input: &'a [u8],
    start: usize,
}

impl Before<'_> {
    /// The byte `back` bytes before the position (1 = the one right before).
    fn at(&self, back: usize) -> Option<u8> {
        if back <= self.start {
            Some(self.input[self.start - back])
        } else {
            let ctx = self.context.as_slice();
            let over = back - self.start;
            (over <= ctx.len()).then(|| ctx[ctx.len() - over])
        }
    }

    /// Whether the bytes ending `back - 1` bytes before the position are `pattern` (ASCII
    /// case-insensitive): `escape(1, b"%2F")` is a `%2F` right before it.
    fn escape(&self, back: usize, pattern: &[u8]) -> bool {
        pattern
            .iter()
            .rev()
            .enumerate()
            .all(|(i, p)| self.at(back + i).is_some_and(|b| b.eq_ignore_ascii_case(p)))
    }

    /// The name at the position is an e-mail address's domain: `@` or `%40` before it, a
    /// local-part character before that, and no `//` (or `%2F%2F`) right before the run of
    /// user-info characters that ends there (that would make it a URL's user-info).
    fn is_email_domain(&self) -> bool {
        let at_len = if self.at(1) == Some(b'@') {
            1
        } else if self.escape(1, b"%40") {
            3
        } else {
            return false;
        };
        if !self.at(at_len + 1).is_some_and(is_local_byte) {
            return false;
        }
        let mut back = at_len + 1;
        while back <= at_len + MAX_LOCAL {
            if self.escape(back, b"//") || self.escape(back, b"%2F%2F") {
                return false;
            }
            // An encoded `/`, `?` or `#` ends an encoded URL's authority: what follows it is
            // a path or a query, and the `@` there an address's (`next=https%3A%2F%2Fa.org%2F&
            // email=me%40example.com` in a form).
            if self.escape(back, b"%2F") || self.escape(back, b"%3F") || self.escape(back, b"%23") {
                return true;
            }
            match self.at(back) {
                Some(b) if is_userinfo_byte(b) => back += 1,
                _ => return true,
            }
        }
        true
    }
}

/// A byte of an unquoted e-mail local part (RFC 5322 `atext` and `.`).
fn is_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b)
}

/// A byte of a URL's user-info (RFC 3986: unreserved, percent-escapes, sub-delims, `:`), but
/// not `&`: it separates the fields of forms and queries, and no real user-info has one.
fn is_userinfo_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$'()*+,;=:".contains(&b)
}

/// Appends `replacement` (lowercase) in the case shape of `matched`: lowercase, UPPERCASE or
/// Capitalised; any other shape gives lowercase.
fn push_shaped(out: &mut Vec<u8>, matched: &[u8], replacement: &[u8]) {
    let upper = matched.iter().filter(|b| b.is_ascii_uppercase()).count();
    let lower = matched.iter().filter(|b| b.is_ascii_lowercase()).count();
    let start = out.len();
    out.extend_from_slice(replacement);
    if upper == 0 {
        return;
    }
    if lower == 0 {
        out[start..].make_ascii_uppercase();
    } else if upper == 1 && matched[0].is_ascii_uppercase() {
        if let Some(first) = out.get_mut(start) {
            first.make_ascii_uppercase();
        }
    }
}

fn after(input: &[u8], end: usize, last: bool) -> After {
    let undecided = if last {
        After::Accept
    } else {
        After::Undecided
    };
    match input.get(end) {
        None => undecided,
        Some(&b) if is_word_byte(b) => After::Reject,
        Some(b'.') => match input.get(end + 1) {
            None => undecided,
            Some(&b) if is_label_byte(b) => After::Reject,
            Some(_) => After::Accept,
        },
        Some(_) => After::Accept,
    }
}

#[cfg(test)]
mod tests;
