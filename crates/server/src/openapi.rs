//! The OpenAPI 3 document, generated from the handlers' annotations.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{Schema, Type};
use utoipa::openapi::{Content, Header, ObjectBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::routes::{
    account, account_password, admin, audit, email, login, messages, meta, phone, policy, sessions,
    sms_inbound, totp, two_factor,
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
        account_password::change_password,
        sessions::list_sessions,
        sessions::end_session,
        sessions::end_other_sessions,
        sessions::sign_out_user,
        policy::policy,
        policy::change_policy,
        audit::audit_log,
        audit::export,
        audit::verify,
        messages::send,
        messages::list,
        messages::read,
        messages::delete,
        messages::send_draft,
        messages::upload,
        messages::download,
        messages::accept_invitation,
        meta::healthz,
        meta::readyz,
        meta::openapi,
    ),
    components(schemas(ErrorBody, login::LoginRequest, login::NewPasswordRequest, login::EmptyBody, login::VerifyRequest, totp::StartTotpRequest, totp::TotpEnrollmentResponse, totp::CodeRequest, totp::PasswordRequest, totp::NewRecoveryCodesRequest, totp::RecoveryCodesResponse, login::LoginStateResponse, account::AccountResponse, phone::PhoneRequest, phone::CodeSentResponse, phone::InboundChallengeResponse, two_factor::SendCodeRequest,
        account::ActivityResponse, audit::EventView, audit::AuditPage, audit::VerifyResponse,
        admin::UserView, admin::UserListResponse, admin::NewUserRequest, admin::CreatedUserResponse, admin::UserChangeRequest, admin::InvitationResponse,
        account_password::ChangePasswordRequest, account_password::SessionsEndedResponse, sessions::SessionItem, sessions::SessionListResponse, sessions::EndSessionsRequest,
        policy::PolicyResponse, policy::PolicySettings, policy::PolicyChangeRequest, policy::TwoFactorRuleName,
        messages::NewMessageRequest, messages::Recipients, messages::CreatedMessage, messages::CreatedMessagesResponse, messages::MessageListItem, messages::MessageListResponse, messages::AttachmentView, messages::MessageView, messages::UploadResponse, messages::AcceptInvitationRequest, messages::InvitationStateResponse)),
    modifiers(&CommonResponses),
    tags(
        (name = "login", description = "The login state machine"),
        (name = "account", description = "The signed-in user's account"),
        (name = "admin", description = "Administration: users, the security policy and the audit log (administrators who signed in with two factors)"),
        (name = "messages", description = "Secure messages: sensitive data handed over behind two-factor sign-in, never in an email"),
        (name = "sms", description = "The SMS gateway's inbound webhook"),
        (name = "meta", description = "Health and this document"),
    )
)]
pub struct ApiDoc;

/// Calls that need no session (every other `/api/v1/` call answers 401 without one).
const NO_SESSION: &[&str] = &[
    "/api/v1/login",
    "/api/v1/logout",
    "/api/v1/sms/inbound",
    "/api/openapi.json",
    "/healthz",
    "/readyz",
];

/// Fields whose value is a password or a one-time code: checking them counts failures, so a
/// call that takes one can answer 429, and one that hashes a password can be shed with 503.
const SECRET_FIELDS: &[&str] = &["password", "new_password", "code"];

/// Adds the answers every call of a kind can give, so that each operation lists every status it
/// may answer with: a JSON body can be malformed (400), too large (413), not JSON (415) or of
/// the wrong shape (422); a query string can be malformed (400) or hold a bad value (422); a
/// gated call answers 401 without a session, an administration call 403 to anyone but an
/// administrator; a body with a secret can be throttled (429).
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let secret_schemas: Vec<String> = openapi
            .components
            .as_ref()
            .map(|components| {
                components
                    .schemas
                    .iter()
                    .filter(|(_, schema)| has_secret_field(schema))
                    .map(|(name, _)| format!("#/components/schemas/{name}"))
                    .collect()
            })
            .unwrap_or_default();
        for (path, item) in openapi.paths.paths.iter_mut() {
            let gated = path.starts_with("/api/v1/") && !NO_SESSION.contains(&path.as_str());
            let admin = path.starts_with("/api/v1/admin/");
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                if gated {
                    add(
                        operation,
                        401,
                        "`unauthenticated`: no session in a state this call accepts",
                    );
                }
                if admin {
                    add(
                        operation,
                        403,
                        "`forbidden`: not an administrator signed in with two factors",
                    );
                }
                let has_query = operation
                    .parameters
                    .iter()
                    .flatten()
                    .any(|parameter| matches!(parameter.parameter_in, ParameterIn::Query));
                if has_query {
                    add(
                        operation,
                        400,
                        "`invalid_query`: the query string is malformed (a parameter given twice, a broken escape)",
                    );
                    add(
                        operation,
                        422,
                        "`invalid_query`: a parameter has a bad value (the message names it)",
                    );
                }
                let Some(body) = operation.request_body.as_ref() else {
                    continue;
                };
                let json = body.content.get("application/json");
                let secret = json
                    .and_then(|content| content.schema.as_ref())
                    .is_some_and(|schema| {
                        matches!(schema, RefOr::Ref(reference) if secret_schemas.contains(&reference.ref_location))
                    });
                if json.is_some() {
                    add(operation, 400, "`malformed_json`: the body is not JSON");
                    add(
                        operation,
                        422,
                        "`invalid_body`: not an object, or a field missing, unknown or of the wrong type",
                    );
                }
                add(operation, 413, "`payload_too_large`");
                add(
                    operation,
                    415,
                    "`unsupported_media_type`: not `Content-Type: application/json`",
                );
                if secret {
                    add(
                        operation,
                        429,
                        "`too_many_attempts`: too many failures; retry after `Retry-After` seconds",
                    );
                }
            }
        }
    }
}

fn has_secret_field(schema: &RefOr<Schema>) -> bool {
    match schema {
        RefOr::T(Schema::Object(object)) => object
            .properties
            .keys()
            .any(|name| SECRET_FIELDS.contains(&name.as_str())),
        _ => false,
    }
}

/// Documents `status` with the error body unless the operation already does.
fn add(operation: &mut Operation, status: u16, description: &str) {
    let responses = &mut operation.responses.responses;
    let key = status.to_string();
    if responses.contains_key(&key) {
        return;
    }
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
    );
    if status == 429 {
        response = response.header(
            "Retry-After",
            Header::new(ObjectBuilder::new().schema_type(Type::Integer)),
        );
    }
    responses.insert(key, response.build().into());
}
