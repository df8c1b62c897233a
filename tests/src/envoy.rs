//! A real Envoy process for a test: started from an [`EnvoyConfig`], polled until ready, stopped
//! on drop.
//!
//! [`Envoy::start`] writes the rendered config into a temp dir, runs Envoy on it with one worker
//! and no hot restart, and waits (20 s at most, polling every 50 ms) for the admin address file,
//! admin `/ready` answering `LIVE`, and every listener's bound port. If Envoy exits first or the
//! deadline passes, the error carries the tail of Envoy's log. Envoy's own log goes to a file
//! ([`Envoy::log`]), its stdout (where the node configs write access logs) to another
//! ([`Envoy::access_log`]). Dropping the handle sends SIGTERM, then SIGKILL if Envoy is still
//! there after 5 s, and reaps the process.

mod admin;
mod config;
pub mod node;
mod yaml;

use std::fmt::Write as _;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use admin::stat_value;
pub use config::{ConfigError, EnvoyConfig};

use admin::listeners_when_ready;

use crate::client::{Client, ClientError, Request, Response};
use crate::paths;

/// How long Envoy gets to become ready.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(50);
/// How many log lines an error shows.
const TAIL_LINES: usize = 40;

/// Envoy did not start; `log` is everything it wrote.
#[derive(Debug)]
pub struct StartError {
    /// What went wrong.
    pub reason: String,
    /// Envoy's whole log (and its stderr), possibly empty.
    pub log: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)?;
        if !self.log.trim().is_empty() {
            write!(
                f,
                "\n--- last lines of the Envoy log ---\n{}",
                tail(&self.log, TAIL_LINES)
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for StartError {}

impl StartError {
    fn new(reason: impl Into<String>, log: String) -> Self {
        Self {
            reason: reason.into(),
            log,
        }
    }
}

/// A running Envoy. Dropping it stops the process.
pub struct Envoy {
    process: Process,
    listeners: Vec<(String, SocketAddr)>,
    admin: SocketAddr,
    admin_client: Client,
}

impl Envoy {
    /// Start Envoy with `config` and wait until it serves.
    ///
    /// # Panics
    /// If Envoy or the `.wasm` is missing, or Envoy does not become ready, with the log's tail.
    pub fn start(config: &EnvoyConfig) -> Self {
        Self::try_start(config).unwrap_or_else(|err| panic!("Envoy did not start: {err}"))
    }

    /// Start Envoy with `config`; on failure, the reason and Envoy's log.
    pub fn try_start(config: &EnvoyConfig) -> Result<Self, StartError> {
        let rendered = config
            .try_render()
            .map_err(|err| StartError::new(err.to_string(), String::new()))?;
        let bin = paths::try_envoy_bin().map_err(|err| StartError::new(err, String::new()))?;
        let mut process = Process::spawn(&bin, &rendered, config.level())
            .map_err(|err| StartError::new(err, String::new()))?;
        let deadline = Instant::now() + START_DEADLINE;
        let mut admin: Option<(SocketAddr, Client)> = None;
        let mut last_problem = "the admin address file was not written".to_owned();
        loop {
            if let Some(status) = process.exited() {
                let reason = format!("Envoy exited ({status}) before it was ready");
                return Err(StartError::new(reason, process.log()));
            }
            if admin.is_none() {
                admin = process.admin_addr().map(|addr| {
                    let client = Client::http1(addr).with_timeout(Duration::from_secs(2));
                    (addr, client)
                });
            }
            if let Some((addr, client)) = &admin {
                match listeners_when_ready(client) {
                    Ok(listeners) => {
                        let admin = *addr;
                        let admin_client = Client::http1(admin);
                        return Ok(Self {
                            process,
                            listeners,
                            admin,
                            admin_client,
                        });
                    }
                    Err(problem) => last_problem = problem,
                }
            }
            if Instant::now() >= deadline {
                process.stop();
                let reason =
                    format!("Envoy was not ready within {START_DEADLINE:?}: {last_problem}");
                return Err(StartError::new(reason, process.log()));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Run `envoy --mode validate -c path` (from the workspace root, where the shipped config's
    /// relative `.wasm` path points); on failure, Envoy's output.
    ///
    /// # Panics
    /// If Envoy is missing.
    pub fn validate(path: &Path) -> Result<(), String> {
        let output = Command::new(paths::envoy_bin())
            .args(["--mode", "validate", "-l", "warning", "-c"])
            .arg(path)
            .current_dir(paths::workspace_root())
            .stdin(Stdio::null())
            .output()
            .map_err(|err| format!("cannot run Envoy: {err}"))?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "envoy --mode validate -c {} exited with {}:\n{}{}",
            path.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        ))
    }

    /// Validate `config` as rendered, without starting anything.
    pub fn validate_config(config: &EnvoyConfig) -> Result<(), String> {
        let rendered = config.try_render().map_err(|err| err.to_string())?;
        let dir = tempfile::tempdir().map_err(|err| format!("cannot make a temp dir: {err}"))?;
        let path = dir.path().join("envoy.yaml");
        std::fs::write(&path, rendered).map_err(|err| format!("cannot write {path:?}: {err}"))?;
        Self::validate(&path)
    }

    /// The Envoy process id (to read its memory use from `/proc`).
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// Envoy's resident set size in KiB, from `/proc/<pid>/status`.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Where the main listener accepts connections: the one named `mirror` (envoy/ferry.yaml),
    /// else the first one admin lists (for the node configs, `https`).
    pub fn listener_addr(&self) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(name, _)| name == "mirror")
            .or(self.listeners.first())
            .map(|(_, addr)| *addr)
            // Readiness requires at least one listener, so there is a first one.
            .expect("a ready Envoy has a listener")
    }

    /// Where the listener named `name` accepts connections.
    ///
    /// # Panics
    /// If Envoy has no such listener.
    pub fn listener(&self, name: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, addr)| *addr)
            .unwrap_or_else(|| panic!("Envoy has no listener named {name:?}: {:?}", self.listeners))
    }

    /// Every listener's name and address.
    pub fn listeners(&self) -> &[(String, SocketAddr)] {
        &self.listeners
    }

    /// Where admin answers.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The config file Envoy runs with.
    pub fn config_path(&self) -> PathBuf {
        self.process.dir.path().join("envoy.yaml")
    }

    /// Everything Envoy logged so far (then its stderr, if any).
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Wait up to `timeout` for a log line containing `needle` (Envoy flushes its log file
    /// every 50 ms); the line, or the whole log on timeout.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        wait_for_line(|| self.log(), needle, timeout)
    }

    /// What Envoy wrote to stdout so far: the access log of the node configs.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.process.dir.path().join("stdout")).unwrap_or_default()
    }

    /// Wait up to `timeout` for an access log line containing `needle` (flushed every 50 ms);
    /// the line, or the whole access log on timeout.
    pub fn wait_for_access_log(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        wait_for_line(|| self.access_log(), needle, timeout)
    }

    /// `GET path` on admin.
    pub fn admin_get(&self, path: &str) -> Result<Response, ClientError> {
        self.admin_client.send(&Request::get("admin", path))
    }

    /// The text of admin `/stats`.
    ///
    /// # Panics
    /// If admin does not answer 200.
    pub fn stats(&self) -> String {
        match self.admin_get("/stats") {
            Ok(response) if response.status == 200 => response.text(),
            Ok(response) => panic!("admin /stats answered {}", response.status),
            Err(err) => panic!("admin /stats failed: {err}"),
        }
    }

    /// The value of the counter or gauge whose name ends with `suffix`; see [`stat_value`].
    pub fn counter(&self, suffix: &str) -> Option<u64> {
        stat_value(&self.stats(), suffix)
    }

    /// How Envoy exited, if it has (it should not while the handle lives).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.process.exited()
    }

    /// Stop Envoy now (SIGTERM, then SIGKILL after 5 s) and return how it exited.
    pub fn stop(mut self) -> Option<ExitStatus> {
        self.process.stop()
    }

    /// Stop Envoy now, keeping this handle (its log stays readable); for a restart.
    pub fn stop_in_place(&mut self) -> Option<ExitStatus> {
        self.process.stop()
    }
}

/// Poll `text` until a line contains `needle`; the line, or the whole text on timeout.
fn wait_for_line(
    text: impl Fn() -> String,
    needle: &str,
    timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let all = text();
        if let Some(line) = all.lines().find(|line| line.contains(needle)) {
            return Ok(line.to_owned());
        }
        if Instant::now() >= deadline {
            return Err(all);
        }
        std::thread::sleep(POLL);
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for line in &lines[lines.len().saturating_sub(n)..] {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// The Envoy child process and its temp dir (config, admin address file, log).
struct Process {
    child: Child,
    dir: tempfile::TempDir,
    status: Option<ExitStatus>,
}

impl Process {
    /// Write `config` into a fresh temp dir and start Envoy on it.
    fn spawn(bin: &Path, config: &str, level: &str) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("ferry-envoy-")
            .tempdir()
            .map_err(|err| format!("cannot make a temp dir for Envoy: {err}"))?;
        let path = dir.path().join("envoy.yaml");
        std::fs::write(&path, config).map_err(|err| format!("cannot write {path:?}: {err}"))?;
        let stderr = File::create(dir.path().join("stderr"))
            .map_err(|err| format!("cannot create Envoy's stderr file: {err}"))?;
        let stdout = File::create(dir.path().join("stdout"))
            .map_err(|err| format!("cannot create Envoy's stdout file: {err}"))?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&path)
            .args(["--disable-hot-restart", "--concurrency", "1", "-l", level])
            .arg("--admin-address-path")
            .arg(dir.path().join("admin"))
            .arg("--log-path")
            .arg(dir.path().join("envoy.log"))
            // The log file is flushed on this interval; keep it short so tests can read it.
            .args(["--file-flush-interval-msec", "50"])
            .current_dir(paths::workspace_root())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|err| format!("cannot run {}: {err}", bin.display()))?;
        Ok(Self {
            child,
            dir,
            status: None,
        })
    }

    /// The exit status, if Envoy has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// The admin address, once Envoy has written it.
    fn admin_addr(&self) -> Option<SocketAddr> {
        let text = std::fs::read_to_string(self.dir.path().join("admin")).ok()?;
        text.trim().parse().ok()
    }

    /// The log file, then stderr if Envoy wrote anything there.
    fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name));
        let mut log = read("envoy.log").unwrap_or_default();
        if let Ok(stderr) = read("stderr") {
            if !stderr.trim().is_empty() {
                let _ = write!(log, "\n--- stderr ---\n{stderr}");
            }
        }
        log
    }

    /// SIGTERM, up to 5 s of grace, then SIGKILL; reap the process.
    fn stop(&mut self) -> Option<ExitStatus> {
        if self.exited().is_some() {
            return self.status;
        }
        let pid = i32::try_from(self.child.id())
            .ok()
            .map(nix::unistd::Pid::from_raw);
        if let Some(pid) = pid {
            // The child is ours and not yet reaped, so the pid still names it.
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let grace = Instant::now() + Duration::from_secs(5);
            while Instant::now() < grace {
                if self.exited().is_some() {
                    return self.status;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
        self.status
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}
