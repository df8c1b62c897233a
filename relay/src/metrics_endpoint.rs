//! The metrics endpoint: HTTP/1.1 (hyper) serving [`Registry::render`] at `GET /metrics` (and
//! `GET /`); any other method or path gets 404.
//!
//! It is bounded so that a slow or hostile client cannot hold the relay's memory or tasks:
//! at most [`MAX_CONNECTIONS`] connections at once (more are closed on accept), one request per
//! connection, request headers within [`HEADER_TIMEOUT`] and [`MAX_HEADER_BYTES`], and the
//! whole exchange within [`CONNECTION_DEADLINE`], after which the connection is dropped
//! whatever it is doing (a client that stops reading the answer included).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::metrics::{self, Registry};

/// Connections served at once; a scraper needs one, a few more cover humans with curl.
pub const MAX_CONNECTIONS: usize = 8;

/// Time for a client to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Time for a whole exchange: Prometheus's default `scrape_timeout`, past which the scraper has
/// given up anyway.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

/// hyper's smallest read buffer: request headers beyond it are refused (431).
pub const MAX_HEADER_BYTES: usize = 8192;

/// Serves `registry` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::debug!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!("metrics: too many connections; closing a new one");
            continue;
        };
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = respond(request.method(), request.uri().path(), &registry);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_DEADLINE, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "metrics: connection failed"),
                Err(_) => tracing::debug!("metrics: connection over its deadline; closed"),
            }
            drop(slot);
        });
    }
}

/// The answer to `method path`.
fn respond(method: &Method, path: &str, registry: &Registry) -> Response<Full<Bytes>> {
    if method != Method::GET || !matches!(path, "/metrics" | "/") {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    }
    let mut response = Response::new(Full::new(Bytes::from(registry.render())));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn start() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Arc::new(Registry::default())));
        addr
    }

    /// Sends `request`, reads until the endpoint closes.
    async fn try_exchange(addr: std::net::SocketAddr, request: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
            .await
            .expect("an answer and a close within 5 s")?;
        Ok(answer)
    }

    async fn exchange(addr: std::net::SocketAddr, request: &str) -> String {
        try_exchange(addr, request).await.unwrap()
    }

    #[tokio::test]
    async fn answers_get_metrics_and_root_and_nothing_else() {
        let addr = start().await;
        for path in ["/metrics", "/"] {
            let answer = exchange(addr, &format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n")).await;
            assert!(
                answer.starts_with("HTTP/1.1 200 OK\r\n"),
                "{path}: {answer}"
            );
            assert!(
                answer.contains("content-type: text/plain; version=0.0.4"),
                "{answer}"
            );
            assert!(answer.contains("# TYPE ferry_relay_connections_total counter"));
        }
        for request in [
            "GET /other HTTP/1.1\r\nhost: x\r\n\r\n",
            "POST /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
        ] {
            let answer = exchange(addr, request).await;
            assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
        }
    }

    /// Clients that never finish their request are dropped after the header timeout, and
    /// while they hold every slot, new connections are closed at once rather than queued.
    #[tokio::test]
    async fn silent_clients_are_bounded_in_number_and_time() {
        let addr = start().await;
        let mut silent = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(b"GET /metr").await.unwrap();
            silent.push(stream);
        }
        // Let the endpoint take every slot before the extra client comes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = tokio::time::Instant::now();
        // Closed unread: the close may come as a reset.
        let refused = try_exchange(addr, "GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(
            refused.as_ref().map_or(true, String::is_empty),
            "over the limit: closed without an answer, not {refused:?}"
        );
        assert!(started.elapsed() < HEADER_TIMEOUT, "closed at once");
        for mut stream in silent {
            let mut rest = Vec::new();
            let closed = tokio::time::timeout(
                HEADER_TIMEOUT + Duration::from_secs(3),
                stream.read_to_end(&mut rest),
            )
            .await;
            assert!(
                closed.is_ok(),
                "a silent client was kept past the header timeout"
            );
        }
        let answer = exchange(addr, "GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "slots come back: {answer}"
        );
    }
}
