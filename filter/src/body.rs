//! The response-body pipeline of one rewritten response: for HTML, same-site `integrity`
//! attributes are dropped first ([`crate::integrity`]), then origin domains become mirror
//! domains ([`crate::rewrite`]).
//!
//! [`BodyRewriter::step`] takes the undecided bytes of the previous chunk in front of the new
//! one and says how much of it is decided, and what that part becomes. The undecided rest is
//! always an unmodified copy of the input's end: either a tag the stripper holds, or a possible
//! domain name the rewriter holds, at most [`BodyRewriter::max_held`] bytes. `integrity`
//! attributes are removed only inside complete tags, which end in `>`, a byte no domain name
//! contains, so the rewriter's undecided tail never covers a removal. The streaming itself
//! (carrying that rest from chunk to chunk) is [`crate::stream`]'s.

use crate::config::{Config, IntegrityPolicy};
use crate::domain::{Direction, DomainPair, HostMap};
use crate::integrity::{IntegrityStripper, MAX_TAG};
use crate::rewrite::{Context, EmailPolicy, Rewriter};

/// What [`BodyRewriter::step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    /// Input bytes decided; `input[consumed..]` must be presented again with what follows.
    pub consumed: usize,
    /// Whether the output differs from `input[..consumed]` (then it is in `out`).
    pub changed: bool,
    /// Domains replaced.
    pub matches: usize,
    /// `integrity` attributes removed.
    pub integrity_removed: usize,
}

/// The compiled pipeline, shared by every response.
#[derive(Debug, Clone)]
pub struct BodyRewriter {
    pub rewriter: Rewriter,
    hosts: HostMap,
    stripper: Option<IntegrityStripper>,
}

impl BodyRewriter {
    /// The response pipeline (origin -> mirror, e-mail addresses kept) for these pairs.
    pub fn new(
        domains: &[DomainPair],
        integrity: IntegrityPolicy,
    ) -> Result<BodyRewriter, aho_corasick::BuildError> {
        Self::build(
            domains,
            Direction::OriginToMirror,
            integrity,
            EmailPolicy::Keep,
        )
    }

    /// The response pipeline of a configuration: origin -> mirror, `integrity` as configured.
    pub fn for_responses(config: &Config) -> Result<BodyRewriter, aho_corasick::BuildError> {
        Self::build(
            &config.domains,
            Direction::OriginToMirror,
            config.integrity,
            config.emails,
        )
    }

    /// The request pipeline of a configuration: mirror -> origin, so that what a page showed
    /// comes back to the origin as the origin wrote it; no `integrity` stage.
    pub fn for_requests(config: &Config) -> Result<BodyRewriter, aho_corasick::BuildError> {
        Self::build(
            &config.domains,
            Direction::MirrorToOrigin,
            IntegrityPolicy::Keep,
            config.emails,
        )
    }

    fn build(
        domains: &[DomainPair],
        direction: Direction,
        integrity: IntegrityPolicy,
        emails: EmailPolicy,
    ) -> Result<BodyRewriter, aho_corasick::BuildError> {
        Ok(BodyRewriter {
            rewriter: Rewriter::build(domains, direction, emails)?,
            hosts: HostMap::new(domains),
            stripper: (integrity == IntegrityPolicy::DropSameSite).then(IntegrityStripper::new),
        })
    }

    /// The most bytes a step leaves undecided: an incomplete tag the stripper holds, and a
    /// possible domain name the rewriter holds just before it.
    pub fn max_held(&self) -> usize {
        MAX_TAG + self.rewriter.max_hold()
    }

    /// Processes `input` (`html`: the response is `text/html`). When the returned step is
    /// `changed`, `out` received the output for `input[..consumed]`; otherwise that output is
    /// `input[..consumed]` itself and `out` is untouched.
    pub fn step(
        &self,
        context: Context,
        input: &[u8],
        last: bool,
        html: bool,
        out: &mut Vec<u8>,
    ) -> Step {
        let mut stripped = Vec::new();
        let stage = match self.stripper.as_ref().filter(|_| html) {
            Some(stripper) => stripper.strip(input, last, &self.hosts, &mut stripped),
            None => None,
        };
        let Some(stage) = stage else {
            let p = self.rewriter.rewrite_chunk(context, input, last, out);
            return Step {
                consumed: p.consumed,
                changed: p.matches > 0,
                matches: p.matches,
                integrity_removed: 0,
            };
        };
        // Only the stripper's whole output may be final, and only if nothing is held.
        let final_input = last && stage.consumed == input.len();
        let p = self
            .rewriter
            .rewrite_chunk(context, &stripped, final_input, out);
        let undecided = stripped.len() - p.consumed;
        if p.matches == 0 {
            out.extend_from_slice(&stripped[..p.consumed]);
        }
        Step {
            consumed: stage.consumed - undecided,
            changed: true,
            matches: p.matches,
            integrity_removed: stage.removed,
        }
    }
}
