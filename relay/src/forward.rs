//! Bidirectional forwarding of one connection: splice through a pipe per direction, with a
//! plain copy where splice is refused.
//!
//! Each direction is a loop of "fill, then drain": wait until the source is readable, move
//! what it has into the conduit (a pipe with [`splice_in`](splice::splice_in), or a buffer), then move all of it
//! to the destination, waiting for writability whenever it answers EAGAIN ("send buffer
//! full"). Only an empty conduit is ever filled, so an EAGAIN while filling always means
//! "source empty" and clearing tokio's readiness flag is right; it never means "pipe full"
//! (see [`crate::splice`]). A would-block always parks the task on readiness, never retries,
//! so nothing busy-loops. The pipe is taken from the [`PipePool`] when the source has data
//! and handed back when the source runs dry, so idle connections hold no pipe.
//!
//! Closing, where relays lose bytes:
//!
//! * **FIN** (`splice`/`read` returns 0): the conduit is already empty (it is always drained
//!   before the next fill), so the FIN is passed on at once with `shutdown(Write)` on the
//!   other side while the opposite direction keeps flowing. Bytes are never discarded at a
//!   clean close.
//! * **Half-closed**: once one direction has finished, the connection gets
//!   `half_close_timeout` of inactivity (instead of `idle_timeout`) to finish the other, then
//!   both sockets are closed, so a peer that never sends its FIN cannot pin sockets in
//!   CLOSE_WAIT.
//! * **Reset or error** on either side: both sockets are closed with `SO_LINGER` 0, so the
//!   other peer sees a reset rather than a clean end of a truncated stream.
//! * **Timeouts** close both sockets; if bytes were still in a conduit (the destination had
//!   stopped reading) they are reset instead, for the same reason.
//!
//! Splice refusal (EINVAL/ENOSYS/EOPNOTSUPP) switches that direction to copying: logged once
//! per process with `warn!`, counted in [`ForwardStats`] and reported in [`Outcome`], so a
//! relay that never splices cannot go unnoticed (realm did for a year).

use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, warn};

use crate::splice::{self, Pipe, PipePool};

/// Size of the user-space buffer of a copying direction.
const COPY_BUFFER: usize = 64 * 1024;
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
    /// Directions that delivered bytes through a pipe.
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
    /// Bytes delivered through a user-space buffer.
    pub copied: u64,
    /// Splice was refused (or no pipe could be created) and this direction copied instead.
    pub fell_back: bool,
    /// The source's FIN was passed on to the destination.
    pub finished: bool,
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
}

/// The result of [`forward`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub client_to_upstream: DirectionReport,
    pub upstream_to_client: DirectionReport,
    /// The side that first ended its stream (FIN or reset), if any did.
    pub first_closed: Option<Side>,
    pub end: End,
    /// Bytes read but not delivered because the connection ended (0 unless reset or timed
    /// out; when non-zero, both sides were reset).
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
    let ctx = Ctx {
        opts,
        stats,
        pool: PipePool::global(),
        activity: Activity::new(),
    };
    let mut c2u = Pump::new(&client, &upstream, Side::Client, &ctx);
    let mut u2c = Pump::new(&upstream, &client, Side::Upstream, &ctx);
    let (end, first_closed) = supervise(&mut c2u, &mut u2c, &ctx).await;

    let undelivered = c2u.conduit.pending() + u2c.conduit.pending();
    c2u.release();
    u2c.release();
    if matches!(end, End::Reset { .. }) || undelivered > 0 {
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
        client_to_upstream = outcome.client_to_upstream.spliced + outcome.client_to_upstream.copied,
        upstream_to_client = outcome.upstream_to_client.spliced + outcome.upstream_to_client.copied,
        undelivered,
        "connection forwarded"
    );
    outcome
}

/// Runs both directions and the timers; returns how the connection ended.
async fn supervise(a: &mut Pump<'_>, b: &mut Pump<'_>, ctx: &Ctx<'_>) -> (End, Option<Side>) {
    let (side_a, side_b) = (a.from, b.from);
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

/// Why a direction stopped other than by a clean FIN.
struct Failure {
    side: Side,
    error: io::Error,
}

/// Where a direction's bytes are between the read and the write.
enum Conduit {
    /// socket -> pipe -> socket; the pipe is held only while bytes are in flight.
    Splice(Option<Pipe>),
    /// socket -> buffer -> socket; the buffer is allocated on first use.
    Copy {
        buf: Vec<u8>,
        start: usize,
        end: usize,
    },
}

impl Conduit {
    fn copy() -> Conduit {
        Conduit::Copy {
            buf: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    fn pending(&self) -> usize {
        match self {
            Conduit::Splice(pipe) => pipe.as_ref().map_or(0, Pipe::len),
            Conduit::Copy { start, end, .. } => end - start,
        }
    }
}

/// Pool take failures travel inside an `io::Error` so that `fill` has one error type; this
/// marks them apart from errors of the source socket.
#[derive(Debug, thiserror::Error)]
#[error("no pipe for splice: {0}")]
struct NoPipe(io::Error);

static FALLBACK_WARNED: AtomicBool = AtomicBool::new(false);

/// One direction: bytes from `src` (the `from` side) to `dst`.
struct Pump<'a> {
    src: &'a TcpStream,
    dst: &'a TcpStream,
    from: Side,
    ctx: &'a Ctx<'a>,
    conduit: Conduit,
    report: DirectionReport,
}

impl<'a> Pump<'a> {
    fn new(src: &'a TcpStream, dst: &'a TcpStream, from: Side, ctx: &'a Ctx<'a>) -> Pump<'a> {
        let conduit = if ctx.opts.splice {
            Conduit::Splice(None)
        } else {
            Conduit::copy()
        };
        Pump {
            src,
            dst,
            from,
            ctx,
            conduit,
            report: DirectionReport::default(),
        }
    }

    /// Relays until the source's FIN has been passed on (`Ok`) or a side failed.
    async fn run(&mut self) -> Result<(), Failure> {
        loop {
            // The conduit is empty here: it is always drained before the next fill.
            self.src
                .readable()
                .await
                .map_err(|e| self.fail(self.from, e))?;
            match self.fill() {
                Ok(0) => break,
                Ok(_) => self.drain().await?,
                // The source is empty: the readiness flag was cleared, so the next
                // `readable()` parks until the kernel reports new data. Give the pipe back.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => self.release(),
                Err(err) if is_no_pipe(&err) || splice::is_refused(&err) => {
                    self.fall_back(&err);
                }
                Err(err) => return Err(self.fail(self.from, err)),
            }
        }
        self.release();
        SockRef::from(self.dst)
            .shutdown(Shutdown::Write)
            .map_err(|e| self.fail(self.from.other(), e))?;
        self.report.finished = true;
        Ok(())
    }

    /// One read from the source into the (empty) conduit.
    fn fill(&mut self) -> io::Result<usize> {
        let src = self.src;
        let n = match &mut self.conduit {
            Conduit::Splice(slot) => {
                let pipe = match slot {
                    Some(pipe) => pipe,
                    None => {
                        let pipe = self.ctx.pool.take(self.ctx.opts.pipe_size);
                        slot.insert(pipe.map_err(|e| io::Error::other(NoPipe(e)))?)
                    }
                };
                // `splice_in` bounds the length by the pipe's capacity.
                src.try_io(Interest::READABLE, || {
                    splice::splice_in(src.as_fd(), pipe, usize::MAX)
                })?
            }
            Conduit::Copy { buf, start, end } => {
                if buf.is_empty() {
                    buf.resize(COPY_BUFFER, 0);
                }
                let n = src.try_read(buf)?;
                (*start, *end) = (0, n);
                n
            }
        };
        if n > 0 {
            self.ctx.activity.touch();
        }
        Ok(n)
    }

    /// Writes everything in the conduit to the destination.
    async fn drain(&mut self) -> Result<(), Failure> {
        let to = self.from.other();
        while self.conduit.pending() > 0 {
            self.dst.writable().await.map_err(|e| self.fail(to, e))?;
            match self.flush() {
                Ok(()) => {}
                // Send buffer full: readiness cleared, `writable()` parks until it drains.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) if splice::is_refused(&err) => self.spill(&err)?,
                Err(err) => return Err(self.fail(to, err)),
            }
        }
        Ok(())
    }

    /// One write from the conduit to the destination, counted.
    fn flush(&mut self) -> io::Result<()> {
        let dst = self.dst;
        let (n, spliced) = match &mut self.conduit {
            Conduit::Splice(Some(pipe)) => {
                let len = pipe.len();
                let n = dst.try_io(Interest::WRITABLE, || {
                    splice::splice_out(pipe, dst.as_fd(), len)
                })?;
                (n, true)
            }
            Conduit::Splice(None) => return Ok(()),
            Conduit::Copy { buf, start, end } => {
                let n = dst.try_write(&buf[*start..*end])?;
                *start += n;
                (n, false)
            }
        };
        if n == 0 {
            // A socket never accepts 0 of a non-empty write; don't loop on it.
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.delivered(n as u64, spliced);
        Ok(())
    }

    fn delivered(&mut self, n: u64, spliced: bool) {
        let stats = self.ctx.stats;
        let (bytes, directions) = if spliced {
            (&mut self.report.spliced, &stats.spliced_directions)
        } else {
            (&mut self.report.copied, &stats.copied_directions)
        };
        if *bytes == 0 {
            directions.fetch_add(1, Ordering::Relaxed);
        }
        *bytes += n;
        let counter = match self.from {
            Side::Client => &stats.client_to_upstream,
            Side::Upstream => &stats.upstream_to_client,
        };
        counter.fetch_add(n, Ordering::Relaxed);
        self.ctx.activity.touch();
    }

    /// Splice was refused before any byte entered the pipe: copy from now on.
    fn fall_back(&mut self, reason: &io::Error) {
        self.release();
        self.conduit = Conduit::copy();
        self.note_fallback(reason);
    }

    /// Splice to the destination was refused with bytes in the pipe: move them into a buffer
    /// and copy from now on.
    fn spill(&mut self, reason: &io::Error) -> Result<(), Failure> {
        let Conduit::Splice(Some(pipe)) = &mut self.conduit else {
            return Ok(());
        };
        let held = pipe.len();
        let mut buf = vec![0; held.max(COPY_BUFFER)];
        let mut end = 0;
        while !pipe.is_empty() {
            match pipe.read_into(&mut buf[end..]) {
                Ok(0) => break,
                Ok(n) => end += n,
                Err(err) => return Err(self.fail(self.from.other(), err)),
            }
        }
        self.release();
        self.conduit = Conduit::Copy { buf, start: 0, end };
        self.note_fallback(reason);
        Ok(())
    }

    fn note_fallback(&mut self, reason: &io::Error) {
        self.report.fell_back = true;
        self.ctx
            .stats
            .splice_fallbacks
            .fetch_add(1, Ordering::Relaxed);
        if !FALLBACK_WARNED.swap(true, Ordering::Relaxed) {
            warn!(
                error = %reason,
                "splice refused, copying through user space instead (logged once per process; \
                 see the splice_fallbacks counter)"
            );
        }
        debug!(from = ?self.from, error = %reason, "direction falls back to copying");
    }

    /// Hands the pipe back to the pool (which closes it unless it is empty).
    fn release(&mut self) {
        if let Conduit::Splice(slot) = &mut self.conduit {
            if let Some(pipe) = slot.take() {
                self.ctx.pool.put(pipe);
            }
        }
    }

    fn fail(&self, side: Side, error: io::Error) -> Failure {
        Failure { side, error }
    }
}

fn is_no_pipe(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|inner| inner.is::<NoPipe>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_timeouts_mean_never_not_a_panic() {
        let now = Instant::now();
        assert!(later(now, Duration::MAX) > now + Duration::from_secs(365 * 24 * 3600));
        assert_eq!(
            later(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }

    #[test]
    fn options_are_validated() {
        assert_eq!(ForwardOptions::default().validate(), Ok(()));
        let zero_idle = ForwardOptions {
            idle_timeout: Duration::ZERO,
            ..ForwardOptions::default()
        };
        assert_eq!(zero_idle.validate(), Err(OptionsError::IdleTimeoutZero));
        let zero_half = ForwardOptions {
            half_close_timeout: Duration::ZERO,
            ..ForwardOptions::default()
        };
        assert_eq!(
            zero_half.validate(),
            Err(OptionsError::HalfCloseTimeoutZero)
        );
        for (size, ok) in [
            (4095, false),
            (4096, true),
            (1 << 30, true),
            ((1 << 30) + 1, false),
        ] {
            let opts = ForwardOptions {
                pipe_size: Some(size),
                ..ForwardOptions::default()
            };
            assert_eq!(opts.validate().is_ok(), ok, "pipe_size {size}");
        }
        assert_eq!(
            OptionsError::PipeSize(1).to_string(),
            "pipe_size 1 is not valid: it must be between 4096 and 1073741824 bytes"
        );
    }

    /// Connected (near, far) loopback sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (far, _) = listener.accept().await.unwrap();
        (near, far)
    }

    /// Kernels refuse splice only for odd descriptors, never for two TCP sockets, so the
    /// refusal is injected: first with bytes already in the pipe (they must be copied out of
    /// it, not lost), then the direction must carry on by copying to the end.
    #[test]
    fn refusal_with_bytes_in_the_pipe_switches_to_copying_without_loss() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut client, relay_in) = pair().await;
            let (relay_out, mut upstream) = pair().await;
            let opts = ForwardOptions::default();
            let stats = ForwardStats::new();
            let ctx = Ctx {
                opts: &opts,
                stats: &stats,
                pool: PipePool::global(),
                activity: Activity::new(),
            };
            let mut pump = Pump::new(&relay_in, &relay_out, Side::Client, &ctx);

            client.write_all(b"spliced into the pipe, ").await.unwrap();
            let n = loop {
                relay_in.readable().await.unwrap();
                match pump.fill() {
                    Ok(n) => break n,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(err) => panic!("fill: {err}"),
                }
            };
            assert!(n > 0);
            assert_eq!(pump.conduit.pending(), n);
            let refused = io::Error::from_raw_os_error(libc::EINVAL);
            assert!(pump.spill(&refused).is_ok());
            assert!(matches!(pump.conduit, Conduit::Copy { .. }));
            assert_eq!(
                pump.conduit.pending(),
                n,
                "bytes moved from the pipe to the buffer"
            );

            client.write_all(b"then copied").await.unwrap();
            client.shutdown().await.unwrap();
            assert!(pump.drain().await.is_ok());
            assert!(pump.run().await.is_ok());

            let mut got = Vec::new();
            upstream.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"spliced into the pipe, then copied");
            assert!(pump.report.fell_back && pump.report.finished);
            assert_eq!(pump.report.spliced, 0);
            assert_eq!(pump.report.copied, got.len() as u64);
            let snapshot = stats.snapshot();
            assert_eq!(snapshot.splice_fallbacks, 1);
            assert_eq!(snapshot.copied_directions, 1);
            assert_eq!(snapshot.spliced_directions, 0);
            assert_eq!(snapshot.client_to_upstream, got.len() as u64);
        });
    }

    #[test]
    fn forward_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let opts = ForwardOptions::default();
        let stats = ForwardStats::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let a = TcpStream::connect(addr).await.unwrap();
            let b = TcpStream::connect(addr).await.unwrap();
            let fut = forward(a, b, &opts, &stats);
            assert_send(&fut);
        });
    }
}
