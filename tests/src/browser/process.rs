//! The Chromium process: its flags, its throw-away profile, its stderr, its end.
//!
//! Chromium prints `DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID` on stderr once
//! the debugging port (port 0: an ephemeral one) is open. A thread reads stderr to the end, hands
//! that URL over once, and keeps the last lines for error messages; it must keep reading, or
//! Chromium, which logs a lot, would block on a full pipe. Chromium runs in a process group of its
//! own, so dropping the handle can kill its helpers (zygote, renderers, GPU) along with it.

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::BrowserError;

/// Flags for a quiet, disposable, test-friendly browser: headless, no sandbox (tests run as
/// root, where Chromium refuses to start sandboxed), and no traffic of its own (updates, sync,
/// metrics, field trials, safe browsing, translate), so the network log is the page's alone.
const FIXED_FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--remote-debugging-port=0",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--metrics-recording-only",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--no-pings",
    "--password-store=basic",
    "--mute-audio",
    // Shared memory in /tmp: a container's small /dev/shm otherwise crashes renderers.
    "--disable-dev-shm-usage",
    // HttpsUpgrades would try https:// first for a plain http:// navigation.
    "--disable-features=Translate,MediaRouter,OptimizationHints,HttpsUpgrades,\
     HttpsFirstBalancedModeAutoEnable,AutofillServerCommunication,\
     CertificateTransparencyComponentUpdater",
];

/// How many stderr lines are kept for error messages.
const TAIL_LINES: usize = 40;

/// The live tail of Chromium's stderr, shared with the reader thread.
#[derive(Clone, Debug, Default)]
pub(super) struct StderrLog(Arc<Mutex<VecDeque<String>>>);

impl StderrLog {
    fn push(&self, line: String) {
        // Poisoning would need a panic while holding the lock, and push/clone cannot panic.
        let mut lines = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The lines so far, frozen for an error.
    pub(super) fn snapshot(&self) -> StderrTail {
        let lines = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        StderrTail(lines.iter().cloned().collect::<Vec<_>>().join("\n"))
    }
}

/// The last lines Chromium wrote to stderr when an error happened; displayed under a header,
/// or not at all when there were none.
#[derive(Clone, Debug, Default)]
pub struct StderrTail(String);

impl StderrTail {
    /// The lines, without the header.
    pub fn lines(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StderrTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "\n--- last lines of chromium's stderr ---\n{}", self.0)
        }
    }
}

/// A running Chromium with its DevTools address. Dropping it kills the process group, reaps the
/// browser and removes the profile directory.
pub(super) struct Chromium {
    child: Child,
    devtools_url: String,
    stderr: StderrLog,
    // Dropped after `drop` has killed and reaped the browser, so nothing writes into it any more.
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Start `bin` with the fixed flags, a fresh profile and `flags`; wait (at most `timeout`)
    /// for its DevTools address.
    pub(super) fn spawn(
        bin: &Path,
        flags: &[String],
        timeout: Duration,
    ) -> Result<Self, BrowserError> {
        let profile = tempfile::Builder::new()
            .prefix("ferry-chromium-")
            .tempdir()
            .map_err(BrowserError::Profile)?;
        let mut child = Command::new(bin)
            .args(FIXED_FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(flags)
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| BrowserError::Spawn {
                bin: bin.to_path_buf(),
                source,
            })?;
        // `Stdio::piped()` above guarantees the handle is there.
        let pipe = child.stderr.take().expect("stderr is piped");
        let stderr = StderrLog::default();
        let mut chromium = Self {
            child,
            devtools_url: String::new(),
            stderr: stderr.clone(),
            _profile: profile,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("chromium-stderr".to_owned())
            .spawn(move || read_stderr(pipe, &stderr, tx))
            .map_err(|err| {
                chromium.start_error(format!("cannot start the stderr reader: {err}"))
            })?;
        match rx.recv_timeout(timeout) {
            Ok(url) => chromium.devtools_url = url,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(chromium.start_error(format!(
                    "no `DevTools listening on` line on stderr within {timeout:?}"
                )));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = chromium.exit_status(Duration::from_secs(2));
                return Err(chromium.start_error(format!(
                    "it closed stderr ({status}) without listening for DevTools"
                )));
            }
        }
        Ok(chromium)
    }

    /// The browser target's WebSocket URL.
    pub(super) fn devtools_url(&self) -> &str {
        &self.devtools_url
    }

    /// The process id of the browser.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The live stderr tail.
    pub(super) fn stderr(&self) -> StderrLog {
        self.stderr.clone()
    }

    fn start_error(&self, reason: String) -> BrowserError {
        BrowserError::Start {
            reason,
            stderr: self.stderr.snapshot(),
        }
    }

    /// How the browser exited, waiting at most `wait` for it.
    fn exit_status(&mut self, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => return "still running".to_owned(),
                Err(err) => return format!("unknown status: {err}"),
            }
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // process_group(0) made the browser's pid its group id; its helpers inherit the group.
        // The browser is not reaped yet, so the id cannot have been reused.
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.wait();
    }
}

/// Read stderr to its end: send the DevTools URL once, keep the tail (without the D-Bus noise
/// of a machine that has no session bus).
fn read_stderr(pipe: ChildStderr, stderr: &StderrLog, tx: mpsc::Sender<String>) {
    let mut reader = BufReader::new(pipe);
    let mut tx = Some(tx);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        if let Some(url) = text.strip_prefix("DevTools listening on ") {
            if let Some(tx) = tx.take() {
                // The launcher may have given up waiting; then nobody needs the URL.
                let _ = tx.send(url.trim().to_owned());
            }
        }
        if !text.contains("dbus/") {
            stderr.push(text);
        }
    }
}
