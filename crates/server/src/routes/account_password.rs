//! `POST /api/v1/account/password`: a signed-in user changes their own password with the
//! current one (OWASP ASVS 5.0 6.2.2, 6.2.3).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use twofold_core::account_password::PasswordChangeError;
use twofold_core::login::LoginError;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::gate::CurrentSession;
use crate::json::JsonBody;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub current_password: SecretString,
    #[schema(value_type = String, format = Password)]
    pub new_password: SecretString,
}

#[derive(Serialize, ToSchema)]
pub struct SessionsEndedResponse {
    /// How many sessions ended (other than the caller's).
    pub sessions_ended: u64,
}

impl From<PasswordChangeError> for ApiError {
    fn from(error: PasswordChangeError) -> Self {
        match error {
            PasswordChangeError::Reentry(error) => error.into(),
            PasswordChangeError::WeakPassword(reason) => LoginError::WeakPassword(reason).into(),
            PasswordChangeError::SameAsCurrent => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "weak_password",
                "the new password must differ from the current one",
            ),
            PasswordChangeError::Session(error) => error.into(),
        }
    }
}

/// Changes the password of a fully signed-in user. Every other session of the user ends, this
/// one continues under a new cookie (the old one stops working), the change is in the audit
/// log (`password_changed`) and the user is emailed about it.
#[utoipa::path(post, path = "/api/v1/account/password", tag = "account", request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed; a new session cookie is set", body = SessionsEndedResponse),
        (status = 401, description = "`invalid_credentials`: the current password is not right; `unauthenticated` without a fully signed-in session", body = ErrorBody),
        (status = 422, description = "`weak_password` with the reason (also when it is the current password); `invalid_body`", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords; retry after `Retry-After` seconds", body = ErrorBody),
        (status = 503, description = "Overloaded; retry after `Retry-After` seconds", body = ErrorBody),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<ChangePasswordRequest>,
) -> Result<Response, ApiError> {
    let changed = state
        .service
        .change_password(&session, &request.current_password, &request.new_password)
        .await?;
    let mut response = Json(SessionsEndedResponse {
        sessions_ended: changed.sessions_ended,
    })
    .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::SET_COOKIE,
        state.cookies.session_cookie(changed.token.expose()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
