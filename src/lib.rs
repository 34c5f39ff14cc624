//! Chinwag: a self-hosted chat server in one binary.
//!
//! # Layout
//! Each floor imports only from the floors below it.
//! - `main.rs` (the CLI) calls [`run`] here; tests call [`run`] too.
//! - [`app`]: the state and the one router that lists every route. [`connection`]: the
//!   WebSocket loop, which hands each frame to the feature that owns it.
//! - Features, each with its routes beside its logic: [`accounts`] (registration, login,
//!   sessions, profiles), [`social`] (contacts and groups), [`chat`] (conversations, sending,
//!   receipts, recall, edit, reactions, sync, history, search), [`presence`], [`web`] (the
//!   embedded client), [`admin`] (server administration), [`media`] (files, images, avatars,
//!   stickers), [`calls`] (call signalling, the embedded TURN/STUN relay), [`links`] (link
//!   previews fetched by the server).
//! - Shared below them: [`hub`] (who is connected, fan-out), [`http`] (errors, extractors,
//!   Origin check, rate limits), [`store`] (redb tables and the group-commit writer),
//!   [`protocol`] (every JSON frame), [`outcome`] (domain refusals), [`ids`], [`config`].

pub mod accounts;
pub mod address;
pub mod admin;
pub mod app;
pub mod backup;
pub mod calls;
pub mod chat;
pub mod config;
pub mod connection;
pub mod console;
pub mod emoji;
pub mod healthcheck;
pub mod http;
pub mod hub;
pub mod ids;
pub mod links;
pub mod media;
pub mod metrics;
pub mod outbound;
pub mod outcome;
pub mod presence;
pub mod protocol;
pub mod push;
pub mod runtime;
pub mod server;
pub mod social;
pub mod store;
pub mod web;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::{Store, StoreOptions};

/// How long shutdown waits for open sockets to say goodbye.
const DRAIN: Duration = Duration::from_secs(10);

/// Starts the TURN/STUN server when `turn.enabled`. A port that cannot be bound is logged as an
/// error and the chat server runs without a relay (calls still work where peers reach each other
/// directly); a bad setting stops the start.
async fn start_turn(config: &Config, store: &Store, http: SocketAddr) -> anyhow::Result<Option<calls::turn::TurnServer>> {
    if !config.turn.enabled {
        return Ok(None);
    }
    calls::filter::PeerFilter::new(&config.turn.allow_peers, Vec::new()).map_err(anyhow::Error::msg)?;
    if let Some(w) = config.turn_quota_warning() {
        tracing::warn!("{w}");
    }
    let tls = calls::turn::tls_acceptor(&config.turn)?;
    let secret = store.turn_secret().await?;
    match calls::turn::TurnServer::start(&config.turn, secret, http, tls).await {
        Ok(t) => Ok(Some(t)),
        Err(e) => {
            tracing::error!(error = %e, "the TURN relay is off; calls between people behind NATs will fail");
            Ok(None)
        }
    }
}

/// Runs the server on `listener` until `shutdown` is cancelled, then drains: stops accepting,
/// closes sockets with 1001, lets pending writes commit, and closes the store.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let store = Store::open(
        &config.data_dir,
        &StoreOptions {
            write_queue: config.limits.write_queue,
            max_batch: config.limits.max_batch,
            cache_bytes: config.limits.db_cache_mib.saturating_mul(1 << 20),
            two_phase_commit: true,
            ..StoreOptions::default()
        },
    )?;
    let (presence_tx, presence_rx) = tokio::sync::mpsc::channel(4096);
    let hub = std::sync::Arc::new(hub::Hub::with_presence(presence_tx));
    let presence = tokio::spawn(presence::run(store.clone(), std::sync::Arc::downgrade(&hub), presence_rx));
    let config = admin::load_live_settings(&store, config).await?;
    let turn = start_turn(&config, &store, listener.local_addr()?).await?;
    let push = push::Push::start(&config, store.clone(), hub.clone(), shutdown.clone()).await?;
    let state = app::AppState::new(config, store.clone(), hub, push, shutdown.child_token(), turn.as_ref().map(|t| t.info.clone()))?;
    let sockets = state.sockets.clone();
    let started = state.live.get();
    let limits = started.limits.clone();
    let metrics_server = match started.metrics.listen.filter(|_| started.metrics.enabled) {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr} for metrics: {e}"))?;
            tracing::info!(%addr, "metrics are served here");
            let router = app::metrics_router(state.metrics.clone());
            Some(tokio::spawn(axum::serve(listener, router).with_graceful_shutdown(shutdown.clone().cancelled_owned()).into_future()))
        }
        None => None,
    };
    // Expired sessions are already refused; this only keeps the table from growing forever.
    let sweeper = {
        let (store, shutdown) = (store.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = every.tick() => match store.delete_expired_sessions(store::now_ms()).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(sessions = n, "removed expired sessions"),
                        Err(e) => tracing::warn!(error = %e, "cannot remove expired sessions"),
                    },
                }
            }
        })
    };
    let ldap_sync =
        state.accounts.ldap.clone().map(|dir| accounts::ldap::spawn_sync(dir, store.clone(), state.hub.clone(), shutdown.clone()));
    let control = tokio::spawn(console::serve(started.data_dir.clone(), store.clone(), state.hub.clone(), shutdown.clone()));
    let app = app::router(state);
    tracing::info!(addr = %listener.local_addr()?, "Chinwag is listening");
    server::serve(listener, app, Duration::from_secs(limits.header_timeout_secs), limits.connections_per_ip, shutdown.clone(), DRAIN).await;
    if let Some(m) = metrics_server {
        let _ = m.await;
    }
    let _ = sweeper.await;
    if let Some(sync) = ldap_sync {
        let _ = sync.await;
    }
    match control.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "the control socket failed"),
        Err(e) => tracing::warn!(error = %e, "the control socket task failed"),
        Ok(Ok(())) => {}
    }
    sockets.tracker.close();
    if tokio::time::timeout(DRAIN, sockets.tracker.wait()).await.is_err() {
        tracing::warn!("some sockets did not close in time");
    }
    if let Some(t) = turn
        && tokio::time::timeout(DRAIN, t.stop()).await.is_err()
    {
        tracing::warn!("the TURN server did not stop in time");
    }
    drop(sockets);
    // The hub (and with it the presence channel) is gone once the router and sockets are.
    if tokio::time::timeout(DRAIN, presence).await.is_err() {
        tracing::warn!("presence updates did not finish in time");
    }
    if tokio::time::timeout(DRAIN, store.close()).await.is_err() {
        tracing::warn!("the store did not close in time");
    }
    tracing::info!("stopped");
    Ok(())
}
