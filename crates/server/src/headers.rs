//! Security headers on every response, and the content-type rule of the API: a POST, PATCH or
//! DELETE under `/api/` must be JSON (or a multipart upload marked `X-Twofold-Request: 1`), which
//! a browser cannot send cross-site without a CORS preflight that Twofold never grants.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::json::unsupported_media_type;
use crate::state::AppState;

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub async fn security_headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if state.is_https() {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

pub async fn require_json_writes(request: Request, next: Next) -> Response {
    let writes = matches!(
        *request.method(),
        Method::POST | Method::PATCH | Method::DELETE | Method::PUT
    );
    let path = request.uri().path();
    if writes
        && path.starts_with("/api/")
        && !acceptable_body_type(&request, path == crate::routes::sms_inbound::INBOUND_PATH)
    {
        return unsupported_media_type().into_response();
    }
    next.run(request).await
}

/// JSON; multipart with `X-Twofold-Request: 1`; and form-encoded only on the SMS gateway's
/// signed webhook (`form_allowed`).
fn acceptable_body_type(request: &Request, form_allowed: bool) -> bool {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" {
        return true;
    }
    if form_allowed {
        return essence == "application/x-www-form-urlencoded";
    }
    essence == "multipart/form-data"
        && request
            .headers()
            .get("x-twofold-request")
            .is_some_and(|value| value.as_bytes() == b"1")
}
