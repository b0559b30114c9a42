//! `/healthz` and `/api/openapi.json`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

use crate::error::ApiError;
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

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3 document")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
