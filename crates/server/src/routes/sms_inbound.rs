//! `POST /api/v1/sms/inbound`: the SMS gateway's webhook for texts sent *to* the system number
//! (Twilio's inbound form: `From`, `To`, `Body`, …, form-encoded), used to verify a phone by a
//! text from it. Every request must carry Twilio's signature, `X-Twilio-Signature`: base64 of
//! HMAC-SHA1, keyed with the auth token, over the public URL of this endpoint followed by each
//! form field's name and value, sorted by name. Unsigned or wrongly signed requests get 403.
//!
//! This is the one write under `/api/` that is not JSON: the gateway cannot send JSON, and the
//! signature (not a session cookie) authenticates it, so cross-site forms gain nothing.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub const INBOUND_PATH: &str = "/api/v1/sms/inbound";
const SIGNATURE_HEADER: &str = "x-twilio-signature";
/// What Twilio expects back: no reply text.
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

/// Twilio's request signature over `url` and the form `fields`.
pub fn twilio_signature(token: &SecretString, url: &str, fields: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = fields.iter().collect();
    sorted.sort();
    let mut mac = match Hmac::<Sha1>::new_from_slice(token.expose_secret().as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm cannot run.
        Err(_) => return String::new(),
    };
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map_or("", |(_, value)| value.as_str())
}

/// Receives a text sent to the system number.
#[utoipa::path(post, path = "/api/v1/sms/inbound", tag = "sms",
    request_body(content_type = "application/x-www-form-urlencoded", description = "Twilio's inbound message fields (`From`, `To`, `Body`, …)"),
    responses(
        (status = 200, description = "Empty TwiML (`<Response></Response>`), whether or not the text completed a check", content_type = "text/xml"),
        (status = 403, description = "`invalid_signature`: missing or wrong `X-Twilio-Signature`", body = ErrorBody),
        (status = 404, description = "`not_found`: inbound texts are not configured", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "Not form-encoded", body = ErrorBody),
    ))]
pub async fn inbound(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Some(token) = state.http.inbound_sms_token.as_ref() else {
        return Err(ApiError::not_found());
    };
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            crate::json::payload_too_large()
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "the request body could not be read",
            )
        }
    })?;
    // The URL the gateway was given: the public URL, never this request's Host header.
    let path_and_query = uri
        .path_and_query()
        .map_or(INBOUND_PATH, |path| path.as_str());
    let given = headers
        .get(SIGNATURE_HEADER)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let fields = signed_fields(
        token,
        state.http.public_url.as_str(),
        path_and_query,
        given,
        &body,
    )?;
    state
        .service
        .record_inbound_sms(field(&fields, "From"), field(&fields, "Body"))
        .await?;
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"))],
        EMPTY_TWIML,
    )
        .into_response())
}

/// The form fields of a webhook `body`, if `given` is Twilio's signature of them under the URL
/// `public_url` + `path_and_query`; else 403 `invalid_signature`.
pub fn signed_fields(
    token: &SecretString,
    public_url: &str,
    path_and_query: &str,
    given: &[u8],
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    let url = format!("{}{path_and_query}", public_url.trim_end_matches('/'));
    let expected = twilio_signature(token, &url, &fields);
    if given.is_empty() || !bool::from(given.ct_eq(expected.as_bytes())) {
        tracing::warn!("inbound text with a missing or wrong signature refused");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "the request is not signed by the SMS gateway",
        ));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example request of Twilio's "Security" page (token `12345`); the expected value
    /// was computed independently with Python's `hmac` and `base64`.
    #[test]
    fn the_signature_matches_twilios_published_example() {
        let token = SecretString::from("12345".to_owned());
        let fields: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
        assert_eq!(
            twilio_signature(
                &token,
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &fields
            ),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }
}
