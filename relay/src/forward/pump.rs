//! One direction of a forwarded connection: the "fill, then drain" loop over a conduit (a
//! pipe for splice, or a user-space buffer), and the switch to copying when splice is
//! refused. The module doc of [`crate::forward`] explains the readiness and closing rules
//! this loop keeps.

use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tracing::{debug, warn};

use super::{Ctx, DirectionReport, Side};
use crate::splice::{self, Pipe};

/// Size of the user-space buffer of a copying direction.
const COPY_BUFFER: usize = 64 * 1024;

/// Why a direction stopped other than by a clean FIN.
pub(super) struct Failure {
    pub(super) side: Side,
    pub(super) error: io::Error,
}

/// Where a direction's bytes are between the read and the write.
pub(super) enum Conduit {
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

    pub(super) fn pending(&self) -> usize {
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
pub(super) struct Pump<'a> {
    src: &'a TcpStream,
    dst: &'a TcpStream,
    pub(super) from: Side,
    ctx: &'a Ctx<'a>,
    pub(super) conduit: Conduit,
    pub(super) report: DirectionReport,
}

impl<'a> Pump<'a> {
    pub(super) fn new(
        src: &'a TcpStream,
        dst: &'a TcpStream,
        from: Side,
        ctx: &'a Ctx<'a>,
    ) -> Pump<'a> {
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
    pub(super) async fn run(&mut self) -> Result<(), Failure> {
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
    pub(super) fn fill(&mut self) -> io::Result<usize> {
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
    pub(super) async fn drain(&mut self) -> Result<(), Failure> {
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
    pub(super) fn spill(&mut self, reason: &io::Error) -> Result<(), Failure> {
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
    pub(super) fn release(&mut self) {
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
