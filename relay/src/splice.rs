//! Pipes and `splice(2)`: the only module of the relay with `unsafe`.
//!
//! `splice(2)` moves bytes between a socket and a pipe inside the kernel: socket -> pipe takes
//! references to the received pages, pipe -> socket hands them to the sending socket. A relay
//! direction is therefore `splice_in` (socket -> pipe) then `splice_out` (pipe -> socket), with
//! no user-space buffer. What the kernel does, and what this module makes of it:
//!
//! * **EAGAIN is ambiguous.** Socket -> pipe answers EAGAIN both when the socket is empty and
//!   when the pipe has no free *slot*. A pipe has `capacity / PAGE_SIZE` slots and every spliced
//!   skb fragment takes one whatever its length, so a 64 KiB pipe can be "full" while holding
//!   far fewer bytes (sozu lost tails of responses by treating that EAGAIN as "socket empty"
//!   and clearing the readiness flag). An empty pipe always has a free slot, so
//!   [`splice_in`] only accepts an empty pipe: its EAGAIN then always means "socket empty".
//!   Pipe -> socket EAGAIN means "socket send buffer full".
//! * **Bytes in a pipe belong to nobody else.** A [`Pipe`] counts the bytes it holds. Closing
//!   a pipe that holds bytes discards them, so the caller must drain it before it closes the
//!   destination (HAProxy lost the tail of responses at close). [`PipePool::put`] pools a pipe
//!   only when it is verifiably empty; any other pipe is closed.
//! * **Pipes are kernel memory with a per-user budget.** A pipe is charged `capacity /
//!   PAGE_SIZE` pages against `pipe-user-pages-soft` (16384 pages by default) for an
//!   unprivileged user. Over the soft limit the kernel creates new pipes with 2 slots and
//!   answers `F_SETPIPE_SZ` with EPERM (as it does above `pipe-max-size`). That is survived:
//!   the pipe keeps its smaller size and the refusal is counted ([`PoolStats`]). Pipes are
//!   taken from the pool only while bytes are in flight, so idle connections hold none.
//! * **Refusal.** When `splice` answers EINVAL, ENOSYS or EOPNOTSUPP the file descriptors do
//!   not support it ([`is_refused`]); the caller copies instead. realm's relay passed
//!   `usize::MAX` as the length, which newer kernels reject with EINVAL on every call, and it
//!   silently copied for a year: the length here is always bounded by the pipe's capacity.
//! * `SPLICE_F_MORE` is never set: it corks the socket like `TCP_CORK` and added 200 ms of
//!   latency to Go's first splice-based `io.Copy`. `SPLICE_F_MOVE` is a harmless hint.
//! * Splicing to a socket whose peer is gone raises SIGPIPE (the kernel does not add
//!   `MSG_NOSIGNAL`); Rust's runtime ignores SIGPIPE before `main`, so the call returns EPIPE.
//!
//! Sockets must be non-blocking (tokio's are): `SPLICE_F_NONBLOCK` only makes the pipe side
//! non-blocking, the socket side follows the socket's own `O_NONBLOCK`.

use std::fs::File;
use std::io::{self, Read as _};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tracing::{debug, warn};

/// The capacity Linux gives a new pipe (16 pages of 4 KiB) when the user is within budget.
pub const DEFAULT_PIPE_CAPACITY: usize = 64 * 1024;

/// Total capacity of the empty pipes the process-wide pool keeps for reuse: 64 default
/// pipes, 1024 pages, a sixteenth of the default `pipe-user-pages-soft` budget (pooled pipes
/// are charged to it like busy ones), whatever `pipe_size` is.
pub const GLOBAL_POOL_IDLE_BYTES: usize = 64 * DEFAULT_PIPE_CAPACITY;

const SPLICE_FLAGS: libc::c_uint = libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE;

/// Misuse of a [`Pipe`] that would break the invariants described in the module doc.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PipeError {
    #[error("pipe still holds {0} bytes: splicing more into it would make EAGAIN ambiguous")]
    NotEmpty(usize),
    #[error("splice length must be greater than zero")]
    ZeroLength,
    #[error("pipe size {0} is too large for F_SETPIPE_SZ")]
    SizeTooLarge(usize),
    #[error("pipe reports {kernel} bytes but {tracked} were counted")]
    Inconsistent { tracked: usize, kernel: usize },
}

impl From<PipeError> for io::Error {
    fn from(err: PipeError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, err)
    }
}

/// A non-blocking, close-on-exec pipe that knows how many bytes it holds.
///
/// Both ends are closed when it is dropped (discarding any bytes still inside).
#[derive(Debug)]
pub struct Pipe {
    read: File,
    write: File,
    len: usize,
    capacity: usize,
    /// The capacity the kernel gave the pipe at creation (what `pipe_size: None` means).
    initial_capacity: usize,
    /// The size last asked for by the pool, granted or not (`None`: the initial one), so the
    /// pool asks only when a different size is wanted, and not again after a refusal.
    requested: Option<usize>,
}

/// What [`Pipe::set_capacity`] got from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizing {
    /// The pipe now has this capacity (the request rounded up to a power of two pages).
    Set(usize),
    /// EPERM: above `pipe-max-size`, or the user is over `pipe-user-pages-soft`. The pipe
    /// keeps this capacity.
    Refused(usize),
}

impl Pipe {
    /// Creates a pipe with `pipe2(O_NONBLOCK | O_CLOEXEC)`.
    pub fn new() -> io::Result<Pipe> {
        let mut fds: [libc::c_int; 2] = [-1, -1];
        // Safety: `fds` is a writable array of two ints, which is what pipe2(2) fills in.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc == -1 {
            return Err(io::Error::last_os_error());
        }
        // Safety: pipe2 succeeded, so both descriptors are open and owned by nothing else;
        // each is wrapped exactly once, so each is closed exactly once.
        let (read, write) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        let capacity = usize::try_from(fcntl_int(write.as_fd(), libc::F_GETPIPE_SZ, 0)?)
            .map_err(|_| io::Error::other("F_GETPIPE_SZ returned a negative size"))?;
        Ok(Pipe {
            read,
            write,
            len: 0,
            capacity,
            initial_capacity: capacity,
            requested: None,
        })
    }

    /// Bytes currently in the pipe, as counted by this module.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pipe's capacity in bytes (`F_GETPIPE_SZ`). Fewer bytes may fit: see the module doc.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Asks for a capacity of at least `bytes` (`F_SETPIPE_SZ`). EPERM is not an error (see
    /// [`Sizing::Refused`]). Meant for empty pipes: shrinking below the content is EBUSY.
    pub fn set_capacity(&mut self, bytes: usize) -> io::Result<Sizing> {
        let arg = libc::c_int::try_from(bytes).map_err(|_| PipeError::SizeTooLarge(bytes))?;
        match fcntl_int(self.write.as_fd(), libc::F_SETPIPE_SZ, arg) {
            Ok(size) => {
                // F_SETPIPE_SZ returns the new capacity, never a negative number on success.
                self.capacity = usize::try_from(size).unwrap_or(self.capacity);
                Ok(Sizing::Set(self.capacity))
            }
            Err(err) if err.raw_os_error() == Some(libc::EPERM) => {
                Ok(Sizing::Refused(self.capacity))
            }
            Err(err) => Err(err),
        }
    }

    /// The number of bytes the kernel says the pipe holds (`FIONREAD`), to check [`len`].
    ///
    /// [`len`]: Pipe::len
    pub fn kernel_len(&self) -> io::Result<usize> {
        let mut n: libc::c_int = 0;
        // Safety: FIONREAD on a pipe stores one int through the pointer, which points to `n`,
        // alive and writable for the whole call; the descriptor is open (owned by `self`).
        let rc = unsafe { libc::ioctl(self.read.as_raw_fd(), libc::FIONREAD, &mut n) };
        if rc == -1 {
            return Err(io::Error::last_os_error());
        }
        usize::try_from(n).map_err(|_| io::Error::other("FIONREAD returned a negative count"))
    }

    /// Reads bytes out of the pipe into `buf` (used when splice to the destination is
    /// refused and the bytes already in the pipe must be copied instead).
    pub fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(self.len);
        if want == 0 {
            return Ok(0);
        }
        let n = (&self.read).read(&mut buf[..want])?;
        self.len -= n;
        Ok(n)
    }

    /// Writes `buf` into the pipe, as a peer socket would (tests only).
    #[cfg(test)]
    fn write_from(&mut self, buf: &[u8]) -> io::Result<usize> {
        use std::io::Write as _;
        let n = (&self.write).write(buf)?;
        self.len += n;
        Ok(n)
    }
}

/// Moves up to `max` bytes from the socket `src` into the **empty** `pipe`.
///
/// `Ok(0)` is end of stream (the peer sent FIN). `WouldBlock` means the socket is empty (the
/// pipe is empty, so it cannot be full). A pipe that still holds bytes is refused with
/// [`PipeError::NotEmpty`]: drain it with [`splice_out`] first.
pub fn splice_in(src: BorrowedFd<'_>, pipe: &mut Pipe, max: usize) -> io::Result<usize> {
    if !pipe.is_empty() {
        return Err(PipeError::NotEmpty(pipe.len).into());
    }
    if max == 0 {
        return Err(PipeError::ZeroLength.into());
    }
    // Bounded by the capacity: never usize::MAX, which newer kernels reject with EINVAL.
    let len = max.min(pipe.capacity.max(1));
    let n = splice(src, pipe.write.as_fd(), len)?;
    pipe.len += n;
    Ok(n)
}

/// Moves up to `max` bytes from `pipe` into the socket `dst`.
///
/// `WouldBlock` means the socket's send buffer is full: wait until it is writable. Returns
/// `Ok(0)` without a system call when the pipe is empty.
pub fn splice_out(pipe: &mut Pipe, dst: BorrowedFd<'_>, max: usize) -> io::Result<usize> {
    let len = max.min(pipe.len);
    if len == 0 {
        return Ok(0);
    }
    let n = splice(pipe.read.as_fd(), dst, len)?;
    // The kernel never moves more than it was asked for, and it was asked for at most `len`.
    pipe.len -= n.min(pipe.len);
    Ok(n)
}

/// Whether `err` from [`splice_in`] or [`splice_out`] means "splice is not supported for these
/// file descriptors" (EINVAL, ENOSYS, EOPNOTSUPP): the caller should copy instead.
pub fn is_refused(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    )
}

fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    loop {
        // Safety: both descriptors are open for the duration of their borrows. Null offsets
        // are required for pipes and sockets, so the kernel reads and writes none of our
        // memory; `len` is bounded by the callers.
        let rc = unsafe {
            libc::splice(
                from.as_raw_fd(),
                ptr::null_mut(),
                to.as_raw_fd(),
                ptr::null_mut(),
                len,
                SPLICE_FLAGS,
            )
        };
        if let Ok(n) = usize::try_from(rc) {
            return Ok(n);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn fcntl_int(fd: BorrowedFd<'_>, cmd: libc::c_int, arg: libc::c_int) -> io::Result<libc::c_int> {
    // Safety: F_GETPIPE_SZ and F_SETPIPE_SZ take an int by value and touch none of our
    // memory; the descriptor is open for the duration of the borrow.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, arg) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A bounded pool of empty pipes, so that a connection holds a pipe only while bytes are in
/// flight and does not pay `pipe2` plus `close` each time it goes idle.
#[derive(Debug)]
pub struct PipePool {
    idle: Mutex<Idle>,
    max_idle_bytes: usize,
    created: AtomicU64,
    created_small: AtomicU64,
    reused: AtomicU64,
    closed_not_empty: AtomicU64,
    resize_refused: AtomicU64,
}

/// Counters of a [`PipePool`], for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Empty pipes waiting in the pool.
    pub idle: usize,
    /// Their total capacity.
    pub idle_bytes: usize,
    /// Pipes created with `pipe2`.
    pub created: u64,
    /// Pipes the kernel created smaller than [`DEFAULT_PIPE_CAPACITY`]: the user is over
    /// `pipe-user-pages-soft`.
    pub created_small: u64,
    /// Pipes taken from the pool instead of created.
    pub reused: u64,
    /// Pipes handed back holding bytes (or whose content could not be checked): closed.
    pub closed_not_empty: u64,
    /// `F_SETPIPE_SZ` answered EPERM.
    pub resize_refused: u64,
}

/// The pooled pipes and the sum of their capacities.
#[derive(Debug, Default)]
struct Idle {
    pipes: Vec<Pipe>,
    bytes: usize,
}

static GLOBAL: PipePool = PipePool::new(GLOBAL_POOL_IDLE_BYTES);
static RESIZE_WARNED: AtomicBool = AtomicBool::new(false);

impl PipePool {
    /// A pool that keeps empty pipes of at most `max_idle_bytes` capacity in total (0: no
    /// pooling). Bounded in bytes, not pipes: with a large `pipe_size`, a count would let
    /// idle pipes alone exhaust the user's pipe budget.
    pub const fn new(max_idle_bytes: usize) -> PipePool {
        PipePool {
            idle: Mutex::new(Idle {
                pipes: Vec::new(),
                bytes: 0,
            }),
            max_idle_bytes,
            created: AtomicU64::new(0),
            created_small: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            closed_not_empty: AtomicU64::new(0),
            resize_refused: AtomicU64::new(0),
        }
    }

    /// The process-wide pool used by [`crate::forward`].
    pub fn global() -> &'static PipePool {
        &GLOBAL
    }

    /// An empty pipe: a pooled one if any, else a new one, sized to `size` (`None`: the size
    /// the kernel gave it at creation). A pipe is resized only when a different size is
    /// wanted than last asked of it; EPERM is counted, not returned.
    pub fn take(&self, size: Option<usize>) -> io::Result<Pipe> {
        let pooled = {
            let mut idle = self.lock();
            let pipe = idle.pipes.pop();
            if let Some(pipe) = &pipe {
                idle.bytes -= pipe.capacity;
            }
            pipe
        };
        let mut pipe = match pooled {
            Some(pipe) => {
                self.reused.fetch_add(1, Ordering::Relaxed);
                pipe
            }
            None => {
                let pipe = Pipe::new()?;
                self.created.fetch_add(1, Ordering::Relaxed);
                if pipe.capacity < DEFAULT_PIPE_CAPACITY {
                    self.created_small.fetch_add(1, Ordering::Relaxed);
                }
                pipe
            }
        };
        if pipe.requested != size {
            pipe.requested = size;
            let size = size.unwrap_or(pipe.initial_capacity);
            match pipe.set_capacity(size) {
                Ok(Sizing::Set(_)) => {}
                Ok(Sizing::Refused(capacity)) => {
                    self.resize_refused.fetch_add(1, Ordering::Relaxed);
                    if !RESIZE_WARNED.swap(true, Ordering::Relaxed) {
                        warn!(
                            requested = size,
                            capacity,
                            "F_SETPIPE_SZ refused (EPERM: above pipe-max-size or over \
                             pipe-user-pages-soft); pipes keep a smaller size (logged once)"
                        );
                    }
                }
                Err(err) => debug!(requested = size, error = %err, "F_SETPIPE_SZ failed"),
            }
        }
        Ok(pipe)
    }

    /// Hands a pipe back. It is pooled only if it is empty by count *and* by the kernel's
    /// `FIONREAD`, and the pool has room; otherwise it is closed.
    pub fn put(&self, pipe: Pipe) {
        let empty = pipe.is_empty() && matches!(pipe.kernel_len(), Ok(0));
        if !empty {
            self.closed_not_empty.fetch_add(1, Ordering::Relaxed);
            if pipe.is_empty() {
                // Counted empty but the kernel disagrees (or cannot tell): a bug somewhere.
                debug!(kernel = ?pipe.kernel_len(), "pipe counted empty is not: closed");
            }
            return;
        }
        let rejected = {
            let mut idle = self.lock();
            if idle.bytes + pipe.capacity <= self.max_idle_bytes {
                idle.bytes += pipe.capacity;
                idle.pipes.push(pipe);
                None
            } else {
                Some(pipe)
            }
        };
        // Closed here, outside the lock.
        drop(rejected);
    }

    /// Closes every pooled pipe.
    pub fn clear(&self) {
        let idle = std::mem::take(&mut *self.lock());
        drop(idle);
    }

    pub fn stats(&self) -> PoolStats {
        let (idle, idle_bytes) = {
            let idle = self.lock();
            (idle.pipes.len(), idle.bytes)
        };
        PoolStats {
            idle,
            idle_bytes,
            created: self.created.load(Ordering::Relaxed),
            created_small: self.created_small.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
            closed_not_empty: self.closed_not_empty.load(Ordering::Relaxed),
            resize_refused: self.resize_refused.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Idle> {
        // Nothing that can panic runs under the lock (a push may abort on allocation failure,
        // it does not unwind halfway), so a poisoned lock still guards consistent data.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::net::{TcpListener, TcpStream};

    /// A connected pair of non-blocking loopback sockets.
    fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (b, _) = listener.accept().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    fn wait_readable(fd: BorrowedFd<'_>) {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Safety: `pfd` is one valid pollfd, alive for the call, and the count says 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, 5_000) };
        assert_eq!(rc, 1, "socket did not become readable within 5 s");
    }

    #[test]
    fn splice_in_and_out_move_bytes_and_count_them() {
        let (peer, relay_in) = socket_pair();
        let (relay_out, sink) = socket_pair();
        let mut pipe = Pipe::new().unwrap();
        assert_eq!(pipe.capacity(), DEFAULT_PIPE_CAPACITY);

        let err = splice_in(relay_in.as_fd(), &mut pipe, usize::MAX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "empty socket: {err}");

        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        (&peer).write_all(&data).unwrap();
        let mut spliced = 0;
        while spliced < data.len() {
            wait_readable(relay_in.as_fd());
            // usize::MAX must not be passed through to the kernel (realm's EINVAL).
            let n = match splice_in(relay_in.as_fd(), &mut pipe, usize::MAX) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => panic!("splice_in: {err}"),
            };
            assert!(n > 0);
            assert_eq!(pipe.len(), n);
            assert_eq!(pipe.kernel_len().unwrap(), n);
            let again = splice_in(relay_in.as_fd(), &mut pipe, 1).unwrap_err();
            assert_eq!(again.kind(), io::ErrorKind::InvalidInput);
            assert!(!is_refused(&again), "misuse is not a refusal");
            while !pipe.is_empty() {
                splice_out(&mut pipe, relay_out.as_fd(), usize::MAX).unwrap();
            }
            assert_eq!(pipe.kernel_len().unwrap(), 0);
            spliced += n;
        }
        let mut received = Vec::new();
        let mut buf = vec![0; 65536];
        while received.len() < data.len() {
            wait_readable(sink.as_fd());
            match (&sink).read(&mut buf) {
                Ok(got) => received.extend_from_slice(&buf[..got]),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => panic!("read: {err}"),
            }
        }
        assert_eq!(received, data);
    }

    #[test]
    fn splice_in_returns_zero_at_end_of_stream() {
        let (peer, relay_in) = socket_pair();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        wait_readable(relay_in.as_fd());
        let mut pipe = Pipe::new().unwrap();
        assert_eq!(splice_in(relay_in.as_fd(), &mut pipe, 4096).unwrap(), 0);
        assert!(pipe.is_empty());
    }

    #[test]
    fn splice_from_a_directory_is_refused() {
        let dir = File::open("/").unwrap();
        let mut pipe = Pipe::new().unwrap();
        let err = splice_in(dir.as_fd(), &mut pipe, 4096).unwrap_err();
        assert!(
            is_refused(&err),
            "expected EINVAL-like refusal, got {err:?}"
        );
        assert!(pipe.is_empty());
    }

    #[test]
    fn pool_keeps_only_verified_empty_pipes_and_is_bounded() {
        let pool = PipePool::new(2 * DEFAULT_PIPE_CAPACITY);
        let mut full = pool.take(None).unwrap();
        full.write_from(b"undelivered").unwrap();
        pool.put(full);
        assert_eq!(
            pool.stats().idle,
            0,
            "a pipe holding bytes must never be pooled"
        );
        assert_eq!(pool.stats().closed_not_empty, 1);

        // Emptied by reading: back to zero by count and by FIONREAD, so it is pooled.
        let mut drained = pool.take(None).unwrap();
        drained.write_from(b"abc").unwrap();
        let mut buf = [0; 8];
        assert_eq!(drained.read_into(&mut buf).unwrap(), 3);
        pool.put(drained);
        assert_eq!(pool.stats().idle, 1);

        let pipes: Vec<Pipe> = (0..3).map(|_| pool.take(None).unwrap()).collect();
        assert_eq!(pool.stats().reused, 1);
        for pipe in pipes {
            pool.put(pipe);
        }
        assert_eq!(pool.stats().idle, 2, "bounded at max_idle_bytes");
        pool.clear();
        assert_eq!(pool.stats().idle, 0);
    }

    #[test]
    fn pool_sizes_pipes_as_asked_and_back() {
        let pool = PipePool::new(1 << 20);
        let pipe = pool.take(Some(256 * 1024)).unwrap();
        assert_eq!(pipe.capacity(), 256 * 1024);
        pool.put(pipe);
        let pipe = pool.take(Some(256 * 1024)).unwrap();
        assert_eq!(pipe.capacity(), 256 * 1024);
        pool.put(pipe);
        // A pooled pipe goes back to the kernel's default for a caller that wants that.
        let pipe = pool.take(None).unwrap();
        assert_eq!(pipe.capacity(), DEFAULT_PIPE_CAPACITY);
        assert_eq!(pool.stats().reused, 2);
        assert_eq!(pool.stats().created, 1);
        assert_eq!(pool.stats().resize_refused, 0);

        // The bound is in bytes: one large pipe does not fit where one default pipe would.
        let small = PipePool::new(DEFAULT_PIPE_CAPACITY);
        small.put(small.take(Some(256 * 1024)).unwrap());
        assert_eq!(small.stats().idle, 0);
        small.put(small.take(None).unwrap());
        assert_eq!(small.stats().idle_bytes, DEFAULT_PIPE_CAPACITY);
    }

    /// `capget`/`capset` header and data (linux/capability.h, version 3: two data words).
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: libc::c_int,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }

    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_SYS_RESOURCE: u32 = 24;

    /// Drops CAP_SYS_ADMIN and CAP_SYS_RESOURCE from the effective set of the calling thread
    /// only (capabilities are per thread), so the kernel treats it as unprivileged for pipes.
    fn drop_pipe_privileges_of_this_thread() {
        let mut header = CapHeader {
            version: 0x2008_0522,
            pid: 0,
        };
        let mut data = [CapData::default(); 2];
        // Safety: capget writes one header and two data structs, which is what we pass.
        let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
        assert_eq!(rc, 0, "capget: {}", io::Error::last_os_error());
        data[0].effective &= !((1 << CAP_SYS_ADMIN) | (1 << CAP_SYS_RESOURCE));
        // Safety: capset reads one header and two data structs, which is what we pass; with
        // pid 0 it changes only the calling thread, and only lowers its effective set.
        let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
        assert_eq!(rc, 0, "capset: {}", io::Error::last_os_error());
    }

    #[test]
    fn resize_refused_with_eperm_is_survived_and_counted() {
        let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // On a dedicated thread: dropping capabilities must not leak into other tests.
        std::thread::spawn(move || {
            drop_pipe_privileges_of_this_thread();
            let pool = PipePool::new(4 * DEFAULT_PIPE_CAPACITY);
            let mut pipe = pool.take(Some(max * 2)).unwrap();
            assert_eq!(pool.stats().resize_refused, 1);
            assert_eq!(pipe.capacity(), DEFAULT_PIPE_CAPACITY, "keeps its size");
            // Still a working pipe.
            assert_eq!(pipe.write_from(b"still works").unwrap(), 11);
            let mut buf = [0; 16];
            assert_eq!(pipe.read_into(&mut buf).unwrap(), 11);
            pool.put(pipe);
            // Not asked again for the same pipe: one refusal, counted once.
            let pipe = pool.take(Some(max * 2)).unwrap();
            assert_eq!(pool.stats().resize_refused, 1);
            drop(pipe);
        })
        .join()
        .unwrap();
    }
}
