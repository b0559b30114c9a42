//! What Twofold tells people by email and text message: one-time codes, and notices when
//! something changes about how their account is protected. The words live here, beside the
//! flows; the server decides how a message travels (outbox, SMTP, SMS gateway).
//!
//! A code stands alone on its line (the HTML part shows it large) and no other run of six
//! digits appears in a message, so that people, mail clients and tests find it without doubt.
//! Durations are written in words for the same reason.

use crate::delivery::{DeliveryError, EmailMessage, SmsMessage};
use crate::phone::PhoneNumber;
use crate::service::Service;
use crate::user::{Method, User};

/// What a one-time code is for; also its purpose name in the code store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    /// Proving the account's email address is the user's.
    EmailVerify,
    /// Turning on email codes as a second factor.
    EmailFactor,
    /// Proving a phone is the user's before it becomes their SMS factor.
    PhoneVerify,
    /// The `second_factor` step of a login, by SMS.
    LoginSms,
    /// The `second_factor` step of a login, by email.
    LoginEmail,
    /// Turning two-factor authentication off.
    DisableTwoFactor,
    /// Resetting the second factors from the fallback phone at login.
    FallbackReset,
    /// Making a new set of recovery codes without the password (seed 002).
    NewRecoveryCodes,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::EmailVerify => "email_verify",
            CodePurpose::EmailFactor => "email_2fa",
            CodePurpose::PhoneVerify => "phone_verify",
            CodePurpose::LoginSms => "login_sms",
            CodePurpose::LoginEmail => "login_email",
            CodePurpose::DisableTwoFactor => "disable_2fa",
            CodePurpose::FallbackReset => "fallback_reset",
            CodePurpose::NewRecoveryCodes => "recovery_codes",
        }
    }

    /// The subject of the email and the first words of the text message.
    fn title(self) -> &'static str {
        match self {
            CodePurpose::EmailVerify => "Verify your email address",
            CodePurpose::EmailFactor => "Turn on sign-in codes by email",
            CodePurpose::PhoneVerify => "Verify your phone number",
            CodePurpose::LoginSms | CodePurpose::LoginEmail => "Your sign-in code",
            CodePurpose::DisableTwoFactor => "Turn off two-factor authentication",
            CodePurpose::FallbackReset => "Reset two-factor authentication",
            CodePurpose::NewRecoveryCodes => "Make new recovery codes",
        }
    }

    /// What the code does, in a sentence that follows "Enter this code to".
    fn action(self) -> &'static str {
        match self {
            CodePurpose::EmailVerify => "verify your email address",
            CodePurpose::EmailFactor => "turn on sign-in codes by email",
            CodePurpose::PhoneVerify => "verify your phone number",
            CodePurpose::LoginSms | CodePurpose::LoginEmail => "finish signing in",
            CodePurpose::DisableTwoFactor => "turn off two-factor authentication",
            CodePurpose::FallbackReset => "reset your two-factor authentication",
            CodePurpose::NewRecoveryCodes => "make new recovery codes",
        }
    }
}

/// A change to how an account is protected, told to its owner by email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    FactorAdded(Method),
    /// Two-factor authentication was turned off by the user.
    TwoFactorDisabled,
    /// The second factors were removed: from the fallback phone, or by an administrator.
    TwoFactorReset {
        by_administrator: bool,
    },
    RecoveryCodeUsed {
        left: u32,
    },
    NewRecoveryCodes,
    /// The password was right but the second step failed this many times in a row: the
    /// account is locked for a while.
    SecondFactorFailures {
        failures: u32,
    },
    /// The user changed their password from their account; their other sessions ended.
    PasswordChanged,
    /// An administrator created the account (or sent the invitation again). The temporary
    /// password never travels by email; the administrator hands it over.
    Invitation {
        sign_in_url: String,
    },
}

fn method_words(method: Method) -> &'static str {
    match method {
        Method::Totp => "An authenticator app",
        Method::Sms => "Codes by text message",
        Method::Email => "Codes by email",
        Method::RecoveryCode => "Recovery codes",
    }
}

const NOT_YOU: &str =
    "If this was not you, change your password at once and tell your administrator.";

/// The last words of a notice: what to do if the owner did not do this. A change an
/// administrator made was not the owner's doing to begin with.
fn closing(notice: &Notice) -> &'static str {
    match notice {
        Notice::TwoFactorReset {
            by_administrator: true,
        } => "If you did not ask for this, tell your administrator at once.",
        // Whoever changed it knows the new password, and the owner does not.
        Notice::PasswordChanged => {
            "If this was not you, tell your administrator at once: someone else has your account."
        }
        _ => NOT_YOU,
    }
}

/// Lines of an email's text part are kept this short, so that it travels as plain 7-bit text
/// (longer lines get quoted-printable, which turns `=` into `=3D` for readers without MIME).
const LINE_WIDTH: usize = 72;

/// Wraps each line of `text` at spaces to at most [`LINE_WIDTH`] characters; a word longer
/// than that (a link) stays whole on its own line.
pub(crate) fn wrap(text: &str) -> String {
    let mut wrapped = String::with_capacity(text.len() + 16);
    for line in text.split('\n') {
        let mut width = 0;
        for (index, word) in line.split(' ').enumerate() {
            let length = word.chars().count();
            if index > 0 {
                if width + 1 + length > LINE_WIDTH {
                    wrapped.push('\n');
                    width = 0;
                } else {
                    wrapped.push(' ');
                    width += 1;
                }
            }
            wrapped.push_str(word);
            width += length;
        }
        wrapped.push('\n');
    }
    wrapped.pop();
    wrapped
}

/// The email that carries `code`. `link` is a page that fills the code in for the person.
pub fn code_email(
    user: &User,
    purpose: CodePurpose,
    code: &str,
    link: Option<&str>,
) -> EmailMessage {
    let mut text = format!(
        "Enter this code to {}:\n\n{code}\n\nIt works once, for ten minutes.\n",
        purpose.action()
    );
    if let Some(link) = link {
        text.push_str(&format!("\nOr open this link while signed in:\n{link}\n"));
    }
    text.push_str(
        "\nNever tell anyone this code; nobody from us will ask for it. \
         If you did not ask for it, you can ignore this email, but if you get codes you did not \
         ask for, someone may know your password: change it.\n",
    );
    EmailMessage {
        to: user.email.clone(),
        subject: purpose.title().to_owned(),
        text_body: wrap(&text),
        html_body: None,
    }
}

/// The text message that carries `code`.
pub fn code_sms(phone: &PhoneNumber, purpose: CodePurpose, code: &str) -> SmsMessage {
    SmsMessage {
        to: phone.as_e164().to_owned(),
        body: format!(
            "Twofold: {code} is your code to {}. It expires in ten minutes. Never share it.",
            purpose.action()
        ),
    }
}

/// The email that tells the owner about `notice`.
pub fn notice_email(user: &User, notice: &Notice) -> EmailMessage {
    let (subject, first) = match notice {
        Notice::FactorAdded(method) => (
            "A second factor was added to your account".to_owned(),
            format!(
                "{} can now be used as the second step of signing in to your account.",
                method_words(*method)
            ),
        ),
        Notice::TwoFactorDisabled => (
            "Two-factor authentication was turned off".to_owned(),
            "Two-factor authentication was turned off for your account: signing in now needs \
             only your password."
                .to_owned(),
        ),
        Notice::TwoFactorReset { by_administrator } => (
            "Your two-factor authentication was reset".to_owned(),
            if *by_administrator {
                "An administrator removed the second factors of your account. You will set up a \
                 new one the next time you sign in."
                    .to_owned()
            } else {
                "The second factors of your account were removed with a code sent to your \
                 fallback phone, and a new one is being set up."
                    .to_owned()
            },
        ),
        Notice::RecoveryCodeUsed { left } => (
            "A recovery code was used".to_owned(),
            format!(
                "A recovery code was used to sign in to your account. {left} of your recovery \
                 codes are left; make new ones from your account page when they run low."
            ),
        ),
        Notice::NewRecoveryCodes => (
            "New recovery codes".to_owned(),
            "New recovery codes were made for your account; the earlier ones no longer work."
                .to_owned(),
        ),
        Notice::SecondFactorFailures { failures } => (
            "Failed attempts to sign in to your account".to_owned(),
            format!(
                "Someone entered your password and then a wrong second-step code {failures} \
                 times in a row, so signing in is paused for a while. If this was you, wait and \
                 try again. If it was not, someone knows your password: change it at once."
            ),
        ),
        Notice::PasswordChanged => (
            "Your password was changed".to_owned(),
            "The password of your account was changed, and every other session signed in to \
             your account was signed out."
                .to_owned(),
        ),
        Notice::Invitation { sign_in_url } => (
            "An account was made for you".to_owned(),
            format!(
                "An administrator made an account for you. Sign in here with this email \
                 address and the temporary password your administrator gives you:\n{sign_in_url}\n\n\
                 You will choose your own password, and may be asked to set up a second \
                 factor, when you first sign in."
            ),
        ),
    };
    if let Notice::Invitation { .. } = notice {
        return EmailMessage {
            to: user.email.clone(),
            text_body: wrap(&format!(
                "{first}\n\nIf you did not expect this, you can ignore this email.\n"
            )),
            subject,
            html_body: None,
        };
    }
    EmailMessage {
        to: user.email.clone(),
        text_body: wrap(&format!("{first}\n\n{}\n", closing(notice))),
        subject,
        html_body: None,
    }
}

impl Service {
    /// Emails `code` for `purpose` to the user's address. Durable once it returns.
    pub(crate) async fn email_code(
        &self,
        user: &User,
        purpose: CodePurpose,
        code: &str,
    ) -> Result<(), DeliveryError> {
        let link = match purpose {
            CodePurpose::EmailVerify => Some(format!(
                "{}/account/email/verify?code={code}",
                self.settings.public_url
            )),
            _ => None,
        };
        let message = code_email(user, purpose, code, link.as_deref());
        self.senders
            .mailer
            .send_email(&message, self.clock.now())
            .await
    }

    /// Texts `code` for `purpose` to `phone`. Durable once it returns.
    pub(crate) async fn text_code(
        &self,
        phone: &PhoneNumber,
        purpose: CodePurpose,
        code: &str,
    ) -> Result<(), DeliveryError> {
        self.senders
            .sms
            .send_sms(&code_sms(phone, purpose, code), self.clock.now())
            .await
    }

    /// Tells the owner about a change. What it reports has already happened, so a failure to
    /// queue the email is logged, not returned.
    pub async fn notify(&self, user: &User, notice: Notice) {
        let message = notice_email(user, &notice);
        if let Err(error) = self
            .senders
            .mailer
            .send_email(&message, self.clock.now())
            .await
        {
            tracing::error!(user_id = %user.id, error = %error, "could not queue a notice email");
        }
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::email::Email;
    use crate::user::UserId;

    fn user() -> User {
        User {
            id: UserId::random(),
            email: Email::parse("alice@example.com").unwrap(),
            password_hash: String::new(),
            password_change_required: false,
            is_admin: false,
            require_2fa: false,
            require_2fa_since: None,
            email_verified: false,
            disabled: false,
            created_at: OffsetDateTime::UNIX_EPOCH,
            last_login_at: None,
        }
    }

    fn six_digit_runs(text: &str) -> Vec<String> {
        text.split(|c: char| !c.is_ascii_digit())
            .filter(|run| run.len() >= 6)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_code_stands_alone_on_its_line_and_nowhere_else_but_the_link() {
        let message = code_email(
            &user(),
            CodePurpose::EmailVerify,
            "042017",
            Some("http://127.0.0.1:8080/account/email/verify?code=042017"),
        );
        assert!(message.text_body.lines().any(|line| line == "042017"));
        assert_eq!(six_digit_runs(&message.text_body), ["042017", "042017"]);
        assert_eq!(message.subject, "Verify your email address");
        let login = code_email(&user(), CodePurpose::LoginEmail, "999000", None);
        assert_eq!(six_digit_runs(&login.text_body), ["999000"]);
    }

    #[test]
    fn email_lines_are_short_and_links_stay_whole() {
        let link = format!("https://login.example.com/{}", "x".repeat(100));
        let message = code_email(
            &user(),
            CodePurpose::DisableTwoFactor,
            "123456",
            Some(&link),
        );
        for line in message.text_body.lines() {
            assert!(
                line.chars().count() <= LINE_WIDTH || line == link,
                "{line:?}"
            );
        }
        assert!(message.text_body.lines().any(|line| line == link));
        assert!(message.text_body.ends_with('\n'));
        let notice = notice_email(&user(), &Notice::RecoveryCodeUsed { left: 3 });
        assert!(
            notice
                .text_body
                .lines()
                .all(|line| line.chars().count() <= LINE_WIDTH)
        );
        assert_eq!(wrap("a b\n\nc"), "a b\n\nc");
    }

    #[test]
    fn a_text_carries_the_code_once_and_names_its_purpose() {
        let phone = PhoneNumber::parse("+441212345678", None).unwrap();
        let message = code_sms(&phone, CodePurpose::FallbackReset, "123456");
        assert_eq!(message.to, "+441212345678");
        assert_eq!(six_digit_runs(&message.body), ["123456"]);
        assert!(
            message.body.contains("reset your two-factor"),
            "{}",
            message.body
        );
    }

    #[test]
    fn notices_carry_no_code_and_say_what_to_do_if_it_was_not_you() {
        for notice in [
            Notice::FactorAdded(Method::Sms),
            Notice::TwoFactorDisabled,
            Notice::TwoFactorReset {
                by_administrator: true,
            },
            Notice::RecoveryCodeUsed { left: 9 },
            Notice::NewRecoveryCodes,
            Notice::PasswordChanged,
        ] {
            let message = notice_email(&user(), &notice);
            assert!(six_digit_runs(&message.text_body).is_empty());
            assert!(
                message
                    .text_body
                    .replace('\n', " ")
                    .contains(closing(&notice)),
                "{notice:?}"
            );
        }
        let by_admin = notice_email(
            &user(),
            &Notice::TwoFactorReset {
                by_administrator: true,
            },
        );
        let text = by_admin.text_body.replace('\n', " ");
        assert!(text.contains("tell your administrator") && !text.contains(NOT_YOU));
    }
}
