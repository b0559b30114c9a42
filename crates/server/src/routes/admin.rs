//! `/api/v1/admin/users…`: what administrators do to users (seed 004): list and search them
//! with their two-factor status, create them, require or reset 2FA, disable or enable them,
//! and send the invitation again. Every call is behind [`crate::gate::Gate::AdminApi`].

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use twofold_core::accounts::NewAccount;
use twofold_core::admin::{AdminUser, MAX_PAGE};
use twofold_core::user::{Method, TwoFactorStatus, UserId};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::gate::CurrentSession;
use crate::json::JsonBody;
use crate::routes::login::EmptyBody;
use crate::routes::query::{QueryParams, number};
use crate::state::AppState;

/// Users per page when the query names no limit.
const DEFAULT_PAGE: u32 = 50;

/// A user as administrators see them.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    #[schema(example = "0b6f2f3e-8d0c-4f57-9f7e-2a1c3b4d5e6f")]
    pub id: String,
    #[schema(example = "alice@example.com")]
    pub email: String,
    /// `off`, `pending` (required, nothing enrolled yet: set up at the next sign-in) or
    /// `enabled`.
    #[schema(value_type = String, example = "pending")]
    pub two_factor: TwoFactorStatus,
    /// The second factors the user signs in with (recovery codes are not listed).
    #[schema(value_type = Vec<String>, example = json!(["totp"]))]
    pub methods: Vec<Method>,
    pub admin: bool,
    /// An administrator requires a second factor of this user.
    pub require_2fa: bool,
    pub disabled: bool,
    /// The user still has a temporary password (has not accepted the invitation).
    pub password_change_required: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Null when the user never signed in.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_sign_in_at: Option<OffsetDateTime>,
}

impl From<AdminUser> for UserView {
    fn from(listed: AdminUser) -> Self {
        let user = listed.user;
        Self {
            id: user.id.to_string(),
            email: user.email.to_string(),
            two_factor: listed.two_factor,
            methods: listed.methods,
            admin: user.is_admin,
            require_2fa: user.require_2fa,
            disabled: user.disabled,
            password_change_required: user.password_change_required,
            created_at: user.created_at,
            last_sign_in_at: user.last_login_at,
        }
    }
}

/// The search and page of the user list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Only users whose email address contains this text (ignoring case).
    pub query: Option<String>,
    /// How many matching users to skip (default 0).
    pub offset: Option<String>,
    /// Users per page, 1 to 200 (default 50).
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserListResponse {
    /// Ordered by email address.
    pub users: Vec<UserView>,
    /// How many users match the search in all.
    pub total: u64,
    pub offset: u64,
    pub limit: u32,
}

/// Lists users by email address, optionally only those matching `query`.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", params(UserListQuery),
    responses(
        (status = 200, body = UserListResponse),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an administrator signed in with two factors", body = ErrorBody),
        (status = 422, description = "`invalid_query`: `offset` or `limit` is not a number in range", body = ErrorBody),
    ))]
pub async fn list_users(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<UserListQuery>,
) -> Result<Json<UserListResponse>, ApiError> {
    let offset = number("offset", query.offset.as_deref(), 0, i64::MAX as u64)?.unwrap_or(0);
    let limit = number("limit", query.limit.as_deref(), 1, MAX_PAGE)?.unwrap_or(DEFAULT_PAGE);
    let page = state
        .service
        .list_users(query.query.as_deref(), offset, limit)
        .await?;
    Ok(Json(UserListResponse {
        users: page.users.into_iter().map(UserView::from).collect(),
        total: page.total,
        offset,
        limit,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    #[schema(example = "bob@example.com")]
    pub email: String,
    /// The user's password; without it a temporary one is generated, returned once, and must
    /// be changed at the first sign-in.
    #[schema(value_type = Option<String>, format = Password)]
    #[serde(default)]
    pub password: Option<SecretString>,
    #[serde(default)]
    pub admin: bool,
    /// Require a second factor: the user sets one up at the first sign-in.
    #[serde(default)]
    pub require_2fa: bool,
    /// Send the generated temporary password to the new user as a secure message instead of
    /// returning it: the link in their email lets them set up a second factor, then shows the
    /// password. Not with `password`.
    #[serde(default)]
    pub deliver_by_message: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedUserResponse {
    #[serde(flatten)]
    pub user: UserView,
    /// The generated temporary password, shown this once; absent when a password was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary_password: Option<String>,
    /// With `deliver_by_message`: the secure message holding the temporary password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// Creates a user and emails them that the account exists (never the password).
#[utoipa::path(post, path = "/api/v1/admin/users", tag = "admin", request_body = NewUserRequest,
    responses(
        (status = 201, description = "Created; `Location` names the user", body = CreatedUserResponse),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        (status = 422, description = "`invalid_email`, `weak_password` or `invalid_body`", body = ErrorBody),
    ))]
pub async fn create_user(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<NewUserRequest>,
) -> Result<Response, ApiError> {
    if request.deliver_by_message {
        return create_user_by_message(&state, &session, request).await;
    }
    let created = state
        .service
        .create_account(
            Some(session.user.id),
            NewAccount {
                email: &request.email,
                password: request.password.as_ref(),
                is_admin: request.admin,
                require_2fa: request.require_2fa,
            },
        )
        .await?;
    let user = state.service.admin_user(created.user.id).await?;
    let location = format!("/api/v1/admin/users/{}", created.user.id);
    let body = CreatedUserResponse {
        user: user.into(),
        temporary_password: created
            .temporary_password
            .map(|secret| secret.expose_secret().to_owned()),
        message_id: None,
    };
    Ok(created_response(&location, body))
}

fn created_response(location: &str, body: CreatedUserResponse) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `deliver_by_message`: the temporary password goes to the user as a secure message.
async fn create_user_by_message(
    state: &AppState,
    session: &twofold_core::login::ActiveSession,
    request: NewUserRequest,
) -> Result<Response, ApiError> {
    if request.password.is_some() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "deliver_by_message sends a generated temporary password; leave out password",
        ));
    }
    let created = state
        .service
        .create_account_by_message(
            &session.user,
            NewAccount {
                email: &request.email,
                password: None,
                is_admin: request.admin,
                require_2fa: request.require_2fa,
            },
            None,
        )
        .await?;
    let user = state.service.admin_user(created.user.id).await?;
    let location = format!("/api/v1/admin/users/{}", created.user.id);
    let body = CreatedUserResponse {
        user: user.into(),
        temporary_password: None,
        message_id: Some(created.message_id.to_string()),
    };
    Ok(created_response(&location, body))
}

/// The user named by the path's `{id}`: a malformed id names nobody, so it is a 404 like an
/// unknown one.
#[derive(Debug, Clone, Copy)]
pub struct UserPath(pub UserId);

impl<S: Send + Sync> FromRequestParts<S> for UserPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found())?;
        id.parse().map(UserPath).map_err(|_| ApiError::not_found())
    }
}

/// One user.
#[utoipa::path(get, path = "/api/v1/admin/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, body = UserView),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
pub async fn get_user(
    State(state): State<AppState>,
    UserPath(id): UserPath,
) -> Result<Json<UserView>, ApiError> {
    let user = state.service.admin_user(id).await?;
    Ok(Json(user.into()))
}

/// The settings a `PATCH` changes; absent ones stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChangeRequest {
    /// Require (or stop requiring) a second factor.
    #[serde(default)]
    pub require_2fa: Option<bool>,
    /// Disable the account (it cannot sign in, and its sessions end at once) or enable it.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// Changes a user: requires 2FA or stops requiring it, disables or enables the account.
/// Stopping the requirement keeps the user's factors (the status stays `enabled` while one
/// is enrolled).
#[utoipa::path(patch, path = "/api/v1/admin/users/{id}", tag = "admin", request_body = UserChangeRequest,
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, body = UserView),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`own_account`: administrators cannot disable themselves", body = ErrorBody),
        (status = 422, description = "`invalid_body`: no setting given, or an unknown one", body = ErrorBody),
    ))]
pub async fn change_user(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    UserPath(id): UserPath,
    JsonBody(request): JsonBody<UserChangeRequest>,
) -> Result<Json<UserView>, ApiError> {
    if request.require_2fa.is_none() && request.disabled.is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "give at least one of require_2fa and disabled",
        ));
    }
    let actor = Some(session.user.id);
    let mut user = None;
    // Disabling first: when it is refused (own account) nothing else has changed either.
    if let Some(disabled) = request.disabled {
        user = Some(state.service.set_disabled(actor, id, disabled).await?);
    }
    if let Some(required) = request.require_2fa {
        user = Some(
            state
                .service
                .set_require_two_factor(actor, id, required)
                .await?,
        );
    }
    let user = match user {
        Some(user) => user,
        None => state.service.admin_user(id).await?,
    };
    Ok(Json(user.into()))
}

/// Removes every second factor of the user (the lost-device path) and ends their sessions;
/// the user is emailed about it. If 2FA is required they are `pending` again.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/reset-2fa", tag = "admin", request_body = EmptyBody,
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, body = UserView),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`own_account`: administrators do not reset their own second factors here", body = ErrorBody),
    ))]
pub async fn reset_two_factor(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    UserPath(id): UserPath,
    JsonBody(_empty): JsonBody<EmptyBody>,
) -> Result<Json<UserView>, ApiError> {
    let user = state
        .service
        .reset_two_factor(Some(session.user.id), id)
        .await?;
    Ok(Json(user.into()))
}

#[derive(Serialize, ToSchema)]
pub struct InvitationResponse {
    /// The new temporary password, shown this once; the earlier one stops working.
    pub temporary_password: String,
}

/// Sends the invitation again with a new temporary password, for a user who has not chosen
/// their own password yet.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/invitation", tag = "admin", request_body = EmptyBody,
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, body = InvitationResponse),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`invitation_accepted`: the user already chose a password", body = ErrorBody),
    ))]
pub async fn resend_invitation(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    UserPath(id): UserPath,
    JsonBody(_empty): JsonBody<EmptyBody>,
) -> Result<Json<InvitationResponse>, ApiError> {
    let temporary = state
        .service
        .resend_invitation(Some(session.user.id), id)
        .await?;
    Ok(Json(InvitationResponse {
        temporary_password: temporary.expose_secret().to_owned(),
    }))
}
