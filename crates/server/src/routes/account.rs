//! `/api/v1/account` and `/api/v1/account/activity`: the signed-in user's own account and
//! its recent security events.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use twofold_core::accounts::AccountSummary;
use twofold_core::user::{Method, TwoFactorStatus};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::gate::CurrentSession;
use crate::routes::audit::EventView;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct AccountResponse {
    #[schema(example = "alice@example.com")]
    pub email: String,
    pub email_verified: bool,
    #[schema(value_type = String, example = "enabled")]
    pub two_factor: TwoFactorStatus,
    #[schema(value_type = Vec<String>, example = json!(["totp"]))]
    pub methods: Vec<Method>,
    pub recovery_codes_left: u32,
}

impl From<AccountSummary> for AccountResponse {
    fn from(summary: AccountSummary) -> Self {
        Self {
            email: summary.user.email.to_string(),
            email_verified: summary.user.email_verified,
            two_factor: summary.two_factor,
            methods: summary.methods,
            recovery_codes_left: summary.recovery_codes_left,
        }
    }
}

/// The account of a fully authenticated session.
#[utoipa::path(get, path = "/api/v1/account", tag = "account",
    responses(
        (status = 200, body = AccountResponse),
        (status = 401, description = "No session, or one that has not finished signing in", body = ErrorBody),
    ))]
pub async fn account(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
) -> Result<Json<AccountResponse>, ApiError> {
    let summary = state.service.account_summary(&session.user).await?;
    Ok(Json(summary.into()))
}

/// How many events the account's activity shows.
const ACTIVITY_EVENTS: u32 = 20;

#[derive(Serialize, ToSchema)]
pub struct ActivityResponse {
    /// Newest first.
    pub events: Vec<EventView>,
}

/// The session user's 20 most recent security events (sign-ins, failed sign-ins, factors
/// added or removed, codes sent, administrators' changes to the account).
#[utoipa::path(get, path = "/api/v1/account/activity", tag = "account",
    responses(
        (status = 200, body = ActivityResponse),
        (status = 401, description = "No session, or one that has not finished signing in", body = ErrorBody),
    ))]
pub async fn activity(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
) -> Result<Json<ActivityResponse>, ApiError> {
    let records = state
        .service
        .recent_activity(session.user.id, ACTIVITY_EVENTS)
        .await?;
    Ok(Json(ActivityResponse {
        events: records.into_iter().map(EventView::from).collect(),
    }))
}
