//! `/api/v1/account/sessions…`: a signed-in user lists their live sessions and ends one or all
//! the others, with their password (OWASP ASVS 5.0 7.5.2); and
//! `/api/v1/admin/users/{id}/sign-out`, an administrator ending every session of a user (7.4.5).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use twofold_core::account_sessions::{SessionView, SessionsError};
use twofold_core::session::SessionState;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::gate::CurrentSession;
use crate::json::JsonBody;
use crate::routes::account_password::SessionsEndedResponse;
use crate::routes::admin::UserPath;
use crate::routes::login::EmptyBody;
use crate::state::AppState;

impl From<SessionsError> for ApiError {
    fn from(error: SessionsError) -> Self {
        match error {
            SessionsError::Reentry(error) => error.into(),
            SessionsError::NotFound => ApiError::not_found(),
            SessionsError::OwnAccount => ApiError::new(
                StatusCode::CONFLICT,
                "own_account",
                "administrators end their own other sessions from their account page",
            ),
            SessionsError::Unexpected(cause) => ApiError::internal(&format!("{cause:#}")),
        }
    }
}

/// One live session of the user.
#[derive(Serialize, ToSchema)]
pub struct SessionItem {
    /// An opaque name for the session (not its cookie, and not enough to use it); it changes
    /// whenever the session's cookie is renewed.
    #[schema(example = "5f0c6a0e0b9d4c1b8a7e6d5c4b3a2918")]
    pub id: String,
    /// The session making this request.
    pub current: bool,
    /// When its sign-in began.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: OffsetDateTime,
    /// `authenticated`, or the login step a session still stands at.
    #[schema(value_type = String, example = "authenticated")]
    pub state: SessionState,
}

impl From<SessionView> for SessionItem {
    fn from(view: SessionView) -> Self {
        Self {
            id: view.id.as_str().to_owned(),
            current: view.current,
            created_at: view.created_at,
            last_seen_at: view.last_seen_at,
            state: view.state,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionListResponse {
    /// Most recently used first.
    pub sessions: Vec<SessionItem>,
}

/// The current password, re-entered to end sessions.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndSessionsRequest {
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// The live sessions of the signed-in user (in any login state), most recently used first.
#[utoipa::path(get, path = "/api/v1/account/sessions", tag = "account",
    responses(
        (status = 200, body = SessionListResponse),
        (status = 401, description = "`unauthenticated`: no fully signed-in session", body = ErrorBody),
    ))]
pub async fn list_sessions(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
) -> Result<Json<SessionListResponse>, ApiError> {
    let sessions = state.service.list_sessions(&session).await?;
    Ok(Json(SessionListResponse {
        sessions: sessions.into_iter().map(SessionItem::from).collect(),
    }))
}

/// Ends one session of the signed-in user, named by its `id` from the list, after the current
/// password. Ending the current one signs out (the cookie is cleared).
#[utoipa::path(delete, path = "/api/v1/account/sessions/{id}", tag = "account", request_body = EndSessionsRequest,
    params(("id" = String, Path, description = "The session's id from the list")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "`invalid_credentials`: the password is not right; `unauthenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`: no live session of yours has this id", body = ErrorBody),
        (status = 422, description = "`invalid_body`", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords; retry after `Retry-After` seconds", body = ErrorBody),
    ))]
pub async fn end_session(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<EndSessionsRequest>,
) -> Result<Response, ApiError> {
    let ended = state
        .service
        .end_session(&session, &request.password, &id)
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if ended.current {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, state.cookies.clear_session_cookie());
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Ends every session of the signed-in user but this one, after the current password.
#[utoipa::path(post, path = "/api/v1/account/sessions/end-others", tag = "account", request_body = EndSessionsRequest,
    responses(
        (status = 200, body = SessionsEndedResponse),
        (status = 401, description = "`invalid_credentials`: the password is not right; `unauthenticated`", body = ErrorBody),
        (status = 422, description = "`invalid_body`", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords; retry after `Retry-After` seconds", body = ErrorBody),
    ))]
pub async fn end_other_sessions(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<EndSessionsRequest>,
) -> Result<Json<SessionsEndedResponse>, ApiError> {
    let sessions_ended = state
        .service
        .end_other_sessions(&session, &request.password)
        .await?;
    Ok(Json(SessionsEndedResponse { sessions_ended }))
}

/// Ends every session of the user (they must sign in again). Recorded in the audit log
/// (`signed_out`) before it is done.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/sign-out", tag = "admin", request_body = EmptyBody,
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, body = SessionsEndedResponse),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`own_account`: administrators end their own other sessions from their account", body = ErrorBody),
    ))]
pub async fn sign_out_user(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    UserPath(id): UserPath,
    JsonBody(_empty): JsonBody<EmptyBody>,
) -> Result<Json<SessionsEndedResponse>, ApiError> {
    let sessions_ended = state
        .service
        .sign_out_user(Some(session.user.id), id)
        .await?;
    Ok(Json(SessionsEndedResponse { sessions_ended }))
}
