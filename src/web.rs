//! The embedded web client: files from `assets/` (the production build of `web/`) compiled into
//! the binary, served with SPA fallback, long caching for hashed files, and a strict CSP.
//!
//! Where a `.br` or `.gz` twin of a file was built, it is sent to browsers that accept it.

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::http::ApiError;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The CSP of the web client: nothing but this origin, no inline scripts, no plugins, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

fn accepts(headers: &HeaderMap, encoding: &str) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|part| {
        let mut it = part.trim().split(';');
        it.next().is_some_and(|e| e.trim() == encoding) && it.all(|p| p.trim() != "q=0")
    })
}

/// Serves `uri` from the embedded files; unknown paths without an extension get `index.html`
/// so that client-side routes survive a reload.
pub async fn serve(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path == "api" || path.starts_with("api/") {
        return ApiError::not_found("No such API route.").into_response();
    }
    let (path, file) = match Assets::get(path).filter(|_| !path.is_empty()) {
        Some(f) => (path, f),
        None => {
            let last = path.rsplit('/').next().unwrap_or("");
            if last.contains('.') {
                return (StatusCode::NOT_FOUND, "not found").into_response();
            }
            match Assets::get("index.html") {
                Some(f) => ("index.html", f),
                None => return (StatusCode::NOT_FOUND, "not found").into_response(),
            }
        }
    };
    let mime = file.metadata.mimetype().to_owned();
    let mut resp_headers = HeaderMap::new();
    let mut body = file.data;
    for (enc, ext) in [("br", "br"), ("gzip", "gz")] {
        if accepts(&headers, enc)
            && let Some(c) = Assets::get(&format!("{path}.{ext}"))
        {
            body = c.data;
            resp_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
            break;
        }
    }
    resp_headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(v) = HeaderValue::from_str(&mime) {
        resp_headers.insert(header::CONTENT_TYPE, v);
    }
    // Vite puts content hashes in the names of everything under assets/; those never change.
    let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    resp_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp_headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    (resp_headers, body.into_owned()).into_response()
}
