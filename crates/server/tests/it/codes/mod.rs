//! Codes by email and SMS through the API: phone and email as second factors, the code rules
//! (ten minutes, five tries, once, replaced by a new send, resends throttled), codes at the
//! `second_factor` step, turning 2FA off, the fallback-phone reset, phones verified by an
//! inbound text, and the notices that tell owners about changes. Everything is read back from
//! the outbox, as a user would read their mail and texts.

mod code_rules;
mod disable_reset;
mod email;
mod inbound;
mod login_codes;
mod notices;
mod phone;
mod races;
mod recovery_email;

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, code_in, session_cookie};
use crate::totp::independent_totp;

/// A valid UK mobile number (libphonenumber's example; Ofcom's 07700 900xxx drama range is not
/// valid to it), as E.164 and as typed nationally.
pub const PHONE: &str = "+447400123456";
pub const PHONE_NATIONAL: &str = "07400 123456";
/// The last two digits of [`PHONE`], all that a masked number shows.
pub const PHONE_TAIL: &str = "56";
/// A second valid UK mobile number.
pub const OTHER_PHONE: &str = "+447400123457";

pub const FACTOR_ADDED: &str = "A second factor was added to your account";
pub const RECOVERY_CODE_USED: &str = "A recovery code was used";
pub const TWO_FACTOR_OFF: &str = "Two-factor authentication was turned off";
pub const TWO_FACTOR_RESET: &str = "Your two-factor authentication was reset";

/// The `Retry-After` header in seconds; panics when it is missing.
pub fn retry_after(response: &Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After on {}", response.status()))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Every run of six or more digits in a text.
pub fn digit_runs(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() >= 6)
        .map(str::to_owned)
        .collect()
}

/// A six-digit code that is certainly not `code`.
pub fn wrong_code(code: &str) -> String {
    let value: u32 = code.parse().unwrap();
    format!("{:06}", (value + 1) % 1_000_000)
}

/// Asserts a JSON body.
pub async fn json_of(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts the status of a response, showing its body when it is not the expected one.
pub async fn expect_status(response: Response, status: StatusCode) {
    let actual = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "{text}");
}

impl TestApp {
    /// The emails to `to` whose subject is `subject`, oldest first.
    pub fn emails_titled(&self, to: &str, subject: &str) -> Vec<Value> {
        self.messages_to(to)
            .into_iter()
            .filter(|message| message["channel"] == "email" && message["subject"] == subject)
            .collect()
    }

    /// The code of the latest email to `to`, after checking it is an email whose code stands
    /// alone on its own line.
    pub fn emailed_code(&self, to: &str, subject: &str) -> String {
        let messages = self.messages_to(to);
        let message = messages
            .last()
            .unwrap_or_else(|| panic!("no message to {to}"));
        assert_eq!(message["channel"], "email", "{message}");
        assert_eq!(message["subject"], subject, "{message}");
        let body = message["body"].as_str().unwrap();
        let code = code_in(body).unwrap_or_else(|| panic!("no code in {message}"));
        assert!(
            body.lines().any(|line| line == code),
            "the code is not alone on its own line: {body}"
        );
        code
    }

    /// The code of the latest text to `phone` (E.164), after checking it is a text.
    pub fn texted_code(&self, phone: &str) -> String {
        let messages = self.messages_to(phone);
        let message = messages
            .last()
            .unwrap_or_else(|| panic!("no message to {phone}"));
        assert_eq!(message["channel"], "sms", "{message}");
        assert!(message.get("subject").is_none(), "{message}");
        let code = self.latest_code(phone);
        assert_eq!(
            digit_runs(message["body"].as_str().unwrap()),
            std::slice::from_ref(&code)
        );
        code
    }

    /// Asserts that exactly one notice titled `subject` reached `to`, and that it carries no
    /// code; returns its body with each run of white space (line breaks too) made one space.
    pub fn single_notice(&self, to: &str, subject: &str) -> String {
        let notices = self.emails_titled(to, subject);
        assert_eq!(notices.len(), 1, "notices {subject:?} to {to}: {notices:?}");
        let body = notices[0]["body"].as_str().unwrap();
        assert!(
            digit_runs(body).is_empty(),
            "a notice carries a code: {body}"
        );
        body.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// `GET /api/v1/account` of a fully signed-in client.
    pub async fn account(&self, client: &Client) -> Value {
        json_of(self.get(client, "/api/v1/account").await, StatusCode::OK).await
    }

    /// A user who must enroll, signed in up to `enrollment_required`.
    pub async fn enrollment_session(&self, email: &str) -> Client {
        self.create_user(email, Some(PASSWORD), true).await;
        let client = self.client();
        let step = json_of(self.login(&client, email, PASSWORD).await, StatusCode::OK).await;
        assert_eq!(
            step,
            json!({"state": "enrollment_required", "methods": ["totp", "sms", "email"]})
        );
        client
    }

    /// A user who need not enroll and has no factor, fully signed in after the password.
    pub async fn signed_in(&self, email: &str) -> Client {
        self.create_user(email, Some(PASSWORD), false).await;
        let client = self.client();
        let step = json_of(self.login(&client, email, PASSWORD).await, StatusCode::OK).await;
        assert_eq!(step, json!({"state": "authenticated", "methods": []}));
        client
    }

    /// Adds `phone` (E.164) as the SMS factor of the client's user by a code sent to it;
    /// returns the recovery codes of the confirmation.
    pub async fn add_phone(&self, client: &Client, phone: &str) -> Vec<String> {
        let sent = self
            .post(client, "/api/v1/account/phone", json!({"phone": phone}))
            .await;
        expect_status(sent, StatusCode::ACCEPTED).await;
        let code = self.texted_code(phone);
        let confirmed = self
            .post(
                client,
                "/api/v1/account/phone/confirm",
                json!({"code": code}),
            )
            .await;
        assert_eq!(confirmed.status(), StatusCode::OK);
        assert!(session_cookie(&confirmed).is_some(), "the session rotates");
        strings(&confirmed.json::<Value>().await.unwrap()["recovery_codes"])
    }

    /// A user who must enroll, with `phone` as their only factor; the clock moves on past the
    /// resend interval so that a sign-in code can be sent to the phone at once.
    pub async fn phone_user(&self, email: &str, phone: &str) -> Vec<String> {
        let client = self.enrollment_session(email).await;
        let codes = self.add_phone(&client, phone).await;
        self.clock.advance_seconds(61);
        codes
    }

    /// Verifies the client's address with the emailed code.
    pub async fn verify_address(&self, client: &Client, email: &str) {
        let sent = self
            .post(client, "/api/v1/account/email/send-code", json!({}))
            .await;
        assert_eq!(sent.status(), StatusCode::ACCEPTED);
        let code = self.emailed_code(email, "Verify your email address");
        let verified = self
            .post(
                client,
                "/api/v1/account/email/verify",
                json!({"code": code}),
            )
            .await;
        assert_eq!(
            json_of(verified, StatusCode::OK).await,
            json!({"email_verified": true})
        );
    }

    /// Turns on email codes for the client's user (address already verified); returns the
    /// recovery codes of the confirmation.
    pub async fn add_email_factor(&self, client: &Client, email: &str) -> Vec<String> {
        let sent = self
            .post(client, "/api/v1/account/email-2fa/send-code", json!({}))
            .await;
        assert_eq!(sent.status(), StatusCode::ACCEPTED);
        let code = self.emailed_code(email, "Turn on sign-in codes by email");
        let confirmed = self
            .post(
                client,
                "/api/v1/account/email-2fa/confirm",
                json!({"code": code}),
            )
            .await;
        assert_eq!(confirmed.status(), StatusCode::OK);
        assert!(session_cookie(&confirmed).is_some(), "the session rotates");
        strings(&confirmed.json::<Value>().await.unwrap()["recovery_codes"])
    }

    /// A user who must enroll, with email codes as their only factor; the clock moves on past
    /// the resend interval.
    pub async fn email_user(&self, email: &str) -> Vec<String> {
        let client = self.enrollment_session(email).await;
        self.verify_address(&client, email).await;
        self.clock.advance_seconds(61);
        let codes = self.add_email_factor(&client, email).await;
        self.clock.advance_seconds(61);
        codes
    }

    /// Enrolls an authenticator in a session that may (no factor yet, or an enrollment
    /// session); returns its secret and the recovery codes.
    pub async fn add_totp(&self, client: &Client) -> (String, Vec<String>) {
        let started = json_of(
            self.post(client, "/api/v1/account/totp", json!({})).await,
            StatusCode::OK,
        )
        .await;
        let secret = started["secret"].as_str().unwrap().to_owned();
        let confirmed = self
            .post(
                client,
                "/api/v1/account/totp/confirm",
                json!({"code": independent_totp(&secret, self.now())}),
            )
            .await;
        let body = json_of(confirmed, StatusCode::OK).await;
        (secret, strings(&body["recovery_codes"]))
    }

    /// A new client at `second_factor`, checking the methods offered.
    pub async fn at_second_factor_with(&self, email: &str, methods: Value) -> Client {
        let client = self.client();
        let step = json_of(self.login(&client, email, PASSWORD).await, StatusCode::OK).await;
        assert_eq!(step, json!({"state": "second_factor", "methods": methods}));
        client
    }
}

pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|item| item.as_str().unwrap().to_owned())
        .collect()
}
