//! The response-body pipeline of one rewritten response: for HTML, same-site `integrity`
//! attributes are dropped first ([`crate::integrity`]), then origin domains become mirror
//! domains ([`crate::rewrite`]).
//!
//! [`BodyRewriter::step`] takes what the host has (undecided bytes of the previous chunk in
//! front of the new one) and says how much of it is decided, and what that part becomes. The
//! undecided rest is always an unmodified copy of the input's end: either a tag the stripper
//! holds, or a possible domain name the rewriter holds. `integrity` attributes are removed
//! only inside complete tags, which end in `>`, a byte no domain name contains, so the
//! rewriter's undecided tail never covers a removal.

use crate::config::{Config, IntegrityPolicy};
use crate::domain::HostMap;
use crate::integrity::IntegrityStripper;
use crate::rewrite::{Context, Rewriter};

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
    pub fn new(config: &Config) -> Result<BodyRewriter, aho_corasick::BuildError> {
        Ok(BodyRewriter {
            rewriter: Rewriter::new(&config.domains)?,
            hosts: HostMap::new(&config.domains),
            stripper: (config.integrity == IntegrityPolicy::DropSameSite)
                .then(IntegrityStripper::new),
        })
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

/// A streaming driver of [`BodyRewriter`] that keeps the undecided tail itself, as the plugin
/// does with Envoy's help. For tests, benchmarks and fuzzing.
#[derive(Debug)]
pub struct StreamBody<'r> {
    pipeline: &'r BodyRewriter,
    html: bool,
    carry: Vec<u8>,
    context: Context,
    /// Domains replaced so far.
    pub matches: u64,
    /// `integrity` attributes dropped so far.
    pub integrity_removed: u64,
}

impl<'r> StreamBody<'r> {
    pub fn new(pipeline: &'r BodyRewriter, html: bool) -> StreamBody<'r> {
        StreamBody {
            pipeline,
            html,
            carry: Vec::new(),
            context: Context::default(),
            matches: 0,
            integrity_removed: 0,
        }
    }

    /// Feeds a chunk; appends to `out` all output decided so far.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.carry.is_empty() {
            self.run(chunk, false, out);
        } else {
            let mut input = std::mem::take(&mut self.carry);
            input.extend_from_slice(chunk);
            self.run(&input, false, out);
        }
    }

    /// Ends the stream; appends the rest of the output.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let rest = std::mem::take(&mut self.carry);
        self.run(&rest, true, out);
    }

    /// Bytes held back, waiting for the next chunk.
    pub fn held(&self) -> usize {
        self.carry.len()
    }

    fn run(&mut self, input: &[u8], last: bool, out: &mut Vec<u8>) {
        let step = self
            .pipeline
            .step(self.context, input, last, self.html, out);
        if !step.changed {
            out.extend_from_slice(&input[..step.consumed]);
        }
        self.matches += step.matches as u64;
        self.integrity_removed += step.integrity_removed as u64;
        self.context = self.context.advance(&input[..step.consumed]);
        self.carry.clear();
        self.carry.extend_from_slice(&input[step.consumed..]);
    }
}
