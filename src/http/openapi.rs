//! Completes the generated OpenAPI document with what every route shares, so that each route's
//! own attribute lists only what is particular to it: how requests authenticate (a Bearer token
//! or the session cookie, on every route that does not declare `security(())`), and the errors
//! the shared extractors answer with: 401 without a session, 400 for a path, query or body that
//! does not parse, 413 and 415 for JSON bodies that are too large or not JSON.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, RefOr};

use super::auth::SESSION_COOKIE;

const BEARER: &str = "bearer";
const COOKIE: &str = "session_cookie";

pub fn complete(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(BEARER, SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    components.add_security_scheme(COOKIE, SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))));
    for item in doc.paths.paths.values_mut() {
        let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for op in ops.into_iter().flatten() {
            complete_operation(op);
        }
    }
}

fn complete_operation(op: &mut Operation) {
    // Routes open to anyone say so with `security(())`; all others need a session.
    if op.security.is_none() {
        let either = [BEARER, COOKIE].map(|s| SecurityRequirement::new(s, Vec::<String>::new()));
        op.security = Some(either.into());
        add_error(op, "401", "not logged in, or the session ended");
    }
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let json_body = op.request_body.as_ref().is_some_and(|b| b.content.contains_key("application/json"));
    if has_params || op.request_body.is_some() {
        add_error(op, "400", "the path, query or body could not be read");
    }
    if json_body {
        add_error(op, "413", "the body is larger than `limits.max_body_bytes`");
        add_error(op, "415", "the body is not sent as `Content-Type: application/json`");
    }
}

/// Adds an `ErrorBody` response for `status` unless the route documents that status itself.
fn add_error(op: &mut Operation, status: &str, description: &str) {
    op.responses.responses.entry(status.to_owned()).or_insert_with(|| {
        let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
        RefOr::T(ResponseBuilder::new().description(description).content("application/json", content).build())
    });
}
