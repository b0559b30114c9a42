//! The JSON body extractor of the API: axum's own, with every rejection turned into the
//! contract's error body (415 without `application/json`, 413 past the size limit, 400 for
//! malformed JSON, 422 for well-formed JSON of the wrong shape). A body is always a JSON object:
//! serde would otherwise fill a struct from an array by position, past `deny_unknown_fields`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
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
        match axum::Json::<ObjectOnly<T>>::from_request(request, state).await {
            Ok(axum::Json(ObjectOnly(value))) => Ok(JsonBody(value)),
            Err(rejection) => Err(reject(rejection)),
        }
    }
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
