//! `ferry-relay`: parse and validate the configuration (exit 64 on bad input, with one line on
//! stderr, before any port is bound), set up logging, then run the relay until SIGTERM or
//! SIGINT; SIGHUP reloads.

use std::ffi::OsString;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ferry_relay::config::{flag_error, Cli, Config, ConfigError, HostAddrs, LogFormat, EX_USAGE};
use ferry_relay::server::Server;
use tokio::signal::unix::{signal, SignalKind};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        // --help and --version print to stdout and succeed.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ferry-relay: {}", flag_error(&e, &args));
            return ExitCode::from(EX_USAGE as u8);
        }
    };
    let config = match load(&cli, |warning| eprintln!("ferry-relay: {warning}")) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ferry-relay: {e}");
            return ExitCode::from(EX_USAGE as u8);
        }
    };
    if cli.check {
        println!("ferry-relay: configuration is valid");
        return ExitCode::SUCCESS;
    }
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ferry-relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ferry-relay: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration the flags describe, judged against this host's addresses as they are
/// now (interfaces come and go between reloads). If they cannot be listed, loopback alone
/// counts as this host's, and `warn` says so.
fn load(cli: &Cli, warn: impl Fn(&str)) -> Result<Config, ConfigError> {
    let host = host_addrs().unwrap_or_else(|e| {
        warn(&format!(
            "cannot list this host's addresses ({e}); only loopback is checked for a listener \
             that would forward to itself"
        ));
        HostAddrs::default()
    });
    Config::from_args(cli, &host)
}

/// The addresses of every interface of this host (getifaddrs(3)).
fn host_addrs() -> Result<HostAddrs, nix::Error> {
    let addrs = nix::ifaddrs::getifaddrs()?
        .filter_map(|interface| interface.address)
        .filter_map(|addr| {
            let v4 = addr.as_sockaddr_in().map(|a| IpAddr::V4(a.ip()));
            v4.or_else(|| addr.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
        });
    Ok(HostAddrs::new(addrs))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cli: Cli, config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let mut server = Server::start(&config).await?;
    // Every port is bound (each listener and the metrics endpoint logged its address).
    tracing::info!(listeners = server.listeners().len(), "ready");
    let mut grace = config.grace;
    let mut running = config;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                // The file is read again and validated whole; a bad one changes nothing.
                match load(&cli, |warning| tracing::warn!("{warning}")) {
                    Ok(new) => {
                        // What a reload cannot change while running: one line each.
                        for setting in restart_only(&running, &new) {
                            tracing::warn!(setting, "changed in the file; it takes effect after a restart, the running value stays");
                        }
                        let errors = server.reload(&new);
                        for e in &errors {
                            tracing::error!("reload: {e}");
                        }
                        grace = new.grace;
                        tracing::info!(failed = errors.len(), "configuration reloaded");
                        running = new;
                    }
                    Err(e) => tracing::error!("reload failed, keeping the running configuration: {e}"),
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    server.stop_accepting();
    let open = server.connections().open();
    tracing::info!(open, grace = ?grace, "stop accepting; draining open connections");
    let drained = tokio::time::timeout(grace, server.connections().drained()).await;
    match drained {
        Ok(()) => tracing::info!("drained; exiting"),
        Err(_) => {
            tracing::warn!(
                open = server.connections().open(),
                "grace period over; resetting the connections still open"
            );
            // Each is reset on both sides (never a FIN on a cut stream); their tasks end at
            // once, and this waits for them a moment so every reset is sent.
            server.connections().cut_all();
            let _ =
                tokio::time::timeout(Duration::from_secs(1), server.connections().drained()).await;
        }
    }
    // Give the last log lines a moment to reach stderr.
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}

/// The settings that differ between `running` and `new` and that only a restart applies: the
/// metrics endpoint's address and the log format.
fn restart_only(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if running.metrics != new.metrics {
        changed.push("metrics");
    }
    if running.log_format != new.log_format {
        changed.push("log_format");
    }
    changed
}
