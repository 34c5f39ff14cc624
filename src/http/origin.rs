//! The Origin check: a browser request that changes state, or opens the WebSocket, must come
//! from the server's own origin (or one listed in `allowed_origins`). This is what stops another
//! site from using a visitor's cookie (CSRF, WebSocket hijacking). Requests without an `Origin`
//! header come from non-browser clients, which carry a Bearer token instead of ambient cookies.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

#[derive(Clone, Debug, Default)]
pub struct OriginPolicy {
    pub allowed: Arc<Vec<String>>,
}

impl OriginPolicy {
    /// Whether a request with this `Origin` and `Host` may proceed.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        let origin = origin.trim_end_matches('/');
        if self.allowed.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin)) {
            return true;
        }
        // "null" origins (sandboxed frames, file://) are never trusted.
        let Some(authority) = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) else {
            return false;
        };
        host.is_some_and(|h| h.eq_ignore_ascii_case(authority))
    }
}

/// Middleware: refuses cross-origin state changes and WebSocket upgrades with 403 `bad_origin`.
pub async fn check_origin(policy: axum::extract::State<OriginPolicy>, req: Request, next: Next) -> Response {
    let guarded = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) || req.headers().contains_key(header::UPGRADE);
    if guarded {
        let h = req.headers();
        let origin = h.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
        if !policy.allows(origin, host) {
            tracing::info!(origin, host, path = %req.uri().path(), "refused a cross-origin request");
            return ApiError::forbidden("This request came from another site.").with_code("bad_origin").into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_and_listed_origins_pass_others_do_not() {
        let p = OriginPolicy { allowed: Arc::new(vec!["https://chat.example.org".into()]) };
        assert!(p.allows(None, Some("x")));
        assert!(p.allows(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080")));
        assert!(p.allows(Some("https://chat.example.org/"), Some("internal:8080")));
        for (o, h) in [
            ("https://evil.example", Some("127.0.0.1:8080")),
            ("http://127.0.0.1:8081", Some("127.0.0.1:8080")),
            ("null", Some("127.0.0.1:8080")),
            ("http://127.0.0.1:8080", None),
            ("http://127.0.0.1:8080.evil.example", Some("127.0.0.1:8080")),
        ] {
            assert!(!p.allows(Some(o), h), "{o}");
        }
    }
}
