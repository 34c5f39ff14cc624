//! Prometheus metrics: connections, messages, group-commit batch sizes and latencies, HTTP
//! latency per route. Served at `/metrics` on the main port to loopback clients only, or on
//! `metrics.listen` to anyone who can reach that address; `metrics.enabled = false` turns it off.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::hub::Hub;
use crate::store::Store;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

pub struct Metrics {
    registry: Registry,
    hub: Arc<Hub>,
    store: Store,
    messages: Gauge,
    http: Family<HttpLabels, Histogram>,
    connections: Gauge,
    online_users: Gauge,
    slow_dropped: Gauge,
    commits: Gauge,
    writes: Gauge,
    turn: Option<(Arc<crate::calls::turn::TurnStats>, [Gauge; 6])>,
    push: (Arc<crate::push::Push>, [Gauge; 5]),
    links: (Arc<crate::links::Links>, [Gauge; 4]),
    sfu: Option<(Arc<crate::calls::sfu::SfuStats>, [Gauge; 4])>,
}

impl Metrics {
    pub fn new(
        store: Store,
        hub: Arc<Hub>,
        turn_stats: Option<Arc<crate::calls::turn::TurnStats>>,
        push: Arc<crate::push::Push>,
        links: Arc<crate::links::Links>,
        sfu_stats: Option<Arc<crate::calls::sfu::SfuStats>>,
    ) -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("chinwag");
        let messages = Gauge::default();
        registry.register("messages", "Messages stored since start (not counting resends)", messages.clone());
        let http = Family::<HttpLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16)));
        registry.register("http_request_seconds", "HTTP request latency by route", http.clone());
        let connections = Gauge::default();
        registry.register("connections", "Open WebSocket connections", connections.clone());
        let online_users = Gauge::default();
        registry.register("online_users", "Users with at least one connection", online_users.clone());
        let slow_dropped = Gauge::default();
        registry.register("slow_clients_dropped", "Connections closed because they fell behind (since start)", slow_dropped.clone());
        let commits = Gauge::default();
        registry.register("store_commits", "Group commits since start", commits.clone());
        let writes = Gauge::default();
        registry.register("store_writes", "Writes committed since start", writes.clone());
        registry.register("store_commit_batch_size", "Writes per group commit", store.stats.batch_sizes.clone());
        registry.register("store_commit_seconds", "Time to commit one batch, including fsync", store.stats.commit_seconds.clone());
        registry.register("store_write_wait_seconds", "Time from a write request to its durable answer", store.stats.write_wait.clone());
        let turn = turn_stats.map(|stats| {
            let gauges: [Gauge; 6] = Default::default();
            let names = [
                ("turn_allocations", "TURN allocations (relay sockets) open now"),
                ("turn_bytes_from_peers", "Bytes relayed from peers to clients since start"),
                ("turn_bytes_to_peers", "Bytes relayed from clients to peers since start"),
                ("turn_refused_peers", "TURN requests refused for their peer address since start"),
                ("turn_auth_failures", "TURN requests with bad or expired credentials since start"),
                ("turn_stream_connections", "TURN over TCP and TLS connections open now"),
            ];
            for ((name, help), g) in names.into_iter().zip(&gauges) {
                registry.register(name, help, g.clone());
            }
            (stats, gauges)
        });
        let push_gauges: [Gauge; 5] = Default::default();
        let names = [
            ("push_sent", "Pushes a push service accepted since start"),
            ("push_failed", "Pushes given up on since start (refused endpoints, error answers, retries spent)"),
            ("push_dropped", "Pushes dropped because the push queue was full since start"),
            ("push_gone", "Push subscriptions removed because their push service said they are gone"),
            ("push_considered", "Events handled by the push workers since start, pushed or not"),
        ];
        for ((name, help), g) in names.into_iter().zip(&push_gauges) {
            registry.register(name, help, g.clone());
        }
        registry.register("push_latency_seconds", "Time from the event to the push service's answer", push.stats.latency.clone());
        let push = (push, push_gauges);
        let link_gauges: [Gauge; 4] = Default::default();
        let names = [
            ("link_previews_fetched", "Link previews fetched from their page since start"),
            ("link_previews_refused", "Link preview URLs refused (scheme or address) since start"),
            ("link_previews_failed", "Link preview fetches that failed (unreachable, not html, redirects) since start"),
            ("link_previews_cached", "Link previews (or their failures) answered from the cache since start"),
        ];
        for ((name, help), g) in names.into_iter().zip(&link_gauges) {
            registry.register(name, help, g.clone());
        }
        let links = (links, link_gauges);
        let sfu = sfu_stats.map(|stats| {
            let gauges: [Gauge; 4] = Default::default();
            let names = [
                ("sfu_participants", "Sessions with the group-call SFU open now"),
                ("sfu_frames_forwarded", "Frames the SFU forwarded to receivers since start"),
                ("sfu_dropped_sends", "Packets the SFU dropped because a socket or connection could not take them, since start"),
                ("sfu_unmatched_datagrams", "Datagrams on the media port no session accepted, since start"),
            ];
            for ((name, help), g) in names.into_iter().zip(&gauges) {
                registry.register(name, help, g.clone());
            }
            (stats, gauges)
        });
        Arc::new(Metrics {
            registry,
            hub,
            store,
            messages,
            http,
            connections,
            online_users,
            slow_dropped,
            commits,
            writes,
            turn,
            push,
            links,
            sfu,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        self.messages.set(i64::try_from(self.store.stats.messages.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
        self.connections.set(i64::try_from(self.hub.connections.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
        self.online_users.set(i64::try_from(self.hub.online_users()).unwrap_or(i64::MAX));
        self.slow_dropped.set(i64::try_from(self.hub.dropped_slow.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
        self.commits.set(i64::try_from(self.store.stats.commits.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
        self.writes.set(i64::try_from(self.store.stats.writes.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
        let p = &self.push.0.stats;
        for (gauge, value) in self.push.1.iter().zip([&p.sent, &p.failed, &p.dropped, &p.gone, &p.considered]) {
            gauge.set(i64::try_from(value.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
        }
        if let Some((s, gauges)) = &self.sfu {
            for (gauge, value) in gauges.iter().zip([&s.participants, &s.frames_forwarded, &s.dropped_sends, &s.unmatched_datagrams]) {
                gauge.set(i64::try_from(value.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
            }
        }
        let l = &self.links.0.stats;
        for (gauge, value) in self.links.1.iter().zip([&l.fetched, &l.refused, &l.failed, &l.cached]) {
            gauge.set(i64::try_from(value.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
        }
        if let Some((s, g)) = &self.turn {
            let v = [&s.allocations, &s.bytes_from_peers, &s.bytes_to_peers, &s.refused_peers, &s.auth_failures, &s.stream_connections];
            for (gauge, value) in g.iter().zip(v) {
                gauge.set(i64::try_from(value.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
            }
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics failed to encode");
        }
        out
    }
}

/// Middleware (as a route layer, so the matched route is known): records each request's
/// latency under its route pattern, never under the raw path (which would explode labels).
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    let labels = HttpLabels { method, route, status: resp.status().as_u16() };
    metrics.http.get_or_create(&labels).observe(start.elapsed().as_secs_f64());
    resp
}
