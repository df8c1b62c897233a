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
//! certificate for the mirror domain, `--mirror` its name. Bad flags exit 64 before anything is
//! started; a busy port or a part that fails exits 1 with one line that says why.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ferry_tests::chain::{Chain, ChainOptions, OriginKind};
use ferry_tests::envoy::node;
use ferry_tests::site::PAGES;
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
    /// Where the CA, the certificates and the GeoIP database are written.
    #[arg(long, value_name = "DIR", default_value_os_t = default_state_dir())]
    state_dir: PathBuf,
    /// The Envoy node config (its addresses and files are replaced).
    #[arg(long, value_name = "FILE", default_value_os_t = node::us_east())]
    config: PathBuf,
    /// A real origin instead of the demo site, e.g. `https://www.example.com`: its certificate is
    /// verified against --origin-ca for the URL's host, which is also the SNI.
    #[arg(long, value_name = "URL")]
    origin: Option<String>,
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
}

fn default_state_dir() -> PathBuf {
    paths::workspace_root().join("target/ferry-demo")
}

/// The flags, checked: what to start.
struct Plan {
    options: ChainOptions,
    origin_domain: String,
    mirror: String,
    remote: Option<String>,
    own_cert: bool,
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
    if cli.listen.port() != 443 {
        if let Some(redirect) = json.get_mut("redirect") {
            redirect["port"] = cli.listen.port().into();
        }
    }

    let origin = match &remote {
        Some((host, port)) => OriginKind::Remote {
            host: host.clone(),
            port: *port,
            ca: cli.origin_ca.clone(),
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
    Ok(Plan {
        options,
        origin_domain,
        mirror: cli.mirror.clone(),
        remote: cli.origin.clone(),
        own_cert: cli.cert.is_some(),
    })
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
            "a path or query cannot be proxied to; give the site's root",
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
    let mut chain = Chain::try_start(plan.options.clone()).map_err(|err| one_line(&err))?;

    let lines = curl_lines(&plan, &chain);
    print_chain(&plan, &chain);
    let mut all_ok = true;
    for line in &lines {
        all_ok &= line.print(&chain);
    }
    println!(
        "\nFerry's counters:  curl -s 'http://{}/stats?filter=ferry'",
        chain.envoy().admin_addr()
    );
    if plan.remote.is_none() {
        let pages: Vec<&str> = PAGES.iter().map(|(path, _)| *path).collect();
        println!("Other pages: {}", pages.join(" "));
    }
    if !all_ok {
        println!(
            "\nSome checks failed (marked above); Envoy's log: {}",
            envoy_dir(&chain).join("envoy.log").display()
        );
    }
    println!("\nRunning; Ctrl-C stops it.");

    let reason = wait_for_signal(&mut chain)?;
    println!("\n{reason}: stopping");
    Ok(())
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
}

impl CurlLine {
    /// Make the request, print the line and whether the response was what it says.
    fn print(&self, chain: &Chain) -> bool {
        let ca = self
            .ca
            .clone()
            .unwrap_or_else(|| PathBuf::from(node::SYSTEM_CA));
        let mut client = Client::https(chain.relay_addr(), &self.host, &ca)
            .with_timeout(Duration::from_secs(20));
        if let Some(ip) = self.from {
            client = client.with_source(ip);
        }
        let outcome = client
            .send(&Request::get(&self.host, &self.path))
            .map_err(|err| err.to_string())
            .and_then(|response| self.judge(chain, &response));
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

    fn judge(&self, chain: &Chain, response: &Response) -> Result<String, String> {
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
                let site = chain.site();
                let page = site
                    .decoys()
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
        }
    }
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
    let url = |host: &str| {
        if port == 443 {
            format!("https://{host}/")
        } else {
            format!("https://{host}:{port}/")
        }
    };
    let resolve = |host: &str| format!("--resolve {host}:{port}:{ip}");
    let (origin, mirror) = (&plan.origin_domain, &plan.mirror);
    let follow = if plan.own_cert {
        String::new()
    } else {
        format!("\n(add -L and {} to follow it)", resolve(mirror))
    };
    let mut lines = vec![CurlLine {
        what: format!(
            "The mirror: the origin's pages with every {origin} name turned into {mirror}:"
        ),
        curl: format!(
            "curl {}{} {}",
            cacert(&mirror_ca),
            resolve(mirror),
            url(mirror)
        ),
        host: mirror.clone(),
        path: "/".to_owned(),
        from: None,
        ca: mirror_ca,
        expect: if plan.remote.is_some() {
            Expect::Page
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
                "The origin domain, from China ({CHINA} is CN in tests/data/geo-sample.txt): \
                 a 301 to the mirror{follow}:"
            ),
            curl: format!(
                "curl -si {}{} --interface {CHINA} {}",
                cacert(&demo_ca),
                resolve(origin),
                url(origin)
            ),
            host: origin.clone(),
            path: "/".to_owned(),
            from: Some(china),
            ca: demo_ca.clone(),
            expect: Expect::Redirect(url(mirror)),
        });
        lines.push(CurlLine {
            what: format!(
                "The origin domain, from the United States ({UNITED_STATES}): the page, untouched:"
            ),
            curl: format!(
                "curl {}{} --interface {UNITED_STATES} {}",
                cacert(&demo_ca),
                resolve(origin),
                url(origin)
            ),
            host: origin.clone(),
            path: "/".to_owned(),
            from: Some(us),
            ca: demo_ca.clone(),
            expect: Expect::Page,
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
    match &plan.remote {
        Some(url) => println!("  origin          {url}"),
        None => println!(
            "  demo origin     https://{}  (the demo site of {}, with a certificate for it)",
            chain.origin().addr(),
            plan.origin_domain
        ),
    }
    println!(
        "  state           {}  (ca.pem, certificates, geo.mmdb; a new CA each run)",
        shown(chain.dir())
    );
    println!(
        "  access log      {}",
        envoy_dir(chain).join("stdout").display()
    );
}

/// The directory of Envoy's config, log and access log.
fn envoy_dir(chain: &Chain) -> PathBuf {
    let config = chain.envoy().config_path();
    config.parent().map_or(config.clone(), Path::to_path_buf)
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
