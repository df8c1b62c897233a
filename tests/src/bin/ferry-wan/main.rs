//! `ferry-wan`: the parts of `./run bench-wan` (`bench/wan/run.sh`) that need Ferry's test
//! harness, one subcommand each; the script runs them in the emulated link's namespaces.
//!
//! ```text
//! ferry-wan files DIR --envoy-listen 10.88.0.2:443 --origin 127.0.0.1:8443
//! ferry-wan origin DIR --listen 127.0.0.1:8443
//! ferry-wan pageload https://www.example.cn/ --to 10.88.1.2:443 --pin-file DIR/mirror.pin
//! ```
//!
//! - `files` writes what every system shares ([`files`]): a CA (`ca.pem`), the mirror's
//!   certificate for nginx and Envoy, the origin's, a country database, and `envoy.yaml`:
//!   `envoy/us-east.yaml` with only its addresses and files replaced, as `./run demo` runs it.
//! - `origin` serves the demo site and a ~2 MB page over TLS until killed ([`origin`]): the one
//!   origin behind every system.
//! - `pageload` loads a page in a fresh headless Chromium and prints one line of figures
//!   ([`pageload`]): navigation start to the load event, and what was fetched.
//!
//! Bad arguments exit 64; a failure exits 1 with one line on stderr.

mod files;
mod origin;
mod pageload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Exit status for bad command-line flags (sysexits EX_USAGE).
const EX_USAGE: u8 = 64;

#[derive(Debug, Parser)]
#[command(version, about = "Helpers of ./run bench-wan (bench/wan/run.sh)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the CA, certificates, country database and Envoy config into DIR.
    Files {
        dir: PathBuf,
        /// Where Envoy's `https` listener listens (the us side of the link).
        #[arg(long, value_name = "ADDR")]
        envoy_listen: SocketAddr,
        /// Where Envoy's admin listens.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
        /// Where the origin listens (`ferry-wan origin --listen`).
        #[arg(long, value_name = "ADDR")]
        origin: SocketAddr,
    },
    /// Serve the demo site and the large page over TLS with DIR's origin certificate, until
    /// killed.
    Origin {
        dir: PathBuf,
        #[arg(long, value_name = "ADDR")]
        listen: SocketAddr,
    },
    /// Load URL in a fresh headless Chromium; print navigation start -> load event and the
    /// requests.
    Pageload {
        url: String,
        /// Connect here for example.cn and every *.example.cn (other names do not resolve).
        #[arg(long, value_name = "ADDR")]
        to: SocketAddr,
        /// A file holding the pin (base64 SHA-256 of the SPKI) of the certificate to accept.
        #[arg(long, value_name = "FILE")]
        pin_file: PathBuf,
        /// The deadline of each step (start, load, network quiet), in seconds.
        #[arg(long, value_name = "S", default_value_t = 90)]
        timeout: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(|err| {
        // --help and --version are "errors" too, printed to stdout, and succeed.
        let _ = err.print();
        std::process::exit(if err.use_stderr() { EX_USAGE.into() } else { 0 })
    });
    let result = match cli.command {
        Command::Files {
            dir,
            envoy_listen,
            admin,
            origin,
        } => files::write(&dir, envoy_listen, admin, origin),
        Command::Origin { dir, listen } => origin::serve(&dir, listen),
        Command::Pageload {
            url,
            to,
            pin_file,
            timeout,
        } => pageload::run(&url, to, &pin_file, Duration::from_secs(timeout.max(1))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ferry-wan: {message}");
            ExitCode::FAILURE
        }
    }
}
