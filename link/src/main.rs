//! `ferry-link`: an emulated long link between two network namespaces, until interrupted.
//!
//! ```text
//! ferry-link --name wan --rtt 200ms --both loss=1% --up rate=100mbit
//! ```
//! prints `ready cn=wan-cn us=wan-us cn_addr=10.88.0.1 us_addr=10.88.0.2` once the link works,
//! forwards until SIGINT, SIGTERM or SIGHUP, then removes both namespaces and prints what it
//! carried. Exit codes: 0 after a signal, 64 for bad arguments, 1 when the link cannot be made.

use std::process::ExitCode;
use std::sync::atomic::Ordering;

use clap::Parser;
use ferry_link::emulator::Emulator;
use ferry_link::{Direction, CN_ADDR, US_ADDR};
use nix::sys::signal::{SigSet, Signal};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "An emulated long link between network namespaces <name>-cn and <name>-us"
)]
struct Args {
    /// Namespaces are <NAME>-cn and <NAME>-us.
    #[arg(long, default_value = "ferry")]
    name: String,
    /// Round-trip time: each direction gets half as its delay (before --both/--up/--down).
    #[arg(long, default_value = "0ms")]
    rtt: String,
    /// Both directions: delay=..,jitter=..,loss=..,rate=..,queue=.. (later keys win).
    #[arg(long, default_value = "")]
    both: String,
    /// cn -> us only (the visitors' requests and uploads).
    #[arg(long, default_value = "")]
    up: String,
    /// us -> cn only (the responses).
    #[arg(long, default_value = "")]
    down: String,
    /// Seeds the losses and the jitter.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn direction(rtt: &str, both: &str, one: &str) -> Result<Direction, String> {
    let rtt: Direction = format!("delay={rtt}")
        .parse()
        .map_err(|e| format!("--rtt: {e}"))?;
    let half = rtt.delay / 2;
    format!("delay={}us,{both},{one}", half.as_micros())
        .parse()
        .map_err(|e| format!("{e}"))
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let first = e.to_string();
            let line = first.lines().next().unwrap_or("bad arguments");
            eprintln!("ferry-link: {}", line.trim_start_matches("error: "));
            return ExitCode::from(64);
        }
    };
    let (up, down) = match (
        direction(&args.rtt, &args.both, &args.up),
        direction(&args.rtt, &args.both, &args.down),
    ) {
        (Ok(up), Ok(down)) => (up, down),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("ferry-link: {e}");
            return ExitCode::from(64);
        }
    };
    // Blocked before any thread starts, so only `wait` below receives them.
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(signal);
    }
    if let Err(e) = signals.thread_block() {
        eprintln!("ferry-link: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }
    let link = match Emulator::start(&args.name, up, down, args.seed) {
        Ok(link) => link,
        Err(e) => {
            eprintln!("ferry-link: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "ready cn={} us={} cn_addr={CN_ADDR} us_addr={US_ADDR}",
        link.cn(),
        link.us()
    );
    let signal = signals.wait();
    for (name, c) in ["cn->us", "us->cn"].iter().zip(&link.counters) {
        eprintln!(
            "ferry-link: {name}: {} packets ({} bytes) delivered, {} lost, {} dropped at the bottleneck",
            c.delivered.load(Ordering::Relaxed),
            c.bytes.load(Ordering::Relaxed),
            c.lost.load(Ordering::Relaxed),
            c.overflow.load(Ordering::Relaxed),
        );
    }
    drop(link);
    eprintln!(
        "ferry-link: {}: namespaces removed",
        signal.map_or("stopped".to_owned(), |s| s.to_string())
    );
    ExitCode::SUCCESS
}
