//! Helpers that the tests of several features use: Envoy with the minimal config in front of a
//! test origin, a PROXY v1 header, and `tools/rir-networks`.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ferry_tests::{Envoy, EnvoyConfig, Origin};

/// Envoy running the shipped minimal config (`envoy/ferry.yaml`) in front of `origin`.
pub fn ferry(origin: &Origin) -> Envoy {
    Envoy::start(&EnvoyConfig::shipped().origin(origin.addr()))
}

/// Like [`ferry`], with `plugin_config` (JSON) as the filter's configuration.
pub fn ferry_with(origin: &Origin, plugin_config: &str) -> Envoy {
    Envoy::start(
        &EnvoyConfig::shipped()
            .plugin_config(plugin_config)
            .origin(origin.addr()),
    )
}

/// A PROXY protocol v1 header for a client at `src` (the destination is Envoy's listener).
pub fn proxy_v1(src: IpAddr) -> Vec<u8> {
    match src {
        IpAddr::V4(ip) => format!("PROXY TCP4 {ip} 127.0.0.1 40000 443\r\n"),
        IpAddr::V6(ip) => format!("PROXY TCP6 {ip} ::1 40000 443\r\n"),
    }
    .into_bytes()
}

/// `tools/rir-networks`, found from this file's crate (not from the `ferry_tests` library,
/// which a build elsewhere that shares the target dir may have compiled with another root).
pub fn rir_networks_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/rir-networks")
}

/// `python3 tools/rir-networks ARGS`, with `stdin` as its input.
pub fn rir_networks(args: &[&str], stdin: &str) -> Output {
    let script = rir_networks_script();
    let mut child = Command::new("python3")
        .arg(&script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run python3 {}: {err}", script.display()));
    let mut input = child.stdin.take().expect("stdin is piped");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("rir-networks runs")
}
