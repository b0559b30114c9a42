//! The Security Policy form (seed 002): who must use two-factor authentication, the methods
//! allowed, the grace period, recovery codes, TOTP clock tolerance, session timeouts and
//! lockout. It carries the version it was read at, so that saving over someone else's change
//! is refused (409) instead of silently undoing it. A setting out of its range re-renders the
//! form with what was typed and the reason (422); the ranges are core's alone.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use twofold_core::policy::{
    CurrentPolicy, PolicyChange, PolicyError, SecurityPolicy, TwoFactorRule,
};
use twofold_core::user::Method;

use super::account::utc_minute;
use super::admin::{Section, Tab, query_value, tabs};
use super::forms::sentence;
use super::{Csrf, CsrfProtected, PageForm, render};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

/// A number of the policy: its form field (the name core's messages use), label and hint.
struct NumberSetting {
    name: &'static str,
    label: &'static str,
    hint: &'static str,
    /// Where it is shown: 0 two-factor, 1 sessions, 2 lockout.
    group: usize,
}

/// Every number of the policy, in the order of [`numbers_of`].
const NUMBERS: [NumberSetting; 8] = [
    NumberSetting {
        name: "grace_period_days",
        label: "Grace period (days)",
        hint: "How long someone who newly must use two-factor authentication may still sign in without it. 0: they set it up at their next sign-in. Administrators get no grace.",
        group: 0,
    },
    NumberSetting {
        name: "recovery_code_count",
        label: "Recovery codes per set",
        hint: "How many single-use codes a user gets to sign in without their phone.",
        group: 0,
    },
    NumberSetting {
        name: "totp_skew_steps",
        label: "Authenticator clock tolerance (30-second steps)",
        hint: "Codes this many steps before or after the current one are accepted, for phones whose clock is a little off.",
        group: 0,
    },
    NumberSetting {
        name: "session_idle_timeout_minutes",
        label: "Idle timeout (minutes)",
        hint: "A session unused for this long ends.",
        group: 1,
    },
    NumberSetting {
        name: "session_absolute_timeout_minutes",
        label: "Absolute timeout (minutes)",
        hint: "A session ends this long after signing in, however active. At least the idle timeout.",
        group: 1,
    },
    NumberSetting {
        name: "lockout_free_failures",
        label: "Wrong codes before a wait",
        hint: "Wrong second-factor codes allowed in a row before the user must wait.",
        group: 2,
    },
    NumberSetting {
        name: "lockout_first_wait_seconds",
        label: "First wait (seconds)",
        hint: "The wait after the last free wrong code.",
        group: 2,
    },
    NumberSetting {
        name: "lockout_longest_wait_seconds",
        label: "Longest wait (seconds)",
        hint: "The wait doubles with each further wrong code, up to this.",
        group: 2,
    },
];

/// The numbers of `policy`, in the order of [`NUMBERS`].
fn numbers_of(policy: &SecurityPolicy) -> [u32; 8] {
    [
        policy.grace_period_days,
        policy.recovery_code_count,
        policy.totp_skew_steps,
        policy.session_idle_timeout_minutes,
        policy.session_absolute_timeout_minutes,
        policy.lockout_free_failures,
        policy.lockout_first_wait_seconds,
        policy.lockout_longest_wait_seconds,
    ]
}

/// A number field as shown.
struct NumberField {
    name: &'static str,
    label: &'static str,
    hint: &'static str,
    value: String,
}

/// The form's values, as saved or as typed.
struct PolicyValues {
    everyone: bool,
    totp: bool,
    sms: bool,
    email: bool,
    numbers: [String; 8],
}

impl PolicyValues {
    fn of(policy: &SecurityPolicy) -> Self {
        let allows = |method| policy.allowed_methods.contains(&method);
        Self {
            everyone: policy.two_factor == TwoFactorRule::Everyone,
            totp: allows(Method::Totp),
            sms: allows(Method::Sms),
            email: allows(Method::Email),
            numbers: numbers_of(policy).map(|number| number.to_string()),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_policy.html")]
struct PolicyPage<'a> {
    title: &'a str,
    csrf: &'a str,
    tabs: [Tab; 3],
    version: u64,
    everyone: bool,
    totp: bool,
    sms: bool,
    email: bool,
    /// The number fields of the three fieldsets: two-factor, sessions, lockout.
    groups: [Vec<NumberField>; 3],
    /// Who last saved it and when, or that the configuration's values apply.
    provenance: String,
    error: Option<String>,
    notice: Option<&'a str>,
}

async fn provenance(state: &AppState, current: &CurrentPolicy) -> Result<String, ApiError> {
    let Some(at) = current.updated_at else {
        return Ok(
            "No administrator has saved a policy yet: these are the configuration's values."
                .to_owned(),
        );
    };
    let by = match current.updated_by {
        Some(id) => match state.service.user_by_id(id).await {
            Ok(user) => user.email.as_str().to_owned(),
            Err(twofold_core::accounts::AccountError::NotFound) => "a removed user".to_owned(),
            Err(error) => return Err(error.into()),
        },
        None => "the command line".to_owned(),
    };
    Ok(format!("Last saved {} by {by}.", utc_minute(at)))
}

fn page<'a>(
    csrf: &'a str,
    version: u64,
    values: PolicyValues,
    provenance: String,
    error: Option<String>,
    notice: Option<&'a str>,
) -> PolicyPage<'a> {
    let mut groups: [Vec<NumberField>; 3] = Default::default();
    for (setting, value) in NUMBERS.iter().zip(values.numbers) {
        groups[setting.group].push(NumberField {
            name: setting.name,
            label: setting.label,
            hint: setting.hint,
            value,
        });
    }
    PolicyPage {
        title: "Security policy",
        csrf,
        tabs: tabs(Section::Policy),
        version,
        everyone: values.everyone,
        totp: values.totp,
        sms: values.sms,
        email: values.email,
        groups,
        provenance,
        error,
        notice,
    }
}

/// `GET /admin/policy`.
pub async fn policy_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let current = state.service.policy().await?;
    let csrf = Csrf::for_request(&state, &headers)?;
    let notice = (query_value(query.as_deref(), "done").as_deref() == Some("saved"))
        .then_some("The security policy is saved. It applies to every sign-in from now on.");
    let view = page(
        &csrf.token,
        current.version,
        PolicyValues::of(&current.policy),
        provenance(&state, &current).await?,
        None,
        notice,
    );
    Ok(csrf.apply(render(StatusCode::OK, &view)))
}

#[derive(Deserialize)]
pub struct PolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    version: String,
    /// `admins` or `everyone`.
    #[serde(default)]
    two_factor: String,
    method_totp: Option<String>,
    method_sms: Option<String>,
    method_email: Option<String>,
    #[serde(default)]
    grace_period_days: String,
    #[serde(default)]
    recovery_code_count: String,
    #[serde(default)]
    totp_skew_steps: String,
    #[serde(default)]
    session_idle_timeout_minutes: String,
    #[serde(default)]
    session_absolute_timeout_minutes: String,
    #[serde(default)]
    lockout_free_failures: String,
    #[serde(default)]
    lockout_first_wait_seconds: String,
    #[serde(default)]
    lockout_longest_wait_seconds: String,
}

impl CsrfProtected for PolicyForm {
    fn csrf_token(&self) -> &str {
        &self.csrf
    }
}

impl PolicyForm {
    /// The values as typed, to show them again.
    fn values(&self) -> PolicyValues {
        PolicyValues {
            everyone: self.two_factor == "everyone",
            totp: self.method_totp.is_some(),
            sms: self.method_sms.is_some(),
            email: self.method_email.is_some(),
            numbers: [
                &self.grace_period_days,
                &self.recovery_code_count,
                &self.totp_skew_steps,
                &self.session_idle_timeout_minutes,
                &self.session_absolute_timeout_minutes,
                &self.lockout_free_failures,
                &self.lockout_first_wait_seconds,
                &self.lockout_longest_wait_seconds,
            ]
            .map(|text| text.trim().to_owned()),
        }
    }

    /// The whole policy as a change, or what is wrong with the form.
    fn change(&self) -> Result<PolicyChange, String> {
        let two_factor = match self.two_factor.as_str() {
            "admins" => TwoFactorRule::Admins,
            "everyone" => TwoFactorRule::Everyone,
            _ => return Err("Choose who must use two-factor authentication.".to_owned()),
        };
        let values = self.values();
        let allowed_methods: Vec<Method> = [
            (values.totp, Method::Totp),
            (values.sms, Method::Sms),
            (values.email, Method::Email),
        ]
        .into_iter()
        .filter_map(|(ticked, method)| ticked.then_some(method))
        .collect();
        if allowed_methods.is_empty() {
            return Err("Allow at least one way to receive codes.".to_owned());
        }
        let mut numbers = [0u32; 8];
        for ((number, text), setting) in numbers.iter_mut().zip(&values.numbers).zip(&NUMBERS) {
            *number = text
                .parse()
                .map_err(|_| format!("{} must be a whole number.", setting.label))?;
        }
        let [
            grace_period_days,
            recovery_code_count,
            totp_skew_steps,
            session_idle_timeout_minutes,
            session_absolute_timeout_minutes,
            lockout_free_failures,
            lockout_first_wait_seconds,
            lockout_longest_wait_seconds,
        ] = numbers.map(Some);
        Ok(PolicyChange {
            two_factor: Some(two_factor),
            allowed_methods: Some(allowed_methods),
            grace_period_days,
            recovery_code_count,
            totp_skew_steps,
            session_idle_timeout_minutes,
            session_absolute_timeout_minutes,
            lockout_free_failures,
            lockout_first_wait_seconds,
            lockout_longest_wait_seconds,
        })
    }
}

/// Core's reason with the settings called by their labels.
fn readable(reason: &str) -> String {
    let text = NUMBERS.iter().fold(reason.to_owned(), |text, setting| {
        text.replace(setting.name, setting.label)
    });
    sentence(&text)
}

/// `POST /admin/policy`.
pub async fn policy_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<PolicyForm>,
) -> Result<Response, ApiError> {
    let Ok(version) = form.version.parse::<u64>() else {
        return again(
            &state,
            &form,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Reload the page and make your change again.".to_owned(),
        )
        .await;
    };
    let change = match form.change() {
        Ok(change) => change,
        Err(message) => {
            return again(&state, &form, StatusCode::UNPROCESSABLE_ENTITY, message).await;
        }
    };
    match state
        .service
        .change_policy(Some(session.user.id), &change, Some(version))
        .await
    {
        Ok(_) => Ok(Redirect::to("/admin/policy?done=saved").into_response()),
        Err(PolicyError::Invalid(reason)) => {
            again(
                &state,
                &form,
                StatusCode::UNPROCESSABLE_ENTITY,
                readable(&reason),
            )
            .await
        }
        Err(PolicyError::Conflict) => {
            // Show what is saved now; the administrator makes the change again over it.
            let current = state.service.policy().await?;
            let view = page(
                &form.csrf,
                current.version,
                PolicyValues::of(&current.policy),
                provenance(&state, &current).await?,
                Some("Someone else saved the policy meanwhile. This is the policy now: make your change again.".to_owned()),
                None,
            );
            Ok(render(StatusCode::CONFLICT, &view))
        }
        Err(error) => Err(error.into()),
    }
}

/// The form again with what was typed and what is wrong (the version read stays).
async fn again(
    state: &AppState,
    form: &PolicyForm,
    status: StatusCode,
    message: String,
) -> Result<Response, ApiError> {
    let current = state.service.policy().await?;
    let version = form.version.parse().unwrap_or(current.version);
    let view = page(
        &form.csrf,
        version,
        form.values(),
        provenance(state, &current).await?,
        Some(message),
        None,
    );
    Ok(render(status, &view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_reasons_name_the_labels() {
        assert_eq!(
            readable("session_absolute_timeout_minutes must be between 120 and 43200"),
            "Absolute timeout (minutes) must be between 120 and 43200."
        );
        assert_eq!(
            readable("lockout_longest_wait_seconds must be between 30 and 86400"),
            "Longest wait (seconds) must be between 30 and 86400."
        );
    }

    #[test]
    fn numbers_follow_their_settings() {
        let mut policy = SecurityPolicy::from_settings(&twofold_core::ServiceSettings::default());
        policy.grace_period_days = 3;
        policy.lockout_longest_wait_seconds = 999;
        let numbers = numbers_of(&policy);
        assert_eq!(numbers[0], 3);
        assert_eq!(numbers[7], 999);
        assert_eq!(NUMBERS[0].name, "grace_period_days");
        assert_eq!(NUMBERS[7].name, "lockout_longest_wait_seconds");
    }
}
