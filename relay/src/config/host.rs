//! This host's addresses, and the rule that no upstream leads back into one of our own
//! listeners. A listener on `0.0.0.0:443` that forwards to `127.0.0.1:443` (or to any address
//! of this host, port 443) connects to itself: each connection opens another until the
//! descriptors run out. The same holds through a second listener of ours, so an upstream that
//! any of our listeners would accept is refused.
//!
//! The decision is plain code over the addresses it is given ([`HostAddrs`]), so it is tested
//! without a network; the binary reads them from the interfaces at start and at each reload.

use std::net::{IpAddr, SocketAddr};

/// The IP addresses of this host's interfaces. Loopback (`127.0.0.0/8`, `::1`) and the
/// unspecified addresses (a connect to `0.0.0.0` reaches this host) count whether listed or
/// not, so [`HostAddrs::default`] knows those alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostAddrs {
    /// Canonical (an IPv4-mapped IPv6 address is IPv4), sorted, without duplicates.
    addrs: Vec<IpAddr>,
}

impl HostAddrs {
    pub fn new(addrs: impl IntoIterator<Item = IpAddr>) -> HostAddrs {
        let mut addrs: Vec<IpAddr> = addrs.into_iter().map(|ip| ip.to_canonical()).collect();
        addrs.sort_unstable();
        addrs.dedup();
        HostAddrs { addrs }
    }

    /// Whether a connection to `ip` reaches this host.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_loopback() || ip.is_unspecified() || self.addrs.binary_search(&ip).is_ok()
    }
}

/// Whether a listener bound to `listen` accepts a connection made to `dest`: the same port
/// (never port 0, which the kernel replaces), and the same address, or an address of this host
/// when the listener is on the wildcard. `[::]` counts for IPv4 too: the relay leaves
/// IPV6_V6ONLY unset, so unless `net.ipv6.bindv6only` is on, it takes both.
pub(super) fn accepts(listen: SocketAddr, dest: SocketAddr, host: &HostAddrs) -> bool {
    if listen.port() == 0 || listen.port() != dest.port() {
        return false;
    }
    let (listen_ip, dest_ip) = (listen.ip().to_canonical(), dest.ip().to_canonical());
    if listen_ip == dest_ip {
        return true;
    }
    if !host.is_local(dest_ip) {
        return false;
    }
    match listen_ip {
        IpAddr::V4(ip) => ip.is_unspecified() && dest_ip.is_ipv4(),
        IpAddr::V6(ip) => ip.is_unspecified(),
    }
}
