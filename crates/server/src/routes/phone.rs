//! `/api/v1/account/phone…`: a phone as the SMS factor and fallback phone, verified by a code
//! sent to it or by the person texting a shown code to the system number.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use twofold_core::two_factor::SentTo;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::gate::CurrentSession;
use crate::json::JsonBody;
use crate::routes::login::EmptyBody;
use crate::routes::totp::{CodeRequest, confirmed_response};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneRequest {
    /// E.164 (`+441212345678`), or a national number with `country`.
    #[schema(example = "+447400123456")]
    pub phone: String,
    /// ISO 3166 alpha-2 country of a national number.
    #[schema(example = "GB")]
    #[serde(default)]
    pub country: Option<String>,
    /// The current password; needed only to replace the user's phone.
    #[schema(value_type = Option<String>, format = Password)]
    #[serde(default)]
    pub password: Option<SecretString>,
}

/// Where a code went, masked for display.
#[derive(Serialize, ToSchema)]
pub struct CodeSentResponse {
    /// `sms` or `email`.
    #[schema(example = "sms")]
    pub channel: &'static str,
    /// The phone with all but its last two digits hidden, or the email address.
    #[schema(example = "+••••••••••23")]
    pub to: String,
}

/// 202 with where the code went.
pub fn code_sent(sent: SentTo) -> Response {
    let body = match sent {
        SentTo::Phone(masked) => CodeSentResponse {
            channel: "sms",
            to: masked,
        },
        SentTo::Email(address) => CodeSentResponse {
            channel: "email",
            to: address,
        },
    };
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}

/// Sends a verification code by SMS to a new phone.
#[utoipa::path(post, path = "/api/v1/account/phone", tag = "account", request_body = PhoneRequest,
    responses(
        (status = 202, description = "The code is on its way", body = CodeSentResponse),
        (status = 401, description = "`unauthenticated`; or `invalid_credentials` when replacing the phone without the right password", body = ErrorBody),
        (status = 403, description = "`method_not_allowed`: the policy forbids SMS", body = ErrorBody),
        (status = 422, description = "`invalid_phone`", body = ErrorBody),
        (status = 429, description = "`too_many_codes` or `too_many_attempts`, with `Retry-After`", body = ErrorBody),
    ))]
pub async fn start(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<PhoneRequest>,
) -> Result<Response, ApiError> {
    let sent = state
        .service
        .start_phone_enrollment(
            &session,
            &request.phone,
            request.country.as_deref(),
            request.password.as_ref(),
        )
        .await?;
    Ok(code_sent(sent))
}

/// Confirms the phone with the code sent to it; it becomes the SMS factor and fallback phone.
#[utoipa::path(post, path = "/api/v1/account/phone/confirm", tag = "account", request_body = CodeRequest,
    responses(
        (status = 200, description = "Recovery codes when this is the first second factor, else `[]`; a new session cookie", body = crate::routes::totp::RecoveryCodesResponse),
        (status = 401, description = "`invalid_code` or `unauthenticated`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = ErrorBody),
    ))]
pub async fn confirm(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<CodeRequest>,
) -> Result<Response, ApiError> {
    let confirmed = state.service.confirm_phone(&session, &request.code).await?;
    Ok(confirmed_response(&state, confirmed))
}

#[derive(Serialize, ToSchema)]
pub struct InboundChallengeResponse {
    /// Text the code to this number.
    #[schema(example = "+15005550006")]
    pub system_number: String,
    #[schema(example = "123456")]
    pub code: String,
    /// The phone the text must come from, masked.
    pub from: String,
}

/// Starts verifying a phone by text *from* it: answers the code to send and the number to send
/// it to. 404 when the server has no inbound number.
#[utoipa::path(post, path = "/api/v1/account/phone/inbound", tag = "account", request_body = PhoneRequest,
    responses(
        (status = 200, body = InboundChallengeResponse),
        (status = 404, description = "`not_found`: inbound verification is not configured", body = ErrorBody),
        (status = 422, description = "`invalid_phone`", body = ErrorBody),
    ))]
pub async fn start_inbound(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<PhoneRequest>,
) -> Result<axum::Json<InboundChallengeResponse>, ApiError> {
    let challenge = state
        .service
        .start_inbound_phone_check(
            &session,
            &request.phone,
            request.country.as_deref(),
            request.password.as_ref(),
        )
        .await?;
    Ok(axum::Json(InboundChallengeResponse {
        system_number: challenge.system_number,
        code: challenge.code,
        from: challenge.phone_masked,
    }))
}

/// Completes the inbound check once the text has arrived.
#[utoipa::path(post, path = "/api/v1/account/phone/inbound/confirm", tag = "account", request_body = EmptyBody,
    responses(
        (status = 200, description = "As `/phone/confirm`", body = crate::routes::totp::RecoveryCodesResponse),
        (status = 404, description = "`not_found`: inbound verification is not configured", body = ErrorBody),
        (status = 409, description = "`sms_not_received`: the text has not arrived (yet)", body = ErrorBody),
    ))]
pub async fn confirm_inbound(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(_empty): JsonBody<EmptyBody>,
) -> Result<Response, ApiError> {
    let confirmed = state.service.confirm_inbound_phone(&session).await?;
    Ok(confirmed_response(&state, confirmed))
}
