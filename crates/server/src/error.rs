//! `ApiError`: every failure of the JSON API becomes the contract's body
//! `{"error": "<snake_case_code>", "message": "<text for a person>"}` with a stable code. A 500
//! says nothing of its cause to the client and logs it in full.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use twofold_core::accounts::AccountError;
use twofold_core::factors::FactorError;
use twofold_core::login::LoginError;
use twofold_core::policy::PolicyError;
use twofold_core::store::StoreError;
use twofold_core::throttle::retry_after_seconds;
use utoipa::ToSchema;

/// Seconds a shed request is asked to wait before retrying.
const OVERLOAD_RETRY_AFTER_SECONDS: u64 = 2;

/// The error body of every API error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code for programs.
    #[schema(example = "invalid_credentials")]
    pub error: String,
    /// Text for a person.
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "sign in first")
    }

    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this needs an administrator who signed in with two factors",
        )
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "there is nothing here")
    }

    pub fn overloaded() -> Self {
        Self {
            retry_after: Some(OVERLOAD_RETRY_AFTER_SECONDS),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "the server is busy; try again shortly",
            )
        }
    }

    /// 429 `too_many_attempts` with `Retry-After`: a lockout (of an account's password or
    /// second factor, or of the client's address) is running.
    pub fn too_many_attempts(retry_after: time::Duration, message: &str) -> Self {
        Self {
            retry_after: Some(retry_after_seconds(retry_after)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message)
        }
    }

    /// Logs the cause in full and tells the client nothing about it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<LoginError> for ApiError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "the email or password is not right",
            ),
            LoginError::WeakPassword(reason) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "weak_password",
                reason.to_string(),
            ),
            LoginError::SessionEnded => ApiError::unauthenticated(),
            LoginError::Overloaded => ApiError::overloaded(),
            LoginError::Throttled { retry_after } => ApiError::too_many_attempts(
                retry_after,
                "too many attempts; wait before trying again",
            ),
            LoginError::Unexpected(cause) => ApiError::internal(&format!("{cause:#}")),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::InvalidEmail(reason) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_email",
                reason.to_string(),
            ),
            AccountError::EmailTaken => ApiError::new(
                StatusCode::CONFLICT,
                "email_taken",
                "an account with this email address exists",
            ),
            AccountError::NotFound => ApiError::not_found(),
            AccountError::OwnAccount => ApiError::new(
                StatusCode::CONFLICT,
                "own_account",
                "administrators cannot disable their own account or reset their own two-factor authentication here",
            ),
            AccountError::InvitationAccepted => ApiError::new(
                StatusCode::CONFLICT,
                "invitation_accepted",
                "the user has already signed in and chosen a password",
            ),
            AccountError::WeakPassword(reason) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "weak_password",
                reason.to_string(),
            ),
            AccountError::Overloaded => ApiError::overloaded(),
            AccountError::Unexpected(cause) => ApiError::internal(&format!("{cause:#}")),
        }
    }
}

impl From<PolicyError> for ApiError {
    fn from(error: PolicyError) -> Self {
        match error {
            PolicyError::Invalid(reason) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy", reason)
            }
            PolicyError::Conflict => ApiError::new(
                StatusCode::CONFLICT,
                "policy_changed",
                "the policy was changed by someone else meanwhile; reload it and try again",
            ),
            PolicyError::Unexpected(cause) => ApiError::internal(&format!("{cause:#}")),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::internal(&format!("{:#}", anyhow::Error::new(error)))
    }
}

impl From<FactorError> for ApiError {
    fn from(error: FactorError) -> Self {
        match error {
            FactorError::InvalidCode => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_code",
                "the code is not right",
            ),
            FactorError::InvalidPassword => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "the password is not right",
            ),
            FactorError::NoPendingEnrollment => ApiError::new(
                StatusCode::CONFLICT,
                "no_pending_enrollment",
                "start the set-up again: there is no authenticator waiting for its first code",
            ),
            FactorError::NoSecondFactor => ApiError::new(
                StatusCode::CONFLICT,
                "no_second_factor",
                "set up a second factor first",
            ),
            FactorError::Throttled { retry_after } => ApiError::too_many_attempts(
                retry_after,
                "too many wrong attempts; wait before trying again",
            ),
            FactorError::SendThrottled { retry_after } => ApiError {
                retry_after: Some(retry_after_seconds(retry_after)),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_codes",
                    "a code was sent a moment ago; wait before asking for another",
                )
            },
            FactorError::EmailNotVerified => ApiError::new(
                StatusCode::FORBIDDEN,
                "email_not_verified",
                "verify your email address first",
            ),
            FactorError::EmailAlreadyVerified => ApiError::new(
                StatusCode::CONFLICT,
                "email_already_verified",
                "this email address is verified already",
            ),
            FactorError::TwoFactorRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                "two_factor_required",
                "two-factor authentication is required for this account",
            ),
            FactorError::MethodNotAllowed => ApiError::new(
                StatusCode::FORBIDDEN,
                "method_not_allowed",
                "this kind of second factor is not allowed by the security policy",
            ),
            FactorError::MethodNotEnrolled => ApiError::new(
                StatusCode::CONFLICT,
                "method_not_enrolled",
                "this account has no such second factor",
            ),
            FactorError::InvalidPhone(reason) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_phone",
                reason.to_string(),
            ),
            FactorError::InboundUnavailable => ApiError::not_found(),
            FactorError::InboundNotReceived => ApiError::new(
                StatusCode::CONFLICT,
                "sms_not_received",
                "your text has not arrived yet; send it, then try again",
            ),
            FactorError::SessionEnded => ApiError::unauthenticated(),
            FactorError::Overloaded => ApiError::overloaded(),
            FactorError::Unexpected(cause) => ApiError::internal(&format!("{cause:#}")),
        }
    }
}

impl From<twofold_core::messages::MessageError> for ApiError {
    fn from(error: twofold_core::messages::MessageError) -> Self {
        use twofold_core::messages::MessageError;
        use twofold_core::store::ErasedReason;
        match error {
            MessageError::InvalidRecipient(reason) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_email",
                reason.to_string(),
            ),
            MessageError::Invalid(reason) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_message", reason)
            }
            MessageError::NotFound => ApiError::not_found(),
            MessageError::Gone(ErasedReason::Expired) => ApiError::new(
                StatusCode::GONE,
                "message_expired",
                "this message has expired; its content is erased",
            ),
            MessageError::Gone(ErasedReason::Deleted) => ApiError::new(
                StatusCode::GONE,
                "message_deleted",
                "this message was deleted; its content is erased",
            ),
            MessageError::TwoFactorRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                "two_factor_required",
                "set up an authenticator app or text-message codes to read secure messages",
            ),
            MessageError::EmailTaken => ApiError::new(
                StatusCode::CONFLICT,
                "email_taken",
                "an account with this email address exists",
            ),
            MessageError::AlreadySent => ApiError::new(
                StatusCode::CONFLICT,
                "already_sent",
                "the message has been sent already",
            ),
            MessageError::TooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the file is larger than the limit of {limit} bytes"),
            ),
            MessageError::TooManyAttachments => ApiError::new(
                StatusCode::CONFLICT,
                "too_many_attachments",
                "a message has at most 20 attachments",
            ),
            MessageError::InvitationInvalid => ApiError::new(
                StatusCode::NOT_FOUND,
                "invitation_invalid",
                "this link is no longer valid; sign in instead",
            ),
            MessageError::Throttled { retry_after } => ApiError {
                retry_after: Some(retry_after_seconds(retry_after)),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_messages",
                    "too many messages sent; wait before sending more",
                )
            },
            MessageError::Overloaded => ApiError::overloaded(),
            MessageError::Unexpected(cause) => ApiError::internal(&format!("{cause:#}")),
        }
    }
}
