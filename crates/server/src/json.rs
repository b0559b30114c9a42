//! The JSON body extractor of the API: axum's own parsing, with every rejection turned into the
//! contract's error body (415 without `application/json`, 413 past the size limit, 400 for
//! malformed JSON, 422 for well-formed JSON of the wrong shape). A body is always a JSON object:
//! serde would otherwise fill a struct from an array by position, past `deny_unknown_fields`.
//!
//! [`parse`] is the whole decision for a body already read, so the fuzz targets and tests can
//! call it without a request.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(unsupported_media_type());
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    payload_too_large()
                } else {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_body",
                        "the request body could not be read",
                    )
                }
            })?;
        parse(&bytes).map(JsonBody)
    }
}

/// `application/json` (with any parameters) or a `+json` type, as axum's `Json` accepts.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads a body as `T`: 400 `malformed_json` when the bytes are not JSON (not UTF-8, broken
/// syntax, truncated, something after the document), 422 `invalid_body` when they are JSON of
/// another shape: not an object, a missing, unknown or mistyped field, a number out of the
/// field's range, nesting deeper than the parser's limit of 128.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match axum::Json::<ObjectOnly<T>>::from_bytes(bytes) {
        Ok(axum::Json(ObjectOnly(value))) => Ok(value),
        // serde_json reports a few type errors as syntax errors: a number or `null` where an
        // enum's string belongs, a lone surrogate in a string, a number too large for any
        // float, nesting past its limit. The document itself is well formed, so they are
        // shape errors like the others.
        Err(JsonRejection::JsonSyntaxError(error)) if is_well_formed(bytes) => {
            let text = error.body_text();
            let detail = text
                .split_once(": ")
                .map_or(text.as_str(), |(_, rest)| rest);
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("a value has the wrong type: {}", without_values(detail)),
            ))
        }
        Err(rejection) => Err(reject(rejection)),
    }
}

/// One JSON document in UTF-8 and nothing after it, by RFC 8259's grammar, which puts no
/// limit on nesting or on the size of numbers and allows lone surrogates in escapes.
fn is_well_formed(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok()
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

/// `T`, read only from a JSON object.
struct ObjectOnly<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Object<T> {
            type Value = T;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, map: M) -> Result<T, M::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Object(std::marker::PhantomData))
            .map(ObjectOnly)
    }
}

fn reject(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
        JsonRejection::JsonSyntaxError(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the body is not valid JSON",
        ),
        JsonRejection::JsonDataError(error) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            without_values(&error.body_text()),
        ),
        JsonRejection::BytesRejection(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            payload_too_large()
        }
        other => ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", other.body_text()),
    }
}

/// serde's message names the field and the expected type, and quotes the value it got between
/// backticks; the value may be a secret typed into the wrong field, so it is left out.
fn without_values(message: &str) -> String {
    let mut kept = String::with_capacity(message.len());
    for (index, part) in message.split('`').enumerate() {
        kept.push_str(if index % 2 == 0 { part } else { "…" });
    }
    kept
}

pub fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON with Content-Type: application/json",
    )
}

pub fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is too large",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read only through Debug
    struct Sample {
        method: Option<twofold_core::user::Method>,
        #[serde(default)]
        methods: Option<Vec<twofold_core::user::Method>>,
        #[serde(default)]
        count: Option<u32>,
        #[serde(default)]
        text: Option<String>,
    }

    fn status(body: &str) -> (u16, &'static str) {
        match parse::<Sample>(body.as_bytes()) {
            Ok(_) => (200, ""),
            Err(error) => (error.status().as_u16(), error.code()),
        }
    }

    #[test]
    fn well_formed_json_of_the_wrong_shape_is_422() {
        let deep = format!(r#"{{"methods": {}{}}}"#, "[".repeat(200), "]".repeat(200));
        assert_eq!(status(&deep), (422, "invalid_body"));
        for body in [
            r#"{"methods": [null]}"#,
            r#"{"methods": [5]}"#,
            r#"{"method": null, "methods": [true]}"#,
            r#"{"method": 7}"#,
            r#"{"method": [], "count": 1}"#,
            r#"{"method": "totp", "count": -1}"#,
            r#"{"method": "totp", "count": 1.5}"#,
            r#"{"method": "totp", "count": 99999999999999999999999}"#,
            r#"{"method": "totp", "text": "\ud800"}"#,
            r#"{"count": 1e400}"#,
            r#"{"method": "nope"}"#,
            r#"{"method": "totp", "other": 1}"#,
            r#"[]"#,
            r#"null"#,
            r#""text""#,
        ] {
            assert_eq!(status(body), (422, "invalid_body"), "{body}");
        }
    }

    #[test]
    fn malformed_json_is_400() {
        for body in [
            "",
            "{",
            r#"{"method": "totp",}"#,
            r#"{"method": "totp"} {}"#,
        ] {
            assert_eq!(status(body), (400, "malformed_json"), "{body}");
        }
        assert_eq!(
            parse::<Sample>(b"{\"text\": \"\xff\"}")
                .map_err(|e| e.status().as_u16())
                .err(),
            Some(400)
        );
    }

    #[test]
    fn messages_do_not_echo_values() {
        let error = parse::<Sample>(br#"{"method": "hunter2-secret"}"#).err();
        let message = error
            .map(|error| error.message().to_owned())
            .unwrap_or_default();
        assert!(!message.contains("hunter2"), "{message}");
    }
}
