//! The push routes: the server's VAPID key, this device's subscription, and the user's push
//! preferences.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Push, rules};
use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiJson, AuthUser};
use crate::store::push::{PushPrefs, PushSubscription};
use crate::store::{Store, now_ms};

#[derive(Serialize, ToSchema)]
pub struct VapidKey {
    /// The server's P-256 public key, uncompressed, base64url: the `applicationServerKey`.
    pub public_key: String,
}

/// The browser's `PushSubscription.toJSON()`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewSubscription {
    pub endpoint: String,
    /// Ignored: the push service says when a subscription is gone.
    #[serde(default)]
    pub expiration_time: Option<serde_json::Value>,
    pub keys: SubscriptionKeys,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeys {
    pub p256dh: String,
    pub auth: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointBody {
    pub endpoint: String,
}

fn push_of(push: &Push) -> Result<&Push, ApiError> {
    if push.enabled() { Ok(push) } else { Err(ApiError::not_found("Push notifications are turned off on this server.")) }
}

#[utoipa::path(get, path = "/api/push/vapid", tag = "push", responses((status = 200, body = VapidKey), (status = 404, body = ErrorBody, description = "push is turned off")))]
pub async fn vapid(_auth: AuthUser, State(push): State<Arc<Push>>) -> Result<Json<VapidKey>, ApiError> {
    Ok(Json(VapidKey { public_key: push_of(&push)?.public_key().to_owned() }))
}

#[utoipa::path(post, path = "/api/push/subscriptions", tag = "push", request_body = NewSubscription,
    responses((status = 201, body = EndpointBody, description = "this device's subscription, replacing its earlier one"),
        (status = 400, body = ErrorBody, description = "`invalid` keys, or `endpoint_refused`: not https, or not on a public address")))]
pub async fn subscribe(
    auth: AuthUser,
    State(store): State<Store>,
    State(push): State<Arc<Push>>,
    ApiJson(req): ApiJson<NewSubscription>,
) -> Result<(StatusCode, Json<EndpointBody>), ApiError> {
    let push = push_of(&push)?;
    let sub = PushSubscription { endpoint: req.endpoint, p256dh: req.keys.p256dh, auth: req.keys.auth, created_at: now_ms() };
    if super::keys_of(&sub).is_none() {
        return Err(ApiError::bad_request("invalid", "keys.p256dh must be a P-256 public key and keys.auth 16 bytes, base64url."));
    }
    let refused =
        |e: crate::outbound::OutboundError| ApiError::bad_request("endpoint_refused", format!("This push endpoint is not accepted ({e})."));
    let target = push.outbound().check_url(&sub.endpoint).map_err(refused)?;
    push.outbound().resolve(&target).await.map_err(refused)?;
    let endpoint = sub.endpoint.clone();
    if !store.set_push_subscription(auth.user.id, auth.session, sub).await? {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Your session has ended."));
    }
    push.subscribed(auth.user.id);
    Ok((StatusCode::CREATED, Json(EndpointBody { endpoint })))
}

#[utoipa::path(delete, path = "/api/push/subscriptions", tag = "push", request_body = EndpointBody, responses((status = 204)))]
pub async fn unsubscribe(auth: AuthUser, State(store): State<Store>, ApiJson(req): ApiJson<EndpointBody>) -> Result<StatusCode, ApiError> {
    store.delete_push_endpoint(auth.user.id, req.endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/push/settings", tag = "push", responses((status = 200, body = PushPrefs)))]
pub async fn settings(auth: AuthUser, State(store): State<Store>) -> Result<Json<PushPrefs>, ApiError> {
    Ok(Json(store.push_prefs(auth.user.id).await?))
}

#[utoipa::path(put, path = "/api/push/settings", tag = "push", request_body = PushPrefs,
    responses((status = 200, body = PushPrefs), (status = 400, body = ErrorBody)))]
pub async fn update_settings(
    auth: AuthUser,
    State(store): State<Store>,
    ApiJson(prefs): ApiJson<PushPrefs>,
) -> Result<Json<PushPrefs>, ApiError> {
    if prefs.dnd.as_ref().is_some_and(|d| !rules::dnd_is_valid(d)) {
        return Err(ApiError::bad_request(
            "invalid",
            "Quiet hours are two times like \"22:00\" and \"07:00\", and an offset within 14 hours.",
        ));
    }
    store.set_push_prefs(auth.user.id, prefs.clone()).await?;
    Ok(Json(prefs))
}
