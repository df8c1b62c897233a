//! The geo redirect in address mode, end to end: the real Envoy with the built filter, the
//! shipped plain config plus the PROXY protocol listener filter (client addresses reach Envoy
//! only in PROXY headers; nothing but loopback is ever used on the network), and a plugin
//! configuration whose `redirect.networks` is a China-sized list: a synthetic delegation file
//! of about 8,700 IPv4 and 3,800 IPv6 CN blocks (see `synthetic`), converted by
//! `tools/rir-networks` and pasted as is.
//!
//! Pinned down: Envoy accepts the list and the filter reports the merged ranges the test
//! computes itself; an address inside a CN block gets the redirect (IPv4 and IPv6, PROXY v1 and
//! v2), everything else reaches the origin (other countries, unknown addresses, a client's own
//! `x-geo-country`, POST, the mirror host, exempt paths); `ferry.redirects` counts exactly the
//! redirects sent. `readiness_with_and_without_the_list` prints how long Envoy takes to become
//! ready with and without the list; it asserts no timing. For figures that other tests do not
//! disturb, run this module alone:
//! `cargo test -p ferry-tests --test e2e geo_redirect::networks -- --nocapture`.
//!
//! Part of `geo_redirect`; `tools` checks `tools/rir-networks` on small files, exactly.

mod synthetic;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use ferry_filter::config::Config;
use ferry_net::Cidr;
use ferry_tests::{Client, Envoy, EnvoyConfig, Origin, Reply, Request, Response};
use synthetic::{Delegations, Holder};

use crate::support::{proxy_v1, rir_networks};

/// The seed of the synthetic delegation file.
const SEED: u64 = 0xc41a_2025;

/// The synthetic file, its conversion, and what the test expects of it.
struct Fixture {
    delegations: Delegations,
    /// `tools/rir-networks -c CN` on the file: `{"CN": [...]}`.
    networks_json: String,
    /// How many CIDR blocks the JSON holds.
    cidrs: usize,
}

/// Made once per test process: generating and converting take a moment.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let delegations = Delegations::generate(SEED);
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("delegated-synthetic");
        std::fs::write(&file, delegations.to_rir_file()).expect("write the delegation file");
        let networks_json = rir_networks_cn(&file);
        let parsed: serde_json::Value =
            serde_json::from_str(&networks_json).expect("rir-networks prints JSON");
        let cidrs = parsed["CN"].as_array().map_or(0, Vec::len);
        Fixture {
            delegations,
            networks_json,
            cidrs,
        }
    })
}

/// `python3 tools/rir-networks -c CN FILE`'s output.
fn rir_networks_cn(file: &Path) -> String {
    let file = file.to_str().expect("temp paths are UTF-8");
    let output = rir_networks(&["-c", "CN", file], "");
    assert!(
        output.status.success(),
        "rir-networks failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 JSON")
}

/// The plugin configuration: example.com mirrored as example.cn, CN redirected, with the
/// country from the address when `networks` is given, else from the (default) header.
fn plugin_config(networks: Option<&str>) -> String {
    let networks = networks.map_or(String::new(), |json| format!(", \"networks\": {json}"));
    format!(
        r#"{{"domains": [{{"origin": "example.com", "mirror": "example.cn", "subdomains": true}}],
            "redirect": {{"countries": ["CN"]{networks}}}}}"#
    )
}

/// The shipped config with `plugin`, the origin, and Envoy's PROXY protocol listener filter on
/// the mirror listener (v1 and v2 headers are both detected).
fn envoy_config(plugin: String, origin: SocketAddr) -> EnvoyConfig {
    EnvoyConfig::shipped()
        .origin(origin)
        .plugin_config(plugin)
        .with_proxy_protocol()
}

/// The Envoy tests of this module run one at a time, so that, with the module run alone, the
/// readiness figures are not those of two Envoys starting at once on a small machine.
fn one_envoy_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A PROXY protocol v2 header (PROXY command, TCP) for a client at `src`.
fn proxy_v2(src: IpAddr) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.push(0x21); // version 2, PROXY
    let (family, mut addresses) = match src {
        IpAddr::V4(ip) => (0x11, [ip.octets(), Ipv4Addr::LOCALHOST.octets()].concat()),
        IpAddr::V6(ip) => (0x21, [ip.octets(), Ipv6Addr::LOCALHOST.octets()].concat()),
    };
    addresses.extend(40000u16.to_be_bytes());
    addresses.extend(443u16.to_be_bytes());
    header.push(family);
    let len = u16::try_from(addresses.len()).expect("at most 36 bytes");
    header.extend(len.to_be_bytes());
    header.extend(addresses);
    header
}

/// Send `request` on a new connection that starts with `proxy_header`.
fn send(envoy: &Envoy, proxy_header: Vec<u8>, request: &Request) -> Response {
    Client::http1(envoy.listener_addr())
        .with_timeout(Duration::from_secs(10))
        .with_preamble(proxy_header)
        .send(request)
        .unwrap_or_else(|err| panic!("{request:?}: {err}\n{}", envoy.log()))
}

/// Envoy and the origin, and what the test sent through them so far.
struct Run<'a> {
    envoy: &'a Envoy,
    origin: &'a Origin,
    redirects: u64,
    passed: u64,
}

impl Run<'_> {
    /// `request` gets a 301 to `location` whose body links to it.
    fn redirected(&mut self, proxy_header: Vec<u8>, request: Request, location: &str) {
        let response = self.redirect(proxy_header, &request, location);
        // The page links to the location, HTML-escaped.
        let link = format!("<a href=\"{}\">", location.replace('&', "&amp;"));
        let body = response.text();
        assert!(body.contains(&link), "{request:?}: the body {body:?}");
    }

    /// `request` (a HEAD) gets a 301 to `location` without a body.
    fn redirected_head(&mut self, proxy_header: Vec<u8>, request: Request, location: &str) {
        let response = self.redirect(proxy_header, &request, location);
        assert!(response.body.is_empty(), "{request:?}: a body for HEAD");
    }

    /// Send `request`; it must get the redirect to `location` and never reach the origin.
    fn redirect(&mut self, proxy_header: Vec<u8>, request: &Request, location: &str) -> Response {
        self.origin.clear_requests();
        let response = send(self.envoy, proxy_header, request);
        assert_eq!(response.status, 301, "{request:?}: {response:?}");
        assert_eq!(response.header("location"), Some(location), "{request:?}");
        assert_eq!(
            response.header("cache-control"),
            Some("private, max-age=3600"),
            "{request:?}"
        );
        let seen = self.origin.requests();
        assert!(seen.is_empty(), "{request:?}: the origin saw {seen:?}");
        self.redirects += 1;
        response
    }

    /// `request` from `src` reaches the origin for `origin_host` and the client gets 200 (the
    /// response); the origin sees `src` as the client (so the PROXY header did arrive).
    fn passes(
        &mut self,
        src: IpAddr,
        proxy_header: Vec<u8>,
        request: Request,
        origin_host: &str,
    ) -> Response {
        self.origin.clear_requests();
        let response = send(self.envoy, proxy_header, &request);
        let what = format!("{src}: {request:?}");
        assert_eq!(response.status, 200, "{what}: {response:?}");
        let seen = self
            .origin
            .last_request()
            .expect("the origin saw the request");
        assert_eq!(seen.host(), Some(origin_host), "{what}");
        let src = src.to_string();
        assert_eq!(seen.header("x-forwarded-for"), Some(src.as_str()), "{what}");
        self.passed += 1;
        response
    }
}

/// Addresses of `holder`'s blocks to probe: the first and the last address of a few blocks
/// spread over the list, and one in the middle.
fn v4_probes(delegations: &Delegations, holder: Holder) -> Vec<IpAddr> {
    let blocks: Vec<_> = delegations.v4_of(holder).collect();
    assert!(
        !blocks.is_empty(),
        "no {holder:?} IPv4 blocks were generated"
    );
    let mut probes = Vec::new();
    for index in [0, blocks.len() / 3, blocks.len() / 2, blocks.len() - 1] {
        let block = blocks[index];
        probes.push(block.first);
        probes.push(block.last());
        probes.push(block.first + block.count / 2);
    }
    probes.into_iter().map(|ip| IpAddr::V4(ip.into())).collect()
}

/// Like [`v4_probes`], for IPv6.
fn v6_probes(delegations: &Delegations, holder: Holder) -> Vec<IpAddr> {
    let blocks: Vec<_> = delegations.v6_of(holder).collect();
    assert!(
        !blocks.is_empty(),
        "no {holder:?} IPv6 blocks were generated"
    );
    let mut probes = Vec::new();
    for index in [0, blocks.len() / 2, blocks.len() - 1] {
        let block = blocks[index];
        probes.push(block.first);
        probes.push(block.last());
    }
    probes.into_iter().map(|ip| IpAddr::V6(ip.into())).collect()
}

#[test]
fn the_converted_list_is_china_sized_and_parses_as_the_filter_expects() {
    let fixture = fixture();
    let delegations = &fixture.delegations;
    let cn_v4 = delegations.v4_of(Holder::Cn).count();
    let cn_v6 = delegations.v6_of(Holder::Cn).count();
    assert_eq!((cn_v4, cn_v6), (synthetic::CN_IPV4, synthetic::CN_IPV6));
    let others = delegations.v4.len() + delegations.v6.len() - cn_v4 - cn_v6;
    assert!(others > 100, "only {others} JP/US delegations");

    // The CIDR blocks cover exactly the CN delegations' addresses.
    let parsed: serde_json::Value = serde_json::from_str(&fixture.networks_json).expect("JSON");
    let mut covered = (0u128, 0u128);
    for cidr in parsed["CN"].as_array().expect("a CN list") {
        let cidr: Cidr = cidr.as_str().expect("a string").parse().expect("a CIDR");
        match cidr.network() {
            IpAddr::V4(_) => covered.0 += 1 << (32 - cidr.prefix()),
            IpAddr::V6(_) => covered.1 += 1 << (128 - cidr.prefix()),
        }
    }
    assert_eq!(covered, delegations.cn_addresses());

    let config = Config::from_json(plugin_config(Some(&fixture.networks_json)).as_bytes())
        .unwrap_or_else(|err| panic!("{err}"));
    let networks = config
        .redirect
        .and_then(|redirect| redirect.networks)
        .expect("networks");
    assert_eq!(networks.ranges(), delegations.cn_ranges());
    for ip in v4_probes(delegations, Holder::Cn) {
        assert!(networks.contains(ip), "{ip}");
    }
    for ip in v4_probes(delegations, Holder::Jp)
        .into_iter()
        .chain(v4_probes(delegations, Holder::Us))
    {
        assert!(!networks.contains(ip), "{ip}");
    }
    println!(
        "synthetic list: {cn_v4} IPv4 + {cn_v6} IPv6 CN delegations, {} CIDR blocks, \
         {} + {} merged ranges, {} bytes of JSON",
        fixture.cidrs,
        delegations.cn_ranges().0,
        delegations.cn_ranges().1,
        fixture.networks_json.len()
    );
}

#[test]
fn envoy_redirects_by_the_address_in_the_proxy_header() {
    let fixture = fixture();
    let delegations = &fixture.delegations;
    let _one = one_envoy_at_a_time();
    let origin = Origin::start();
    origin.route(
        "*",
        Reply::html("<a href=\"https://www.example.com/next\">next</a>"),
    );
    let config = envoy_config(plugin_config(Some(&fixture.networks_json)), origin.addr());
    let envoy = Envoy::start(&config);
    let (v4, v6) = delegations.cn_ranges();
    let expected = format!(
        "geo redirect 301 for CN (country from the address ({v4} IPv4 + {v6} IPv6 ranges))"
    );
    envoy
        .wait_for_log(&expected, Duration::from_secs(5))
        .unwrap_or_else(|log| panic!("no log line {expected:?}:\n{log}"));
    let mut run = Run {
        envoy: &envoy,
        origin: &origin,
        redirects: 0,
        passed: 0,
    };
    let path = "/a/b.html?x=1&y=%2F&z";

    // Inside CN blocks: the edges and the middle of blocks all over the list, v1 and v2.
    let cn_v4 = v4_probes(delegations, Holder::Cn);
    let cn_v6 = v6_probes(delegations, Holder::Cn);
    for &ip in cn_v4.iter().chain(&cn_v6) {
        let location = format!("https://www.example.cn{path}");
        run.redirected(
            proxy_v1(ip),
            Request::get("www.example.com", path),
            &location,
        );
    }
    for ip in [cn_v4[1], cn_v6[0]] {
        let location = "https://www.example.cn/";
        run.redirected(proxy_v2(ip), Request::get("www.example.com", "/"), location);
    }
    let cn = cn_v4[0];
    run.redirected(
        proxy_v1(cn),
        Request::get("example.com", "/"),
        "https://example.cn/",
    );
    run.redirected_head(
        proxy_v1(cn),
        Request::head("www.example.com", "/page"),
        "https://www.example.cn/page",
    );
    // The client's own country header counts for nothing, either way.
    run.redirected(
        proxy_v1(cn),
        Request::get("www.example.com", "/").header("x-geo-country", "US"),
        "https://www.example.cn/",
    );
    // An IPv4-mapped IPv6 client address is its IPv4 address.
    let IpAddr::V4(cn4) = cn else {
        unreachable!("v4 probes are IPv4")
    };
    run.redirected(
        proxy_v1(IpAddr::V6(cn4.to_ipv6_mapped())),
        Request::get("www.example.com", "/"),
        "https://www.example.cn/",
    );

    // Outside: other countries, gaps right after CN blocks, addresses nobody holds.
    let mut outside = v4_probes(delegations, Holder::Jp);
    outside.extend(v4_probes(delegations, Holder::Us));
    outside.extend(v6_probes(delegations, Holder::Jp));
    outside.extend(
        delegations
            .v4_gaps
            .iter()
            .take(5)
            .map(|&ip| IpAddr::V4(ip.into())),
    );
    outside.extend(
        delegations
            .v6_gaps
            .iter()
            .take(5)
            .map(|&ip| IpAddr::V6(ip.into())),
    );
    outside.extend(
        ["203.0.113.7", "198.51.100.1", "2001:db8::7"].map(|ip| ip.parse::<IpAddr>().expect("ip")),
    );
    for &ip in &outside {
        run.passes(
            ip,
            proxy_v1(ip),
            Request::get("www.example.com", path),
            "www.example.com",
        );
    }
    let other = outside[0];
    run.passes(
        other,
        proxy_v2(other),
        Request::get("www.example.com", "/"),
        "www.example.com",
    );
    // Address mode ignores the header: a client claiming CN stays.
    for ip in [other, "203.0.113.7".parse().expect("ip")] {
        let claim = Request::get("www.example.com", "/").header("x-geo-country", "CN");
        run.passes(ip, proxy_v1(ip), claim, "www.example.com");
    }

    // From CN, what is never redirected: POST, the mirror host, exempt paths.
    let post = Request::new("POST", "www.example.com", "/form").body("a=1");
    run.passes(cn, proxy_v1(cn), post, "www.example.com");
    let mirror = Request::get("www.example.cn", "/page");
    let response = run.passes(cn, proxy_v1(cn), mirror, "www.example.com");
    let body = response.text();
    assert!(
        body.contains("https://www.example.cn/next"),
        "the mirror's page is rewritten: {body}"
    );
    let acme = Request::get("www.example.com", "/.well-known/acme-challenge/x");
    run.passes(cn, proxy_v1(cn), acme, "www.example.com");

    assert_eq!(
        envoy.counter("ferry.redirects"),
        Some(run.redirects),
        "ferry.redirects counts every redirect sent"
    );
    println!(
        "{} redirects, {} requests passed",
        run.redirects, run.passed
    );
}

/// How one Envoy start went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Start {
    /// From spawn to ready (admin LIVE, listener bound), polled every 50 ms.
    ready: Duration,
    /// From "initializing epoch 0" to "starting main dispatch loop" by Envoy's own log
    /// timestamps (ms): the bootstrap parsed, the filter's VMs started and configured.
    init_ms: Option<u64>,
    /// Envoy's resident memory once ready, KiB.
    rss_kib: Option<u64>,
}

/// Start Envoy with `config`, wait for `log_needle`, and say how the start went.
fn start_once(config: &EnvoyConfig, log_needle: &str) -> Start {
    let started = Instant::now();
    let envoy = Envoy::start(config);
    let ready = started.elapsed();
    envoy
        .wait_for_log(log_needle, Duration::from_secs(5))
        .unwrap_or_else(|log| panic!("no log line {log_needle:?}:\n{log}"));
    let log = envoy.log();
    let at = |needle: &str| log.lines().find(|l| l.contains(needle)).and_then(log_ms);
    let init_ms = match (
        at("initializing epoch 0"),
        at("starting main dispatch loop"),
    ) {
        (Some(from), Some(to)) => to.checked_sub(from),
        _ => None,
    };
    Start {
        ready,
        init_ms,
        rss_kib: envoy.rss_kib(),
    }
}

/// The time of day of an Envoy log line (`[2026-11-25 04:32:39.418][...`), in ms.
fn log_ms(line: &str) -> Option<u64> {
    let time = line.get(12..24)?;
    let (hms, ms) = time.split_once('.')?;
    let mut parts = hms.split(':').map(|part| part.parse::<u64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    Some(((h * 60 + m) * 60 + s) * 1000 + ms.parse::<u64>().ok()?)
}

/// One line of figures for a set of starts: medians, and every run.
fn summary(mut runs: Vec<Start>) -> String {
    runs.sort();
    let median = runs[runs.len() / 2];
    let ready: Vec<String> = runs
        .iter()
        .map(|run| format!("{:.0?}", run.ready))
        .collect();
    let mut init: Vec<u64> = runs.iter().filter_map(|run| run.init_ms).collect();
    init.sort_unstable();
    let init = init
        .get(init.len() / 2)
        .map_or("?".to_owned(), |ms| format!("{ms} ms"));
    let rss = median
        .rss_kib
        .map_or("?".to_owned(), |kib| format!("{} MiB", kib / 1024));
    format!(
        "ready in {:.0?} (median of {}), server init {init} by Envoy's log, RSS {rss}",
        median.ready,
        ready.join(", ")
    )
}

#[test]
fn readiness_with_and_without_the_list() {
    let fixture = fixture();
    let _one = one_envoy_at_a_time();
    let origin = Origin::start();
    let with = envoy_config(plugin_config(Some(&fixture.networks_json)), origin.addr());
    let without = envoy_config(plugin_config(None), origin.addr());
    let (mut runs_with, mut runs_without) = (Vec::new(), Vec::new());
    // Alternate, so that a slow moment of the machine hits both.
    for _ in 0..5 {
        runs_without.push(start_once(&without, "country from header x-geo-country"));
        runs_with.push(start_once(&with, "country from the address"));
    }
    println!("without networks: {}", summary(runs_without));
    println!("with {} CIDR blocks: {}", fixture.cidrs, summary(runs_with));
}
