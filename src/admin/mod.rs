//! Server administration: users, groups, live settings, invites, the dashboard and the audit
//! log. Every route checks on the server that the caller administers it (the system Chinwag
//! replaces left its admin pages unchecked), and every change is written to the audit log.
//!
//! # Layout
//! - `mod.rs`: the `AdminUser` extractor every route takes, and the shared `Page` query.
//! - `users.rs`, `groups.rs`, `settings.rs`, `invites.rs`: the routes for each.
//! - `dashboard.rs`: the dashboard and the audit log.

mod dashboard;
mod groups;
mod invites;
mod settings;
mod users;

pub use dashboard::*;
pub use groups::*;
pub use invites::*;
pub use settings::*;
pub use users::*;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::http::{ApiError, AuthUser};
use crate::ids::UserId;
use crate::store::Store;

/// The caller, when they administer the server. Every admin route takes one, so the check is
/// made before anything else of the request is read and no route can forget it.
#[derive(Clone, Copy, Debug)]
pub struct AdminUser(pub UserId);

impl<S> FromRequestParts<S> for AdminUser
where
    S: Send + Sync,
    Store: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        if auth.user.is_admin { Ok(AdminUser(auth.user.id)) } else { Err(ApiError::forbidden("Only server administrators can do this.")) }
    }
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Part of a username or nickname (users), or of a name (groups).
    pub q: Option<String>,
    #[serde(default)]
    pub offset: u32,
    /// 1 to 200; 50 when absent.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

impl Page {
    pub(super) fn limit(&self) -> Result<usize, ApiError> {
        let l = self.limit.unwrap_or(50);
        if (1..=200).contains(&l) { Ok(l as usize) } else { Err(ApiError::bad_request("invalid", "limit must be 1 to 200.")) }
    }
}
