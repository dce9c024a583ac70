//! `/healthz`, `/metrics`, `/openapi.json`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Extension;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::{AppState, OpenApiJson};
use crate::error::{ApiJson, Error, ProblemDocument};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
        .routes(routes!(super::kpis::kpis))
        .routes(routes!(super::scooter::scooter))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub database: &'static str,
}

/// 200 when the database answers, 503 when it does not.
#[utoipa::path(get, path = "/healthz", tag = "operability", responses(
    (status = 200, body = Health),
    (status = 503, description = "`database_unavailable`", body = ProblemDocument),
))]
pub async fn healthz(State(state): State<AppState>) -> Result<ApiJson<Health>, Error> {
    match state.db.ping().await {
        Ok(()) => Ok(ApiJson(Health {
            status: "ok",
            database: "ok",
        })),
        Err(err) => {
            tracing::warn!(error = %err, "health check: database does not answer");
            Err(Error::problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "The database does not answer.",
            ))
        }
    }
}

/// Prometheus text exposition of the process's metrics, with its resident memory as it is
/// at the scrape (`scootfleet_resident_bytes`).
#[utoipa::path(get, path = "/metrics", tag = "operability", responses(
    (status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4"),
))]
pub async fn metrics() -> impl IntoResponse {
    let handle = crate::telemetry::prometheus();
    if let Some(bytes) = crate::heap::resident_bytes() {
        metrics::gauge!("scootfleet_resident_bytes").set(bytes as f64);
    }
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
}

/// This document: every endpoint of the service.
#[utoipa::path(get, path = "/openapi.json", tag = "operability", responses(
    (status = 200, description = "OpenAPI 3.1 document", content_type = "application/json"),
))]
pub async fn openapi(Extension(OpenApiJson(doc)): Extension<OpenApiJson>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.as_str().to_owned(),
    )
}
