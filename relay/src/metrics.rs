//! What the relay counts: per-listener counters, and the registry of the listeners a scrape
//! reports (their counters, bound addresses and upstream pools), written in the Prometheus
//! text format (version 0.0.4) by `prometheus-client`. How it is served is
//! [`crate::metrics_endpoint`]'s business.
//!
//! Everything a connection updates is a relaxed atomic add: no lock and no allocation per
//! connection. A scrape copies the list of listeners and reads each counter and upstream once,
//! so a listener a reload removes, or an upstream it replaces, is gone from the next scrape.
//! The series, their labels and meanings are listed in the README ("The relay").

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;

use crate::limits::Refusal;
use crate::upstream::{Pool, Upstream};

/// The `Content-Type` of [`Registry::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

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
    refused: [AtomicU64; Refusal::ALL.len()],
}

impl ListenerMetrics {
    pub fn refuse(&self, reason: Refusal) {
        self.refused[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self, reason: Refusal) -> u64 {
        load(&self.refused[reason.index()])
    }
}

/// A listener as a scrape sees it.
#[derive(Debug, Clone)]
struct Listener {
    name: String,
    /// The address its sockets are bound to (the kernel's choice where the port was 0).
    address: SocketAddr,
    metrics: Arc<ListenerMetrics>,
    pool: Arc<Pool>,
}

/// What a scrape shows: the listeners currently configured.
#[derive(Debug, Default)]
pub struct Registry {
    listeners: Mutex<Vec<Listener>>,
}

impl Registry {
    /// Registers (or, after a reload, replaces) a listener bound to `address`.
    pub fn set_listener(
        &self,
        name: &str,
        address: SocketAddr,
        metrics: Arc<ListenerMetrics>,
        pool: Arc<Pool>,
    ) {
        let mut all = self.lock();
        all.retain(|l| l.name != name);
        all.push(Listener {
            name: name.to_owned(),
            address,
            metrics,
            pool,
        });
    }

    /// Forgets listeners that are no longer configured.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|l| keep(&l.name));
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let snapshot = Snapshot(self.lock().clone());
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(snapshot));
        let mut out = String::new();
        // Writing to a String cannot fail, and the collector fails only when writing does.
        let _ = prometheus_text::encode(&mut out, &registry);
        out
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Listener>> {
        // Nothing panics while the list is locked; a poisoned lock still guards a whole list.
        self.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The listeners at the time of one scrape.
#[derive(Debug)]
struct Snapshot(Vec<Listener>);

/// One listener's samples of a family: the label after `listener` (if any) and the value.
type Samples = Vec<(Option<(&'static str, String)>, u64)>;

/// A family of series with a `listener` label. Counters are named without `_total`: the
/// encoder adds it (so the series is `ferry_relay_connections_total`, as documented).
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: fn(&Listener) -> Samples,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "ferry_relay_connections_active",
        help: "Connections being relayed.",
        kind: MetricType::Gauge,
        samples: |l| unlabelled(&l.metrics.active),
    },
    Family {
        name: "ferry_relay_connections",
        help: "Connections accepted.",
        kind: MetricType::Counter,
        samples: |l| unlabelled(&l.metrics.accepted),
    },
    Family {
        name: "ferry_relay_accept_errors",
        help: "accept() errors (e.g. EMFILE); the listener keeps going.",
        kind: MetricType::Counter,
        samples: |l| unlabelled(&l.metrics.accept_errors),
    },
    Family {
        name: "ferry_relay_bytes",
        help: "Bytes relayed, client to upstream (upstream) and back (downstream).",
        kind: MetricType::Counter,
        samples: |l| {
            let m = &l.metrics;
            labelled(
                "direction",
                [("upstream", &m.bytes_up), ("downstream", &m.bytes_down)],
            )
        },
    },
    Family {
        name: "ferry_relay_forward_path",
        help: "Finished connections by forwarding path: splice(2) both ways, or a copy fallback.",
        kind: MetricType::Counter,
        samples: |l| {
            let m = &l.metrics;
            labelled("path", [("splice", &m.spliced), ("copy", &m.copied)])
        },
    },
    Family {
        name: "ferry_relay_refused",
        help: "Connections refused, by reason.",
        kind: MetricType::Counter,
        samples: |l| {
            Refusal::ALL
                .iter()
                .map(|&r| (Some(("reason", r.label().to_owned())), l.metrics.refused(r)))
                .collect()
        },
    },
    Family {
        name: "ferry_relay_upstream_retries",
        help: "Connects retried on the next upstream after a failure.",
        kind: MetricType::Counter,
        samples: |l| unlabelled(&l.metrics.upstream_retries),
    },
    Family {
        name: "ferry_relay_upstream_up",
        help: "1 when the upstream passes its health checks.",
        kind: MetricType::Gauge,
        samples: |l| per_upstream(l, |u| u64::from(u.is_up())),
    },
    Family {
        name: "ferry_relay_upstream_connections_active",
        help: "Connections being relayed to the upstream.",
        kind: MetricType::Gauge,
        samples: |l| per_upstream(l, |u| u.active() as u64),
    },
    Family {
        name: "ferry_relay_upstream_connections",
        help: "Connections relayed to the upstream.",
        kind: MetricType::Counter,
        samples: |l| per_upstream(l, Upstream::total),
    },
    Family {
        name: "ferry_relay_upstream_warm_idle",
        help: "Warm connections to the upstream waiting for a visitor.",
        kind: MetricType::Gauge,
        samples: |l| per_upstream(l, |u| u.warm.idle() as u64),
    },
    Family {
        name: "ferry_relay_upstream_warm_hits",
        help: "Visitors given a warm connection.",
        kind: MetricType::Counter,
        samples: |l| per_upstream(l, |u| load(&u.warm.hits)),
    },
    Family {
        name: "ferry_relay_upstream_warm_misses",
        help: "Visitors that found no warm connection and waited for a connect.",
        kind: MetricType::Counter,
        samples: |l| per_upstream(l, |u| load(&u.warm.misses)),
    },
    Family {
        name: "ferry_relay_upstream_warm_discarded",
        help: "Warm connections found closed, reset or not silent, and discarded.",
        kind: MetricType::Counter,
        samples: |l| per_upstream(l, |u| load(&u.warm.discarded_dead)),
    },
    Family {
        name: "ferry_relay_upstream_warm_recycled",
        help: "Warm connections closed unused at warm_max_idle.",
        kind: MetricType::Counter,
        samples: |l| per_upstream(l, |u| load(&u.warm.recycled_idle)),
    },
];

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn unlabelled(counter: &AtomicU64) -> Samples {
    vec![(None, load(counter))]
}

fn labelled<const N: usize>(key: &'static str, values: [(&str, &AtomicU64); N]) -> Samples {
    values
        .into_iter()
        .map(|(value, counter)| (Some((key, value.to_owned())), load(counter)))
        .collect()
}

fn per_upstream(listener: &Listener, value: fn(&Upstream) -> u64) -> Samples {
    listener
        .pool
        .upstreams()
        .iter()
        .map(|u| (Some(("upstream", u.addr.to_string())), value(u)))
        .collect()
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        // An info series (`_info`, value 1; a gauge in this format): where each listener
        // accepts, as bound, so that a listener configured with port 0 can be found.
        let mut info = encoder.encode_descriptor(
            "ferry_relay_listener",
            "The address each listener is bound to.",
            None,
            MetricType::Info,
        )?;
        for l in &self.0 {
            let listener = [("listener", l.name.as_str())];
            Info::new([("address", l.address.to_string())])
                .encode(info.encode_family(&listener)?)?;
        }
        for family in FAMILIES {
            let mut series =
                encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
            for l in &self.0 {
                for (label, value) in (family.samples)(l) {
                    let labels: Vec<(&str, &str)> = [("listener", l.name.as_str())]
                        .into_iter()
                        .chain(label.as_ref().map(|(k, v)| (*k, v.as_str())))
                        .collect();
                    let sample = series.encode_family(&labels)?;
                    match family.kind {
                        MetricType::Counter => ConstCounter::new(value).encode(sample)?,
                        _ => ConstGauge::new(value).encode(sample)?,
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Balance;

    fn registry_with_one_listener() -> Registry {
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
        let address = SocketAddr::from(([127, 0, 0, 1], 8443));
        registry.set_listener("https", address, m, pool);
        registry
    }

    /// The whole text, byte for byte: names, labels, order, HELP and TYPE lines as the relay
    /// wrote them before it used prometheus-client, plus the listener info series.
    #[test]
    fn renders_every_family_in_the_prometheus_text_format() {
        let expected = r#"# HELP ferry_relay_listener_info The address each listener is bound to.
# TYPE ferry_relay_listener_info gauge
ferry_relay_listener_info{listener="https",address="127.0.0.1:8443"} 1
# HELP ferry_relay_connections_active Connections being relayed.
# TYPE ferry_relay_connections_active gauge
ferry_relay_connections_active{listener="https"} 0
# HELP ferry_relay_connections_total Connections accepted.
# TYPE ferry_relay_connections_total counter
ferry_relay_connections_total{listener="https"} 3
# HELP ferry_relay_accept_errors_total accept() errors (e.g. EMFILE); the listener keeps going.
# TYPE ferry_relay_accept_errors_total counter
ferry_relay_accept_errors_total{listener="https"} 0
# HELP ferry_relay_bytes_total Bytes relayed, client to upstream (upstream) and back (downstream).
# TYPE ferry_relay_bytes_total counter
ferry_relay_bytes_total{listener="https",direction="upstream"} 10
ferry_relay_bytes_total{listener="https",direction="downstream"} 0
# HELP ferry_relay_forward_path_total Finished connections by forwarding path: splice(2) both ways, or a copy fallback.
# TYPE ferry_relay_forward_path_total counter
ferry_relay_forward_path_total{listener="https",path="splice"} 0
ferry_relay_forward_path_total{listener="https",path="copy"} 0
# HELP ferry_relay_refused_total Connections refused, by reason.
# TYPE ferry_relay_refused_total counter
ferry_relay_refused_total{listener="https",reason="acl"} 0
ferry_relay_refused_total{listener="https",reason="max_connections"} 0
ferry_relay_refused_total{listener="https",reason="max_per_ip"} 1
ferry_relay_refused_total{listener="https",reason="proxy_header"} 0
ferry_relay_refused_total{listener="https",reason="no_upstream"} 0
ferry_relay_refused_total{listener="https",reason="upstream_connect"} 0
# HELP ferry_relay_upstream_retries_total Connects retried on the next upstream after a failure.
# TYPE ferry_relay_upstream_retries_total counter
ferry_relay_upstream_retries_total{listener="https"} 0
# HELP ferry_relay_upstream_up 1 when the upstream passes its health checks.
# TYPE ferry_relay_upstream_up gauge
ferry_relay_upstream_up{listener="https",upstream="10.0.0.5:443"} 1
# HELP ferry_relay_upstream_connections_active Connections being relayed to the upstream.
# TYPE ferry_relay_upstream_connections_active gauge
ferry_relay_upstream_connections_active{listener="https",upstream="10.0.0.5:443"} 0
# HELP ferry_relay_upstream_connections_total Connections relayed to the upstream.
# TYPE ferry_relay_upstream_connections_total counter
ferry_relay_upstream_connections_total{listener="https",upstream="10.0.0.5:443"} 0
# HELP ferry_relay_upstream_warm_idle Warm connections to the upstream waiting for a visitor.
# TYPE ferry_relay_upstream_warm_idle gauge
ferry_relay_upstream_warm_idle{listener="https",upstream="10.0.0.5:443"} 0
# HELP ferry_relay_upstream_warm_hits_total Visitors given a warm connection.
# TYPE ferry_relay_upstream_warm_hits_total counter
ferry_relay_upstream_warm_hits_total{listener="https",upstream="10.0.0.5:443"} 0
# HELP ferry_relay_upstream_warm_misses_total Visitors that found no warm connection and waited for a connect.
# TYPE ferry_relay_upstream_warm_misses_total counter
ferry_relay_upstream_warm_misses_total{listener="https",upstream="10.0.0.5:443"} 0
# HELP ferry_relay_upstream_warm_discarded_total Warm connections found closed, reset or not silent, and discarded.
# TYPE ferry_relay_upstream_warm_discarded_total counter
ferry_relay_upstream_warm_discarded_total{listener="https",upstream="10.0.0.5:443"} 0
# HELP ferry_relay_upstream_warm_recycled_total Warm connections closed unused at warm_max_idle.
# TYPE ferry_relay_upstream_warm_recycled_total counter
ferry_relay_upstream_warm_recycled_total{listener="https",upstream="10.0.0.5:443"} 0
"#;
        assert_eq!(registry_with_one_listener().render(), expected);
    }

    #[test]
    fn a_removed_listener_leaves_the_output() {
        let registry = registry_with_one_listener();
        registry.retain(|name| name != "https");
        let text = registry.render();
        assert!(!text.contains("listener=\"https\""), "{text}");
        assert!(text.contains("# TYPE ferry_relay_connections_total counter"));
    }
}
