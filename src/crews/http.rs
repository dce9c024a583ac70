//! `/v1/crew/location`, `/v1/crew/status` and the operators' `/v1/ops/crews/{crew_id}/van`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{self, Change};
use super::{position_problem, CrewState, MAX_BATTERIES_ABOARD};
use crate::app::AppState;
use crate::auth::{CrewMember, Operator};
use crate::error::{ApiJson, ApiPath, Error, ProblemDocument};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(report_location))
        .routes(routes!(set_status))
        .routes(routes!(set_van))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationRequest {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// Whether the crew takes new tasks. Going unavailable hands back the tasks it has not
    /// accepted yet; accepted ones stay with it.
    pub available: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VanRequest {
    /// Charged batteries in the van, 0 to 1000.
    pub batteries_aboard: i64,
}

/// A crew as operators see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CrewView {
    pub crew_id: String,
    pub available: bool,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub batteries_aboard: i64,
    /// Tasks assigned to or accepted by the crew, each promised one of its batteries.
    pub tasks_held: i64,
}

impl From<CrewState> for CrewView {
    fn from(crew: CrewState) -> Self {
        CrewView {
            crew_id: crew.crew_id,
            available: crew.available,
            lat: crew.position.map(|p| p.0),
            lon: crew.position.map(|p| p.1),
            batteries_aboard: crew.batteries_aboard,
            tasks_held: crew.tasks_held,
        }
    }
}

/// Reports the crew's position; an available crew then receives the most urgent open tasks
/// near it.
#[utoipa::path(
    post, path = "/v1/crew/location", tag = "crews", security(("bearer" = [])),
    request_body = LocationRequest,
    responses(
        (status = 204, description = "Position recorded"),
        (status = 400, description = "`invalid_request`", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn report_location(
    State(state): State<AppState>,
    crew: CrewMember,
    ApiJson(body): ApiJson<LocationRequest>,
) -> Result<StatusCode, Error> {
    if let Some(problem) = position_problem(body.lat, body.lon) {
        return Err(Error::invalid(problem));
    }
    let change = Change::Position {
        lat: body.lat,
        lon: body.lon,
    };
    apply(&state, &crew.id, change).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Says whether the crew takes tasks.
#[utoipa::path(
    put, path = "/v1/crew/status", tag = "crews", security(("bearer" = [])),
    request_body = StatusRequest,
    responses(
        (status = 204, description = "Availability recorded"),
        (status = 400, description = "`invalid_request`", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn set_status(
    State(state): State<AppState>,
    crew: CrewMember,
    ApiJson(body): ApiJson<StatusRequest>,
) -> Result<StatusCode, Error> {
    apply(&state, &crew.id, Change::Available(body.available)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets how many charged batteries a crew's van carries (after a stop at the depot).
#[utoipa::path(
    put, path = "/v1/ops/crews/{crew_id}/van", tag = "crews", security(("bearer" = [])),
    params(("crew_id" = String, Path, description = "The crew account's id")),
    request_body = VanRequest,
    responses(
        (status = 200, body = CrewView),
        (status = 400, description = "`invalid_request`", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
        (status = 404, description = "`crew_not_found`", body = ProblemDocument),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn set_van(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(crew_id): ApiPath<String>,
    ApiJson(body): ApiJson<VanRequest>,
) -> Result<ApiJson<CrewView>, Error> {
    if !(0..=MAX_BATTERIES_ABOARD).contains(&body.batteries_aboard) {
        return Err(Error::invalid(format!(
            "batteries_aboard must be between 0 and {MAX_BATTERIES_ABOARD}."
        )));
    }
    if !store::is_crew_account(&state.db, &crew_id).await? {
        return Err(crew_not_found());
    }
    let crew = apply(&state, &crew_id, Change::Batteries(body.batteries_aboard)).await?;
    Ok(ApiJson(crew.into()))
}

pub fn crew_not_found() -> Error {
    Error::not_found("crew_not_found", "There is no crew with this id.")
}

/// Records a change, updates the index and lets the dispatcher react to it.
async fn apply(state: &AppState, crew_id: &str, change: Change) -> Result<CrewState, Error> {
    let default_batteries = state.config.dispatch.default_batteries;
    let crew = store::apply(
        &state.db,
        crew_id,
        change,
        default_batteries,
        state.clock.now(),
    )
    .await?;
    state.crews.write().upsert(crew.clone());
    crate::dispatch::crew_changed(state, &crew).await?;
    // The dispatcher may have given it tasks meanwhile.
    Ok(store::get(&state.db, crew_id).await?.unwrap_or(crew))
}
