//! A tab: navigation, clicks, evaluation, cookies, and the record of what it loaded (its
//! requests and console errors, built in `record.rs`).
//!
//! Waiting is reading: a wait applies the page's queued events, checks its condition, and reads
//! the socket (for at most 50 ms at a time, so a time-based condition such as network quiet is
//! re-checked) until the condition holds or the deadline passes. Targets auto-attached under the
//! page (out-of-process iframes, workers) start paused; the page enables Network, Runtime and Log
//! on them, then lets them run, so none of their requests is missed. Without that, their loads
//! would be reported in sessions nobody listens to, and the page's network would never go quiet.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::record::{exception_text, str_of, Log};
use super::{BrowserError, ConsoleMessage, Cookie, RequestRecord, Shared};

/// How often a wait re-checks a time-based condition (network quiet) when no event arrives.
const POLL: Duration = Duration::from_millis(50);

/// How long closing a page on drop may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A browser tab, attached and recording. Closed when dropped.
pub struct Page {
    shared: Rc<Shared>,
    target: String,
    session: String,
    main_frame: String,
    log: RefCell<Log>,
}

impl Page {
    /// Create a tab on `about:blank`, attach to it, enable the domains it records from.
    pub(super) fn open(shared: Rc<Shared>) -> Result<Self, BrowserError> {
        let timeout = shared.timeout;
        let (target, session) = {
            let mut conn = shared.conn.borrow_mut();
            let method = "Target.createTarget";
            let reply = conn.call(None, method, json!({"url": "about:blank"}), timeout)?;
            let target = field(&reply, method, "targetId")?;
            let method = "Target.attachToTarget";
            let params = json!({"targetId": target, "flatten": true});
            let reply = conn.call(None, method, params, timeout)?;
            let session = field(&reply, method, "sessionId")?;
            conn.add_page(&session);
            (target, session)
        };
        // From here on, dropping `page` closes the tab.
        let mut page = Self {
            shared,
            target,
            session,
            main_frame: String::new(),
            log: RefCell::new(Log::new()),
        };
        page.call("Page.enable", json!({}))?;
        page.call("Page.setLifecycleEventsEnabled", json!({"enabled": true}))?;
        page.enable_recording(&page.session.clone())?;
        let method = "Page.getFrameTree";
        let tree = page.call(method, json!({}))?;
        page.main_frame = field(&tree["frameTree"]["frame"], method, "frameTree.frame.id")?;
        Ok(page)
    }

    /// Enable what the record is built from on `session`, and auto-attach under it.
    fn enable_recording(&self, session: &str) -> Result<(), BrowserError> {
        let auto_attach =
            json!({"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true});
        for (method, params) in [
            ("Network.enable", json!({})),
            ("Runtime.enable", json!({})),
            ("Log.enable", json!({})),
            ("Target.setAutoAttach", auto_attach),
        ] {
            self.call_on(session, method, params)?;
        }
        Ok(())
    }

    /// Set up a target auto-attached under the page (it waits for this before running).
    fn set_up_child(&self, session: &str) -> Result<(), BrowserError> {
        // A worker may lack a domain, a short-lived frame may be gone already: neither is the
        // page's failure. Only a dead connection or a silent browser is.
        let ignore_protocol = |result: Result<(), BrowserError>| match result {
            Err(BrowserError::Protocol { .. }) => Ok(()),
            other => other,
        };
        ignore_protocol(self.enable_recording(session))?;
        ignore_protocol(
            self.call_on(session, "Runtime.runIfWaitingForDebugger", json!({}))
                .map(drop),
        )
    }

    /// Send a CDP command to the page's session and return its result (for what this API lacks,
    /// e.g. `Network.setCacheDisabled`).
    pub fn call(&self, method: &str, params: Value) -> Result<Value, BrowserError> {
        self.call_on(&self.session.clone(), method, params)
    }

    fn call_on(&self, session: &str, method: &str, params: Value) -> Result<Value, BrowserError> {
        self.shared
            .conn
            .borrow_mut()
            .call(Some(session), method, params, self.shared.timeout)
    }

    /// Navigate to `url`; return once its load event has fired and the network has been quiet.
    /// A network error on the document itself (`net::ERR_NAME_NOT_RESOLVED`, a certificate
    /// error) is [`BrowserError::Navigation`]; an HTTP error status is not (see [`Page::requests`]).
    pub fn goto(&self, url: &str) -> Result<(), BrowserError> {
        let reply = self.call("Page.navigate", json!({"url": url}))?;
        if let Some(error) = reply["errorText"]
            .as_str()
            .filter(|error| !error.is_empty())
        {
            return Err(BrowserError::Navigation {
                url: url.to_owned(),
                error: error.to_owned(),
            });
        }
        // No loader: a same-document navigation (only the fragment changed), no load event.
        if let Some(loader) = reply["loaderId"].as_str() {
            if !self.wait(|log| log.loads.iter().any(|load| load == loader))? {
                return Err(self.timeout(format!("the load event of {url}")));
            }
        }
        self.wait_idle()
    }

    /// Click the first element matching `selector` (a link, a submit button) and return once the
    /// document it leads to has loaded and the network has been quiet. The click is the DOM's
    /// `element.click()`, run after the evaluation returns, so the navigation cannot cut it short.
    pub fn click_and_wait(&self, selector: &str) -> Result<(), BrowserError> {
        self.drain()?;
        let loads_before = self.log.borrow().loads.len();
        let selector_js = Value::from(selector).to_string();
        let script = format!(
            "(() => {{ const element = document.querySelector({selector_js}); \
             if (!element) return false; setTimeout(() => element.click(), 0); return true; }})()"
        );
        if self.eval(&script)? != Value::Bool(true) {
            return Err(BrowserError::NoElement(selector.to_owned()));
        }
        if !self.wait(|log| log.loads.len() > loads_before)? {
            return Err(self.timeout(format!("a new document after clicking {selector:?}")));
        }
        self.wait_idle()
    }

    /// Evaluate `expression` in the page (promises are awaited) and return its value as JSON
    /// (`null` for `undefined`); a thrown exception is [`BrowserError::Js`].
    pub fn eval(&self, expression: &str) -> Result<Value, BrowserError> {
        let params = json!({
            "expression": expression,
            "returnByValue": true,
            "awaitPromise": true,
            "userGesture": true,
        });
        let mut reply = self.call("Runtime.evaluate", params)?;
        if let Some(details) = reply.get("exceptionDetails") {
            return Err(BrowserError::Js(exception_text(details)));
        }
        let result = &mut reply["result"];
        Ok(match result["unserializableValue"].take() {
            Value::String(special) => Value::String(special), // NaN, Infinity, -0, 1n
            _ => result["value"].take(),
        })
    }

    /// The cookies the browser would send to the current document's URL.
    pub fn cookies(&self) -> Result<Vec<Cookie>, BrowserError> {
        let reply = self.call("Network.getCookies", json!({}))?;
        let cookies = reply["cookies"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(cookies
            .iter()
            .map(|cookie| Cookie {
                name: str_of(&cookie["name"]),
                value: str_of(&cookie["value"]),
                domain: str_of(&cookie["domain"]),
                path: str_of(&cookie["path"]),
                secure: cookie["secure"] == true,
                http_only: cookie["httpOnly"] == true,
                same_site: cookie["sameSite"].as_str().map(str::to_owned),
            })
            .collect())
    }

    /// Every request since the page was opened (or [`Page::clear`]ed), in the order they were
    /// sent, redirect hops included.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.apply_queued();
        self.log.borrow().requests.clone()
    }

    /// Every console message of level error since the page was opened (or cleared).
    pub fn console_errors(&self) -> Vec<ConsoleMessage> {
        self.apply_queued();
        self.log.borrow().console.clone()
    }

    /// Forget the requests and console errors recorded so far (call it when the page is idle:
    /// the later events of a request still loading are then ignored).
    pub fn clear(&self) {
        self.apply_queued();
        let mut log = self.log.borrow_mut();
        log.requests.clear();
        log.hops.clear();
        log.open.clear();
        log.console.clear();
    }

    /// Wait until no request has been outstanding for the network-quiet time; if that does not
    /// happen in time, [`BrowserError::NotIdle`] lists what is still loading.
    pub fn wait_idle(&self) -> Result<(), BrowserError> {
        let quiet = self.shared.quiet;
        if self.wait(|log| log.open.is_empty() && log.last_network.elapsed() >= quiet)? {
            Ok(())
        } else {
            Err(BrowserError::NotIdle {
                after: self.shared.timeout,
                pending: self.log.borrow().pending(),
            })
        }
    }

    /// Process events until `done` holds (true) or the deadline passes (false).
    fn wait(&self, done: impl Fn(&Log) -> bool) -> Result<bool, BrowserError> {
        let deadline = Instant::now() + self.shared.timeout;
        loop {
            self.drain()?;
            {
                let log = self.log.borrow();
                if log.crashed {
                    return Err(BrowserError::Crashed);
                }
                if done(&log) {
                    return Ok(true);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            self.shared
                .conn
                .borrow_mut()
                .pump(deadline.min(now + POLL))?;
        }
    }

    /// Apply the queued events and set up the targets attached meanwhile, until neither is left.
    fn drain(&self) -> Result<(), BrowserError> {
        loop {
            self.apply_queued();
            let child = self.log.borrow_mut().attached.pop();
            match child {
                Some(child) => self.set_up_child(&child)?,
                None => return Ok(()),
            }
        }
    }

    /// Apply the events already queued, without reading from the socket.
    fn apply_queued(&self) {
        loop {
            let event = self.shared.conn.borrow_mut().pop_event(&self.session);
            let Some(event) = event else { return };
            self.log
                .borrow_mut()
                .apply(event, &self.session, &self.main_frame);
        }
    }

    fn timeout(&self, what: String) -> BrowserError {
        BrowserError::Timeout {
            what,
            after: self.shared.timeout,
        }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // `try_`: never panic in drop; the connection is only borrowed inside a method call.
        if let Ok(mut conn) = self.shared.conn.try_borrow_mut() {
            conn.remove_page(&self.session);
            let timeout = CLOSE_TIMEOUT.min(self.shared.timeout);
            // A dead browser answers with an error at once; the tab goes with it anyway.
            let _ = conn.call(
                None,
                "Target.closeTarget",
                json!({"targetId": self.target}),
                timeout,
            );
        }
    }
}

/// A string field of a reply, or an error naming the command and the field.
fn field(reply: &Value, method: &str, name: &'static str) -> Result<String, BrowserError> {
    let key = name.rsplit('.').next().unwrap_or(name);
    reply[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| BrowserError::Reply {
            method: method.to_owned(),
            field: name,
            reply: reply.to_string(),
        })
}
