//! Live settings: what an administrator may change while the server runs (registration mode,
//! one-time-code sender, chat and group limits), stored in the database over the file's values.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AdminUser;
use crate::config::{Config, DirectPolicy, LiveConfig, OtpSender, Registration};
use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiJson};
use crate::store::Store;

/// Settings an administrator may change while the server runs. They are stored in the
/// database and override the configuration file for these keys.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveSettings {
    pub registration: Option<Registration>,
    pub otp_sender: Option<OtpSender>,
    pub otp_webhook_url: Option<String>,
    pub direct_policy: Option<DirectPolicy>,
    #[schema(maximum = 315_360_000)]
    pub recall_window_secs: Option<u64>,
    #[schema(maximum = 315_360_000)]
    pub edit_window_secs: Option<u64>,
    pub max_group_members: Option<usize>,
    pub max_groups_per_user: Option<usize>,
    pub history_for_new_members: Option<bool>,
    /// False turns password registration off (only when single sign-on is configured).
    pub password_registration: Option<bool>,
    /// False turns password login off for everyone but administrators (only when single
    /// sign-on is configured).
    pub password_login: Option<bool>,
    /// Let a single sign-on login take over the local account with the same verified e-mail.
    pub oidc_link_by_email: Option<bool>,
    /// Read-only: whether a single sign-on method is configured (in the file); ignored in a
    /// `PATCH` (it is never merged or stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub sso_configured: Option<bool>,
}

impl LiveSettings {
    /// `config` with these settings applied.
    pub fn apply(&self, mut config: Config) -> Config {
        macro_rules! set {
            ($field:ident => $($path:tt)+) => {
                if let Some(v) = self.$field.clone() {
                    config.$($path)+ = v;
                }
            };
        }
        set!(registration => auth.registration);
        set!(otp_sender => auth.otp_sender);
        if self.otp_webhook_url.is_some() {
            config.auth.otp_webhook_url.clone_from(&self.otp_webhook_url);
        }
        set!(direct_policy => chat.direct_policy);
        set!(recall_window_secs => chat.recall_window_secs);
        set!(edit_window_secs => chat.edit_window_secs);
        set!(max_group_members => groups.max_members);
        set!(max_groups_per_user => groups.max_groups_per_user);
        set!(history_for_new_members => groups.history_for_new_members);
        set!(password_registration => auth.password_registration);
        set!(password_login => auth.password_login);
        set!(oidc_link_by_email => auth.oidc_link_by_email);
        config
    }

    /// Every setting's value in `config`.
    pub fn of(config: &Config) -> LiveSettings {
        LiveSettings {
            registration: Some(config.auth.registration),
            otp_sender: Some(config.auth.otp_sender),
            otp_webhook_url: config.auth.otp_webhook_url.clone(),
            direct_policy: Some(config.chat.direct_policy),
            recall_window_secs: Some(config.chat.recall_window_secs),
            edit_window_secs: Some(config.chat.edit_window_secs),
            max_group_members: Some(config.groups.max_members),
            max_groups_per_user: Some(config.groups.max_groups_per_user),
            history_for_new_members: Some(config.groups.history_for_new_members),
            password_registration: Some(config.auth.password_registration),
            password_login: Some(config.auth.password_login),
            oidc_link_by_email: Some(config.auth.oidc_link_by_email),
            sso_configured: Some(config.auth.sso_configured()),
        }
    }

    /// Later values win.
    fn merged(mut self, newer: LiveSettings) -> LiveSettings {
        macro_rules! take {
            ($($f:ident),*) => { $( if newer.$f.is_some() { self.$f = newer.$f; } )* };
        }
        take!(
            registration,
            otp_sender,
            otp_webhook_url,
            direct_policy,
            recall_window_secs,
            edit_window_secs,
            max_group_members,
            max_groups_per_user,
            history_for_new_members,
            password_registration,
            password_login,
            oidc_link_by_email
        );
        self
    }
}

/// Applies the settings stored by administrators to the configuration at start.
pub async fn load_live_settings(store: &Store, config: Config) -> anyhow::Result<Config> {
    let Some(v) = store.live_settings().await? else { return Ok(config) };
    let stored: LiveSettings = serde_json::from_value(v).map_err(|e| anyhow::anyhow!("stored settings are unreadable: {e}"))?;
    let mut applied = stored.apply(config);
    // Single sign-on was removed from the file since password sign-in was turned off: turn it
    // back on rather than refuse to start (or lock everyone out).
    let password_off = !applied.auth.password_login || !applied.auth.password_registration;
    if password_off && !applied.auth.sso_configured() {
        tracing::warn!(
            "password login and registration were turned off in the admin panel, but no single sign-on is configured any more: both are on again"
        );
        applied.auth.password_login = true;
        applied.auth.password_registration = true;
    }
    applied.validate().map_err(|e| anyhow::anyhow!("stored settings: {e}"))?;
    Ok(applied)
}

#[utoipa::path(get, path = "/api/admin/settings", tag = "admin", responses((status = 200, body = LiveSettings), (status = 403, body = ErrorBody)))]
pub async fn settings(_: AdminUser, State(config): State<Arc<Config>>) -> Result<Json<LiveSettings>, ApiError> {
    Ok(Json(LiveSettings::of(&config)))
}

#[utoipa::path(patch, path = "/api/admin/settings", tag = "admin", request_body = LiveSettings,
    responses((status = 200, body = LiveSettings), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn update_settings(
    AdminUser(me): AdminUser,
    State(store): State<Store>,
    State(live): State<LiveConfig>,
    ApiJson(req): ApiJson<LiveSettings>,
) -> Result<Json<LiveSettings>, ApiError> {
    let current = live.get();
    let next = req.apply((*current).clone());
    next.validate().map_err(|e| ApiError::bad_request("invalid", e.to_string()))?;
    let stored: LiveSettings = store.live_settings().await?.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    let detail = serde_json::to_string(&req).unwrap_or_default();
    let merged = stored.merged(req);
    store.save_live_settings(serde_json::to_value(&merged).map_err(|_| ApiError::internal())?).await?;
    live.set(next.clone());
    store.audit(me, "settings.update", "settings".into(), detail).await?;
    Ok(Json(LiveSettings::of(&next)))
}
