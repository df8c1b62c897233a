//! Upstream pools: which upstream a new connection tries first, and which are up.
//!
//! Each listener has a pool of primaries and backups. Backups are tried only when no primary is
//! up. Health is a small state machine fed by active TCP checks (`health`): `fall` failures in
//! a row take an upstream down, `rise` successes in a row bring it back, as in HAProxy. Every
//! upstream starts up, so the relay forwards from its first second. A connect that fails on
//! the data path does not change health (one lost SYN is not an outage); the next candidate is
//! tried instead.
//!
//! [`Upstream::connect`] is the one way to reach an upstream, for connections and health checks
//! alike.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

pub use crate::config::Balance;
use crate::warm::Warm;

/// One upstream address and what the relay knows about it.
#[derive(Debug)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub backup: bool,
    up: AtomicBool,
    /// Connections currently forwarded to it.
    active: AtomicUsize,
    /// Connections ever forwarded to it.
    total: AtomicU64,
    streak: Mutex<Streak>,
    /// `TCP_CONGESTION` for the connections to it (`None`: the kernel's default).
    congestion: Option<String>,
    /// Connections opened ahead of need (see [`crate::warm`]).
    pub warm: Warm,
}

/// Consecutive check results in the direction away from the current state.
#[derive(Debug, Default)]
struct Streak {
    count: u32,
}

/// A change of state reported by [`Upstream::record_check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    WentUp,
    WentDown,
}

impl Upstream {
    pub fn new(addr: SocketAddr, backup: bool) -> Upstream {
        Upstream {
            addr,
            backup,
            up: AtomicBool::new(true),
            active: AtomicUsize::new(0),
            total: AtomicU64::new(0),
            streak: Mutex::new(Streak::default()),
            congestion: None,
            warm: Warm::default(),
        }
    }

    /// Connections to this upstream use congestion control `algorithm` (`None`: the kernel's
    /// default). The caller checks that the kernel offers it.
    pub fn with_congestion(mut self, algorithm: Option<String>) -> Upstream {
        self.congestion = algorithm;
        self
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Opens a TCP connection to the upstream; one not established within `timeout` fails
    /// with [`io::ErrorKind::TimedOut`].
    pub async fn connect(&self, timeout: Duration) -> io::Result<TcpStream> {
        let socket = if self.addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(algorithm) = &self.congestion {
            // Set before the SYN, so the whole connection uses it. Checked at start against
            // the kernel's list; a refusal here only costs the default algorithm.
            let _ = socket2::SockRef::from(&socket).set_tcp_congestion(algorithm.as_bytes());
        }
        match tokio::time::timeout(timeout, socket.connect(self.addr)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect timed out after {timeout:?}"),
            )),
        }
    }

    /// Feeds one health check result; `rise` and `fall` are at least 1.
    pub fn record_check(&self, ok: bool, rise: u32, fall: u32) -> Option<Transition> {
        // A poisoned lock only means a panic elsewhere while counting; the count is still
        // meaningful, so carry on with it.
        let mut streak = self.streak.lock().unwrap_or_else(|e| e.into_inner());
        let up = self.is_up();
        if ok == up {
            streak.count = 0;
            return None;
        }
        streak.count += 1;
        let needed = if up { fall } else { rise };
        if streak.count < needed.max(1) {
            return None;
        }
        streak.count = 0;
        self.up.store(!up, Ordering::Relaxed);
        Some(if up {
            Transition::WentDown
        } else {
            Transition::WentUp
        })
    }

    /// Counts a connection to this upstream for as long as the guard lives.
    pub fn track(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        ActiveGuard {
            upstream: Arc::clone(self),
        }
    }
}

/// Decrements the upstream's active count when the connection ends.
#[derive(Debug)]
pub struct ActiveGuard {
    upstream: Arc<Upstream>,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.upstream.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A listener's upstreams.
#[derive(Debug)]
pub struct Pool {
    upstreams: Vec<Arc<Upstream>>,
    balance: Balance,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(upstreams: Vec<Arc<Upstream>>, balance: Balance) -> Pool {
        Pool {
            upstreams,
            balance,
            next: AtomicUsize::new(0),
        }
    }

    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// The upstreams to try for a new connection, in order: the primaries that are up,
    /// balanced; if none is up, the backups that are up. Empty when nothing is up.
    pub fn candidates(&self) -> Vec<Arc<Upstream>> {
        let rotation = self.next.fetch_add(1, Ordering::Relaxed);
        for backup in [false, true] {
            let mut up: Vec<Arc<Upstream>> = self
                .upstreams
                .iter()
                .filter(|u| u.backup == backup && u.is_up())
                .cloned()
                .collect();
            if up.is_empty() {
                continue;
            }
            let n = up.len();
            up.rotate_left(rotation % n);
            if self.balance == Balance::LeastConnections {
                // Stable: equal loads keep the round-robin order, which spreads ties.
                up.sort_by_key(|u| u.active());
            }
            return up;
        }
        Vec::new()
    }
}

/// Keeps every up upstream of `pool` at its warm target until `stop` turns true (or its sender
/// is dropped); then closes every warm connection. `connect` opens one connection; the missing
/// ones of an upstream are opened at once (each costs a round trip across the link).
pub async fn keep_warm<F, Fut>(pool: Arc<Pool>, mut stop: watch::Receiver<bool>, connect: F)
where
    F: Fn(Arc<Upstream>) -> Fut,
    Fut: Future<Output = std::io::Result<TcpStream>> + Send + 'static,
{
    // Failed connects wait this long before the next try, so a refusing upstream costs little.
    const RETRY: Duration = Duration::from_secs(1);
    // Checked at least this often, so dead connections are found before a visitor finds them.
    const TICK: Duration = Duration::from_millis(500);
    let mut failed_at: Option<Instant> = None;
    while !*stop.borrow() {
        let mut wake = Instant::now() + TICK;
        let retry_ok = failed_at.is_none_or(|t| t.elapsed() >= RETRY);
        let mut connects = tokio::task::JoinSet::new();
        for upstream in pool.upstreams() {
            if !upstream.is_up() {
                upstream.warm.clear();
                continue;
            }
            let (missing, next) = upstream.warm.prune();
            if let Some(next) = next {
                wake = wake.min(next);
            }
            if retry_ok {
                for _ in 0..missing {
                    let upstream = Arc::clone(upstream);
                    let connecting = connect(Arc::clone(&upstream));
                    connects.spawn(async move { (upstream, connecting.await) });
                }
            }
        }
        while let Some(joined) = connects.join_next().await {
            let Ok((upstream, result)) = joined else {
                continue;
            };
            match result {
                Ok(stream) => upstream.warm.put(stream),
                Err(e) => {
                    tracing::debug!(upstream = %upstream.addr, error = %e, "warm connect failed");
                    failed_at = Some(Instant::now());
                }
            }
            let oldest = upstream.warm.lock().front().map(|(_, born)| *born);
            if let Some(born) = oldest {
                wake = wake.min(born + upstream.warm.max_idle());
            }
        }
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = any_taken(pool.upstreams()) => {}
            _ = stop.changed() => {}
        }
    }
    for upstream in pool.upstreams() {
        upstream.warm.clear();
    }
}

/// Completes when a warm connection of any of `upstreams` is taken (or its target changed).
async fn any_taken(upstreams: &[Arc<Upstream>]) {
    let mut waits: Vec<_> = upstreams
        .iter()
        .map(|u| Box::pin(u.warm.taken.notified()))
        .collect();
    std::future::poll_fn(|cx| {
        for wait in &mut waits {
            if wait.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    fn pool(balance: Balance, specs: &[(u16, bool)]) -> Pool {
        let ups = specs
            .iter()
            .map(|&(port, backup)| Arc::new(Upstream::new(addr(port), backup)))
            .collect();
        Pool::new(ups, balance)
    }

    fn ports(c: &[Arc<Upstream>]) -> Vec<u16> {
        c.iter().map(|u| u.addr.port()).collect()
    }

    #[test]
    fn round_robin_rotates_over_primaries_only() {
        let p = pool(
            Balance::RoundRobin,
            &[(1, false), (2, false), (3, false), (9, true)],
        );
        assert_eq!(ports(&p.candidates()), [1, 2, 3]);
        assert_eq!(ports(&p.candidates()), [2, 3, 1]);
        assert_eq!(ports(&p.candidates()), [3, 1, 2]);
        assert_eq!(ports(&p.candidates()), [1, 2, 3]);
    }

    #[test]
    fn backups_only_when_every_primary_is_down() {
        let p = pool(Balance::RoundRobin, &[(1, false), (2, false), (9, true)]);
        let [a, b, backup] = [0, 1, 2].map(|i| Arc::clone(&p.upstreams()[i]));
        for _ in 0..3 {
            a.record_check(false, 2, 3);
        }
        assert!(!a.is_up());
        assert!(ports(&p.candidates()).iter().all(|&port| port == 2));
        for _ in 0..3 {
            b.record_check(false, 2, 3);
        }
        assert_eq!(ports(&p.candidates()), [9]);
        for _ in 0..3 {
            backup.record_check(false, 2, 3);
        }
        assert!(p.candidates().is_empty(), "nothing up: nothing to try");
    }

    #[test]
    fn least_connections_prefers_the_idle() {
        let p = pool(
            Balance::LeastConnections,
            &[(1, false), (2, false), (3, false)],
        );
        let ups = p.upstreams().to_vec();
        let _g1 = ups[0].track();
        let _g2 = ups[0].track();
        let _g3 = ups[2].track();
        assert_eq!(ports(&p.candidates()), [2, 3, 1]);
        drop((_g1, _g2));
        assert_eq!(ups[0].active(), 0);
        assert_eq!(ups[0].total(), 2);
        assert_eq!(p.candidates()[0].active(), 0);
    }

    #[test]
    fn health_needs_fall_failures_and_rise_successes_in_a_row() {
        let u = Upstream::new(addr(1), false);
        // (check result, expected transition, up afterwards) with rise 2, fall 3.
        let steps = [
            (false, None, true),
            (false, None, true),
            (true, None, true), // a success resets the failure streak
            (false, None, true),
            (false, None, true),
            (false, Some(Transition::WentDown), false),
            (true, None, false),
            (false, None, false), // a failure resets the success streak
            (true, None, false),
            (true, Some(Transition::WentUp), true),
        ];
        for (i, (ok, transition, up)) in steps.into_iter().enumerate() {
            assert_eq!(u.record_check(ok, 2, 3), transition, "step {i}");
            assert_eq!(u.is_up(), up, "step {i}");
        }
    }
}
