//! `/api/v1/admin/policy`: the organisation's security policy (who must use 2FA, allowed
//! methods, grace period, recovery codes, TOTP skew, session timeouts, lockout). Every
//! instance on the database applies a saved change within about a second.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use twofold_core::policy::{CurrentPolicy, PolicyChange, SecurityPolicy, TwoFactorRule};
use twofold_core::user::Method;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::gate::CurrentSession;
use crate::json::JsonBody;
use crate::state::AppState;

/// Who must use a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TwoFactorRuleName {
    /// Administrators, and the users an administrator picked.
    Admins,
    /// Everyone.
    Everyone,
}

impl From<TwoFactorRule> for TwoFactorRuleName {
    fn from(rule: TwoFactorRule) -> Self {
        match rule {
            TwoFactorRule::Admins => TwoFactorRuleName::Admins,
            TwoFactorRule::Everyone => TwoFactorRuleName::Everyone,
        }
    }
}

impl From<TwoFactorRuleName> for TwoFactorRule {
    fn from(rule: TwoFactorRuleName) -> Self {
        match rule {
            TwoFactorRuleName::Admins => TwoFactorRule::Admins,
            TwoFactorRuleName::Everyone => TwoFactorRule::Everyone,
        }
    }
}

/// The settings of the policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicySettings {
    pub two_factor: TwoFactorRuleName,
    /// Among `totp`, `sms`, `email`; recovery codes always go with them.
    #[schema(value_type = Vec<String>, example = json!(["email", "sms", "totp"]))]
    pub allowed_methods: Vec<Method>,
    /// Days a user who newly must use 2FA may still sign in without it (0 to 90; never for
    /// administrators).
    pub grace_period_days: u32,
    pub recovery_code_count: u32,
    /// TOTP codes are accepted this many 30-second steps either side of now.
    pub totp_skew_steps: u32,
    pub session_idle_timeout_minutes: u32,
    pub session_absolute_timeout_minutes: u32,
    /// Wrong second-factor codes allowed before the first wait.
    pub lockout_free_failures: u32,
    pub lockout_first_wait_seconds: u32,
    /// The wait doubles with each further wrong code up to this.
    pub lockout_longest_wait_seconds: u32,
}

impl From<&SecurityPolicy> for PolicySettings {
    fn from(policy: &SecurityPolicy) -> Self {
        Self {
            two_factor: policy.two_factor.into(),
            allowed_methods: policy.allowed_methods.clone(),
            grace_period_days: policy.grace_period_days,
            recovery_code_count: policy.recovery_code_count,
            totp_skew_steps: policy.totp_skew_steps,
            session_idle_timeout_minutes: policy.session_idle_timeout_minutes,
            session_absolute_timeout_minutes: policy.session_absolute_timeout_minutes,
            lockout_free_failures: policy.lockout_free_failures,
            lockout_first_wait_seconds: policy.lockout_first_wait_seconds,
            lockout_longest_wait_seconds: policy.lockout_longest_wait_seconds,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyResponse {
    pub policy: PolicySettings,
    /// Goes up by one with each saved change; 0 while the configuration's defaults apply.
    /// Send it back with a change to refuse the change if someone else saved one meanwhile.
    pub version: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<OffsetDateTime>,
    /// The id of the administrator who saved it; null for the defaults or the command line.
    pub updated_by: Option<String>,
    /// When 2FA became required for everyone (grace periods count from here); null unless
    /// `two_factor` is `everyone`.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub everyone_since: Option<OffsetDateTime>,
}

impl From<&CurrentPolicy> for PolicyResponse {
    fn from(current: &CurrentPolicy) -> Self {
        Self {
            policy: (&current.policy).into(),
            version: current.version,
            updated_at: current.updated_at,
            updated_by: current.updated_by.map(|id| id.to_string()),
            everyone_since: current.everyone_since,
        }
    }
}

/// A change of some settings; absent ones stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyChangeRequest {
    /// The `version` the change was made against; when given and someone else saved a change
    /// since, the change is refused with 409 `policy_changed`.
    #[serde(default)]
    pub version: Option<u64>,
    #[serde(default)]
    pub two_factor: Option<TwoFactorRuleName>,
    #[schema(value_type = Option<Vec<String>>, example = json!(["totp", "sms"]))]
    #[serde(default)]
    pub allowed_methods: Option<Vec<Method>>,
    #[serde(default)]
    pub grace_period_days: Option<u32>,
    #[serde(default)]
    pub recovery_code_count: Option<u32>,
    #[serde(default)]
    pub totp_skew_steps: Option<u32>,
    #[serde(default)]
    pub session_idle_timeout_minutes: Option<u32>,
    #[serde(default)]
    pub session_absolute_timeout_minutes: Option<u32>,
    #[serde(default)]
    pub lockout_free_failures: Option<u32>,
    #[serde(default)]
    pub lockout_first_wait_seconds: Option<u32>,
    #[serde(default)]
    pub lockout_longest_wait_seconds: Option<u32>,
}

impl PolicyChangeRequest {
    /// The change in the domain's terms.
    pub fn change(self) -> PolicyChange {
        PolicyChange {
            two_factor: self.two_factor.map(TwoFactorRule::from),
            allowed_methods: self.allowed_methods,
            grace_period_days: self.grace_period_days,
            recovery_code_count: self.recovery_code_count,
            totp_skew_steps: self.totp_skew_steps,
            session_idle_timeout_minutes: self.session_idle_timeout_minutes,
            session_absolute_timeout_minutes: self.session_absolute_timeout_minutes,
            lockout_free_failures: self.lockout_free_failures,
            lockout_first_wait_seconds: self.lockout_first_wait_seconds,
            lockout_longest_wait_seconds: self.lockout_longest_wait_seconds,
        }
    }
}

/// The security policy in force.
#[utoipa::path(get, path = "/api/v1/admin/policy", tag = "admin",
    responses(
        (status = 200, body = PolicyResponse),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an administrator signed in with two factors", body = ErrorBody),
    ))]
pub async fn policy(State(state): State<AppState>) -> Result<Json<PolicyResponse>, ApiError> {
    let current = state.service.policy().await?;
    Ok(Json(current.as_ref().into()))
}

/// Changes some settings of the policy. The change is recorded in the audit log with the
/// administrator as its actor, and every instance applies it within about a second.
#[utoipa::path(patch, path = "/api/v1/admin/policy", tag = "admin", request_body = PolicyChangeRequest,
    responses(
        (status = 200, description = "The saved policy", body = PolicyResponse),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 409, description = "`policy_changed`: `version` is not the current one", body = ErrorBody),
        (status = 422, description = "`invalid_policy` (a setting out of its range; the message says which) or `invalid_body` (an unknown setting, or none)", body = ErrorBody),
    ))]
pub async fn change_policy(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<PolicyChangeRequest>,
) -> Result<Json<PolicyResponse>, ApiError> {
    let expected_version = request.version;
    let change = request.change();
    if change == PolicyChange::default() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "give at least one setting to change",
        ));
    }
    let saved = state
        .service
        .change_policy(Some(session.user.id), &change, expected_version)
        .await?;
    Ok(Json(saved.as_ref().into()))
}
