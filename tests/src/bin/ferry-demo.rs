//! `ferry-demo`: Envoy + the Ferry filter in front of a built-in demo origin, until Ctrl-C.
//!
//! Started by `./run demo` (which builds the filter and sets `FERRY_WASM` and `ENVOY_BIN`). It
//! serves the demo site (see `ferry_tests::site`) from 127.0.0.1 on an ephemeral port, runs Envoy
//! with the shipped `envoy/ferry.yaml` pointed at it, checks once that the mirror page comes back
//! rewritten, and prints curl lines to see it. Bad flags exit 64 before anything is bound; a busy
//! port or an Envoy that fails exits 1 with one line that says why.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ferry_tests::envoy::StartError;
use ferry_tests::origin::Protocol;
use ferry_tests::site::{Site, PAGES};
use ferry_tests::{paths, Client, Envoy, EnvoyConfig, Origin};

/// Exit status for bad command-line flags (sysexits EX_USAGE).
const EX_USAGE: u8 = 64;

/// Envoy + the Ferry filter in front of a built-in demo site.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Where Envoy listens for visitors.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:10000")]
    listen: SocketAddr,
    /// Where Envoy's admin interface listens.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9901")]
    admin: SocketAddr,
    /// The Envoy config to run (its listener, admin and origin addresses are replaced).
    #[arg(long, value_name = "FILE", default_value_os_t = paths::shipped_config())]
    config: PathBuf,
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
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ferry-demo: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Start the origin and Envoy, say how to use them, wait for a signal, stop.
fn run(cli: &Cli) -> Result<(), String> {
    for (what, addr) in [("--listen", cli.listen), ("--admin", cli.admin)] {
        TcpListener::bind(addr).map_err(|err| format!("{what} {addr} is not free: {err}"))?;
    }
    paths::try_envoy_bin()?;
    let wasm = paths::try_wasm_path()?;
    let config = EnvoyConfig::load(&cli.config).map_err(|err| err.to_string())?;
    let plugin_config = config
        .plugin_config_json()
        .ok_or_else(|| format!("{}: no Ferry plugin configuration", cli.config.display()))?;
    let site = Site::from_plugin_config(&plugin_config)
        .map_err(|err| format!("{}: {err}", cli.config.display()))?;

    let origin = Origin::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Protocol::Auto)
        .map_err(|err| format!("cannot start the demo origin: {err}"))?;
    site.install(&origin);
    let config = config
        .listen(cli.listen)
        .admin(cli.admin)
        .origin(origin.addr());
    let mut envoy = Envoy::try_start(&config).map_err(|err| one_line(&err))?;

    print_usage(&site, &origin, &envoy, &wasm);
    self_check(&site, &envoy);
    println!("\nRunning; Ctrl-C stops it.");

    let reason = wait_for_signal(&mut envoy)?;
    println!("\n{reason}: stopping Envoy");
    match envoy.stop() {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("Envoy exited with {status} while stopping")),
        None => Err("could not reap Envoy".to_owned()),
    }
}

/// Print what runs where and the curl lines that show the rewriting.
fn print_usage(site: &Site, origin: &Origin, envoy: &Envoy, wasm: &std::path::Path) {
    let listener = reachable(envoy.listener_addr());
    let admin = reachable(envoy.admin_addr());
    let port = listener.port();
    let ip = listener.ip();
    let (mirror, origin_host) = (site.mirror_host(), site.origin_host());
    println!("Ferry demo");
    println!(
        "  demo origin     http://{}  (the site {origin_host} and {})",
        origin.addr(),
        site.cdn.origin
    );
    println!(
        "  Envoy + Ferry   http://{listener}  (filter {})",
        wasm.display()
    );
    println!("  mirror URL      http://{mirror}:{port}/");
    println!("\nThe mirror page ({origin_host} links come back as {mirror}):");
    println!("  curl -s --resolve {mirror}:{port}:{ip} http://{mirror}:{port}/");
    println!("The same page for the origin host passes through untouched:");
    println!("  curl -s --resolve {origin_host}:{port}:{ip} http://{origin_host}:{port}/");
    println!("Ferry's counters:");
    println!("  curl -s 'http://{admin}/stats?filter=ferry'");
    let pages: Vec<&str> = PAGES.iter().map(|(path, _)| *path).collect();
    println!("Other pages: {}", pages.join(" "));
}

/// Fetch the mirror home page once and say whether it came back rewritten.
fn self_check(site: &Site, envoy: &Envoy) {
    let client = Client::http1(envoy.listener_addr()).with_timeout(Duration::from_secs(10));
    let host = format!("{}:{}", site.mirror_host(), envoy.listener_addr().port());
    match client.send(&ferry_tests::Request::get(&host, "/")) {
        Ok(response) => {
            let text = response.text();
            let left = text.matches(&format!("www.{}/", site.main.origin)).count();
            let mirrored = text.matches(&format!("www.{}/", site.main.mirror)).count();
            println!(
                "\nSelf-check: GET http://{host}/ -> {}, {mirrored} links to www.{}, {left} left to www.{}",
                response.status, site.main.mirror, site.main.origin
            );
        }
        Err(err) => println!("\nSelf-check failed: {err}"),
    }
}

/// Wait for Ctrl-C or SIGTERM; fail if Envoy exits on its own first.
fn wait_for_signal(envoy: &mut Envoy) -> Result<&'static str, String> {
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
                _ = check.tick() => match envoy.exited() {
                    // Ctrl-C in a terminal reaches Envoy too (same process group): a clean exit.
                    Some(status) if status.success() => return Ok("Envoy stopped"),
                    Some(status) => {
                        let log = envoy.log();
                        let why = last_error_line(&log).unwrap_or("no error in its log");
                        return Err(format!("Envoy exited on its own ({status}): {why}"));
                    }
                    None => {}
                },
            }
        }
    })
}

/// The start error in one line: the reason and Envoy's last error line, if any.
fn one_line(err: &StartError) -> String {
    match last_error_line(&err.log) {
        Some(line) => format!("Envoy did not start: {}: {line}", err.reason),
        None => format!("Envoy did not start: {}", err.reason),
    }
}

/// The last critical or error line of an Envoy log.
fn last_error_line(log: &str) -> Option<&str> {
    log.lines()
        .rev()
        .find(|line| line.contains("[critical]") || line.contains("[error]"))
        .map(str::trim)
}

/// `addr` as a client can reach it: an unspecified IP becomes 127.0.0.1.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}
