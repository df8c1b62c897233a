//! `multipart/form-data` request bodies: the text parts go through the rewriter, the file parts
//! pass byte for byte, whatever they contain.
//!
//! A part is text when its `Content-Disposition` has no `filename` and its `Content-Type` is
//! absent or textual (`text/*`, JSON, XML, a form); anything else is a file (an upload of any
//! kind). Delimiters, part headers, the preamble and the epilogue are copied as they are.
//!
//! The parser streams: [`Multipart::step`] takes the undecided end of the previous chunk in
//! front of the next one, like the other body stages, and decides everything but a tail that
//! could still be the start of a delimiter, an incomplete part header block, or the rewriter's
//! own undecided tail; that tail is always an unmodified copy of the input's end. So a body cut
//! anywhere gives the same output as the whole body (the unit tests split at every offset, the
//! fuzz target `request_split` on random bodies). What it holds is bounded by
//! [`Multipart::max_held`]; a part header block longer than [`MAX_HEADERS`] makes the rest of
//! the body pass untouched (a body no browser sends; passing it can only leave a mirror name
//! in it, never corrupt it).

use memchr::memmem;

use crate::body::Step;
use crate::rewrite::{Context, Rewriter};

/// The longest part header block looked at.
pub const MAX_HEADERS: usize = 16 * 1024;

/// The parser of one body's boundary (RFC 2046: 1 to 70 characters).
#[derive(Debug, Clone)]
pub struct Multipart {
    /// `\r\n--boundary`: what ends a part.
    delimiter: Vec<u8>,
}

/// Where a multipart body stands between two chunks.
#[derive(Debug, Clone)]
pub struct MultipartState {
    phase: Phase,
    /// The raw bytes before the first undecided byte of a text part (for the rewriter).
    context: Context,
    /// At the very start of the body, where the first delimiter needs no CRLF before it.
    at_start: bool,
}

impl Default for MultipartState {
    fn default() -> Self {
        MultipartState {
            phase: Phase::Preamble,
            context: Context::default(),
            at_start: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the first delimiter.
    Preamble,
    /// Right after a delimiter: `--` (the end), or padding and a line break (a part).
    AfterDelimiter,
    /// A part's header block, from the line break that ends the delimiter line.
    Headers,
    /// A part's content.
    Body { text: bool },
    /// After the closing delimiter, or after giving up on a malformed body: copied as it is.
    Epilogue,
}

impl Multipart {
    /// The parser for a `Content-Type` of `multipart/form-data; boundary=...`; `None` when it
    /// has no valid boundary.
    pub fn from_content_type(content_type: &[u8]) -> Option<Multipart> {
        let boundary = boundary(content_type)?;
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(&boundary);
        Some(Multipart { delimiter })
    }

    /// The most bytes a step leaves undecided.
    pub fn max_held(&self, rewriter: &Rewriter) -> usize {
        MAX_HEADERS + self.delimiter.len() + rewriter.max_hold() + 4
    }

    /// Processes `input` (the undecided end of the previous chunk, then the next one). The
    /// output for `input[..consumed]` is appended to `out` (always: the step reports
    /// `changed`).
    pub fn step(
        &self,
        rewriter: &Rewriter,
        state: &mut MultipartState,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Step {
        let mut pos = 0;
        let mut matches = 0;
        let dash_boundary = &self.delimiter[2..];
        loop {
            let rest = &input[pos..];
            match state.phase {
                Phase::Epilogue => {
                    out.extend_from_slice(rest);
                    pos = input.len();
                    break;
                }
                Phase::Preamble => {
                    // The first delimiter: at the very start without a line break, or after one.
                    let found = if state.at_start && rest.starts_with(dash_boundary) {
                        Some((0, dash_boundary.len()))
                    } else {
                        memmem::find(rest, &self.delimiter).map(|at| (at, self.delimiter.len()))
                    };
                    match found {
                        Some((at, len)) => {
                            out.extend_from_slice(&rest[..at + len]);
                            pos += at + len;
                            state.phase = Phase::AfterDelimiter;
                        }
                        None => {
                            let keep = if last {
                                0
                            } else if state.at_start && dash_boundary.starts_with(rest) {
                                rest.len()
                            } else {
                                prefix_suffix(rest, &self.delimiter)
                            };
                            out.extend_from_slice(&rest[..rest.len() - keep]);
                            pos += rest.len() - keep;
                            if keep < rest.len() {
                                state.at_start = false;
                            }
                            break;
                        }
                    }
                    state.at_start = false;
                }
                Phase::AfterDelimiter => {
                    if rest.starts_with(b"--") {
                        state.phase = Phase::Epilogue;
                        continue;
                    }
                    // Transport padding, then the line break (kept for the header search).
                    let padding = rest
                        .iter()
                        .position(|&b| b != b' ' && b != b'\t')
                        .unwrap_or(rest.len());
                    let undecided = rest.len() < 2 || padding + 2 > rest.len();
                    if undecided && !last {
                        break;
                    }
                    if rest[padding..].starts_with(b"\r\n") {
                        out.extend_from_slice(&rest[..padding]);
                        pos += padding;
                        state.phase = Phase::Headers;
                    } else {
                        // Not a delimiter line after all: a malformed body passes as it is.
                        state.phase = Phase::Epilogue;
                    }
                }
                // A header block longer than MAX_HEADERS gives up on the body whether it ends
                // in this chunk or not, so that the result does not depend on the chunking.
                Phase::Headers => match memmem::find(rest, b"\r\n\r\n") {
                    Some(end) if end > MAX_HEADERS => state.phase = Phase::Epilogue,
                    Some(end) => {
                        let text = is_text_part(&rest[2..end.max(2)]);
                        out.extend_from_slice(&rest[..end + 4]);
                        pos += end + 4;
                        state.phase = Phase::Body { text };
                        state.context = Context::default();
                    }
                    None if rest.len() >= MAX_HEADERS + 4 || last => state.phase = Phase::Epilogue,
                    None => break,
                },
                Phase::Body { text } => {
                    let (end, next) = match memmem::find(rest, &self.delimiter) {
                        Some(at) => (at, Some(at + self.delimiter.len())),
                        None if last => (rest.len(), None),
                        None => (rest.len() - prefix_suffix(rest, &self.delimiter), None),
                    };
                    let content = &rest[..end];
                    let used = if text {
                        let part_ends = next.is_some() || last;
                        let before = out.len();
                        let progress =
                            rewriter.rewrite_chunk(state.context, content, part_ends, out);
                        if progress.matches == 0 {
                            out.truncate(before);
                            out.extend_from_slice(&content[..progress.consumed]);
                        }
                        matches += progress.matches;
                        state.context = state.context.advance(&content[..progress.consumed]);
                        progress.consumed
                    } else {
                        out.extend_from_slice(content);
                        content.len()
                    };
                    match next {
                        Some(after) if used == end => {
                            out.extend_from_slice(&rest[end..after]);
                            pos += after;
                            state.phase = Phase::AfterDelimiter;
                        }
                        _ => {
                            pos += used;
                            break;
                        }
                    }
                }
            }
        }
        Step {
            consumed: pos,
            changed: true,
            matches,
            integrity_removed: 0,
        }
    }
}

/// The length of the longest suffix of `data` that is a proper prefix of `pattern`.
fn prefix_suffix(data: &[u8], pattern: &[u8]) -> usize {
    let longest = data.len().min(pattern.len() - 1);
    (1..=longest)
        .rev()
        .find(|&n| data[data.len() - n..] == pattern[..n])
        .unwrap_or(0)
}

/// The `boundary` parameter of a `multipart/form-data` content type.
fn boundary(content_type: &[u8]) -> Option<Vec<u8>> {
    let mut params = content_type.split(|&b| b == b';');
    let media = params.next()?.trim_ascii();
    if !media.eq_ignore_ascii_case(b"multipart/form-data") {
        return None;
    }
    let value = params.find_map(|param| {
        let (name, value) = split_param(param)?;
        name.eq_ignore_ascii_case(b"boundary").then_some(value)
    })?;
    let valid = (1..=70).contains(&value.len())
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b))
        && value.last() != Some(&b' ');
    valid.then(|| value.to_vec())
}

/// `name=value` or `name="value"` (quotes removed), both trimmed.
fn split_param(param: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = param.iter().position(|&b| b == b'=')?;
    let name = param[..eq].trim_ascii();
    let value = param[eq + 1..].trim_ascii();
    let value = match value {
        [b'"', inner @ .., b'"'] => inner,
        other => other,
    };
    Some((name, value))
}

/// Whether a part with this header block (lines separated by CRLF) is text: no `filename` in
/// its `Content-Disposition`, and a `Content-Type` that is absent or textual.
fn is_text_part(headers: &[u8]) -> bool {
    let mut text = true;
    for line in headers.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (line[..colon].trim_ascii(), &line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-disposition") {
            let has_filename = value.split(|&b| b == b';').skip(1).any(|param| {
                split_param(param).is_some_and(|(n, _)| {
                    n.eq_ignore_ascii_case(b"filename") || n.eq_ignore_ascii_case(b"filename*")
                })
            });
            text &= !has_filename;
        } else if name.eq_ignore_ascii_case(b"content-type") {
            text &= is_textual(value);
        }
    }
    text
}

/// `text/*`, JSON, XML and forms, by media type.
fn is_textual(content_type: &[u8]) -> bool {
    let media = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii()
        .to_ascii_lowercase();
    media.starts_with(b"text/")
        || media == b"application/json"
        || media == b"application/xml"
        || media == b"application/x-www-form-urlencoded"
        || media.ends_with(b"+json")
        || media.ends_with(b"+xml")
}

#[cfg(test)]
mod tests;
