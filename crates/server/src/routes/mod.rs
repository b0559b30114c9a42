//! The route table: every route of the server with the session state it needs, in one place.

pub mod account;
pub mod account_password;
pub mod admin;
pub mod audit;
pub mod email;
pub mod login;
pub mod messages;
pub mod meta;
pub mod phone;
pub mod policy;
pub mod query;
pub mod sessions;
pub mod sms_inbound;
pub mod totp;
pub mod two_factor;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{delete, get, post};
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::error::ApiError;
use crate::gate::{
    AUTHENTICATED, ENROLLED_OR_ENROLLING, ENROLLMENT, Gate, PASSWORD_CHANGE, RouteEntry,
    RouteTable, SECOND_FACTOR,
};
use crate::pages;
use crate::state::AppState;
use crate::{context, headers, logging};

const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Every route and its gate.
#[rustfmt::skip] // one route per line reads as a table
pub fn table(state: AppState) -> RouteTable {
    use crate::pages::{account as account_page, email as email_pages, enroll as enroll_pages, login as login_pages, phone as phone_pages, recovery as recovery_pages, recovery_email as recovery_email_pages, reset as reset_pages, totp as totp_pages, two_factor as two_factor_pages, verify as verify_page};
    let upload_limit = upload_body_limit(state.service.settings().attachment_limit_bytes);
    RouteTable::new(state)
        // JSON API
        .route("/api/v1/login", Gate::OptionalSession, post(login::login))
        .route("/api/v1/login/password", Gate::Api(PASSWORD_CHANGE), post(login::change_temporary_password))
        .route("/api/v1/login/verify", Gate::Api(SECOND_FACTOR), post(login::verify))
        .route("/api/v1/login/send-code", Gate::Api(SECOND_FACTOR), post(two_factor::send_login_code))
        .route("/api/v1/login/reset/send-code", Gate::Api(SECOND_FACTOR), post(two_factor::send_reset_code))
        .route("/api/v1/login/reset", Gate::Api(SECOND_FACTOR), post(two_factor::reset))
        .route("/api/v1/logout", Gate::OptionalSession, post(login::logout))
        .route("/api/v1/account", Gate::Api(AUTHENTICATED), get(account::account))
        .route("/api/v1/account/totp", Gate::Api(ENROLLED_OR_ENROLLING), post(totp::start))
        .route("/api/v1/account/totp/confirm", Gate::Api(ENROLLED_OR_ENROLLING), post(totp::confirm))
        .route("/api/v1/account/recovery-codes", Gate::Api(AUTHENTICATED), post(totp::regenerate_recovery_codes))
        .route("/api/v1/account/recovery-codes/send-code", Gate::Api(AUTHENTICATED), post(totp::send_recovery_codes_code))
        .route("/api/v1/account/phone", Gate::Api(ENROLLED_OR_ENROLLING), post(phone::start))
        .route("/api/v1/account/phone/confirm", Gate::Api(ENROLLED_OR_ENROLLING), post(phone::confirm))
        .route("/api/v1/account/phone/inbound", Gate::Api(ENROLLED_OR_ENROLLING), post(phone::start_inbound))
        .route("/api/v1/account/phone/inbound/confirm", Gate::Api(ENROLLED_OR_ENROLLING), post(phone::confirm_inbound))
        .route("/api/v1/account/email/send-code", Gate::Api(ENROLLED_OR_ENROLLING), post(email::send_verification))
        .route("/api/v1/account/email/verify", Gate::Api(ENROLLED_OR_ENROLLING), post(email::verify))
        .route("/api/v1/account/email-2fa/send-code", Gate::Api(ENROLLED_OR_ENROLLING), post(email::start_factor))
        .route("/api/v1/account/email-2fa/confirm", Gate::Api(ENROLLED_OR_ENROLLING), post(email::confirm_factor))
        .route("/api/v1/account/two-factor/disable/send-code", Gate::Api(AUTHENTICATED), post(two_factor::send_disable_code))
        .route("/api/v1/account/two-factor/disable", Gate::Api(AUTHENTICATED), post(two_factor::disable))
        .route("/api/v1/account/password", Gate::Api(AUTHENTICATED), post(account_password::change_password))
        .route("/api/v1/account/sessions", Gate::Api(AUTHENTICATED), get(sessions::list_sessions))
        .route("/api/v1/account/sessions/end-others", Gate::Api(AUTHENTICATED), post(sessions::end_other_sessions))
        .route("/api/v1/account/sessions/{id}", Gate::Api(AUTHENTICATED), delete(sessions::end_session))
        .route("/api/v1/messages", Gate::Api(AUTHENTICATED), get(messages::list).post(messages::send))
        .route("/api/v1/messages/{id}", Gate::Api(AUTHENTICATED), get(messages::read).delete(messages::delete).layer(middleware::from_fn(messages::refuse_head)))
        .route("/api/v1/messages/{id}/send", Gate::Api(AUTHENTICATED), post(messages::send_draft))
        .route("/api/v1/messages/{id}/attachments", Gate::Api(AUTHENTICATED), post(messages::upload).layer(DefaultBodyLimit::max(upload_limit)))
        .route("/api/v1/messages/{id}/attachments/{aid}", Gate::Api(AUTHENTICATED), get(messages::download).layer(middleware::from_fn(messages::refuse_head)))
        .route("/api/v1/invitations/accept", Gate::OptionalSession, post(messages::accept_invitation))
        .route("/api/v1/sms/inbound", Gate::Public, post(sms_inbound::inbound))
        .route("/api/openapi.json", Gate::Public, get(meta::openapi))
        .route("/healthz", Gate::Public, get(meta::healthz))
        .route("/readyz", Gate::Public, get(meta::readyz))
        // Administration API (and the user's own audit trail)
        .route("/api/v1/account/activity", Gate::Api(AUTHENTICATED), get(account::activity))
        .route("/api/v1/admin/users", Gate::AdminApi, get(admin::list_users).post(admin::create_user))
        .route("/api/v1/admin/users/{id}", Gate::AdminApi, get(admin::get_user).patch(admin::change_user))
        .route("/api/v1/admin/users/{id}/reset-2fa", Gate::AdminApi, post(admin::reset_two_factor))
        .route("/api/v1/admin/users/{id}/invitation", Gate::AdminApi, post(admin::resend_invitation))
        .route("/api/v1/admin/users/{id}/sign-out", Gate::AdminApi, post(sessions::sign_out_user))
        .route("/api/v1/admin/policy", Gate::AdminApi, get(policy::policy).patch(policy::change_policy))
        .route("/api/v1/admin/audit", Gate::AdminApi, get(audit::audit_log))
        .route("/api/v1/admin/audit/export", Gate::AdminApi, get(audit::export))
        .route("/api/v1/admin/audit/verify", Gate::AdminApi, get(audit::verify))
        // Pages
        .route("/", Gate::OptionalSession, get(login_pages::root))
        .route("/login", Gate::OptionalSession, get(login_pages::login_page).post(login_pages::login_submit))
        .route("/login/password", Gate::Page(PASSWORD_CHANGE), get(login_pages::password_page).post(login_pages::password_submit))
        .route("/login/enroll", Gate::Page(ENROLLMENT), get(enroll_pages::enroll_page))
        .route("/login/verify", Gate::Page(SECOND_FACTOR), get(verify_page::verify_page_get).post(verify_page::verify_submit))
        .route("/login/send-code", Gate::Page(SECOND_FACTOR), get(verify_page::back_to_verify).post(verify_page::send_code_submit))
        .route("/login/reset", Gate::Page(SECOND_FACTOR), get(reset_pages::reset_intro).post(reset_pages::reset_send))
        .route("/login/reset/confirm", Gate::Page(SECOND_FACTOR), get(reset_pages::reset_code_form).post(reset_pages::reset_confirm))
        .route("/logout", Gate::OptionalSession, post(login_pages::logout_submit))
        .route("/account", Gate::Page(AUTHENTICATED), get(account_page::account_page))
        .route("/account/totp/setup", Gate::Page(ENROLLED_OR_ENROLLING), get(totp_pages::setup_page).post(totp_pages::setup_submit))
        .route("/account/totp/change", Gate::Page(AUTHENTICATED), get(totp_pages::change_page).post(totp_pages::change_submit))
        .route("/account/recovery-codes", Gate::Page(AUTHENTICATED), get(recovery_pages::new_codes_page).post(recovery_pages::new_codes_submit))
        .route("/account/recovery-codes/email", Gate::Page(AUTHENTICATED), get(recovery_email_pages::intro).post(recovery_email_pages::send))
        .route("/account/recovery-codes/email/confirm", Gate::Page(AUTHENTICATED), get(recovery_email_pages::code_form).post(recovery_email_pages::confirm))
        .route("/account/two-factor", Gate::Page(AUTHENTICATED), get(enroll_pages::account_chooser_page))
        .route("/account/phone", Gate::Page(ENROLLED_OR_ENROLLING), get(phone_pages::phone_form).post(phone_pages::phone_submit))
        .route("/account/phone/confirm", Gate::Page(ENROLLED_OR_ENROLLING), get(phone_pages::confirm_form).post(phone_pages::confirm_submit))
        .route("/account/phone/inbound", Gate::Page(ENROLLED_OR_ENROLLING), get(phone_pages::back_to_phone_form).post(phone_pages::inbound_submit))
        .route("/account/phone/inbound/confirm", Gate::Page(ENROLLED_OR_ENROLLING), get(phone_pages::back_to_phone_form).post(phone_pages::inbound_confirm))
        .route("/account/email/send-code", Gate::Page(ENROLLED_OR_ENROLLING), get(email_pages::back_to_verify_form).post(email_pages::send_verification))
        .route("/account/email/verify", Gate::Page(ENROLLED_OR_ENROLLING), get(email_pages::verify_form).post(email_pages::verify_submit))
        .route("/account/email-2fa", Gate::Page(ENROLLED_OR_ENROLLING), get(email_pages::factor_intro).post(email_pages::factor_send))
        .route("/account/email-2fa/confirm", Gate::Page(ENROLLED_OR_ENROLLING), get(email_pages::factor_code_form).post(email_pages::factor_confirm))
        .route("/account/password", Gate::Page(AUTHENTICATED), get(pages::password::change_page).post(pages::password::change_submit))
        .route("/account/sessions/end-others", Gate::Page(AUTHENTICATED), get(pages::sessions::end_others_page).post(pages::sessions::end_others_submit))
        .route("/account/sessions/{id}/end", Gate::Page(AUTHENTICATED), get(pages::sessions::end_one_page).post(pages::sessions::end_one_submit))
        .route("/account/two-factor/disable", Gate::Page(AUTHENTICATED), get(two_factor_pages::disable_intro).post(two_factor_pages::disable_send))
        .route("/account/two-factor/disable/confirm", Gate::Page(AUTHENTICATED), get(two_factor_pages::disable_code_form).post(two_factor_pages::disable_confirm))
        .route("/messages", Gate::Page(AUTHENTICATED), get(pages::messages::list_page))
        .route("/messages/new", Gate::Page(AUTHENTICATED), get(pages::messages::compose_page).post(pages::messages::compose_submit).layer(DefaultBodyLimit::max(upload_limit)))
        .route("/messages/{id}", Gate::OptionalSession, get(pages::messages::read_page).layer(middleware::from_fn(messages::refuse_head)))
        .route("/messages/{id}/invitation", Gate::OptionalSession, post(pages::messages::accept_invitation))
        .route("/messages/{id}/attachments/{aid}", Gate::Page(AUTHENTICATED), get(pages::messages::download).layer(middleware::from_fn(messages::refuse_head)))
        .route("/messages/{id}/delete", Gate::Page(AUTHENTICATED), get(pages::messages::delete_page).post(pages::messages::delete_submit))
        // Administration pages
        .route("/admin", Gate::AdminPage, get(pages::admin::home))
        .route("/admin/users", Gate::AdminPage, get(pages::admin_users::users_page))
        .route("/admin/users/new", Gate::AdminPage, get(pages::admin_users::new_user_form).post(pages::admin_users::new_user_submit))
        .route("/admin/users/{id}", Gate::AdminPage, get(pages::admin_user::user_page))
        .route("/admin/users/{id}/edit", Gate::AdminPage, get(pages::admin_user::edit_page))
        .route("/admin/users/{id}/require-two-factor", Gate::AdminPage, get(pages::admin_user::require_confirm).post(pages::admin_user::require_submit))
        .route("/admin/users/{id}/stop-requiring-two-factor", Gate::AdminPage, get(pages::admin_user::stop_requiring_confirm).post(pages::admin_user::stop_requiring_submit))
        .route("/admin/users/{id}/reset-two-factor", Gate::AdminPage, get(pages::admin_user::reset_confirm).post(pages::admin_user::reset_submit))
        .route("/admin/users/{id}/disable", Gate::AdminPage, get(pages::admin_user::disable_confirm).post(pages::admin_user::disable_submit))
        .route("/admin/users/{id}/enable", Gate::AdminPage, get(pages::admin_user::enable_confirm).post(pages::admin_user::enable_submit))
        .route("/admin/users/{id}/invitation", Gate::AdminPage, get(pages::admin_user::invitation_confirm).post(pages::admin_user::invitation_submit))
        .route("/admin/users/{id}/sign-out", Gate::AdminPage, get(pages::admin_sign_out::sign_out_confirm).post(pages::admin_sign_out::sign_out_submit))
        .route("/admin/policy", Gate::AdminPage, get(pages::admin_policy::policy_page).post(pages::admin_policy::policy_submit))
        .route("/admin/audit", Gate::AdminPage, get(pages::admin_audit::audit_page))
        .route("/admin/audit/verify", Gate::AdminPage, get(pages::admin_audit::verify_page).post(pages::admin_audit::verify_submit))
        .route("/static/app.css", Gate::Public, get(pages::stylesheet))
        .route("/static/print.js", Gate::Public, get(pages::print_script))
}

/// The largest multipart body of an upload: as many files of the largest size as a message
/// may hold, and room for the form's other fields. Each file is held to the limit on its own
/// as it streams in (413 at the first byte past it).
pub fn upload_body_limit(attachment_limit: u64) -> usize {
    let files = attachment_limit.saturating_mul(twofold_core::messages::MAX_ATTACHMENTS as u64);
    usize::try_from(files.saturating_add(1024 * 1024)).unwrap_or(usize::MAX)
}

/// The whole application, ready to serve, and the inventory of its routes.
pub fn app(state: AppState) -> (Router, Vec<RouteEntry>) {
    let body_limit = state.http.body_limit_bytes;
    let (router, inventory) = table(state.clone()).into_parts();
    state.http_metrics.know_routes(&inventory);
    let router = router
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(headers::require_json_writes))
        .layer(DefaultBodyLimit::max(body_limit))
        // A body that trickles in slower than this is abandoned (slow-body attacks).
        .layer(RequestBodyTimeoutLayer::new(BODY_READ_TIMEOUT))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            headers::security_headers,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            context::request_context,
        ))
        .layer(middleware::from_fn_with_state(
            state.http_metrics.clone(),
            crate::metrics::track_requests,
        ))
        .layer(middleware::from_fn(logging::log_request))
        .with_state(state);
    (router, inventory)
}

async fn fallback() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed here",
    )
}
