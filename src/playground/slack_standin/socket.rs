//! The stand-in's Socket Mode side: `apps.connections.open` (answered in
//! [`super::web_api`] with the app-level token) hands out a one-use `ws://` URL on
//! loopback; a client that connects there gets Slack's `hello`, then the envelopes a
//! test sends (`slash_commands`, `interactive`, `events_api`), each answered by an ack
//! that carries the envelope's `envelope_id` and, where Slack allows one, a
//! `payload`. It closes connections as Slack does (a `disconnect` envelope with
//! `refresh_requested` or `warning`, after which nothing more is delivered on that
//! connection) and as a network does ([`SlackStandin::drop_connections`]: the TCP
//! connections go without a closing handshake).
//!
//! Like Slack, it delivers each envelope on one open connection (taking them in turn)
//! and, when that connection goes before the ack arrives, delivers it again on
//! another with `retry_attempt` counted up. Like Slack, it need not wait for one
//! envelope's ack before sending the next on the same connection
//! ([`SlackStandin::send_commands_together`]).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use super::{Shared, SlackStandin};

/// The app-level token the stand-in accepts unless told another.
pub const STANDIN_APP_TOKEN: &str = "xapp-1-A0JITBOT01-0000000001-standin";

/// The app the envelopes are for.
const APP_ID: &str = "A0JITBOT01";

/// How long a delivery waits for an open connection and then for its ack. Slack
/// wants the ack within 3 s; the stand-in waits longer so that a slow test build
/// fails on what jitbot answered, not on a timer.
const PATIENCE: Duration = Duration::from_secs(15);

/// How often one envelope is delivered when connections go before its ack.
const DELIVERIES: u32 = 4;

/// Why an envelope got no ack.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SocketError {
    #[error("no Socket Mode connection was open to deliver the envelope on")]
    NoConnection,
    #[error("the envelope was not acked in time")]
    NotAcked,
    #[error("every connection the envelope went to closed before acking it")]
    Closed,
}

/// What comes back for an envelope: its ack's payload, or nothing for a bare ack.
pub type Acked = Result<Option<Value>, SocketError>;

enum Outgoing {
    Text(String),
    /// Go without a closing handshake (a network failure).
    Drop,
}

struct Connection {
    send: mpsc::UnboundedSender<Outgoing>,
    /// A `disconnect` went out: nothing more is delivered here.
    closing: bool,
}

/// An envelope out on a connection, waiting for its ack.
struct Waiting {
    connection: u64,
    ack: oneshot::Sender<Option<Value>>,
}

#[derive(Default)]
struct State {
    tickets: HashMap<String, ()>,
    next_ticket: u64,
    connections: HashMap<u64, Connection>,
    next_connection: u64,
    /// Which connection the next envelope goes to (in turn).
    turn: u64,
    next_envelope: u64,
    waiting: HashMap<String, Waiting>,
}

/// The Socket Mode side of the stand-in.
pub(super) struct Hub {
    /// `ws://127.0.0.1:port`
    base: String,
    pub(super) app_token: String,
    state: Mutex<State>,
}

impl Hub {
    /// Binds the WebSocket listener on loopback.
    pub(super) async fn bind(app_token: String) -> std::io::Result<(Hub, TcpListener)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("ws://{}", listener.local_addr()?);
        let hub = Hub {
            base,
            app_token,
            state: Mutex::default(),
        };
        Ok((hub, listener))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `apps.connections.open`: a URL with a ticket good for one connection.
    pub(super) fn open(&self) -> String {
        let mut s = self.lock();
        s.next_ticket += 1;
        let ticket = format!("standin-{:08x}", s.next_ticket);
        s.tickets.insert(ticket.clone(), ());
        format!("{}/link/?ticket={ticket}&app_id={APP_ID}", self.base)
    }

    /// Takes the ticket of a connection's URL; `false` if it was never given out or
    /// was used already.
    fn redeem(&self, uri: &str) -> bool {
        let ticket = uri
            .split_once("ticket=")
            .map(|(_, rest)| rest.split('&').next().unwrap_or(""))
            .unwrap_or("");
        self.lock().tickets.remove(ticket).is_some()
    }
}

/// Accepts connections until the stand-in stops.
pub(super) async fn serve(listener: TcpListener, shared: Weak<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, say: let the ones in use go first.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move { connection(stream, shared).await });
    }
}

/// One client connection: the handshake (with a valid ticket), `hello`, then
/// envelopes out and acks in until either side closes it.
async fn connection(stream: TcpStream, shared: Weak<Shared>) {
    let Some(hub_owner) = shared.upgrade() else {
        return;
    };
    // The shape tungstenite's handshake callback must have.
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let uri = request.uri().to_string();
        if hub_owner.socket.redeem(&uri) {
            Ok(response)
        } else {
            let mut refused = ErrorResponse::new(Some("invalid or used ticket".to_owned()));
            *refused.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::UNAUTHORIZED;
            Err(refused)
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, check).await else {
        return;
    };
    let (send, mut outgoing) = mpsc::unbounded_channel();
    let (id, open) = {
        let mut s = hub_owner.socket.lock();
        s.next_connection += 1;
        let id = s.next_connection;
        s.connections.insert(
            id,
            Connection {
                send,
                closing: false,
            },
        );
        (id, s.connections.len())
    };
    let hello = json!({
        "type": "hello",
        "num_connections": open,
        "debug_info": {
            "host": "applink-standin",
            "build_number": 1,
            "approximate_connection_time": 18060,
        },
        "connection_info": { "app_id": APP_ID },
    });
    if ws.send(Message::text(hello.to_string())).await.is_err() {
        forget(&hub_owner, id);
        return;
    }
    hub_owner.change(|_| ());
    drop(hub_owner);
    loop {
        tokio::select! {
            out = outgoing.recv() => match out {
                Some(Outgoing::Text(text)) => {
                    if ws.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                // Dropping the stream closes the TCP connection without a close frame.
                Some(Outgoing::Drop) | None => break,
            },
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let Some(shared) = shared.upgrade() else { break };
                    acked(&shared, text.as_str());
                }
                // Pings are answered by the WebSocket layer itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Binary(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
        }
    }
    if let Some(shared) = shared.upgrade() {
        forget(&shared, id);
    }
}

/// An ack arrived: `{"envelope_id": …, "payload": …}`.
fn acked(shared: &Shared, text: &str) {
    let Ok(ack) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let Some(envelope) = ack["envelope_id"].as_str() else {
        return;
    };
    let waiting = shared.socket.lock().waiting.remove(envelope);
    if let Some(w) = waiting {
        let payload = ack.get("payload").filter(|p| !p.is_null()).cloned();
        let _ = w.ack.send(payload);
    }
}

/// A connection is gone: envelopes out on it will not be acked there.
fn forget(shared: &Shared, id: u64) {
    {
        let mut s = shared.socket.lock();
        s.connections.remove(&id);
        s.waiting.retain(|_, w| w.connection != id);
    }
    shared.change(|_| ());
}

impl SlackStandin {
    /// The app-level token `apps.connections.open` accepts.
    pub fn app_token(&self) -> String {
        self.shared.socket.app_token.clone()
    }

    /// Open Socket Mode connections that envelopes may be delivered on.
    pub fn connections(&self) -> usize {
        let s = self.shared.socket.lock();
        s.connections.values().filter(|c| !c.closing).count()
    }

    /// Delivers a slash command (its payload: [`SlashCommand::payload`]) and returns
    /// its ack's payload. Like Slack, shows the ack's text to the person who typed it.
    ///
    /// [`SlashCommand::payload`]: crate::adapters::http::slack_request::SlashCommand::payload
    pub async fn send_command(&self, payload: Value) -> Acked {
        let typed = self.typed(&payload);
        let acked = self.deliver("slash_commands", payload.clone(), true).await;
        self.show_answer(&payload, &typed, &acked);
        acked
    }

    /// Delivers slash commands back to back on one connection, each without waiting
    /// for the ack of the one before (as Slack does when commands come faster than
    /// the acks), and returns each ack's payload with how long it came after its
    /// envelope went out. They are not delivered again: a connection that goes before
    /// acking one leaves it [`SocketError::Closed`].
    pub async fn send_commands_together(&self, payloads: Vec<Value>) -> Vec<(Acked, Duration)> {
        let typed: Vec<String> = payloads.iter().map(|p| self.typed(p)).collect();
        let envelopes: Vec<(String, String)> = payloads
            .iter()
            .map(|payload| {
                let envelope_id = self.next_envelope_id();
                let envelope = json!({
                    "envelope_id": envelope_id,
                    "type": "slash_commands",
                    "payload": payload,
                    "accepts_response_payload": true,
                });
                (envelope_id, envelope.to_string())
            })
            .collect();
        let Some(acks) = self.send_envelopes(&envelopes).await else {
            let none = || (Err(SocketError::NoConnection), Duration::ZERO);
            return payloads.iter().map(|_| none()).collect();
        };
        let sent = Instant::now();
        let waits = acks
            .into_iter()
            .zip(&envelopes)
            .map(|(ack, (envelope_id, _))| async move {
                let acked = match tokio::time::timeout(PATIENCE, ack).await {
                    Ok(Ok(payload)) => Ok(payload),
                    Ok(Err(_)) => Err(SocketError::Closed),
                    Err(_) => {
                        self.shared.socket.lock().waiting.remove(envelope_id);
                        Err(SocketError::NotAcked)
                    }
                };
                (acked, sent.elapsed())
            });
        let acked = futures_util::future::join_all(waits).await;
        for ((payload, typed), (ack, _)) in payloads.iter().zip(&typed).zip(&acked) {
            self.show_answer(payload, typed, ack);
        }
        acked
    }

    /// What the person typed for a command's payload; makes its trigger valid.
    fn typed(&self, payload: &Value) -> String {
        let user = payload["user_id"].as_str().unwrap_or("");
        if let Some(trigger) = payload["trigger_id"].as_str() {
            self.trigger_from(trigger, user);
        }
        format!(
            "{} {}",
            payload["command"].as_str().unwrap_or(""),
            payload["text"].as_str().unwrap_or("")
        )
    }

    /// Like Slack, shows a command's ack to the person who typed it.
    fn show_answer(&self, payload: &Value, typed: &str, acked: &Acked) {
        let user = payload["user_id"].as_str().unwrap_or("");
        if let Ok(Some(answer)) = acked
            && let Some(text) = answer["text"].as_str()
        {
            let blocks = answer.get("blocks").cloned().unwrap_or(Value::Null);
            self.show_ephemeral_blocks(user, Some(typed.trim()), text, blocks);
        }
    }

    /// Delivers an interaction (a click, a submission, a suggestion request: its
    /// `payload` as Slack sends it) and returns its ack's payload. As in Slack, only a
    /// `view_submission` or a `block_suggestion` may carry one.
    pub async fn send_interaction(&self, payload: Value) -> Acked {
        let kind = payload["type"].as_str().unwrap_or("");
        let accepts = matches!(kind, "view_submission" | "block_suggestion");
        if let (Some(trigger), Some(user)) = (
            payload["trigger_id"].as_str(),
            payload["user"]["id"].as_str(),
        ) {
            self.trigger_from(trigger, user);
        }
        self.deliver("interactive", payload, accepts).await
    }

    /// Delivers an Events API event (an `event_callback` as Slack posts it over HTTP)
    /// and returns its ack's payload (events carry none: `Ok(None)` once acked).
    pub async fn send_event(&self, payload: Value) -> Acked {
        self.deliver("events_api", payload, false).await
    }

    /// Sends `disconnect` with `refresh_requested` on every connection, as Slack
    /// does before it closes a connection it wants replaced.
    pub fn disconnect_all(&self) {
        self.disconnect_all_because("refresh_requested");
    }

    /// The same with another reason (`warning`: Slack will close it in a few seconds).
    pub fn disconnect_all_because(&self, reason: &str) {
        let message = json!({
            "type": "disconnect",
            "reason": reason,
            "debug_info": { "host": "applink-standin" },
        })
        .to_string();
        {
            let mut s = self.shared.socket.lock();
            for c in s.connections.values_mut() {
                c.closing = true;
                let _ = c.send.send(Outgoing::Text(message.clone()));
            }
        }
        self.shared.change(|_| ());
    }

    /// Breaks every connection as a network failure does: no `disconnect`, no close
    /// frame; envelopes not acked yet go out again on the next connection.
    pub fn drop_connections(&self) {
        {
            let mut s = self.shared.socket.lock();
            for (_, c) in s.connections.drain() {
                let _ = c.send.send(Outgoing::Drop);
            }
            s.waiting.clear();
        }
        self.shared.change(|_| ());
    }

    /// Delivers one envelope, again on another connection while they close before
    /// acking it, and waits for the ack.
    async fn deliver(&self, kind: &str, payload: Value, accepts_response_payload: bool) -> Acked {
        let envelope_id = self.next_envelope_id();
        let mut outcome = Err(SocketError::NoConnection);
        for attempt in 0..DELIVERIES {
            let mut envelope = json!({
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": accepts_response_payload,
            });
            if kind == "events_api" {
                envelope["retry_attempt"] = json!(attempt);
                envelope["retry_reason"] = json!(if attempt == 0 { "" } else { "timeout" });
            }
            let Some(ack) = self.send_envelope(&envelope_id, envelope.to_string()).await else {
                return Err(SocketError::NoConnection);
            };
            match tokio::time::timeout(PATIENCE, ack).await {
                Ok(Ok(payload)) => return Ok(payload),
                // The connection went before the ack: Slack delivers it again.
                Ok(Err(_)) => outcome = Err(SocketError::Closed),
                Err(_) => {
                    self.shared.socket.lock().waiting.remove(&envelope_id);
                    return Err(SocketError::NotAcked);
                }
            }
        }
        outcome
    }

    fn next_envelope_id(&self) -> String {
        let mut s = self.shared.socket.lock();
        s.next_envelope += 1;
        format!("e{:08x}-standin", s.next_envelope)
    }

    /// Puts an envelope on the next open connection (waiting for one to open) and
    /// returns where its ack will arrive.
    async fn send_envelope(
        &self,
        envelope_id: &str,
        text: String,
    ) -> Option<oneshot::Receiver<Option<Value>>> {
        let envelopes = [(envelope_id.to_owned(), text)];
        self.send_envelopes(&envelopes).await?.pop()
    }

    /// Puts `(envelope_id, text)` envelopes, in order, on the next open connection
    /// (waiting for one to open) and returns where their acks will arrive.
    async fn send_envelopes(
        &self,
        envelopes: &[(String, String)],
    ) -> Option<Vec<oneshot::Receiver<Option<Value>>>> {
        // `wait_until` takes a `Fn`: the receiver leaves through a lock.
        let chosen = Mutex::new(None);
        let sent = self
            .wait_until(PATIENCE, |s| {
                let mut state = s.shared.socket.lock();
                let mut open: Vec<u64> = state
                    .connections
                    .iter()
                    .filter(|(_, c)| !c.closing)
                    .map(|(id, _)| *id)
                    .collect();
                if open.is_empty() {
                    return false;
                }
                open.sort_unstable();
                state.turn += 1;
                let id = open[(state.turn as usize) % open.len()];
                let mut acks = Vec::with_capacity(envelopes.len());
                for (envelope_id, text) in envelopes {
                    let (tx, rx) = oneshot::channel();
                    state.waiting.insert(
                        envelope_id.clone(),
                        Waiting {
                            connection: id,
                            ack: tx,
                        },
                    );
                    if state.connections[&id]
                        .send
                        .send(Outgoing::Text(text.clone()))
                        .is_err()
                    {
                        for (envelope_id, _) in envelopes {
                            state.waiting.remove(envelope_id);
                        }
                        return false;
                    }
                    acks.push(rx);
                }
                *chosen.lock().unwrap_or_else(|p| p.into_inner()) = Some(acks);
                true
            })
            .await;
        if !sent {
            return None;
        }
        chosen.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}
