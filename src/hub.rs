//! Who is connected: every user's live sockets, and fan-out to them.
//!
//! Architecture invariants:
//! - Each connection has a bounded outbound queue. Delivery never waits: a full queue means the
//!   client fell behind, so it is told to go (close 4008) and resyncs on reconnect. A slow reader
//!   therefore costs at most one full queue of memory.
//! - An entry is removed by its [`ConnGuard`]'s `Drop`, so a connection that ends in any way
//!   leaves no trace.
//! - The lock is a plain `RwLock` held for map lookups only, never across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ids::UserId;
use crate::store::sessions::TokenHash;

/// A frame serialized once and shared by every recipient.
pub type Frame = Arc<str>;

/// Tells a connection to close, and with which code.
#[derive(Debug, Default)]
pub struct Kick {
    token: CancellationToken,
    code: AtomicU16,
}

impl Kick {
    pub fn kick(&self, code: u16) {
        // The first reason wins: a revoked session stays "revoked" even if it also lagged.
        let _ = self.code.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.token.cancel();
    }
    pub async fn kicked(&self) -> u16 {
        self.token.cancelled().await;
        self.code.load(Ordering::Acquire)
    }
}

struct Conn {
    id: u64,
    session: TokenHash,
    /// Whether the client said it is on screen (`visibility` frames); true until it says not.
    visible: AtomicBool,
    tx: mpsc::Sender<Frame>,
    kick: Arc<Kick>,
}

/// A user's first device connected (`true`) or last device disconnected (`false`).
pub type PresenceChange = (UserId, bool);

#[derive(Default)]
pub struct Hub {
    users: RwLock<HashMap<UserId, Vec<Conn>>>,
    /// Where presence changes go; a full channel drops them (presence is best-effort).
    presence: Option<mpsc::Sender<PresenceChange>>,
    next_id: AtomicU64,
    /// Connections currently registered.
    pub connections: AtomicU64,
    /// Connections closed because their queue was full.
    pub dropped_slow: AtomicU64,
    /// Where changes of who may write to a conversation go (the calls feature cuts off people
    /// who may no longer take part in its call).
    access: std::sync::OnceLock<mpsc::Sender<crate::ids::ConvId>>,
}

/// Removes its connection from the hub when dropped.
pub struct ConnGuard {
    hub: Arc<Hub>,
    user: UserId,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut users = self.hub.users.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut last = false;
        if let Some(conns) = users.get_mut(&self.user) {
            conns.retain(|c| c.id != self.id);
            if conns.is_empty() {
                users.remove(&self.user);
                last = true;
            }
        }
        drop(users);
        self.hub.connections.fetch_sub(1, Ordering::Relaxed);
        if last {
            self.hub.presence_changed(self.user, false);
        }
    }
}

/// What a new connection gets from [`Hub::register`].
pub struct Registration {
    pub guard: ConnGuard,
    pub id: u64,
    pub outbound: mpsc::Receiver<Frame>,
    pub kick: Arc<Kick>,
}

impl Hub {
    pub fn with_presence(tx: mpsc::Sender<PresenceChange>) -> Hub {
        Hub { presence: Some(tx), ..Hub::default() }
    }

    /// Sends changes of who may write to a conversation to `tx` (once; later calls are ignored).
    pub fn watch_access(&self, tx: mpsc::Sender<crate::ids::ConvId>) {
        let _ = self.access.set(tx);
    }

    /// Who may write to `conv` may have changed (a member removed or muted, a group disabled
    /// or dissolved, a block). Best effort, never blocks: a full channel drops the note.
    pub fn access_changed(&self, conv: crate::ids::ConvId) {
        if let Some(tx) = self.access.get()
            && tx.try_send(conv).is_err()
        {
            tracing::warn!(%conv, "access change not passed on: the calls feature is behind");
        }
    }

    fn presence_changed(&self, user: UserId, online: bool) {
        if let Some(tx) = &self.presence {
            // Best effort: under a connection storm, presence updates may be skipped.
            let _ = tx.try_send((user, online));
        }
    }

    pub fn register(self: &Arc<Self>, user: UserId, session: TokenHash, queue: usize) -> Registration {
        let (tx, outbound) = mpsc::channel(queue);
        let kick = Arc::new(Kick::default());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let first = {
            let mut users = self.write_lock();
            let conns = users.entry(user).or_default();
            conns.push(Conn { id, session, visible: AtomicBool::new(true), tx, kick: kick.clone() });
            conns.len() == 1
        };
        self.connections.fetch_add(1, Ordering::Relaxed);
        if first {
            self.presence_changed(user, true);
        }
        Registration { guard: ConnGuard { hub: self.clone(), user, id }, id, outbound, kick }
    }

    fn write_lock(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<UserId, Vec<Conn>>> {
        self.users.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read_lock(&self) -> std::sync::RwLockReadGuard<'_, HashMap<UserId, Vec<Conn>>> {
        self.users.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `frame` for every connection of `users`, except connection `skip`.
    pub fn deliver(&self, users: &[UserId], frame: &Frame, skip: Option<u64>) {
        let map = self.read_lock();
        for user in users {
            for conn in map.get(user).into_iter().flatten() {
                if Some(conn.id) == skip {
                    continue;
                }
                match conn.tx.try_send(frame.clone()) {
                    // Queued; or the connection is ending, and its guard removes it.
                    Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        if !conn.kick.token.is_cancelled() {
                            self.dropped_slow.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(user = %user, conn = conn.id, "connection fell behind; closing it");
                        }
                        conn.kick.kick(crate::protocol::close::TOO_SLOW);
                    }
                }
            }
        }
    }

    /// Serializes `frame` once and queues it for every connection of `users`.
    pub fn send(&self, users: &[UserId], frame: &crate::protocol::ServerFrame) {
        let f: Frame = Arc::from(frame.to_json());
        self.deliver(users, &f, None);
    }

    /// Queues `frame` for one connection of `user` only (call signalling goes to the one device
    /// in the call); false when that connection is gone or fell behind.
    pub fn send_to_conn(&self, user: UserId, conn: u64, frame: &crate::protocol::ServerFrame) -> bool {
        let f: Frame = Arc::from(frame.to_json());
        let map = self.read_lock();
        let Some(c) = map.get(&user).into_iter().flatten().find(|c| c.id == conn) else { return false };
        match c.tx.try_send(f) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !c.kick.token.is_cancelled() {
                    self.dropped_slow.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(user = %user, conn = c.id, "connection fell behind; closing it");
                }
                c.kick.kick(crate::protocol::close::TOO_SLOW);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Records whether connection `conn` of `user` is on screen.
    pub fn set_visible(&self, user: UserId, conn: u64, visible: bool) {
        if let Some(c) = self.read_lock().get(&user).into_iter().flatten().find(|c| c.id == conn) {
            c.visible.store(visible, Ordering::Relaxed);
        }
    }

    /// The sessions (devices) of `user` with a connection on screen: they get no push.
    pub fn visible_sessions(&self, user: UserId) -> Vec<TokenHash> {
        self.read_lock().get(&user).into_iter().flatten().filter(|c| c.visible.load(Ordering::Relaxed)).map(|c| c.session).collect()
    }

    /// Closes the connections opened with any of these sessions.
    pub fn close_sessions(&self, sessions: &[TokenHash], code: u16) {
        for conn in self.read_lock().values().flatten() {
            if sessions.contains(&conn.session) {
                conn.kick.kick(code);
            }
        }
    }

    /// Closes every connection of `user`.
    pub fn close_user(&self, user: UserId, code: u16) {
        for conn in self.read_lock().get(&user).into_iter().flatten() {
            conn.kick.kick(code);
        }
    }

    /// Users with at least one connection.
    pub fn online_users(&self) -> usize {
        self.read_lock().len()
    }

    pub fn is_online(&self, user: UserId) -> bool {
        self.read_lock().contains_key(&user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_kicks_only_that_connection() {
        let hub = Arc::new(Hub::default());
        let mut slow = hub.register(UserId(1), [1; 32], 2);
        let mut fast = hub.register(UserId(1), [2; 32], 2);
        let f: Frame = Arc::from("x");
        for _ in 0..3 {
            hub.deliver(&[UserId(1)], &f, None);
            assert_eq!(fast.outbound.recv().await.as_deref(), Some("x"));
        }
        assert_eq!(slow.kick.kicked().await, crate::protocol::close::TOO_SLOW);
        assert!(!fast.kick.token.is_cancelled());
        assert_eq!(hub.dropped_slow.load(Ordering::Relaxed), 1);
        while slow.outbound.try_recv().is_ok() {}
    }

    #[tokio::test]
    async fn guards_unregister_and_sessions_close_selectively() {
        let hub = Arc::new(Hub::default());
        let a = hub.register(UserId(1), [1; 32], 4);
        let b = hub.register(UserId(1), [2; 32], 4);
        hub.close_sessions(&[[1; 32]], 4001);
        assert_eq!(a.kick.kicked().await, 4001);
        assert!(!b.kick.token.is_cancelled());
        drop(a);
        assert!(hub.is_online(UserId(1)));
        drop(b);
        assert!(!hub.is_online(UserId(1)));
        assert_eq!(hub.connections.load(Ordering::Relaxed), 0);
    }
}
