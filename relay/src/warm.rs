//! Warm upstream connections: per upstream, a few connections whose TCP handshake is done
//! before any visitor needs them, so a visitor's first bytes cross the long link at once
//! instead of after a round trip for the handshake.
//!
//! Guarantees:
//! - A warm connection has carried nothing: the PROXY header and the client's bytes go out only
//!   when it is handed to a visitor ([`Warm::take`]).
//! - [`Warm::take`] never hands out a connection the upstream has closed or reset, nor one that
//!   received anything: it looks first (a non-blocking one-byte peek: only "would block" means
//!   alive and silent), discards the dead and tries the next. With none left the caller
//!   connects afresh; no client byte has been sent either way.
//! - No connection is kept longer than `max_idle`: older ones are closed (recycled) before the
//!   upstream's own timeout for a silent connection can close one under a visitor. The shipped
//!   Envoy config gives a PROXY listener 5 s for the header (`listener_filters_timeout`); the
//!   default `warm_max_idle` is 3 s, so a connection taken at the last moment still has 2 s,
//!   which covers a header sent at once.
//! - The pool holds at most `target` connections per upstream and is refilled in the
//!   background ([`crate::upstream::keep_warm`]), only for upstreams that are up; stopping the
//!   refill closes every warm connection.
//!
//! Warm connections are not client connections: they count toward no listener limit, and an
//! upstream's `connections_active` (least-connections) counts only those handed out.

use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

/// One upstream's warm connections and their counters.
#[derive(Debug, Default)]
pub struct Warm {
    idle: Mutex<VecDeque<(TcpStream, Instant)>>,
    /// How many to keep (0: none).
    target: AtomicUsize,
    /// `max_idle` in milliseconds.
    max_idle_ms: AtomicU64,
    /// Woken when a connection is taken, so the refill starts at once.
    pub(crate) taken: Notify,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub discarded_dead: AtomicU64,
    pub recycled_idle: AtomicU64,
}

impl Warm {
    /// Keeps `target` connections, each at most `max_idle` old. A smaller target closes the
    /// extra ones at the next refill.
    pub fn configure(&self, target: usize, max_idle: Duration) {
        self.target.store(target, Ordering::Relaxed);
        let ms = u64::try_from(max_idle.as_millis()).unwrap_or(u64::MAX);
        self.max_idle_ms.store(ms, Ordering::Relaxed);
        self.taken.notify_one();
    }

    pub fn target(&self) -> usize {
        self.target.load(Ordering::Relaxed)
    }

    pub(crate) fn max_idle(&self) -> Duration {
        Duration::from_millis(self.max_idle_ms.load(Ordering::Relaxed))
    }

    /// Connections waiting now.
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(TcpStream, Instant)>> {
        // The queue is valid whatever panicked while it was held.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A live, silent, young enough warm connection (the most recent one), or `None`: then
    /// the caller connects afresh. Counted as a hit or, when warm connections are configured,
    /// a miss.
    pub fn take(&self) -> Option<TcpStream> {
        let max_idle = self.max_idle();
        loop {
            let Some((stream, born)) = self.lock().pop_back() else {
                if self.target() > 0 {
                    self.misses.fetch_add(1, Ordering::Relaxed);
                }
                return None;
            };
            if born.elapsed() >= max_idle {
                self.recycled_idle.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if !alive_and_silent(&stream) {
                self.discarded_dead.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.hits.fetch_add(1, Ordering::Relaxed);
            self.taken.notify_one();
            return Some(stream);
        }
    }

    /// Closes connections beyond the target and those older than `max_idle` or dead; returns
    /// how many are missing and when the oldest kept one must go.
    pub(crate) fn prune(&self) -> (usize, Option<Instant>) {
        let (target, max_idle) = (self.target(), self.max_idle());
        let mut idle = self.lock();
        while idle.len() > target {
            idle.pop_front();
        }
        let before = idle.len();
        idle.retain(|(_, born)| born.elapsed() < max_idle);
        let recycled = before - idle.len();
        let before = idle.len();
        idle.retain(|(stream, _)| alive_and_silent(stream));
        let dead = before - idle.len();
        drop(idle);
        self.recycled_idle
            .fetch_add(recycled as u64, Ordering::Relaxed);
        self.discarded_dead
            .fetch_add(dead as u64, Ordering::Relaxed);
        let idle = self.lock();
        let next = idle.front().map(|(_, born)| *born + max_idle);
        (target.saturating_sub(idle.len()), next)
    }

    pub(crate) fn put(&self, stream: TcpStream) {
        let mut idle = self.lock();
        if idle.len() < self.target() {
            idle.push_back((stream, Instant::now()));
        }
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

/// Whether the upstream has neither closed nor reset the connection, nor sent anything: a
/// non-blocking peek of one byte would block.
fn alive_and_silent(stream: &TcpStream) -> bool {
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    matches!(
        socket2::SockRef::from(stream).peek(&mut byte),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    )
}
