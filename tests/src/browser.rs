//! A real headless Chromium, driven over the Chrome DevTools Protocol (CDP), for tests that must
//! see what a browser does with a page: which URLs it fetches, which fail, what the console says.
//!
//! [`Browser::launch`] starts Chromium (`$CHROMIUM_BIN`, else `chromium` on `PATH`; a missing one
//! fails with a message that says how to install it) with a throw-away profile, no background
//! traffic, and two kinds of network pinning from [`BrowserOptions`]:
//!
//! - `--host-resolver-rules`: [`BrowserOptions::map_host`] sends a name (optionally `name:port`)
//!   to a local address, e.g. `example.cn:443` to `127.0.0.1:8443`, and every other name fails to
//!   resolve (`MAP * ~NOTFOUND`) unless [`BrowserOptions::allow_other_hosts`] is called. The URL,
//!   the `Host` header and TLS SNI keep the original name; only the connection goes elsewhere.
//! - `--ignore-certificate-errors-spki-list`: [`BrowserOptions::accept_spki`] accepts a chain that
//!   contains a certificate with that public key ([`spki_sha256_base64`] computes the pin), so a
//!   locally generated CA or leaf works while every other certificate is still verified.
//!
//! A [`Page`] is a tab attached with a flat CDP session, with the Network, Page, Runtime and Log
//! domains enabled, and auto-attach on so out-of-process iframes and workers report their
//! requests into the same page. It records every request ([`RequestRecord`]: each redirect hop,
//! status, failure, cache) and every console error ([`ConsoleMessage`]: `Log` errors, uncaught
//! exceptions, `console.error`), which is where a failed Subresource Integrity check shows up.
//! [`Page::goto`] and [`Page::click_and_wait`] return after the new document's load event *and*
//! a quiet network (no request outstanding for [`BrowserOptions::network_quiet`]), so late
//! subresources are recorded too.
//!
//! Everything has a deadline ([`BrowserOptions::timeout`], 30 s by default): a command without a
//! reply, a load that never comes, a network that never settles each end in a [`BrowserError`]
//! that says what was awaited. Events that arrive while a command waits for its reply are queued
//! for their page, never dropped. Dropping the [`Browser`] kills Chromium's whole process group
//! and removes the profile directory. A browser and its pages share one connection through an
//! `Rc`: they belong to the thread that launched them.
//!
//! What this Chromium (156, Debian) does, as `tests/harness/browser.rs` pins down: the page's favicon
//! request (`/favicon.ico`, type `Other`) is part of its record, and a 404 there is a console
//! error too; a failed integrity check leaves a 200 request and a `security` console error, not
//! a failed request; the body of a 404 stylesheet is aborted (`net::ERR_ABORTED`); an IP-literal
//! URL does not bypass `MAP * ~NOTFOUND`; a pin of the CA's key and a pin of the leaf's key both
//! work, and the page is a secure context.
//!
//! ```no_run
//! use ferry_tests::browser::{Browser, BrowserOptions};
//!
//! let browser = Browser::launch(
//!     BrowserOptions::new().map_host("example.cn:443", "127.0.0.1:8443".parse().unwrap()),
//! );
//! let page = browser.new_page().unwrap();
//! page.goto("https://example.cn/").unwrap();
//! for request in page.requests() {
//!     assert!(request.failed.is_none(), "{request:?}");
//! }
//! ```

mod cdp;
mod page;
mod process;
mod record;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;

pub use page::Page;
pub use process::StderrTail;
pub use record::{ConsoleMessage, Cookie, RequestRecord};

use cdp::Connection;
use process::Chromium;

/// How to install Chromium, for the messages of a missing binary.
const CHROMIUM_HOWTO: &str = "run `./run setup` or `apt-get install chromium`, or set CHROMIUM_BIN";

/// Why the browser or a page did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("{0}")]
    NotFound(String),
    #[error("browser option {option} {value:?} is not valid: {reason}")]
    InvalidOption {
        option: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("cannot create the browser profile directory: {0}")]
    Profile(#[source] std::io::Error),
    #[error("cannot start {bin}: {source}")]
    Spawn {
        bin: PathBuf,
        source: std::io::Error,
    },
    #[error("chromium did not start: {reason}{stderr}")]
    Start { reason: String, stderr: StderrTail },
    #[error("the DevTools connection failed: {reason}{stderr}")]
    Disconnected { reason: String, stderr: StderrTail },
    #[error("{method} failed: {message}")]
    Protocol { method: String, message: String },
    #[error("{method} got no reply within {after:?}")]
    CommandTimeout { method: String, after: Duration },
    #[error("{method} answered without {field}: {reply}")]
    Reply {
        method: String,
        field: &'static str,
        reply: String,
    },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("the network did not go quiet within {after:?}; still loading: {pending:?}")]
    NotIdle {
        after: Duration,
        pending: Vec<String>,
    },
    #[error("navigation to {url} failed: {error}")]
    Navigation { url: String, error: String },
    #[error("no element matches {0:?}")]
    NoElement(String),
    #[error("javascript exception: {0}")]
    Js(String),
    #[error("the page crashed or was closed")]
    Crashed,
}

/// How to launch the browser: name mappings, accepted public keys, extra flags, deadlines.
#[derive(Clone, Debug)]
pub struct BrowserOptions {
    binary: Option<PathBuf>,
    maps: Vec<(String, SocketAddr)>,
    other_hosts: bool,
    spki: Vec<String>,
    args: Vec<String>,
    timeout: Duration,
    quiet: Duration,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        Self {
            binary: None,
            maps: Vec::new(),
            other_hosts: false,
            spki: Vec::new(),
            args: Vec::new(),
            timeout: Duration::from_secs(30),
            quiet: Duration::from_millis(500),
        }
    }
}

impl BrowserOptions {
    /// No mappings (so every name fails to resolve), 30 s deadlines, 500 ms of network quiet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Use this Chromium binary instead of `$CHROMIUM_BIN` or `chromium` on `PATH`.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Connect to `to` for host `pattern`: a name (`example.cn`, any port), a name and a port
    /// (`example.cn:443`), or a `*` wildcard (`*.example.cn`). The first matching rule wins.
    pub fn map_host(mut self, pattern: &str, to: SocketAddr) -> Self {
        self.maps.push((pattern.to_owned(), to));
        self
    }

    /// Resolve names without a mapping through the system resolver (by default they fail with
    /// `net::ERR_NAME_NOT_RESOLVED`, so a stray request to a real domain cannot leave the machine).
    pub fn allow_other_hosts(mut self) -> Self {
        self.other_hosts = true;
        self
    }

    /// Accept a certificate chain that contains a key whose SPKI hashes to `pin` (base64 of its
    /// SHA-256, see [`spki_sha256_base64`]); other chains are verified as usual.
    pub fn accept_spki(mut self, pin: &str) -> Self {
        self.spki.push(pin.to_owned());
        self
    }

    /// Pass another command-line flag to Chromium.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// The deadline of every step: start-up, each command, each wait for a load or for quiet.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long the network must stay quiet after a load before a navigation counts as done.
    pub fn network_quiet(mut self, quiet: Duration) -> Self {
        self.quiet = quiet;
        self
    }

    /// The `--host-resolver-rules` value these options give Chromium.
    pub fn host_resolver_rules(&self) -> String {
        let mut rules: Vec<String> = self
            .maps
            .iter()
            .map(|(pattern, to)| format!("MAP {pattern} {to}"))
            .collect();
        if !self.other_hosts {
            rules.push("MAP * ~NOTFOUND".to_owned());
        }
        rules.join(", ")
    }

    /// Refuse values Chromium would misread: a rule list is split on commas and spaces, a pin is
    /// exactly 32 bytes in base64.
    fn validate(&self) -> Result<(), BrowserError> {
        for (pattern, _) in &self.maps {
            if pattern.is_empty() || pattern.contains([',', ' ', '\t', '\n']) {
                return Err(BrowserError::InvalidOption {
                    option: "map_host",
                    value: pattern.clone(),
                    reason: "a host pattern must be non-empty, without commas or spaces",
                });
            }
        }
        for pin in &self.spki {
            let base64 = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
            let bytes = pin.as_bytes();
            if bytes.len() != 44 || bytes[43] != b'=' || !bytes[..43].iter().all(|&b| base64(b)) {
                return Err(BrowserError::InvalidOption {
                    option: "accept_spki",
                    value: pin.clone(),
                    reason: "a pin is the base64 of a SHA-256 digest: 43 characters and `=`",
                });
            }
        }
        if self.timeout.is_zero() {
            return Err(BrowserError::InvalidOption {
                option: "timeout",
                value: format!("{:?}", self.timeout),
                reason: "the timeout must be greater than zero",
            });
        }
        Ok(())
    }

    /// The flags after the fixed ones: resolver rules, pins, the caller's extras.
    fn flags(&self) -> Vec<String> {
        let mut flags = vec![format!(
            "--host-resolver-rules={}",
            self.host_resolver_rules()
        )];
        if !self.spki.is_empty() {
            flags.push(format!(
                "--ignore-certificate-errors-spki-list={}",
                self.spki.join(",")
            ));
        }
        flags.extend(self.args.iter().cloned());
        flags
    }
}

/// What the browser handle and its pages share.
struct Shared {
    conn: std::cell::RefCell<Connection>,
    timeout: Duration,
    quiet: Duration,
}

/// A running headless Chromium. Dropping it kills the browser and removes its profile.
pub struct Browser {
    shared: Rc<Shared>,
    // Declared after `shared`, so the process dies after the socket closes and before the profile
    // directory (inside `process`) is removed.
    process: Chromium,
}

impl Browser {
    /// Start Chromium with `options` and connect to it.
    ///
    /// # Panics
    /// If the binary is missing (the message says how to install it) or Chromium does not start.
    pub fn launch(options: BrowserOptions) -> Self {
        Self::try_launch(options).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Like [`Browser::launch`], with the failure as an error.
    pub fn try_launch(options: BrowserOptions) -> Result<Self, BrowserError> {
        options.validate()?;
        let bin = match &options.binary {
            Some(bin) => checked_binary(bin.clone(), "BrowserOptions::binary")?,
            None => chromium_bin().map_err(BrowserError::NotFound)?,
        };
        let process = Chromium::spawn(&bin, &options.flags(), options.timeout)?;
        let conn = Connection::open(process.devtools_url(), options.timeout, process.stderr())?;
        Ok(Self {
            shared: Rc::new(Shared {
                conn: std::cell::RefCell::new(conn),
                timeout: options.timeout,
                quiet: options.quiet,
            }),
            process,
        })
    }

    /// Open a new tab on `about:blank`, attached and recording.
    pub fn new_page(&self) -> Result<Page, BrowserError> {
        Page::open(Rc::clone(&self.shared))
    }

    /// The browser's product string, e.g. `Chrome/156.0.8078.79`.
    pub fn version(&self) -> Result<String, BrowserError> {
        let method = "Browser.getVersion";
        let reply =
            self.shared
                .conn
                .borrow_mut()
                .call(None, method, json!({}), self.shared.timeout)?;
        reply["product"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| BrowserError::Reply {
                method: method.to_owned(),
                field: "product",
                reply: reply.to_string(),
            })
    }

    /// The browser's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The last lines Chromium wrote to stderr (D-Bus noise left out), for diagnostics.
    pub fn stderr_tail(&self) -> String {
        self.process.stderr().snapshot().lines().to_owned()
    }
}

/// The Chromium binary: `$CHROMIUM_BIN`, else `chromium` on `PATH`; the error says how to get it.
pub fn chromium_bin() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("CHROMIUM_BIN").filter(|bin| !bin.is_empty()) {
        return checked_binary(PathBuf::from(bin), "CHROMIUM_BIN=").map_err(|err| err.to_string());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            format!("Chromium not found (no CHROMIUM_BIN, no `chromium` on PATH); {CHROMIUM_HOWTO}")
        })
}

/// `bin` if it is an executable file, else an error naming where it came from.
fn checked_binary(bin: PathBuf, from: &str) -> Result<PathBuf, BrowserError> {
    if is_executable(&bin) {
        Ok(std::path::absolute(&bin).unwrap_or(bin))
    } else {
        Err(BrowserError::NotFound(format!(
            "{from}{} is not an executable file; {CHROMIUM_HOWTO}",
            bin.display()
        )))
    }
}

/// Whether `path` is a regular file with an execute bit set.
fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The pin of a public key for [`BrowserOptions::accept_spki`]: base64 of the SHA-256 of its DER
/// `SubjectPublicKeyInfo` (what `openssl pkey -pubin -outform der | openssl dgst -sha256 -binary
/// | base64` prints; rcgen gives the DER with `PublicKeyData::subject_public_key_info`).
pub fn spki_sha256_base64(spki_der: &[u8]) -> String {
    base64(ring::digest::digest(&ring::digest::SHA256, spki_der).as_ref())
}

/// Standard base64 (RFC 4648 section 4) with padding: the encoding of SPKI pins and of
/// Subresource Integrity digests.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let group = byte(0) << 16 | byte(1) << 8 | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(group >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in vectors {
            assert_eq!(base64(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn the_resolver_rules_map_then_refuse_the_rest() {
        let addr: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let options = BrowserOptions::new()
            .map_host("example.cn:443", addr)
            .map_host("*.example.cn", addr);
        assert_eq!(
            options.host_resolver_rules(),
            "MAP example.cn:443 127.0.0.1:8443, MAP *.example.cn 127.0.0.1:8443, MAP * ~NOTFOUND"
        );
        assert_eq!(
            options.allow_other_hosts().host_resolver_rules(),
            "MAP example.cn:443 127.0.0.1:8443, MAP *.example.cn 127.0.0.1:8443"
        );
    }

    #[test]
    fn options_chromium_would_misread_are_refused() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let bad = [
            BrowserOptions::new().map_host("a.test, MAP *", addr),
            BrowserOptions::new().map_host("", addr),
            BrowserOptions::new().accept_spki("not a pin"),
            BrowserOptions::new().accept_spki(&"A".repeat(44)),
            BrowserOptions::new().timeout(Duration::ZERO),
        ];
        for options in bad {
            assert!(
                matches!(options.validate(), Err(BrowserError::InvalidOption { .. })),
                "{options:?}"
            );
        }
        let pin = spki_sha256_base64(b"key");
        assert!(BrowserOptions::new().accept_spki(&pin).validate().is_ok());
    }
}
