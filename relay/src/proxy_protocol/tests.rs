//! PROXY headers written and parsed back, and every way a header can be cut, malformed or
//! refused.

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn header(len: usize, src: &str, dst: &str) -> Parsed {
    Parsed::Header {
        len,
        source: Some(addr(src)),
        destination: Some(addr(dst)),
    }
}

const NO_ADDRESSES: fn(usize) -> Parsed = |len| Parsed::Header {
    len,
    source: None,
    destination: None,
};

#[test]
fn v1_is_written_as_the_spec_shows() {
    let cases = [
        (
            "192.168.0.1:56324",
            "192.168.0.11:443",
            "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        ),
        (
            "[2001:db8::1]:1234",
            "[2001:db8::2]:443",
            "PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\n",
        ),
        // A dual-stack listener's view of an IPv4 client: written as IPv4.
        (
            "[::ffff:203.0.113.9]:40000",
            "[::ffff:10.0.0.1]:443",
            "PROXY TCP4 203.0.113.9 10.0.0.1 40000 443\r\n",
        ),
        // Mixed families: the IPv4 end is mapped into IPv6.
        (
            "203.0.113.9:40000",
            "[2001:db8::2]:443",
            "PROXY TCP6 ::ffff:203.0.113.9 2001:db8::2 40000 443\r\n",
        ),
    ];
    for (src, dst, want) in cases {
        let got = encode_v1(addr(src), addr(dst));
        assert_eq!(String::from_utf8(got).unwrap(), want);
    }
    let longest = encode_v1(
        addr("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
        addr("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
    );
    assert!(longest.len() <= MAX_V1_LEN, "{}", longest.len());
}

#[test]
fn v2_is_written_byte_for_byte() {
    let v4 = encode_v2(addr("192.168.0.1:56324"), addr("192.168.0.11:443"));
    let mut want = V2_SIGNATURE.to_vec();
    want.extend_from_slice(&[0x21, 0x11, 0, 12, 192, 168, 0, 1, 192, 168, 0, 11]);
    want.extend_from_slice(&[0xdc, 0x04, 0x01, 0xbb]);
    assert_eq!(v4, want);

    let v6 = encode_v2(addr("[2001:db8::1]:1"), addr("10.0.0.1:2"));
    assert_eq!(&v6[12..16], &[0x21, 0x21, 0, 36]);
    assert_eq!(v6.len(), 16 + 36);
    assert_eq!(
        &v6[32..48],
        &"::ffff:10.0.0.1".parse::<Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(&v6[48..], &[0, 1, 0, 2]);
}

#[test]
fn what_is_written_parses_back() {
    let pairs = [
        ("192.168.0.1:56324", "192.168.0.11:443"),
        ("0.0.0.0:0", "255.255.255.255:65535"),
        ("[2001:db8::1]:1234", "[2001:db8::2]:443"),
        ("[::]:0", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
    ];
    for (src, dst) in pairs {
        for encode in [encode_v1, encode_v2] {
            let bytes = encode(addr(src), addr(dst));
            assert_eq!(
                parse(&bytes),
                Ok(header(bytes.len(), src, dst)),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
}

/// A header's source and destination, if it carries them.
type Addrs = Option<(&'static str, &'static str)>;

/// Valid headers of every kind, for the split test: the bytes, and the addresses they carry.
fn valid_headers() -> Vec<(Vec<u8>, Addrs)> {
    let (src, dst) = ("203.0.113.9:40000", "10.0.0.1:443");
    let (src6, dst6) = ("[2001:db8::1]:40000", "[2001:db8::2]:443");
    let mut cases = vec![
        (encode_v1(addr(src), addr(dst)), Some((src, dst))),
        (encode_v2(addr(src), addr(dst)), Some((src, dst))),
        (encode_v1(addr(src6), addr(dst6)), Some((src6, dst6))),
        (encode_v2(addr(src6), addr(dst6)), Some((src6, dst6))),
        (b"PROXY UNKNOWN\r\n".to_vec(), None),
        (
            b"PROXY UNKNOWN ffff:f::1 ffff:f::2 65535 65535\r\n".to_vec(),
            None,
        ),
    ];
    // v1 at its longest: 107 bytes with the CRLF.
    let mut longest = b"PROXY UNKNOWN ".to_vec();
    longest.resize(MAX_V1_LEN - 2, b'x');
    longest.extend_from_slice(b"\r\n");
    cases.push((longest, None));
    // v2 LOCAL, AF_UNSPEC, as a balancer's own health check sends it.
    let mut local = V2_SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0, 0]);
    cases.push((local, None));
    // v2 PROXY over AF_INET with a TLV (PP2_TYPE_AUTHORITY), which is skipped.
    let mut tlv = encode_v2(addr(src), addr(dst));
    tlv[15] = 12 + 3 + 7;
    tlv.extend_from_slice(&[0x02, 0, 7]);
    tlv.extend_from_slice(b"example");
    cases.push((tlv, Some((src, dst))));
    // v2 at its longest payload.
    let mut big = encode_v2(addr(src), addr(dst));
    big[14..16].copy_from_slice(&(MAX_V2_PAYLOAD as u16).to_be_bytes());
    big.resize(MAX_HEADER_LEN, 0);
    cases.push((big, Some((src, dst))));
    // v2 AF_UNIX: no socket addresses.
    let mut unix = V2_SIGNATURE.to_vec();
    unix.extend_from_slice(&[0x21, 0x31, 0, 216]);
    unix.resize(16 + 216, b'/');
    cases.push((unix, None));
    // v2 AF_INET over DGRAM: not a TCP connection's addresses.
    let mut dgram = encode_v2(addr(src), addr(dst));
    dgram[13] = 0x12;
    cases.push((dgram, None));
    // v2 LOCAL that still carries an address block: ignored.
    let mut local_inet = encode_v2(addr(src), addr(dst));
    local_inet[12] = 0x20;
    cases.push((local_inet, None));
    cases
}

/// Feeding the first k bytes gives Incomplete for every k < len, the header at k = len,
/// and the same header (never a longer one) when the payload that follows is there too.
#[test]
fn split_at_every_offset_is_incomplete_until_the_whole_header() {
    // A ClientHello's first bytes, then a CRLF: must never be taken into the header.
    let payload = b"\x16\x03\x01\x02\x00\r\n\r\nPROXY more";
    for (bytes, addrs) in valid_headers() {
        let len = bytes.len();
        let want = match addrs {
            Some((src, dst)) => header(len, src, dst),
            None => NO_ADDRESSES(len),
        };
        let mut stream = bytes.clone();
        stream.extend_from_slice(payload);
        for k in 0..len {
            assert_eq!(
                parse(&stream[..k]),
                Ok(Parsed::Incomplete),
                "{k} of {len} bytes of {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
        for k in len..=stream.len() {
            assert_eq!(parse(&stream[..k]), Ok(want), "{k} bytes");
        }
    }
}

#[test]
fn refuses_what_cannot_be_a_header() {
    let v2 = |ver_cmd: u8, fam: u8, len: u16| {
        let mut b = V2_SIGNATURE.to_vec();
        b.extend_from_slice(&[ver_cmd, fam]);
        b.extend_from_slice(&len.to_be_bytes());
        b
    };
    let long_line = {
        let mut b = b"PROXY UNKNOWN ".to_vec();
        b.resize(MAX_V1_LEN, b'x');
        b
    };
    let crlf_too_late = {
        let mut b = b"PROXY UNKNOWN ".to_vec();
        b.resize(MAX_V1_LEN - 1, b'x');
        b.extend_from_slice(b"\r\n");
        b
    };
    use ProxyError::*;
    let cases: Vec<(&str, Vec<u8>, ProxyError)> = vec![
        // Decided at the first byte: a TLS ClientHello, an HTTP request, SSH.
        ("tls", vec![0x16], NotProxy),
        ("http", b"GET / HTTP/1.1\r\n".to_vec(), NotProxy),
        ("ssh", b"SSH-2.0-x\r\n".to_vec(), NotProxy),
        ("P then not R", b"PU".to_vec(), NotProxy),
        ("lowercase", b"proxy TCP4".to_vec(), NotProxy),
        ("no space", b"PROXY\r\n".to_vec(), NotProxy),
        ("CR then not LF", b"\r\r".to_vec(), NotProxy),
        (
            "v2 signature, last byte",
            b"\r\n\r\n\0\r\nQUIT\r".to_vec(),
            NotProxy,
        ),
        ("v1 too long", long_line, V1TooLong),
        ("v1 CRLF at 108", crlf_too_late, V1TooLong),
        (
            "v1 bad protocol, early",
            b"PROXY UDP4".to_vec(),
            V1Malformed("unknown protocol"),
        ),
        (
            "v1 bad protocol",
            b"PROXY TCP5 1 2 3 4\r\n".to_vec(),
            V1Malformed("unknown protocol"),
        ),
        (
            "v1 empty protocol",
            b"PROXY \r\n".to_vec(),
            V1Malformed("unknown protocol"),
        ),
        (
            "v1 TCP4 alone",
            b"PROXY TCP4\r\n".to_vec(),
            V1Malformed("expected source, destination and two ports"),
        ),
        (
            "v1 missing port",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n".to_vec(),
            V1Malformed("expected source, destination and two ports"),
        ),
        (
            "v1 extra field",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n".to_vec(),
            V1Malformed("expected source, destination and two ports"),
        ),
        (
            "v1 double space",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
            V1Malformed("expected source, destination and two ports"),
        ),
        (
            "v1 trailing space",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n".to_vec(),
            V1Malformed("expected source, destination and two ports"),
        ),
        (
            "v1 v6 in TCP4",
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n".to_vec(),
            V1Malformed("bad source address"),
        ),
        (
            "v1 v4 in TCP6",
            b"PROXY TCP6 ::1 5.6.7.8 1 2\r\n".to_vec(),
            V1Malformed("bad destination address"),
        ),
        (
            "v1 bad octet",
            b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n".to_vec(),
            V1Malformed("bad source address"),
        ),
        (
            "v1 port too big",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n".to_vec(),
            V1Malformed("bad source port"),
        ),
        (
            "v1 port sign",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n".to_vec(),
            V1Malformed("bad destination port"),
        ),
        (
            "v1 port empty",
            b"PROXY TCP6 ::1 ::2 1 \r\n".to_vec(),
            V1Malformed("bad destination port"),
        ),
        (
            "v1 bare LF",
            b"PROXY UNKNOWN\n".to_vec(),
            V1Malformed("unexpected byte"),
        ),
        (
            "v1 CR alone",
            b"PROXY UNKNOWN\rx".to_vec(),
            V1Malformed("CR not followed by LF"),
        ),
        (
            "v1 NUL",
            b"PROXY UNKNOWN \0".to_vec(),
            V1Malformed("unexpected byte"),
        ),
        (
            "v1 non-ASCII",
            "PROXY UNKNOWN é".as_bytes().to_vec(),
            V1Malformed("unexpected byte"),
        ),
        ("v2 version 1", v2(0x11, 0x11, 12), V2Version(1)),
        (
            "v2 version 3",
            v2(0x31, 0x11, 12)[..13].to_vec(),
            V2Version(3),
        ),
        (
            "v2 command 2",
            v2(0x22, 0x11, 12)[..13].to_vec(),
            V2Command(2),
        ),
        (
            "v2 family 4",
            v2(0x21, 0x41, 12)[..14].to_vec(),
            V2Family(0x41),
        ),
        (
            "v2 transport 3",
            v2(0x21, 0x13, 12)[..14].to_vec(),
            V2Family(0x13),
        ),
        ("v2 too long", v2(0x21, 0x11, 4097), V2TooLong(4097)),
        ("v2 far too long", v2(0x21, 0x11, 0xffff), V2TooLong(0xffff)),
        (
            "v2 short inet",
            v2(0x21, 0x11, 11),
            V2TooShort {
                family: "AF_INET",
                len: 11,
            },
        ),
        (
            "v2 short inet6",
            v2(0x21, 0x21, 12),
            V2TooShort {
                family: "AF_INET6",
                len: 12,
            },
        ),
        (
            "v2 short unix",
            v2(0x21, 0x31, 0),
            V2TooShort {
                family: "AF_UNIX",
                len: 0,
            },
        ),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(parse(&bytes), Err(want), "{name}");
    }
}

#[test]
fn errors_read_as_one_lowercase_line() {
    let cases = [
        (ProxyError::NotProxy, "not a PROXY protocol header"),
        (
            ProxyError::V1TooLong,
            "v1 header has no CRLF within 107 bytes",
        ),
        (
            ProxyError::V2Family(0x41),
            "v2 header has unknown address family or transport 0x41",
        ),
        (
            ProxyError::V2TooLong(5000),
            "v2 header length 5000 is over the limit of 4096",
        ),
        (
            ProxyError::V2TooShort {
                family: "AF_INET",
                len: 4,
            },
            "v2 header length 4 is too short for AF_INET addresses",
        ),
    ];
    for (error, want) in cases {
        assert_eq!(error.to_string(), want);
    }
}
