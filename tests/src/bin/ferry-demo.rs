//! `ferry-demo`: the whole chain on loopback, until Ctrl-C:
//! curl -> `ferry-relay` (127.0.0.1:8443, PROXY v2) -> Envoy with `envoy/us-east.yaml` (TLS,
//! geoip, Ferry) -> the demo origin over HTTPS.
//!
//! Started by `./run demo` (which builds the filter and `ferry-relay`). It writes a local CA
//! (`ca.pem`), the certificates and a GeoIP database built from `tests/data/geo-sample.txt` into
//! a state directory (`target/ferry-demo/`), starts the chain with [`Chain`], checks every curl
//! line it is about to print by making the same request itself, and prints them. In the sample
//! database 127.0.0.2 is in China and 127.0.0.3 in the United States, so `curl --interface
//! 127.0.0.2` is a visitor from China (the relay passes that address on in its PROXY header).
//!
//! `--origin https://www.example.com` puts a real origin behind the chain instead of the demo
//! site (verified against the system CA bundle, SNI from the URL); `--cert`/`--key` give a real
//! certificate for the mirror domain, `--mirror` its name. The curl lines then use the origin's
//! own host name (`www.example.com`) and its mirror (`www.example.cn`), the names a real origin
//! serves (Django's `ALLOWED_HOSTS`, nginx's `server_name`), and their checks accept any answer
//! below 400 (a real site's `/` may redirect) but no origin-domain name left in the mirror's body
//! or `Location`. Before anything starts, the origin's host must resolve and something must
//! accept connections there; `--origin-address IP[:PORT]` connects to that address instead, as
//! curl's `--resolve` does (the URL's host stays the SNI, the certificate's name and the
//! `Host`). `--path` is the
//! page the lines ask for (default `/`), for a site with nothing at `/`.
//!
//! Envoy's log and access log live in a temp directory that goes when the demo stops; they are
//! copied into the state directory then. Bad flags exit 64 before anything is started; a busy
//! port, an origin that cannot be reached or a part that fails exits 1 with one line that says
//! why.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ferry_filter::config::DomainPair;
use ferry_filter::rewrite::{Context, Rewriter};
use ferry_tests::browser::spki_sha256_base64;
use ferry_tests::chain::{Chain, ChainOptions, OriginKind};
use ferry_tests::envoy::{node, stat_value};
use ferry_tests::site::{Site, PAGES};
use ferry_tests::{paths, Client, EnvoyConfig, Request, Response};

/// Exit status for bad command-line flags (sysexits EX_USAGE).
const EX_USAGE: u8 = 64;
/// Visitors from China and from the United States in `tests/data/geo-sample.txt`.
const CHINA: &str = "127.0.0.2";
const UNITED_STATES: &str = "127.0.0.3";

/// The Ferry chain on loopback: ferry-relay -> Envoy (envoy/us-east.yaml) -> an HTTPS origin.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Where ferry-relay accepts visitors (HTTPS for the mirror and the origin domain).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Where Envoy's admin interface listens.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9901")]
    admin: SocketAddr,
    /// Where the CA, the certificates and the GeoIP database are written, and where Envoy's log
    /// and access log are saved when the demo stops (envoy.log, access.log).
    #[arg(long, value_name = "DIR", default_value_os_t = default_state_dir())]
    state_dir: PathBuf,
    /// The Envoy node config (its addresses and files are replaced).
    #[arg(long, value_name = "FILE", default_value_os_t = node::us_east())]
    config: PathBuf,
    /// A real origin instead of the demo site, e.g. `https://www.example.com`: its certificate is
    /// verified against --origin-ca for the URL's host, which is also the SNI. The host must
    /// resolve here, unless --origin-address says where to connect.
    #[arg(long, value_name = "URL")]
    origin: Option<String>,
    /// Connect to --origin at this address instead of what its host resolves to, like curl's
    /// --resolve: the URL's host stays the SNI, the name the certificate must carry and the Host
    /// the origin is asked for. PORT defaults to the URL's. E.g. 127.0.0.1 or 10.0.0.5:8443
    /// ([::1]:8443 for IPv6).
    #[arg(long, value_name = "IP[:PORT]", requires = "origin")]
    origin_address: Option<String>,
    /// The CA bundle that verifies --origin.
    #[arg(long, value_name = "FILE", default_value = node::SYSTEM_CA)]
    origin_ca: PathBuf,
    /// The origin domain whose names are rewritten [default: example.com, or the --origin host
    /// without a leading "www."].
    #[arg(long, value_name = "NAME")]
    origin_domain: Option<String>,
    /// The mirror domain.
    #[arg(long, value_name = "NAME", default_value = "example.cn")]
    mirror: String,
    /// A certificate chain (PEM) for the mirror domain instead of one from the demo CA.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// A MaxMind country database instead of the one built from tests/data/geo-sample.txt.
    #[arg(long, value_name = "FILE")]
    geo_db: Option<PathBuf>,
    /// The page the checks and the printed curl lines ask for, e.g. /admin/ for a site with
    /// nothing at / (a query may follow: /search?q=x).
    #[arg(long, value_name = "PATH", default_value = "/")]
    path: String,
}

fn default_state_dir() -> PathBuf {
    paths::workspace_root().join("target/ferry-demo")
}

/// The flags, checked: what to start.
struct Plan {
    options: ChainOptions,
    origin_domain: String,
    mirror: String,
    /// The host the origin-domain lines ask for: the --origin URL's host when it is the origin
    /// domain or one of its subdomains, else the origin domain.
    origin_host: String,
    /// The mirror of `origin_host`: the host the mirror line asks for.
    mirror_host: String,
    /// Whether the domain pair maps subdomains too.
    subdomains: bool,
    /// The real origin, if any (else the demo site).
    remote: Option<Remote>,
    own_cert: bool,
    /// The page every line asks for (--path).
    path: String,
}

/// A real origin (--origin) and where the demo connects to it.
struct Remote {
    /// The --origin URL as given.
    url: String,
    /// Its host: the SNI, and the name its certificate must carry.
    host: String,
    port: u16,
    /// --origin-address: where to connect instead of what `host` resolves to.
    address: Option<SocketAddr>,
    /// The CA bundle that verifies it (--origin-ca).
    ca: PathBuf,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are "errors" that print to stdout and succeed.
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(EX_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let plan = match plan(&cli) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("ferry-demo: {message}");
            return ExitCode::from(EX_USAGE);
        }
    };
    match run(&cli, plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ferry-demo: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Check the flags and turn them into chain options.
fn plan(cli: &Cli) -> Result<Plan, String> {
    let remote = cli.origin.as_deref().map(parse_origin).transpose()?;
    let address = match (&cli.origin_address, &remote) {
        (Some(text), Some((_, port))) => Some(parse_address(text, *port)?),
        _ => None,
    };
    let path = parse_path(&cli.path)?;
    let origin_domain = match (&cli.origin_domain, &remote) {
        (Some(domain), _) => domain.clone(),
        (None, Some((host, _))) => host.strip_prefix("www.").unwrap_or(host).to_owned(),
        (None, None) => "example.com".to_owned(),
    };
    if !is_host_name(&origin_domain) {
        return Err(format!(
            "--origin-domain {origin_domain:?} is not a domain name such as example.com"
        ));
    }
    if !is_domain(&cli.mirror) {
        return Err(format!(
            "--mirror {:?} is not a domain name such as example.cn",
            cli.mirror
        ));
    }
    if origin_domain == cli.mirror {
        return Err(format!(
            "--mirror {:?} is also the origin domain; they must differ",
            cli.mirror
        ));
    }
    for path in [&cli.cert, &cli.key, &cli.geo_db].into_iter().flatten() {
        if !path.is_file() {
            return Err(format!("{} is not a file", path.display()));
        }
    }
    if remote.is_some() && !cli.origin_ca.is_file() {
        return Err(format!(
            "--origin-ca {} is not a file",
            cli.origin_ca.display()
        ));
    }

    // The shipped plugin configuration with the demo's domains, and the redirect's Location
    // on the relay's port so that following it works.
    let shipped = EnvoyConfig::load(&cli.config)
        .map_err(|err| err.to_string())?
        .plugin_config_json()
        .ok_or_else(|| format!("{}: no Ferry plugin configuration", cli.config.display()))?;
    let mut json: serde_json::Value = serde_json::from_str(&shipped)
        .map_err(|err| format!("{}: the plugin configuration: {err}", cli.config.display()))?;
    let pair = json["domains"]
        .get_mut(0)
        .ok_or_else(|| format!("{}: no domain pair", cli.config.display()))?;
    pair["origin"] = origin_domain.clone().into();
    pair["mirror"] = cli.mirror.clone().into();
    let subdomains = pair["subdomains"].as_bool().unwrap_or(false);
    let (origin_host, mirror_host) = match &remote {
        Some((host, _)) => visitor_hosts(host, &origin_domain, &cli.mirror, subdomains)?,
        None => (origin_domain.clone(), cli.mirror.clone()),
    };
    if cli.listen.port() != 443 {
        if let Some(redirect) = json.get_mut("redirect") {
            redirect["port"] = cli.listen.port().into();
        }
    }
    // The China line shows the geo redirect, which an exempt path does not get.
    let exempt = json["redirect"]["exempt_paths"]
        .as_array()
        .and_then(|prefixes| {
            prefixes
                .iter()
                .filter_map(serde_json::Value::as_str)
                .find(|prefix| path.starts_with(prefix))
        });
    if let (Some(prefix), None) = (exempt, &cli.geo_db) {
        return Err(format!(
            "--path {path} is exempt from the geo redirect (\"exempt_paths\": {prefix:?} in {}), \
             so the line for visitors from China could not show it; give another path",
            cli.config.display()
        ));
    }

    let origin = match &remote {
        Some((host, port)) => OriginKind::Remote {
            host: host.clone(),
            port: *port,
            ca: cli.origin_ca.clone(),
            address,
        },
        None => OriginKind::Site,
    };
    let options = ChainOptions {
        config: cli.config.clone(),
        dir: Some(cli.state_dir.clone()),
        origin,
        origin_domain: origin_domain.clone(),
        mirror_domain: cli.mirror.clone(),
        mirror_cert: cli.cert.clone().zip(cli.key.clone()),
        relay_listen: cli.listen,
        admin: cli.admin,
        plugin_config: Some(json.to_string()),
        geo_db: cli.geo_db.clone(),
        ..ChainOptions::default()
    };
    let remote = cli
        .origin
        .clone()
        .zip(remote)
        .map(|(url, (host, port))| Remote {
            url,
            host,
            port,
            address,
            ca: cli.origin_ca.clone(),
        });
    Ok(Plan {
        options,
        origin_domain,
        mirror: cli.mirror.clone(),
        origin_host,
        mirror_host,
        subdomains,
        remote,
        own_cert: cli.cert.is_some(),
        path,
    })
}

/// The names visitors use for a real origin at `host`: `host` itself and its mirror when `host`
/// is the origin domain or a subdomain of it (`app.example.com` -> `app.example.cn`), so that the
/// origin is asked for a name it serves; otherwise (the origin reached by another name, such as
/// a balancer's) the origin domain and the mirror domain.
fn visitor_hosts(
    host: &str,
    origin_domain: &str,
    mirror: &str,
    subdomains: bool,
) -> Result<(String, String), String> {
    let (host, domain) = (
        host.to_ascii_lowercase(),
        origin_domain.to_ascii_lowercase(),
    );
    if host == domain {
        return Ok((host, mirror.to_ascii_lowercase()));
    }
    let Some(label) = host.strip_suffix(&format!(".{domain}")) else {
        return Ok((domain, mirror.to_ascii_lowercase()));
    };
    if !subdomains {
        return Err(format!(
            "--origin host {host} is a subdomain of --origin-domain {domain}, but the plugin \
             configuration does not map subdomains (\"subdomains\": false), so {host} has no \
             mirror; give --origin-domain {host}"
        ));
    }
    if label.contains('.') {
        return Err(format!(
            "--origin host {host} is more than one label below --origin-domain {domain}: the \
             demo's certificates are for {domain} and *.{domain} (and the mirror's likewise); \
             give --origin-domain {}",
            host.split_once('.')
                .map_or(host.as_str(), |(_, parent)| parent)
        ));
    }
    Ok((
        host.clone(),
        format!("{label}.{}", mirror.to_ascii_lowercase()),
    ))
}

/// `https://host[:port][/]` as (host, port).
fn parse_origin(url: &str) -> Result<(String, u16), String> {
    let invalid = |reason: &str| format!("--origin {url:?} is not valid: {reason}");
    let uri: http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(invalid("expected https://HOST[:PORT]"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid(
            "a path or query cannot be proxied to; give the site's root, and the page to check \
             with --path",
        ));
    }
    let host = uri.host().ok_or_else(|| invalid("no host"))?;
    if host.parse::<IpAddr>().is_ok() || !is_host_name(host) {
        return Err(invalid(
            "the host must be a DNS name (the SNI, and the name its certificate must carry)",
        ));
    }
    Ok((host.to_ascii_lowercase(), uri.port_u16().unwrap_or(443)))
}

/// `IP[:PORT]` (`[IPv6]:PORT`) as an address, with `port` when none is given.
fn parse_address(text: &str, port: u16) -> Result<SocketAddr, String> {
    let bare = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(text);
    let addr = match (text.parse::<SocketAddr>(), bare.parse::<IpAddr>()) {
        (Ok(addr), _) => addr,
        (_, Ok(ip)) => SocketAddr::new(ip, port),
        _ => {
            return Err(format!(
                "--origin-address {text:?} is not an IP address with an optional port, such as \
                 127.0.0.1 or 127.0.0.1:8443 ([::1]:8443 for IPv6); the name is the --origin \
                 URL's host, kept for SNI, the certificate and Host"
            ))
        }
    };
    if addr.port() == 0 {
        return Err(format!(
            "--origin-address {text:?}: port 0 cannot be connected to"
        ));
    }
    Ok(addr)
}

/// A request target that curl sends as given: `/`, then visible ASCII, no fragment.
fn parse_path(path: &str) -> Result<String, String> {
    let invalid = |reason: &str| format!("--path {path:?} is not valid: {reason}");
    if !path.starts_with('/') {
        return Err(invalid("it must start with /, e.g. /admin/"));
    }
    if !path.bytes().all(|byte| (0x21..0x7f).contains(&byte)) {
        return Err(invalid(
            "spaces, control and non-ASCII characters must be percent-encoded",
        ));
    }
    if path.contains('#') {
        return Err(invalid("a fragment (#...) is never sent to a server"));
    }
    if path.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(invalid("not a URL path and query"));
    }
    Ok(path.to_owned())
}

/// A DNS name of two or more labels.
fn is_domain(name: &str) -> bool {
    name.contains('.') && is_host_name(name)
}

/// Dot-separated labels of letters, digits and hyphens (no wildcard).
fn is_host_name(name: &str) -> bool {
    !name.starts_with("*.") && ferry_tests::pki::is_dns_name(name)
}

/// Start the chain, check and print the curl lines, wait for a signal, stop.
fn run(cli: &Cli, plan: Plan) -> Result<(), String> {
    for (what, addr) in [("--listen", cli.listen), ("--admin", cli.admin)] {
        TcpListener::bind(addr).map_err(|err| format!("{what} {addr} is not free: {err}"))?;
    }
    paths::try_envoy_bin()?;
    paths::try_wasm_path()?;
    paths::try_relay_bin()?;
    if let Some(remote) = &plan.remote {
        check_origin(remote)?;
    }
    let mut chain = Chain::try_start(plan.options.clone()).map_err(|err| one_line(&err))?;

    let lines = curl_lines(&plan, &chain);
    print_chain(&plan, &chain);
    let mut all_ok = true;
    for line in &lines {
        all_ok &= line.print(&plan, &chain);
    }
    println!(
        "\nFerry's counters:  curl -s 'http://{}/stats?filter=ferry'",
        chain.envoy().admin_addr()
    );
    if plan.remote.is_none() {
        let pages: Vec<&str> = PAGES.iter().map(|(path, _)| *path).collect();
        println!("Other pages: {}", pages.join(" "));
    }
    print_browser_note(&plan, &chain);
    if !all_ok {
        println!(
            "\nSome checks failed (marked above); Envoy's log: {} (saved as {} when the demo \
             stops)",
            envoy_dir(&chain).join("envoy.log").display(),
            shown(&chain.dir().join(ENVOY_LOG))
        );
    }
    println!("\nRunning; Ctrl-C stops it.");

    let outcome = wait_for_signal(&mut chain);
    if let Ok(reason) = &outcome {
        println!("\n{reason}: stopping");
    }
    save_logs(&chain);
    outcome.map(|_| ())
}

/// Where Envoy's log and access log are saved in the state directory when the demo stops.
const ENVOY_LOG: &str = "envoy.log";
const ACCESS_LOG: &str = "access.log";

/// Copy Envoy's log and access log from its temp directory (removed when Envoy is dropped) into
/// the state directory, and say where they are.
fn save_logs(chain: &Chain) {
    let envoy = chain.envoy();
    let mut saved = Vec::new();
    for (name, text) in [(ENVOY_LOG, envoy.log()), (ACCESS_LOG, envoy.access_log())] {
        let path = chain.dir().join(name);
        match std::fs::write(&path, text) {
            Ok(()) => saved.push(shown(&path)),
            Err(err) => eprintln!("ferry-demo: cannot save {}: {err}", path.display()),
        }
    }
    if !saved.is_empty() {
        println!("\nEnvoy's logs saved: {}", saved.join(" "));
    }
}

/// Before anything starts: where Envoy will connect to the real origin (--origin-address, else
/// what its host resolves to here) and that something accepts connections there, so that a
/// name that does not resolve or an origin that is not running is said as such instead of
/// showing up as Envoy's 503s.
fn check_origin(remote: &Remote) -> Result<(), String> {
    let host = &remote.host;
    let (mut addrs, what): (Vec<SocketAddr>, String) = match remote.address {
        Some(addr) => (vec![addr], "--origin-address".to_owned()),
        None => {
            let unresolved = |why: String| {
                format!(
                    "the --origin host {host} does not resolve here ({why}): pass \
                     --origin-address IP[:PORT] to connect to the origin there while keeping \
                     {host} for SNI, the certificate and Host (as curl's --resolve does), or \
                     fix DNS (or /etc/hosts)"
                )
            };
            let addrs: Vec<SocketAddr> = (host.as_str(), remote.port)
                .to_socket_addrs()
                .map_err(|err| unresolved(err.to_string()))?
                .collect();
            if addrs.is_empty() {
                return Err(unresolved("no address".to_owned()));
            }
            (addrs, format!("{host} resolves to it"))
        }
    };
    // IPv4 first, as Envoy's origin cluster asks (dns_lookup_family: V4_PREFERRED).
    addrs.sort_by_key(SocketAddr::is_ipv6);
    let mut failure = String::new();
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, Duration::from_secs(5)) {
            Ok(_) => return Ok(()),
            Err(err) => failure = format!("{addr} ({what}): {err}"),
        }
    }
    Err(format!(
        "cannot connect to the origin at {failure}; is it running, and on port {}?",
        addrs[0].port()
    ))
}

/// The demo site and its local origin's address, when that is the chain's origin.
fn demo_site(chain: &Chain) -> Option<(&Site, SocketAddr)> {
    chain
        .local_origin()
        .map(|origin| (chain.site(), origin.addr()))
}

/// One curl line, with the same request made by the demo first.
struct CurlLine {
    what: String,
    curl: String,
    host: String,
    path: String,
    from: Option<IpAddr>,
    /// The CA file curl is given (`None`: the system's, as for a real certificate).
    ca: Option<PathBuf>,
    expect: Expect,
}

/// What a line's response must be.
enum Expect {
    /// 200, with the mirror's names and none of the origin's outside the look-alikes.
    Rewritten,
    /// 200, untouched.
    Page,
    /// A redirect to this URL.
    Redirect(String),
    /// A real origin's answer through the mirror: below 400 (a page, or a redirect such as to a
    /// login page), and no name of the origin domain in its `Location` or (uncompressed) body.
    Mirrored {
        origin_domain: String,
        mirror: String,
        subdomains: bool,
        /// The host Ferry asks the origin for.
        asked: String,
    },
    /// A real origin's answer, untouched: below 400. `asked` is the host the origin gets.
    Served { asked: String },
}

impl CurlLine {
    /// Make the request, print the line and whether the response was what it says.
    fn print(&self, plan: &Plan, chain: &Chain) -> bool {
        let ca = self
            .ca
            .clone()
            .unwrap_or_else(|| PathBuf::from(node::SYSTEM_CA));
        let relay = chain.relay_addr();
        let mut client =
            Client::https(relay, &self.host, &ca).with_timeout(Duration::from_secs(20));
        if let Some(ip) = self.from {
            client = client.with_source(ip);
        }
        // What curl sends for the printed URL: the port in Host unless it is 443, `Accept: */*`.
        let authority = if relay.port() == 443 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, relay.port())
        };
        let request = Request::get(&authority, &self.path)
            .header("accept", "*/*")
            .header(
                "user-agent",
                concat!("ferry-demo/", env!("CARGO_PKG_VERSION")),
            );
        let outcome = client
            .send(&request)
            .map_err(|err| err.to_string())
            .and_then(|response| self.judge(plan, chain, &response));
        println!("\n{}", self.what);
        println!("  {}", self.curl);
        match outcome {
            Ok(seen) => {
                println!("  checked: {seen}");
                true
            }
            Err(why) => {
                println!("  CHECK FAILED: {why}");
                false
            }
        }
    }

    fn judge(&self, plan: &Plan, chain: &Chain, response: &Response) -> Result<String, String> {
        let status = response.status;
        match &self.expect {
            Expect::Redirect(location) => {
                let got = response.header("location").unwrap_or("none");
                if status == 301 && got == location {
                    Ok(format!("301, Location: {got}"))
                } else {
                    Err(format!(
                        "expected a 301 to {location}, got {status} to {got}"
                    ))
                }
            }
            Expect::Page if status == 200 => Ok(format!("200, {} bytes", response.body.len())),
            Expect::Rewritten if status == 200 => {
                let Some((site, _)) = demo_site(chain) else {
                    return Err("200, but there is no demo site to compare it with".to_owned());
                };
                let page = site
                    .kept()
                    .iter()
                    .fold(response.text(), |page, decoy| page.replace(decoy, ""));
                let left = page.matches(site.main.origin.as_str()).count();
                let mirrored = page.matches(site.main.mirror.as_str()).count();
                if left == 0 {
                    Ok(format!(
                        "200, {mirrored} mentions of {}, none of {}",
                        site.main.mirror, site.main.origin
                    ))
                } else {
                    Err(format!(
                        "200, but {left} mentions of {} are left",
                        site.main.origin
                    ))
                }
            }
            Expect::Page | Expect::Rewritten => Err(format!("expected 200, got {status}")),
            Expect::Served { asked } | Expect::Mirrored { asked, .. } if status >= 400 => {
                Err(refused(plan, chain, asked, response))
            }
            Expect::Served { .. } => Ok(answer(response)),
            Expect::Mirrored {
                origin_domain,
                mirror,
                subdomains,
                ..
            } => {
                let mut seen = answer(response);
                if let Some(location) = response.header("location") {
                    if let (_, Some(at)) = mentions(location.as_bytes(), origin_domain, *subdomains)
                    {
                        return Err(format!(
                            "{seen}, but the Location names {origin_domain} (at byte {at})"
                        ));
                    }
                }
                match response.header("content-encoding") {
                    Some(coding) if !coding.eq_ignore_ascii_case("identity") => {
                        seen.push_str(&format!("; body not checked (Content-Encoding: {coding})"));
                    }
                    _ if response.body.is_empty() => {}
                    _ => {
                        let body = &response.body[..];
                        if let (left, Some(at)) = mentions(body, origin_domain, *subdomains) {
                            return Err(format!(
                                "{seen}, but the body names {origin_domain} {left} times, first \
                                 in {:?}",
                                excerpt(body, at, origin_domain.len())
                            ));
                        }
                        let (mirrored, _) = mentions(body, mirror, *subdomains);
                        seen.push_str(&format!(
                            ", {mirrored} mentions of {mirror}, none of {origin_domain}"
                        ));
                    }
                }
                Ok(seen)
            }
        }
    }
}

/// A response in a few words: the status, the `Location` if any, the body's size.
fn answer(response: &Response) -> String {
    match response.header("location") {
        Some(location) => format!("{}, Location: {location}", response.status),
        None => format!("{}, {} bytes", response.status, response.body.len()),
    }
}

/// Why a 4xx/5xx answer fails a real origin's line: who gave it, what it said, and what that
/// usually means. `asked` is the host the origin was asked for.
fn refused(plan: &Plan, chain: &Chain, asked: &str, response: &Response) -> String {
    let status = response.status;
    let path = &plan.path;
    // Envoy's router marks what came from the upstream; anything else is Envoy's own answer.
    if response.header("x-envoy-upstream-service-time").is_some() {
        let got = format!(
            "expected a page or a redirect, got {status} from the origin for {path}, asked for \
             Host {asked}"
        );
        let hint = match status {
            400 => format!(
                "does it serve that name? Django answers 400 to a Host outside ALLOWED_HOSTS \
                 (add {asked} there)"
            ),
            404 => format!(
                "it has no page at {path}; give --path with one it serves, e.g. --path /admin/"
            ),
            421 => {
                format!("it does not serve {asked} on this connection (421 Misdirected Request)")
            }
            401 | 403 => format!("{path} needs a login or is forbidden; give another --path"),
            _ => return got,
        };
        format!("{got}: {hint}")
    } else {
        let text = response.text();
        let said = text.lines().next().unwrap_or("").trim();
        let said: String = said.chars().take(200).collect();
        let got = format!("expected a page or a redirect, got {status} from Envoy: {said:?}");
        match envoy_hint(plan, chain, &text) {
            Some(hint) => format!("{got}; {hint}"),
            None => got,
        }
    }
}

/// What an Envoy error page about a real origin means, from the page and the `origin` cluster's
/// counters (the page itself does not say why a connection failed).
fn envoy_hint(plan: &Plan, chain: &Chain, text: &str) -> Option<String> {
    let remote = plan.remote.as_ref()?;
    let host = &remote.host;
    let at = match remote.address {
        Some(addr) => format!("{addr} (--origin-address)"),
        None => format!("{host}:{}", remote.port),
    };
    let stats = chain
        .envoy()
        .admin_get("/stats?filter=cluster.origin.")
        .map(|response| response.text())
        .unwrap_or_default();
    let count = |name: &str| stat_value(&stats, &format!("cluster.origin.{name}")).unwrap_or(0);
    if count("ssl.fail_verify_san") > 0 {
        Some(format!(
            "the origin's certificate at {at} does not carry the name {host}, the --origin \
             URL's host (Envoy's cluster.origin.ssl.fail_verify_san)"
        ))
    } else if count("ssl.fail_verify_error") > 0 {
        Some(format!(
            "the origin's certificate at {at} did not verify against --origin-ca {} (Envoy's \
             cluster.origin.ssl.fail_verify_error): give the CA that issued it",
            shown(&remote.ca)
        ))
    } else if text.contains("no healthy upstream") && remote.address.is_none() {
        Some(format!(
            "Envoy has no address for {host}: its DNS lookup failed or found nothing; pass \
             --origin-address IP[:PORT], or fix DNS"
        ))
    } else if count("upstream_cx_connect_fail") > 0 {
        Some(format!(
            "Envoy could not connect to the origin at {at} (Envoy's \
             cluster.origin.upstream_cx_connect_fail)"
        ))
    } else if text.contains("upstream connect error") || text.contains("no healthy upstream") {
        Some(format!(
            "the connection to the origin at {at} failed; see Envoy's log"
        ))
    } else {
        None
    }
}

/// Where `name` occurs in `text` as a host name, as Ferry matches it (its own rewriter does the
/// matching: ASCII case-insensitive, on label boundaries, in JSON-escaped and percent-encoded
/// URLs too; `example.community`, `myexample.com` and `example.com.au` are not `example.com`):
/// how many times, and where the first is.
fn mentions(text: &[u8], name: &str, subdomains: bool) -> (usize, Option<usize>) {
    let pair = DomainPair {
        origin: name.to_ascii_lowercase(),
        // Any other name: only whether (and where) the text changes matters.
        mirror: format!("x{}", name.to_ascii_lowercase()),
        subdomains,
    };
    let Ok(rewriter) = Rewriter::new(&[pair]) else {
        return (0, None);
    };
    let mut out = Vec::new();
    let progress = rewriter.rewrite_chunk(Context::default(), text, true, &mut out);
    let first = (progress.matches > 0)
        .then(|| text.iter().zip(&out).position(|(a, b)| a != b))
        .flatten();
    (progress.matches, first)
}

/// Up to 40 bytes either side of `len` bytes at `at`, as text.
fn excerpt(text: &[u8], at: usize, len: usize) -> String {
    let start = at.saturating_sub(40);
    let end = (at + len + 40).min(text.len());
    String::from_utf8_lossy(&text[start..end]).into_owned()
}

/// The lines to print: the mirror, and the origin domain from China and from the US.
fn curl_lines(plan: &Plan, chain: &Chain) -> Vec<CurlLine> {
    let relay = chain.relay_addr();
    let (ip, port) = (relay.ip(), relay.port());
    // The origin domain's certificate is always the demo CA's; the mirror's may be a real one.
    let demo_ca = Some(chain.ca_path());
    let mirror_ca = if plan.own_cert { None } else { demo_ca.clone() };
    let cacert = |ca: &Option<PathBuf>| match ca {
        Some(path) => format!("--cacert {} ", shown(path)),
        None => String::new(),
    };
    // Every line asks for --path; the geo redirect keeps it.
    let path = &plan.path;
    let url = |host: &str| {
        if port == 443 {
            format!("https://{host}{path}")
        } else {
            format!("https://{host}:{port}{path}")
        }
    };
    let resolve = |host: &str| format!("--resolve {host}:{port}:{ip}");
    let (origin, mirror) = (&plan.origin_domain, &plan.mirror);
    // The names asked for: the domains themselves for the demo site, the origin's own host and
    // its mirror for a real origin (which may serve no other name).
    let (origin_host, mirror_host) = (&plan.origin_host, &plan.mirror_host);
    let follow = if plan.own_cert {
        String::new()
    } else {
        format!("\n(add -L and {} to follow it)", resolve(mirror_host))
    };
    let origin_what = if origin_host == origin {
        "The origin domain".to_owned()
    } else {
        format!("The origin's host {origin_host}")
    };
    let page_what = if plan.remote.is_some() {
        "its answer, untouched"
    } else {
        "the page, untouched"
    };
    let mut lines = vec![CurlLine {
        what: format!(
            "The mirror: the origin's pages with every {origin} name turned into {mirror}:"
        ),
        curl: format!(
            "curl {}{} {}",
            cacert(&mirror_ca),
            resolve(mirror_host),
            shell_word(&url(mirror_host))
        ),
        host: mirror_host.clone(),
        path: path.clone(),
        from: None,
        ca: mirror_ca,
        expect: if plan.remote.is_some() {
            Expect::Mirrored {
                origin_domain: origin.clone(),
                mirror: mirror.clone(),
                subdomains: plan.subdomains,
                asked: origin_host.clone(),
            }
        } else {
            Expect::Rewritten
        },
    }];
    // The demo site is in the sample database's terms; a real database knows nothing of 127/8.
    if plan.options.geo_db.is_none() {
        let china: IpAddr = CHINA.parse().expect("a constant IPv4 address");
        let us: IpAddr = UNITED_STATES.parse().expect("a constant IPv4 address");
        lines.push(CurlLine {
            what: format!(
                "{origin_what}, from China ({CHINA} is CN in tests/data/geo-sample.txt): \
                 a 301 to the mirror{follow}:"
            ),
            curl: format!(
                "curl -si {}{} --interface {CHINA} {}",
                cacert(&demo_ca),
                resolve(origin_host),
                shell_word(&url(origin_host))
            ),
            host: origin_host.clone(),
            path: path.clone(),
            from: Some(china),
            ca: demo_ca.clone(),
            expect: Expect::Redirect(url(mirror_host)),
        });
        lines.push(CurlLine {
            what: format!("{origin_what}, from the United States ({UNITED_STATES}): {page_what}:"),
            curl: format!(
                "curl {}{} --interface {UNITED_STATES} {}",
                cacert(&demo_ca),
                resolve(origin_host),
                shell_word(&url(origin_host))
            ),
            host: origin_host.clone(),
            path: path.clone(),
            from: Some(us),
            ca: demo_ca.clone(),
            expect: if plan.remote.is_some() {
                Expect::Served {
                    asked: origin_host.clone(),
                }
            } else {
                Expect::Page
            },
        });
    }
    lines
}

/// What runs where.
fn print_chain(plan: &Plan, chain: &Chain) {
    let envoy = chain.envoy();
    println!("Ferry demo: curl -> ferry-relay -> Envoy (us-east.yaml) -> origin");
    println!(
        "  ferry-relay     {}  (visitors; PROXY v2 to Envoy)",
        chain.relay_addr()
    );
    println!(
        "  Envoy           https {}  http {}  admin {}",
        envoy.listener("https"),
        envoy.listener("http"),
        envoy.admin_addr()
    );
    match (&plan.remote, demo_site(chain)) {
        (Some(remote), _) => {
            match remote.address {
                Some(addr) => println!(
                    "  origin          {}  at {addr}  (--origin-address; SNI and certificate \
                     name {})",
                    remote.url, remote.host
                ),
                None => println!("  origin          {}", remote.url),
            }
            println!(
                "  hosts           {} (mirror, asked of the origin as {}) and {}",
                plan.mirror_host, plan.origin_host, plan.origin_host
            );
        }
        (None, Some((_, addr))) => println!(
            "  demo origin     https://{addr}  (the demo site of {}, with a certificate for it)",
            plan.origin_domain
        ),
        (None, None) => {}
    }
    println!(
        "  state           {}  (ca.pem, certificates, geo.mmdb; a new CA each run)",
        shown(chain.dir())
    );
    let dir = envoy_dir(chain);
    println!(
        "  Envoy's log     {}  (a temp dir, removed at exit: saved as {} then)",
        dir.join("envoy.log").display(),
        shown(&chain.dir().join(ENVOY_LOG))
    );
    println!(
        "  access log      {}  (saved as {})",
        dir.join("stdout").display(),
        shown(&chain.dir().join(ACCESS_LOG))
    );
}

/// For a browser: pages link to the mirror without a port, that is on 443, so with the relay on
/// another port only the first page comes from it unless the browser maps 443 there.
fn print_browser_note(plan: &Plan, chain: &Chain) {
    let relay = chain.relay_addr();
    if relay.port() == 443 {
        return;
    }
    let mirror = &plan.mirror;
    let mut rules = format!("MAP {mirror}:443 {relay}");
    if plan.subdomains {
        rules.push_str(&format!(", MAP *.{mirror}:443 {relay}"));
    }
    let pin = if plan.own_cert {
        String::new()
    } else {
        format!(
            " --ignore-certificate-errors-spki-list={}",
            spki_sha256_base64(chain.mirror_spki())
        )
    };
    let page = format!("https://{}{}", plan.mirror_host, plan.path);
    println!(
        "\nIn a browser: absolute links in the mirror's pages (https://{}/...) go to port 443, \
         not {}; listen on 443, or map 443 to the relay (as root, Chromium also wants \
         --no-sandbox):",
        plan.mirror_host,
        relay.port()
    );
    println!(
        "  chromium --user-data-dir=\"$(mktemp -d)\" --host-resolver-rules='{rules}'{pin} {}",
        shell_word(&page)
    );
}

/// The directory of Envoy's config, log and access log (removed when Envoy stops).
fn envoy_dir(chain: &Chain) -> PathBuf {
    let config = chain.envoy().config_path();
    config.parent().map_or(config.clone(), Path::to_path_buf)
}

/// `word` as one word for a POSIX shell: as it is when the shell reads it so, else quoted.
fn shell_word(word: &str) -> String {
    let plain = |byte: u8| byte.is_ascii_alphanumeric() || b"/:._-~%+=,@".contains(&byte);
    if !word.is_empty() && word.bytes().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `path` relative to the current directory when it is below it.
fn shown(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// Wait for Ctrl-C or SIGTERM; fail if Envoy exits on its own first.
fn wait_for_signal(chain: &mut Chain) -> Result<&'static str, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the signal runtime: {err}"))?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())
            .map_err(|err| format!("cannot watch SIGTERM: {err}"))?;
        let mut check = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok("Ctrl-C"),
                _ = term.recv() => return Ok("SIGTERM"),
                _ = check.tick() => match chain.envoy_mut().exited() {
                    // Ctrl-C in a terminal reaches Envoy too (same process group): a clean exit.
                    Some(status) if status.success() => return Ok("Envoy stopped"),
                    Some(status) => {
                        let log = chain.envoy().log();
                        let why = last_error_line(&log).unwrap_or("no error in its log");
                        return Err(format!("Envoy exited on its own ({status}): {why}"));
                    }
                    None => {}
                },
            }
        }
    })
}

/// A start error in one line: the first line and the last error line of a log, if any.
fn one_line(err: &str) -> String {
    let first = err.lines().next().unwrap_or(err);
    match last_error_line(err) {
        Some(line) if line != first => format!("{first}: {line}"),
        _ => first.to_owned(),
    }
}

/// The last critical or error line of an Envoy or relay log.
fn last_error_line(log: &str) -> Option<&str> {
    log.lines()
        .rev()
        .find(|line| {
            line.contains("[critical]") || line.contains("[error]") || line.contains("\"ERROR\"")
        })
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_origin_is_asked_for_its_own_host_and_its_mirror() {
        let hosts = |host, subdomains| visitor_hosts(host, "example.com", "example.cn", subdomains);
        let pair = |a: &str, b: &str| Ok((a.to_owned(), b.to_owned()));
        assert_eq!(
            hosts("app.example.com", true),
            pair("app.example.com", "app.example.cn")
        );
        assert_eq!(
            hosts("example.com", false),
            pair("example.com", "example.cn")
        );
        // Reached by another name (a balancer): the domains themselves, as before.
        assert_eq!(
            hosts("lb.hosting.net", true),
            pair("example.com", "example.cn")
        );
        assert_eq!(
            hosts("myexample.com", true),
            pair("example.com", "example.cn")
        );
        assert!(hosts("app.example.com", false).is_err());
        assert!(hosts("a.b.example.com", true).is_err());
    }

    #[test]
    fn an_origin_address_is_an_ip_with_the_url_port_by_default() {
        let addr = |text| parse_address(text, 18443);
        assert_eq!(addr("127.0.0.1"), Ok("127.0.0.1:18443".parse().unwrap()));
        assert_eq!(addr("10.0.0.5:8443"), Ok("10.0.0.5:8443".parse().unwrap()));
        assert_eq!(addr("::1"), Ok("[::1]:18443".parse().unwrap()));
        assert_eq!(addr("[::1]"), Ok("[::1]:18443".parse().unwrap()));
        assert_eq!(addr("[::1]:8443"), Ok("[::1]:8443".parse().unwrap()));
        for bad in ["app.example.com", "127.0.0.1:0", "127.0.0.1:x", ""] {
            assert!(addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_path_is_sent_as_given() {
        assert_eq!(parse_path("/admin/"), Ok("/admin/".to_owned()));
        assert_eq!(parse_path("/s?q=a&b=%20"), Ok("/s?q=a&b=%20".to_owned()));
        for bad in ["admin/", "/a b", "/a#top", "/caf\u{e9}", ""] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_are_quoted_for_the_shell_when_needed() {
        assert_eq!(
            shell_word("https://a.example.cn:8443/admin/"),
            "https://a.example.cn:8443/admin/"
        );
        assert_eq!(
            shell_word("https://a.cn/s?q=1&x=2"),
            "'https://a.cn/s?q=1&x=2'"
        );
        assert_eq!(shell_word("/it's"), r"'/it'\''s'");
    }

    #[test]
    fn mentions_are_found_as_ferry_matches_them() {
        let found = |text: &str, subdomains| mentions(text.as_bytes(), "example.com", subdomains);
        assert_eq!(found("see example.com.", false), (1, Some(4)));
        assert_eq!(found("EXAMPLE.COM/x example.com", false), (2, Some(0)));
        assert_eq!(found("https%3A%2F%2Fexample.com", false), (1, Some(14)));
        assert_eq!(found("https:\\/\\/example.com\\/", false), (1, Some(10)));
        assert_eq!(found("www.example.com", true), (1, Some(4)));
        assert_eq!(found("www.example.com", false), (0, None));
        for other in [
            "example.community",
            "myexample.com",
            "example.com.au",
            "example.com_x",
        ] {
            assert_eq!(found(other, true), (0, None), "{other}");
        }
    }
}
