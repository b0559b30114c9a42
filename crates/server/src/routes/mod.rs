//! The route table: every route of the server with the session state it needs, in one place.

pub mod account;
pub mod login;
pub mod meta;
pub mod totp;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::error::ApiError;
use crate::gate::{
    AUTHENTICATED, ENROLLED_OR_ENROLLING, ENROLLMENT, Gate, PASSWORD_CHANGE, RouteEntry,
    RouteTable, SECOND_FACTOR,
};
use crate::pages;
use crate::state::AppState;
use crate::{headers, logging};

const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Every route and its gate.
#[rustfmt::skip] // one route per line reads as a table
pub fn table(state: AppState) -> RouteTable {
    use crate::pages::{account as account_page, login as login_pages, recovery as recovery_pages, totp as totp_pages, verify as verify_page};
    RouteTable::new(state)
        // JSON API
        .route("/api/v1/login", Gate::OptionalSession, post(login::login))
        .route("/api/v1/login/password", Gate::Api(PASSWORD_CHANGE), post(login::change_temporary_password))
        .route("/api/v1/login/verify", Gate::Api(SECOND_FACTOR), post(login::verify))
        .route("/api/v1/logout", Gate::OptionalSession, post(login::logout))
        .route("/api/v1/account", Gate::Api(AUTHENTICATED), get(account::account))
        .route("/api/v1/account/totp", Gate::Api(ENROLLED_OR_ENROLLING), post(totp::start))
        .route("/api/v1/account/totp/confirm", Gate::Api(ENROLLED_OR_ENROLLING), post(totp::confirm))
        .route("/api/v1/account/recovery-codes", Gate::Api(AUTHENTICATED), post(totp::regenerate_recovery_codes))
        .route("/api/openapi.json", Gate::Public, get(meta::openapi))
        .route("/healthz", Gate::Public, get(meta::healthz))
        // Pages
        .route("/", Gate::OptionalSession, get(login_pages::root))
        .route("/login", Gate::OptionalSession, get(login_pages::login_page).post(login_pages::login_submit))
        .route("/login/password", Gate::Page(PASSWORD_CHANGE), get(login_pages::password_page).post(login_pages::password_submit))
        .route("/login/enroll", Gate::Page(ENROLLMENT), get(login_pages::enroll_page))
        .route("/login/verify", Gate::Page(SECOND_FACTOR), get(verify_page::verify_page).post(verify_page::verify_submit))
        .route("/logout", Gate::OptionalSession, post(login_pages::logout_submit))
        .route("/account", Gate::Page(AUTHENTICATED), get(account_page::account_page))
        .route("/account/totp/setup", Gate::Page(ENROLLED_OR_ENROLLING), get(totp_pages::setup_page).post(totp_pages::setup_submit))
        .route("/account/totp/change", Gate::Page(AUTHENTICATED), get(totp_pages::change_page).post(totp_pages::change_submit))
        .route("/account/recovery-codes", Gate::Page(AUTHENTICATED), get(recovery_pages::new_codes_page).post(recovery_pages::new_codes_submit))
        .route("/static/app.css", Gate::Public, get(pages::stylesheet))
        .route("/static/print.js", Gate::Public, get(pages::print_script))
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
