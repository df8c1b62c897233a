//! Pipes and `splice(2)`: the only module of the relay with `unsafe`.
//!
//! `splice(2)` moves bytes between a socket and a pipe inside the kernel: socket -> pipe takes
//! references to the received pages, pipe -> socket hands them to the sending socket. A relay
//! direction is therefore [`splice_in`] (socket -> pipe) then [`splice_out`] (pipe -> socket),
//! with no user-space buffer. What this module guarantees (DESIGN.md, "The relay", tells what
//! went wrong where relays did without):
//!
//! * **EAGAIN has one meaning per call.** [`splice_in`] fills only an empty pipe (a pipe that
//!   holds bytes is refused with [`PipeError::NotEmpty`]), and an empty pipe always has a free
//!   slot, so its EAGAIN always means "the socket is empty", never "the pipe is full" (a pipe
//!   has `capacity / PAGE_SIZE` slots and every spliced fragment takes one, so a pipe can be
//!   full while holding far fewer bytes than its capacity). [`splice_out`]'s EAGAIN means "the
//!   socket's send buffer is full".
//! * **A pipe knows what it holds.** A [`Pipe`] counts its bytes ([`Pipe::len`]), which
//!   [`Pipe::kernel_len`] checks against `FIONREAD`. Dropping a pipe discards what it holds:
//!   the caller drains it before it closes the destination.
//! * **Bounded lengths.** The length handed to the kernel is never more than the pipe's
//!   capacity (never `usize::MAX`, which newer kernels reject with EINVAL).
//! * **EPERM on resize is an answer, not an error.** Over `pipe-max-size`, or once the user is
//!   over `pipe-user-pages-soft`, `F_SETPIPE_SZ` fails with EPERM; [`Pipe::set_capacity`]
//!   reports [`Sizing::Refused`] and the pipe keeps working at its size.
//! * **Refusal is recognisable.** [`is_refused`] tells "splice is not supported for these
//!   descriptors" (EINVAL, ENOSYS, EOPNOTSUPP) from other errors; the caller copies instead.
//! * `SPLICE_F_MORE` is never set (it corks the socket like `TCP_CORK`); `SPLICE_F_MOVE` is a
//!   hint. Splicing into a socket whose peer is gone returns EPIPE: the kernel raises SIGPIPE,
//!   which Rust's runtime ignores before `main`.
//!
//! Sockets must be non-blocking (tokio's are): `SPLICE_F_NONBLOCK` only makes the pipe side
//! non-blocking, the socket side follows the socket's own `O_NONBLOCK`. The pool that lends
//! pipes to connections is [`crate::pipe_pool`].

use std::fs::File;
use std::io::{self, Read as _};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd};
use std::ptr;

/// The capacity Linux gives a new pipe (16 pages of 4 KiB) when the user is within budget.
pub const DEFAULT_PIPE_CAPACITY: usize = 64 * 1024;

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
    /// The capacity the kernel gave the pipe at creation (what a size of `None` means).
    initial_capacity: usize,
    /// The size last asked for by [`Pipe::resize`], granted or not (`None`: the initial one).
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

    /// The capacity the kernel gave the pipe when it was created.
    pub fn initial_capacity(&self) -> usize {
        self.initial_capacity
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

    /// Sizes the pipe for a user that wants `size` (`None`: its initial capacity), unless that
    /// is what was last asked of it, granted or not: a reused pipe is not resized again for
    /// every user that wants the same, nor asked again after a refusal. `Ok(None)`: nothing
    /// was asked.
    pub fn resize(&mut self, size: Option<usize>) -> io::Result<Option<Sizing>> {
        if self.requested == size {
            return Ok(None);
        }
        self.requested = size;
        self.set_capacity(size.unwrap_or(self.initial_capacity))
            .map(Some)
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
    pub(crate) fn write_from(&mut self, buf: &[u8]) -> io::Result<usize> {
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

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
