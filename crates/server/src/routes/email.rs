//! `/api/v1/account/email…` and `/api/v1/account/email-2fa…`: verifying the account's address,
//! and email codes as a second factor.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorBody};
use crate::gate::CurrentSession;
use crate::json::JsonBody;
use crate::routes::login::EmptyBody;
use crate::routes::totp::{CodeRequest, confirmed_response};
use crate::state::AppState;

/// Emails a code (and a link) that verifies the account's address.
#[utoipa::path(post, path = "/api/v1/account/email/send-code", tag = "account", request_body = EmptyBody,
    responses(
        (status = 202, description = "The code is on its way"),
        (status = 409, description = "`email_already_verified`", body = ErrorBody),
        (status = 429, description = "`too_many_codes`, with `Retry-After`", body = ErrorBody),
    ))]
pub async fn send_verification(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(_empty): JsonBody<EmptyBody>,
) -> Result<Response, ApiError> {
    state.service.send_email_verification(&session).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Marks the address verified with the emailed code.
#[utoipa::path(post, path = "/api/v1/account/email/verify", tag = "account", request_body = CodeRequest,
    responses(
        (status = 200, description = "`{\"email_verified\": true}`"),
        (status = 401, description = "`invalid_code`", body = ErrorBody),
        (status = 409, description = "`email_already_verified`", body = ErrorBody),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<CodeRequest>,
) -> Result<Response, ApiError> {
    state.service.verify_email(&session, &request.code).await?;
    Ok(axum::Json(serde_json::json!({"email_verified": true})).into_response())
}

/// Emails the code that turns on email codes as a second factor.
#[utoipa::path(post, path = "/api/v1/account/email-2fa/send-code", tag = "account", request_body = EmptyBody,
    responses(
        (status = 202, description = "The code is on its way"),
        (status = 403, description = "`email_not_verified`, or `method_not_allowed` by the policy", body = ErrorBody),
        (status = 429, description = "`too_many_codes` or `too_many_attempts`, with `Retry-After`", body = ErrorBody),
    ))]
pub async fn start_factor(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(_empty): JsonBody<EmptyBody>,
) -> Result<Response, ApiError> {
    state.service.start_email_factor(&session).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Turns on email codes with the emailed code.
#[utoipa::path(post, path = "/api/v1/account/email-2fa/confirm", tag = "account", request_body = CodeRequest,
    responses(
        (status = 200, description = "Recovery codes when this is the first second factor, else `[]`; a new session cookie", body = crate::routes::totp::RecoveryCodesResponse),
        (status = 401, description = "`invalid_code`", body = ErrorBody),
        (status = 403, description = "`email_not_verified`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = ErrorBody),
    ))]
pub async fn confirm_factor(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<CodeRequest>,
) -> Result<Response, ApiError> {
    let confirmed = state
        .service
        .confirm_email_factor(&session, &request.code)
        .await?;
    Ok(confirmed_response(&state, confirmed))
}
