//! The application state and the one router that lists every route.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRef, State};
use axum::http::{HeaderValue, header};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::{self, Accounts};
use crate::admin;
use crate::calls::{self, Calls};
use crate::chat;
use crate::config::{Config, LiveConfig};
use crate::connection::{self, SocketCtx};
use crate::http::origin::{OriginPolicy, check_origin};
use crate::hub::Hub;
use crate::links::{self, Links};
use crate::media::{self, Media};
use crate::metrics::Metrics;
use crate::push::{self, Push};
use crate::social::{contacts, group_invites, group_routes};
use crate::store::Store;
use crate::web;

/// Everything a handler may need, each part reachable on its own through `FromRef`.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub store: Store,
    pub hub: Arc<Hub>,
    pub accounts: Arc<Accounts>,
    pub live: LiveConfig,
    pub origin: OriginPolicy,
    pub sockets: SocketCtx,
    pub media: Arc<Media>,
    pub metrics: Arc<Metrics>,
    pub calls: Arc<Calls>,
    pub push: Arc<Push>,
    pub links: Arc<Links>,
    pub oidc: Arc<accounts::oidc::Oidc>,
}

impl AppState {
    pub fn new(
        config: Config,
        store: Store,
        hub: Arc<Hub>,
        push: Arc<Push>,
        sockets_shutdown: tokio_util::sync::CancellationToken,
        turn: Option<calls::TurnInfo>,
    ) -> anyhow::Result<AppState> {
        let live = LiveConfig::new(config);
        let config = live.get();
        let accounts = Accounts::new(&config.auth).map_err(|e| anyhow::anyhow!("cannot set up accounts: {}", e.message))?;
        let media =
            Media::open(&config).map_err(|e| anyhow::anyhow!("cannot open the file store in {}: {e}", config.data_dir.display()))?;
        let sockets = SocketCtx {
            config: live.clone(),
            shutdown: sockets_shutdown.clone(),
            tracker: tokio_util::task::TaskTracker::new(),
            max_frame_bytes: config.limits.max_frame_bytes,
            outbound_queue: config.limits.outbound_queue,
            write_timeout: Duration::from_secs(config.limits.write_timeout_secs),
            push: push.clone(),
        };
        let links = Links::new(&config);
        let oidc = accounts::oidc::Oidc::new(&config)?;
        let turn_stats = turn.as_ref().map(|t| t.stats.clone());
        let calls = Calls::new(hub.clone(), store.clone(), live.clone(), sockets_shutdown, turn, push.clone());
        let sfu_stats = calls.sfu.as_ref().map(|s| s.stats.clone());
        let metrics = Metrics::new(store.clone(), hub.clone(), turn_stats, push.clone(), links.clone(), sfu_stats);
        Ok(AppState {
            store,
            hub,
            accounts,
            origin: OriginPolicy { allowed: Arc::new(config.allowed_origins.clone()) },
            live,
            sockets,
            media,
            metrics,
            calls,
            push,
            links,
            oidc,
        })
    }
}

/// Handlers take `State<Arc<Config>>`: the configuration in force when the request came.
impl FromRef<AppState> for Arc<Config> {
    fn from_ref(state: &AppState) -> Arc<Config> {
        state.live.get()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Chinwag", description = "HTTP API of the Chinwag chat server. Real-time frames are described in docs/protocol.md."),
    tags((name = "accounts"), (name = "contacts"), (name = "groups"), (name = "chat"), (name = "media"), (name = "calls"), (name = "realtime"), (name = "admin"), (name = "push"), (name = "operations"))
)]
struct ApiDoc;

/// Readiness: the database answers reads and its writer is running.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()), responses((status = 200, description = "ready", body = String), (status = 503, body = String)))]
async fn readyz(State(store): State<Store>) -> (axum::http::StatusCode, &'static str) {
    match store.schema_version().await {
        Ok(_) if store.writer_running() => (axum::http::StatusCode::OK, "ready"),
        _ => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "not ready"),
    }
}

/// Prometheus metrics on the main port: only for loopback clients, and only when no separate
/// `metrics.listen` address is set.
async fn metrics_local(
    State(metrics): State<Arc<Metrics>>,
    State(config): State<Arc<Config>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if !config.metrics.enabled || config.metrics.listen.is_some() || !peer.ip().to_canonical().is_loopback() {
        return crate::http::ApiError::not_found("No such route.").into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render()).into_response()
}

/// The router of a separate metrics listener (`metrics.listen`).
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let m = metrics.clone();
            async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], m.render()) }
        }),
    )
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, description = "ok", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let (api_routes, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(accounts::routes::register))
        .routes(routes!(accounts::routes::login))
        .routes(routes!(accounts::routes::logout))
        .routes(routes!(accounts::routes::options))
        .routes(routes!(accounts::oidc::start))
        .routes(routes!(accounts::oidc::callback))
        .routes(routes!(accounts::routes::otp_request))
        .routes(routes!(accounts::routes::otp_login))
        .routes(routes!(accounts::routes::me, accounts::routes::update_me))
        .routes(routes!(accounts::routes::change_password))
        .routes(routes!(accounts::routes::get_user))
        .routes(routes!(accounts::routes::search_users))
        .routes(routes!(accounts::routes::presence))
        .routes(routes!(push::routes::vapid))
        .routes(routes!(push::routes::subscribe, push::routes::unsubscribe))
        .routes(routes!(push::routes::settings, push::routes::update_settings))
        .routes(routes!(chat::routes::list))
        .routes(routes!(chat::routes::get, chat::routes::update))
        .routes(routes!(chat::routes::history))
        .routes(routes!(chat::routes::edit))
        .routes(routes!(chat::routes::recall))
        .routes(routes!(chat::routes::react))
        .routes(routes!(chat::routes::reads))
        .routes(routes!(chat::routes::hide))
        .routes(routes!(chat::routes::search))
        .routes(routes!(links::routes::preview))
        .routes(routes!(chat::forward::forward))
        .routes(routes!(chat::favorites::list, chat::favorites::save))
        .routes(routes!(chat::favorites::remove))
        .routes(routes!(contacts::list))
        .routes(routes!(contacts::requests, contacts::send_request))
        .routes(routes!(contacts::accept_request))
        .routes(routes!(contacts::refuse_request))
        .routes(routes!(contacts::block_request))
        .routes(routes!(contacts::delete_contact))
        .routes(routes!(contacts::block_user, contacts::unblock_user))
        .routes(routes!(contacts::set_remark))
        .routes(routes!(group_routes::create, group_routes::list))
        .routes(routes!(group_routes::get, group_routes::update, group_routes::remove))
        .routes(routes!(group_routes::members, group_routes::add_members))
        .routes(routes!(group_routes::remove_member))
        .routes(routes!(group_routes::join_group))
        .routes(routes!(group_routes::leave_group))
        .routes(routes!(group_routes::applications))
        .routes(routes!(group_routes::approve_application))
        .routes(routes!(group_routes::refuse_application))
        .routes(routes!(group_routes::mute_member))
        .routes(routes!(group_routes::add_admin, group_routes::remove_admin))
        .routes(routes!(group_routes::transfer_group))
        .routes(routes!(group_invites::get_link, group_invites::reset_link))
        .routes(routes!(group_invites::preview))
        .routes(routes!(group_invites::join_by_link))
        .routes(routes!(media::routes::upload))
        .routes(routes!(media::routes::download))
        .routes(routes!(media::routes::thumbnail))
        .routes(routes!(media::routes::set_my_avatar))
        .routes(routes!(media::routes::set_group_avatar))
        .routes(routes!(media::routes::list_stickers))
        .routes(routes!(media::routes::create_pack))
        .routes(routes!(media::routes::delete_pack))
        .routes(routes!(media::routes::add_sticker))
        .routes(routes!(media::routes::remove_sticker))
        .routes(routes!(admin::users))
        .routes(routes!(admin::delete_user))
        .routes(routes!(admin::disable_user))
        .routes(routes!(admin::enable_user))
        .routes(routes!(admin::reset_password))
        .routes(routes!(admin::promote, admin::demote))
        .routes(routes!(admin::groups))
        .routes(routes!(admin::dissolve_group))
        .routes(routes!(admin::disable_group))
        .routes(routes!(admin::enable_group))
        .routes(routes!(admin::settings, admin::update_settings))
        .routes(routes!(admin::create_invite, admin::invites))
        .routes(routes!(admin::delete_invite))
        .routes(routes!(admin::dashboard))
        .routes(routes!(admin::audit))
        .routes(routes!(calls::routes::ice_servers))
        .routes(routes!(connection::upgrade))
        .split_for_parts();
    crate::http::openapi::complete(&mut openapi);
    let openapi = Arc::new(openapi);
    let max_body = state.live.get().limits.max_body_bytes;
    api_routes
        .route("/api/openapi.json", get(move || async move { Json(openapi.as_ref().clone()) }))
        .route("/metrics", get(metrics_local))
        .route_layer(axum::middleware::from_fn_with_state(state.metrics.clone(), crate::metrics::track))
        .fallback(web::serve)
        .layer(axum::middleware::from_fn_with_state(state.origin.clone(), check_origin))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
