//! `/api/v1/account`: the signed-in user's own account.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use twofold_core::accounts::AccountSummary;
use twofold_core::user::{Method, TwoFactorStatus};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::gate::CurrentSession;
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
