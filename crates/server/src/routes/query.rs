//! Query-string parameters of the API's GET calls. Every parameter arrives as text and is
//! parsed here, so that a bad value is the contract's error body (422 `invalid_query`, naming
//! the parameter) rather than axum's plain-text rejection; an empty value (`?kind=`, as a
//! form sends it) counts as absent.

use std::str::FromStr;

use axum::extract::{FromRequestParts, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;

/// The query string of a request, as `T` (whose fields should be `Option<String>`).
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(QueryParams(value)),
            // The only way fields of text fail: a parameter given twice, or broken escapes.
            Err(_) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "the query string is malformed (is a parameter given twice?)",
            )),
        }
    }
}

/// A bad value of the parameter `name`.
pub fn invalid_parameter(name: &str, expected: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_query",
        format!("the query parameter `{name}` must be {expected}"),
    )
}

/// The value of a parameter, `None` when absent or empty.
pub fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|text| !text.is_empty())
}

/// A whole number within `low..=high`.
pub fn number<N>(name: &str, value: Option<&str>, low: N, high: N) -> Result<Option<N>, ApiError>
where
    N: FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(text) = present(value) else {
        return Ok(None);
    };
    match text.parse::<N>() {
        Ok(number) if number >= low && number <= high => Ok(Some(number)),
        _ => Err(invalid_parameter(
            name,
            &format!("a whole number from {low} to {high}"),
        )),
    }
}

/// An RFC 3339 date and time (`2027-01-15T08:00:00Z`).
pub fn instant(name: &str, value: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    let Some(text) = present(value) else {
        return Ok(None);
    };
    OffsetDateTime::parse(text, &Rfc3339)
        .map(Some)
        .map_err(|_| {
            invalid_parameter(name, "an RFC 3339 date and time, like 2027-01-15T08:00:00Z")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_checked_against_their_range() {
        assert_eq!(number("limit", None, 1u32, 200).unwrap(), None);
        assert_eq!(number("limit", Some(" "), 1u32, 200).unwrap(), None);
        assert_eq!(number("limit", Some("7"), 1u32, 200).unwrap(), Some(7));
        for bad in ["0", "201", "-1", "1e3", "abc", "99999999999999999999"] {
            let error = number("limit", Some(bad), 1u32, 200).unwrap_err();
            assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
            assert_eq!(error.code(), "invalid_query");
        }
    }

    #[test]
    fn instants_are_rfc_3339() {
        assert!(
            instant("since", Some("2027-01-15T08:00:00Z"))
                .unwrap()
                .is_some()
        );
        assert!(
            instant("since", Some("2027-01-15T08:00:00+01:00"))
                .unwrap()
                .is_some()
        );
        assert!(instant("since", Some("")).unwrap().is_none());
        for bad in ["2027-01-15", "yesterday", "2027-13-01T00:00:00Z"] {
            assert_eq!(
                instant("since", Some(bad)).unwrap_err().code(),
                "invalid_query"
            );
        }
    }
}
