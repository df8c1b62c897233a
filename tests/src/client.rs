//! A blocking HTTP client for tests: HTTP/1.1 or h2c prior knowledge, one connection per request;
//! or the same over TLS.
//!
//! Each [`Client`] owns a single-threaded tokio runtime and blocks on it, so plain `#[test]`
//! functions can call it (not from inside async code). Responses keep headers in wire order with
//! duplicates, and the trailers. [`Client::stream`] hands the body to a closure chunk by chunk and
//! returns only its [`Digest`], for bodies of many MiB.
//!
//! [`Client::https`] connects to any address (a relay's, Envoy's) and speaks TLS with a server
//! name (SNI, and the name the certificate must carry) and a CA file it trusts, nothing else:
//! rustls with the ring provider given explicitly, ALPN `http/1.1` or (with [`Client::https_h2`])
//! `h2`. A connection can also leave from a chosen local address ([`Client::with_source`], e.g.
//! 127.0.0.3 to be "another host" on loopback) and start with raw bytes before anything else
//! ([`Client::with_preamble`], e.g. a PROXY protocol header).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use crate::body::Digest;
use crate::headers::{self, HeaderLookup};

/// The HTTP version a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 over cleartext with prior knowledge.
    H2c,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot start the client's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot use {path} as the CA to trust: {reason}")]
    Ca { path: PathBuf, reason: String },
    #[error("{name:?} is not a valid TLS server name")]
    ServerName { name: String },
    #[error("TLS handshake with {addr} as {name:?} failed: {source}")]
    Tls {
        addr: SocketAddr,
        name: String,
        source: std::io::Error,
    },
    #[error("{version:?} handshake with {addr} failed: {source}")]
    Handshake {
        addr: SocketAddr,
        version: Version,
        source: hyper::Error,
    },
    #[error("request {method} {path} is not valid: {source}")]
    Invalid {
        method: String,
        path: String,
        source: http::Error,
    },
    #[error("{method} {path} to {addr} failed: {source}")]
    Exchange {
        method: String,
        path: String,
        addr: SocketAddr,
        source: hyper::Error,
    },
    #[error("WebSocket {path} to {addr}: {reason}")]
    WebSocket {
        addr: SocketAddr,
        path: String,
        reason: String,
    },
    #[error("{method} {path} to {addr} got no complete response within {after:?}")]
    Timeout {
        method: String,
        path: String,
        addr: SocketAddr,
        after: Duration,
    },
}

/// A request to send: method, host (`Host` or `:authority`), path, headers, body.
#[derive(Clone, Debug)]
pub struct Request {
    method: http::Method,
    host: String,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Request {
    /// A request with `method` for `host` (e.g. `www.example.cn`) and `path` (e.g. `/a?b=c`).
    ///
    /// # Panics
    /// If `method` is not a valid method token.
    pub fn new(method: &str, host: &str, path: &str) -> Self {
        Self {
            method: http::Method::from_bytes(method.as_bytes())
                .unwrap_or_else(|err| panic!("method {method:?} is not valid: {err}")),
            host: host.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// `GET host path`.
    pub fn get(host: &str, path: &str) -> Self {
        Self::new("GET", host, path)
    }

    /// `HEAD host path`.
    pub fn head(host: &str, path: &str) -> Self {
        Self::new("HEAD", host, path)
    }

    /// Add a header (again for another line with the same name).
    ///
    /// # Panics
    /// If the name or the value is not a valid header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(headers::parse(name, value));
        self
    }

    /// The request body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The hyper request for `version`: HTTP/1.1 gets an origin-form target and a `Host`
    /// header, HTTP/2 an absolute URI from which hyper takes `:scheme` and `:authority`.
    fn to_hyper(
        &self,
        version: Version,
        scheme: &str,
    ) -> Result<http::Request<Full<Bytes>>, http::Error> {
        let mut builder = http::Request::builder().method(self.method.clone());
        builder = match version {
            Version::Http1 => builder.uri(self.path.as_str()).header("host", &self.host),
            Version::H2c => builder
                .uri(format!("{scheme}://{}{}", self.host, self.path))
                .version(http::Version::HTTP_2),
        };
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        builder.body(Full::new(self.body.clone()))
    }
}

/// A whole response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers in wire order, duplicates kept, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body, as received (not decompressed).
    pub body: Bytes,
    /// The trailers, if any.
    pub trailers: Vec<(String, String)>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.header(name)
    }

    /// Every value of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.header_all(name)
    }

    /// The first value of trailer `name`.
    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers.header(name)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A response whose body was streamed to a closure rather than kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Streamed {
    /// The status code.
    pub status: u16,
    /// The headers in wire order.
    pub headers: Vec<(String, String)>,
    /// The length and FNV-1a digest of the body.
    pub digest: Digest,
    /// How many data frames carried it.
    pub frames: usize,
    /// The trailers, if any.
    pub trailers: Vec<(String, String)>,
}

/// TLS settings: the server name to send and verify, and the connector trusting one CA.
#[derive(Clone)]
struct Tls {
    name: String,
    server_name: ServerName<'static>,
    connector: TlsConnector,
}

/// The most response headers the client takes.
const MAX_HEADERS: usize = 1000;

/// A blocking client for one server address.
pub struct Client {
    addr: SocketAddr,
    version: Version,
    timeout: Duration,
    tls: Option<Tls>,
    source: Option<IpAddr>,
    preamble: Bytes,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Client {
    /// An HTTP/1.1 client for `addr`.
    pub fn http1(addr: SocketAddr) -> Self {
        Self::new(addr, Version::Http1)
    }

    /// An h2c (prior knowledge) client for `addr`.
    pub fn h2c(addr: SocketAddr) -> Self {
        Self::new(addr, Version::H2c)
    }

    /// A client for `addr` speaking `version`, with a 60 s timeout per request.
    ///
    /// # Panics
    /// If the runtime cannot be created (out of threads or file descriptors).
    pub fn new(addr: SocketAddr, version: Version) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClientError::Runtime)
            .unwrap_or_else(|err| panic!("{err}"));
        Self {
            addr,
            version,
            timeout: Duration::from_secs(60),
            tls: None,
            source: None,
            preamble: Bytes::new(),
            runtime: Some(runtime),
        }
    }

    /// An HTTP/1.1 client over TLS for `addr`, sending and verifying `server_name` against the
    /// CA certificates in the PEM file `ca`.
    ///
    /// # Panics
    /// If `ca` cannot be read or holds no certificate, or `server_name` is not a valid name.
    pub fn https(addr: SocketAddr, server_name: &str, ca: &Path) -> Self {
        Self::http1(addr)
            .try_tls(server_name, ca)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// Like [`Client::https`], speaking HTTP/2 (ALPN `h2`).
    ///
    /// # Panics
    /// As [`Client::https`].
    pub fn https_h2(addr: SocketAddr, server_name: &str, ca: &Path) -> Self {
        Self::h2c(addr)
            .try_tls(server_name, ca)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// The same client speaking TLS: `server_name` is sent as SNI and must be in the server's
    /// certificate, which must chain to a certificate in the PEM file `ca`. ALPN offers only
    /// the client's version (`http/1.1`, or `h2` for [`Version::H2c`]).
    pub fn try_tls(mut self, server_name: &str, ca: &Path) -> Result<Self, ClientError> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::CertificateDer;
        let ca_error = |reason: String| ClientError::Ca {
            path: ca.to_owned(),
            reason,
        };
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca).map_err(|err| ca_error(err.to_string()))?;
        for cert in certs {
            let cert = cert.map_err(|err| ca_error(err.to_string()))?;
            roots.add(cert).map_err(|err| ca_error(err.to_string()))?;
        }
        if roots.is_empty() {
            return Err(ca_error("no certificate in it".to_owned()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| ca_error(err.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = match self.version {
            Version::Http1 => vec![b"http/1.1".to_vec()],
            Version::H2c => vec![b"h2".to_vec()],
        };
        let server =
            ServerName::try_from(server_name.to_owned()).map_err(|_| ClientError::ServerName {
                name: server_name.to_owned(),
            })?;
        self.tls = Some(Tls {
            name: server_name.to_owned(),
            server_name: server,
            connector: TlsConnector::from(Arc::new(config)),
        });
        Ok(self)
    }

    /// The same client, connecting from `ip` (any port) instead of the address the kernel picks.
    pub fn with_source(mut self, ip: IpAddr) -> Self {
        self.source = Some(ip);
        self
    }

    /// The same client, writing `bytes` on every new connection before anything else (before
    /// the TLS handshake too), e.g. a PROXY protocol header.
    pub fn with_preamble(mut self, bytes: impl Into<Bytes>) -> Self {
        self.preamble = bytes.into();
        self
    }

    /// The address the client connects to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTP version it speaks.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The same client with another timeout for each whole request and response.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `GET path` for `host`; panics with the error, for tests.
    pub fn get(&self, host: &str, path: &str) -> Response {
        self.send(&Request::get(host, path))
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// Send `request` and read the whole response.
    pub fn send(&self, request: &Request) -> Result<Response, ClientError> {
        let mut body = Vec::new();
        let streamed = self.stream(request, |chunk| body.extend_from_slice(chunk))?;
        Ok(Response {
            status: streamed.status,
            headers: streamed.headers,
            body: Bytes::from(body),
            trailers: streamed.trailers,
        })
    }

    /// Send `request`, hand each body chunk to `on_chunk` as it arrives, keep only its digest.
    pub fn stream<F>(&self, request: &Request, on_chunk: F) -> Result<Streamed, ClientError>
    where
        F: FnMut(&[u8]),
    {
        let exchange = self.exchange(request, on_chunk);
        self.block_on(request.method.as_str(), &request.path, exchange)
    }

    /// Connect, send, and stream the response body into `on_chunk`.
    async fn exchange<F>(&self, request: &Request, mut on_chunk: F) -> Result<Streamed, ClientError>
    where
        F: FnMut(&[u8]),
    {
        let failed = |source| ClientError::Exchange {
            method: request.method.to_string(),
            path: request.path.clone(),
            addr: self.addr,
            source,
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let hyper_request =
            request
                .to_hyper(self.version, scheme)
                .map_err(|source| ClientError::Invalid {
                    method: request.method.to_string(),
                    path: request.path.clone(),
                    source,
                })?;
        let response = self
            .connect_and_send(hyper_request)
            .await
            .map_err(|err| match err {
                Failure::Early(err) => err,
                Failure::Exchange(source) => failed(source),
            })?;
        let (parts, mut body) = response.into_parts();
        let mut streamed = Streamed {
            status: parts.status.as_u16(),
            headers: headers::to_list(&parts.headers),
            digest: Digest::new(),
            frames: 0,
            trailers: Vec::new(),
        };
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(failed)?;
            match frame.into_data() {
                Ok(data) => {
                    streamed.frames += 1;
                    streamed.digest.update(&data);
                    on_chunk(&data);
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        streamed.trailers.extend(headers::to_list(&trailers));
                    }
                }
            }
        }
        Ok(streamed)
    }

    /// Open a connection (TCP, the preamble, TLS if configured) and send one request on it.
    async fn connect_and_send(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<Incoming>, Failure> {
        let stream = self.connect().await.map_err(Failure::Early)?;
        self.send_on(stream, request).await
    }

    /// Open a connection: TCP (from the source address, if set), the preamble, TLS if
    /// configured (ALPN: the client's version).
    pub(crate) async fn connect(&self) -> Result<Box<dyn Io>, ClientError> {
        let addr = self.addr;
        let connect_error = |source| ClientError::Connect { addr, source };
        let mut stream = self.connect_tcp().await.map_err(connect_error)?;
        // Nagle only adds latency to small test requests; failing to turn it off is harmless.
        let _ = stream.set_nodelay(true);
        if !self.preamble.is_empty() {
            stream
                .write_all(&self.preamble)
                .await
                .map_err(connect_error)?;
        }
        match &self.tls {
            None => Ok(Box::new(stream)),
            Some(tls) => {
                let stream = tls
                    .connector
                    .connect(tls.server_name.clone(), stream)
                    .await
                    .map_err(|source| ClientError::Tls {
                        addr,
                        name: tls.name.clone(),
                        source,
                    })?;
                Ok(Box::new(stream))
            }
        }
    }

    /// Run `future` (the exchange of `method` `path`) on the client's runtime, within its
    /// timeout.
    pub(crate) fn block_on<T>(
        &self,
        method: &str,
        path: &str,
        future: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        // The runtime is only taken out in Drop, so it is always here while `self` lives.
        let runtime = self
            .runtime
            .as_ref()
            .expect("runtime lives as long as the client");
        // The timer must be made inside the runtime, hence inside the block_on.
        let within = async { tokio::time::timeout(self.timeout, future).await };
        runtime.block_on(within).unwrap_or_else(|_elapsed| {
            Err(ClientError::Timeout {
                method: method.to_owned(),
                path: path.to_owned(),
                addr: self.addr,
                after: self.timeout,
            })
        })
    }

    /// A TCP connection to the server, from the configured source address if any.
    async fn connect_tcp(&self) -> std::io::Result<TcpStream> {
        let Some(source) = self.source else {
            return TcpStream::connect(self.addr).await;
        };
        let socket = match source {
            IpAddr::V4(_) => TcpSocket::new_v4()?,
            IpAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(source, 0))?;
        socket.connect(self.addr).await
    }

    /// Send one request on an open connection with the client's version.
    async fn send_on<I>(
        &self,
        stream: I,
        request: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<Incoming>, Failure>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let addr = self.addr;
        let io = TokioIo::new(stream);
        let handshake = |source| {
            Failure::Early(ClientError::Handshake {
                addr,
                version: self.version,
                source,
            })
        };
        // The connection tasks end when the response is read and the sender dropped; their
        // errors surface through the request or body futures.
        match self.version {
            Version::Http1 => {
                // As many headers as a browser takes (hyper's default is 100).
                let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
                    .max_headers(MAX_HEADERS)
                    .handshake(io)
                    .await
                    .map_err(handshake)?;
                tokio::spawn(conn);
                sender
                    .send_request(request)
                    .await
                    .map_err(Failure::Exchange)
            }
            Version::H2c => {
                // A header list as large as a browser takes (Chromium: 256 KiB).
                let (mut sender, conn) =
                    hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                        .max_header_list_size(256 * 1024)
                        .handshake(io)
                        .await
                        .map_err(handshake)?;
                tokio::spawn(conn);
                sender
                    .send_request(request)
                    .await
                    .map_err(Failure::Exchange)
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Never blocks, so dropping a client inside async code does not panic.
            runtime.shutdown_background();
        }
    }
}

/// A connected stream: TCP, or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A failure before the request was on the wire, or during the exchange.
enum Failure {
    Early(ClientError),
    Exchange(hyper::Error),
}
