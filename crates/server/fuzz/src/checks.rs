//! What each fuzz target checks, one function per target, shared by the targets in
//! `fuzz_targets/` and by a plain `#[test]` of the server's test suite that runs every function
//! over the seed inputs in `seeds/` (see `crates/server/tests/it/bodies.rs`). Each function takes
//! the fuzzer's bytes; none may panic except through a failed assertion here.

use secrecy::{ExposeSecret, SecretString};
use twofold_core::ServiceSettings;
use twofold_core::email::Email;
use twofold_core::password::{LoginPassword, NewPassword};
use twofold_core::phone::PhoneNumber;
use twofold_core::policy::SecurityPolicy;
use twofold_core::session::SessionToken;
use twofold_server::error::ApiError;
use twofold_server::json;
use twofold_server::routes::{admin, login, phone, policy, sms_inbound, totp, two_factor};

/// A target's check of one input.
pub type Check = fn(&[u8]);

/// Every target by name, for the seed-corpus test.
pub const TARGETS: &[(&str, Check)] = &[
    ("email", email),
    ("phone", phone),
    ("passwords", passwords),
    ("json_bodies", json_bodies),
    ("sms_webhook", sms_webhook),
    ("cookies", cookies),
    ("policy", policy),
];

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// `Email::parse`: an accepted address is in its normal form (parsing it again changes
/// nothing), at most 254 bytes, with one `@` between non-empty parts.
pub fn email(data: &[u8]) {
    let Some(input) = text(data) else { return };
    if let Ok(email) = Email::parse(input) {
        let normal = email.as_str();
        assert!(normal.len() <= 254, "{normal:?}");
        let (local, domain) = normal.rsplit_once('@').expect("an @");
        assert!(!local.is_empty() && !domain.is_empty(), "{normal:?}");
        assert_eq!(email.local_part(), local);
        assert_eq!(
            Email::parse(normal).as_ref(),
            Ok(&email),
            "not idempotent: {input:?}"
        );
    }
}

/// `PhoneNumber::parse` with no country, a known one or arbitrary text as the country (the
/// first line of the input): an accepted number is `+` and digits (at most 17, libphonenumber's
/// longest), reads back as itself without a country, and masks without panicking.
pub fn phone(data: &[u8]) {
    let Some(input) = text(data) else { return };
    let (country, number) = match input.split_once('\n') {
        Some((country, number)) => (Some(country), number),
        None => (None, input),
    };
    for country in [country, None, Some("GB"), Some("US")] {
        if let Ok(parsed) = PhoneNumber::parse(number, country) {
            let e164 = parsed.as_e164();
            assert!(e164.starts_with('+'), "{e164:?}");
            assert!(
                // libphonenumber's metadata allows up to 17 digits (German numbers do), more
                // than E.164's 15.
                e164.len() <= 18 && e164[1..].bytes().all(|b| b.is_ascii_digit()),
                "{e164:?}"
            );
            assert_eq!(
                PhoneNumber::parse(e164, None).as_ref(),
                Ok(&parsed),
                "{input:?}"
            );
            let masked = parsed.masked();
            assert!(masked.ends_with(&e164[e164.len() - 2..]), "{masked:?}");
        }
    }
}

/// `LoginPassword::parse` and `NewPassword::parse`: a password accepted as new is also
/// accepted at login, normalised the same way, and normalising is idempotent.
pub fn passwords(data: &[u8]) {
    let Some(input) = text(data) else { return };
    let secret = SecretString::from(input.to_owned());
    let login = LoginPassword::parse(&secret);
    if let Some(login) = &login {
        let again = LoginPassword::parse(login.secret()).expect("a normalised password stays");
        assert_eq!(
            again.secret().expose_secret(),
            login.secret().expose_secret()
        );
    }
    let owner = Email::parse("alice@example.com").expect("a valid address");
    if let Ok(new) = NewPassword::parse(&secret, &owner) {
        let login = login.expect("a new password is a login password");
        assert_eq!(new.secret().expose_secret(), login.secret().expose_secret());
        assert!(new.secret().expose_secret().chars().count() >= 8);
    }
}

/// A body refused with 400 `malformed_json` or 422 `invalid_body`, never anything else.
fn refused_well(result: Result<(), ApiError>) {
    if let Err(error) = result {
        let answer = (error.status().as_u16(), error.code());
        assert!(
            matches!(answer, (400, "malformed_json") | (422, "invalid_body")),
            "{answer:?}: {}",
            error.message()
        );
        assert!(!error.message().is_empty());
    }
}

fn body<T: serde::de::DeserializeOwned>(data: &[u8]) -> Result<(), ApiError> {
    json::parse::<T>(data).map(drop)
}

/// Every JSON request body the API takes, read by the API's own extractor logic.
pub fn json_bodies(data: &[u8]) {
    refused_well(body::<login::LoginRequest>(data));
    refused_well(body::<login::NewPasswordRequest>(data));
    refused_well(body::<login::EmptyBody>(data));
    refused_well(body::<login::VerifyRequest>(data));
    refused_well(body::<two_factor::SendCodeRequest>(data));
    refused_well(body::<totp::StartTotpRequest>(data));
    refused_well(body::<totp::CodeRequest>(data));
    refused_well(body::<totp::PasswordRequest>(data));
    refused_well(body::<totp::NewRecoveryCodesRequest>(data));
    refused_well(body::<phone::PhoneRequest>(data));
    refused_well(body::<admin::NewUserRequest>(data));
    refused_well(body::<admin::UserChangeRequest>(data));
    refused_well(body::<policy::PolicyChangeRequest>(data));
    // Whatever the extractor accepts is one JSON object.
    if json::parse::<login::EmptyBody>(data).is_ok() {
        let value: serde_json::Value = serde_json::from_slice(data).expect("valid JSON");
        assert_eq!(value, serde_json::json!({}));
    }
}

const TOKEN: &str = "fuzz-token";
const PUBLIC_URL: &str = "https://twofold.example";
const PATH: &str = "/api/v1/sms/inbound";

/// The SMS webhook: the first byte picks whether the request carries the right signature
/// (computed here) or the next 28 bytes as the signature; the rest is the form body. A right
/// signature is accepted and yields the form's fields; anything else is 403.
pub fn sms_webhook(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = SecretString::from(TOKEN.to_owned());
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(rest)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    if mode & 1 == 1 {
        let right = sms_inbound::twilio_signature(&token, &format!("{PUBLIC_URL}{PATH}"), &fields);
        let read = sms_inbound::signed_fields(&token, PUBLIC_URL, PATH, right.as_bytes(), rest);
        assert_eq!(read.ok(), Some(fields));
        // The same signature under another URL is refused.
        let other = sms_inbound::signed_fields(&token, PUBLIC_URL, "/x", right.as_bytes(), rest);
        assert_eq!(other.err().map(|error| error.status().as_u16()), Some(403));
    } else {
        let (given, body) = rest.split_at(rest.len().min(28));
        let right = sms_inbound::twilio_signature(&token, &format!("{PUBLIC_URL}{PATH}"), &fields);
        match sms_inbound::signed_fields(&token, PUBLIC_URL, PATH, given, body) {
            Ok(_) => {
                let fields: Vec<(String, String)> = url::form_urlencoded::parse(body)
                    .map(|(name, value)| (name.into_owned(), value.into_owned()))
                    .collect();
                let expected =
                    sms_inbound::twilio_signature(&token, &format!("{PUBLIC_URL}{PATH}"), &fields);
                assert_eq!(given, expected.as_bytes(), "accepted a wrong signature");
            }
            Err(error) => {
                assert_eq!(
                    (error.status().as_u16(), error.code()),
                    (403, "invalid_signature")
                );
            }
        }
        drop(right);
    }
}

/// The `Cookie` header: `read_cookie` over arbitrary header bytes, and `SessionToken::parse` on
/// whatever it finds (and on the raw text): a token is accepted only in the shape the server
/// issues (43 characters of unpadded base64url) and keeps its text.
pub fn cookies(data: &[u8]) {
    use axum::http::{HeaderMap, HeaderValue, header};
    let mut headers = HeaderMap::new();
    for line in data.split(|byte| *byte == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(header::COOKIE, value);
        }
    }
    let found = twofold_server::cookies::read_cookie(&headers, "twofold_session");
    let raw = text(data);
    for candidate in [found, raw].into_iter().flatten() {
        if let Some(token) = SessionToken::parse(candidate) {
            assert_eq!(token.expose(), candidate);
            assert_eq!(candidate.len(), 43, "{candidate:?}");
            assert!(
                candidate
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            let _ = token.id_hash();
        }
    }
    if let Some(value) = found {
        assert!(!value.contains(';'), "{value:?}");
    }
}

/// A security-policy PATCH document: read as the API reads it, applied to the default policy
/// and checked. A change the check accepts keeps every setting in range, and applying it
/// twice changes nothing more.
pub fn policy(data: &[u8]) {
    let request = match json::parse::<policy::PolicyChangeRequest>(data) {
        Ok(request) => request,
        Err(error) => return refused_well(Err(error)),
    };
    let change = request.change();
    let current = SecurityPolicy::from_settings(&ServiceSettings::default());
    let next = current.apply(&change);
    if next.check().is_ok() {
        assert_eq!(next.apply(&change), next);
        assert!(!next.allowed_methods.is_empty());
        let settings = policy::PolicySettings::from(&next);
        serde_json::to_vec(&settings).expect("the settings serialise");
    }
}
