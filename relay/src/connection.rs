//! One client connection, from accept to close: the PROXY header of a trusted load balancer,
//! access lists, limits, the upstream connect (with retries on the next upstream before any
//! byte is relayed), our own PROXY header to the upstream, then forwarding.
//!
//! A refused connection is simply closed, and counted by reason.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::{ListenerConfig, ProxyVersion};
use crate::forward::{self, ForwardOptions, ForwardStats};
use crate::limits::{Limits, Refusal};
use crate::metrics::ListenerMetrics;
use crate::proxy_protocol::{self, Parsed};
use crate::upstream::Pool;

/// What a connection needs of its listener; a reload replaces it for later connections only.
#[derive(Debug)]
pub struct ListenerState {
    pub settings: ListenerConfig,
    pub pool: Arc<Pool>,
    pub limits: Arc<Limits>,
    pub metrics: Arc<ListenerMetrics>,
    forward: ForwardOptions,
}

impl ListenerState {
    pub fn new(
        settings: ListenerConfig,
        pool: Arc<Pool>,
        limits: Arc<Limits>,
        metrics: Arc<ListenerMetrics>,
    ) -> ListenerState {
        let forward = ForwardOptions {
            idle_timeout: settings.idle_timeout,
            half_close_timeout: settings.half_close_timeout,
            pipe_size: None,
            splice: settings.splice,
        };
        ListenerState {
            settings,
            pool,
            limits,
            metrics,
            forward,
        }
    }
}

/// Serves one accepted connection to its end.
pub async fn handle(client: TcpStream, peer: SocketAddr, state: Arc<ListenerState>) {
    let metrics = &state.metrics;
    metrics.accepted.fetch_add(1, Ordering::Relaxed);
    match serve(client, peer, &state).await {
        Ok(()) => {}
        Err(reason) => {
            metrics.refuse(reason);
            tracing::debug!(listener = %state.settings.name, %peer, ?reason, "refused");
        }
    }
}

async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    state: &ListenerState,
) -> Result<(), Refusal> {
    let settings = &state.settings;
    tune(&client, settings);
    let mut source = peer;
    let mut destination = client.local_addr().map_err(|_| Refusal::ProxyHeader)?;
    let mut early = Vec::new();
    if !settings.accept_proxy_from.is_empty() {
        if settings.accept_proxy_from.contains(peer.ip()) {
            let (header, rest) = read_proxy_header(&mut client, settings).await?;
            if let Some((src, dst)) = header {
                source = src;
                destination = dst;
            }
            early = rest;
        } else if sends_proxy_header(&client, settings).await {
            tracing::warn!(listener = %settings.name, %peer, "PROXY header from an untrusted address");
            return Err(Refusal::ProxyHeader);
        }
    }
    let ip = source.ip();
    if settings.deny.contains(ip) || (!settings.allow.is_empty() && !settings.allow.contains(ip)) {
        return Err(Refusal::Acl);
    }
    let _slot = state.limits.admit(ip)?;

    let candidates = state.pool.candidates();
    if candidates.is_empty() {
        return Err(Refusal::NoUpstream);
    }
    let mut connected = None;
    for (i, upstream) in candidates.iter().enumerate() {
        if i > 0 {
            state
                .metrics
                .upstream_retries
                .fetch_add(1, Ordering::Relaxed);
        }
        match upstream.connect(settings.connect_timeout).await {
            Ok(stream) => {
                connected = Some((stream, upstream));
                break;
            }
            Err(e) => tracing::warn!(
                listener = %settings.name, upstream = %upstream.addr, error = %e,
                "upstream connect failed"
            ),
        }
    }
    let Some((mut server, upstream)) = connected else {
        return Err(Refusal::UpstreamConnect);
    };
    tune(&server, settings);
    let _active = upstream.track();

    let mut preface = match settings.proxy_protocol {
        ProxyVersion::None => Vec::new(),
        ProxyVersion::V1 => proxy_protocol::encode_v1(source, destination),
        ProxyVersion::V2 => proxy_protocol::encode_v2(source, destination),
    };
    preface.extend_from_slice(&early);
    if !preface.is_empty() && server.write_all(&preface).await.is_err() {
        return Err(Refusal::UpstreamConnect);
    }

    state.metrics.active.fetch_add(1, Ordering::Relaxed);
    let stats = ForwardStats::new();
    let outcome = forward::forward(client, server, &state.forward, &stats).await;
    state.metrics.active.fetch_sub(1, Ordering::Relaxed);
    let done = stats.snapshot();
    let m = &state.metrics;
    m.bytes_up
        .fetch_add(done.client_to_upstream, Ordering::Relaxed);
    m.bytes_down
        .fetch_add(done.upstream_to_client, Ordering::Relaxed);
    if done.copied_directions > 0 {
        m.copied.fetch_add(1, Ordering::Relaxed);
    } else if done.spliced_directions > 0 {
        m.spliced.fetch_add(1, Ordering::Relaxed);
    }
    tracing::debug!(listener = %settings.name, client = %source, upstream = %upstream.addr, ?outcome, "closed");
    Ok(())
}

/// TCP_NODELAY and keep-alive, as configured. Failures only cost latency; they are ignored.
fn tune(stream: &TcpStream, settings: &ListenerConfig) {
    let _ = stream.set_nodelay(settings.nodelay);
    if let Some(idle) = settings.keepalive {
        let socket = socket2::SockRef::from(stream);
        let _ = socket.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle));
    }
}

/// Reads a whole PROXY header from a trusted sender, within the deadline. Returns the
/// addresses it carries (none for LOCAL/UNKNOWN) and the bytes that followed it.
async fn read_proxy_header(
    client: &mut TcpStream,
    settings: &ListenerConfig,
) -> Result<(Option<(SocketAddr, SocketAddr)>, Vec<u8>), Refusal> {
    let read = async {
        let mut buf = Vec::with_capacity(256);
        loop {
            match proxy_protocol::parse(&buf) {
                Ok(Parsed::Incomplete) => {}
                Ok(Parsed::Header {
                    len,
                    source,
                    destination,
                }) => {
                    let addrs = source.zip(destination);
                    return Ok((addrs, buf[len..].to_vec()));
                }
                Err(e) => {
                    tracing::warn!(listener = %settings.name, error = %e, "bad PROXY header");
                    return Err(Refusal::ProxyHeader);
                }
            }
            if buf.len() >= proxy_protocol::MAX_HEADER_LEN {
                return Err(Refusal::ProxyHeader);
            }
            let mut chunk = [0u8; 512];
            let want = chunk.len().min(proxy_protocol::MAX_HEADER_LEN - buf.len());
            match client.read(&mut chunk[..want]).await {
                Ok(0) | Err(_) => return Err(Refusal::ProxyHeader),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(settings.proxy_header_timeout, read)
        .await
        .unwrap_or(Err(Refusal::ProxyHeader))
}

/// Whether an untrusted client opens with what looks like a PROXY header. Peeks (consumes
/// nothing) until the first bytes decide, and gives up after the header deadline: a client
/// that waits for the server to speak first is let through.
async fn sends_proxy_header(client: &TcpStream, settings: &ListenerConfig) -> bool {
    let check = async {
        let mut first = [0u8; 16];
        loop {
            let n = match client.peek(&mut first).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            match proxy_protocol::parse(&first[..n]) {
                Err(_) => return false,
                Ok(Parsed::Header { .. }) => return true,
                // Every signature byte seen so far matched.
                Ok(Parsed::Incomplete) if n == first.len() => return true,
                Ok(Parsed::Incomplete) => {
                    // Peek returns at once while any byte is queued: wait for more.
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
        }
    };
    tokio::time::timeout(settings.proxy_header_timeout, check)
        .await
        .unwrap_or(false)
}
