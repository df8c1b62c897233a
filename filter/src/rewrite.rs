//! The rewrite engine: finds origin domains in bytes and replaces them with their mirrors.
//!
//! One [`Rewriter`] is built per configuration and shared by every request. It searches all
//! origin domains at once (ASCII case-insensitive, leftmost-longest) and accepts a match only
//! on label boundaries:
//!
//! * before it: not `[A-Za-z0-9-]` (so `myexample.com` stays), and not `.` unless the pair has
//!   `subdomains` (then `www.example.com` becomes `www.example.cn`); a percent-escaped `/`, `:`
//!   or `@` (`%2F`, `%2f`, `%3A`, `%3a`, `%40`) right before it counts as a boundary, so
//!   `https%3A%2F%2Fexample.com` is rewritten;
//! * after it: not `[A-Za-z0-9_-]`, and not `.` followed by a label byte (so `example.community`,
//!   `example.com-shop.org` and `example.com.au` stay, while `example.com.` ending a sentence
//!   is rewritten).
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

use crate::config::DomainPair;
use crate::domain::{is_label_byte, is_word_byte};

/// Bytes of context before a chunk that the boundary check needs (`%2F`).
pub const CONTEXT: usize = 3;

/// The replacement of one origin domain.
#[derive(Debug, Clone)]
struct Rule {
    /// Lowercase origin domain, as searched.
    origin: Box<[u8]>,
    mirror: Box<[u8]>,
    subdomains: bool,
}

/// The compiled origin -> mirror rewriter. Immutable and cheap to share.
#[derive(Debug, Clone)]
pub struct Rewriter {
    finder: Finder,
    rules: Vec<Rule>,
    longest: usize,
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    bytes: [u8; CONTEXT],
    len: u8,
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
    /// Compiles the rewriter for these pairs (validated by [`crate::config`]).
    pub fn new(pairs: &[DomainPair]) -> Result<Rewriter, aho_corasick::BuildError> {
        let rules: Vec<Rule> = pairs
            .iter()
            .map(|p| Rule {
                origin: p.origin.to_ascii_lowercase().into_bytes().into(),
                mirror: p.mirror.as_bytes().into(),
                subdomains: p.subdomains,
            })
            .collect();
        let finder = Finder::new(&rules)?;
        let longest = rules.iter().map(|r| r.origin.len()).max().unwrap_or(0);
        Ok(Rewriter {
            finder,
            rules,
            longest,
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
            out.extend_from_slice(&rule.mirror);
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

    /// The byte before `start` (from `input`, else from `context`) allows a match there.
    fn starts_on_boundary(
        &self,
        context: Context,
        input: &[u8],
        start: usize,
        subdomains: bool,
    ) -> bool {
        let byte_before = |back: usize| -> Option<u8> {
            if back <= start {
                Some(input[start - back])
            } else {
                let ctx = context.as_slice();
                let over = back - start;
                (over <= ctx.len()).then(|| ctx[ctx.len() - over])
            }
        };
        match byte_before(1) {
            None => true,
            Some(b'.') => subdomains,
            Some(b) if is_label_byte(b) => {
                // A percent-escaped separator ends in a hex digit: %2F, %3A, %40.
                let escape = [byte_before(3), byte_before(2), Some(b)];
                matches!(
                    escape,
                    [Some(b'%'), Some(b'2'), Some(b'F' | b'f')]
                        | [Some(b'%'), Some(b'3'), Some(b'A' | b'a')]
                        | [Some(b'%'), Some(b'4'), Some(b'0')]
                )
            }
            Some(_) => true,
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
