//! `/healthz`, `/readyz` and `/api/openapi.json`.
//!
//! `/healthz` says whether the process can reach its database (restart me if not); `/readyz`
//! says whether a load balancer should send it requests: the database answers and its schema is
//! at the version this build expects, so an instance still running an older build beside a
//! newer one that migrated the shared database takes itself out of rotation.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

use crate::error::{ApiError, ErrorBody};
use crate::openapi::ApiDoc;
use crate::state::AppState;

/// 200 when the database answers, else 503.
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses((status = 200, description = "The database is reachable"), (status = 503, description = "It is not")))]
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.service.stores().health.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(error) => {
            tracing::error!(error = %error, "health check failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unreachable",
                "the database does not answer",
            )
            .into_response()
        }
    }
}

/// 200 when the database answers and its schema is the version this build expects, else 503.
#[utoipa::path(get, path = "/readyz", tag = "meta",
    responses(
        (status = 200, description = "Ready for requests: the database answers and its schema is at the version this build expects"),
        (status = 503, description = "`database_unreachable`, or `schema_mismatch` (the database was not migrated by this build, e.g. a newer one migrated it)", body = ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.service.stores().health.schema_version().await {
        Ok(version) if version.is_current() => (StatusCode::OK, "ready\n").into_response(),
        Ok(version) => {
            tracing::warn!(
                applied = ?version.applied,
                expected = version.expected,
                "not ready: the database schema is not the version this build expects"
            );
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "schema_mismatch",
                "the database schema is not the version this server expects",
            )
            .into_response()
        }
        Err(error) => {
            tracing::error!(error = %error, "readiness check failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unreachable",
                "the database does not answer",
            )
            .into_response()
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3 document")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
