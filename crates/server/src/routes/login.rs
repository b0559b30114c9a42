//! `/api/v1/login…` and `/api/v1/logout`: the JSON side of the login state machine.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use twofold_core::login::LoginStep;
use twofold_core::session::SessionState;
use twofold_core::user::Method;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::gate::{CurrentSession, MaybeSession};
use crate::json::JsonBody;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "alice@example.com")]
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub new_password: SecretString,
}

/// The body of calls that take none: `{}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

/// Where the login stands, and what the next step may use.
#[derive(Serialize, ToSchema)]
pub struct LoginStateResponse {
    #[schema(value_type = String, example = "second_factor")]
    pub state: SessionState,
    #[schema(value_type = Vec<String>, example = json!(["totp", "recovery_code"]))]
    pub methods: Vec<Method>,
}

/// The answer to a login step: the state as JSON and the rotated session cookie.
pub fn step_response(state: &AppState, step: LoginStep) -> Response {
    let body = LoginStateResponse {
        state: step.state,
        methods: step.methods,
    };
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        state.cookies.session_cookie(step.token.expose()),
    );
    response
}

/// Checks email and password and starts a session.
#[utoipa::path(post, path = "/api/v1/login", tag = "login", request_body = LoginRequest,
    responses(
        (status = 200, description = "The password was right; the body says what comes next", body = LoginStateResponse),
        (status = 400, description = "`malformed_json`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: unknown email or wrong password (one answer for both)", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many wrong passwords for this address, or failures from this client; even the right password waits `Retry-After` seconds", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = ErrorBody),
        (status = 422, description = "`invalid_body`: a field is missing, unknown or of the wrong type", body = ErrorBody),
        (status = 503, description = "Overloaded; retry after `Retry-After` seconds", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    MaybeSession(previous): MaybeSession,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let step = state
        .service
        .login(&request.email, &request.password)
        .await?;
    // A new login replaces whatever session this client held.
    if let Some(previous) = previous {
        state.service.logout(&previous.id_hash).await?;
    }
    Ok(step_response(&state, step))
}

/// Replaces a temporary password (state `password_change_required`).
#[utoipa::path(post, path = "/api/v1/login/password", tag = "login", request_body = NewPasswordRequest,
    responses(
        (status = 200, description = "Password set; the body says what comes next", body = LoginStateResponse),
        (status = 401, description = "No session in state `password_change_required`", body = ErrorBody),
        (status = 400, description = "`malformed_json`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = ErrorBody),
        (status = 422, description = "`weak_password`, with the reason; or `invalid_body`", body = ErrorBody),
        (status = 503, description = "`overloaded`; retry after `Retry-After` seconds", body = ErrorBody),
    ))]
pub async fn change_temporary_password(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<NewPasswordRequest>,
) -> Result<Response, ApiError> {
    let step = state
        .service
        .change_temporary_password(&session, &request.new_password)
        .await?;
    Ok(step_response(&state, step))
}

/// Ends the session (in any state). Answers 204 also when there was none.
#[utoipa::path(post, path = "/api/v1/logout", tag = "login", request_body = EmptyBody,
    responses(
        (status = 204, description = "Signed out"),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "The body is not `{}`", body = ErrorBody),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    MaybeSession(session): MaybeSession,
    JsonBody(EmptyBody {}): JsonBody<EmptyBody>,
) -> Result<Response, ApiError> {
    if let Some(session) = session {
        state.service.logout(&session.id_hash).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, state.cookies.clear_session_cookie());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// `totp`, `sms`, `email` or `recovery_code`: one of the methods the login step offered.
    #[schema(value_type = String, example = "totp")]
    pub method: Method,
    #[schema(example = "123456")]
    pub code: String,
}

/// The `second_factor` step: a code from the authenticator app, a code sent by SMS or email
/// (`/api/v1/login/send-code`), or a recovery code. Each code is
/// accepted once.
#[utoipa::path(post, path = "/api/v1/login/verify", tag = "login", request_body = VerifyRequest,
    responses(
        (status = 200, description = "`{\"state\": \"authenticated\"}` with a new session cookie", body = LoginStateResponse),
        (status = 401, description = "`invalid_code`; or `unauthenticated` without a session in state `second_factor`", body = ErrorBody),
        (status = 422, description = "`invalid_body`: unknown method or wrong shape", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = ErrorBody),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<VerifyRequest>,
) -> Result<Response, ApiError> {
    let step = state
        .service
        .verify_second_factor(&session, request.method, &request.code)
        .await?;
    Ok(step_response(&state, step))
}
