//! The route table: every route of the server with the session state it needs, in one place.

pub mod account;
pub mod login;
pub mod meta;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::error::ApiError;
use crate::gate::{AUTHENTICATED, ENROLLMENT, Gate, PASSWORD_CHANGE, RouteEntry, RouteTable};
use crate::pages;
use crate::state::AppState;
use crate::{headers, logging};

const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Every route and its gate.
pub fn table(state: AppState) -> RouteTable {
    RouteTable::new(state)
        // JSON API
        .route("/api/v1/login", Gate::OptionalSession, post(login::login))
        .route(
            "/api/v1/login/password",
            Gate::Api(PASSWORD_CHANGE),
            post(login::change_temporary_password),
        )
        .route("/api/v1/logout", Gate::OptionalSession, post(login::logout))
        .route(
            "/api/v1/account",
            Gate::Api(AUTHENTICATED),
            get(account::account),
        )
        .route("/api/openapi.json", Gate::Public, get(meta::openapi))
        .route("/healthz", Gate::Public, get(meta::healthz))
        // Pages
        .route("/", Gate::OptionalSession, get(pages::login::root))
        .route(
            "/login",
            Gate::OptionalSession,
            get(pages::login::login_page).post(pages::login::login_submit),
        )
        .route(
            "/login/password",
            Gate::Page(PASSWORD_CHANGE),
            get(pages::login::password_page).post(pages::login::password_submit),
        )
        .route(
            "/login/enroll",
            Gate::Page(ENROLLMENT),
            get(pages::login::enroll_page),
        )
        .route(
            "/logout",
            Gate::OptionalSession,
            post(pages::login::logout_submit),
        )
        .route(
            "/account",
            Gate::Page(AUTHENTICATED),
            get(pages::account::account_page),
        )
        .route("/static/app.css", Gate::Public, get(pages::stylesheet))
}

/// The whole application, ready to serve, and the inventory of its routes.
pub fn app(state: AppState) -> (Router, Vec<RouteEntry>) {
    let body_limit = state.http.body_limit_bytes;
    let (router, inventory) = table(state.clone()).into_parts();
    let router = router
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(headers::require_json_writes))
        .layer(DefaultBodyLimit::max(body_limit))
        // A body that trickles in slower than this is abandoned (slow-body attacks).
        .layer(RequestBodyTimeoutLayer::new(BODY_READ_TIMEOUT))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            headers::security_headers,
        ))
        .layer(middleware::from_fn(logging::log_request))
        .with_state(state);
    (router, inventory)
}

async fn fallback() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed here",
    )
}
