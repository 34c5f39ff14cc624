//! The dashboard (counts, activity, storage) and the audit log of administrators' changes.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AdminUser;
use crate::config::Config;
use crate::http::ApiError;
use crate::http::ApiQuery;
use crate::http::error::ErrorBody;
use crate::hub::Hub;
use crate::store::Store;
use crate::store::admin::AuditEntry;

#[derive(Serialize, ToSchema)]
pub struct Dashboard {
    pub users: u64,
    pub online_users: usize,
    pub connections: u64,
    pub messages: u64,
    /// `[day, count]` for the last 14 days, oldest first; day = days since the Unix epoch.
    /// (Described as arrays of integers: utoipa writes a tuple as an `items` list, which OpenAPI
    /// 3.1 does not allow.)
    #[schema(value_type = Vec<Vec<u64>>)]
    pub messages_per_day: Vec<(u64, u64)>,
    /// Bytes on disk: the database and file blobs.
    pub storage_bytes: u64,
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[utoipa::path(get, path = "/api/admin/dashboard", tag = "admin", responses((status = 200, body = Dashboard), (status = 403, body = ErrorBody)))]
pub async fn dashboard(
    _: AdminUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
) -> Result<Json<Dashboard>, ApiError> {
    let (users, messages, messages_per_day) = store.counts(14).await?;
    let dir = config.data_dir.clone();
    let storage_bytes = tokio::task::spawn_blocking(move || dir_size(&dir)).await.unwrap_or(0);
    Ok(Json(Dashboard {
        users,
        online_users: hub.online_users(),
        connections: hub.connections.load(std::sync::atomic::Ordering::Relaxed),
        messages,
        messages_per_day,
        storage_bytes,
    }))
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries older than this id.
    pub before: Option<u64>,
    /// 1 to 500; 100 when absent.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
}

#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", params(AuditQuery), responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)))]
pub async fn audit(_: AdminUser, State(store): State<Store>, ApiQuery(q): ApiQuery<AuditQuery>) -> Result<Json<AuditPage>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("invalid", "limit must be 1 to 500."));
    }
    let limit = limit as usize;
    Ok(Json(AuditPage { entries: store.audit_log(q.before, limit).await? }))
}
