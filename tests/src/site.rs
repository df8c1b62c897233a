//! The demo site: a few small pages full of origin-domain references, and decoys that must not
//! change.
//!
//! Every page is written for the origin domains (by default `example.com` and the CDN
//! `examplecdn.net`, as in `envoy/ferry.yaml`): absolute links, protocol-relative CDN links, JSON
//! with escaped slashes, percent-encoded URLs, cookies for the parent domain, a redirect. Beside
//! them stand look-alikes that are other domains (`example.community`, `myexample.com`,
//! `example.com-shop.org`): a correct rewrite leaves those alone. A PNG-like binary carries an
//! origin URL too; it is not text and must pass byte for byte.

use serde_json::json;

use crate::origin::Origin;
use crate::reply::Reply;

/// One origin domain and the mirror domain that publishes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainPair {
    /// The origin's domain, e.g. `example.com`.
    pub origin: String,
    /// The mirror's domain, e.g. `example.cn`.
    pub mirror: String,
}

impl DomainPair {
    /// `origin` published as `mirror`.
    pub fn new(origin: &str, mirror: &str) -> Self {
        Self {
            origin: origin.to_owned(),
            mirror: mirror.to_owned(),
        }
    }
}

/// The demo site for a main domain and a CDN domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// The site's own domain (pages are served as `www.<origin>`).
    pub main: DomainPair,
    /// The domain of its CDN (assets are linked as `<origin>` and `img.<origin>`).
    pub cdn: DomainPair,
}

impl Default for Site {
    /// `example.com` -> `example.cn` and `examplecdn.net` -> `cdn.example.cn`.
    fn default() -> Self {
        Self::new(
            DomainPair::new("example.com", "example.cn"),
            DomainPair::new("examplecdn.net", "cdn.example.cn"),
        )
    }
}

/// The paths the site serves, each with a short description.
pub const PAGES: &[(&str, &str)] = &[
    ("/", "home page (HTML, cookies, CSP, Link header)"),
    ("/about", "about page (HTML)"),
    ("/products/ferry-boat", "product page (HTML with JSON-LD)"),
    ("/api/products.json", "JSON API with escaped slashes"),
    ("/static/site.css", "stylesheet"),
    ("/static/app.js", "script"),
    (
        "/static/sri.js",
        "script loaded with an integrity hash of the origin's version",
    ),
    ("/static/print.css", "print stylesheet (@import)"),
    ("/favicon.ico", "icon (PNG)"),
    ("/waves.png", "background image, on the CDN's img. host"),
    ("/boat-1x.jpg", "product image, on the CDN's img. host"),
    ("/boat-2x.jpg", "product image, on the CDN's img. host"),
    ("/static/logo.svg", "SVG image (text)"),
    ("/static/logo.png", "PNG-like binary (passes byte for byte)"),
    ("/login", "login page"),
    ("/old-login", "301 redirect to the login page"),
];

impl Site {
    /// A site for `main` and its `cdn`.
    pub fn new(main: DomainPair, cdn: DomainPair) -> Self {
        Self { main, cdn }
    }

    /// The site for the first two domain pairs of a Ferry plugin configuration (a single pair
    /// serves as its own CDN).
    pub fn from_plugin_config(json: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|err| format!("plugin configuration is not JSON: {err}"))?;
        let pairs: Vec<DomainPair> = value["domains"]
            .as_array()
            .ok_or("plugin configuration: `domains` is not a list")?
            .iter()
            .filter_map(|pair| {
                Some(DomainPair::new(
                    pair["origin"].as_str()?,
                    pair["mirror"].as_str()?,
                ))
            })
            .collect();
        match pairs.as_slice() {
            [] => Err("plugin configuration: no {origin, mirror} pair in `domains`".to_owned()),
            [main] => Ok(Self::new(main.clone(), main.clone())),
            [main, cdn, ..] => Ok(Self::new(main.clone(), cdn.clone())),
        }
    }

    /// The Ferry plugin configuration for this site's two domain pairs.
    pub fn plugin_config(&self) -> String {
        let pair = |pair: &DomainPair| json!({"origin": pair.origin, "mirror": pair.mirror, "subdomains": true});
        json!({"domains": [pair(&self.main), pair(&self.cdn)]}).to_string()
    }

    /// The host visitors of the origin use, `www.<origin>`.
    pub fn origin_host(&self) -> String {
        format!("www.{}", self.main.origin)
    }

    /// The host visitors of the mirror use, `www.<mirror>`.
    pub fn mirror_host(&self) -> String {
        format!("www.{}", self.main.mirror)
    }

    /// Look-alikes of the main origin domain that are other domains and must never change.
    pub fn decoys(&self) -> Vec<String> {
        let origin = &self.main.origin;
        vec![
            format!("{origin}munity"),
            format!("my{origin}"),
            format!("{origin}-shop.org"),
        ]
    }

    /// Everything on the site that names the origin domain and must reach a mirror visitor
    /// unchanged: the decoys, and the e-mail addresses (Ferry keeps their domain by default).
    pub fn kept(&self) -> Vec<String> {
        let origin = &self.main.origin;
        let mut kept = self.decoys();
        kept.extend(["hello", "press", "help"].map(|name| format!("{name}@{origin}")));
        kept
    }

    /// Start a test origin serving this site.
    pub fn start(&self) -> Origin {
        let origin = Origin::start();
        self.install(&origin);
        origin
    }

    /// Serve this site's pages on `origin`.
    pub fn install(&self, origin: &Origin) {
        for (path, reply) in self.pages() {
            origin.route(path, reply);
        }
    }

    /// Every page: its path and the reply the origin gives.
    pub fn pages(&self) -> Vec<(&'static str, Reply)> {
        let fill = |template: &str| self.fill(template);
        vec![
            (
                "/",
                Reply::new(200)
                    .header("content-type", "text/html; charset=utf-8")
                    .header(
                        "set-cookie",
                        &fill("session=demo; Domain=.{O}; Path=/; HttpOnly"),
                    )
                    .header("set-cookie", &fill("lang=en; Domain={O}; Path=/"))
                    .header(
                        "link",
                        &fill("<https://{C}/static/site.css>; rel=preload; as=style"),
                    )
                    .header(
                        "content-security-policy",
                        &fill("default-src 'self' https://*.{O} https://{C} https://*.{C}"),
                    )
                    // Three chunks, so even the demo exercises the streaming path.
                    .chunks(split3(
                        &fill(HOME).replace("{SRI}", &sri_sha384(fill(SRI_JS).as_bytes())),
                    )),
            ),
            ("/about", Reply::html(fill(ABOUT)).content_length()),
            ("/products/ferry-boat", Reply::html(fill(PRODUCT))),
            (
                "/api/products.json",
                Reply::ok("application/json", fill(API))
                    .header("access-control-allow-origin", &fill("https://www.{O}"))
                    .content_length(),
            ),
            (
                "/static/site.css",
                Reply::ok("text/css", fill(CSS)).content_length(),
            ),
            (
                "/static/app.js",
                Reply::ok("application/javascript", fill(JS)).content_length(),
            ),
            (
                "/static/sri.js",
                Reply::ok("application/javascript", fill(SRI_JS)).content_length(),
            ),
            (
                "/static/print.css",
                Reply::ok("text/css", fill(PRINT_CSS)).content_length(),
            ),
            (
                "/favicon.ico",
                Reply::ok("image/png", TINY_PNG.to_vec()).content_length(),
            ),
            (
                "/waves.png",
                Reply::ok("image/png", TINY_PNG.to_vec()).content_length(),
            ),
            (
                "/boat-1x.jpg",
                Reply::ok("image/png", TINY_PNG.to_vec()).content_length(),
            ),
            (
                "/boat-2x.jpg",
                Reply::ok("image/png", TINY_PNG.to_vec()).content_length(),
            ),
            (
                "/static/logo.svg",
                Reply::ok("image/svg+xml", fill(SVG)).content_length(),
            ),
            (
                "/static/logo.png",
                Reply::ok("image/png", self.png()).content_length(),
            ),
            ("/login", Reply::html(fill(LOGIN))),
            (
                "/old-login",
                Reply::redirect(301, &fill("https://www.{O}/login"))
                    .header("content-type", "text/html")
                    .body(fill("<a href=\"https://www.{O}/login\">moved</a>\n")),
            ),
        ]
    }

    /// A PNG-like binary: the PNG signature, a text chunk holding an origin URL, binary noise.
    pub fn png(&self) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0".to_vec();
        let text = self.fill("Comment\0https://www.{O}/static/logo.png");
        png.extend_from_slice(&(text.len() as u32).to_be_bytes());
        png.extend_from_slice(b"tEXt");
        png.extend_from_slice(text.as_bytes());
        png.extend((0..=255u8).map(|byte| byte.wrapping_mul(167)));
        png.extend_from_slice(b"\0\0\0\0IEND\xae\x42\x60\x82");
        png
    }

    /// `template` with `{O}` the main origin domain, `{C}` the CDN's, `{D1}`.. the decoys.
    fn fill(&self, template: &str) -> String {
        let decoys = self.decoys();
        template
            .replace("{O}", &self.main.origin)
            .replace("{C}", &self.cdn.origin)
            .replace("{D1}", &decoys[0])
            .replace("{D2}", &decoys[1])
            .replace("{D3}", &decoys[2])
    }
}

/// The Subresource Integrity value (`sha384-<base64>`) of `content`.
pub fn sri_sha384(content: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA384, content);
    format!("sha384-{}", crate::browser::base64(digest.as_ref()))
}

/// A valid 1x1 transparent PNG, for the images pages load.
const TINY_PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\x0aIDATx\x9cc\0\x01\0\0\x05\0\x01\x0d\x0a\x2d\xb4\0\0\0\0IEND\xaeB`\x82";

/// `text` in three pieces, cut at character boundaries near its thirds.
fn split3(text: &str) -> Vec<String> {
    let cut = |at: usize| {
        (at..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len())
    };
    let (a, b) = (cut(text.len() / 3), cut(2 * text.len() / 3));
    vec![
        text[..a].to_owned(),
        text[a..b].to_owned(),
        text[b..].to_owned(),
    ]
}

const HOME: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Example Ferries: home</title>
  <link rel="canonical" href="https://www.{O}/">
  <link rel="stylesheet" href="//{C}/static/site.css">
  <script src="https://{C}/static/app.js" defer></script>
  <script src="/static/sri.js" integrity="{SRI}" crossorigin="anonymous"></script>
  <script type="application/ld+json">{"@type":"WebSite","url":"https:\/\/www.{O}\/","logo":"https:\/\/{C}\/static\/logo.png"}</script>
</head>
<body>
  <img src="//{C}/static/logo.svg" alt="logo"> <img src="https://{C}/static/logo.png" alt="">
  <nav><a href="https://www.{O}/">Home</a> <a href="https://www.{O}/about">About</a>
    <a href="https://www.{O}/products/ferry-boat">Our ferry</a> <a href="http://{O}/login">Log in</a></nav>
  <p>Welcome to www.{O}. Write to hello@{O} or visit {O}.</p>
  <p><a href="https://share.social.test/?u=https%3A%2F%2Fwww.{O}%2Fproducts%2Fferry-boat">Share</a>
     <a href="/search?next=https%3a%2f%2fwww.{O}%2fabout">Search</a></p>
  <h2>Not us</h2>
  <p>These are other sites and keep their names:
    <a href="https://{D1}/">{D1}</a>, <a href="https://{D2}/">{D2}</a>,
    <a href="https://{D3}/">{D3}</a>.</p>
</body>
</html>
"#;

const ABOUT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>About</title>
<link rel="stylesheet" href="https://{C}/static/site.css"></head>
<body><h1>About www.{O}</h1>
<p>We have run ferries since 1901. Press: press@{O}. Our partners at {D2} and the
{D1} forum are separate companies.</p>
<p><a href="https://www.{O}/">Back home</a></p></body></html>
"#;

const PRODUCT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>The ferry boat</title>
<meta property="og:url" content="https://www.{O}/products/ferry-boat">
<meta property="og:image" content="https://img.{C}/boat.jpg">
<script type="application/ld+json">{"@type":"Product","name":"Ferry boat","url":"https:\/\/www.{O}\/products\/ferry-boat","image":"https:\/\/{C}\/img\/boat.jpg","offers":{"seller":"https:\/\/{D3}\/"}}</script>
</head><body><h1>The ferry boat</h1>
<img srcset="https://img.{C}/boat-1x.jpg 1x, https://img.{C}/boat-2x.jpg 2x">
<p><a href="https://www.{O}/api/products.json">As JSON</a></p></body></html>
"#;

const API: &str = r#"{"products":[{"name":"Ferry boat","url":"https:\/\/www.{O}\/products\/ferry-boat","image":"https://img.{C}/boat.jpg","share":"https%3A%2F%2Fwww.{O}%2Fproducts%2Fferry-boat"}],"partner":"https://{D2}/","forum":"https://{D1}/","shop":"https://{D3}/"}
"#;

const CSS: &str = r#"@import url("//www.{O}/static/print.css") print;
body { background: #fff url(https://img.{C}/waves.png) repeat-x; }
.logo { background-image: url('//{C}/static/logo.svg'); }
"#;

const JS: &str = r#"// Example Ferries
const API = "https://www.{O}/api/products.json";
const CDN = '//{C}/';
const PARTNER = "https://{D2}/";
fetch(API).then((r) => r.json()).then((j) => console.log(j.products[0].url));
"#;

/// Sets `window.ferrySri` so a browser test can see it ran; its origin URL makes the filter
/// rewrite it, so its integrity hash (of the origin's version) no longer matches.
const SRI_JS: &str = r#"// Loaded with an integrity hash.
window.ferrySri = "https://www.{O}/static/sri.js";
"#;

const PRINT_CSS: &str = r#"body { color: #000; }
a[href^="https://www.{O}/"]::after { content: " (www.{O})"; }
"#;

const SVG: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="120" height="40">
  <a xlink:href="https://www.{O}/"><text x="4" y="28">www.{O}</text></a>
</svg>
"#;

const LOGIN: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in</title></head>
<body><form method="post" action="https://www.{O}/session">
<input name="user"> <input name="password" type="password"> <button>Log in</button></form>
<p>Trouble? <a href="mailto:help@{O}">help@{O}</a></p></body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_site_matches_the_shipped_plugin_config() {
        let shipped = crate::EnvoyConfig::shipped()
            .plugin_config_json()
            .expect("the shipped config has a plugin configuration");
        assert_eq!(Site::from_plugin_config(&shipped), Ok(Site::default()));
        let decoys = Site::default().decoys();
        assert_eq!(
            decoys,
            ["example.community", "myexample.com", "example.com-shop.org"]
        );
    }

    #[test]
    fn every_page_is_listed_and_no_placeholder_is_left() {
        let site = Site::new(
            DomainPair::new("a.org", "b.cn"),
            DomainPair::new("c.net", "d.cn"),
        );
        let pages = site.pages();
        let paths: Vec<&str> = pages.iter().map(|(path, _)| *path).collect();
        let listed: Vec<&str> = PAGES.iter().map(|(path, _)| *path).collect();
        assert_eq!(paths, listed);
        for template in [
            HOME, ABOUT, PRODUCT, API, CSS, JS, SVG, LOGIN, SRI_JS, PRINT_CSS,
        ] {
            let page = site.fill(template);
            let page = page.replace("{SRI}", "sha384-x");
            assert!(!page.contains("{O}") && !page.contains("{C}") && !page.contains("{D"));
            assert!(!page.contains("example"), "{page}");
        }
        assert_eq!(split3("abcdefghi").concat(), "abcdefghi");
    }
}
