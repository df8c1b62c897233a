//! One direction of a forwarded connection: the "fill, then drain" loop over a conduit (a
//! pipe for splice, or a user-space buffer), the small-read path that spares short transfers
//! the pipe, and the switch to copying when splice is refused. The module doc of
//! [`crate::forward`] explains the readiness and closing rules this loop keeps.

use std::io::{self, Read as _};
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

/// The stack buffer of the splice path's small reads. A read that fills it shows a bulk
/// transfer: the direction splices from then on. Smaller ones (a TLS handshake flight, a
/// request, a short answer) take one `read` and one `write`, where the pipe costs two
/// splices, a third that finds the socket empty, and the pool's check that the pipe is empty.
pub(super) const SMALL_READ: usize = 16 * 1024;

/// Why a direction stopped other than by a clean FIN.
pub(super) struct Failure {
    pub(super) side: Side,
    pub(super) error: io::Error,
}

/// Bytes read and not yet written, in a user-space buffer.
#[derive(Default)]
pub(super) struct Buffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buffer {
    fn pending(&self) -> usize {
        self.end - self.start
    }
}

/// Where a direction's bytes are between the read and the write.
pub(super) enum Conduit {
    /// The splice path. Until a read fills [`SMALL_READ`] bytes, reads go to a stack buffer
    /// and are written at once; what the destination does not take waits in `held` (allocated
    /// only then). Once one has (`bulk`): socket -> pipe -> socket, the pipe held only while
    /// bytes are in flight.
    Splice {
        pipe: Option<Pipe>,
        bulk: bool,
        held: Buffer,
    },
    /// socket -> buffer -> socket; the buffer is allocated on first use.
    Copy(Buffer),
}

impl Conduit {
    fn splice() -> Conduit {
        Conduit::Splice {
            pipe: None,
            bulk: false,
            held: Buffer::default(),
        }
    }

    pub(super) fn pending(&self) -> usize {
        match self {
            Conduit::Splice { pipe, held, .. } => {
                pipe.as_ref().map_or(0, Pipe::len) + held.pending()
            }
            Conduit::Copy(buffer) => buffer.pending(),
        }
    }
}

/// How delivered bytes travelled, for the counters.
#[derive(Clone, Copy)]
enum Path {
    Pipe,
    Small,
    Copy,
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
    /// A write of a small read failed inside `fill`: `drain` reports it (the bytes are held).
    write_error: Option<io::Error>,
}

impl<'a> Pump<'a> {
    pub(super) fn new(
        src: &'a TcpStream,
        dst: &'a TcpStream,
        from: Side,
        ctx: &'a Ctx<'a>,
    ) -> Pump<'a> {
        let conduit = if ctx.opts.splice {
            Conduit::splice()
        } else {
            Conduit::Copy(Buffer::default())
        };
        Pump {
            src,
            dst,
            from,
            ctx,
            conduit,
            report: DirectionReport::default(),
            write_error: None,
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
        // When the other direction has finished too, the connection ends now and its close
        // passes this FIN on (nothing is left unread on either socket): no shutdown needed.
        if self.ctx.finished.fetch_add(1, Ordering::AcqRel) == 0 {
            SockRef::from(self.dst)
                .shutdown(Shutdown::Write)
                .map_err(|e| self.fail(self.from.other(), e))?;
        }
        self.report.finished = true;
        Ok(())
    }

    /// One read from the source into the (empty) conduit; on the small-read path, also the
    /// write of what was read, as far as the destination takes it.
    pub(super) fn fill(&mut self) -> io::Result<usize> {
        let src = self.src;
        let n = match &mut self.conduit {
            Conduit::Splice { bulk: false, .. } => return self.fill_small(),
            Conduit::Splice {
                pipe: slot,
                bulk: true,
                ..
            } => {
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
            Conduit::Copy(Buffer { buf, start, end }) => {
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

    /// The small-read path: one `read` into a stack buffer, written on at once; what the
    /// destination does not take now is moved to the heap and drained like any conduit.
    fn fill_small(&mut self) -> io::Result<usize> {
        let src = self.src;
        let mut stack = [0u8; SMALL_READ];
        let mut got = 0;
        let read = src.try_io(Interest::READABLE, || {
            got = (&*SockRef::from(src)).read(&mut stack)?;
            if got > 0 && got < SMALL_READ {
                // A read that comes up short has emptied the socket: clear the readiness now
                // (as tokio's own `poll_read` does) instead of learning it from one more
                // read's EAGAIN. A FIN already seen stays in the readiness; new data or a
                // later FIN raises it again.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(got)
        });
        let n = match read {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock && got > 0 => got,
            Err(err) => return Err(err),
        };
        if n == 0 {
            return Ok(0);
        }
        self.ctx.activity.touch();
        let bytes = &stack[..n];
        let written = match self.dst.try_write(bytes) {
            Ok(written) => written,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => 0,
            Err(err) => {
                self.write_error = Some(err);
                0
            }
        };
        if written > 0 {
            self.delivered(written as u64, Path::Small);
        }
        let Conduit::Splice { bulk, held, .. } = &mut self.conduit else {
            unreachable!("fill_small runs on the splice path only");
        };
        // A full buffer means more was waiting: a bulk transfer, from now on through a pipe.
        *bulk = n == SMALL_READ;
        if written < n {
            held.buf.clear();
            held.buf.extend_from_slice(&bytes[written..]);
            (held.start, held.end) = (0, n - written);
        }
        Ok(n)
    }

    /// Writes everything in the conduit to the destination.
    pub(super) async fn drain(&mut self) -> Result<(), Failure> {
        let to = self.from.other();
        if let Some(err) = self.write_error.take() {
            return Err(self.fail(to, err));
        }
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
        let (n, path) = match &mut self.conduit {
            Conduit::Splice { held, .. } if held.pending() > 0 => {
                let n = dst.try_write(&held.buf[held.start..held.end])?;
                held.start += n;
                if held.pending() == 0 {
                    // Held only while the destination lags: an idle connection keeps none.
                    *held = Buffer::default();
                }
                (n, Path::Small)
            }
            Conduit::Splice {
                pipe: Some(pipe), ..
            } => {
                let len = pipe.len();
                let n = dst.try_io(Interest::WRITABLE, || {
                    splice::splice_out(pipe, dst.as_fd(), len)
                })?;
                (n, Path::Pipe)
            }
            Conduit::Splice { pipe: None, .. } => return Ok(()),
            Conduit::Copy(Buffer { buf, start, end }) => {
                let n = dst.try_write(&buf[*start..*end])?;
                *start += n;
                (n, Path::Copy)
            }
        };
        if n == 0 {
            // A socket never accepts 0 of a non-empty write; don't loop on it.
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.delivered(n as u64, path);
        Ok(())
    }

    fn delivered(&mut self, n: u64, path: Path) {
        let stats = self.ctx.stats;
        let report = &mut self.report;
        // The small reads belong to the splice path: a direction that never needed a pipe
        // is no copy fallback.
        let (first, directions) = match path {
            Path::Pipe | Path::Small => (
                report.spliced + report.small == 0,
                &stats.spliced_directions,
            ),
            Path::Copy => (report.copied == 0, &stats.copied_directions),
        };
        if first {
            directions.fetch_add(1, Ordering::Relaxed);
        }
        match path {
            Path::Pipe => report.spliced += n,
            Path::Small => report.small += n,
            Path::Copy => report.copied += n,
        }
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
        self.conduit = Conduit::Copy(Buffer::default());
        self.note_fallback(reason);
    }

    /// Splice to the destination was refused with bytes in the pipe: move them into a buffer
    /// and copy from now on.
    pub(super) fn spill(&mut self, reason: &io::Error) -> Result<(), Failure> {
        let Conduit::Splice {
            pipe: Some(pipe), ..
        } = &mut self.conduit
        else {
            return Ok(());
        };
        // A pipe is filled only once `held` is empty, so the pipe holds every pending byte.
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
        self.conduit = Conduit::Copy(Buffer { buf, start: 0, end });
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
        if let Conduit::Splice { pipe, .. } = &mut self.conduit {
            if let Some(pipe) = pipe.take() {
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
