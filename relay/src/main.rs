//! `ferry-relay`: parse and validate the configuration (exit 64 on bad input, before any port
//! is bound), set up logging, then run the relay until SIGTERM or SIGINT; SIGHUP reloads.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ferry_relay::config::{Cli, Config, LogFormat, EX_USAGE};
use ferry_relay::server::Server;
use tokio::signal::unix::{signal, SignalKind};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EX_USAGE as u8)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let config = match Config::from_args(&cli) {
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
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                // The file is read again and validated whole; a bad one changes nothing.
                match Config::from_args(&cli) {
                    Ok(new) => {
                        let errors = server.reload(&new);
                        for e in &errors {
                            tracing::error!("reload: {e}");
                        }
                        grace = new.grace;
                        tracing::info!(failed = errors.len(), "configuration reloaded");
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
        Err(_) => tracing::warn!(
            open = server.connections().open(),
            "grace period over; closing the connections still open"
        ),
    }
    // Give the last log lines a moment to reach stderr.
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
