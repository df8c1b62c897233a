//! HAProxy's PROXY protocol, versions 1 (text) and 2 (binary): headers written to upstreams,
//! and headers read from a trusted L4 load balancer in front of the relay.
//!
//! Spec: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.
//!
//! Writing: IPv4-mapped IPv6 addresses (what a dual-stack `[::]` listener reports for an IPv4
//! client) are written as IPv4, so Envoy sees `203.0.113.9` rather than `::ffff:203.0.113.9`.
//! When the two ends are still of different families, the IPv4 one is written mapped into IPv6
//! (`TCP6` / `AF_INET6`), as the spec allows, rather than `UNKNOWN`, which would lose the client
//! address the header exists to carry.
//!
//! Reading: [`parse`] works on whatever bytes have arrived. It answers
//! [`Parsed::Incomplete`] while the bytes so far are a valid start of a header, and an error as
//! soon as they cannot be one, so a client that sends no header (a TLS ClientHello starts with
//! 0x16) is refused at its first byte rather than after a timeout. It never looks past the
//! header's end: the caller forwards everything after `len` untouched. A v2 header's TLVs are
//! skipped; its length is bounded by [`MAX_V2_PAYLOAD`] so that a reader never buffers more
//! than [`MAX_HEADER_LEN`] bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12 bytes that open every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest v1 header, CRLF included (the spec's limit).
pub const MAX_V1_LEN: usize = 107;

/// The longest v2 payload (addresses and TLVs) accepted: far above what load balancers send
/// (AWS NLB, GCP and HAProxy stay under a few hundred bytes), low enough to bound buffering.
pub const MAX_V2_PAYLOAD: usize = 4096;

/// The most bytes [`parse`] needs to see to decide: a reader may stop at this many.
pub const MAX_HEADER_LEN: usize = 16 + MAX_V2_PAYLOAD;

const V1_PREFIX: &[u8] = b"PROXY ";

/// Writes a v1 header: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (or `TCP6`).
pub fn encode_v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (proto, src_ip, dst_ip) = match same_family(src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ("TCP4", IpAddr::V4(s), IpAddr::V4(d)),
        (s, d) => ("TCP6", s, d),
    };
    format!(
        "PROXY {proto} {src_ip} {dst_ip} {} {}\r\n",
        src.port(),
        dst.port()
    )
    .into_bytes()
}

/// The header of a connection that carries no client: v1 `PROXY UNKNOWN`, v2 command `LOCAL`
/// with `AF_UNSPEC`. The relay's health checks send it, so that a receiver that requires a
/// PROXY header (Envoy's listener filter) counts a check as a proper connection, not an error.
pub fn encode_local(version: u8) -> Vec<u8> {
    if version == 1 {
        return b"PROXY UNKNOWN\r\n".to_vec();
    }
    let mut out = V2_SIGNATURE.to_vec();
    out.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]); // version 2, LOCAL; AF_UNSPEC; length 0
    out
}

/// Writes a v2 header: command PROXY, `AF_INET` or `AF_INET6` over `STREAM`, no TLVs.
pub fn encode_v2(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21); // version 2, command PROXY
    match same_family(src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11); // AF_INET, STREAM
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            out.push(0x21); // AF_INET6, STREAM
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&to_v6(s).octets());
            out.extend_from_slice(&to_v6(d).octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out
}

/// Both addresses unmapped to IPv4 where possible, then mapped to IPv6 if the families differ.
fn same_family(src: IpAddr, dst: IpAddr) -> (IpAddr, IpAddr) {
    match (src.to_canonical(), dst.to_canonical()) {
        (s @ IpAddr::V4(_), d @ IpAddr::V4(_)) => (s, d),
        (s, d) => (IpAddr::V6(to_v6(s)), IpAddr::V6(to_v6(d))),
    }
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// What [`parse`] made of the bytes so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A valid start of a header: read more bytes and call again.
    Incomplete,
    /// A whole header, `len` bytes long; the bytes after it belong to the connection.
    /// The addresses are `None` when the header carries none (v1 `UNKNOWN`, v2 `LOCAL`, v2
    /// `AF_UNSPEC`, `AF_UNIX` or a non-`STREAM` transport): the connection's own endpoints
    /// apply then.
    Header {
        len: usize,
        source: Option<SocketAddr>,
        destination: Option<SocketAddr>,
    },
}

/// Why bytes are not an acceptable PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("not a PROXY protocol header")]
    NotProxy,
    #[error("v1 header has no CRLF within {} bytes", MAX_V1_LEN)]
    V1TooLong,
    #[error("v1 header is malformed: {0}")]
    V1Malformed(&'static str),
    #[error("v2 header has version {0}, expected 2")]
    V2Version(u8),
    #[error("v2 header has unknown command {0:#x}")]
    V2Command(u8),
    #[error("v2 header has unknown address family or transport {0:#04x}")]
    V2Family(u8),
    #[error("v2 header length {0} is over the limit of {max}", max = MAX_V2_PAYLOAD)]
    V2TooLong(usize),
    #[error("v2 header length {len} is too short for {family} addresses")]
    V2TooShort { family: &'static str, len: usize },
}

/// Reads a PROXY header (v1 or v2) from the start of `buf`, which holds the bytes received so
/// far. See the module doc for the guarantees.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    match buf.first() {
        None => Ok(Parsed::Incomplete),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => Err(ProxyError::NotProxy),
    }
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let seen = buf.len().min(V1_PREFIX.len());
    if buf[..seen] != V1_PREFIX[..seen] {
        return Err(ProxyError::NotProxy);
    }
    // Look no further than the longest header: bytes beyond it are not ours to judge.
    let window = &buf[..buf.len().min(MAX_V1_LEN)];
    let mut end = None;
    for (i, &b) in window.iter().enumerate().skip(V1_PREFIX.len()) {
        match b {
            b'\r' => match window.get(i + 1) {
                Some(b'\n') => {
                    end = Some(i);
                    break;
                }
                Some(_) => return Err(ProxyError::V1Malformed("CR not followed by LF")),
                None => {}
            },
            b' '..=b'~' => {}
            _ => return Err(ProxyError::V1Malformed("unexpected byte")),
        }
    }
    let Some(end) = end else {
        check_v1_protocol(&window[V1_PREFIX.len().min(window.len())..])?;
        return if window.len() == MAX_V1_LEN {
            Err(ProxyError::V1TooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let len = end + 2;
    // Every byte of the line is printable ASCII (checked above).
    let line = std::str::from_utf8(&buf[V1_PREFIX.len()..end])
        .map_err(|_| ProxyError::V1Malformed("unexpected byte"))?;
    let mut fields = line.split(' ');
    let proto = fields.next().unwrap_or_default();
    let want_v4 = match proto {
        "UNKNOWN" => {
            // The spec: anything may follow UNKNOWN; the receiver ignores it.
            return Ok(Parsed::Header {
                len,
                source: None,
                destination: None,
            });
        }
        "TCP4" => true,
        "TCP6" => false,
        _ => return Err(ProxyError::V1Malformed("unknown protocol")),
    };
    let fields: Vec<&str> = fields.collect();
    let [src, dst, sport, dport] = fields[..] else {
        return Err(ProxyError::V1Malformed(
            "expected source, destination and two ports",
        ));
    };
    let src = v1_ip(src, want_v4).ok_or(ProxyError::V1Malformed("bad source address"))?;
    let dst = v1_ip(dst, want_v4).ok_or(ProxyError::V1Malformed("bad destination address"))?;
    let sport = v1_port(sport).ok_or(ProxyError::V1Malformed("bad source port"))?;
    let dport = v1_port(dport).ok_or(ProxyError::V1Malformed("bad destination port"))?;
    Ok(Parsed::Header {
        len,
        source: Some(SocketAddr::new(src, sport)),
        destination: Some(SocketAddr::new(dst, dport)),
    })
}

/// Refuses early a protocol word that can never become `TCP4`, `TCP6` or `UNKNOWN`.
fn check_v1_protocol(after_prefix: &[u8]) -> Result<(), ProxyError> {
    let word_end = after_prefix.iter().position(|&b| b == b' ' || b == b'\r');
    let word = &after_prefix[..word_end.unwrap_or(after_prefix.len())];
    let fits = |known: &[u8]| match word_end {
        Some(_) => word == known,
        None => known.starts_with(word),
    };
    if [&b"TCP4"[..], b"TCP6", b"UNKNOWN"].into_iter().any(fits) {
        Ok(())
    } else {
        Err(ProxyError::V1Malformed("unknown protocol"))
    }
}

fn v1_ip(text: &str, want_v4: bool) -> Option<IpAddr> {
    if want_v4 {
        text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else {
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    }
}

fn v1_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let seen = buf.len().min(V2_SIGNATURE.len());
    if buf[..seen] != V2_SIGNATURE[..seen] {
        return Err(ProxyError::NotProxy);
    }
    let Some(&ver_cmd) = buf.get(12) else {
        return Ok(Parsed::Incomplete);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::V2Version(ver_cmd >> 4));
    }
    let proxy = match ver_cmd & 0x0f {
        0x0 => false, // LOCAL: health checks of the balancer itself
        0x1 => true,
        other => return Err(ProxyError::V2Command(other)),
    };
    let Some(&fam) = buf.get(13) else {
        return Ok(Parsed::Incomplete);
    };
    if fam >> 4 > 0x3 || fam & 0x0f > 0x2 {
        return Err(ProxyError::V2Family(fam));
    }
    let (Some(&hi), Some(&lo)) = (buf.get(14), buf.get(15)) else {
        return Ok(Parsed::Incomplete);
    };
    let payload = usize::from(u16::from_be_bytes([hi, lo]));
    if payload > MAX_V2_PAYLOAD {
        return Err(ProxyError::V2TooLong(payload));
    }
    let needed = match fam >> 4 {
        0x1 => Some(("AF_INET", 12)),
        0x2 => Some(("AF_INET6", 36)),
        0x3 => Some(("AF_UNIX", 216)),
        _ => None,
    };
    if let Some((family, needed)) = needed {
        if proxy && payload < needed {
            return Err(ProxyError::V2TooShort {
                family,
                len: payload,
            });
        }
    }
    let len = 16 + payload;
    let Some(body) = buf.get(16..len) else {
        return Ok(Parsed::Incomplete);
    };
    let stream = fam & 0x0f == 0x1;
    let addrs = match (proxy && stream, fam >> 4) {
        (true, 0x1) => {
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    body[at],
                    body[at + 1],
                    body[at + 2],
                    body[at + 3],
                ))
            };
            Some((ip(0), ip(4), port(body, 8), port(body, 10)))
        }
        (true, 0x2) => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&body[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            Some((ip(0), ip(16), port(body, 32), port(body, 34)))
        }
        _ => None,
    };
    let (source, destination) = match addrs {
        Some((src, dst, sport, dport)) => (
            Some(SocketAddr::new(src, sport)),
            Some(SocketAddr::new(dst, dport)),
        ),
        None => (None, None),
    };
    Ok(Parsed::Header {
        len,
        source,
        destination,
    })
}

/// The big-endian port at `body[at..at + 2]`; the caller checked the length.
fn port(body: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([body[at], body[at + 1]])
}

#[cfg(test)]
mod tests;
