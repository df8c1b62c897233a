//! What the test origin answers on a route: status, headers, a body in chunks, trailers.
//!
//! A [`Reply`] is a description; [`Reply::into_response`] turns it into a hyper response whose body
//! is produced by a task that writes each chunk separately (optionally pausing between them, so
//! Envoy delivers them to the filter as separate data frames) through a small channel, so a
//! generated body of any size streams in bounded memory. With [`Reply::encoded`] the body is
//! compressed as a real server does it: one stream, flushed after every chunk, so the chunk
//! boundaries survive compression ([`encode_chunks`] does the same ahead of time).

use std::convert::Infallible;
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

use crate::body::Generator;
use crate::headers;

/// A response description for the test origin.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Content,
    trailers: Vec<(HeaderName, HeaderValue)>,
    chunk_delay: Duration,
    /// Pauses before particular chunks (by index), instead of `chunk_delay`.
    delays: Vec<Duration>,
    encoding: Option<Encoding>,
    content_length: bool,
}

/// A content coding the test origin can compress with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    Gzip,
    /// zlib-wrapped, as HTTP's `deflate` says.
    Deflate,
    Brotli,
    Zstd,
}

impl Encoding {
    pub const ALL: [Encoding; 4] = [
        Encoding::Gzip,
        Encoding::Deflate,
        Encoding::Brotli,
        Encoding::Zstd,
    ];

    /// The `Content-Encoding` value.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
        }
    }

    fn encoder(self) -> Encoder {
        match self {
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            )),
            Encoding::Deflate => Encoder::Deflate(flate2::write::ZlibEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            )),
            Encoding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                5,
                22,
            ))),
            // Level 3 with a checksum, as the zstd tool and servers write it.
            Encoding::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd");
                e.include_checksum(true).expect("zstd");
                Encoder::Zstd(e)
            }
        }
    }
}

/// A compressor writing into memory, flushed after every chunk.
enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Deflate(flate2::write::ZlibEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    /// Compress `chunk`, flush, and return what the stream produced so far.
    fn chunk(&mut self, chunk: &[u8]) -> Vec<u8> {
        // Writing into a Vec cannot fail, nor can the flushes that follow.
        match self {
            Encoder::Gzip(e) => {
                e.write_all(chunk).and_then(|()| e.flush()).expect("gzip");
                std::mem::take(e.get_mut())
            }
            Encoder::Deflate(e) => {
                e.write_all(chunk)
                    .and_then(|()| e.flush())
                    .expect("deflate");
                std::mem::take(e.get_mut())
            }
            Encoder::Brotli(e) => {
                e.write_all(chunk).and_then(|()| e.flush()).expect("brotli");
                std::mem::take(e.get_mut())
            }
            Encoder::Zstd(e) => {
                e.write_all(chunk).and_then(|()| e.flush()).expect("zstd");
                std::mem::take(e.get_mut())
            }
        }
    }

    /// End the stream; the last bytes.
    fn finish(self) -> Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.finish().expect("gzip"),
            Encoder::Deflate(e) => e.finish().expect("deflate"),
            Encoder::Brotli(e) => e.into_inner(),
            Encoder::Zstd(e) => e.finish().expect("zstd"),
        }
    }
}

/// `chunks` compressed as one `encoding` stream, flushed after each: what a server writing
/// those chunks sends (the end of the stream rides on the last chunk).
pub fn encode_chunks(encoding: Encoding, chunks: &[Bytes]) -> Vec<Bytes> {
    let mut encoder = encoding.encoder();
    let mut out: Vec<Bytes> = chunks
        .iter()
        .map(|c| Bytes::from(encoder.chunk(c)))
        .collect();
    let tail = encoder.finish();
    match out.last_mut() {
        Some(last) => *last = [last.as_ref(), &tail].concat().into(),
        None => out.push(tail.into()),
    }
    out
}

/// Where the body bytes come from.
#[derive(Clone, Debug)]
enum Content {
    /// Chunks written one by one.
    Chunks(Vec<Bytes>),
    /// `len` bytes from `generator`, written `chunk` bytes at a time.
    Generated {
        generator: Generator,
        len: u64,
        chunk: usize,
    },
}

impl Reply {
    /// A reply with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Content::Chunks(Vec::new()),
            trailers: Vec::new(),
            chunk_delay: Duration::ZERO,
            delays: Vec::new(),
            encoding: None,
            content_length: false,
        }
    }

    /// 200 with `Content-Type: content_type` and `body` as a single chunk.
    pub fn ok(content_type: &str, body: impl Into<Bytes>) -> Self {
        Self::new(200)
            .header("content-type", content_type)
            .body(body)
    }

    /// 200 `text/html; charset=utf-8`.
    pub fn html(body: impl Into<Bytes>) -> Self {
        Self::ok("text/html; charset=utf-8", body)
    }

    /// A redirect with `Location: location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        Self::new(status).header("location", location)
    }

    /// Add a header; calling it again with the same name adds another line (e.g. `Set-Cookie`).
    ///
    /// # Panics
    /// If the name or the value is not a valid header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(headers::parse(name, value));
        self
    }

    /// The body as one chunk.
    pub fn body(self, body: impl Into<Bytes>) -> Self {
        self.chunks([body.into()])
    }

    /// The body as chunks, each written separately.
    pub fn chunks<I, C>(mut self, chunks: I) -> Self
    where
        I: IntoIterator<Item = C>,
        C: Into<Bytes>,
    {
        self.body = Content::Chunks(chunks.into_iter().map(Into::into).collect());
        self
    }

    /// A body of `len` bytes from `generator`, written `chunk` bytes at a time (never held whole).
    pub fn generated(mut self, generator: Generator, len: u64, chunk: usize) -> Self {
        self.body = Content::Generated {
            generator,
            len,
            chunk: chunk.max(1),
        };
        self
    }

    /// Pause this long between chunks, so Envoy sees each as its own data frame.
    pub fn chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// Pause `delays[i]` before chunk `i` (chunks past the list use [`Reply::chunk_delay`]):
    /// an origin that flushes at irregular times.
    pub fn chunk_delays(mut self, delays: Vec<Duration>) -> Self {
        self.delays = delays;
        self
    }

    /// Add a trailer, sent after the body (HTTP/2; on HTTP/1.1 only to clients that accept them).
    ///
    /// # Panics
    /// If the name or the value is not a valid header.
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push(headers::parse(name, value));
        self
    }

    /// Send the body gzip-compressed with `Content-Encoding: gzip`, each chunk flushed as it is
    /// written so the chunk boundaries survive compression.
    pub fn gzip(self) -> Self {
        self.encoded(Encoding::Gzip)
    }

    /// Send the body compressed with `encoding` (and that `Content-Encoding`), each chunk
    /// flushed as it is written.
    pub fn encoded(mut self, encoding: Encoding) -> Self {
        self.encoding = Some(encoding);
        self
    }

    /// Send `Content-Length` (for an uncompressed body; without it the body is chunked on HTTP/1.1).
    pub fn content_length(mut self) -> Self {
        self.content_length = true;
        self
    }

    /// The same reply with another status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The uncompressed body, if it is given as chunks (`None` for a generated body).
    pub fn body_bytes(&self) -> Option<Bytes> {
        match &self.body {
            Content::Chunks(chunks) => Some(chunks.concat().into()),
            Content::Generated { .. } => None,
        }
    }

    /// The headers, in order.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect()
    }

    /// The uncompressed body length, if known without generating it.
    pub fn body_len(&self) -> u64 {
        match &self.body {
            Content::Chunks(chunks) => chunks.iter().map(|chunk| chunk.len() as u64).sum(),
            Content::Generated { len, .. } => *len,
        }
    }

    /// The response for a request with `method`, its body produced by a task on the current
    /// tokio runtime. HEAD, 1xx, 204 and 304 get the headers and no body.
    pub fn into_response(self, method: &http::Method) -> http::Response<ChannelBody> {
        let mut head = headers::to_map(&self.headers);
        if let Some(encoding) = self.encoding {
            head.insert(
                http::header::CONTENT_ENCODING,
                HeaderValue::from_static(encoding.name()),
            );
        } else if self.content_length && !head.contains_key(http::header::CONTENT_LENGTH) {
            head.insert(
                http::header::CONTENT_LENGTH,
                HeaderValue::from(self.body_len()),
            );
        }
        let bodyless = *method == http::Method::HEAD
            || self.status < 200
            || self.status == 204
            || self.status == 304;
        let (tx, rx) = mpsc::channel(2);
        if !bodyless {
            tokio::spawn(produce(self.clone(), tx));
        }
        let mut response = http::Response::new(ChannelBody { rx });
        *response.status_mut() = http::StatusCode::from_u16(self.status)
            .unwrap_or_else(|err| panic!("Reply status {} is not valid: {err}", self.status));
        *response.headers_mut() = head;
        response
    }
}

/// Write the body of `reply` into `tx`, chunk by chunk; stop early if the receiver is gone.
async fn produce(reply: Reply, tx: mpsc::Sender<Frame<Bytes>>) {
    let mut writer = Writer {
        tx,
        encoder: reply.encoding.map(Encoding::encoder),
        delay: reply.chunk_delay,
        delays: reply.delays,
        written: 0,
    };
    match reply.body {
        Content::Chunks(chunks) => {
            for chunk in chunks {
                if !writer.chunk(chunk).await {
                    return;
                }
            }
        }
        Content::Generated {
            generator,
            len,
            chunk,
        } => {
            let mut offset = 0;
            while offset < len {
                let mut buf = vec![0; chunk.min((len - offset) as usize)];
                generator.fill(offset, &mut buf);
                offset += buf.len() as u64;
                if !writer.chunk(Bytes::from(buf)).await {
                    return;
                }
            }
        }
    }
    writer.finish(&reply.trailers).await;
}

/// The producer's end of a body: pacing, compression, the channel.
struct Writer {
    tx: mpsc::Sender<Frame<Bytes>>,
    encoder: Option<Encoder>,
    delay: Duration,
    delays: Vec<Duration>,
    written: usize,
}

impl Writer {
    /// Send one chunk (after the pause before it); false once the receiver is gone.
    async fn chunk(&mut self, chunk: Bytes) -> bool {
        let delay = match self.delays.get(self.written) {
            Some(delay) => *delay,
            None if self.written > 0 => self.delay,
            None => Duration::ZERO,
        };
        self.written += 1;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let chunk = match self.encoder.as_mut() {
            Some(encoder) => Bytes::from(encoder.chunk(&chunk)),
            None => chunk,
        };
        chunk.is_empty() || self.tx.send(Frame::data(chunk)).await.is_ok()
    }

    /// Send the end of the compressed stream and the trailers, if any.
    async fn finish(self, trailers: &[(HeaderName, HeaderValue)]) {
        if let Some(encoder) = self.encoder {
            let tail = encoder.finish();
            if self.tx.send(Frame::data(Bytes::from(tail))).await.is_err() {
                return;
            }
        }
        if !trailers.is_empty() {
            // A send error means the client went away; there is nothing left to do either way.
            let _ = self
                .tx
                .send(Frame::trailers(headers::to_map(trailers)))
                .await;
        }
    }
}

/// A response body fed by a channel: the producer task's frames, then the end of the stream.
#[derive(Debug)]
pub struct ChannelBody {
    rx: mpsc::Receiver<Frame<Bytes>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}
