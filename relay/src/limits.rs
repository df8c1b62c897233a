//! Admission: connection limits per listener and per client address, and the reasons a
//! connection is refused.
//!
//! A slot is held by an RAII guard, so a connection that ends in any way (error, panic in its
//! task, timeout) gives its slot back. [`Refusal`] is the one list of refusal reasons: the
//! limits here decide two of them, the connection the others, and the metrics count each
//! under its [`Refusal::label`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client address is denied, or not allowed.
    Acl,
    /// The listener is at `max_connections`.
    MaxConnections,
    /// The client address is at `max_per_ip`.
    MaxPerIp,
    /// A PROXY header was missing, malformed, late, or sent by an untrusted peer.
    ProxyHeader,
    /// No upstream is up.
    NoUpstream,
    /// Every upstream tried failed to connect in time.
    UpstreamConnect,
}

impl Refusal {
    /// Every reason, in the order the metrics list them.
    pub const ALL: [Refusal; 6] = [
        Refusal::Acl,
        Refusal::MaxConnections,
        Refusal::MaxPerIp,
        Refusal::ProxyHeader,
        Refusal::NoUpstream,
        Refusal::UpstreamConnect,
    ];

    /// The reason's name in metrics (the `reason` label) and logs.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Acl => "acl",
            Refusal::MaxConnections => "max_connections",
            Refusal::MaxPerIp => "max_per_ip",
            Refusal::ProxyHeader => "proxy_header",
            Refusal::NoUpstream => "no_upstream",
            Refusal::UpstreamConnect => "upstream_connect",
        }
    }

    /// The reason's position in [`Refusal::ALL`], for counters kept in an array.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Open connections of one listener, in total and by client address, and the connections
/// still waiting for their first bytes.
///
/// The limits can change while connections are open (a reload): the counts carry on, and the
/// new maximums apply to the next connection. Connections are counted per address only while
/// a per-address limit is set, so a listener without one never takes the map's lock; a
/// per-address limit set by a reload counts the connections opened after it.
#[derive(Debug, Default)]
pub struct Limits {
    /// 0: no limit.
    max_total: AtomicUsize,
    /// 0: no limit.
    max_per_ip: AtomicUsize,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    waiting: AtomicUsize,
}

/// Connections of one listener that may wait at once for their first bytes (a PROXY header, or
/// the bytes that tell whether an untrusted client sends one). A client is at most
/// `proxy_header_timeout` in this state; beyond this many, an untrusted client is not waited
/// for (its first bytes go upstream behind the relay's own header, where a spoofed header is
/// only payload) and a trusted sender is refused.
pub const MAX_WAITING: usize = 4096;

impl Limits {
    pub fn new(max_total: Option<usize>, max_per_ip: Option<usize>) -> Limits {
        let limits = Limits::default();
        limits.set(max_total, max_per_ip);
        limits
    }

    /// Sets new maximums (`None`: no limit).
    pub fn set(&self, max_total: Option<usize>, max_per_ip: Option<usize>) {
        self.max_total
            .store(max_total.unwrap_or(0), Ordering::Release);
        self.max_per_ip
            .store(max_per_ip.unwrap_or(0), Ordering::Release);
    }

    fn max(field: &AtomicUsize) -> Option<usize> {
        Some(field.load(Ordering::Acquire)).filter(|&m| m > 0)
    }

    /// Takes a slot for a connection from `ip` (total and per address), or says which limit
    /// refuses it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut slot = self.admit_total()?;
        slot.admit_ip(ip)?;
        Ok(slot)
    }

    /// Takes a slot counted in the listener's total only: for a connection whose client
    /// address is not known yet (a trusted load balancer's, until its PROXY header is read).
    pub fn admit_total(self: &Arc<Self>) -> Result<Slot, Refusal> {
        let previous = self.total.fetch_add(1, Ordering::AcqRel);
        let slot = Slot {
            limits: Arc::clone(self),
            ip: None,
        };
        if Self::max(&self.max_total).is_some_and(|max| previous >= max) {
            // Dropping the slot gives the count back.
            return Err(Refusal::MaxConnections);
        }
        Ok(slot)
    }

    /// Marks one more connection as waiting for its first bytes, unless [`MAX_WAITING`] are.
    pub fn start_waiting(self: &Arc<Self>) -> Option<Waiting> {
        let previous = self.waiting.fetch_add(1, Ordering::AcqRel);
        let waiting = Waiting(Arc::clone(self));
        (previous < MAX_WAITING).then_some(waiting)
    }

    /// Connections holding a slot.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Connections waiting for their first bytes.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One admitted connection's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<Limits>,
    /// The address it is counted under, if a per-address limit was set when it was admitted.
    ip: Option<IpAddr>,
}

impl Slot {
    /// Counts this connection under client address `ip`, if a per-address limit is set, or
    /// says that the limit refuses it (the slot is still held; drop it).
    pub fn admit_ip(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        let Some(max) = Limits::max(&self.limits.max_per_ip) else {
            return Ok(());
        };
        let ip = canonical(ip);
        let mut per_ip = self.limits.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let count = per_ip.entry(ip).or_insert(0);
        // `max` is at least 1, so a refused address always has an entry already.
        if *count >= max {
            return Err(Refusal::MaxPerIp);
        }
        *count += 1;
        self.ip = Some(ip);
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut per_ip = self.limits.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    // No entry for addresses with nothing open: the map stays small.
                    per_ip.remove(&ip);
                }
            }
        }
        self.limits.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection counted as waiting for its first bytes; dropping it stops counting it.
#[derive(Debug)]
pub struct Waiting(Arc<Limits>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_and_per_ip_limits_and_release() {
        let limits = Arc::new(Limits::new(Some(3), Some(2)));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let a_mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = limits.admit(a).unwrap();
        let s2 = limits.admit(a_mapped).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::MaxPerIp);
        let s3 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refusal::MaxConnections);
        assert_eq!(limits.open(), 3);
        drop(s1);
        let s4 = limits.admit(a).unwrap();
        drop((s2, s3, s4));
        assert_eq!(limits.open(), 0);
        assert!(limits.per_ip.lock().unwrap().is_empty());
    }

    #[test]
    fn new_maximums_apply_to_the_next_connection() {
        let limits = Arc::new(Limits::new(None, None));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let _a = limits.admit(ip).unwrap();
        let _b = limits.admit(ip).unwrap();
        // Without a per-address limit nothing was counted per address (no lock taken).
        assert!(limits.per_ip.lock().unwrap().is_empty());
        limits.set(None, Some(2));
        let _c = limits.admit(ip).unwrap();
        let _d = limits.admit(ip).unwrap();
        assert_eq!(limits.admit(ip).unwrap_err(), Refusal::MaxPerIp);
        limits.set(Some(4), None);
        assert_eq!(limits.admit(ip).unwrap_err(), Refusal::MaxConnections);
        assert_eq!(limits.open(), 4, "refusals give their count back");
    }

    #[test]
    fn a_trusted_senders_connection_is_counted_per_address_once_it_is_known() {
        let limits = Arc::new(Limits::new(Some(10), Some(1)));
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let mut first = limits.admit_total().unwrap();
        let mut second = limits.admit_total().unwrap();
        assert_eq!(limits.open(), 2);
        first.admit_ip(client).unwrap();
        assert_eq!(second.admit_ip(client).unwrap_err(), Refusal::MaxPerIp);
        drop(second);
        assert_eq!(limits.open(), 1);
        drop(first);
        assert_eq!(limits.open(), 0);
        assert!(limits.per_ip.lock().unwrap().is_empty());
    }

    #[test]
    fn waiting_is_bounded_and_released() {
        let limits = Arc::new(Limits::new(None, None));
        let held: Vec<Waiting> = (0..MAX_WAITING)
            .map(|_| limits.start_waiting().expect("under the bound"))
            .collect();
        assert!(limits.start_waiting().is_none());
        assert_eq!(
            limits.waiting(),
            MAX_WAITING,
            "a refused wait is not counted"
        );
        drop(held);
        assert_eq!(limits.waiting(), 0);
        assert!(limits.start_waiting().is_some());
    }

    #[test]
    fn every_reason_has_its_own_index_and_label() {
        for (i, reason) in Refusal::ALL.into_iter().enumerate() {
            assert_eq!(reason.index(), i, "{reason:?}");
        }
        let mut labels: Vec<&str> = Refusal::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Refusal::ALL.len());
    }

    #[test]
    fn no_limits_admit_everyone() {
        let limits = Arc::new(Limits::new(None, None));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let slots: Vec<Slot> = (0..1000).map(|_| limits.admit(ip).unwrap()).collect();
        assert_eq!(limits.open(), 1000);
        drop(slots);
        assert_eq!(limits.open(), 0);
    }
}
