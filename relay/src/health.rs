//! Active TCP health checks: every `interval`, a TCP connect to each upstream of a pool (and an
//! immediate close); the result feeds the upstream's rise/fall state machine. Transitions are
//! logged once each. Where the listener sends PROXY headers, a check first sends the header of
//! a connection without a client (v1 `UNKNOWN`, v2 `LOCAL`), as HAProxy's `check-send-proxy`
//! does: an upstream that requires the header (Envoy's `proxy_protocol` listener filter) then
//! sees a well-formed connection instead of counting an error every interval.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::config::ProxyVersion;
use crate::proxy_protocol;
use crate::upstream::{Pool, Transition};

/// How long a check with a PROXY header waits for the upstream to read it before closing.
const HEADER_LINGER: std::time::Duration = std::time::Duration::from_millis(200);

/// How a pool is checked (`timeout`: a connect not done by then counts as a failure).
pub use crate::config::HealthConfig as Checks;

/// Checks `pool` until `stop` turns true (or its sender is gone).
pub async fn run(
    listener: String,
    pool: Arc<Pool>,
    checks: Checks,
    proxy: ProxyVersion,
    mut stop: watch::Receiver<bool>,
) {
    let header: Option<Arc<[u8]>> = match proxy {
        ProxyVersion::None => None,
        ProxyVersion::V1 => Some(proxy_protocol::encode_local(1).into()),
        ProxyVersion::V2 => Some(proxy_protocol::encode_local(2).into()),
    };
    let mut tick = tokio::time::interval(checks.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
        let rounds = pool.upstreams().iter().map(|upstream| {
            let upstream = Arc::clone(upstream);
            let header = header.clone();
            async move {
                let ok = match upstream.connect(checks.timeout).await {
                    Ok(mut stream) => {
                        if let Some(header) = header {
                            // Best effort: the connect is the check; a refused write changes
                            // nothing about it.
                            let _ = tokio::time::timeout(checks.timeout, stream.write_all(&header))
                                .await;
                            // Give the upstream a moment to read the header before the close:
                            // a PROXY listener that sees the FIN first (Envoy's does) drops the
                            // connection unread, as if the check were a broken client.
                            let linger = checks.timeout.min(HEADER_LINGER);
                            let _ = tokio::time::timeout(linger, stream.read(&mut [0u8; 1])).await;
                        }
                        true
                    }
                    Err(_) => false,
                };
                (upstream, ok)
            }
        });
        for (upstream, ok) in futures_join(rounds).await {
            match upstream.record_check(ok, checks.rise, checks.fall) {
                Some(Transition::WentDown) => tracing::warn!(
                    listener = %listener, upstream = %upstream.addr, backup = upstream.backup,
                    "upstream is down: {} failed checks in a row", checks.fall
                ),
                Some(Transition::WentUp) => tracing::info!(
                    listener = %listener, upstream = %upstream.addr, backup = upstream.backup,
                    "upstream is up again"
                ),
                None => {}
            }
        }
    }
}

/// Runs the checks of one round concurrently, so one slow upstream does not delay the others.
async fn futures_join<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        if let Ok(value) = handle.await {
            out.push(value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::{Balance, Upstream};
    use std::net::SocketAddr;
    use std::time::Duration;

    /// A pool of the one upstream at `addr`.
    fn pool_of(addr: SocketAddr) -> (Arc<Upstream>, Arc<Pool>) {
        let upstream = Arc::new(Upstream::new(addr, false));
        let pool = Arc::new(Pool::new(vec![Arc::clone(&upstream)], Balance::RoundRobin));
        (upstream, pool)
    }

    /// Checks every `interval` ms, each given `timeout` ms, `rise` and `fall` both `streak`.
    fn checks(interval: u64, timeout: u64, streak: u32) -> Checks {
        Checks {
            interval: Duration::from_millis(interval),
            timeout: Duration::from_millis(timeout),
            rise: streak,
            fall: streak,
        }
    }

    #[tokio::test]
    async fn a_dead_upstream_goes_down_and_comes_back() {
        // Bound but not listening: connects are refused, and the port stays ours.
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        let (upstream, pool) = pool_of(addr);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(
            "t".into(),
            pool,
            checks(20, 200, 2),
            ProxyVersion::None,
            stop_rx,
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while upstream.is_up() {
            assert!(tokio::time::Instant::now() < deadline, "never went down");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        socket.listen(16).unwrap();
        while !upstream.is_up() {
            assert!(tokio::time::Instant::now() < deadline, "never came back");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }

    /// With PROXY out, a check sends the header of a connection without a client, which the
    /// relay's own parser reads back as such.
    #[tokio::test]
    async fn checks_send_a_local_proxy_header() {
        for (version, expected) in [
            (ProxyVersion::V1, b"PROXY UNKNOWN\r\n".to_vec()),
            (ProxyVersion::V2, proxy_protocol::encode_local(2)),
        ] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (_, pool) = pool_of(listener.local_addr().unwrap());
            let (stop_tx, stop_rx) = watch::channel(false);
            let task = tokio::spawn(run("t".into(), pool, checks(50, 500, 1), version, stop_rx));
            let (mut check, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
                .await
                .expect("a check within 5 s")
                .unwrap();
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut check, &mut got)
                .await
                .unwrap();
            assert_eq!(got, expected, "{version:?}");
            match proxy_protocol::parse(&got).unwrap() {
                proxy_protocol::Parsed::Header { len, source, .. } => {
                    assert_eq!((len, source), (got.len(), None), "{version:?}");
                }
                other => panic!("{version:?}: {other:?}"),
            }
            stop_tx.send(true).unwrap();
            task.await.unwrap();
        }
    }
}
