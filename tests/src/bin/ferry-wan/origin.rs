//! `ferry-wan origin DIR --listen ADDR`: the one origin behind every system, until killed.
//!
//! The test origin ([`Origin`], rustls, ALPN `h2` and `http/1.1`) with the certificate
//! `ferry-wan files` wrote for it, serving the demo site as `./run demo` does (the site of
//! `envoy/us-east.yaml`'s plugin configuration: `example.com` and its subdomains), and
//! [`LARGE_PATH`]: a ~2 MB HTML page of words and origin-domain names in every form Ferry
//! rewrites (one every ~1.6 KB on average, the density of the Python documentation pages of
//! `./run bench`), the same bytes on every run. Every body goes out as the origin has it; the
//! proxies ask for identity.

use std::net::SocketAddr;
use std::path::Path;

use ferry_tests::envoy::node;
use ferry_tests::origin::Protocol;
use ferry_tests::pki::Leaf;
use ferry_tests::{EnvoyConfig, MirrorPage, Origin, Reply, Site};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use crate::files::{ORIGIN_NAMES, UPSTREAM};

/// The path of the large page.
pub const LARGE_PATH: &str = "/large.html";
/// Its length in bytes (at least; the generator ends the page after this).
const LARGE_LEN: usize = 2_000_000;
/// About one origin-domain name per this many bytes.
const LARGE_SPACING: usize = 1_650;
/// Seeds the page's words and names.
const LARGE_SEED: u64 = 12;

/// Serve until the process is killed; an error if the origin cannot start.
pub fn serve(dir: &Path, listen: SocketAddr) -> Result<(), String> {
    let leaf = read_leaf(dir)?;
    let site = demo_site()?;
    let origin = Origin::bind_tls(listen, Protocol::Auto, &leaf)
        .map_err(|err| format!("cannot serve on {listen}: {err}"))?;
    site.install(&origin);
    let large = MirrorPage::random(LARGE_SEED, LARGE_LEN, LARGE_SPACING).origin;
    let large_len = large.len();
    origin.route(LARGE_PATH, Reply::html(large).content_length());
    println!(
        "ready listen={} pages={} large={LARGE_PATH} large_bytes={large_len}",
        origin.addr(),
        site.pages().len() + 1
    );
    // The origin runs on its own threads; this one only keeps the process (and them) alive.
    loop {
        std::thread::park();
    }
}

/// The demo site of the shipped node's plugin configuration, as the chain of `./run demo` has.
fn demo_site() -> Result<Site, String> {
    let path = node::us_east();
    let json = EnvoyConfig::load(&path)
        .map_err(|err| err.to_string())?
        .plugin_config_json()
        .ok_or_else(|| format!("{}: no Ferry plugin configuration", path.display()))?;
    Site::from_plugin_config(&json)
}

/// The origin server's certificate and key, as `ferry-wan files` wrote them.
fn read_leaf(dir: &Path) -> Result<Leaf, String> {
    let cert_pem = dir.join(format!("{UPSTREAM}.crt"));
    let key_pem = dir.join(format!("{UPSTREAM}.key"));
    let unreadable = |path: &Path, err: &dyn std::fmt::Display| {
        format!(
            "cannot read {} (run `ferry-wan files` first): {err}",
            path.display()
        )
    };
    let cert = CertificateDer::from_pem_file(&cert_pem).map_err(|e| unreadable(&cert_pem, &e))?;
    let key = PrivatePkcs8KeyDer::from_pem_file(&key_pem).map_err(|e| unreadable(&key_pem, &e))?;
    Ok(Leaf {
        names: ORIGIN_NAMES.iter().map(|name| (*name).to_owned()).collect(),
        cert_der: cert.to_vec(),
        key_der: key.secret_pkcs8_der().to_vec(),
        spki_der: Vec::new(),
        cert_pem,
        key_pem,
    })
}
