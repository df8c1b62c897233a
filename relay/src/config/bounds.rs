//! The range of every duration, count and size in the configuration, in one table, each with
//! the reason for its ends. A value outside its range is refused with a message that names the
//! range (`--health-interval 1ms is not valid: must be from 100ms to 1d`).
//!
//! The ends are not tuning advice: they are where a value stops meaning what an operator could
//! have meant (a health check every millisecond is a flood, a connect deadline of a week is
//! the kernel's own deadline of about two minutes, a thousand checks in a row is a typo).
//! `relay.example.toml` and the README list the same ranges.

use std::time::Duration;

use super::duration::format_duration;
use super::size::format_size;

/// The smallest and the largest value a setting takes, both allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bounds<T> {
    pub(super) min: T,
    pub(super) max: T,
}

impl<T: PartialOrd + Copy> Bounds<T> {
    pub(super) fn contains(&self, value: T) -> bool {
        self.min <= value && value <= self.max
    }
}

impl Bounds<Duration> {
    /// `must be from 100ms to 1d`, or `must be at most 1d` when zero is allowed.
    pub(super) fn reason(&self) -> String {
        if self.min.is_zero() {
            format!("must be at most {}", format_duration(self.max))
        } else {
            format!(
                "must be from {} to {}",
                format_duration(self.min),
                format_duration(self.max)
            )
        }
    }
}

impl Bounds<u64> {
    /// `must be from 1 to 100`.
    pub(super) fn reason(&self) -> String {
        format!("must be from {} to {}", self.min, self.max)
    }

    /// `must be from 4KiB to 1MiB`.
    pub(super) fn size_reason(&self) -> String {
        format!(
            "must be from {} to {}",
            format_size(self.min),
            format_size(self.max)
        )
    }
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const DAY: Duration = secs(86_400);

/// Below 10 ms even a connect on the same LAN fails when the upstream is busy; the kernel
/// gives up on an unanswered SYN after about two minutes (`tcp_syn_retries` = 6), so more
/// than 5 minutes would only be the kernel's deadline under another name.
pub(super) const CONNECT_TIMEOUT: Bounds<Duration> = Bounds {
    min: ms(10),
    max: secs(300),
};

/// A health check's connect: the same floor as `connect_timeout`; its ceiling is the interval.
pub(super) const HEALTH_TIMEOUT: Bounds<Duration> = Bounds {
    min: ms(10),
    max: DAY,
};

/// At least 100 ms: at most ten checks a second per upstream (1 ms was 5,000 a second). At
/// most a day, like every other duration: longer is a typo, not a schedule.
pub(super) const HEALTH_INTERVAL: Bounds<Duration> = Bounds {
    min: ms(100),
    max: DAY,
};

/// Quiet time before a connection (or, after a half-close, its open half) is closed. Under a
/// second would cut connections whose peer is merely slow (a TLS handshake across the link, a
/// backend thinking); over a day is no longer a timeout.
pub(super) const IDLE_TIMEOUT: Bounds<Duration> = Bounds {
    min: secs(1),
    max: DAY,
};

/// See [`IDLE_TIMEOUT`].
pub(super) const HALF_CLOSE_TIMEOUT: Bounds<Duration> = IDLE_TIMEOUT;

/// A balancer writes its header with (or right after) the handshake, so 100 ms is above any
/// LAN round trip; some balancers hold it until the client's first bytes, hence minutes at
/// most rather than seconds.
pub(super) const PROXY_HEADER_TIMEOUT: Bounds<Duration> = Bounds {
    min: ms(100),
    max: secs(300),
};

/// Zero closes open connections at once; more than a day of draining is a stuck stop.
pub(super) const GRACE: Bounds<Duration> = Bounds {
    min: Duration::ZERO,
    max: DAY,
};

/// The kernel takes TCP_KEEPIDLE in whole seconds from 1 to 32767.
pub(super) const KEEPALIVE: Bounds<Duration> = Bounds {
    min: secs(1),
    max: secs(32_767),
};

/// Checks in a row: more than 100 is a typo (a longer wait is a longer interval).
pub(super) const RISE_FALL: Bounds<u64> = Bounds { min: 1, max: 100 };

/// Open connections per listener or per client address: each holds at least two descriptors,
/// and a process gets at most 1,048,576 (`fs.nr_open`'s default), so a million is already
/// more than the relay can hold; for no limit, `unlimited`.
pub(super) const CONNECTIONS: Bounds<u64> = Bounds {
    min: 1,
    max: 1_000_000,
};

/// `F_SETPIPE_SZ`: at least one page; at most `fs.pipe-max-size`'s default, the most an
/// unprivileged process may ask for.
pub(super) const PIPE_SIZE: Bounds<u64> = Bounds {
    min: 4096,
    max: 1 << 20,
};

/// Listeners in a file: each binds one socket per runtime worker and runs its own health
/// checks. Deployments have two; 256 leaves room for any, and refuses a generator gone wrong.
pub(super) const LISTENERS: usize = 256;

/// Upstreams and backups of one listener, each health-checked on its own: far above any pool
/// behind one address.
pub(super) const UPSTREAMS: usize = 64;

/// The most a `--config` file may hold; a real one is a few kilobytes.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Warm connections per upstream: a few cover a burst of new visitors (each is refilled one
/// round trip after it is taken); beyond 64 the idle connections cost the upstream more than
/// they save.
pub(super) const WARM: Bounds<u64> = Bounds { min: 0, max: 64 };

/// A warm connection's longest life: under 100 ms it is recycled faster than a long link
/// refills it; an hour is longer than any upstream waits for a silent connection.
pub(super) const WARM_MAX_IDLE: Bounds<Duration> = Bounds {
    min: ms(100),
    max: secs(3600),
};
