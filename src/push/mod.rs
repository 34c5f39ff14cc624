//! Web Push: reaching devices whose app is closed, straight from this server to each browser's
//! push service (RFC 8030), encrypted to the device (RFC 8291, `aes128gcm`) and signed with the
//! server's VAPID key (RFC 8292). No vendor account, no relay.
//!
//! Architecture invariants:
//! - Off the message path: features call [`Push::message`] and friends, which only `try_send`
//!   into a bounded queue (a full queue drops the push and counts it); a dispatcher runs at most
//!   `push.workers` deliveries at once. A slow or dead push service never delays chat.
//! - Every request goes through [`crate::outbound`]: https only (unless `push.allow_http`), public
//!   addresses only (unless `push.endpoint_allow`), the checked address connected to, no redirects.
//! - A device gets no push while one of its sockets says it is visible (`visibility` frames).
//! - What a push may carry is decided by [`rules`] from the user's preferences.

pub mod routes;
pub mod rules;
pub mod vapid;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::address::AddressPolicy;
use crate::config::Config;
use crate::hub::Hub;
use crate::ids::{ConvId, UserId};
use crate::outbound::{Outbound, OutboundError};
use crate::protocol::{Content, Message};
use crate::store::push::{PushRecipient, PushSubscription};
use crate::store::{Store, StoreError, now_ms};

/// Tries per delivery: the first and two retries.
const ATTEMPTS: u32 = 3;
/// Longest wait a `Retry-After` may ask for before a retry.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);
/// Bytes of a push service's answer that are read.
const MAX_ANSWER: usize = 16 * 1024;
/// How long a message push waits at the push service for a device that is off.
const MESSAGE_TTL: u64 = 24 * 3600;
/// How long a call push waits: after that the call has stopped ringing anyway.
const CALL_TTL: u64 = 60;
/// How long one signed VAPID token is reused (it is valid for `vapid::TOKEN_SECS`).
const TOKEN_REUSE_SECS: u64 = 3600;

/// What one push is about, for one user.
#[derive(Debug)]
enum Job {
    Message {
        user: UserId,
        message: Arc<MessageEvent>,
    },
    Call {
        user: UserId,
        call: String,
        conv: ConvId,
        video: bool,
        caller: UserId,
    },
    CallEnd {
        user: UserId,
        call: String,
        conv: ConvId,
    },
    Request {
        user: UserId,
        from: UserId,
    },
    /// A message was recalled: its notification goes (the push service replaces an undelivered
    /// message push of the same chat, which shares the topic).
    Recall {
        user: UserId,
        conv: ConvId,
        seq: u64,
    },
}

/// A committed message, shared by the pushes to all its recipients: the names it shows are read
/// once, by the first of them.
#[derive(Debug)]
struct MessageEvent {
    message: Message,
    /// The sender's name and, in a group, the group's.
    names: tokio::sync::OnceCell<(String, Option<String>)>,
}

impl Job {
    /// The conversation whose unread counts the push carries.
    fn conv(&self) -> Option<ConvId> {
        match self {
            Job::Message { message, .. } => Some(message.message.conv),
            _ => None,
        }
    }

    fn user(&self) -> UserId {
        match self {
            Job::Message { user, .. }
            | Job::Call { user, .. }
            | Job::CallEnd { user, .. }
            | Job::Request { user, .. }
            | Job::Recall { user, .. } => *user,
        }
    }
}

/// Counters for `/metrics` (`chinwag_push_*`).
#[derive(Debug)]
pub struct PushStats {
    /// Events handled (whether or not they led to a push).
    pub considered: AtomicU64,
    /// Pushes a push service accepted.
    pub sent: AtomicU64,
    /// Pushes given up on (refused endpoint, error answers, retries spent).
    pub failed: AtomicU64,
    /// Pushes dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Subscriptions removed because their push service said they are gone (404, 410).
    pub gone: AtomicU64,
    /// Seconds from the event to the push service's answer.
    pub latency: Histogram,
}

impl Default for PushStats {
    fn default() -> Self {
        PushStats {
            considered: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            gone: AtomicU64::new(0),
            latency: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        }
    }
}

/// The push service of this server.
pub struct Push {
    store: Store,
    hub: Arc<Hub>,
    outbound: Outbound,
    vapid: vapid::Vapid,
    subject: String,
    enabled: bool,
    jobs: mpsc::Sender<(Job, Instant)>,
    /// Users with at least one subscription: the rest are skipped without a lookup.
    subscribers: RwLock<HashSet<UserId>>,
    /// Calls that were pushed, with whom, so that their end withdraws the notification.
    rung: Mutex<HashMap<String, (ConvId, Vec<UserId>)>>,
    /// The VAPID header per push service origin, with when it was signed (seconds): one
    /// signature serves many pushes, as RFC 8292 allows, until it is an hour old.
    tokens: Mutex<HashMap<String, (String, u64)>>,
    /// One encryption at a time (see `deliver`).
    crypto: Semaphore,
    pub stats: PushStats,
}

impl Push {
    /// Loads the VAPID key (made on first start) and the subscribers, and starts the dispatcher.
    pub async fn start(config: &Config, store: Store, hub: Arc<Hub>, shutdown: CancellationToken) -> anyhow::Result<Arc<Push>> {
        let p = &config.push;
        let vapid = vapid::Vapid::new(&store.vapid_key().await?).map_err(anyhow::Error::msg)?;
        let policy = AddressPolicy::parse("push.endpoint_allow", &p.endpoint_allow).map_err(anyhow::Error::msg)?;
        let outbound = Outbound::new(policy, p.allow_http, Duration::from_secs(p.timeout_secs));
        let subscribers = store.push_subscribers().await?.into_iter().collect();
        let (tx, rx) = mpsc::channel(p.queue);
        let push = Arc::new(Push {
            store,
            hub,
            outbound,
            vapid,
            subject: p.subject.clone(),
            enabled: p.enabled,
            jobs: tx,
            subscribers: RwLock::new(subscribers),
            rung: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            crypto: Semaphore::new(1),
            stats: PushStats::default(),
        });
        tokio::spawn(dispatch(Arc::downgrade(&push), rx, p.workers, shutdown));
        Ok(push)
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The server's public key for `applicationServerKey`.
    pub fn public_key(&self) -> &str {
        &self.vapid.public_key
    }

    pub(crate) fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    pub(crate) fn subscribed(&self, user: UserId) {
        self.subscribers.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(user);
    }

    fn has_subscription(&self, user: UserId) -> bool {
        self.enabled && self.subscribers.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&user)
    }

    /// The `Authorization` header for a push service at `origin`, signed at most an hour ago.
    fn authorization(&self, origin: &str) -> String {
        let now = now_ms() / 1000;
        let mut tokens = self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((header, at)) = tokens.get(origin)
            && now.saturating_sub(*at) < TOKEN_REUSE_SECS
        {
            return header.clone();
        }
        if tokens.len() > 1000 {
            tokens.clear();
        }
        let header = self.vapid.authorization(origin, &self.subject, now);
        tokens.insert(origin.to_owned(), (header.clone(), now));
        header
    }

    fn enqueue(&self, job: Job) {
        if self.jobs.try_send((job, Instant::now())).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A message was committed: everyone in `recipients` but its sender may get a push.
    /// Never blocks (it runs on the store's completer thread).
    pub fn message(&self, recipients: &[UserId], m: &Message) {
        if matches!(m.content, Content::System { .. }) {
            return;
        }
        if !self.enabled {
            return;
        }
        let wanted: Vec<UserId> = {
            let subscribers = self.subscribers.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            recipients.iter().copied().filter(|u| *u != m.sender && subscribers.contains(u)).collect()
        };
        if wanted.is_empty() {
            return;
        }
        let message = Arc::new(MessageEvent { message: m.clone(), names: tokio::sync::OnceCell::new() });
        for user in wanted {
            self.enqueue(Job::Message { user, message: message.clone() });
        }
    }

    /// `users` are being rung for `call`.
    pub fn call(&self, users: &[UserId], call: &str, conv: ConvId, video: bool, caller: UserId) {
        let users: Vec<UserId> = users.iter().copied().filter(|u| self.has_subscription(*u)).collect();
        if users.is_empty() {
            return;
        }
        self.rung.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(call.to_owned(), (conv, users.clone()));
        for user in users {
            self.enqueue(Job::Call { user, call: call.to_owned(), conv, video, caller });
        }
    }

    /// `call` ended: withdraw its notification wherever it was pushed.
    pub fn call_ended(&self, call: &str) {
        let rung = self.rung.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(call);
        if let Some((conv, users)) = rung {
            for user in users {
                self.enqueue(Job::CallEnd { user, call: call.to_owned(), conv });
            }
        }
    }

    /// Message `seq` of `conv` was recalled: the devices of `recipients` that may show its
    /// notification (everyone with a subscription but `by`) are told to take it down.
    pub fn recalled(&self, recipients: &[UserId], by: UserId, conv: ConvId, seq: u64) {
        if !self.enabled {
            return;
        }
        for user in recipients.iter().copied().filter(|u| *u != by && self.has_subscription(*u)) {
            self.enqueue(Job::Recall { user, conv, seq });
        }
    }

    /// `from` sent `to` a contact request.
    pub fn contact_request(&self, to: UserId, from: UserId) {
        if self.has_subscription(to) {
            self.enqueue(Job::Request { user: to, from });
        }
    }

    async fn handle(&self, job: Job, queued: Instant) -> Result<(), StoreError> {
        let user = job.user();
        let recipient = self.store.push_recipient(user, job.conv()).await?;
        if recipient.subscriptions.is_empty() {
            self.subscribers.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&user);
            return Ok(());
        }
        let visible = self.hub.visible_sessions(user);
        let targets: Vec<&PushSubscription> =
            recipient.subscriptions.iter().filter(|(s, _)| !visible.contains(s)).map(|(_, sub)| sub).collect();
        if targets.is_empty() {
            return Ok(());
        }
        let Some(out) = self.payload(user, &recipient, job).await? else { return Ok(()) };
        for sub in targets {
            self.deliver(user, sub, &out, queued).await?;
        }
        Ok(())
    }

    /// The sender's name and the group's, read once per message.
    async fn names(&self, event: &MessageEvent) -> Result<(String, Option<String>), StoreError> {
        let m = &event.message;
        let names = event
            .names
            .get_or_try_init(|| async {
                let sender = self.store.user(m.sender).await?.map_or_else(String::new, |u| u.nickname);
                let group = match m.conv {
                    ConvId::Group(g) => self.store.group(g).await?.map(|s| s.group.name.clone()),
                    ConvId::Direct(..) => None,
                };
                Ok::<_, StoreError>((sender, group))
            })
            .await?;
        Ok(names.clone())
    }

    /// What to send for `job`, or nothing when the user's preferences say no.
    async fn payload(&self, user: UserId, recipient: &PushRecipient, job: Job) -> Result<Option<Outgoing>, StoreError> {
        let prefs = &recipient.prefs;
        let now = now_ms();
        let name = |u: Option<crate::store::UserRecord>| u.map_or_else(String::new, |u| u.nickname);
        Ok(Some(match job {
            Job::Message { message: event, .. } => {
                // Not in the conversation any more (left, removed): no push.
                let Some(place) = recipient.place else { return Ok(None) };
                let m = &event.message;
                let mentioned = m.mention_all || m.mentions.contains(&user);
                if !rules::wants_message(prefs, place.muted, mentioned, now) {
                    return Ok(None);
                }
                let (sender_name, group_name) = self.names(&event).await?;
                let facts = rules::MessageFacts {
                    conv: m.conv.to_string(),
                    seq: m.seq,
                    sender_name: &sender_name,
                    group_name: group_name.as_deref(),
                    text: &m.content.preview(),
                    mention: mentioned,
                    unread: place.unread,
                    total_unread: place.total_unread,
                };
                Outgoing {
                    body: rules::message_payload(prefs.preview, &facts),
                    urgent: false,
                    ttl: MESSAGE_TTL,
                    topic: Some(topic(m.conv)),
                }
            }
            Job::Call { call, conv, video, caller, .. } => {
                if !rules::wants_other(prefs, now) {
                    return Ok(None);
                }
                let caller_name = name(self.store.user(caller).await?);
                let body = rules::call_payload(prefs.preview, &call, &conv.to_string(), video, &caller_name);
                Outgoing { body, urgent: true, ttl: CALL_TTL, topic: None }
            }
            Job::CallEnd { call, conv, .. } => Outgoing {
                body: serde_json::json!({"type":"call_end","call":call,"conv":conv.to_string()}),
                urgent: true,
                ttl: CALL_TTL,
                topic: None,
            },
            Job::Recall { conv, seq, .. } => Outgoing {
                body: serde_json::json!({"type":"recall","conv":conv.to_string(),"seq":seq}),
                urgent: false,
                ttl: MESSAGE_TTL,
                topic: Some(topic(conv)),
            },
            Job::Request { from, .. } => {
                if !rules::wants_other(prefs, now) {
                    return Ok(None);
                }
                let from_name = name(self.store.user(from).await?);
                Outgoing { body: rules::request_payload(prefs.preview, from.0, &from_name), urgent: false, ttl: MESSAGE_TTL, topic: None }
            }
        }))
    }

    /// Encrypts and sends one push, retrying on 429, 5xx and network failures; a subscription
    /// its push service calls gone (404, 410) or that cannot be used is removed.
    async fn deliver(&self, user: UserId, sub: &PushSubscription, out: &Outgoing, queued: Instant) -> Result<(), StoreError> {
        let failed = |why: &str| {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(user = %user, why, "push not delivered");
        };
        let (Ok(target), Some((key, auth))) = (self.outbound.check_url(&sub.endpoint), keys_of(sub)) else {
            failed("unusable subscription; removed");
            self.store.delete_push_endpoint(user, sub.endpoint.clone()).await?;
            return Ok(());
        };
        let plaintext = out.body.to_string().into_bytes();
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=ATTEMPTS {
            // The key agreement and encryption are the CPU of a push: off the async workers
            // that deliver chat, one at a time, so pushes never take more than one core.
            let body = {
                let _cpu = self.crypto.acquire().await;
                let (p, k, a) = (plaintext.clone(), key, auth);
                tokio::task::spawn_blocking(move || web_push_native::encrypt(p, &k, &a)).await
            };
            let Ok(Ok(body)) = body else {
                failed("payload could not be encrypted");
                return Ok(());
            };
            let mut req = http::Request::post(target.uri.clone())
                .header("TTL", out.ttl)
                .header("Urgency", if out.urgent { "high" } else { "normal" })
                .header(http::header::CONTENT_ENCODING, "aes128gcm")
                .header(http::header::CONTENT_TYPE, "application/octet-stream")
                .header(http::header::AUTHORIZATION, self.authorization(&target.origin()));
            if let Some(t) = &out.topic {
                req = req.header("Topic", t.as_str());
            }
            let Ok(req) = req.body(body) else {
                failed("bad request");
                return Ok(());
            };
            match self.outbound.send(&target, req, MAX_ANSWER).await {
                Ok(a) if (200..300).contains(&a.status) => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    self.stats.latency.observe(queued.elapsed().as_secs_f64());
                    return Ok(());
                }
                Ok(a) if a.status == 404 || a.status == 410 => {
                    self.stats.gone.fetch_add(1, Ordering::Relaxed);
                    self.store.delete_push_endpoint(user, sub.endpoint.clone()).await?;
                    return Ok(());
                }
                Ok(a) if (a.status == 429 || a.status >= 500) && attempt < ATTEMPTS => {
                    let asked = a.retry_after.map(Duration::from_secs);
                    tokio::time::sleep(asked.unwrap_or(wait).min(MAX_RETRY_WAIT)).await;
                }
                Ok(a) => {
                    failed(&format!("the push service answered {}", a.status));
                    return Ok(());
                }
                Err(OutboundError::Refused(why)) => {
                    failed(&why);
                    return Ok(());
                }
                Err(e) if attempt < ATTEMPTS => {
                    tracing::debug!(error = %e, "push attempt failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    failed(&e.to_string());
                    return Ok(());
                }
            }
            wait *= 2;
        }
        failed("retries spent");
        Ok(())
    }
}

/// One push, ready to encrypt.
struct Outgoing {
    body: serde_json::Value,
    urgent: bool,
    ttl: u64,
    /// RFC 8030 topic: a newer push of the same conversation replaces one still waiting.
    topic: Option<String>,
}

/// A conversation's topic: its id in the topic alphabet (`d-3-7`, `g-12`).
fn topic(conv: ConvId) -> String {
    conv.to_string().replace(':', "-")
}

/// The device's public key and auth secret, when they are well-formed.
pub(crate) fn keys_of(sub: &PushSubscription) -> Option<(p256::PublicKey, web_push_native::Auth)> {
    let key = p256::PublicKey::from_sec1_bytes(&URL_SAFE_NO_PAD.decode(sub.p256dh.trim_end_matches('=')).ok()?).ok()?;
    let auth = URL_SAFE_NO_PAD.decode(sub.auth.trim_end_matches('=')).ok()?;
    (auth.len() == 16).then(|| (key, web_push_native::Auth::clone_from_slice(&auth)))
}

/// Takes jobs off the queue and runs at most `workers` at once, until shutdown.
async fn dispatch(push: std::sync::Weak<Push>, mut rx: mpsc::Receiver<(Job, Instant)>, workers: usize, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(workers));
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = rx.recv() => next,
        };
        let Some((job, queued)) = next else { return };
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let Some(push) = push.upgrade() else { return };
        tokio::spawn(async move {
            if let Err(e) = push.handle(job, queued).await {
                push.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "push failed in the store");
            }
            push.stats.considered.fetch_add(1, Ordering::Relaxed);
            drop(slot);
        });
    }
}
