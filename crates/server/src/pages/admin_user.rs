//! One user in the administration (seed 004, steps 4 to 9): their details, with the "Two
//! Factor Authentication" status in the right-hand column, and a light-gray "Edit this user"
//! link to edit mode. There, "Require Two-Factor" (or "Stop requiring Two-Factor"), "Reset
//! two-factor" (the lost-device path), "Disable user" / "Enable user" and, while the user has
//! not chosen a password, "Send invitation again" each open a confirmation page (the seed's
//! pop-up, without JavaScript) whose button POSTs the change. The answer is the user's page
//! with a light blue status bar saying what happened.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::ExposeSecret;
use twofold_core::admin::AdminUser;
use twofold_core::policy::TwoFactorRule;
use twofold_core::store::AuditFilter;
use twofold_core::user::{TwoFactorStatus, UserId};

use super::account::utc_minute;
use super::admin::{
    Section, Tab, describe, details_text, method_label, query_value, refusal, tabs, unknown_user,
    user_href, user_id,
};
use super::admin_users::TemporaryPasswordPage;
use super::login::CsrfOnlyForm;
use super::{Csrf, CsrfProtected, PageForm, render};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

/// Entries of the user's recent activity shown on their page.
const ACTIVITY_ON_PAGE: u32 = 10;

/// An entry of the user's recent activity.
struct ActivityRow {
    at: String,
    what: String,
    details: String,
    ip: String,
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct UserPage<'a> {
    title: &'a str,
    csrf: &'a str,
    tabs: [Tab; 3],
    id: String,
    href: &'a str,
    email: &'a str,
    editing: bool,
    notice: Option<String>,
    is_admin: bool,
    disabled: bool,
    /// The user has not chosen a password yet (they hold a temporary one).
    invited: bool,
    created: String,
    last_sign_in: String,
    two_factor: &'static str,
    /// `off`, `pending` or `enabled`.
    two_factor_state: &'static str,
    methods: Vec<&'static str>,
    /// An administrator picked this user to use two-factor.
    picked: bool,
    /// Why 2FA is required regardless of the pick, if it is.
    required_anyway: Option<&'static str>,
    own_account: bool,
    activity: Vec<ActivityRow>,
}

/// What makes 2FA required for the user besides an administrator's pick.
async fn required_anyway(
    state: &AppState,
    shown: &AdminUser,
) -> Result<Option<&'static str>, ApiError> {
    if shown.user.is_admin {
        return Ok(Some("Administrators always use two-factor authentication."));
    }
    if state.service.policy().await?.policy.two_factor == TwoFactorRule::Everyone {
        return Ok(Some(
            "The security policy requires two-factor authentication of everyone.",
        ));
    }
    Ok(None)
}

/// The sentence of the status bar after an action (`?done=…`), from a fixed list.
async fn notice_of(
    state: &AppState,
    done: &str,
    shown: &AdminUser,
) -> Result<Option<String>, ApiError> {
    let email = shown.user.email.as_str();
    let pending = shown.two_factor == TwoFactorStatus::Pending;
    let when = || async {
        let grace = state.service.policy().await?.policy.grace_period_days;
        Ok::<_, ApiError>(match grace {
            0 => "at their next sign-in".to_owned(),
            1 => "at a sign-in within a day (the policy's grace period)".to_owned(),
            days => format!("at a sign-in within {days} days (the policy's grace period)"),
        })
    };
    Ok(Some(match done {
        "required" if pending => format!(
            "{email} will set up two-factor authentication {}.",
            when().await?
        ),
        "required" => format!(
            "Two-factor authentication is now required for {email}, who has it set up already."
        ),
        "not-required" => format!(
            "{email} is no longer required to use two-factor authentication by you. Second factors they set up stay on."
        ),
        "reset" if pending => format!(
            "The second factors of {email} are removed and they are signed out everywhere. They will set up two-factor authentication again {}.",
            when().await?
        ),
        "reset" => format!(
            "The second factors of {email} are removed and they are signed out everywhere. They sign in with their password alone until they set up two-factor authentication again."
        ),
        "disabled" => format!("{email} is disabled and signed out everywhere."),
        "enabled" => format!("{email} can sign in again."),
        "signed-out" => format!("{email} is signed out everywhere."),
        _ => return Ok(None),
    }))
}

async fn show(
    state: &AppState,
    headers: &HeaderMap,
    session_user: UserId,
    id: &str,
    query: Option<&str>,
    editing: bool,
) -> Result<Response, ApiError> {
    let Some(id) = user_id(id) else {
        return Ok(unknown_user());
    };
    let shown = match state.service.admin_user(id).await {
        Ok(shown) => shown,
        Err(error) => return refusal(error, "/admin/users"),
    };
    let notice = match query_value(query, "done") {
        Some(done) => notice_of(state, &done, &shown).await?,
        None => None,
    };
    let activity = state
        .service
        .audit_log(&AuditFilter {
            user: Some(id),
            limit: ACTIVITY_ON_PAGE,
            ..AuditFilter::default()
        })
        .await?
        .into_iter()
        .map(|record| ActivityRow {
            at: utc_minute(record.event.at),
            what: describe(&record),
            details: details_text(&record.event.detail),
            ip: record.event.ip.clone().unwrap_or_default(),
        })
        .collect();
    let href = user_href(id);
    let csrf = Csrf::for_request(state, headers)?;
    let user = &shown.user;
    let page = UserPage {
        title: user.email.as_str(),
        csrf: &csrf.token,
        tabs: tabs(Section::Users),
        id: id.to_string(),
        href: &href,
        email: user.email.as_str(),
        editing,
        notice,
        is_admin: user.is_admin,
        disabled: user.disabled,
        invited: user.password_change_required,
        created: utc_minute(user.created_at),
        last_sign_in: user
            .last_login_at
            .map_or_else(|| "Never".to_owned(), utc_minute),
        two_factor: shown.two_factor.label(),
        two_factor_state: shown.two_factor.as_str(),
        methods: shown.methods.iter().map(|m| method_label(*m)).collect(),
        picked: user.require_2fa,
        required_anyway: required_anyway(state, &shown).await?,
        own_account: user.id == session_user,
        activity,
    };
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `GET /admin/users/{id}`.
pub async fn user_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    show(
        &state,
        &headers,
        session.user.id,
        &id,
        query.as_deref(),
        false,
    )
    .await
}

/// `GET /admin/users/{id}/edit`: the same page with the actions.
pub async fn edit_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    show(&state, &headers, session.user.id, &id, None, true).await
}

/// An action of edit mode: its confirmation page and what its button does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Require,
    StopRequiring,
    Reset,
    Disable,
    Enable,
    Invite,
}

impl Action {
    fn path(self) -> &'static str {
        match self {
            Action::Require => "require-two-factor",
            Action::StopRequiring => "stop-requiring-two-factor",
            Action::Reset => "reset-two-factor",
            Action::Disable => "disable",
            Action::Enable => "enable",
            Action::Invite => "invitation",
        }
    }

    fn button(self) -> &'static str {
        match self {
            Action::Require => "Require Two-Factor",
            Action::StopRequiring => "Stop requiring Two-Factor",
            Action::Reset => "Reset two-factor",
            Action::Disable => "Disable user",
            Action::Enable => "Enable user",
            Action::Invite => "Send invitation again",
        }
    }

    /// Whether the button undoes something the user cannot easily get back.
    fn drastic(self) -> bool {
        matches!(self, Action::Reset | Action::Disable | Action::Invite)
    }

    /// What the confirmation says the action does.
    fn explanation(self, shown: &AdminUser) -> Vec<String> {
        let email = shown.user.email.as_str();
        match self {
            Action::Require => vec![
                "The user will now be required to enroll in Two-Factor Authentication upon log in."
                    .to_owned(),
                format!(
                    "{email} cannot opt out: until they set it up, signing in leads to the set-up and nowhere else."
                ),
            ],
            Action::StopRequiring => vec![format!(
                "{email} will no longer be required by you to use Two-Factor Authentication. Second factors they set up stay on, and they may turn them off."
            )],
            Action::Reset => vec![
                format!(
                    "This removes every second factor of {email}: authenticator app, phone, email codes and recovery codes. They are signed out everywhere."
                ),
                "Use it when they lost their phone or their codes. Make sure first that it is really them who asks.".to_owned(),
            ],
            Action::Disable => vec![format!(
                "{email} will not be able to sign in, and is signed out everywhere at once. You can enable them again later."
            )],
            Action::Enable => vec![format!("{email} will be able to sign in again.")],
            Action::Invite => vec![format!(
                "This makes a new temporary password for {email}, shown to you once, and emails them again that an account exists. The earlier temporary password stops working."
            )],
        }
    }

    /// Whether the action makes sense for the user as they are (else the page goes back to
    /// edit mode).
    fn applies(self, shown: &AdminUser) -> bool {
        let user = &shown.user;
        match self {
            Action::Require => !user.require_2fa,
            Action::StopRequiring => user.require_2fa,
            Action::Reset => true,
            Action::Disable => !user.disabled,
            Action::Enable => user.disabled,
            Action::Invite => user.password_change_required,
        }
    }
}

#[derive(Template)]
#[template(path = "admin_confirm.html")]
struct ConfirmPage<'a> {
    title: &'a str,
    csrf: &'a str,
    tabs: [Tab; 3],
    email: &'a str,
    user_href: &'a str,
    paragraphs: Vec<String>,
    action: String,
    button: &'a str,
    drastic: bool,
}

async fn confirm(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    action: Action,
) -> Result<Response, ApiError> {
    let Some(id) = user_id(id) else {
        return Ok(unknown_user());
    };
    let href = user_href(id);
    let shown = match state.service.admin_user(id).await {
        Ok(shown) => shown,
        Err(error) => return refusal(error, &href),
    };
    if !action.applies(&shown) {
        return Ok(Redirect::to(&format!("{href}/edit")).into_response());
    }
    let csrf = Csrf::for_request(state, headers)?;
    let page = ConfirmPage {
        title: action.button(),
        csrf: &csrf.token,
        tabs: tabs(Section::Users),
        email: shown.user.email.as_str(),
        user_href: &href,
        paragraphs: action.explanation(&shown),
        action: format!("{href}/{}", action.path()),
        button: action.button(),
        drastic: action.drastic(),
    };
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

async fn perform(
    state: &AppState,
    actor: UserId,
    id: &str,
    action: Action,
    csrf: &str,
) -> Result<Response, ApiError> {
    let Some(id) = user_id(id) else {
        return Ok(unknown_user());
    };
    let href = user_href(id);
    let admin = &state.service;
    let actor = Some(actor);
    let (outcome, done) = match action {
        Action::Require => (
            admin.set_require_two_factor(actor, id, true).await,
            "required",
        ),
        Action::StopRequiring => (
            admin.set_require_two_factor(actor, id, false).await,
            "not-required",
        ),
        Action::Reset => (admin.reset_two_factor(actor, id).await, "reset"),
        Action::Disable => (admin.set_disabled(actor, id, true).await, "disabled"),
        Action::Enable => (admin.set_disabled(actor, id, false).await, "enabled"),
        Action::Invite => {
            let password = match admin.resend_invitation(actor, id).await {
                Ok(password) => password,
                Err(error) => return refusal(error, &href),
            };
            let shown = match admin.admin_user(id).await {
                Ok(shown) => shown,
                Err(error) => return refusal(error, &href),
            };
            let page = TemporaryPasswordPage {
                title: "Invitation sent again",
                csrf,
                tabs: tabs(Section::Users),
                email: shown.user.email.as_str(),
                user_href: &href,
                password: password.expose_secret(),
                replaced: true,
            };
            return Ok(render(StatusCode::OK, &page));
        }
    };
    match outcome {
        Ok(_) => Ok(Redirect::to(&format!("{href}?done={done}")).into_response()),
        Err(error) => refusal(error, &href),
    }
}

macro_rules! action_handlers {
    ($($action:ident: $confirm:ident, $submit:ident;)*) => {$(
        #[doc = concat!("`GET /admin/users/{id}/…`: the confirmation of [`Action::", stringify!($action), "`].")]
        pub async fn $confirm(
            State(state): State<AppState>,
            headers: HeaderMap,
            Path(id): Path<String>,
        ) -> Result<Response, ApiError> {
            confirm(&state, &headers, &id, Action::$action).await
        }

        #[doc = concat!("`POST /admin/users/{id}/…`: does [`Action::", stringify!($action), "`].")]
        pub async fn $submit(
            State(state): State<AppState>,
            CurrentSession(session): CurrentSession,
            Path(id): Path<String>,
            PageForm(form): PageForm<CsrfOnlyForm>,
        ) -> Result<Response, ApiError> {
            perform(&state, session.user.id, &id, Action::$action, form.csrf_token()).await
        }
    )*};
}

action_handlers! {
    Require: require_confirm, require_submit;
    StopRequiring: stop_requiring_confirm, stop_requiring_submit;
    Reset: reset_confirm, reset_submit;
    Disable: disable_confirm, disable_submit;
    Enable: enable_confirm, enable_submit;
    Invite: invitation_confirm, invitation_submit;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_its_own_address() {
        let all = [
            Action::Require,
            Action::StopRequiring,
            Action::Reset,
            Action::Disable,
            Action::Enable,
            Action::Invite,
        ];
        let mut paths: Vec<&str> = all.iter().map(|action| action.path()).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), all.len());
    }
}
