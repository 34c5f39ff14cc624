//! The embedded web client: files from `assets/` (the production build of `web/`) compiled into
//! the binary, served with SPA fallback, long caching for hashed files, and a strict CSP.
//!
//! The build keeps each text file of 1 KiB or more only as its gzip copy (`app.js.gz`, no
//! `app.js`): every browser accepts gzip, and one copy keeps the binary and the packages small
//! (docs/operations.md, "Sizes"). A client that accepts no gzip gets the file decompressed.

use std::borrow::Cow;
use std::io::Read;

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

/// An embedded file as stored: as it is, or gzipped.
enum Stored {
    Plain(Cow<'static, [u8]>),
    Gzip(Cow<'static, [u8]>),
}

/// The embedded file at `path` (not empty), in whichever form the build kept.
fn find(path: &str) -> Option<Stored> {
    if path.is_empty() {
        return None;
    }
    if let Some(f) = Assets::get(path) {
        return Some(Stored::Plain(f.data));
    }
    Assets::get(&format!("{path}.gz")).map(|f| Stored::Gzip(f.data))
}

/// Serves `uri` from the embedded files; unknown paths without an extension get `index.html`
/// so that client-side routes survive a reload.
pub async fn serve(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path == "api" || path.starts_with("api/") {
        return ApiError::not_found("No such API route.").into_response();
    }
    let (path, stored) = match find(path) {
        Some(f) => (path, f),
        None => {
            let last = path.rsplit('/').next().unwrap_or("");
            if last.contains('.') {
                return (StatusCode::NOT_FOUND, "not found").into_response();
            }
            match find("index.html") {
                Some(f) => ("index.html", f),
                None => return (StatusCode::NOT_FOUND, "not found").into_response(),
            }
        }
    };
    let mut resp_headers = HeaderMap::new();
    let body = match stored {
        Stored::Plain(data) => data.into_owned(),
        Stored::Gzip(data) if accepts(&headers, "gzip") => {
            resp_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            data.into_owned()
        }
        Stored::Gzip(data) => {
            let mut plain = Vec::with_capacity(data.len() * 4);
            if flate2::read::GzDecoder::new(&data[..]).read_to_end(&mut plain).is_err() {
                tracing::error!(path, "an embedded file does not decompress");
                return (StatusCode::INTERNAL_SERVER_ERROR, "broken build").into_response();
            }
            plain
        }
    };
    resp_headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        resp_headers.insert(header::CONTENT_TYPE, v);
    }
    // Vite puts content hashes in the names of everything under assets/; those never change.
    let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    resp_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp_headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    (resp_headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

    use super::{Assets, serve};

    async fn get(path: &str, accept: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut headers = HeaderMap::new();
        if let Some(a) = accept {
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(a).unwrap());
        }
        let resp = serve(path.parse().unwrap(), headers).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec();
        (status, headers, body)
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data).read_to_end(&mut out).unwrap();
        out
    }

    /// The hashed script that index.html loads first.
    fn entry_script(html: &str) -> String {
        let at = html.find("/assets/index-").expect("index.html loads the entry script");
        let end = html[at..].find('"').unwrap();
        html[at..at + end].to_owned()
    }

    #[tokio::test]
    async fn a_browser_gets_the_gzip_copy_and_other_clients_the_file_itself() {
        let (status, h, body) = get("/", Some("gzip, deflate, br, zstd")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_ENCODING], "gzip");
        assert_eq!(h[header::CONTENT_TYPE], "text/html");
        assert_eq!(h[header::VARY], "accept-encoding");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], super::CSP);
        let html = String::from_utf8(gunzip(&body)).unwrap();
        assert!(html.starts_with("<!doctype html>") || html.starts_with("<!DOCTYPE html>"), "{html}");

        for accept in [None, Some("identity"), Some("br"), Some("gzip;q=0, br")] {
            let (status, h, plain) = get("/", accept).await;
            assert_eq!(status, StatusCode::OK);
            assert!(h.get(header::CONTENT_ENCODING).is_none(), "{accept:?}");
            assert_eq!(String::from_utf8(plain).unwrap(), html, "{accept:?}");
        }

        let script = entry_script(&html);
        let (status, h, gz) = get(&script, Some("gzip")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "text/javascript");
        assert_eq!(h[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
        let (_, _, plain) = get(&script, None).await;
        assert_eq!(gunzip(&gz), plain);
        assert!(plain.len() > 1024);
    }

    #[tokio::test]
    async fn the_build_keeps_one_copy_of_each_file() {
        for name in Assets::iter() {
            assert!(!name.ends_with(".br"), "{name}: brotli copies are no longer built");
            if let Some(plain) = name.strip_suffix(".gz") {
                assert!(Assets::get(plain).is_none(), "{plain} is embedded twice, as itself and gzipped");
            }
        }
    }

    #[tokio::test]
    async fn small_and_binary_files_are_sent_as_they_are() {
        let (status, h, body) = get("/theme-init.js", Some("gzip")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(h.get(header::CONTENT_ENCODING).is_none());
        assert!(!body.is_empty() && body.len() < 1024);
        let icon = Assets::iter().find(|n| n.ends_with(".png")).expect("the build has PNG icons");
        let (status, h, body) = get(&format!("/{icon}"), Some("gzip")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "image/png");
        assert!(h.get(header::CONTENT_ENCODING).is_none());
        assert!(body.starts_with(b"\x89PNG"));
    }

    #[tokio::test]
    async fn client_routes_get_the_page_and_missing_files_and_api_routes_do_not() {
        let (_, _, index) = get("/", None).await;
        let (status, h, body) = get("/chat/some-conversation", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "text/html");
        assert_eq!(body, index);
        let (status, _, _) = get("/assets/missing-file.js", Some("gzip")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, h, _) = get("/api/nothing-here", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
    }
}
