//! Fleet endpoints for operators: registering scooters, listing the fleet, and the state
//! changes that are theirs to make (maintenance, battery, removal).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::live::Scooter;
use super::service::ChangeError;
use super::{
    battery_problem, is_valid_scooter_id, position_problem, Event, Reading, MAX_SCOOTER_ID_LEN,
};
use crate::app::AppState;
use crate::auth::Operator;
use crate::clock::{from_millis, rfc3339};
use crate::error::{ApiJson, ApiPath, ApiQuery, Error, ProblemDocument};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(fleet))
        .routes(routes!(record_event))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewScooterRequest {
    /// The operator's fleet code, e.g. `CS-0042`: 1–64 of `A-Z a-z 0-9 _ -`.
    pub scooter_id: String,
    pub lat: f64,
    pub lon: f64,
    pub range_km: f64,
    pub battery_pct: f64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewScooterResponse {
    pub scooter_id: String,
    /// The scooter's device token: shown this once, stored only as a hash.
    pub device_token: String,
}

/// Registers a scooter where it stands; it is available from now on.
#[utoipa::path(
    post, path = "/v1/ops/scooters", tag = "fleet", security(("bearer" = [])),
    request_body = NewScooterRequest,
    responses(
        (status = 201, body = NewScooterResponse),
        (status = 400, description = "`invalid_request`", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
        (status = 409, description = "`scooter_exists`", body = ProblemDocument),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn register(
    State(state): State<AppState>,
    _operator: Operator,
    ApiJson(body): ApiJson<NewScooterRequest>,
) -> Result<(StatusCode, ApiJson<NewScooterResponse>), Error> {
    if !is_valid_scooter_id(&body.scooter_id) {
        return Err(Error::invalid(format!(
            "scooter_id must be 1 to {MAX_SCOOTER_ID_LEN} letters, digits, `-` or `_`, like CS-0042."
        )));
    }
    if let Some(problem) = position_problem(body.lat, body.lon)
        .or_else(|| battery_problem(body.range_km, body.battery_pct))
    {
        return Err(Error::invalid(problem));
    }
    let reading = Reading {
        lat: body.lat,
        lon: body.lon,
        range_km: body.range_km,
        battery_pct: body.battery_pct,
        speed_kmh: None,
        recorded_at_ms: state.clock.now().timestamp_millis(),
    };
    let registered = state
        .fleet
        .register(&state.db, &body.scooter_id, reading)
        .await?
        .ok_or_else(|| {
            Error::conflict(
                "scooter_exists",
                format!("A scooter {} is already registered.", body.scooter_id),
            )
        })?;
    Ok((
        StatusCode::CREATED,
        ApiJson(NewScooterResponse {
            scooter_id: body.scooter_id,
            device_token: registered.device_token,
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FleetParams {
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// Scooters per page, 1–5000 (default 1000).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FleetScooter {
    pub scooter_id: String,
    /// MDS 2.0 vehicle state.
    pub state: String,
    /// Why it is `non_operational`: `battery_low`, `maintenance` or `off_hours`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub range_km: f64,
    pub battery_pct: f64,
    pub last_seen_at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FleetPage {
    pub scooters: Vec<FleetScooter>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

const DEFAULT_FLEET_PAGE: usize = 1000;
const MAX_FLEET_PAGE: usize = 5000;

impl From<&Scooter> for FleetScooter {
    fn from(s: &Scooter) -> Self {
        FleetScooter {
            scooter_id: s.scooter_id.to_string(),
            state: s.state.as_str().to_owned(),
            state_reason: s.state.reason().map(|r| r.as_str().to_owned()),
            lat: s.lat,
            lon: s.lon,
            range_km: s.range_km,
            battery_pct: s.battery_pct,
            last_seen_at: rfc3339(from_millis(s.last_seen_ms)),
        }
    }
}

/// Every scooter in every state, in fleet-code order, a page at a time.
#[utoipa::path(
    get, path = "/v1/ops/fleet", tag = "fleet", security(("bearer" = [])),
    params(FleetParams),
    responses(
        (status = 200, body = FleetPage),
        (status = 400, description = "`invalid_request`", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
    )
)]
pub async fn fleet(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(params): ApiQuery<FleetParams>,
) -> Result<ApiJson<FleetPage>, Error> {
    let limit = params.limit.unwrap_or(DEFAULT_FLEET_PAGE);
    if !(1..=MAX_FLEET_PAGE).contains(&limit) {
        return Err(Error::invalid(format!(
            "limit must be from 1 to {MAX_FLEET_PAGE}."
        )));
    }
    let live = state.fleet.read();
    let (page, more) = live.page(params.after.as_deref().filter(|a| !a.is_empty()), limit);
    let scooters: Vec<FleetScooter> = page.iter().map(FleetScooter::from).collect();
    drop(live);
    let next = if more {
        scooters.last().map(|s| s.scooter_id.clone())
    } else {
        None
    };
    Ok(ApiJson(FleetPage { scooters, next }))
}

/// The events an operator may record; rides, hours and silence have their own owners.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperatorEvent {
    Maintenance,
    MaintenanceEnd,
    BatteryLow,
    BatteryCharged,
    Decommissioned,
    AgencyDropOff,
}

impl From<OperatorEvent> for Event {
    fn from(event: OperatorEvent) -> Self {
        match event {
            OperatorEvent::Maintenance => Event::Maintenance,
            OperatorEvent::MaintenanceEnd => Event::MaintenanceEnd,
            OperatorEvent::BatteryLow => Event::BatteryLow,
            OperatorEvent::BatteryCharged => Event::BatteryCharged,
            OperatorEvent::Decommissioned => Event::Decommissioned,
            OperatorEvent::AgencyDropOff => Event::AgencyDropOff,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    pub event: OperatorEvent,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StateResponse {
    pub scooter_id: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
}

/// Records an operator's event (MDS 2.0 name) and moves the scooter accordingly.
#[utoipa::path(
    post, path = "/v1/ops/scooters/{scooter_id}/events", tag = "fleet", security(("bearer" = [])),
    params(("scooter_id" = String, Path, description = "Fleet code")),
    request_body = EventRequest,
    responses(
        (status = 200, body = StateResponse),
        (status = 400, description = "`invalid_request`", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
        (status = 404, description = "`scooter_not_found`", body = ProblemDocument),
        (status = 409, description = "`transition_not_allowed`: not possible in the scooter's state", body = ProblemDocument),
    )
)]
#[tracing::instrument(skip_all, fields(%scooter_id))]
pub async fn record_event(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(scooter_id): ApiPath<String>,
    ApiJson(body): ApiJson<EventRequest>,
) -> Result<ApiJson<StateResponse>, Error> {
    let event = Event::from(body.event);
    match state
        .fleet
        .change_state(&state.db, &scooter_id, event, state.clock.now())
        .await
    {
        Ok(to) => Ok(ApiJson(StateResponse {
            scooter_id,
            state: to.as_str().to_owned(),
            state_reason: to.reason().map(|r| r.as_str().to_owned()),
        })),
        Err(ChangeError::UnknownScooter) => Err(Error::not_found(
            "scooter_not_found",
            format!("There is no scooter {scooter_id}."),
        )),
        Err(ChangeError::NotAllowed { from, event }) => Err(Error::conflict(
            "transition_not_allowed",
            format!(
                "{} is not possible while scooter {scooter_id} is {}.",
                event.as_str(),
                from.as_str()
            ),
        )),
        Err(ChangeError::Internal(err)) => Err(err),
    }
}
