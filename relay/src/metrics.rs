//! Prometheus metrics: per-listener counters kept in atomics on the data path, rendered as the
//! Prometheus text format on demand, and served over plain HTTP by [`serve`].
//!
//! Everything a connection updates is a relaxed atomic add: no lock and no allocation per
//! connection. Rendering walks the listeners and their upstream pools.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::upstream::Pool;

/// Why a connection was refused (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client address is denied, or not allowed.
    Acl,
    /// The listener is at `max_connections`.
    MaxConnections,
    /// The client address is at `max_per_ip`.
    MaxPerIp,
    /// A PROXY header was missing, malformed, late, or sent by an untrusted peer.
    ProxyHeader,
    /// No upstream is up.
    NoUpstream,
    /// Every upstream tried failed to connect in time.
    UpstreamConnect,
}

const REFUSALS: [(Refusal, &str); 6] = [
    (Refusal::Acl, "acl"),
    (Refusal::MaxConnections, "max_connections"),
    (Refusal::MaxPerIp, "max_per_ip"),
    (Refusal::ProxyHeader, "proxy_header"),
    (Refusal::NoUpstream, "no_upstream"),
    (Refusal::UpstreamConnect, "upstream_connect"),
];

/// One listener's counters.
#[derive(Debug, Default)]
pub struct ListenerMetrics {
    pub accepted: AtomicU64,
    pub active: AtomicU64,
    pub accept_errors: AtomicU64,
    /// Client -> upstream.
    pub bytes_up: AtomicU64,
    /// Upstream -> client.
    pub bytes_down: AtomicU64,
    /// Connections whose both directions were spliced.
    pub spliced: AtomicU64,
    /// Connections where at least one direction fell back to copying.
    pub copied: AtomicU64,
    pub upstream_retries: AtomicU64,
    refused: [AtomicU64; REFUSALS.len()],
}

impl ListenerMetrics {
    pub fn refuse(&self, reason: Refusal) {
        let i = REFUSALS.iter().position(|(r, _)| *r == reason).unwrap_or(0);
        self.refused[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self, reason: Refusal) -> u64 {
        let i = REFUSALS.iter().position(|(r, _)| *r == reason).unwrap_or(0);
        self.refused[i].load(Ordering::Relaxed)
    }
}

/// A listener as the metrics endpoint sees it: its name, counters and upstream pool.
type Entry = (String, Arc<ListenerMetrics>, Arc<Pool>);

/// What the metrics endpoint shows: the listeners currently configured.
#[derive(Debug, Default)]
pub struct Registry {
    listeners: Mutex<Vec<Entry>>,
}

impl Registry {
    /// Registers (or, after a reload, replaces) a listener.
    pub fn set_listener(&self, name: &str, metrics: Arc<ListenerMetrics>, pool: Arc<Pool>) {
        let mut all = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|(n, ..)| n != name);
        all.push((name.to_string(), metrics, pool));
    }

    /// Forgets listeners that are no longer configured.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut all = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|(n, ..)| keep(n));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let all = self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out = String::new();
        let mut family =
            |name: &str, kind: &str, help: &str, rows: &mut dyn Iterator<Item = (String, u64)>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for (labels, value) in rows {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let per = |f: fn(&ListenerMetrics) -> &AtomicU64| {
            all.iter()
                .map(move |(n, m, _)| (format!("listener=\"{n}\""), load(f(m))))
                .collect::<Vec<_>>()
        };
        family(
            "ferry_relay_connections_active",
            "gauge",
            "Connections being relayed.",
            &mut per(|m| &m.active).into_iter(),
        );
        family(
            "ferry_relay_connections_total",
            "counter",
            "Connections accepted.",
            &mut per(|m| &m.accepted).into_iter(),
        );
        family(
            "ferry_relay_accept_errors_total",
            "counter",
            "accept() errors (e.g. EMFILE); the listener keeps going.",
            &mut per(|m| &m.accept_errors).into_iter(),
        );
        let bytes: Vec<(String, u64)> = all
            .iter()
            .flat_map(|(n, m, _)| {
                [
                    (
                        format!("listener=\"{n}\",direction=\"upstream\""),
                        load(&m.bytes_up),
                    ),
                    (
                        format!("listener=\"{n}\",direction=\"downstream\""),
                        load(&m.bytes_down),
                    ),
                ]
            })
            .collect();
        family(
            "ferry_relay_bytes_total",
            "counter",
            "Bytes relayed, client to upstream (upstream) and back (downstream).",
            &mut bytes.into_iter(),
        );
        let paths: Vec<(String, u64)> = all
            .iter()
            .flat_map(|(n, m, _)| {
                [
                    (
                        format!("listener=\"{n}\",path=\"splice\""),
                        load(&m.spliced),
                    ),
                    (format!("listener=\"{n}\",path=\"copy\""), load(&m.copied)),
                ]
            })
            .collect();
        family(
            "ferry_relay_forward_path_total",
            "counter",
            "Finished connections by forwarding path: splice(2) both ways, or a copy fallback.",
            &mut paths.into_iter(),
        );
        let refused: Vec<(String, u64)> = all
            .iter()
            .flat_map(|(n, m, _)| {
                REFUSALS.iter().map(move |(r, label)| {
                    (
                        format!("listener=\"{n}\",reason=\"{label}\""),
                        m.refused(*r),
                    )
                })
            })
            .collect();
        family(
            "ferry_relay_refused_total",
            "counter",
            "Connections refused, by reason.",
            &mut refused.into_iter(),
        );
        family(
            "ferry_relay_upstream_retries_total",
            "counter",
            "Connects retried on the next upstream after a failure.",
            &mut per(|m| &m.upstream_retries).into_iter(),
        );
        let upstream_rows = |f: fn(&crate::upstream::Upstream) -> u64| {
            all.iter()
                .flat_map(move |(n, _, pool)| {
                    pool.upstreams()
                        .iter()
                        .map(move |u| (format!("listener=\"{n}\",upstream=\"{}\"", u.addr), f(u)))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        family(
            "ferry_relay_upstream_up",
            "gauge",
            "1 when the upstream passes its health checks.",
            &mut upstream_rows(|u| u64::from(u.is_up())).into_iter(),
        );
        family(
            "ferry_relay_upstream_connections_active",
            "gauge",
            "Connections being relayed to the upstream.",
            &mut upstream_rows(|u| u.active() as u64).into_iter(),
        );
        family(
            "ferry_relay_upstream_connections_total",
            "counter",
            "Connections relayed to the upstream.",
            &mut upstream_rows(|u| u.total()).into_iter(),
        );
        out
    }
}

/// Serves `GET /metrics` (and `/`) on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            // EMFILE and friends: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut request))
                    .await;
            let Ok(Ok(n)) = read else { return };
            let line = String::from_utf8_lossy(&request[..n]);
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let response = if line.starts_with("GET ") && (path == "/metrics" || path == "/") {
                let body = registry.render();
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into()
            };
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

/// Binds the metrics endpoint.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::{Balance, Upstream};

    #[test]
    fn renders_every_family_with_labels() {
        let registry = Registry::default();
        let m = Arc::new(ListenerMetrics::default());
        m.accepted.fetch_add(3, Ordering::Relaxed);
        m.bytes_up.fetch_add(10, Ordering::Relaxed);
        m.refuse(Refusal::MaxPerIp);
        let pool = Arc::new(Pool::new(
            vec![Arc::new(Upstream::new(
                SocketAddr::from(([10, 0, 0, 5], 443)),
                false,
            ))],
            Balance::RoundRobin,
        ));
        registry.set_listener("https", m, pool);
        let text = registry.render();
        for line in [
            "ferry_relay_connections_total{listener=\"https\"} 3",
            "ferry_relay_bytes_total{listener=\"https\",direction=\"upstream\"} 10",
            "ferry_relay_refused_total{listener=\"https\",reason=\"max_per_ip\"} 1",
            "ferry_relay_refused_total{listener=\"https\",reason=\"acl\"} 0",
            "ferry_relay_upstream_up{listener=\"https\",upstream=\"10.0.0.5:443\"} 1",
            "# TYPE ferry_relay_connections_active gauge",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        registry.retain(|name| name != "https");
        assert!(!registry.render().contains("listener=\"https\""));
    }
}
