//! Text messages through an HTTP gateway (reqwest with rustls; no native TLS).
//!
//! `TWOFOLD_SMS_URL` takes two forms:
//! - `https://…` or `http://…` — a generic JSON webhook: `POST <url>` with
//!   `Content-Type: application/json` and the body `{"to": "+441212345678", "body": "…"}`, and
//!   `Authorization: Bearer <TWOFOLD_SMS_TOKEN>` when that is set;
//! - `twilio://ACCOUNT_SID:AUTH_TOKEN@FROM_NUMBER` — Twilio's Messages API: `POST
//!   https://api.twilio.com/2010-04-01/Accounts/<ACCOUNT_SID>/Messages.json` with HTTP Basic
//!   authentication (`ACCOUNT_SID:AUTH_TOKEN`) and the form fields `To`, `From` and `Body`.
//!
//! A 2xx answer means sent; 429, 5xx and network errors are retried; any other answer is a
//! permanent failure. Errors name the status (and Twilio's error code), never the response
//! body, which may repeat the message.

use std::time::Duration;

use async_trait::async_trait;
use percent_encoding::percent_decode_str;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use time::OffsetDateTime;
use twofold_core::delivery::SmsMessage;
use url::Url;
use uuid::Uuid;

use super::transport::{SmsTransport, TransportError};

pub const TWILIO_API_BASE: &str = "https://api.twilio.com";

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an error answer read to find Twilio's error code.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// A parsed `TWOFOLD_SMS_URL`.
#[derive(Clone)]
pub enum SmsGatewaySettings {
    Webhook {
        url: Url,
        token: Option<SecretString>,
    },
    Twilio {
        account_sid: String,
        auth_token: SecretString,
        from: String,
        api_base: Url,
    },
}

impl std::fmt::Debug for SmsGatewaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A `TWOFOLD_SMS_URL` (or its companions) that cannot be used; never repeats a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct SmsUrlError(String);

fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|byte| byte.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

impl SmsGatewaySettings {
    /// Parses the gateway URL, with the bearer token of the webhook form and the Twilio API
    /// base (for tests; default [`TWILIO_API_BASE`]).
    pub fn parse(
        text: &str,
        token: Option<&str>,
        twilio_api_base: Option<&str>,
    ) -> Result<SmsGatewaySettings, SmsUrlError> {
        let error = |message: &str| SmsUrlError(message.to_owned());
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("twilio://") {
            if token.is_some() {
                return Err(error(
                    "TWOFOLD_SMS_TOKEN is for the JSON webhook; a twilio:// URL carries its own auth token",
                ));
            }
            return Self::parse_twilio(rest, twilio_api_base);
        }
        if twilio_api_base.is_some() {
            return Err(error(
                "TWOFOLD_SMS_TWILIO_API_BASE applies only to a twilio:// TWOFOLD_SMS_URL",
            ));
        }
        let url = Url::parse(text)
            .map_err(|parse| SmsUrlError(format!("TWOFOLD_SMS_URL is not a URL ({parse})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(error(
                "TWOFOLD_SMS_URL must be an https:// (or http://) webhook URL, or twilio://ACCOUNT_SID:AUTH_TOKEN@FROM_NUMBER",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(error(
                "TWOFOLD_SMS_URL must not carry credentials; put the webhook's bearer token in TWOFOLD_SMS_TOKEN",
            ));
        }
        let token = match token.map(str::trim) {
            Some("") => return Err(error("TWOFOLD_SMS_TOKEN is empty")),
            Some(token) if token.chars().any(|c| c.is_control() || c == ' ') => {
                return Err(error(
                    "TWOFOLD_SMS_TOKEN must not contain spaces or control characters",
                ));
            }
            Some(token) => Some(SecretString::from(token.to_owned())),
            None => None,
        };
        Ok(SmsGatewaySettings::Webhook { url, token })
    }

    fn parse_twilio(rest: &str, api_base: Option<&str>) -> Result<SmsGatewaySettings, SmsUrlError> {
        let error = |message: &str| SmsUrlError(message.to_owned());
        let form = "TWOFOLD_SMS_URL must be twilio://ACCOUNT_SID:AUTH_TOKEN@FROM_NUMBER";
        let (credentials, from) = rest.rsplit_once('@').ok_or_else(|| error(form))?;
        let (account_sid, auth_token) = credentials.split_once(':').ok_or_else(|| error(form))?;
        let decode = |part: &str| {
            percent_decode_str(part)
                .decode_utf8()
                .map(|decoded| decoded.into_owned())
                .map_err(|_| error(form))
        };
        let account_sid = decode(account_sid)?;
        if account_sid.is_empty() || !account_sid.bytes().all(|byte| byte.is_ascii_alphanumeric()) {
            return Err(error(
                "the Twilio account SID in TWOFOLD_SMS_URL must be letters and digits (AC…)",
            ));
        }
        let auth_token = decode(auth_token)?;
        if auth_token.is_empty() {
            return Err(error("the Twilio auth token in TWOFOLD_SMS_URL is empty"));
        }
        let from = decode(from.trim_end_matches('/'))?;
        if !is_e164(&from) {
            return Err(error(
                "the sender in TWOFOLD_SMS_URL must be a phone number in E.164 form (+14155550100; write + as %2B if need be)",
            ));
        }
        let api_base = Url::parse(api_base.unwrap_or(TWILIO_API_BASE)).map_err(|parse| {
            SmsUrlError(format!(
                "TWOFOLD_SMS_TWILIO_API_BASE is not a URL ({parse})"
            ))
        })?;
        if !matches!(api_base.scheme(), "http" | "https") || api_base.host_str().is_none() {
            return Err(error(
                "TWOFOLD_SMS_TWILIO_API_BASE must be an http:// or https:// URL",
            ));
        }
        Ok(SmsGatewaySettings::Twilio {
            account_sid,
            auth_token: SecretString::from(auth_token),
            from,
            api_base,
        })
    }

    /// The gateway for logs and messages: its kind and host, never a secret (a webhook's path
    /// and query may hold one, so they are left out).
    pub fn describe(&self) -> String {
        match self {
            SmsGatewaySettings::Webhook { url, token } => format!(
                "JSON webhook at {}://{}{}",
                url.scheme(),
                url.host_str().unwrap_or(""),
                if token.is_some() {
                    " (bearer token)"
                } else {
                    ""
                }
            ),
            SmsGatewaySettings::Twilio {
                account_sid,
                from,
                api_base,
                ..
            } => format!(
                "Twilio account {account_sid} from {from} via {}",
                api_base.host_str().unwrap_or("")
            ),
        }
    }
}

#[derive(Serialize)]
struct WebhookBody<'a> {
    to: &'a str,
    body: &'a str,
}

#[derive(Serialize)]
struct TwilioForm<'a> {
    #[serde(rename = "To")]
    to: &'a str,
    #[serde(rename = "From")]
    from: &'a str,
    #[serde(rename = "Body")]
    body: &'a str,
}

/// Posts text messages to the configured gateway.
pub struct SmsGateway {
    settings: SmsGatewaySettings,
    client: reqwest::Client,
}

impl std::fmt::Debug for SmsGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsGateway")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl SmsGateway {
    pub fn new(settings: SmsGatewaySettings) -> anyhow::Result<SmsGateway> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirected POST would turn into a GET, or carry the credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("twofold/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| anyhow::anyhow!("building the SMS gateway's HTTP client: {error}"))?;
        Ok(SmsGateway { settings, client })
    }

    fn request(&self, message: &SmsMessage) -> Result<reqwest::RequestBuilder, TransportError> {
        match &self.settings {
            SmsGatewaySettings::Webhook { url, token } => {
                let request = self.client.post(url.clone()).json(&WebhookBody {
                    to: &message.to,
                    body: &message.body,
                });
                Ok(match token {
                    Some(token) => request.bearer_auth(token.expose_secret()),
                    None => request,
                })
            }
            SmsGatewaySettings::Twilio {
                account_sid,
                auth_token,
                from,
                api_base,
            } => {
                let mut url = api_base.clone();
                url.path_segments_mut()
                    .map_err(|()| {
                        TransportError::Permanent(anyhow::anyhow!(
                            "the Twilio API base cannot take a path"
                        ))
                    })?
                    .pop_if_empty()
                    .extend(["2010-04-01", "Accounts", account_sid, "Messages.json"]);
                Ok(self
                    .client
                    .post(url)
                    .basic_auth(account_sid, Some(auth_token.expose_secret()))
                    .form(&TwilioForm {
                        to: &message.to,
                        from,
                        body: &message.body,
                    }))
            }
        }
    }

    /// Why the gateway refused, from its status and, for Twilio, its numeric error code.
    async fn refusal(&self, response: reqwest::Response) -> String {
        let status = response.status();
        let mut text = format!("the SMS gateway answered {status}");
        if matches!(self.settings, SmsGatewaySettings::Twilio { .. })
            && let Some(code) = twilio_error_code(response).await
        {
            text.push_str(&format!(" (Twilio error {code})"));
        }
        text
    }
}

/// Twilio's error answers are JSON with a numeric `code`; only that number is kept.
async fn twilio_error_code(response: reqwest::Response) -> Option<u64> {
    if response
        .content_length()
        .is_some_and(|length| length > ERROR_BODY_LIMIT as u64)
    {
        return None;
    }
    let bytes = response.bytes().await.ok()?;
    if bytes.len() > ERROR_BODY_LIMIT {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("code")?.as_u64()
}

#[async_trait]
impl SmsTransport for SmsGateway {
    async fn send_sms(
        &self,
        _delivery_id: Uuid,
        message: &SmsMessage,
        _created_at: OffsetDateTime,
    ) -> Result<(), TransportError> {
        let response = self.request(message)?.send().await.map_err(|error| {
            // The URL may carry a secret in its query; the error keeps only its cause.
            TransportError::Retry(
                anyhow::Error::new(error.without_url()).context("the SMS gateway is unreachable"),
            )
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let refusal = anyhow::anyhow!(self.refusal(response).await);
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Err(TransportError::Retry(refusal))
        } else {
            Err(TransportError::Permanent(refusal))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_form_takes_an_optional_bearer_token() {
        let settings =
            SmsGatewaySettings::parse("https://sms.example.com/hook?x=1", Some("tok"), None)
                .unwrap();
        let SmsGatewaySettings::Webhook { url, token } = &settings else {
            panic!("not a webhook")
        };
        assert_eq!(url.as_str(), "https://sms.example.com/hook?x=1");
        assert_eq!(token.as_ref().unwrap().expose_secret(), "tok");
        assert_eq!(
            settings.describe(),
            "JSON webhook at https://sms.example.com (bearer token)"
        );
        assert!(matches!(
            SmsGatewaySettings::parse("http://127.0.0.1:9000/sms", None, None).unwrap(),
            SmsGatewaySettings::Webhook { token: None, .. }
        ));
    }

    #[test]
    fn the_twilio_form_names_account_token_and_sender() {
        for url in [
            "twilio://AC0123456789abcdef:s3cr%2Ft@+14155550100",
            "twilio://AC0123456789abcdef:s3cr%2Ft@%2B14155550100/",
        ] {
            let settings = SmsGatewaySettings::parse(url, None, None).unwrap();
            let SmsGatewaySettings::Twilio {
                account_sid,
                auth_token,
                from,
                api_base,
            } = &settings
            else {
                panic!("not Twilio")
            };
            assert_eq!(account_sid, "AC0123456789abcdef");
            assert_eq!(auth_token.expose_secret(), "s3cr/t");
            assert_eq!(from, "+14155550100");
            assert_eq!(api_base.as_str(), "https://api.twilio.com/");
            assert!(!settings.describe().contains("s3cr"));
        }
    }

    #[test]
    fn bad_gateway_settings_are_refused_without_echoing_secrets() {
        let cases: [(&str, Option<&str>, Option<&str>); 10] = [
            ("ftp://sms.example.com", None, None),
            ("sms.example.com/hook", None, None),
            ("https://user:hunter2@sms.example.com/hook", None, None),
            ("https://sms.example.com/hook", Some(""), None),
            (
                "https://sms.example.com/hook",
                None,
                Some("http://127.0.0.1:1"),
            ),
            ("twilio://AC123:hunter2@14155550100", None, None),
            ("twilio://AC123:hunter2", None, None),
            ("twilio://AC-123:hunter2@+14155550100", None, None),
            ("twilio://AC123:hunter2@+14155550100", Some("hunter2"), None),
            (
                "twilio://AC123:hunter2@+14155550100",
                None,
                Some("not a url"),
            ),
        ];
        for (url, token, base) in cases {
            let error = SmsGatewaySettings::parse(url, token, base)
                .unwrap_err()
                .to_string();
            assert!(!error.contains("hunter2"), "{url}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn e164_numbers_are_recognised() {
        assert!(is_e164("+441212345678"));
        assert!(!is_e164("441212345678"));
        assert!(!is_e164("+0441212345678"));
        assert!(!is_e164("+44 1212 345678"));
        assert!(!is_e164("+1234567"));
    }
}
