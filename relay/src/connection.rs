//! One client connection, from accept to close: admission at accept (access lists and limits,
//! before any wait), the PROXY header of a trusted load balancer, the upstream connect (with
//! retries on the next upstream before any byte is relayed), our own PROXY header to the
//! upstream, then forwarding.
//!
//! A refused connection is reset at once and counted by reason. Waiting for a client's first
//! bytes is readiness-driven (no timer loop), limited in time (`proxy_header_timeout`) and in
//! number ([`crate::limits::MAX_WAITING`]), and happens only after the limits admitted it.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::{ListenerConfig, ProxyVersion};
use crate::forward::{self, ForwardOptions, ForwardStats};
use crate::limits::{Limits, Refusal, Slot};
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
            pipe_size: settings.pipe_size,
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

/// A connection admitted at accept, holding its slot until it ends.
#[derive(Debug)]
pub struct Admitted {
    client: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    /// The peer is a trusted load balancer: the client's address comes in its PROXY header.
    trusted_sender: bool,
}

/// Decides at accept, before any byte is waited for and before a task exists: a client that is
/// its own address is checked against the access lists and both limits here; a trusted PROXY
/// sender only against the listener's total (the client's address arrives in its header). A
/// refused connection is counted by reason and reset at once; `None` then.
pub fn admit(client: TcpStream, peer: SocketAddr, state: &ListenerState) -> Option<Admitted> {
    state.metrics.accepted.fetch_add(1, Ordering::Relaxed);
    let settings = &state.settings;
    let trusted_sender =
        !settings.accept_proxy_from.is_empty() && settings.accept_proxy_from.contains(peer.ip());
    let slot = if trusted_sender {
        state.limits.admit_total()
    } else {
        check_acl(settings, peer.ip()).and_then(|()| state.limits.admit(peer.ip()))
    };
    match slot {
        Ok(slot) => Some(Admitted {
            client,
            peer,
            slot,
            trusted_sender,
        }),
        Err(reason) => {
            refuse(&client, peer, reason, state);
            None
        }
    }
}

/// Serves an admitted connection to its end; `cut` (the end of a stop's grace) resets it.
pub async fn handle(admitted: Admitted, state: Arc<ListenerState>, cut: impl Future<Output = ()>) {
    let peer = admitted.peer;
    let (client, result) = serve(admitted, &state, cut).await;
    if let Err(reason) = result {
        if let Some(client) = client {
            refuse(&client, peer, reason, &state);
        } else {
            state.metrics.refuse(reason);
        }
    }
}

/// Counts a refusal and resets the client's socket (it is closed when dropped).
fn refuse(client: &TcpStream, peer: SocketAddr, reason: Refusal, state: &ListenerState) {
    state.metrics.refuse(reason);
    tracing::debug!(listener = %state.settings.name, %peer, ?reason, "refused");
    // A reset frees the socket at once (no FIN_WAIT, no TIME_WAIT) and tells the client.
    let _ = socket2::SockRef::from(client).set_linger(Some(Duration::ZERO));
}

fn check_acl(settings: &ListenerConfig, ip: IpAddr) -> Result<(), Refusal> {
    if settings.deny.contains(ip) || (!settings.allow.is_empty() && !settings.allow.contains(ip)) {
        return Err(Refusal::Acl);
    }
    Ok(())
}

/// Runs the connection; on a refusal, hands the client socket back (if it still has it) so the
/// caller can reset it.
async fn serve(
    admitted: Admitted,
    state: &ListenerState,
    cut: impl Future<Output = ()>,
) -> (Option<TcpStream>, Result<(), Refusal>) {
    let Admitted {
        mut client,
        peer,
        mut slot,
        trusted_sender,
    } = admitted;
    let settings = &state.settings;
    // TCP_NODELAY and keep-alive came with the socket (see `ClientOptions`).
    let mut source = peer;
    // The address the client reached: a trusted sender's header names it, else it is asked
    // of the kernel below, and only when our own PROXY header carries it.
    let mut destination = None;
    let mut early = Vec::new();
    if trusted_sender {
        let Some(_waiting) = state.limits.start_waiting() else {
            return (Some(client), Err(Refusal::ProxyHeader));
        };
        let (header, rest) = match read_proxy_header(&mut client, settings).await {
            Ok(read) => read,
            Err(reason) => return (Some(client), Err(reason)),
        };
        if let Some((src, dst)) = header {
            source = src;
            destination = Some(dst);
        }
        early = rest;
        if let Err(reason) =
            check_acl(settings, source.ip()).and_then(|()| slot.admit_ip(source.ip()))
        {
            return (Some(client), Err(reason));
        }
    } else if !settings.accept_proxy_from.is_empty() {
        // Only when waiting is cheap: beyond the bound, the first bytes go upstream behind
        // our own header unread, where a spoofed header is mere payload.
        if let Some(_waiting) = state.limits.start_waiting() {
            match first_bytes(&mut client, settings).await {
                Ok(bytes) => early = bytes,
                Err(reason) => {
                    tracing::warn!(listener = %settings.name, %peer, "PROXY header from an untrusted address");
                    return (Some(client), Err(reason));
                }
            }
        }
    }
    let destination = match destination {
        Some(addr) => addr,
        // Written nowhere: no getsockname.
        None if matches!(settings.proxy_protocol, ProxyVersion::None) => peer,
        None => match client.local_addr() {
            Ok(addr) => addr,
            Err(_) => return (Some(client), Err(Refusal::ProxyHeader)),
        },
    };

    let candidates = state.pool.candidates();
    if candidates.is_empty() {
        return (Some(client), Err(Refusal::NoUpstream));
    }
    let mut connected = None;
    for (i, upstream) in candidates.iter().enumerate() {
        if i > 0 {
            state
                .metrics
                .upstream_retries
                .fetch_add(1, Ordering::Relaxed);
        }
        // A warm connection (handshake already done) saves the visitor a round trip.
        if let Some(stream) = upstream.warm.take() {
            connected = Some((stream, upstream, true));
            break;
        }
        match upstream.connect(settings.connect_timeout).await {
            Ok(stream) => {
                connected = Some((stream, upstream, false));
                break;
            }
            Err(e) => tracing::warn!(
                listener = %settings.name, upstream = %upstream.addr, error = %e,
                "upstream connect failed"
            ),
        }
    }
    let Some((mut server, upstream, warm)) = connected else {
        return (Some(client), Err(Refusal::UpstreamConnect));
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
        let _ = socket2::SockRef::from(&server).set_linger(Some(Duration::ZERO));
        // A warm connection that failed at its first write: nothing of the client's has gone
        // anywhere yet (its first bytes are still in `preface`), so a fresh one takes over.
        let fresh = match warm {
            true => upstream.connect(settings.connect_timeout).await.ok(),
            false => None,
        };
        let Some(mut fresh) = fresh else {
            return (Some(client), Err(Refusal::UpstreamConnect));
        };
        tune(&fresh, settings);
        if fresh.write_all(&preface).await.is_err() {
            let _ = socket2::SockRef::from(&fresh).set_linger(Some(Duration::ZERO));
            return (Some(client), Err(Refusal::UpstreamConnect));
        }
        server = fresh;
    }

    state.metrics.active.fetch_add(1, Ordering::Relaxed);
    let stats = ForwardStats::new();
    let outcome = forward::forward_until(client, server, &state.forward, &stats, cut).await;
    state.metrics.active.fetch_sub(1, Ordering::Relaxed);
    drop(slot);
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
    (None, Ok(()))
}

/// A listener's TCP_NODELAY and keep-alive for the sockets it accepts.
///
/// Set on the listening socket, they are inherited: Linux copies both into each connection at
/// its handshake, which spares every connection three `setsockopt` calls (about 1 us of CPU
/// per connection on the benchmark's VM). Only a connection accepted under settings that a
/// reload changed since the bind is set by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    pub nodelay: bool,
    pub keepalive: Option<Duration>,
}

impl ClientOptions {
    pub fn of(settings: &ListenerConfig) -> ClientOptions {
        ClientOptions {
            nodelay: settings.nodelay,
            keepalive: settings.keepalive,
        }
    }

    /// Sets both on `socket` (keep-alive off where none is configured).
    pub fn apply(self, socket: &socket2::Socket) -> std::io::Result<()> {
        socket.set_nodelay(self.nodelay)?;
        match self.keepalive {
            Some(idle) => socket.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle)),
            None => socket.set_keepalive(false),
        }
    }
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

/// The first bytes of an untrusted client, read (not peeked) until they show whether it opens
/// with a PROXY header: refused if it does. Waiting is on readiness alone, never a timer loop;
/// a client that sends nothing within the header deadline (it waits for the server to speak
/// first) is let through with what it sent. The bytes read go upstream after our header.
async fn first_bytes(
    client: &mut TcpStream,
    settings: &ListenerConfig,
) -> Result<Vec<u8>, Refusal> {
    // Both signatures are decided within 16 bytes (v2's is 12, v1's "PROXY " 6).
    let mut first = [0u8; 16];
    let mut len = 0;
    let read = async {
        loop {
            match client.read(&mut first[len..]).await {
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => len += n,
            }
            match proxy_protocol::parse(&first[..len]) {
                Err(_) => return Ok(()),
                Ok(Parsed::Header { .. }) => return Err(Refusal::ProxyHeader),
                // Every byte so far matched a signature.
                Ok(Parsed::Incomplete) if len == first.len() => return Err(Refusal::ProxyHeader),
                Ok(Parsed::Incomplete) => {}
            }
        }
    };
    match tokio::time::timeout(settings.proxy_header_timeout, read).await {
        Ok(Err(reason)) => Err(reason),
        Ok(Ok(())) | Err(_) => Ok(first[..len].to_vec()),
    }
}
