//! One WebSocket to the browser target: commands matched to replies by id, events queued per page.
//!
//! With flat sessions (`Target.attachToTarget` with `flatten: true`) every message of every
//! attached target travels on this one socket, tagged with a `sessionId`. A command is sent and
//! then messages are read until the reply with its id arrives; each event read meanwhile is
//! routed to the queue of the page its session belongs to, so nothing is lost while waiting.
//! A page owns its own session and the sessions of the targets auto-attached under it
//! (out-of-process iframes, workers): the route of a child session is added the moment its
//! `Target.attachedToTarget` event is read, before any of its own events can arrive.
//!
//! Reads use the socket's read timeout as the deadline; tungstenite keeps a partly read frame
//! across a timed-out read, so a deadline never corrupts the stream.

use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

use super::process::StderrLog;
use super::BrowserError;

/// An event: which session sent it, its method and parameters.
#[derive(Debug)]
pub(super) struct Event {
    pub session: String,
    pub method: String,
    pub params: Value,
}

/// The DevTools connection.
pub(super) struct Connection {
    socket: WebSocket<TcpStream>,
    next_id: u64,
    /// Session id -> the page (named by its own session id) whose queue gets its events.
    routes: HashMap<String, String>,
    /// Page -> events not yet consumed, oldest first.
    queues: HashMap<String, VecDeque<Event>>,
    stderr: StderrLog,
}

impl Connection {
    /// Connect to the browser target at `url` (`ws://host:port/devtools/browser/...`).
    pub(super) fn open(
        url: &str,
        timeout: Duration,
        stderr: StderrLog,
    ) -> Result<Self, BrowserError> {
        let failed = |reason: String| BrowserError::Disconnected {
            reason: format!("cannot connect to {url}: {reason}"),
            stderr: stderr.snapshot(),
        };
        let addr = ws_addr(url).ok_or_else(|| failed("not a ws://host:port/ URL".to_owned()))?;
        let stream =
            TcpStream::connect_timeout(&addr, timeout).map_err(|err| failed(err.to_string()))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|err| failed(err.to_string()))?;
        // With a read timeout set, a stalled handshake fails instead of hanging.
        let (socket, _response) =
            tungstenite::client::client(url, stream).map_err(|err| failed(err.to_string()))?;
        Ok(Self {
            socket,
            next_id: 1,
            routes: HashMap::new(),
            queues: HashMap::new(),
            stderr,
        })
    }

    /// Start queueing the events of `session` as a page of its own.
    pub(super) fn add_page(&mut self, session: &str) {
        self.routes.insert(session.to_owned(), session.to_owned());
        self.queues.entry(session.to_owned()).or_default();
    }

    /// Stop routing the events of `page` and of the sessions attached under it.
    pub(super) fn remove_page(&mut self, page: &str) {
        self.routes.retain(|_, owner| owner != page);
        self.queues.remove(page);
    }

    /// The oldest queued event of `page`.
    pub(super) fn pop_event(&mut self, page: &str) -> Option<Event> {
        self.queues.get_mut(page)?.pop_front()
    }

    /// Send `method` (to `session`, or to the browser target) and wait at most `timeout` for its
    /// reply; a protocol error becomes [`BrowserError::Protocol`].
    pub(super) fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, BrowserError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = Value::from(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .map_err(|err| self.disconnected(format!("cannot send {method}: {err}")))?;
        let deadline = Instant::now() + timeout;
        loop {
            let Some(mut message) = self.read(deadline)? else {
                return Err(BrowserError::CommandTimeout {
                    method: method.to_owned(),
                    after: timeout,
                });
            };
            match message.get("id").and_then(Value::as_u64) {
                Some(reply) if reply == id => {
                    if let Some(error) = message.get("error") {
                        let text = error["message"].as_str().unwrap_or("unknown error");
                        let data = error["data"].as_str().map(|data| format!(" ({data})"));
                        return Err(BrowserError::Protocol {
                            method: method.to_owned(),
                            message: format!("{text}{}", data.unwrap_or_default()),
                        });
                    }
                    return Ok(message["result"].take());
                }
                // The late reply to a command that timed out: nobody waits for it any more.
                Some(_) => {}
                None => {
                    self.route(message);
                }
            }
        }
    }

    /// Read and route messages until `deadline`, or until one event has been queued; true if
    /// one was.
    pub(super) fn pump(&mut self, deadline: Instant) -> Result<bool, BrowserError> {
        while let Some(message) = self.read(deadline)? {
            if message.get("id").is_none() && self.route(message) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Queue an event for its page; false if no page wants it (browser-level events, the events
    /// of a closed page).
    fn route(&mut self, mut message: Value) -> bool {
        let Some(session) = message["sessionId"].as_str().map(str::to_owned) else {
            return false;
        };
        let Some(page) = self.routes.get(&session).cloned() else {
            return false;
        };
        let method = message["method"].as_str().unwrap_or_default().to_owned();
        let params = message["params"].take();
        if method == "Target.attachedToTarget" {
            if let Some(child) = params["sessionId"].as_str() {
                self.routes.insert(child.to_owned(), page.clone());
            }
        }
        let event = Event {
            session,
            method,
            params,
        };
        self.queues.entry(page).or_default().push_back(event);
        true
    }

    /// The next text message before `deadline`, parsed; `None` when the deadline passes first.
    fn read(&mut self, deadline: Instant) -> Result<Option<Value>, BrowserError> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.socket
                .get_mut()
                .set_read_timeout(Some(deadline - now))
                .map_err(|err| self.disconnected(err.to_string()))?;
            match self.socket.read() {
                Ok(Message::Text(text)) => {
                    return serde_json::from_str(text.as_str())
                        .map(Some)
                        .map_err(|err| {
                            self.disconnected(format!("a message is not JSON ({err}): {text}"))
                        });
                }
                Ok(Message::Close(frame)) => {
                    return Err(self.disconnected(format!("closed by chromium: {frame:?}")));
                }
                // Pings are answered by tungstenite; CDP sends nothing else but text.
                Ok(_) => {}
                Err(tungstenite::Error::Io(err))
                    if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(err) => return Err(self.disconnected(err.to_string())),
            }
        }
    }

    fn disconnected(&self, reason: String) -> BrowserError {
        BrowserError::Disconnected {
            reason,
            stderr: self.stderr.snapshot(),
        }
    }
}

/// The socket address of a `ws://host:port/...` URL.
fn ws_addr(url: &str) -> Option<SocketAddr> {
    let rest = url.strip_prefix("ws://")?;
    let authority = rest.split('/').next()?;
    authority.to_socket_addrs().ok()?.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_devtools_url_gives_the_socket_address() {
        let url = "ws://127.0.0.1:41035/devtools/browser/d66e3a9c-5fd6-4485-bf5b-1ad52ca909ab";
        assert_eq!(ws_addr(url), Some("127.0.0.1:41035".parse().unwrap()));
        assert_eq!(ws_addr("wss://127.0.0.1:1/"), None);
        assert_eq!(ws_addr("ws://127.0.0.1/"), None);
    }
}
