//! Bidirectional forwarding of one connection: splice through a pipe per direction, with a
//! plain copy where splice is refused.
//!
//! Each direction is a loop of "fill, then drain": wait until the source is readable, move
//! what it has into the conduit (a pipe with [`splice_in`](crate::splice::splice_in), or a buffer), then move all of it
//! to the destination, waiting for writability whenever it answers EAGAIN ("send buffer
//! full"). Only an empty conduit is ever filled, so an EAGAIN while filling always means
//! "source empty" and clearing tokio's readiness flag is right; it never means "pipe full"
//! (see [`crate::splice`]). A would-block always parks the task on readiness, never retries,
//! so nothing busy-loops. The pipe is taken from the [`PipePool`] when the source has data
//! and handed back when the source runs dry, so idle connections hold no pipe.
//!
//! Short transfers skip the pipe: until one read brings 16 KiB, a direction reads into a
//! stack buffer and writes what it read at once (one `read` and one `write` where a pipe
//! costs three splices and the pool's emptiness check), keeping on the heap only what the
//! destination does not take yet. A read that comes up short has emptied the socket, so its
//! readiness is cleared without another read (as tokio's `poll_read` does); a read that fills
//! the buffer shows a bulk transfer, and the direction splices from then on. These bytes are
//! counted apart ([`DirectionReport::small`]), and they are no fallback: the direction is
//! still on the splice path.
//!
//! Closing, where relays lose bytes:
//!
//! * **FIN** (`splice`/`read` returns 0): the conduit is already empty (it is always drained
//!   before the next fill), so the FIN is passed on at once with `shutdown(Write)` on the
//!   other side while the opposite direction keeps flowing; when the opposite direction has
//!   already finished, the connection ends there and the close of both sockets, right after,
//!   passes it on (nothing is left unread on either, so the close sends a FIN, not a reset).
//!   Bytes are never discarded at a clean close.
//! * **Half-closed**: once one direction has finished, the connection gets
//!   `half_close_timeout` of inactivity (instead of `idle_timeout`) to finish the other, then
//!   both sockets are closed, so a peer that never sends its FIN cannot pin sockets in
//!   CLOSE_WAIT.
//! * **Reset or error** on either side: both sockets are closed with `SO_LINGER` 0, so the
//!   other peer sees a reset rather than a clean end of a truncated stream.
//! * **Cut short by the relay** (the idle or half-close timeout, or [`forward_until`]'s `cut`,
//!   which the graceful stop fires when its grace is over): both sockets are reset too. Only a
//!   peer may end a stream with a FIN; a FIN the relay made up would tell the other peer that
//!   a truncated stream was whole.
//!
//! Splice refusal (EINVAL/ENOSYS/EOPNOTSUPP) switches that direction to copying: logged once
//! per process with `warn!`, counted in [`ForwardStats`] and reported in [`Outcome`], so a
//! relay that never splices cannot go unnoticed.
//!
//! This file holds the public API ([`forward`], its options, stats and [`Outcome`]) and the
//! supervisor that runs both directions against the timers; the per-direction loop and its
//! conduit are in `pump`.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};
use tracing::debug;

use crate::pipe_pool::PipePool;

mod pump;
#[cfg(test)]
mod tests;

use pump::Pump;

const MIN_PIPE_SIZE: usize = 4096;
const MAX_PIPE_SIZE: usize = 1 << 30;

/// How one connection is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardOptions {
    /// No byte in either direction for this long closes both sides.
    pub idle_timeout: Duration,
    /// Once one direction has finished (FIN passed on), no byte for this long closes both.
    pub half_close_timeout: Duration,
    /// `F_SETPIPE_SZ` for the pipes; `None` keeps the kernel's default (64 KiB).
    pub pipe_size: Option<usize>,
    /// `false` forces the copy path (tests, and an operator switch).
    pub splice: bool,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        ForwardOptions {
            idle_timeout: Duration::from_secs(300),
            half_close_timeout: Duration::from_secs(30),
            pipe_size: None,
            splice: true,
        }
    }
}

/// An invalid [`ForwardOptions`] value.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    #[error("idle_timeout must be greater than zero")]
    IdleTimeoutZero,
    #[error("half_close_timeout must be greater than zero")]
    HalfCloseTimeoutZero,
    #[error("pipe_size {0} is not valid: it must be between 4096 and 1073741824 bytes")]
    PipeSize(usize),
}

impl ForwardOptions {
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.idle_timeout.is_zero() {
            return Err(OptionsError::IdleTimeoutZero);
        }
        if self.half_close_timeout.is_zero() {
            return Err(OptionsError::HalfCloseTimeoutZero);
        }
        match self.pipe_size {
            Some(size) if !(MIN_PIPE_SIZE..=MAX_PIPE_SIZE).contains(&size) => {
                Err(OptionsError::PipeSize(size))
            }
            _ => Ok(()),
        }
    }
}

/// One end of the relayed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        }
    }
}

/// Counters updated while connections run (shared by one connection or by many, e.g. a
/// listener): read them with [`ForwardStats::snapshot`].
#[derive(Debug, Default)]
pub struct ForwardStats {
    client_to_upstream: AtomicU64,
    upstream_to_client: AtomicU64,
    spliced_directions: AtomicU64,
    copied_directions: AtomicU64,
    splice_fallbacks: AtomicU64,
}

/// A copy of [`ForwardStats`] at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Bytes delivered to the upstream.
    pub client_to_upstream: u64,
    /// Bytes delivered to the client.
    pub upstream_to_client: u64,
    /// Directions that delivered bytes on the splice path (through a pipe, or the short
    /// reads through the small buffer).
    pub spliced_directions: u64,
    /// Directions that delivered bytes through a user-space buffer.
    pub copied_directions: u64,
    /// Directions that switched to copying because splice was refused or no pipe was to be
    /// had (not counted when `splice` is off).
    pub splice_fallbacks: u64,
}

impl ForwardStats {
    pub fn new() -> ForwardStats {
        ForwardStats::default()
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            client_to_upstream: self.client_to_upstream.load(Ordering::Relaxed),
            upstream_to_client: self.upstream_to_client.load(Ordering::Relaxed),
            spliced_directions: self.spliced_directions.load(Ordering::Relaxed),
            copied_directions: self.copied_directions.load(Ordering::Relaxed),
            splice_fallbacks: self.splice_fallbacks.load(Ordering::Relaxed),
        }
    }
}

/// What happened in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectionReport {
    /// Bytes delivered through a pipe.
    pub spliced: u64,
    /// Bytes of the splice path delivered through its small buffer: reads under 16 KiB before
    /// the first that filled it.
    pub small: u64,
    /// Bytes delivered through a user-space buffer.
    pub copied: u64,
    /// Splice was refused (or no pipe could be created) and this direction copied instead.
    pub fell_back: bool,
    /// The source's FIN was passed on to the destination.
    pub finished: bool,
}

impl DirectionReport {
    /// Bytes delivered, whichever way.
    pub fn delivered(&self) -> u64 {
        self.spliced + self.small + self.copied
    }
}

/// How the connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both directions finished with a FIN; every byte read was delivered.
    Closed,
    /// `side` reset the connection or failed with `error`; both sockets were reset.
    Reset { side: Side, error: io::ErrorKind },
    /// No byte for `idle_timeout`.
    IdleTimeout,
    /// One direction finished, and the other moved no byte for `half_close_timeout`.
    HalfCloseTimeout,
    /// The caller's `cut` fired (the grace period of a stop is over).
    Cut,
}

impl End {
    /// Whether the relay, not a peer, ended the stream (or a peer failed): both sides are
    /// reset then.
    pub fn resets(self) -> bool {
        !matches!(self, End::Closed)
    }
}

/// The result of [`forward`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub client_to_upstream: DirectionReport,
    pub upstream_to_client: DirectionReport,
    /// The side that first ended its stream (FIN or reset), if any did.
    pub first_closed: Option<Side>,
    pub end: End,
    /// Bytes read but not delivered because the connection ended (0 unless reset, timed out
    /// or cut; both sides were reset then).
    pub undelivered: u64,
}

/// Relays bytes between `client` and `upstream`, both directions at once, until both
/// directions have finished, a side resets, or a timeout fires. Both sockets are closed when
/// it returns. Errors of either side are part of the [`Outcome`], not an `Err`: there is
/// nothing else for the caller to do with them than log them.
pub async fn forward(
    client: TcpStream,
    upstream: TcpStream,
    opts: &ForwardOptions,
    stats: &ForwardStats,
) -> Outcome {
    forward_until(client, upstream, opts, stats, std::future::pending()).await
}

/// [`forward`], ended early when `cut` completes: both sides are reset then ([`End::Cut`]).
pub async fn forward_until(
    client: TcpStream,
    upstream: TcpStream,
    opts: &ForwardOptions,
    stats: &ForwardStats,
    cut: impl std::future::Future<Output = ()>,
) -> Outcome {
    let ctx = Ctx {
        opts,
        stats,
        pool: PipePool::global(),
        activity: Activity::new(),
        finished: AtomicUsize::new(0),
    };
    let mut c2u = Pump::new(&client, &upstream, Side::Client, &ctx);
    let mut u2c = Pump::new(&upstream, &client, Side::Upstream, &ctx);
    let (end, first_closed) = supervise(&mut c2u, &mut u2c, &ctx, cut).await;

    let undelivered = c2u.conduit.pending() + u2c.conduit.pending();
    c2u.release();
    u2c.release();
    if end.resets() || undelivered > 0 {
        for socket in [&client, &upstream] {
            // Best effort: a socket that already failed may refuse it; it is closed anyway.
            let _ = SockRef::from(socket).set_linger(Some(Duration::ZERO));
        }
    }
    let outcome = Outcome {
        client_to_upstream: c2u.report,
        upstream_to_client: u2c.report,
        first_closed,
        end,
        undelivered: undelivered as u64,
    };
    debug!(
        end = ?outcome.end,
        first_closed = ?outcome.first_closed,
        client_to_upstream = outcome.client_to_upstream.delivered(),
        upstream_to_client = outcome.upstream_to_client.delivered(),
        undelivered,
        "connection forwarded"
    );
    outcome
}

/// Runs both directions and the timers; returns how the connection ended.
async fn supervise(
    a: &mut Pump<'_>,
    b: &mut Pump<'_>,
    ctx: &Ctx<'_>,
    cut: impl std::future::Future<Output = ()>,
) -> (End, Option<Side>) {
    let (side_a, side_b) = (a.from, b.from);
    let mut cut = std::pin::pin!(cut);
    let mut run_a = std::pin::pin!(a.run());
    let mut run_b = std::pin::pin!(b.run());
    let (mut a_done, mut b_done) = (false, false);
    let mut first_closed = None;
    let mut half_closed_at: Option<Instant> = None;
    loop {
        let (deadline, _) = ctx.deadline(half_closed_at);
        let finished = tokio::select! {
            result = &mut run_a, if !a_done => {
                a_done = true;
                result.map(|()| side_a)
            }
            result = &mut run_b, if !b_done => {
                b_done = true;
                result.map(|()| side_b)
            }
            () = &mut cut => return (End::Cut, first_closed),
            () = sleep_until(deadline) => {
                // Bytes may have moved while sleeping: only a deadline still passed counts.
                let (deadline, timeout) = ctx.deadline(half_closed_at);
                if Instant::now() >= deadline {
                    return (timeout, first_closed);
                }
                continue;
            }
        };
        match finished {
            Ok(side) => {
                first_closed.get_or_insert(side);
            }
            Err(failure) => {
                debug!(side = ?failure.side, error = %failure.error, "connection reset");
                let end = End::Reset {
                    side: failure.side,
                    error: failure.error.kind(),
                };
                return (end, Some(first_closed.unwrap_or(failure.side)));
            }
        }
        if a_done && b_done {
            return (End::Closed, first_closed);
        }
        half_closed_at.get_or_insert_with(Instant::now);
    }
}

/// What both directions share.
struct Ctx<'a> {
    opts: &'a ForwardOptions,
    stats: &'a ForwardStats,
    pool: &'static PipePool,
    activity: Activity,
    /// Directions that have passed their FIN on.
    finished: AtomicUsize,
}

impl Ctx<'_> {
    /// The instant the connection times out unless a byte moves, and which timeout that is.
    fn deadline(&self, half_closed_at: Option<Instant>) -> (Instant, End) {
        let last = self.activity.last();
        let idle = later(last, self.opts.idle_timeout);
        match half_closed_at {
            Some(at) => {
                let half = later(last.max(at), self.opts.half_close_timeout);
                if half <= idle {
                    (half, End::HalfCloseTimeout)
                } else {
                    (idle, End::IdleTimeout)
                }
            }
            None => (idle, End::IdleTimeout),
        }
    }
}

/// `at + timeout`, without the panic of `+` for huge timeouts (`Duration::MAX` as "never").
fn later(at: Instant, timeout: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    // A monotonic instant plus a century cannot overflow (seconds since boot in a u64); the
    // fallback only keeps this panic-free in theory.
    at.checked_add(timeout.min(CENTURY))
        .unwrap_or_else(|| at + Duration::from_secs(24 * 3600))
}

/// When a byte last moved, in milliseconds since the connection started (atomic, so the
/// future stays `Send`).
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}
