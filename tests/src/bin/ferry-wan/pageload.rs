//! `ferry-wan pageload URL --to ADDR --pin-file FILE`: a cold load of a page, as a new visitor's
//! browser makes it.
//!
//! Each run launches its own headless Chromium ([`Browser`]) with a fresh profile, so nothing is
//! cached and no connection or TLS session is reused; `example.cn` and every `*.example.cn` go
//! to `ADDR` (the system's entry on the cn side), every other name fails to resolve, and the
//! mirror certificate's key is trusted by its pin. Chromium's own start-up is not measured: the
//! figures come from the page's Navigation Timing, which starts at the navigation.
//!
//! Prints one line, `key=value` separated by spaces:
//! `load_ms` navigation start to the end of the load event (`loadEventEnd`), `dcl_ms` to the
//! end of `DOMContentLoaded`, `ttfb_ms` to the document's first byte (`responseStart`),
//! `protocol` the document's (`h2`, `http/1.1`), `subresources` every request the browser made
//! for the page until the network was quiet, as DevTools recorded them (stylesheets, scripts,
//! images, those a stylesheet asks for, the page's own fetches, the favicon: all but the
//! document; Resource Timing, tried first, left out the stylesheet's import and image), `failed`
//! those that failed or got an HTTP error, `console_errors` (a failed integrity check shows
//! there), `protocols` those of every response. On stderr: each request (type, URL, status,
//! protocol, why it failed) and each console error.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ferry_tests::browser::{Browser, BrowserOptions};

/// What the page reports of its own load: its Navigation Timing entry.
const TIMING: &str = r#"(() => {
  const n = performance.getEntriesByType("navigation")[0];
  if (!n || !n.loadEventEnd) return null;
  return {load: n.loadEventEnd, dcl: n.domContentLoadedEventEnd, ttfb: n.responseStart,
          protocol: n.nextHopProtocol};
})()"#;

/// Load `url` once and print its line.
pub fn run(url: &str, to: SocketAddr, pin_file: &Path, timeout: Duration) -> Result<(), String> {
    let pin = std::fs::read_to_string(pin_file)
        .map_err(|err| format!("cannot read {}: {err}", pin_file.display()))?;
    let options = BrowserOptions::new()
        .map_host("example.cn", to)
        .map_host("*.example.cn", to)
        .accept_spki(pin.trim())
        .timeout(timeout);
    let browser = Browser::try_launch(options).map_err(|err| err.to_string())?;
    let page = browser.new_page().map_err(|err| err.to_string())?;
    page.goto(url).map_err(|err| err.to_string())?;
    let timing = page.eval(TIMING).map_err(|err| err.to_string())?;
    if timing.is_null() {
        return Err(format!(
            "{url}: the page has no load event in its Navigation Timing"
        ));
    }
    let number = |key: &str| timing[key].as_f64().unwrap_or(f64::NAN);
    let requests = page.requests();
    for request in &requests {
        let status = request.status.map_or("-".to_owned(), |s| s.to_string());
        let protocol = request.protocol.as_deref().unwrap_or("-");
        let failed = request.failed.as_deref().unwrap_or("");
        eprintln!(
            "request: {} {} {status} {protocol} {failed}",
            request.resource_type, request.url
        );
    }
    let failed = requests.iter().filter(|r| !r.succeeded()).count();
    let console = page.console_errors();
    for message in &console {
        eprintln!("console: {}: {}", message.source, message.text);
    }
    let protocols: BTreeSet<&str> = requests
        .iter()
        .filter_map(|r| r.protocol.as_deref())
        .collect();
    println!(
        "load_ms={:.1} dcl_ms={:.1} ttfb_ms={:.1} protocol={} subresources={} failed={} \
         console_errors={} protocols={}",
        number("load"),
        number("dcl"),
        number("ttfb"),
        timing["protocol"].as_str().unwrap_or("?"),
        requests.len().saturating_sub(1),
        failed,
        console.len(),
        protocols.into_iter().collect::<Vec<_>>().join(","),
    );
    Ok(())
}
