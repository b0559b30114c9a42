//! The OpenAPI 3 document, generated from the handlers' annotations.

use utoipa::OpenApi;

use crate::error::ErrorBody;
use crate::routes::{account, login, meta, totp};

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
        totp::start,
        totp::confirm,
        totp::regenerate_recovery_codes,
        account::account,
        meta::healthz,
        meta::openapi,
    ),
    components(schemas(ErrorBody, login::LoginRequest, login::NewPasswordRequest, login::EmptyBody, login::VerifyRequest, totp::StartTotpRequest, totp::TotpEnrollmentResponse, totp::CodeRequest, totp::PasswordRequest, totp::RecoveryCodesResponse, login::LoginStateResponse, account::AccountResponse)),
    tags(
        (name = "login", description = "The login state machine"),
        (name = "account", description = "The signed-in user's account"),
        (name = "meta", description = "Health and this document"),
    )
)]
pub struct ApiDoc;
