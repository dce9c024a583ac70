//! `GET /v1/ops/scooters/{scooter_id}`: what the console's click panel shows — the scooter,
//! its current ride (never the rider's identity) and its unfinished swap task.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::Operator;
use crate::billing::pricing::billed_minutes;
use crate::clock::{from_millis, rfc3339};
use crate::dispatch::http::TaskView;
use crate::error::{ApiJson, ApiPath, Error, ProblemDocument};
use crate::fleet::ops::FleetScooter;
use crate::{dispatch, rides};

/// A ride in progress, as an operator sees it: no rider identity.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CurrentRide {
    pub ride_id: String,
    pub started_at: String,
    /// Minutes started so far: what the ride would be billed if it ended now.
    pub minutes_so_far: i64,
    /// The price quoted at unlock, which the ride is billed at.
    #[schema(example = "0.28")]
    pub price_per_minute: String,
    pub currency: String,
}

/// One scooter with what it is doing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScooterDetail {
    #[serde(flatten)]
    pub scooter: FleetScooter,
    /// The ride in progress on it, if any.
    pub current_ride: Option<CurrentRide>,
    /// Its open, assigned or accepted battery-swap task, if any.
    pub open_task: Option<TaskView>,
}

/// One scooter, its ride in progress and its unfinished swap task.
#[utoipa::path(
    get, path = "/v1/ops/scooters/{scooter_id}", tag = "operators", security(("bearer" = [])),
    params(("scooter_id" = String, Path, description = "Fleet code")),
    responses(
        (status = 200, body = ScooterDetail),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
        (status = 404, description = "`scooter_not_found`", body = ProblemDocument),
    )
)]
pub async fn scooter(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(scooter_id): ApiPath<String>,
) -> Result<ApiJson<ScooterDetail>, Error> {
    let Some(scooter) = state.fleet.get(&scooter_id) else {
        return Err(Error::not_found(
            "scooter_not_found",
            "There is no scooter with this fleet code.",
        ));
    };
    let now_ms = state.clock.now().timestamp_millis();
    let ride = rides::store::active_ride_on_scooter(&state.db, &scooter_id).await?;
    let task = dispatch::store::unfinished_for_scooter(&state.db, &scooter_id).await?;
    Ok(ApiJson(ScooterDetail {
        scooter: FleetScooter::from(&scooter),
        current_ride: ride.map(|ride| CurrentRide {
            minutes_so_far: billed_minutes(((now_ms - ride.started_at_ms).max(0) + 999) / 1000),
            started_at: rfc3339(from_millis(ride.started_at_ms)),
            ride_id: ride.id,
            price_per_minute: ride.price_per_minute,
            currency: ride.currency,
        }),
        open_task: task.map(TaskView::from),
    }))
}
