//! The record of a page: its requests, hop by hop, and its console errors, built from CDP events.
//!
//! Events are applied in the order they were read. `Network.*` gives one [`RequestRecord`] per
//! request and per redirect hop (a `requestWillBeSent` that carries a `redirectResponse` closes
//! the previous hop of the same request id with that response); `Log.entryAdded`,
//! `Runtime.exceptionThrown` and `Runtime.consoleAPICalled` give the [`ConsoleMessage`]s of level
//! error; `Page.lifecycleEvent` gives the main frame's load events. When the main frame commits a
//! new document (`Page.frameNavigated`), requests of the old one that are still open are marked
//! abandoned: Chromium does not always end them (the old document's own response, when it was
//! still streaming), and an open request would keep the network from ever going quiet.
//!
//! A failed Subresource Integrity check is not a failed request here: Chromium reports the
//! response (200) and a finished load, then blocks the resource and says so on the console
//! (source `security`, "Failed to find a valid digest in the 'integrity' attribute ...").

use std::collections::HashMap;
use std::time::Instant;

use serde_json::Value;

use super::cdp::Event;

/// The failure of a request still loading when the main frame got a new document.
const ABANDONED: &str = "abandoned: still loading when the page navigated away";

/// One request as the browser made it; a redirect is one record per hop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// The URL requested (without the `#fragment`).
    pub url: String,
    /// `GET`, `POST`, ...
    pub method: String,
    /// CDP's resource type: `Document`, `Stylesheet`, `Script`, `Image`, `Font`, `Fetch`, `XHR`,
    /// `Other`, ...
    pub resource_type: String,
    /// The HTTP status, when a response arrived (for a redirect hop, the 3xx).
    pub status: Option<u16>,
    /// Why the load failed: CDP's `errorText` (`net::ERR_NAME_NOT_RESOLVED`), with the
    /// `blockedReason` and the CORS error when there is one.
    pub failed: Option<String>,
    /// Served from the memory, disk or prefetch cache.
    pub from_cache: bool,
    /// For a redirect hop, the URL of the next hop.
    pub redirected_to: Option<String>,
    /// The address the response came from, e.g. `127.0.0.1:8443`.
    pub remote_addr: Option<String>,
    /// The protocol of the response: `http/1.1`, `h2`, `data`, ...
    pub protocol: Option<String>,
}

impl RequestRecord {
    /// The host of the URL (no port, no brackets around IPv6); `None` for `data:` and the like.
    pub fn host(&self) -> Option<&str> {
        let (_scheme, rest) = self.url.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        let host_port = authority
            .rsplit_once('@')
            .map_or(authority, |(_userinfo, host)| host);
        match host_port.strip_prefix('[') {
            Some(v6) => v6.split(']').next(),
            None => host_port.split(':').next(),
        }
    }

    /// A response arrived with a status below 400 and the load did not fail.
    pub fn succeeded(&self) -> bool {
        self.failed.is_none() && self.status.is_some_and(|status| status < 400)
    }
}

/// A console message of level error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleMessage {
    /// Where it came from: a `Log` source (`network`, `security`, `javascript`, ...),
    /// `exception` for an uncaught exception, `console-api` for `console.error`/`console.assert`.
    pub source: String,
    /// The message, e.g. `Failed to find a valid digest in the 'integrity' attribute ...`.
    pub text: String,
    /// The URL it is about or came from, when CDP gives one.
    pub url: Option<String>,
}

/// A cookie in the browser's jar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub domain: String,
    pub path: String,
    pub secure: bool,
    pub http_only: bool,
    /// `Strict`, `Lax` or `None`, when set.
    pub same_site: Option<String>,
}

/// What the page has seen so far.
pub(super) struct Log {
    pub(super) requests: Vec<RequestRecord>,
    /// Request id -> index of its latest hop in `requests`.
    pub(super) hops: HashMap<String, usize>,
    /// Request ids neither finished nor failed -> the loader (document) they belong to.
    pub(super) open: HashMap<String, String>,
    /// When the last `Network` event arrived.
    pub(super) last_network: Instant,
    pub(super) console: Vec<ConsoleMessage>,
    /// Loader ids of the main frame's documents whose load event fired, in order.
    pub(super) loads: Vec<String>,
    /// Sessions auto-attached and waiting to be set up.
    pub(super) attached: Vec<String>,
    pub(super) crashed: bool,
}

impl Log {
    pub(super) fn new() -> Self {
        Self {
            requests: Vec::new(),
            hops: HashMap::new(),
            open: HashMap::new(),
            last_network: Instant::now(),
            console: Vec::new(),
            loads: Vec::new(),
            attached: Vec::new(),
            crashed: false,
        }
    }

    /// Take one event into the record.
    pub(super) fn apply(&mut self, event: Event, main_session: &str, main_frame: &str) {
        let params = &event.params;
        let id = params["requestId"].as_str().unwrap_or_default();
        if event.method.starts_with("Network.") {
            self.last_network = Instant::now();
        }
        match event.method.as_str() {
            "Network.requestWillBeSent" => {
                let url = str_of(&params["request"]["url"]);
                if let Some(redirect) = params.get("redirectResponse") {
                    if let Some(hop) = self.hops.get(id).map(|&i| &mut self.requests[i]) {
                        apply_response(hop, redirect);
                        hop.redirected_to = Some(url.clone());
                    }
                }
                self.hops.insert(id.to_owned(), self.requests.len());
                self.open.insert(id.to_owned(), str_of(&params["loaderId"]));
                self.requests.push(RequestRecord {
                    url,
                    method: str_of(&params["request"]["method"]),
                    resource_type: params["type"].as_str().unwrap_or("Other").to_owned(),
                    status: None,
                    failed: None,
                    from_cache: false,
                    redirected_to: None,
                    remote_addr: None,
                    protocol: None,
                });
            }
            "Network.requestServedFromCache" => {
                if let Some(hop) = self.hop(id) {
                    hop.from_cache = true;
                }
            }
            "Network.responseReceived" => {
                if let Some(hop) = self.hop(id) {
                    apply_response(hop, &params["response"]);
                    if let Some(kind) = params["type"].as_str() {
                        kind.clone_into(&mut hop.resource_type);
                    }
                }
            }
            "Network.loadingFinished" => {
                self.open.remove(id);
            }
            "Network.loadingFailed" => {
                if let Some(hop) = self.hop(id) {
                    hop.failed = Some(failure(params));
                }
                self.open.remove(id);
            }
            "Page.frameNavigated" => {
                let frame = &params["frame"];
                if event.session == main_session && frame["id"] == main_frame {
                    self.abandon_all_but(frame["loaderId"].as_str().unwrap_or_default());
                }
            }
            "Page.lifecycleEvent"
                if event.session == main_session
                    && params["name"] == "load"
                    && params["frameId"] == main_frame =>
            {
                self.loads.push(str_of(&params["loaderId"]));
            }
            "Log.entryAdded" => {
                let entry = &params["entry"];
                if entry["level"] == "error" {
                    self.console.push(ConsoleMessage {
                        source: str_of(&entry["source"]),
                        text: str_of(&entry["text"]),
                        url: entry["url"].as_str().map(str::to_owned),
                    });
                }
            }
            "Runtime.exceptionThrown" => {
                let details = &params["exceptionDetails"];
                self.console.push(ConsoleMessage {
                    source: "exception".to_owned(),
                    text: exception_text(details),
                    url: details["url"].as_str().map(str::to_owned),
                });
            }
            "Runtime.consoleAPICalled"
                if params["type"] == "error" || params["type"] == "assert" =>
            {
                let args = params["args"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let text: Vec<String> = args.iter().map(remote_object_text).collect();
                self.console.push(ConsoleMessage {
                    source: "console-api".to_owned(),
                    text: text.join(" "),
                    url: params["stackTrace"]["callFrames"][0]["url"]
                        .as_str()
                        .map(str::to_owned),
                });
            }
            "Target.attachedToTarget" => {
                if let Some(child) = params["sessionId"].as_str() {
                    self.attached.push(child.to_owned());
                }
            }
            "Inspector.targetCrashed" | "Inspector.detached" if event.session == main_session => {
                self.crashed = true;
            }
            _ => {}
        }
    }

    /// A new document replaced the main frame's: what the old one still loaded ends here.
    /// Chromium does not always say so (the old document's own response, when it was still
    /// streaming), and a request that never ends would keep the network from going quiet.
    fn abandon_all_but(&mut self, loader: &str) {
        let stale: Vec<String> = self
            .open
            .iter()
            .filter(|(_, owner)| owner.as_str() != loader)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.open.remove(&id);
            if let Some(hop) = self.hop(&id) {
                hop.failed.get_or_insert_with(|| ABANDONED.to_owned());
            }
        }
    }

    /// The latest hop of request `id`.
    fn hop(&mut self, id: &str) -> Option<&mut RequestRecord> {
        let index = *self.hops.get(id)?;
        self.requests.get_mut(index)
    }

    /// The URLs of the requests still loading.
    pub(super) fn pending(&self) -> Vec<String> {
        let mut urls: Vec<String> = self
            .open
            .keys()
            .filter_map(|id| self.hops.get(id))
            .map(|&i| self.requests[i].url.clone())
            .collect();
        urls.sort();
        urls
    }
}

/// A string field, or empty.
pub(super) fn str_of(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// Copy what a CDP `Response` says into a hop.
fn apply_response(hop: &mut RequestRecord, response: &Value) {
    hop.status = response["status"]
        .as_u64()
        .and_then(|status| u16::try_from(status).ok());
    hop.from_cache |= response["fromDiskCache"] == true || response["fromPrefetchCache"] == true;
    hop.protocol = response["protocol"].as_str().map(str::to_owned);
    if let (Some(ip), Some(port)) = (
        response["remoteIPAddress"].as_str(),
        response["remotePort"].as_u64(),
    ) {
        hop.remote_addr = Some(if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        });
    }
}

/// The failure of a `Network.loadingFailed`: the error, why it was blocked, the CORS error.
fn failure(params: &Value) -> String {
    let mut text = params["errorText"].as_str().unwrap_or_default().to_owned();
    if text.is_empty() {
        text = if params["canceled"] == true {
            "canceled"
        } else {
            "failed"
        }
        .to_owned();
    }
    if let Some(reason) = params["blockedReason"].as_str() {
        text.push_str(&format!(" (blocked: {reason})"));
    }
    if let Some(cors) = params["corsErrorStatus"]["corsError"].as_str() {
        text.push_str(&format!(" (cors: {cors})"));
    }
    text
}

/// The message of a CDP `ExceptionDetails`: the exception's description (`Error: boom` and its
/// stack) when there is one, else the summary (`Uncaught`).
pub(super) fn exception_text(details: &Value) -> String {
    details["exception"]["description"]
        .as_str()
        .or_else(|| details["exception"]["value"].as_str())
        .or_else(|| details["text"].as_str())
        .unwrap_or("unknown exception")
        .to_owned()
}

/// A console argument as text: its value, else its description.
fn remote_object_text(object: &Value) -> String {
    match &object["value"] {
        Value::String(text) => text.clone(),
        Value::Null => object["description"]
            .as_str()
            .or_else(|| object["unserializableValue"].as_str())
            .unwrap_or_else(|| object["type"].as_str().unwrap_or_default())
            .to_owned(),
        value => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(url: &str) -> RequestRecord {
        RequestRecord {
            url: url.to_owned(),
            method: "GET".to_owned(),
            resource_type: "Other".to_owned(),
            status: None,
            failed: None,
            from_cache: false,
            redirected_to: None,
            remote_addr: None,
            protocol: None,
        }
    }

    #[test]
    fn the_host_of_a_url() {
        let cases = [
            ("https://example.cn/", Some("example.cn")),
            ("https://example.cn:8443/a?b#c", Some("example.cn")),
            ("http://user:pw@www.example.cn", Some("www.example.cn")),
            ("https://[::1]:443/", Some("::1")),
            ("https://example.cn?q=a/b", Some("example.cn")),
            ("data:image/png;base64,AAAA", None),
        ];
        for (url, host) in cases {
            assert_eq!(record(url).host(), host, "{url}");
        }
    }

    fn event(method: &str, params: Value) -> Event {
        Event {
            session: "S".to_owned(),
            method: method.to_owned(),
            params,
        }
    }

    #[test]
    fn a_redirect_is_one_record_per_hop() {
        let mut log = Log::new();
        let sent = |url: &str, redirect: Option<u16>| {
            let mut params = json!({"requestId": "1", "type": "Document",
                "request": {"url": url, "method": "GET"}});
            if let Some(status) = redirect {
                params["redirectResponse"] = json!({"status": status, "protocol": "http/1.1"});
            }
            event("Network.requestWillBeSent", params)
        };
        log.apply(sent("http://a.test/old", None), "S", "F");
        log.apply(sent("http://a.test/new", Some(301)), "S", "F");
        let response = json!({"requestId": "1", "response": {"status": 200}});
        log.apply(event("Network.responseReceived", response), "S", "F");
        assert_eq!(log.pending(), ["http://a.test/new"]);
        log.apply(
            event("Network.loadingFinished", json!({"requestId": "1"})),
            "S",
            "F",
        );
        assert!(log.open.is_empty());
        let hops: Vec<_> = log
            .requests
            .iter()
            .map(|r| (r.url.as_str(), r.status, r.redirected_to.as_deref()))
            .collect();
        assert_eq!(
            hops,
            [
                ("http://a.test/old", Some(301), Some("http://a.test/new")),
                ("http://a.test/new", Some(200), None),
            ]
        );
    }

    #[test]
    fn a_new_document_abandons_what_the_old_one_still_loads() {
        let mut log = Log::new();
        for (id, loader) in [("1", "L1"), ("2", "L1"), ("L2", "L2")] {
            let params = json!({"requestId": id, "loaderId": loader,
                "request": {"url": format!("http://a.test/{id}"), "method": "GET"}});
            log.apply(event("Network.requestWillBeSent", params), "S", "F");
        }
        log.apply(
            event("Network.loadingFinished", json!({"requestId": "1"})),
            "S",
            "F",
        );
        let committed = json!({"frame": {"id": "F", "loaderId": "L2"}});
        log.apply(event("Page.frameNavigated", committed), "S", "F");
        assert_eq!(log.pending(), ["http://a.test/L2"]);
        let failed: Vec<_> = log.requests.iter().map(|r| r.failed.as_deref()).collect();
        assert_eq!(failed, [None, Some(ABANDONED), None]);
    }

    #[test]
    fn a_failure_names_the_error_and_the_block() {
        let params = json!({"errorText": "net::ERR_BLOCKED_BY_RESPONSE",
            "blockedReason": "corp-not-same-origin", "corsErrorStatus": {"corsError": "X"}});
        assert_eq!(
            failure(&params),
            "net::ERR_BLOCKED_BY_RESPONSE (blocked: corp-not-same-origin) (cors: X)"
        );
        assert_eq!(
            failure(&json!({"errorText": "", "canceled": true})),
            "canceled"
        );
    }
}
