//! Codes by SMS or email at the `second_factor` step, the fallback-phone reset, and turning
//! two-factor authentication off.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use twofold_core::user::Method;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::gate::CurrentSession;
use crate::json::JsonBody;
use crate::routes::login::{EmptyBody, step_response};
use crate::routes::phone::code_sent;
use crate::routes::totp::CodeRequest;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendCodeRequest {
    /// `sms` or `email`.
    #[schema(value_type = String, example = "sms")]
    pub method: Method,
}

/// Sends a sign-in code to the enrolled phone or address.
#[utoipa::path(post, path = "/api/v1/login/send-code", tag = "login", request_body = SendCodeRequest,
    responses(
        (status = 202, description = "The code is on its way", body = crate::routes::phone::CodeSentResponse),
        (status = 401, description = "`unauthenticated` without a session in state `second_factor`", body = ErrorBody),
        (status = 409, description = "`method_not_enrolled`", body = ErrorBody),
        (status = 429, description = "`too_many_codes` or `too_many_attempts`, with `Retry-After`", body = ErrorBody),
    ))]
pub async fn send_login_code(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<SendCodeRequest>,
) -> Result<Response, ApiError> {
    let sent = state
        .service
        .send_login_code(&session, request.method)
        .await?;
    Ok(code_sent(sent))
}

/// "Reset two-factor": texts a reset code, valid ten minutes, to the fallback phone.
#[utoipa::path(post, path = "/api/v1/login/reset/send-code", tag = "login", request_body = EmptyBody,
    responses(
        (status = 202, description = "The code is on its way", body = crate::routes::phone::CodeSentResponse),
        (status = 409, description = "`method_not_enrolled`: no fallback phone", body = ErrorBody),
        (status = 429, description = "`too_many_codes` or `too_many_attempts`, with `Retry-After`", body = ErrorBody),
    ))]
pub async fn send_reset_code(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(_empty): JsonBody<EmptyBody>,
) -> Result<Response, ApiError> {
    let sent = state.service.send_reset_code(&session).await?;
    Ok(code_sent(sent))
}

/// With the reset code: removes the user's second factors; the login moves to
/// `enrollment_required`.
#[utoipa::path(post, path = "/api/v1/login/reset", tag = "login", request_body = CodeRequest,
    responses(
        (status = 200, description = "`{\"state\": \"enrollment_required\", \"methods\": [...]}` with a new session cookie", body = crate::routes::login::LoginStateResponse),
        (status = 401, description = "`invalid_code`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = ErrorBody),
    ))]
pub async fn reset(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<CodeRequest>,
) -> Result<Response, ApiError> {
    let step = state
        .service
        .reset_with_fallback_phone(&session, &request.code)
        .await?;
    Ok(step_response(&state, step))
}

/// Emails the code that turns two-factor authentication off.
#[utoipa::path(post, path = "/api/v1/account/two-factor/disable/send-code", tag = "account", request_body = EmptyBody,
    responses(
        (status = 202, description = "The code is on its way"),
        (status = 403, description = "`two_factor_required`: an administrator or the policy requires it", body = ErrorBody),
        (status = 409, description = "`no_second_factor`", body = ErrorBody),
        (status = 429, description = "`too_many_codes`, with `Retry-After`", body = ErrorBody),
    ))]
pub async fn send_disable_code(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(_empty): JsonBody<EmptyBody>,
) -> Result<Response, ApiError> {
    state.service.send_disable_code(&session).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Turns two-factor authentication off with the emailed code: every factor and recovery code
/// is removed and the user's other sessions end.
#[utoipa::path(post, path = "/api/v1/account/two-factor/disable", tag = "account", request_body = CodeRequest,
    responses(
        (status = 200, description = "`{\"two_factor\": \"off\"}`"),
        (status = 401, description = "`invalid_code`", body = ErrorBody),
        (status = 403, description = "`two_factor_required`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = ErrorBody),
    ))]
pub async fn disable(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<CodeRequest>,
) -> Result<Response, ApiError> {
    state
        .service
        .disable_two_factor(&session, &request.code)
        .await?;
    Ok(axum::Json(serde_json::json!({"two_factor": "off"})).into_response())
}
