//! Header rules: which headers change on a mirror request and its response, and to what.
//!
//! Requests go mirror -> origin: the authority (`:authority`, which is `Host` in HTTP/1), and the
//! host part of `Origin` and `Referer` (only the host: a query string that mentions the mirror
//! is the visitor's data); `Range` is dropped unless the body is one that is never rewritten
//! ([`keeps_range`]). Responses go origin -> mirror, for the configured list of headers:
//! URL-bearing headers (`Location`, `Link`, `Content-Security-Policy`, ...) through the same
//! engine as bodies, and `Set-Cookie` through its `Domain` attribute alone, so cookie names and
//! values are never touched; `Alt-Svc` is dropped ([`DROPPED_RESPONSE_HEADERS`]).

use crate::domain::{split_port, Direction, HostMap};
use crate::rewrite::Rewriter;

/// New value of a request header whose value is a URL or an origin (`Origin`, `Referer`):
/// its host is mapped mirror -> origin, and its port becomes `port`, the port of the request's
/// own authority as it goes to the origin (`:8443`, or empty when it has none). The port a
/// visitor reached the mirror on means nothing to the origin, and an origin that compares
/// `Origin` with `Host` (Django's CSRF check does) must see the two agree, as they did in the
/// browser. `None` when the value does not name a mirror host.
pub fn request_url(hosts: &HostMap, value: &[u8], port: &[u8]) -> Option<Vec<u8>> {
    let (start, end) = url_authority(value)?;
    let authority = &value[start..end];
    // Drop any userinfo; it stays in place in the output.
    let host_start = authority
        .iter()
        .rposition(|&b| b == b'@')
        .map_or(0, |i| i + 1);
    let (host, _) = split_port(&authority[host_start..]);
    let mapped = hosts.map(host, Direction::MirrorToOrigin)?;
    let mut out = Vec::with_capacity(value.len() + 8);
    out.extend_from_slice(&value[..start + host_start]);
    out.extend_from_slice(&mapped);
    out.extend_from_slice(port);
    out.extend_from_slice(&value[end..]);
    Some(out)
}

/// New `:path` of a mirror request: mirror names in the path and the query become origin names
/// (through `rewriter`, the mirror -> origin one), so the values pages carry in links
/// (`?next=https%3A%2F%2Fwww.example.cn%2F`) come back as the origin wrote them. `None` when
/// nothing changes.
pub fn request_path(rewriter: &Rewriter, path: &[u8]) -> Option<Vec<u8>> {
    rewriter.rewrite_value(path)
}

/// New `Referer` of a mirror request: when it is a mirror page, its host and port mapped like
/// [`request_url`] and its path and query like [`request_path`] (the page the visitor came
/// from, as the origin would have seen its URL). `None` when it is not a mirror page.
pub fn request_referer(
    hosts: &HostMap,
    rewriter: &Rewriter,
    value: &[u8],
    port: &[u8],
) -> Option<Vec<u8>> {
    // Only a mirror page's URL was rewritten by the mirror; another site's is the visitor's.
    let url = request_url(hosts, value, port)?;
    let rest_at = url_authority(&url).map_or(url.len(), |(_, end)| end);
    match rewriter.rewrite_value(&url[rest_at..]) {
        Some(rest) => {
            let mut out = url[..rest_at].to_vec();
            out.extend_from_slice(&rest);
            Some(out)
        }
        None => Some(url),
    }
}

/// The byte range of the authority in `scheme://authority/...`.
fn url_authority(value: &[u8]) -> Option<(usize, usize)> {
    let sep = value.windows(3).position(|w| w == b"://")?;
    let scheme = &value[..sep];
    let scheme_ok = !scheme.is_empty()
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return None;
    }
    let start = sep + 3;
    let len = value[start..]
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(value.len() - start);
    Some((start, start + len))
}

/// New `Set-Cookie` value: an origin host in the `Domain` attribute becomes the mirror host
/// (a leading dot is kept). `None` when there is nothing to change.
pub fn set_cookie(hosts: &HostMap, value: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut pos = 0;
    // The first `;`-separated part is name=value; attributes follow.
    for part in value.split(|&b| b == b';') {
        let part_start = pos;
        pos += part.len() + 1;
        if part_start == 0 {
            continue;
        }
        let Some(eq) = part.iter().position(|&b| b == b'=') else {
            continue;
        };
        if !part[..eq].trim_ascii().eq_ignore_ascii_case(b"domain") {
            continue;
        }
        let raw = &part[eq + 1..];
        let mut lead = raw.len() - raw.trim_ascii_start().len();
        let mut domain = raw.trim_ascii();
        // A quoted value (`Domain="example.com"`, which some servers send) keeps its quotes.
        if let [b'"', inner @ .., b'"'] = domain {
            domain = inner;
            lead += 1;
        }
        let dot = usize::from(domain.first() == Some(&b'.'));
        let Some(mapped) = hosts.map(&domain[dot..], Direction::OriginToMirror) else {
            continue;
        };
        let domain_start = part_start + eq + 1 + lead + dot;
        let buf = out.get_or_insert_with(|| Vec::with_capacity(value.len() + 8));
        buf.extend_from_slice(&value[copied..domain_start]);
        buf.extend_from_slice(&mapped);
        copied = domain_start + domain.len() - dot;
    }
    let mut buf = out?;
    buf.extend_from_slice(&value[copied..]);
    Some(buf)
}

/// Response headers removed from every mirror response: `Alt-Svc` announces the origin's other
/// endpoints (HTTP/3 over UDP, other hosts), which are not the mirror's; the mirror is reached
/// through the relays over TCP only, and a browser that believed it would try QUIC first.
pub const DROPPED_RESPONSE_HEADERS: &[&str] = &["alt-svc"];

/// File extensions of bodies that are never rewritten and that players and download managers
/// fetch in ranges: media, archives, fonts, images, documents.
const RANGED_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "m4a", "m4s", "mp3", "aac", "ogg", "oga", "ogv", "opus", "wav", "flac", "webm",
    "weba", "mkv", "mov", "avi", "ts", "zip", "gz", "tgz", "bz2", "xz", "zst", "7z", "rar", "tar",
    "iso", "dmg", "exe", "msi", "apk", "deb", "rpm", "pkg", "bin", "img", "pdf", "woff", "woff2",
    "ttf", "otf", "eot", "png", "jpg", "jpeg", "gif", "webp", "avif", "ico", "bmp", "tif", "tiff",
    "heic", "wasm",
];

/// Extensions of rewritten bodies that media elements fetch: playlists (HLS, DASH) and
/// captions. Their requests lose `Range` even from a `<video>`.
const REWRITTEN_MEDIA_EXTENSIONS: &[&str] = &["m3u8", "m3u", "mpd", "vtt"];

/// Whether a mirror request keeps its `Range` (and `If-Range`) header. A range of a rewritten
/// body cannot be served (its bytes and offsets are the origin's), so `Range` is dropped and
/// the visitor gets the whole rewritten body as a 200, which HTTP allows, unless the request is
/// evidently for a body that is never rewritten: a media element's request (`Sec-Fetch-Dest`
/// `audio` or `video`) that is not for a playlist or captions, or a path whose extension is
/// one of media, archives, fonts, images or documents. There a range keeps its meaning, and
/// seeking a video stays cheap. (Captions, `track`, are text and rewritten.)
pub fn keeps_range(path: &[u8], fetch_dest: Option<&[u8]>) -> bool {
    let ext = extension(path);
    let is = |list: &[&str]| {
        ext.is_some_and(|ext| list.iter().any(|e| e.as_bytes().eq_ignore_ascii_case(ext)))
    };
    if is(REWRITTEN_MEDIA_EXTENSIONS) {
        return false;
    }
    fetch_dest.is_some_and(|d| matches!(d, b"audio" | b"video")) || is(RANGED_EXTENSIONS)
}

/// The extension of the last segment of a request path (`mp4` in `/a/b.mp4?x`), if any.
fn extension(path: &[u8]) -> Option<&[u8]> {
    let path = &path[..path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len())];
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or_default();
    let dot = name.iter().rposition(|&b| b == b'.')?;
    Some(&name[dot + 1..])
}

/// New value of response header `name` (lowercase), or `None` when it stays.
pub fn response_value(
    name: &str,
    value: &[u8],
    hosts: &HostMap,
    rewriter: &Rewriter,
) -> Option<Vec<u8>> {
    if name == "set-cookie" {
        set_cookie(hosts, value)
    } else {
        rewriter.rewrite_value(value)
    }
}

/// The authority of a request, mapped mirror -> origin; `None` when it is not a mirror host.
pub fn request_authority(hosts: &HostMap, authority: &[u8]) -> Option<Vec<u8>> {
    // A bare IPv6 literal or an empty authority is never a mirror host.
    if split_port(authority).0.is_empty() {
        return None;
    }
    hosts.map_authority(authority, Direction::MirrorToOrigin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs() -> Vec<crate::domain::DomainPair> {
        crate::testing::example_pairs()
    }

    fn s(v: Option<Vec<u8>>) -> Option<String> {
        v.map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn request_urls_map_only_the_host() {
        let h = HostMap::new(&pairs());
        let cases: &[(&str, Option<&str>)] = &[
            ("https://example.cn", Some("https://example.com")),
            (
                "https://www.example.cn/a/b?q=example.cn#x",
                Some("https://www.example.com/a/b?q=example.cn#x"),
            ),
            (
                "http://WWW.EXAMPLE.CN:8080/",
                Some("http://www.example.com/"),
            ),
            ("https://cdn.example.cn/x", Some("https://examplecdn.net/x")),
            (
                "https://user:pw@example.cn/",
                Some("https://user:pw@example.com/"),
            ),
            ("https://example.cn?x", Some("https://example.com?x")),
            ("https://example.com/", None),
            ("https://other.org/?u=https://example.cn/", None),
            ("null", None),
            ("", None),
            ("://example.cn", None),
            ("/relative/example.cn", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                s(request_url(&h, input.as_bytes(), b"")).as_deref(),
                *want,
                "{input}"
            );
        }
    }

    #[test]
    fn request_urls_take_the_port_of_the_request_to_the_origin() {
        // The visitor's port is the mirror listener's; the origin compares Origin with its
        // Host, which carries the request's own port (none behind Envoy's port stripping).
        let h = HostMap::new(&pairs());
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                "https://app.example.cn:8443",
                "",
                Some("https://app.example.com"),
            ),
            (
                "https://app.example.cn:8443",
                ":9443",
                Some("https://app.example.com:9443"),
            ),
            (
                "https://app.example.cn",
                ":9443",
                Some("https://app.example.com:9443"),
            ),
            (
                "https://u@app.example.cn:8443/p?q",
                "",
                Some("https://u@app.example.com/p?q"),
            ),
            ("https://other.org:8443", "", None),
        ];
        for (input, port, want) in cases {
            assert_eq!(
                s(request_url(&h, input.as_bytes(), port.as_bytes())).as_deref(),
                *want,
                "{input} {port}"
            );
        }
    }

    #[test]
    fn request_paths_and_referers_come_back_as_the_origin_wrote_them() {
        let p = pairs();
        let h = HostMap::new(&p);
        let back = Rewriter::build(
            &p,
            Direction::MirrorToOrigin,
            crate::rewrite::EmailPolicy::Keep,
        )
        .unwrap();
        let paths: &[(&str, Option<&str>)] = &[
            (
                "/login?next=https%3A%2F%2Fwww.example.cn%2Fabout",
                Some("/login?next=https%3A%2F%2Fwww.example.com%2Fabout"),
            ),
            ("/go/www.example.cn/x", Some("/go/www.example.com/x")),
            ("/search?q=a%40example.cn", None),
            ("/plain?x=1", None),
            (
                "/img/cdn.example.cn/x.png",
                Some("/img/examplecdn.net/x.png"),
            ),
            ("/img/cdn.example.cn.png", None),
        ];
        for (path, want) in paths {
            assert_eq!(
                s(request_path(&back, path.as_bytes())).as_deref(),
                *want,
                "{path}"
            );
        }
        let referers: &[(&str, Option<&str>)] = &[
            (
                "https://www.example.cn/search?u=https%3A%2F%2Fexample.cn%2F",
                Some("https://www.example.com/search?u=https%3A%2F%2Fexample.com%2F"),
            ),
            ("https://www.example.cn/", Some("https://www.example.com/")),
            ("https://other.org/?u=https://example.cn/", None),
            (
                "https://cdn.example.cn:8443/a",
                Some("https://examplecdn.net/a"),
            ),
        ];
        for (value, want) in referers {
            assert_eq!(
                s(request_referer(&h, &back, value.as_bytes(), b"")).as_deref(),
                *want,
                "{value}"
            );
        }
    }

    #[test]
    fn set_cookie_domain_attribute_only() {
        let h = HostMap::new(&pairs());
        let cases: &[(&str, Option<&str>)] = &[
            (
                "sid=1; Domain=example.com; Path=/",
                Some("sid=1; Domain=example.cn; Path=/"),
            ),
            (
                "sid=1; domain=.example.com",
                Some("sid=1; domain=.example.cn"),
            ),
            (
                "sid=1; Domain = www.Example.com ; Secure",
                Some("sid=1; Domain = www.example.cn ; Secure"),
            ),
            (
                "sid=1; Domain=\"example.com\"; Path=/",
                Some("sid=1; Domain=\"example.cn\"; Path=/"),
            ),
            (
                "sid=1; Domain= \".example.com\" ",
                Some("sid=1; Domain= \".example.cn\" "),
            ),
            ("sid=1; Domain=\"", None),
            ("sid=1; Domain=\"\"", None),
            (
                "a=b;Domain=img.examplecdn.net",
                Some("a=b;Domain=img.cdn.example.cn"),
            ),
            // The cookie's own name and value are data and stay.
            ("example.com=example.com; Path=/", None),
            (
                "next=https://example.com/; Domain=example.com",
                Some("next=https://example.com/; Domain=example.cn"),
            ),
            ("sid=1; Domain=example.community", None),
            ("sid=1; Domain=other.org", None),
            ("sid=1; Path=/", None),
            ("sid=1", None),
            ("", None),
            ("sid=1; Domain=", None),
            ("sid=1; Domain=.", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                s(set_cookie(&h, input.as_bytes())).as_deref(),
                *want,
                "{input}"
            );
        }
    }

    #[test]
    fn response_values() {
        let p = pairs();
        let h = HostMap::new(&p);
        let rw = Rewriter::new(&p).unwrap();
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                "location",
                "https://www.example.com/login?next=https%3A%2F%2Fexample.com%2F",
                Some("https://www.example.cn/login?next=https%3A%2F%2Fexample.cn%2F"),
            ),
            ("location", "/relative", None),
            (
                "refresh",
                "0; url=https://example.com/",
                Some("0; url=https://example.cn/"),
            ),
            (
                "link",
                "<https://cdn.examplecdn.net/a.css>; rel=preload",
                Some("<https://cdn.cdn.example.cn/a.css>; rel=preload"),
            ),
            (
                "access-control-allow-origin",
                "https://example.com",
                Some("https://example.cn"),
            ),
            ("access-control-allow-origin", "*", None),
            (
                "content-security-policy",
                "default-src 'self' https://*.example.com; img-src examplecdn.net",
                Some("default-src 'self' https://*.example.cn; img-src cdn.example.cn"),
            ),
            (
                "set-cookie",
                "a=https://example.com; Domain=example.com",
                Some("a=https://example.com; Domain=example.cn"),
            ),
        ];
        for (name, input, want) in cases {
            let got = s(response_value(name, input.as_bytes(), &h, &rw));
            assert_eq!(got.as_deref(), *want, "{name}: {input}");
        }
    }

    #[test]
    fn ranges_kept_only_for_bodies_never_rewritten() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("/", None, false),
            ("/page.html", None, false),
            ("/app.js?v=1", None, false),
            ("/api/items", Some("empty"), false),
            ("/movie.mp4", None, true),
            ("/movie.MP4?token=x", None, true),
            ("/stream", Some("video"), true),
            ("/podcast", Some("audio"), true),
            ("/a.tar.gz", None, true),
            ("/fonts/x.woff2#f", None, true),
            ("/report.pdf", Some("document"), true),
            ("/dir.mp4/page", None, false),
            ("/file.", None, false),
            ("/x?name=a.mp4", None, false),
            // Playlists and captions are rewritten, whoever asks for them.
            ("/live/index.m3u8", Some("video"), false),
            ("/manifest.mpd", Some("video"), false),
            ("/subs/en.vtt", Some("track"), false),
            ("/subs/en", Some("track"), false),
        ];
        for (path, dest, want) in cases {
            assert_eq!(
                keeps_range(path.as_bytes(), dest.map(str::as_bytes)),
                *want,
                "{path} {dest:?}"
            );
        }
    }

    #[test]
    fn authority() {
        let h = HostMap::new(&pairs());
        assert_eq!(
            s(request_authority(&h, b"www.example.cn")).as_deref(),
            Some("www.example.com")
        );
        assert_eq!(
            s(request_authority(&h, b"example.cn:443")).as_deref(),
            Some("example.com:443")
        );
        assert_eq!(request_authority(&h, b"example.com"), None);
        assert_eq!(request_authority(&h, b""), None);
        assert_eq!(request_authority(&h, b":80"), None);
    }
}
