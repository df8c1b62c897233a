//! A WebSocket client for tests: [`Client::websocket`] opens the client's connection (TCP, its
//! preamble, TLS if configured), upgrades it to a WebSocket, sends text messages and reads what
//! comes back, then closes.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Client, ClientError, Version};

/// What a WebSocket exchange gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSocketExchange {
    /// The status of the handshake's answer (101).
    pub status: u16,
    /// The text of every message received, one per message sent.
    pub received: Vec<String>,
}

impl Client {
    /// Upgrade a new connection to a WebSocket on `path` for `host` (sending `Origin: origin`
    /// if given, as browsers do), send each of `messages` and wait for one message back for
    /// each, then close. HTTP/1.1 clients only (WebSockets over HTTP/2 are not used).
    pub fn websocket(
        &self,
        host: &str,
        path: &str,
        origin: Option<&str>,
        messages: &[&str],
    ) -> Result<WebSocketExchange, ClientError> {
        assert_eq!(self.version(), Version::Http1, "WebSockets need HTTP/1.1");
        let failed = |reason: String| ClientError::WebSocket {
            addr: self.addr(),
            path: path.to_owned(),
            reason,
        };
        let exchange = async {
            let stream = self.connect().await?;
            let url = format!("ws://{host}{path}");
            let mut request = url
                .into_client_request()
                .map_err(|e| failed(e.to_string()))?;
            if let Some(origin) = origin {
                let value = origin
                    .parse()
                    .map_err(|_| failed(format!("Origin {origin:?}")))?;
                request.headers_mut().insert("origin", value);
            }
            let (mut ws, response) = tokio_tungstenite::client_async(request, stream)
                .await
                .map_err(|e| failed(format!("handshake: {e}")))?;
            let mut received = Vec::new();
            for message in messages {
                ws.send(Message::text(*message))
                    .await
                    .map_err(|e| failed(format!("send: {e}")))?;
                match ws.next().await {
                    Some(Ok(Message::Text(text))) => received.push(text.to_string()),
                    Some(Ok(other)) => return Err(failed(format!("got {other:?}"))),
                    Some(Err(e)) => return Err(failed(format!("receive: {e}"))),
                    None => return Err(failed("the connection closed".to_owned())),
                }
            }
            // Best effort: the exchange is complete whatever the close gives.
            let _ = ws.close(None).await;
            Ok(WebSocketExchange {
                status: response.status().as_u16(),
                received,
            })
        };
        self.block_on("GET", path, exchange)
    }
}
