//! `/api/v1/account/totp…` and `/api/v1/account/recovery-codes`: enrolling an authenticator app
//! and managing recovery codes.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use twofold_core::factors::FactorConfirmed;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::gate::CurrentSession;
use crate::json::JsonBody;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartTotpRequest {
    /// The current password; needed only to replace an active authenticator.
    #[schema(value_type = Option<String>, format = Password)]
    #[serde(default)]
    pub password: Option<SecretString>,
}

#[derive(Serialize, ToSchema)]
pub struct TotpEnrollmentResponse {
    /// Base32 secret (no padding), for typing into an app that cannot scan.
    #[schema(example = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")]
    pub secret: String,
    #[schema(
        example = "otpauth://totp/Twofold:alice%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Twofold&algorithm=SHA1&digits=6&period=30"
    )]
    pub otpauth_uri: String,
    /// The otpauth URI as a QR code, an SVG document.
    pub qr_svg: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    #[schema(example = "123456")]
    pub code: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesResponse {
    /// Shown once; each works once. Empty when the user already had a second factor.
    #[schema(example = json!(["7k2m-x9qp-4hvd-r3tw"]))]
    pub recovery_codes: Vec<String>,
}

/// Starts (re-)enrollment of an authenticator app.
#[utoipa::path(post, path = "/api/v1/account/totp", tag = "account", request_body = StartTotpRequest,
    responses(
        (status = 200, body = TotpEnrollmentResponse),
        (status = 401, description = "`unauthenticated`; or `invalid_credentials` when replacing an authenticator without the right password", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "`invalid_body`", body = ErrorBody),
    ))]
pub async fn start(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<StartTotpRequest>,
) -> Result<axum::Json<TotpEnrollmentResponse>, ApiError> {
    let enrollment = state
        .service
        .start_totp_enrollment(&session, request.password.as_ref())
        .await?;
    Ok(axum::Json(TotpEnrollmentResponse {
        secret: enrollment.secret,
        otpauth_uri: enrollment.otpauth_uri,
        qr_svg: enrollment.qr_svg,
    }))
}

/// Confirms the new authenticator with a code from the app; the session becomes fully
/// authenticated (new cookie) and the previous authenticator stops working.
#[utoipa::path(post, path = "/api/v1/account/totp/confirm", tag = "account", request_body = CodeRequest,
    responses(
        (status = 200, description = "Recovery codes when this is the first second factor, else `[]`", body = RecoveryCodesResponse),
        (status = 401, description = "`invalid_code` or `unauthenticated`", body = ErrorBody),
        (status = 409, description = "`no_pending_enrollment`: start the set-up first", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = ErrorBody),
    ))]
pub async fn confirm(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<CodeRequest>,
) -> Result<Response, ApiError> {
    let confirmed = state.service.confirm_totp(&session, &request.code).await?;
    Ok(confirmed_response(&state, confirmed))
}

/// The answer to a confirmed factor: the recovery codes (if any) and the rotated cookie.
pub fn confirmed_response(state: &AppState, confirmed: FactorConfirmed) -> Response {
    let mut response = axum::Json(RecoveryCodesResponse {
        recovery_codes: confirmed.recovery_codes,
    })
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        state.cookies.session_cookie(confirmed.token.expose()),
    );
    response
}

/// The proof that allows new recovery codes: the password, or a code emailed by
/// `/api/v1/account/recovery-codes/send-code`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRecoveryCodesRequest {
    #[schema(value_type = Option<String>, format = Password)]
    #[serde(default)]
    pub password: Option<SecretString>,
    #[schema(example = "123456")]
    #[serde(default)]
    pub code: Option<String>,
}

/// Makes a new set of recovery codes; every earlier code stops working. Needs the current
/// `password`, or instead the `code` emailed by `/api/v1/account/recovery-codes/send-code`.
#[utoipa::path(post, path = "/api/v1/account/recovery-codes", tag = "account", request_body = NewRecoveryCodesRequest,
    responses(
        (status = 200, body = RecoveryCodesResponse),
        (status = 401, description = "`invalid_credentials`, `invalid_code` or `unauthenticated`", body = ErrorBody),
        (status = 409, description = "`no_second_factor`", body = ErrorBody),
        (status = 422, description = "`invalid_body`: give exactly one of `password` and `code`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = ErrorBody),
    ))]
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<NewRecoveryCodesRequest>,
) -> Result<axum::Json<RecoveryCodesResponse>, ApiError> {
    let recovery_codes = match (request.password, request.code) {
        (Some(password), None) => {
            state
                .service
                .regenerate_recovery_codes(&session, &password)
                .await?
        }
        (None, Some(code)) => {
            state
                .service
                .regenerate_recovery_codes_with_code(&session, &code)
                .await?
        }
        _ => {
            return Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "give either the password or the emailed code",
            ));
        }
    };
    Ok(axum::Json(RecoveryCodesResponse { recovery_codes }))
}

/// Emails a code that allows new recovery codes without the password (seed 002).
#[utoipa::path(post, path = "/api/v1/account/recovery-codes/send-code", tag = "account", request_body = crate::routes::login::EmptyBody,
    responses(
        (status = 202, description = "The code is on its way"),
        (status = 409, description = "`no_second_factor`", body = ErrorBody),
        (status = 429, description = "`too_many_codes` or `too_many_attempts`, with `Retry-After`", body = ErrorBody),
    ))]
pub async fn send_recovery_codes_code(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(_empty): JsonBody<crate::routes::login::EmptyBody>,
) -> Result<Response, ApiError> {
    state.service.send_recovery_codes_code(&session).await?;
    Ok(axum::http::StatusCode::ACCEPTED.into_response())
}
