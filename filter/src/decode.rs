//! Content decoding of the response bodies Ferry rewrites, for origins that compress although
//! Ferry asked them for `Accept-Encoding: identity`: `gzip` (and `x-gzip`), `deflate` (zlib, or
//! the raw deflate some servers send), `br` and `zstd`.
//!
//! A [`Decoder`] takes the encoded body chunk by chunk, as Envoy hands it over, and appends the
//! decoded bytes to a caller's buffer. Guarantees:
//!
//! * **Nothing wrong passes as right** (as far as the format can tell: gzip and zlib carry
//!   checksums, zstd frames may, brotli and raw deflate do not). Corrupt data, a checksum that
//!   does not match, an unsupported feature (a zstd dictionary, a window over the limit) and a stream that stops
//!   before its end are errors ([`DecodeError`]); the caller fails the response visibly. What
//!   browsers tolerate is tolerated too: several gzip members in a row, and bytes after the end
//!   of a gzip, deflate or brotli stream (ignored, as browsers ignore them).
//! * **Bounded work and memory.** The decoded size of a body is limited in absolute terms
//!   ([`DecodeLimits::max_bytes`]) and relative to the encoded size read so far
//!   ([`DecodeLimits::max_ratio`], after a first [`RATIO_SLACK`] bytes that are always
//!   allowed), and the check runs while decoding, every 32 KiB of output at most, so a
//!   decompression bomb costs at most the limit, never its full size. Windows are bounded by
//!   the formats as HTTP uses them: 32 KiB for deflate, 16 MiB for brotli (no large-window
//!   streams), 8 MiB for zstd (RFC 9659).
//!
//! Pure Rust (`miniz_oxide` through `flate2`, `brotli-decompressor`, `ruzstd`), so the same
//! code runs natively in the tests and as `wasm32` inside Envoy. Envoy's own decompressor
//! filter is not used: it ends every decompressed body with trailers (its byte counts), which
//! hides the end of the stream from the filters after it, and it ignores corrupt data, turning a
//! broken body into a shorter one.

use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
use flate2::{Crc, Decompress, FlushDecompress, Status};

/// Decoded bytes that are always allowed, whatever the ratio: small bodies compress very well.
pub const RATIO_SLACK: u64 = 1 << 20;

/// The output granularity: limits are checked at least this often.
const STEP: usize = 32 * 1024;

/// The largest zstd window accepted (RFC 9659 limits the `zstd` content coding to 8 MB).
pub const ZSTD_MAX_WINDOW: u64 = 8 << 20;

/// The longest gzip header accepted (file name and comment included).
const GZIP_MAX_HEADER: usize = 64 * 1024;

/// The largest zstd block (`Block_Maximum_Size`, RFC 8878).
const ZSTD_MAX_BLOCK: usize = 128 * 1024;

/// A content coding Ferry can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

/// What a `Content-Encoding` header says about a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// No header, an empty one, or `identity`.
    Identity,
    /// A coding Ferry decodes.
    Decodable(Coding),
    /// Anything else: an unknown coding (`compress`, a shared-dictionary `dcb`), or several
    /// stacked codings, which real servers do not send.
    Unsupported,
}

impl ContentEncoding {
    pub fn from_header(value: Option<&[u8]>) -> ContentEncoding {
        let Some(value) = value else {
            return ContentEncoding::Identity;
        };
        let coding = match value.trim_ascii().to_ascii_lowercase().as_slice() {
            b"" | b"identity" => return ContentEncoding::Identity,
            b"gzip" | b"x-gzip" => Coding::Gzip,
            b"deflate" => Coding::Deflate,
            b"br" => Coding::Brotli,
            b"zstd" => Coding::Zstd,
            _ => return ContentEncoding::Unsupported,
        };
        ContentEncoding::Decodable(coding)
    }
}

impl Coding {
    /// The coding's name, as in `Content-Encoding`.
    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }
}

impl std::fmt::Display for Coding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How much a body may decode to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The most decoded bytes of one body.
    pub max_bytes: u64,
    /// The most decoded bytes per encoded byte read so far (beyond [`RATIO_SLACK`]).
    pub max_ratio: u64,
}

/// 64 MiB and 200:1 (HTML typically compresses 4-10:1, repetitive JSON 20-50:1).
impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_bytes: 64 << 20,
            max_ratio: 200,
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("corrupt {coding} data: {detail}")]
    Corrupt { coding: Coding, detail: String },
    #[error("the {coding} data stops before its end (truncated body)")]
    Truncated { coding: Coding },
    #[error("the body decodes to more than {limit} bytes (decompression.max_bytes)")]
    TooLarge { limit: u64 },
    #[error(
        "the body decodes to more than {ratio} times its encoded size (decompression.max_ratio)"
    )]
    TooHighRatio { ratio: u64 },
}

impl DecodeError {
    /// Whether a limit, rather than bad data, stopped the decoding.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            DecodeError::TooLarge { .. } | DecodeError::TooHighRatio { .. }
        )
    }
}

/// The output budget ran out (mapped to a [`DecodeError`] limit by [`Decoder`]).
#[derive(Debug)]
enum Stop {
    Budget,
    Corrupt(String),
}

impl From<String> for Stop {
    fn from(detail: String) -> Stop {
        Stop::Corrupt(detail)
    }
}

/// Where decoded bytes go: `out`, no further than `limit` (its length when full).
struct Sink<'a> {
    out: &'a mut Vec<u8>,
    limit: usize,
}

impl Sink<'_> {
    fn room(&self) -> usize {
        self.limit.saturating_sub(self.out.len())
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        if bytes.len() > self.room() {
            return Err(Stop::Budget);
        }
        self.out.extend_from_slice(bytes);
        Ok(())
    }
}

/// A streaming decoder of one body.
pub struct Decoder {
    coding: Coding,
    engine: Engine,
    limits: DecodeLimits,
    encoded: u64,
    decoded: u64,
    failed: bool,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("coding", &self.coding)
            .field("encoded", &self.encoded)
            .field("decoded", &self.decoded)
            .finish_non_exhaustive()
    }
}

enum Engine {
    Gzip(Gzip),
    /// `deflate` before its first two bytes tell zlib from raw deflate.
    DeflateUnknown(Vec<u8>),
    Flate(Flate),
    Brotli(Box<Brotli>),
    Zstd(Box<Zstd>),
}

impl Decoder {
    pub fn new(coding: Coding, limits: DecodeLimits) -> Decoder {
        let engine = match coding {
            Coding::Gzip => Engine::Gzip(Gzip::new()),
            Coding::Deflate => Engine::DeflateUnknown(Vec::new()),
            Coding::Brotli => Engine::Brotli(Box::new(Brotli::new())),
            Coding::Zstd => Engine::Zstd(Box::new(Zstd::new())),
        };
        Decoder {
            coding,
            engine,
            limits,
            encoded: 0,
            decoded: 0,
            failed: false,
        }
    }

    pub fn coding(&self) -> Coding {
        self.coding
    }

    /// Encoded bytes read so far.
    pub fn encoded(&self) -> u64 {
        self.encoded
    }

    /// Decoded bytes produced so far.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Decodes the next encoded bytes, appending the decoded ones to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        self.run(input, false, out)
    }

    /// Ends the body: the stream must be complete.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        self.run(&[], true, out)
    }

    fn run(&mut self, input: &[u8], last: bool, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        if self.failed {
            return Err(self.corrupt("the stream already failed".into()));
        }
        if last && self.encoded == 0 {
            // An empty body labelled with a coding, as some servers send: nothing to decode.
            return Ok(());
        }
        self.encoded += input.len() as u64;
        let by_ratio = self
            .limits
            .max_ratio
            .saturating_mul(self.encoded)
            .saturating_add(RATIO_SLACK);
        let cap = self.limits.max_bytes.min(by_ratio);
        let room = cap.saturating_sub(self.decoded);
        let start = out.len();
        let limit = start.saturating_add(usize::try_from(room).unwrap_or(usize::MAX));
        let mut sink = Sink { out, limit };
        let result = self.step(input, last, &mut sink);
        self.decoded += (sink.out.len() - start) as u64;
        result
            .inspect_err(|_| self.failed = true)
            .map_err(|stop| match stop {
                Stop::Budget if cap == self.limits.max_bytes => DecodeError::TooLarge {
                    limit: self.limits.max_bytes,
                },
                Stop::Budget => DecodeError::TooHighRatio {
                    ratio: self.limits.max_ratio,
                },
                Stop::Corrupt(detail) if detail.is_empty() => DecodeError::Truncated {
                    coding: self.coding,
                },
                Stop::Corrupt(detail) => self.corrupt(detail),
            })
    }

    fn corrupt(&self, detail: String) -> DecodeError {
        DecodeError::Corrupt {
            coding: self.coding,
            detail,
        }
    }

    /// One call's work. A `Stop::Corrupt` with an empty detail means "truncated".
    fn step(&mut self, input: &[u8], last: bool, sink: &mut Sink<'_>) -> Result<(), Stop> {
        if let Engine::DeflateUnknown(head) = &mut self.engine {
            head.extend_from_slice(input);
            if head.len() < 2 && !last {
                return Ok(());
            }
            let head = std::mem::take(head);
            let mut flate = Flate::new(is_zlib_header(&head));
            let result = flate.push(&head, sink);
            self.engine = Engine::Flate(flate);
            result?;
            return if last {
                self.step(&[], true, sink)
            } else {
                Ok(())
            };
        }
        match &mut self.engine {
            Engine::Gzip(g) => g.push(input, last, sink),
            Engine::Flate(f) => {
                f.push(input, sink)?;
                if last && !f.ended {
                    return Err(Stop::Corrupt(String::new()));
                }
                Ok(())
            }
            Engine::Brotli(b) => b.push(input, last, sink),
            Engine::Zstd(z) => z.push(input, last, sink),
            Engine::DeflateUnknown(_) => Ok(()),
        }
    }
}

/// Whether two bytes start a zlib stream (RFC 1950): deflate, a window of at most 32 KiB, and
/// the header check. Anything else under `Content-Encoding: deflate` is taken as raw deflate,
/// as browsers do.
fn is_zlib_header(head: &[u8]) -> bool {
    match head {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// A deflate stream (raw, or zlib-wrapped with its Adler-32 checked), through `flate2`.
struct Flate {
    inflate: Decompress,
    buffer: Vec<u8>,
    ended: bool,
}

impl Flate {
    fn new(zlib: bool) -> Flate {
        Flate {
            inflate: Decompress::new(zlib),
            buffer: vec![0; STEP],
            ended: false,
        }
    }

    /// Inflates `input`; returns how much of it the stream used (bytes after its end are left).
    fn push(&mut self, input: &[u8], sink: &mut Sink<'_>) -> Result<usize, Stop> {
        let mut pos = 0;
        while !self.ended {
            let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
            // One byte past the room: producing it means the budget is exceeded.
            let want = STEP.min(sink.room().saturating_add(1));
            let status = self
                .inflate
                .decompress(
                    &input[pos..],
                    &mut self.buffer[..want],
                    FlushDecompress::None,
                )
                .map_err(|e| e.message().unwrap_or("invalid deflate data").to_string())?;
            let used = (self.inflate.total_in() - before_in) as usize;
            let made = (self.inflate.total_out() - before_out) as usize;
            pos += used;
            sink.put(&self.buffer[..made])?;
            if status == Status::StreamEnd {
                self.ended = true;
            } else if used == 0 && made == 0 {
                if pos < input.len() {
                    return Err("inflate stopped making progress".to_string().into());
                }
                break;
            }
        }
        Ok(pos)
    }
}

/// gzip (RFC 1952): members of header, deflate data, CRC-32 and length, one after another.
struct Gzip {
    state: GzipState,
    members: u32,
}

enum GzipState {
    /// Collecting a member's header.
    Header(Vec<u8>),
    Body {
        flate: Flate,
        crc: Crc,
    },
    /// Collecting the 8-byte trailer.
    Trailer {
        crc: Crc,
        bytes: Vec<u8>,
    },
    /// After a member, bytes that are not another member: ignored, as browsers do.
    Ignoring,
}

impl Gzip {
    fn new() -> Gzip {
        Gzip {
            state: GzipState::Header(Vec::new()),
            members: 0,
        }
    }

    fn push(&mut self, mut input: &[u8], last: bool, sink: &mut Sink<'_>) -> Result<(), Stop> {
        loop {
            match &mut self.state {
                GzipState::Ignoring => return Ok(()),
                GzipState::Header(head) => {
                    if input.is_empty() {
                        break;
                    }
                    let before = head.len();
                    head.extend_from_slice(input);
                    let parsed = match gzip_header_len(head) {
                        // After a complete member, anything but another member is ignored.
                        Err(_) if self.members > 0 => {
                            self.state = GzipState::Ignoring;
                            return Ok(());
                        }
                        parsed => parsed?,
                    };
                    match parsed {
                        None => {
                            if head.len() > GZIP_MAX_HEADER {
                                return Err("gzip header too long".to_string().into());
                            }
                            return self.check_end(last);
                        }
                        Some(len) => {
                            input = &input[len - before..];
                            self.state = GzipState::Body {
                                flate: Flate::new(false),
                                crc: Crc::new(),
                            };
                        }
                    }
                }
                GzipState::Body { flate, crc } => {
                    let start = sink.out.len();
                    let used = flate.push(input, sink)?;
                    crc.update(&sink.out[start..]);
                    input = &input[used..];
                    if !flate.ended {
                        break;
                    }
                    let crc = std::mem::replace(crc, Crc::new());
                    self.state = GzipState::Trailer {
                        crc,
                        bytes: Vec::with_capacity(8),
                    };
                }
                GzipState::Trailer { crc, bytes } => {
                    let take = (8 - bytes.len()).min(input.len());
                    bytes.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if bytes.len() < 8 {
                        break;
                    }
                    let sum = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                    let size = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
                    if sum != crc.sum() || size != crc.amount() {
                        return Err("CRC-32 or length mismatch".to_string().into());
                    }
                    self.members += 1;
                    self.state = GzipState::Header(Vec::new());
                }
            }
        }
        self.check_end(last)
    }

    fn check_end(&self, last: bool) -> Result<(), Stop> {
        let complete = match &self.state {
            GzipState::Ignoring => true,
            GzipState::Header(head) => head.is_empty() && self.members > 0,
            _ => false,
        };
        if last && !complete {
            return Err(Stop::Corrupt(String::new()));
        }
        Ok(())
    }
}

/// The length of the gzip member header at the start of `head`, `None` if incomplete.
fn gzip_header_len(head: &[u8]) -> Result<Option<usize>, Stop> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    if head.len() >= 2 && head[..2] != [0x1f, 0x8b] || head.len() == 1 && head[0] != 0x1f {
        return Err("not gzip data (bad magic number)".to_string().into());
    }
    if head.len() < 10 {
        return Ok(None);
    }
    if head[2] != 8 {
        return Err(format!("unknown compression method {}", head[2]).into());
    }
    let flags = head[3];
    if flags & 0xe0 != 0 {
        return Err("reserved header flags set".to_string().into());
    }
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let Some(len) = head.get(at..at + 2) else {
            return Ok(None);
        };
        at += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let Some(rest) = head.get(at..) else {
                return Ok(None);
            };
            // memchr: the header is parsed again as its bytes arrive, so keep each pass cheap.
            let Some(nul) = memchr::memchr(0, rest) else {
                return Ok(None);
            };
            at += nul + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    Ok((head.len() >= at).then_some(at))
}

/// brotli (RFC 7932), windows up to 16 MiB.
struct Brotli {
    state: BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>,
    buffer: Vec<u8>,
    ended: bool,
}

impl Brotli {
    fn new() -> Brotli {
        Brotli {
            state: BrotliState::new_strict(
                StandardAlloc::default(),
                StandardAlloc::default(),
                StandardAlloc::default(),
            ),
            buffer: vec![0; STEP],
            ended: false,
        }
    }

    fn push(&mut self, input: &[u8], last: bool, sink: &mut Sink<'_>) -> Result<(), Stop> {
        let mut available_in = input.len();
        let mut input_offset = 0;
        let mut total_out = 0;
        while !self.ended {
            let mut available_out = self.buffer.len();
            let mut output_offset = 0;
            let result = BrotliDecompressStream(
                &mut available_in,
                &mut input_offset,
                input,
                &mut available_out,
                &mut output_offset,
                &mut self.buffer,
                &mut total_out,
                &mut self.state,
            );
            sink.put(&self.buffer[..output_offset])?;
            match result {
                BrotliResult::NeedsMoreOutput => {}
                BrotliResult::NeedsMoreInput => break,
                BrotliResult::ResultSuccess => self.ended = true,
                BrotliResult::ResultFailure => {
                    return Err("invalid brotli data".to_string().into());
                }
            }
        }
        if last && !self.ended {
            return Err(Stop::Corrupt(String::new()));
        }
        Ok(())
    }
}

/// zstd (RFC 8878) frames, one after another, skippable frames skipped, checksums checked.
///
/// `ruzstd` decodes whole blocks; the framing is read here so that it only ever sees complete
/// units (a frame header, whole blocks, a whole checksum), however the body was cut.
struct Zstd {
    decoder: ruzstd::decoding::FrameDecoder,
    /// Encoded bytes not yet given to the decoder (at most one frame header or block).
    pending: Vec<u8>,
    frame: ZstdFrame,
    frames: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ZstdFrame {
    /// Between frames.
    None,
    /// Skipping this many bytes of a skippable frame.
    Skip(u64),
    /// Inside a frame; whether its content checksum follows the last block.
    Blocks { checksum: bool },
    /// The last block was decoded; the checksum (4 bytes) follows.
    Checksum,
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Zstd {
    fn new() -> Zstd {
        let mut decoder = ruzstd::decoding::FrameDecoder::new();
        decoder.set_max_window_size(ZSTD_MAX_WINDOW);
        Zstd {
            decoder,
            pending: Vec::new(),
            frame: ZstdFrame::None,
            frames: 0,
        }
    }

    fn push(&mut self, input: &[u8], last: bool, sink: &mut Sink<'_>) -> Result<(), Stop> {
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(input);
        let result = self.units(&pending, sink);
        if let Ok(at) = result {
            pending.drain(..at);
        }
        self.pending = pending;
        result?;
        let complete = self.frame == ZstdFrame::None && self.pending.is_empty() && self.frames > 0;
        if last && !complete {
            return Err(Stop::Corrupt(String::new()));
        }
        Ok(())
    }

    /// Decodes the complete units at the start of `pending`; returns how many bytes they took.
    fn units(&mut self, pending: &[u8], sink: &mut Sink<'_>) -> Result<usize, Stop> {
        let mut at = 0;
        loop {
            let rest = &pending[at..];
            match self.frame {
                ZstdFrame::None => {
                    if rest.len() < 4 {
                        break;
                    }
                    if rest[..4] == ZSTD_MAGIC {
                        let Some((len, checksum)) = zstd_frame_header(rest)? else {
                            break;
                        };
                        self.decoder
                            .reset(&rest[..len])
                            .map_err(|e| format!("frame header: {e}"))?;
                        at += len;
                        self.frame = ZstdFrame::Blocks { checksum };
                    } else if rest[0] & 0xf0 == 0x50 && rest[1..4] == [0x2a, 0x4d, 0x18] {
                        if rest.len() < 8 {
                            break;
                        }
                        let size = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
                        at += 8;
                        self.frame = ZstdFrame::Skip(u64::from(size));
                    } else {
                        return Err("not zstd data (bad magic number)".to_string().into());
                    }
                }
                ZstdFrame::Skip(left) => {
                    let take = left.min(rest.len() as u64);
                    at += take as usize;
                    self.frame = if take == left {
                        ZstdFrame::None
                    } else {
                        ZstdFrame::Skip(left - take)
                    };
                    if take < left {
                        break;
                    }
                }
                ZstdFrame::Blocks { checksum } => {
                    if rest.len() < 3 {
                        break;
                    }
                    let header = u32::from_le_bytes([rest[0], rest[1], rest[2], 0]);
                    let last_block = header & 1 == 1;
                    let size = (header >> 3) as usize;
                    // RFC 8878 3.1.1.2.3: no block is larger than 128 KiB; refuse a bigger one
                    // before buffering it.
                    if size > ZSTD_MAX_BLOCK {
                        return Err(format!("zstd block of {size} bytes (at most 128 KiB)").into());
                    }
                    let on_wire = match (header >> 1) & 3 {
                        0 | 2 => size,
                        1 => 1,
                        _ => return Err("reserved block type".to_string().into()),
                    };
                    if rest.len() < 3 + on_wire {
                        break;
                    }
                    self.decode(&rest[..3 + on_wire], sink)?;
                    at += 3 + on_wire;
                    if last_block {
                        if checksum {
                            self.frame = ZstdFrame::Checksum;
                        } else {
                            self.end_frame(sink)?;
                        }
                    }
                }
                ZstdFrame::Checksum => {
                    if rest.len() < 4 {
                        break;
                    }
                    let expected = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                    self.decode(&rest[..4], sink)?;
                    at += 4;
                    if self.decoder.get_calculated_checksum() != Some(expected) {
                        return Err("content checksum mismatch".to_string().into());
                    }
                    self.end_frame(sink)?;
                }
            }
        }
        Ok(at)
    }

    /// Gives the decoder one complete unit and collects what it can release.
    fn decode(&mut self, unit: &[u8], sink: &mut Sink<'_>) -> Result<(), Stop> {
        let (read, _) = self
            .decoder
            .decode_from_to(unit, &mut [])
            .map_err(|e| e.to_string())?;
        if read != unit.len() {
            return Err(format!("block of {} bytes not decoded whole", unit.len()).into());
        }
        self.collect(sink)
    }

    fn collect(&mut self, sink: &mut Sink<'_>) -> Result<(), Stop> {
        if self.decoder.can_collect() > sink.room() {
            return Err(Stop::Budget);
        }
        if let Some(bytes) = self.decoder.collect() {
            sink.put(&bytes)?;
        }
        Ok(())
    }

    fn end_frame(&mut self, sink: &mut Sink<'_>) -> Result<(), Stop> {
        self.collect(sink)?;
        self.frames += 1;
        self.frame = ZstdFrame::None;
        Ok(())
    }
}

/// The length of the zstd frame header at the start of `rest` (which starts with the magic
/// number) and whether the frame ends with a content checksum; `None` if incomplete.
fn zstd_frame_header(rest: &[u8]) -> Result<Option<(usize, bool)>, Stop> {
    let Some(&descriptor) = rest.get(4) else {
        return Ok(None);
    };
    if descriptor & 0x08 != 0 {
        return Err("reserved frame header bit set".to_string().into());
    }
    if descriptor & 0x03 != 0 {
        return Err("frame needs a dictionary (not supported in HTTP)"
            .to_string()
            .into());
    }
    let single_segment = descriptor & 0x20 != 0;
    let content_size = match descriptor >> 6 {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let len = 5 + usize::from(!single_segment) + content_size;
    Ok((rest.len() >= len).then_some((len, descriptor & 0x04 != 0)))
}

#[cfg(test)]
pub(crate) mod tests;
