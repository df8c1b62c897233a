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

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;

pub use crate::config::Balance;

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
        }
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
        match tokio::time::timeout(timeout, TcpStream::connect(self.addr)).await {
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
