//! A bounded pool of empty pipes, so that a connection holds a pipe only while bytes are in
//! flight and does not pay `pipe2` plus `close` each time it goes idle.
//!
//! Guarantees:
//!
//! * A pipe goes back into the pool only when it is empty by its own count *and* by the
//!   kernel's `FIONREAD`; any other pipe is closed, so no byte can reach another connection.
//! * The pool keeps at most its bound in pipe capacity, not in pipes (with a large `pipe_size`,
//!   a count would let idle pipes alone exhaust the user's pipe budget).
//! * A pipe is resized only when its user wants another size than was last asked of it; a
//!   refused resize (EPERM) is counted and logged once per process, never returned as an error.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tracing::{debug, warn};

use crate::splice::{Pipe, Sizing, DEFAULT_PIPE_CAPACITY};

/// Total capacity of the empty pipes the process-wide pool keeps for reuse: 64 default
/// pipes, 1024 pages, a sixteenth of the default `pipe-user-pages-soft` budget (pooled pipes
/// are charged to it like busy ones), whatever `pipe_size` is.
pub const GLOBAL_POOL_IDLE_BYTES: usize = 64 * DEFAULT_PIPE_CAPACITY;

/// A pool of empty pipes (see the module doc).
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
                idle.bytes -= pipe.capacity();
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
                if pipe.capacity() < DEFAULT_PIPE_CAPACITY {
                    self.created_small.fetch_add(1, Ordering::Relaxed);
                }
                pipe
            }
        };
        let requested = size.unwrap_or(pipe.initial_capacity());
        match pipe.resize(size) {
            Ok(None | Some(Sizing::Set(_))) => {}
            Ok(Some(Sizing::Refused(capacity))) => {
                self.resize_refused.fetch_add(1, Ordering::Relaxed);
                if !RESIZE_WARNED.swap(true, Ordering::Relaxed) {
                    warn!(
                        requested,
                        capacity,
                        "F_SETPIPE_SZ refused (EPERM: above pipe-max-size or over \
                         pipe-user-pages-soft); pipes keep a smaller size (logged once)"
                    );
                }
            }
            Err(err) => debug!(requested, error = %err, "F_SETPIPE_SZ failed"),
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
            if idle.bytes + pipe.capacity() <= self.max_idle_bytes {
                idle.bytes += pipe.capacity();
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
    use crate::splice::testing::drop_pipe_privileges_of_this_thread;

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
