//! A programmable test origin: routes by path, records every request it receives.
//!
//! [`Origin`] listens on 127.0.0.1 (an ephemeral port unless told otherwise) and serves HTTP/1.1
//! and HTTP/2 with prior knowledge (h2c) on the same port by default, so the same origin works
//! behind Envoy's HTTP/1.1 and HTTP/2 upstream codecs. It runs on its own tokio runtime, owned by
//! the handle and shut down when the handle is dropped, so plain `#[test]` functions can use it.
//! Routes may be added at any time: start the origin, start Envoy pointed at it, then add routes.
//!
//! [`Origin::start_tls`] serves HTTPS instead, with a certificate from [`crate::pki`]: rustls with
//! the ring provider (given explicitly; no process-wide default is assumed), TLS 1.2 and 1.3,
//! ALPN `h2` and `http/1.1` (as the [`Protocol`] allows). Each recorded request carries the SNI
//! the client sent. A failed handshake (a client that rejects the certificate) ends only that
//! connection and records nothing.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::headers::{self, HeaderLookup};
use crate::pki::Leaf;
use crate::reply::{ChannelBody, Reply};

/// The HTTP versions the origin accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 and h2c prior knowledge, told apart by the connection preface.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 with prior knowledge (h2c) only.
    H2c,
}

/// A request as the origin saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The path and query, e.g. `/search?q=1`.
    pub path: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// The authority of the request URI (HTTP/2's `:authority`); `None` on HTTP/1.1.
    pub authority: Option<String>,
    /// The headers in wire order, duplicates kept, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Bytes,
    /// The server name the client sent in its TLS handshake (`None` over plain TCP, or when the
    /// client sent none).
    pub sni: Option<String>,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.header(name)
    }

    /// Every value of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.header_all(name)
    }

    /// The host the request was for: `Host`, else HTTP/2's `:authority`.
    pub fn host(&self) -> Option<&str> {
        self.header("host").or(self.authority.as_deref())
    }
}

/// A reply computed from the request.
type ReplyFn = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// How a route answers.
#[derive(Clone)]
enum Handler {
    Fixed(Reply),
    Computed(Arc<ReplyFn>),
    /// Accept a WebSocket upgrade and echo every message.
    WebSocketEcho,
}

/// What the connection tasks share with the handle.
#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Handler>>,
    requests: Mutex<Vec<Recorded>>,
}

/// Lock `mutex`, ignoring poisoning: a test that panicked while holding it has failed already,
/// and the data (routes, a request log) stays consistent at every await point.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The running test origin. Dropping it stops the server.
pub struct Origin {
    addr: SocketAddr,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Origin {
    /// Start an origin on 127.0.0.1 with an ephemeral port, speaking HTTP/1.1 and h2c.
    ///
    /// # Panics
    /// If the runtime or the socket cannot be created.
    pub fn start() -> Self {
        Self::start_with(Protocol::Auto)
    }

    /// Start an origin on 127.0.0.1 with an ephemeral port, speaking `protocol`.
    ///
    /// # Panics
    /// If the runtime or the socket cannot be created.
    pub fn start_with(protocol: Protocol) -> Self {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::bind(any_port, protocol)
            .unwrap_or_else(|err| panic!("cannot start the test origin on {any_port}: {err}"))
    }

    /// Start an origin on `addr` (port 0 for an ephemeral one), speaking `protocol`.
    pub fn bind(addr: SocketAddr, protocol: Protocol) -> io::Result<Self> {
        Self::bind_with(addr, protocol, None)
    }

    /// Start an HTTPS origin on 127.0.0.1 with an ephemeral port, presenting `leaf`, speaking
    /// HTTP/1.1 and HTTP/2 (chosen by ALPN).
    ///
    /// # Panics
    /// If the runtime or the socket cannot be created, or rustls refuses the certificate.
    pub fn start_tls(leaf: &Leaf) -> Self {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::bind_tls(any_port, Protocol::Auto, leaf)
            .unwrap_or_else(|err| panic!("cannot start the HTTPS test origin on {any_port}: {err}"))
    }

    /// Start an HTTPS origin on `addr` presenting `leaf`; `protocol` decides the ALPN protocols
    /// offered (`Auto`: `h2` and `http/1.1`).
    pub fn bind_tls(addr: SocketAddr, protocol: Protocol, leaf: &Leaf) -> io::Result<Self> {
        let acceptor = tls_acceptor(leaf, protocol)?;
        Self::bind_with(addr, protocol, Some(acceptor))
    }

    fn bind_with(
        addr: SocketAddr,
        protocol: Protocol,
        tls: Option<TlsAcceptor>,
    ) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-origin")
            .enable_all()
            .build()?;
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(std_listener)?
        };
        let state = Arc::new(State::default());
        runtime.spawn(serve(listener, protocol, tls, Arc::clone(&state)));
        Ok(Self {
            addr,
            state,
            runtime: Some(runtime),
        })
    }

    /// The address the origin listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answer requests for `path` (the path only, the query is ignored) with `reply`. The path
    /// `*` answers every path that has no route of its own; other paths get a 404.
    pub fn route(&self, path: &str, reply: Reply) -> &Self {
        lock(&self.state.routes).insert(path.to_owned(), Handler::Fixed(reply));
        self
    }

    /// Accept WebSocket upgrades on `path` and echo every text and binary message back (a
    /// request without `Upgrade: websocket` gets a 400).
    pub fn websocket_echo(&self, path: &str) -> &Self {
        lock(&self.state.routes).insert(path.to_owned(), Handler::WebSocketEcho);
        self
    }

    /// Answer requests for `path` with a reply computed from the request.
    pub fn route_fn<F>(&self, path: &str, reply: F) -> &Self
    where
        F: Fn(&Recorded) -> Reply + Send + Sync + 'static,
    {
        lock(&self.state.routes).insert(path.to_owned(), Handler::Computed(Arc::new(reply)));
        self
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.requests).clone()
    }

    /// The requests received so far whose path (without the query) is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        lock(&self.state.requests)
            .iter()
            .filter(|request| request.path.split('?').next() == Some(path))
            .cloned()
            .collect()
    }

    /// The latest request received.
    pub fn last_request(&self) -> Option<Recorded> {
        lock(&self.state.requests).last().cloned()
    }

    /// Forget the requests received so far.
    pub fn clear_requests(&self) {
        lock(&self.state.requests).clear();
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Not `drop(runtime)`: that blocks, and panics when the handle is dropped in async code.
            runtime.shutdown_background();
        }
    }
}

/// The rustls acceptor for `leaf`, with the ALPN protocols `protocol` allows.
fn tls_acceptor(leaf: &Leaf, protocol: Protocol) -> io::Result<TlsAcceptor> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = CertificateDer::from(leaf.cert_der.clone());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
        })
        .map_err(io::Error::other)?;
    config.alpn_protocols = match protocol {
        Protocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Protocol::Http1 => vec![b"http/1.1".to_vec()],
        Protocol::H2c => vec![b"h2".to_vec()],
    };
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accept connections until the runtime shuts down.
async fn serve(
    listener: TcpListener,
    protocol: Protocol,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            // Per-connection errors (the peer reset before accept, fd exhaustion): keep serving.
            Err(_) => continue,
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, protocol, None, state).await,
                Some(acceptor) => {
                    // A failed handshake (the client refused our certificate) ends only this
                    // connection.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let (_, session) = stream.get_ref();
                    let sni = session.server_name().map(str::to_owned);
                    let protocol = match session.alpn_protocol() {
                        Some(b"h2") => Protocol::H2c,
                        Some(b"http/1.1") => Protocol::Http1,
                        _ => protocol,
                    };
                    serve_connection(stream, protocol, sni, state).await;
                }
            }
        });
    }
}

/// Serve HTTP on one connection (plain TCP or TLS) until it closes.
async fn serve_connection<S>(stream: S, protocol: Protocol, sni: Option<String>, state: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    match protocol {
        Protocol::Auto => {}
        Protocol::Http1 => builder = builder.http1_only(),
        Protocol::H2c => builder = builder.http2_only(),
    }
    let sni = Arc::new(sni);
    let service = service_fn(move |request| handle(Arc::clone(&state), Arc::clone(&sni), request));
    // A connection error (Envoy resetting a stream, a client going away) ends only this
    // connection; the test sees its effect through the client.
    let _ = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await;
}

/// Record one request and answer it from the route table.
async fn handle(
    state: Arc<State>,
    sni: Arc<Option<String>>,
    mut request: http::Request<Incoming>,
) -> Result<http::Response<ChannelBody>, hyper::Error> {
    let upgrade = hyper::upgrade::on(&mut request);
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let recorded = Recorded {
        method: parts.method.as_str().to_owned(),
        path,
        version: format!("{:?}", parts.version),
        authority: parts.uri.authority().map(|authority| authority.to_string()),
        headers: headers::to_list(&parts.headers),
        body,
        sni: (*sni).clone(),
    };
    let handler = {
        let routes = lock(&state.routes);
        routes
            .get(parts.uri.path())
            .or_else(|| routes.get("*"))
            .cloned()
    };
    let reply = match handler {
        Some(Handler::Fixed(reply)) => reply,
        Some(Handler::Computed(reply)) => reply(&recorded),
        Some(Handler::WebSocketEcho) => websocket_echo(&recorded, upgrade),
        None => Reply::ok(
            "text/plain",
            format!("test origin: no route for {}\n", parts.uri.path()),
        )
        .with_status(404),
    };
    lock(&state.requests).push(recorded);
    Ok(reply.into_response(&parts.method))
}

/// The answer to a WebSocket upgrade: 101 with the accept key, then an echo of every message on
/// the upgraded connection (in a task of its own).
fn websocket_echo(request: &Recorded, upgrade: hyper::upgrade::OnUpgrade) -> Reply {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;

    let wants = request
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let Some(key) = request.header("sec-websocket-key").filter(|_| wants) else {
        return Reply::ok("text/plain", "expected a WebSocket upgrade\n").with_status(400);
    };
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                return;
            }
            let echo = message.is_text() || message.is_binary();
            if echo && ws.send(message).await.is_err() {
                return;
            }
        }
    });
    Reply::new(101)
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-accept", &derive_accept_key(key.as_bytes()))
}
