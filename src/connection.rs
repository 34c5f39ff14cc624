//! One WebSocket connection: the upgrade (authenticated, Origin-checked by the middleware) and
//! the loop that reads client frames, writes queued frames, pings, and obeys kicks and shutdown.
//!
//! The loop is a single `select!`, as in mini-redis: no second task per socket. An idle socket
//! costs about 6 KiB in all (its task ~1.2 KB, its read buffer, its hub queue); `load idle`
//! checks it. Every write has a deadline, so a client that stops reading blocks nothing but its
//! own connection, and only until the deadline.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::calls::Calls;
use crate::chat;
use crate::config::{Config, LiveConfig};
use crate::http::AuthUser;
use crate::hub::Hub;
use crate::protocol::{ClientFrame, HelloUser, ServerFrame, close};
use crate::store::Store;

pub const PING_EVERY: Duration = Duration::from_secs(15);
pub const DEAD_AFTER: Duration = Duration::from_secs(45);

/// What every socket needs besides the store and the hub.
#[derive(Clone)]
pub struct SocketCtx {
    pub config: LiveConfig,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    pub max_frame_bytes: usize,
    pub outbound_queue: usize,
    pub write_timeout: Duration,
    /// Pushes to users' closed devices (messages are handed to it after their commit).
    pub push: Arc<crate::push::Push>,
}

#[utoipa::path(get, path = "/api/ws", tag = "realtime",
    description = "Upgrades to the WebSocket described in docs/protocol.md. Authenticated by the session cookie or a Bearer token; a foreign Origin is refused with 403.",
    responses((status = 101, description = "switching protocols"), (status = 401, body = crate::http::error::ErrorBody), (status = 403, body = crate::http::error::ErrorBody)))]
pub async fn upgrade(
    ws: WebSocketUpgrade,
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(ctx): State<SocketCtx>,
    State(calls): State<Arc<Calls>>,
    slot: Option<axum::Extension<crate::server::ConnSlot>>,
) -> Response {
    let max = ctx.max_frame_bytes;
    // axum's upgrade task keeps the room its callback took for the socket's whole life, so the
    // callback holds one pointer.
    let setup = Box::new(Setup { auth, store, hub, ctx, calls, slot });
    // 2 KiB: idle sockets are the common case (frames larger than this are read in pieces).
    ws.read_buffer_size(2048).write_buffer_size(0).max_message_size(max).max_frame_size(max).on_upgrade(move |socket| setup.start(socket))
}

/// What a socket is opened with, between the upgrade request and the upgraded connection.
struct Setup {
    auth: AuthUser,
    store: Store,
    hub: Arc<Hub>,
    ctx: SocketCtx,
    calls: Arc<Calls>,
    slot: Option<axum::Extension<crate::server::ConnSlot>>,
}

impl Setup {
    /// Registers the socket with the hub and returns its task. Not `async`: an async fn keeps
    /// its arguments beside the locals made from them, and this future lives as long as the
    /// socket, so it holds only [`Socket`] and the loop's own state (about 1 KB in all; an
    /// idle connection's memory is mostly this, its read buffer and its hub queue).
    fn start(self: Box<Self>, socket: WebSocket) -> impl std::future::Future<Output = ()> + Send {
        let Setup { auth, store, hub, ctx, calls, slot } = *self;
        let user = auth.user.id;
        let hello = ServerFrame::Hello { user: HelloUser { id: user, username: auth.user.username, nickname: auth.user.nickname } };
        let hello = Utf8Bytes::from(hello.to_json());
        let reg = hub.register(user, auth.session, ctx.outbound_queue);
        let tracker = ctx.tracker.clone();
        let mut socket = Socket {
            conn: Conn { socket, write_timeout: ctx.write_timeout },
            user,
            conn_id: reg.id,
            outbound: reg.outbound,
            kick: reg.kick,
            _guard: reg.guard,
            // The socket holds its address's connection slot for as long as it is open.
            _slot: slot,
            store,
            hub,
            ctx,
            calls,
        };
        tracker.track_future(async move { socket.serve(hello).await })
    }
}

enum Flow {
    Continue,
    Close(u16, &'static str),
    Gone,
}

struct Conn {
    socket: WebSocket,
    write_timeout: Duration,
}

impl Conn {
    /// Writes one frame; a write that misses its deadline ends the connection.
    async fn send(&mut self, text: Utf8Bytes) -> bool {
        self.send_message(WsMessage::Text(text)).await
    }

    /// Boxed, so that the write's state lives on the heap only while a write is in progress,
    /// not in every idle connection's task.
    async fn send_message(&mut self, msg: WsMessage) -> bool {
        matches!(Box::pin(tokio::time::timeout(self.write_timeout, self.socket.send(msg))).await, Ok(Ok(())))
    }

    async fn send_frame(&mut self, frame: &ServerFrame) -> bool {
        self.send(frame.to_json().into()).await
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = WsMessage::Close(Some(CloseFrame { code, reason: reason.into() }));
        let _ = Box::pin(tokio::time::timeout(Duration::from_secs(1), self.socket.send(frame))).await;
    }
}

/// One open socket: what its task keeps for as long as it lives.
struct Socket {
    conn: Conn,
    user: crate::ids::UserId,
    conn_id: u64,
    outbound: tokio::sync::mpsc::Receiver<crate::hub::Frame>,
    kick: Arc<crate::hub::Kick>,
    _guard: crate::hub::ConnGuard,
    _slot: Option<axum::Extension<crate::server::ConnSlot>>,
    store: Store,
    hub: Arc<Hub>,
    ctx: SocketCtx,
    calls: Arc<Calls>,
}

impl Socket {
    async fn serve(&mut self, hello: Utf8Bytes) {
        if !self.conn.send(hello).await {
            return;
        }
        tracing::debug!(user = %self.user, conn = self.conn_id, "socket open");
        // A call that rings for this user rings on this device too.
        self.calls.connected(self.user, self.conn_id);
        let outcome = self.read_and_write().await;
        // Whatever ended the socket, its calls end for it.
        self.calls.disconnected(self.user, self.conn_id);
        if let Flow::Close(code, reason) = outcome {
            tracing::debug!(user = %self.user, conn = self.conn_id, code, "closing socket");
            self.conn.close(code, reason).await;
        }
    }

    /// The loop: reads client frames, writes queued frames and answers, pings, and obeys kicks
    /// and shutdown, until one of them ends the socket. No frame is held across an `.await`
    /// here (answers come as JSON text), so the loop's state stays small.
    async fn read_and_write(&mut self) -> Flow {
        let Socket { conn, user, conn_id, outbound, kick, store, hub, ctx, calls, .. } = self;
        let (user, conn_id) = (*user, *conn_id);
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let mut last_typing: Option<Instant> = None;
        let mut pending: Option<Box<Pending>> = None;
        loop {
            let flow = tokio::select! {
                () = ctx.shutdown.cancelled() => Flow::Close(close::GOING_AWAY, "server shutting down"),
                code = kick.kicked() => Flow::Close(code, if code == close::TOO_SLOW { "too slow; reconnect and sync" } else { "session ended" }),
                frame = outbound.recv() => match frame {
                    // A client that stops reading blocks this write until its deadline, while its
                    // queue fills up and the hub kicks it as too slow: it ends at that kick, since a
                    // close frame could not get past the data it does not read anyway. Other kicks
                    // (a revoked session) wait for the write, so that their close frame follows it.
                    Some(f) => tokio::select! {
                        biased;
                        sent = conn.send(Utf8Bytes::from(&*f)) => if sent { Flow::Continue } else { Flow::Gone },
                        () = async { if kick.kicked().await != close::TOO_SLOW { std::future::pending::<()>().await } } => Flow::Gone,
                    },
                    None => Flow::Gone,
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() > DEAD_AFTER {
                        Flow::Gone
                    } else if conn.send_message(WsMessage::Ping(axum::body::Bytes::new())).await {
                        Flow::Continue
                    } else {
                        Flow::Gone
                    }
                }
                Some(answer) = next_answer(&mut pending), if in_flight(pending.as_deref()) > 0 => match answer {
                    Some(text) => if conn.send(text.into()).await { Flow::Continue } else { Flow::Gone },
                    None => Flow::Continue,
                },
                incoming = conn.socket.recv(), if in_flight(pending.as_deref()) < MAX_PENDING => {
                    last_heard = Instant::now();
                    match incoming {
                        None | Some(Ok(WsMessage::Close(_))) => Flow::Gone,
                        Some(Err(e)) => read_error(&e),
                        Some(Ok(WsMessage::Text(t))) => Box::pin(handle_text(conn, t.as_str(), Ctx { user, conn_id, store, hub, config: &ctx.config.get(), calls, push: &ctx.push }, &mut last_typing, &mut pending)).await,
                        Some(Ok(WsMessage::Binary(_))) => {
                            let f = ServerFrame::error(None, "bad_frame", "Frames are JSON text.").to_json();
                            if conn.send(f.into()).await { Flow::Continue } else { Flow::Gone }
                        }
                        Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => Flow::Continue,
                    }
                }
            };
            match flow {
                Flow::Continue => {}
                other => return other,
            }
        }
    }
}

fn read_error(e: &axum::Error) -> Flow {
    let inner = std::error::Error::source(e).and_then(|s| s.downcast_ref::<tungstenite::Error>());
    match inner {
        Some(tungstenite::Error::Capacity(_)) => Flow::Close(close::TOO_BIG, "frame too big"),
        _ => Flow::Gone,
    }
}

/// What handling one frame needs.
struct Ctx<'a> {
    user: crate::ids::UserId,
    conn_id: u64,
    store: &'a Store,
    hub: &'a Arc<Hub>,
    config: &'a Arc<Config>,
    calls: &'a Calls,
    push: &'a Arc<crate::push::Push>,
}

/// Sends and read positions being stored for this socket, answered in the order they came.
/// While they wait for their commit the loop goes on delivering to this socket.
/// Made on the first write, so that idle sockets carry none of it.
#[derive(Default)]
struct Pending {
    queue: futures_util::stream::FuturesOrdered<std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send>>>,
    /// Fair, so one socket's writes take their turns in the order they came.
    order: Arc<tokio::sync::Mutex<()>>,
}

fn in_flight(p: Option<&Pending>) -> usize {
    p.map_or(0, |p| p.queue.len())
}

async fn next_answer(p: &mut Option<Box<Pending>>) -> Option<Option<String>> {
    match p {
        Some(p) => futures_util::StreamExt::next(&mut p.queue).await,
        None => std::future::pending().await,
    }
}

/// Writes in flight per socket; past this the socket is not read until one is answered.
const MAX_PENDING: usize = 64;

/// Typing frames closer together than this are ignored.
const TYPING_EVERY: Duration = Duration::from_secs(2);

async fn handle_text(
    conn: &mut Conn,
    text: &str,
    cx: Ctx<'_>,
    last_typing: &mut Option<Instant>,
    pending: &mut Option<Box<Pending>>,
) -> Flow {
    let Ctx { user, conn_id, store, hub, config, calls, push } = cx;
    let frame = match ClientFrame::decode(text) {
        Ok(f) => f,
        Err(f) => return if conn.send_frame(&f).await { Flow::Continue } else { Flow::Gone },
    };
    let ok = match frame {
        // Behind writes still in flight, the pong waits its turn: answers keep request order.
        ClientFrame::Ping if in_flight(pending.as_deref()) > 0 => {
            if let Some(p) = pending.as_mut() {
                p.queue.push_back(Box::pin(async { Some(ServerFrame::Pong.to_json()) }));
            }
            true
        }
        ClientFrame::Ping => conn.send_frame(&ServerFrame::Pong).await,
        ClientFrame::Send { client_id, conv, content, reply_to, mentions, mention_all } => {
            let out = chat::Outgoing { client_id, conv, content, reply_to, mentions, mention_all };
            let p = pending.get_or_insert_with(Box::default);
            let (store, hub, config, push, order) = (store.clone(), hub.clone(), config.clone(), push.clone(), p.order.clone());
            p.queue.push_back(Box::pin(async move {
                // One socket's messages take their sequence numbers in the order they were
                // sent, while other sockets' messages commit alongside.
                let _turn = order.lock().await;
                Some(chat::send(&store, &hub, &push, &config, user, conn_id, out).await.to_json())
            }));
            true
        }
        ClientFrame::Read { conv, seq } => {
            let p = pending.get_or_insert_with(Box::default);
            let (store, hub, config, order) = (store.clone(), hub.clone(), config.clone(), p.order.clone());
            p.queue.push_back(Box::pin(async move {
                let _turn = order.lock().await;
                chat::read(&store, &hub, &config, user, conv, seq).await.map(|f| f.to_json())
            }));
            true
        }
        ClientFrame::Visibility { visible } => {
            hub.set_visible(user, conn_id, visible);
            true
        }
        ClientFrame::Typing { conv } => {
            if last_typing.is_some_and(|t| t.elapsed() < TYPING_EVERY) {
                true
            } else {
                *last_typing = Some(Instant::now());
                match chat::typing(store, hub, config, user, conv).await {
                    Some(err) => conn.send_frame(&err).await,
                    None => true,
                }
            }
        }
        ClientFrame::Sync { cursors } => match chat::sync(store, user, &cursors).await {
            Ok(frames) => {
                let mut ok = true;
                for frame in frames {
                    if !conn.send_frame(&frame).await {
                        ok = false;
                        break;
                    }
                }
                ok
            }
            Err(e) => {
                tracing::error!(error = %e, "sync failed");
                conn.send_frame(&ServerFrame::error(None, "unavailable", "Sync failed; try again.")).await
            }
        },
        // Everything else is a call frame (call_invite, call_accept, ...).
        call => match calls.handle(user, conn_id, call).await {
            Some(err) => conn.send_frame(&err).await,
            None => true,
        },
    };
    if ok { Flow::Continue } else { Flow::Gone }
}
