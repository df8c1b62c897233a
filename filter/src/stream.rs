//! The streaming driver of one rewritten body: what to do with each chunk Envoy hands over, as
//! a pure state machine that the proxy-wasm glue only executes (get the chunk, ask for a
//! [`Plan`], carry it out).
//!
//! # Guarantees
//!
//! * **Whole-body equivalence.** However the body is cut into chunks, the bytes released are
//!   exactly those of decoding the whole body at once and rewriting it in one pass
//!   ([`BodyRewriter`] with `last` set). The unit tests check every split of every case, the
//!   fuzz target `stream` random bodies, codings, chunkings and endings.
//! * **Envoy never holds anything for Ferry.** A [`Plan`] can keep a chunk, replace it, or fail
//!   the stream; there is no "pause". Bytes that cannot be decided yet (the end of a chunk that
//!   could still become a domain name, or an incomplete `<script`/`<link` tag) are cut off the
//!   chunk and carried here, in front of the next one, so no Envoy buffer limit (an HTTP/2
//!   stream window of 64 KiB, a listener's or a cluster's buffer limit) can ever be reached
//!   because of the filter, whatever the size of the chunks. What is carried is at most
//!   [`BodyRewriter::max_held`] bytes.
//! * **Nothing silently shortened or wrong.** When the body cannot be delivered faithfully the
//!   plan is [`Plan::Fail`]: the glue resets the stream, so the client sees an error, never a
//!   clean but shorter (or corrupt) body. That happens for a body that ends with trailers while
//!   bytes are carried (a proxy-wasm filter can no longer add body bytes once trailers flow),
//!   and for an encoded body that is corrupt, truncated or over the decoding limits
//!   ([`crate::decode`]). Everything released before the failure is correct output.
//! * **Memory** per stream between callbacks: the carried bytes, a decoder's state (see
//!   [`crate::decode`]) and scratch buffers of at most [`SCRATCH_KEEP`] bytes each once the
//!   glue has called [`BodyStream::shrink`]. While a callback runs, one chunk's input and output
//!   (for an encoded body, up to what the decoding ratio allows for that chunk).

use crate::body::BodyRewriter;
use crate::decode::{DecodeError, Decoder};
use crate::multipart::{Multipart, MultipartState};
use crate::rewrite::Context;

/// The most capacity a scratch buffer keeps between callbacks ([`BodyStream::shrink`]): the
/// buffers are reused chunk after chunk, but one large decoded chunk must not stay allocated
/// while the stream waits for a slow visitor (a wasm VM's memory never shrinks, and every open
/// response would keep its largest chunk).
pub const SCRATCH_KEEP: usize = 128 * 1024;

/// What kind of body a stream carries, which decides its pipeline.
#[derive(Debug, Clone)]
pub enum BodyKind {
    /// Text: the domain rewriter.
    Text,
    /// An HTML document: same-site `integrity` attributes dropped (when configured), then the
    /// domain rewriter.
    Html,
    /// A `multipart/form-data` request: the rewriter on text parts only.
    Multipart(Multipart),
}

impl BodyKind {
    /// [`BodyKind::Html`] for an HTML document, else [`BodyKind::Text`].
    pub fn text(html: bool) -> BodyKind {
        if html {
            BodyKind::Html
        } else {
            BodyKind::Text
        }
    }
}

/// What to do with the chunk Envoy handed over.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan<'a> {
    /// Let the chunk go on unchanged.
    Keep,
    /// Replace the whole chunk with these bytes (possibly none), then let it go on.
    Replace(&'a [u8]),
    /// The body cannot be delivered faithfully: drop the chunk and reset the stream.
    Fail(Failure),
}

/// Why a body could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error(
        "the body ended with trailers while its last {held} bytes were undecided (a filter \
         cannot add body bytes once trailers flow)"
    )]
    TrailersAfterUndecided { held: usize },
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// What one body went through, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyStats {
    /// Bytes that entered the rewriter (decoded bytes, for an encoded body).
    pub bytes_in: u64,
    /// Bytes released.
    pub bytes_out: u64,
    /// Domain names replaced.
    pub matches: u64,
    /// `integrity` attributes dropped.
    pub integrity_removed: u64,
    /// Encoded bytes read, for an encoded body.
    pub encoded_in: u64,
}

/// The state of one rewritten body between two callbacks.
#[derive(Debug)]
pub struct BodyStream {
    kind: BodyKind,
    multipart: MultipartState,
    decoder: Option<Decoder>,
    /// The raw bytes before the first undecided byte (for the boundary check).
    context: Context,
    /// Undecided bytes cut off the previous chunk, unmodified.
    carry: Vec<u8>,
    /// Scratch: the carried bytes and the (decoded) chunk, joined.
    input: Vec<u8>,
    /// Scratch: the rewritten output of one step.
    out: Vec<u8>,
    ended: bool,
    failed: Option<Failure>,
    stats: BodyStats,
}

impl BodyStream {
    /// A body of this kind, encoded (then `decoder` decodes it first) or not.
    pub fn new(kind: BodyKind, decoder: Option<Decoder>) -> BodyStream {
        BodyStream {
            kind,
            multipart: MultipartState::default(),
            decoder,
            context: Context::default(),
            carry: Vec::new(),
            input: Vec::new(),
            out: Vec::new(),
            ended: false,
            failed: None,
            stats: BodyStats::default(),
        }
    }

    /// Bytes carried to the next chunk.
    pub fn held(&self) -> usize {
        self.carry.len()
    }

    /// The most bytes this stream carries from one chunk to the next.
    pub fn max_held(&self, pipeline: &BodyRewriter) -> usize {
        match &self.kind {
            BodyKind::Multipart(m) => m.max_held(&pipeline.rewriter),
            _ => pipeline.max_held(),
        }
    }

    pub fn stats(&self) -> BodyStats {
        self.stats
    }

    /// Frees what a large chunk left in the scratch buffers: the glue calls it once it has
    /// carried out a plan (the plan borrows them until then). Buffers up to [`SCRATCH_KEEP`]
    /// stay for the next chunk; everything goes once the body has ended or failed.
    pub fn shrink(&mut self) {
        let keep = if self.ended || self.failed.is_some() {
            0
        } else {
            SCRATCH_KEEP
        };
        for buffer in [&mut self.input, &mut self.out] {
            buffer.clear();
            buffer.shrink_to(keep);
        }
        if self.carry.capacity() > keep.max(self.carry.len()) {
            self.carry.shrink_to(keep.max(self.carry.len()));
        }
    }

    /// Bytes this stream keeps allocated for its own buffers (not its decoder's).
    pub fn retained(&self) -> usize {
        self.carry.capacity() + self.input.capacity() + self.out.capacity()
    }

    /// The plan for the next chunk; `end_of_stream` when no chunk or trailers follow.
    pub fn on_chunk<'a>(
        &'a mut self,
        pipeline: &BodyRewriter,
        chunk: &'a [u8],
        end_of_stream: bool,
    ) -> Plan<'a> {
        if let Some(failure) = &self.failed {
            return Plan::Fail(failure.clone());
        }
        if self.ended {
            // Nothing may follow the end; an empty chunk can, harmlessly.
            return Plan::Replace(&[]);
        }
        let BodyStream {
            kind,
            multipart,
            decoder,
            context,
            carry,
            input: scratch,
            out,
            ended,
            failed,
            stats,
        } = self;
        scratch.clear();
        let input: &[u8] = match decoder {
            Some(decoder) => {
                scratch.extend_from_slice(carry);
                let decoded = decoder.push(chunk, scratch).and_then(|()| {
                    if end_of_stream {
                        decoder.finish(scratch)
                    } else {
                        Ok(())
                    }
                });
                stats.encoded_in += chunk.len() as u64;
                if let Err(e) = decoded {
                    let failure = Failure::from(e);
                    *failed = Some(failure.clone());
                    return Plan::Fail(failure);
                }
                scratch
            }
            None if carry.is_empty() => chunk,
            None => {
                scratch.extend_from_slice(carry);
                scratch.extend_from_slice(chunk);
                scratch
            }
        };
        out.clear();
        let step = match kind {
            BodyKind::Text => pipeline.step(*context, input, end_of_stream, false, out),
            BodyKind::Html => pipeline.step(*context, input, end_of_stream, true, out),
            BodyKind::Multipart(m) => {
                m.step(&pipeline.rewriter, multipart, input, end_of_stream, out)
            }
        };
        let (decided, tail) = input.split_at(step.consumed);
        let released: &[u8] = if step.changed { out } else { decided };
        stats.bytes_in += decided.len() as u64;
        stats.bytes_out += released.len() as u64;
        stats.matches += step.matches as u64;
        stats.integrity_removed += step.integrity_removed as u64;
        *context = context.advance(decided);
        let unchanged = decoder.is_none() && carry.is_empty() && tail.is_empty() && !step.changed;
        carry.clear();
        carry.extend_from_slice(tail);
        *ended = end_of_stream;
        if unchanged {
            Plan::Keep
        } else {
            Plan::Replace(released)
        }
    }

    /// The body ended with trailers (no chunk saw `end_of_stream`): fine when nothing is
    /// carried and an encoded body is complete.
    pub fn on_trailers(&mut self) -> Result<(), Failure> {
        if let Some(failure) = &self.failed {
            return Err(failure.clone());
        }
        let mut rest = Vec::new();
        let result = match &mut self.decoder {
            Some(decoder) if !self.ended => decoder.finish(&mut rest).map_err(Failure::from),
            _ => Ok(()),
        };
        let held = self.carry.len() + rest.len();
        let result = result.and(match held {
            0 => Ok(()),
            held => Err(Failure::TrailersAfterUndecided { held }),
        });
        self.ended = true;
        if let Err(failure) = &result {
            self.failed = Some(failure.clone());
        }
        result
    }
}

#[cfg(test)]
mod tests;
