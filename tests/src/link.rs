//! The emulated long link (`ferry-link`) as a test fixture: namespaces `<name>-cn` and
//! `<name>-us` joined by a link with the given round-trip time, loss and rate, and the means to
//! put servers and clients on either side.
//!
//! A [`Link`] runs the `ferry-link` binary (root only; without root the test fails with a
//! message saying so, it never skips) and waits for its `ready` line. Dropping the `Link` stops
//! it, which removes both namespaces; namespace names carry this process's id, so runs never
//! collide, and a run that was killed leaves names no later run reuses. Sockets are put in a
//! namespace by creating them on a thread that entered it ([`in_namespace`]): a socket stays in
//! the namespace it was made in, so an in-process server or client works there as on loopback.
//! Programs run there through `ip netns exec` ([`Link::command`]).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

use crate::paths;

/// The cn side's address on the link (the relay's side).
pub const CN_ADDR: Ipv4Addr = ferry_link::CN_ADDR;
/// The us side's address on the link (Envoy's side).
pub const US_ADDR: Ipv4Addr = ferry_link::US_ADDR;

/// The message for a missing `ferry-link`: how to build it.
const LINK_HOWTO: &str = "run `cargo build -p ferry-link` (./run test builds it)";

/// A running emulated link.
pub struct Link {
    child: Child,
    cn: String,
    us: String,
    rtt: Duration,
    stderr: mpsc::Receiver<String>,
}

impl Link {
    /// A link whose both directions delay by `rtt / 2`, with `extra` ferry-link arguments (such
    /// as `["--both", "loss=1%"]`).
    ///
    /// # Panics
    /// Without root, without the binary, or when the link does not come up within 10 s; each
    /// with what to do about it.
    pub fn start(rtt: Duration, extra: &[&str]) -> Link {
        static RUNS: AtomicU32 = AtomicU32::new(0);
        if !nix::unistd::geteuid().is_root() {
            panic!(
                "the emulated-link tests need root (network namespaces and TUN devices): run ./run test as root"
            );
        }
        let bin = link_bin();
        let name = format!(
            "fl{}x{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        );
        let mut child = Command::new(&bin)
            .args(["--name", &name, "--rtt", &format!("{}us", rtt.as_micros())])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let (lines, stderr) = mpsc::channel();
        if let Some(pipe) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = lines.send(line);
                }
            });
        }
        let (ready, first) = mpsc::channel();
        if let Some(mut pipe) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut line = String::new();
                let mut byte = [0u8; 1];
                while pipe.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
                    line.push(char::from(byte[0]));
                }
                let _ = ready.send(line);
            });
        }
        let link = Link {
            child,
            cn: format!("{name}-cn"),
            us: format!("{name}-us"),
            rtt,
            stderr,
        };
        match first.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.starts_with("ready ") => link,
            other => panic!(
                "ferry-link did not come up ({other:?}); its log:\n{}",
                link.log()
            ),
        }
    }

    /// The visitors' side (the relay runs here).
    pub fn cn(&self) -> &str {
        &self.cn
    }

    /// The origin's side (Envoy runs here).
    pub fn us(&self) -> &str {
        &self.us
    }

    /// The round-trip time the link adds.
    pub fn rtt(&self) -> Duration {
        self.rtt
    }

    /// `program` to be run in namespace `ns` (`ip netns exec ns program`).
    pub fn command(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns]).arg(program);
        command
    }

    /// What ferry-link wrote to stderr so far.
    pub fn log(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // It did not stop: kill it and remove the namespaces here.
        let _ = self.child.kill();
        let _ = self.child.wait();
        for ns in [&self.cn, &self.us] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a thread inside network namespace `ns`: sockets it makes live there.
///
/// # Panics
/// When the namespace cannot be entered.
pub fn in_namespace<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("cannot enter network namespace {ns}: {e}"));
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The `ferry-link` binary: `<root>/target/debug/ferry-link`.
fn link_bin() -> PathBuf {
    let bin = paths::workspace_root().join("target/debug/ferry-link");
    if bin.is_file() {
        bin
    } else {
        panic!(
            "ferry-link is not built: {} does not exist; {LINK_HOWTO}",
            bin.display()
        )
    }
}
