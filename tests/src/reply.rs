//! What the test origin answers on a route: status, headers, a body in chunks, trailers.
//!
//! A [`Reply`] is a description; [`Reply::into_response`] turns it into a hyper response whose body
//! is produced by a task that writes each chunk separately (optionally pausing between them, so
//! Envoy delivers them to the filter as separate data frames) through a small channel, so a
//! generated body of any size streams in bounded memory.

use std::convert::Infallible;
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
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
    gzip: bool,
    content_length: bool,
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
            gzip: false,
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
    pub fn gzip(mut self) -> Self {
        self.gzip = true;
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
        if self.gzip {
            head.insert(
                http::header::CONTENT_ENCODING,
                HeaderValue::from_static("gzip"),
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
        gzip: reply
            .gzip
            .then(|| GzEncoder::new(Vec::new(), flate2::Compression::default())),
        delay: reply.chunk_delay,
        started: false,
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
    gzip: Option<GzEncoder<Vec<u8>>>,
    delay: Duration,
    started: bool,
}

impl Writer {
    /// Send one chunk (after the pause between chunks); false once the receiver is gone.
    async fn chunk(&mut self, chunk: Bytes) -> bool {
        if std::mem::replace(&mut self.started, true) && !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let chunk = match self.gzip.as_mut() {
            // Writing into a Vec cannot fail, nor can the sync flush that follows.
            Some(encoder) => {
                encoder.write_all(&chunk).expect("gzip into a Vec");
                encoder.flush().expect("gzip into a Vec");
                Bytes::from(std::mem::take(encoder.get_mut()))
            }
            None => chunk,
        };
        chunk.is_empty() || self.tx.send(Frame::data(chunk)).await.is_ok()
    }

    /// Send the end of the gzip stream and the trailers, if any.
    async fn finish(self, trailers: &[(HeaderName, HeaderValue)]) {
        if let Some(encoder) = self.gzip {
            // Finishing into a Vec cannot fail.
            let tail = encoder.finish().expect("gzip into a Vec");
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
