//! Administering groups: the list, and disabling, enabling or dissolving one through the group
//! rule and the group routes' announcements, as an owner's dissolve does.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::{AdminUser, Page};
use crate::config::Config;
use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiPath, ApiQuery};
use crate::hub::Hub;
use crate::ids::UserId;
use crate::protocol::{GoneReason, ServerFrame};
use crate::social::{group_routes, groups};
use crate::store::Store;
use crate::store::social::{GroupRecord, GroupStatus};

#[derive(Serialize, ToSchema)]
pub struct AdminGroupView {
    pub id: u64,
    pub name: String,
    pub owner: UserId,
    pub member_count: usize,
    pub created_at: u64,
    /// `active`, `disabled` or `dissolved`.
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct GroupPage {
    pub groups: Vec<AdminGroupView>,
    pub total: usize,
}

#[utoipa::path(get, path = "/api/admin/groups", tag = "admin", params(Page), responses((status = 200, body = GroupPage), (status = 403, body = ErrorBody)))]
pub async fn groups(_: AdminUser, State(store): State<Store>, ApiQuery(p): ApiQuery<Page>) -> Result<Json<GroupPage>, ApiError> {
    let limit = p.limit()?;
    let needle = p.q.as_deref().map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
    let all: Vec<GroupRecord> = store
        .all_groups()
        .await?
        .into_iter()
        .filter(|g| needle.as_ref().is_none_or(|n| g.name.to_lowercase().contains(n.as_str())))
        .collect();
    let total = all.len();
    let mut groups = Vec::new();
    for g in all.into_iter().skip(p.offset as usize).take(limit) {
        let count = store.group(g.id).await?.map_or(0, |s| s.members.len());
        let status = match g.status {
            GroupStatus::Active => "active",
            GroupStatus::Disabled => "disabled",
            GroupStatus::Dissolved => "dissolved",
        };
        groups.push(AdminGroupView {
            id: g.id,
            name: g.name,
            owner: g.owner,
            member_count: count,
            created_at: g.created_at,
            status: status.into(),
        });
    }
    Ok(Json(GroupPage { groups, total }))
}

/// Changes a group's status through the group rule and the group routes' announcements (the
/// `dissolved` system message, `group` and `group_gone` frames), as an owner's dissolve does.
async fn group_status(
    me: UserId,
    store: Store,
    hub: Arc<Hub>,
    config: Arc<Config>,
    gid: u64,
    to: GroupStatus,
) -> Result<StatusCode, ApiError> {
    let out = group_routes::apply(&store, &hub, &config, gid, me, move |s| groups::set_status_by_admin(s, me, to)).await?;
    if to == GroupStatus::Disabled {
        // Members keep the history but can no longer write: their apps show the group as closed.
        hub.send(&out.after.member_ids(), &ServerFrame::GroupGone { group: gid, reason: GoneReason::Removed });
    }
    let action = match to {
        GroupStatus::Active => "group.enable",
        GroupStatus::Disabled => "group.disable",
        GroupStatus::Dissolved => "group.dissolve",
    };
    store.audit(me, action, format!("group:{gid}"), String::new()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/admin/groups/{id}/disable", tag = "admin", params(("id" = u64, Path)), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn disable_group(
    AdminUser(me): AdminUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    group_status(me, store, hub, config, id, GroupStatus::Disabled).await
}

#[utoipa::path(post, path = "/api/admin/groups/{id}/enable", tag = "admin", params(("id" = u64, Path)), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn enable_group(
    AdminUser(me): AdminUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    group_status(me, store, hub, config, id, GroupStatus::Active).await
}

#[utoipa::path(delete, path = "/api/admin/groups/{id}", tag = "admin", params(("id" = u64, Path)), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn dissolve_group(
    AdminUser(me): AdminUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    group_status(me, store, hub, config, id, GroupStatus::Dissolved).await
}
