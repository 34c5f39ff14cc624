//! The routes under `/api/files`, the avatar routes, and sticker packs under `/api/stickers`.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{FileView, Incoming, Media, readable, sniff, too_large};
use crate::config::Config;
use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::hub::Hub;
use crate::protocol::{GroupView, UserView};
use crate::social::{group_routes, groups};
use crate::store::Store;
use crate::store::media::{FileRefusal, FileUse, StickerPack};

/// Room for the multipart framing around the file (boundaries, part headers, small fields).
const MULTIPART_SLACK: u64 = 64 * 1024;
/// Most bytes of form fields other than `file` that are read (and ignored).
const OTHER_FIELDS_MAX: usize = 16 * 1024;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The file's name for a raw upload (multipart uploads carry it in the form).
    pub name: Option<String>,
}

/// A multipart upload: the form field `file`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    file: String,
}

fn refusal(r: FileRefusal) -> ApiError {
    match r {
        FileRefusal::NoSuchFile => ApiError::not_found("No such file."),
        FileRefusal::NotAnImage => ApiError::bad_request("not_an_image", "That file is not an image."),
        FileRefusal::NoSuchPack => ApiError::not_found("No such sticker pack."),
        FileRefusal::QuotaExceeded { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded", "Your storage is full."),
        FileRefusal::TooMany => ApiError::conflict(
            "limit_reached",
            format!("A sticker pack can hold at most {} stickers.", crate::store::media::MAX_STICKERS_PER_PACK),
        ),
    }
}

fn bad_body(e: &impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("bad_request", format!("The upload could not be read: {e}"))
}

/// Uploads a file, as `multipart/form-data` (field `file`, as a browser's `FormData` sends it) or
/// as the raw body with `?name=`. The type is sniffed from the content; images get their
/// dimensions and a thumbnail and lose their metadata (EXIF, location).
#[utoipa::path(post, path = "/api/files", tag = "media", params(UploadQuery),
    request_body(content((UploadForm = "multipart/form-data"), (Vec<u8> = "application/octet-stream")),
        description = "the file, as a form field `file` or as the whole body"),
    responses((status = 201, body = FileView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody, description = "`too_large` or `quota_exceeded`")))]
pub async fn upload(
    auth: AuthUser,
    State(store): State<Store>,
    State(media): State<Arc<Media>>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<FileView>), ApiError> {
    let me = auth.user.id;
    let quota = media.user_quota_bytes;
    let used = store.file_usage(me).await?;
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"))
        .map(|ct| multer::parse_boundary(ct).map_err(|e| bad_body(&e)))
        .transpose()?;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    // A declared length over the limit is refused before a byte is read.
    let slack = if boundary.is_some() { MULTIPART_SLACK } else { 0 };
    if declared.is_some_and(|n| n > media.max_upload_bytes + slack) {
        return Err(too_large(media.max_upload_bytes));
    }
    if used >= quota || (boundary.is_none() && declared.is_some_and(|n| n > quota - used)) {
        return Err(super::quota_exceeded(used, quota));
    }
    let mut incoming = Incoming::start(&media, used, quota).await?;
    let name = match boundary {
        Some(boundary) => {
            let mut form = multer::Multipart::new(body.into_data_stream(), boundary);
            let mut other = 0usize;
            loop {
                let Some(mut field) = form.next_field().await.map_err(|e| bad_body(&e))? else {
                    return Err(ApiError::bad_request("bad_request", "The form has no `file` field."));
                };
                if field.name() == Some("file") {
                    let name = field.file_name().map(str::to_owned).or(q.name);
                    while let Some(chunk) = field.chunk().await.map_err(|e| bad_body(&e))? {
                        incoming.push(&chunk).await?;
                    }
                    // Whatever follows the file is not read.
                    break name;
                }
                while let Some(chunk) = field.chunk().await.map_err(|e| bad_body(&e))? {
                    other += chunk.len();
                    if other > OTHER_FIELDS_MAX {
                        return Err(ApiError::bad_request("bad_request", "Send the file in a form field named `file`."));
                    }
                }
            }
        }
        None => {
            let mut stream = body.into_data_stream();
            while let Some(chunk) = stream.next().await {
                incoming.push(&chunk.map_err(|e| bad_body(&e))?).await?;
            }
            q.name
        }
    };
    let name = sniff::sanitize_name(name.as_deref().unwrap_or(""));
    let rec = incoming.finish(&media, &store, me, name).await?;
    tracing::info!(user = %me, file = %rec.id, size = rec.size, mime = %rec.mime, "file uploaded");
    Ok((StatusCode::CREATED, Json(FileView::from(&rec))))
}

/// Streams a blob with the headers that make serving user content safe.
async fn serve(media: &Media, sha256: &str, mime: &str, inline: bool, name: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let path = media.blobs.path_of(sha256).ok_or_else(ApiError::internal)?;
    let etag = format!("\"{sha256}\"");
    let mut resp =
        if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let file = tokio::fs::File::open(&path).await.map_err(|e| {
                tracing::error!(path = %path.display(), error = %e, "a stored file's blob is missing");
                ApiError::not_found("No such file.")
            })?;
            let len = file.metadata().await.map_err(|_| ApiError::internal())?.len();
            let mut r = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(sniff::served_type(mime)).map_err(|_| ApiError::internal())?);
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&sniff::content_disposition(inline, name)).map_err(|_| ApiError::internal())?,
            );
            r
        };
    let h = resp.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(&etag).map_err(|_| ApiError::internal())?);
    // The content behind an id never changes; only the person it was served to may cache it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    Ok(resp)
}

/// Downloads a file: for its uploader, the members of conversations it was sent in, and
/// everyone logged in when it is an avatar or a sticker. Safe images, PDFs, audio and video are
/// shown inline (by the browser's own viewers); everything else is an attachment.
#[utoipa::path(get, path = "/api/files/{id}", tag = "media", params(("id" = String, Path)),
    responses((status = 200, description = "the file's bytes, with the type sniffed from them", content_type = "*/*"),
        (status = 304, description = "not modified (`If-None-Match`)"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn download(
    auth: AuthUser,
    State(store): State<Store>,
    State(config): State<Arc<Config>>,
    State(media): State<Arc<Media>>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rec = readable(&store, &config, auth.user.id, &id).await?;
    let inline = sniff::served_inline(&rec.mime, rec.image.is_some());
    serve(&media, &rec.sha256, &rec.mime, inline, &rec.name, &headers).await
}

/// An image's thumbnail (at most 320 pixels on a side, JPEG or PNG), for whoever may read the image.
#[utoipa::path(get, path = "/api/files/{id}/thumb", tag = "media", params(("id" = String, Path)),
    responses((status = 200, description = "the thumbnail: PNG for images with transparency, else JPEG", content_type = "image/*"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such file, or not an image")))]
pub async fn thumbnail(
    auth: AuthUser,
    State(store): State<Store>,
    State(config): State<Arc<Config>>,
    State(media): State<Arc<Media>>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rec = readable(&store, &config, auth.user.id, &id).await?;
    let Some(img) = &rec.image else { return Err(ApiError::not_found("This file has no thumbnail.")) };
    serve(&media, &img.thumb_sha256, &img.thumb_mime, true, &rec.name, &headers).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvatarRequest {
    /// An image you uploaded; null removes the avatar.
    pub file_id: Option<String>,
}

/// Sets your avatar to an image you uploaded (readable by everyone logged in from then on).
#[utoipa::path(put, path = "/api/me/avatar", tag = "media", request_body = AvatarRequest,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_my_avatar(
    auth: AuthUser,
    State(store): State<Store>,
    ApiJson(req): ApiJson<AvatarRequest>,
) -> Result<Json<UserView>, ApiError> {
    let user = store.set_user_avatar(auth.user.id, req.file_id).await?.map_err(refusal)?;
    Ok(Json(user.own_view()))
}

/// Sets a group's avatar to an image you uploaded (group owner and admins).
#[utoipa::path(put, path = "/api/groups/{id}/avatar", tag = "media", params(("id" = u64, Path)), request_body = AvatarRequest,
    responses((status = 200, body = GroupView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_group_avatar(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    ApiPath(gid): ApiPath<u64>,
    ApiJson(req): ApiJson<AvatarRequest>,
) -> Result<Json<GroupView>, ApiError> {
    let me = auth.user.id;
    if let Some(id) = &req.file_id {
        // Only a group whose record names the file makes it public, so noting the use before
        // the change (which may still be refused) grants nothing.
        store.add_file_use(me, id.clone(), FileUse::GroupAvatar(gid)).await?.map_err(refusal)?;
    }
    let edit = groups::InfoEdit { avatar: Some(req.file_id), ..groups::InfoEdit::default() };
    let out = group_routes::apply(&store, &hub, &config, gid, me, move |s| groups::edit(s, me, edit)).await?;
    Ok(Json(group_routes::view(&out.after, me)))
}

#[derive(Serialize, ToSchema)]
pub struct StickerView {
    pub file_id: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Serialize, ToSchema)]
pub struct StickerPackView {
    pub id: u64,
    pub name: String,
    pub created_at: u64,
    pub stickers: Vec<StickerView>,
}

impl From<StickerPack> for StickerPackView {
    fn from(p: StickerPack) -> Self {
        StickerPackView {
            id: p.id,
            name: p.name,
            created_at: p.created_at,
            stickers: p.stickers.into_iter().map(|s| StickerView { file_id: s.file_id, width: s.width, height: s.height }).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct StickerList {
    pub packs: Vec<StickerPackView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPack {
    pub name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSticker {
    /// An image you uploaded.
    pub file_id: String,
}

fn admin_only(auth: &AuthUser) -> Result<(), ApiError> {
    if auth.user.is_admin { Ok(()) } else { Err(ApiError::forbidden("Only server administrators can change sticker packs.")) }
}

/// Every sticker pack with its stickers (anyone logged in).
#[utoipa::path(get, path = "/api/stickers", tag = "media", responses((status = 200, body = StickerList), (status = 401, body = ErrorBody)))]
pub async fn list_stickers(_auth: AuthUser, State(store): State<Store>) -> Result<Json<StickerList>, ApiError> {
    Ok(Json(StickerList { packs: store.sticker_packs().await?.into_iter().map(StickerPackView::from).collect() }))
}

/// Creates an empty sticker pack (server administrators).
#[utoipa::path(post, path = "/api/stickers/packs", tag = "media", request_body = NewPack,
    responses((status = 201, body = StickerPackView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_pack(
    auth: AuthUser,
    State(store): State<Store>,
    ApiJson(req): ApiJson<NewPack>,
) -> Result<(StatusCode, Json<StickerPackView>), ApiError> {
    admin_only(&auth)?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request("invalid", "A pack name is one line of 1 to 64 characters."));
    }
    let pack = store.create_sticker_pack(auth.user.id, name.to_owned()).await?;
    Ok((StatusCode::CREATED, Json(pack.into())))
}

/// Deletes a sticker pack (server administrators). Stickers already sent stay readable in their conversations.
#[utoipa::path(delete, path = "/api/stickers/packs/{id}", tag = "media", params(("id" = u64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_pack(auth: AuthUser, State(store): State<Store>, ApiPath(id): ApiPath<u64>) -> Result<StatusCode, ApiError> {
    admin_only(&auth)?;
    if store.delete_sticker_pack(id).await? { Ok(StatusCode::NO_CONTENT) } else { Err(ApiError::not_found("No such sticker pack.")) }
}

/// Adds an image you uploaded to a sticker pack (server administrators).
#[utoipa::path(post, path = "/api/stickers/packs/{id}/stickers", tag = "media", params(("id" = u64, Path)), request_body = NewSticker,
    responses((status = 200, body = StickerPackView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_sticker(
    auth: AuthUser,
    State(store): State<Store>,
    ApiPath(id): ApiPath<u64>,
    ApiJson(req): ApiJson<NewSticker>,
) -> Result<Json<StickerPackView>, ApiError> {
    admin_only(&auth)?;
    let pack = store.add_sticker(auth.user.id, id, req.file_id).await?.map_err(refusal)?;
    Ok(Json(pack.into()))
}

/// Removes a sticker from a pack (server administrators).
#[utoipa::path(delete, path = "/api/stickers/packs/{id}/stickers/{file_id}", tag = "media", params(("id" = u64, Path), ("file_id" = String, Path)),
    responses((status = 200, body = StickerPackView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_sticker(
    auth: AuthUser,
    State(store): State<Store>,
    ApiPath((id, file_id)): ApiPath<(u64, String)>,
) -> Result<Json<StickerPackView>, ApiError> {
    admin_only(&auth)?;
    let pack = store.remove_sticker(id, file_id).await?.ok_or_else(|| ApiError::not_found("No such sticker pack."))?;
    Ok(Json(pack.into()))
}
