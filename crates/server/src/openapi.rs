//! The OpenAPI 3 document, generated from the handlers' annotations.

use utoipa::OpenApi;

use crate::error::ErrorBody;
use crate::routes::{
    account, admin, audit, email, login, meta, phone, policy, sms_inbound, totp, two_factor,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Twofold",
        description = "Accounts with a password and a second factor. Every POST, PATCH and DELETE carries \
`Content-Type: application/json` (else 415). Errors are `{\"error\": code, \"message\": text}`. \
The session is the cookie `twofold_session` (`__Host-twofold_session` behind an https public URL).",
    ),
    paths(
        login::login,
        login::change_temporary_password,
        login::logout,
        login::verify,
        two_factor::send_login_code,
        two_factor::send_reset_code,
        two_factor::reset,
        totp::start,
        totp::confirm,
        totp::regenerate_recovery_codes,
        totp::send_recovery_codes_code,
        phone::start,
        phone::confirm,
        phone::start_inbound,
        phone::confirm_inbound,
        email::send_verification,
        email::verify,
        email::start_factor,
        email::confirm_factor,
        two_factor::send_disable_code,
        two_factor::disable,
        sms_inbound::inbound,
        account::account,
        account::activity,
        admin::list_users,
        admin::create_user,
        admin::get_user,
        admin::change_user,
        admin::reset_two_factor,
        admin::resend_invitation,
        policy::policy,
        policy::change_policy,
        audit::audit_log,
        audit::export,
        audit::verify,
        meta::healthz,
        meta::openapi,
    ),
    components(schemas(ErrorBody, login::LoginRequest, login::NewPasswordRequest, login::EmptyBody, login::VerifyRequest, totp::StartTotpRequest, totp::TotpEnrollmentResponse, totp::CodeRequest, totp::PasswordRequest, totp::NewRecoveryCodesRequest, totp::RecoveryCodesResponse, login::LoginStateResponse, account::AccountResponse, phone::PhoneRequest, phone::CodeSentResponse, phone::InboundChallengeResponse, two_factor::SendCodeRequest,
        account::ActivityResponse, audit::EventView, audit::AuditPage, audit::VerifyResponse,
        admin::UserView, admin::UserListResponse, admin::NewUserRequest, admin::CreatedUserResponse, admin::UserChangeRequest, admin::InvitationResponse,
        policy::PolicyResponse, policy::PolicySettings, policy::PolicyChangeRequest, policy::TwoFactorRuleName)),
    tags(
        (name = "login", description = "The login state machine"),
        (name = "account", description = "The signed-in user's account"),
        (name = "admin", description = "Administration: users, the security policy and the audit log (administrators who signed in with two factors)"),
        (name = "sms", description = "The SMS gateway's inbound webhook"),
        (name = "meta", description = "Health and this document"),
    )
)]
pub struct ApiDoc;
