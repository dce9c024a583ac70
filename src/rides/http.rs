//! `/v1/rides`, `/v1/me/rides`, `/v1/me/receipts`, `/v1/reservations`, and the scooter's
//! side: `/v1/device/commands` and `/v1/device/lock`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::commands::{self, Ack, Command};
use super::reservations::{self, ReservationRow};
use super::store::{self, RideRow};
use super::{holds, service, views};
use crate::app::AppState;
use crate::auth::Rider;
use crate::error::{ApiJson, ApiPath, ApiQuery, Error, ProblemDocument};
use crate::fleet::Device;
use crate::idempotency::{self, IdempotencyKey};

pub use views::{Paid, Receipt, ReservationView, RideView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(unlock))
        .routes(routes!(end_ride))
        .routes(routes!(get_ride))
        .routes(routes!(my_rides))
        .routes(routes!(receipt))
        .routes(routes!(reserve))
        .routes(routes!(get_reservation, cancel_reservation))
        .routes(routes!(device_commands))
        .routes(routes!(ack_command))
        .routes(routes!(device_lock))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockRequest {
    pub scooter_id: String,
}

/// Unlocks a scooter and starts a ride, billed per started minute when it ends.
#[utoipa::path(
    post, path = "/v1/rides", tag = "rides", security(("bearer" = [])),
    request_body = UnlockRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays return the first answer")),
    responses(
        (status = 201, body = RideView),
        (status = 400, description = "`invalid_request`", body = ProblemDocument),
        (status = 402, description = "`payment_required`", body = ProblemDocument),
        (status = 403, description = "`outside_operating_hours`", body = ProblemDocument),
        (status = 404, description = "`scooter_not_found`", body = ProblemDocument),
        (status = 409, description = "`rider_has_active_ride`, `scooter_unavailable`, `battery_too_low`", body = ProblemDocument),
        (status = 422, description = "`scooter_outside_zone`, `idempotency_key_reused`", body = ProblemDocument),
    )
)]
pub async fn unlock(
    State(state): State<AppState>,
    rider: Rider,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<UnlockRequest>,
) -> Response {
    let fingerprint = idempotency::fingerprint("POST", "/v1/rides", &body);
    idempotency::once(&state, &rider.id, &key, fingerprint, || async {
        let ride = service::unlock(&state, &rider.id, &body.scooter_id).await?;
        Ok((StatusCode::CREATED, ApiJson(RideView::from_row(&ride))))
    })
    .await
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndRequest {}

/// An end request's body: `{}`, or nothing at all.
fn end_request(body: &Bytes) -> Result<EndRequest, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(EndRequest::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| Error::invalid(format!("The JSON body could not be read: {e}")))
}

/// Ends the ride where the scooter is, if parking is allowed there, and charges it.
#[utoipa::path(
    post, path = "/v1/rides/{ride_id}/end", tag = "rides", security(("bearer" = [])),
    request_body = EndRequest,
    params(
        ("ride_id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays return the first answer"),
    ),
    responses(
        (status = 200, body = RideView),
        (status = 404, description = "`not_found`", body = ProblemDocument),
        (status = 409, description = "`ride_not_active`", body = ProblemDocument),
        (status = 422, description = "`parking_not_allowed` (the ride stays active), `idempotency_key_reused`", body = ProblemDocument),
    )
)]
pub async fn end_ride(
    State(state): State<AppState>,
    rider: Rider,
    key: IdempotencyKey,
    ApiPath(ride_id): ApiPath<String>,
    body: Bytes,
) -> Response {
    let body = match end_request(&body) {
        Ok(body) => body,
        Err(err) => return err.into_response(),
    };
    let path = format!("/v1/rides/{ride_id}/end");
    let fingerprint = idempotency::fingerprint("POST", &path, &body);
    idempotency::once(&state, &rider.id, &key, fingerprint, || async {
        let ride = service::end(&state, &rider.id, &ride_id).await?;
        Ok(ApiJson(RideView::from_row(&ride)))
    })
    .await
}

/// One of the rider's rides.
#[utoipa::path(
    get, path = "/v1/rides/{ride_id}", tag = "rides", security(("bearer" = [])),
    params(("ride_id" = String, Path)),
    responses(
        (status = 200, body = RideView),
        (status = 404, description = "`not_found`, also for another rider's ride", body = ProblemDocument),
    )
)]
pub async fn get_ride(
    State(state): State<AppState>,
    rider: Rider,
    ApiPath(ride_id): ApiPath<String>,
) -> Result<ApiJson<RideView>, Error> {
    let ride = service::own_ride(&state, &rider.id, &ride_id).await?;
    let mut view = RideView::from_row(&ride);
    view.events = Some(views::events(
        &store::ride_events(&state.db, &ride.id).await?,
    ));
    Ok(ApiJson(view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RidesQuery {
    /// At most this many rides (default 50, at most 100).
    pub limit: Option<i64>,
    /// Only rides started before this instant (RFC 3339), to page back in time.
    pub before: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RidesPage {
    pub rides: Vec<RideView>,
    /// Pass as `before` to get older rides; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<String>,
}

/// The rider's rides, newest first.
#[utoipa::path(
    get, path = "/v1/me/rides", tag = "rides", security(("bearer" = [])),
    params(RidesQuery),
    responses((status = 200, body = RidesPage), (status = 400, description = "`invalid_request`", body = ProblemDocument))
)]
pub async fn my_rides(
    State(state): State<AppState>,
    rider: Rider,
    ApiQuery(query): ApiQuery<RidesQuery>,
) -> Result<ApiJson<RidesPage>, Error> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(Error::invalid("limit must be between 1 and 100."));
    }
    let before_ms = match &query.before {
        None => i64::MAX,
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|_| {
                Error::invalid("before must be an RFC 3339 time, e.g. 2026-11-23T06:59:59Z.")
            })?
            .timestamp_millis(),
    };
    let rows: Vec<RideRow> = store::rides_of(&state.db, &rider.id, before_ms, limit).await?;
    let next_before = (rows.len() as i64 == limit)
        .then(|| {
            rows.last()
                .map(|r| crate::clock::rfc3339(crate::clock::from_millis(r.started_at_ms)))
        })
        .flatten();
    Ok(ApiJson(RidesPage {
        rides: rows.iter().map(RideView::from_row).collect(),
        next_before,
    }))
}

/// The receipt of an ended ride.
#[utoipa::path(
    get, path = "/v1/me/receipts/{receipt_id}", tag = "rides", security(("bearer" = [])),
    params(("receipt_id" = String, Path)),
    responses((status = 200, body = Receipt), (status = 404, description = "`not_found`", body = ProblemDocument))
)]
pub async fn receipt(
    State(state): State<AppState>,
    rider: Rider,
    ApiPath(receipt_id): ApiPath<String>,
) -> Result<ApiJson<Receipt>, Error> {
    let ride = store::ride_by_receipt(&state.db, &receipt_id)
        .await?
        .filter(|r| r.rider_id == rider.id)
        .ok_or_else(|| Error::not_found("not_found", "We could not find this receipt."))?;
    Receipt::from_row(&ride, &state.tariff.current()).map(ApiJson)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    pub scooter_id: String,
}

/// Holds a scooter free of charge for a while (10 minutes by default); only this rider may
/// unlock it meanwhile.
#[utoipa::path(
    post, path = "/v1/reservations", tag = "rides", security(("bearer" = [])),
    request_body = ReserveRequest,
    responses(
        (status = 201, body = ReservationView),
        (status = 402, description = "`payment_required`", body = ProblemDocument),
        (status = 403, description = "`outside_operating_hours`", body = ProblemDocument),
        (status = 404, description = "`scooter_not_found`", body = ProblemDocument),
        (status = 409, description = "`rider_has_reservation`, `rider_has_active_ride`, `scooter_unavailable`, `battery_too_low`", body = ProblemDocument),
        (status = 422, description = "`scooter_outside_zone`", body = ProblemDocument),
    )
)]
pub async fn reserve(
    State(state): State<AppState>,
    rider: Rider,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<ReserveRequest>,
) -> Response {
    let fingerprint = idempotency::fingerprint("POST", "/v1/reservations", &body);
    idempotency::once(&state, &rider.id, &key, fingerprint, || async {
        let row = holds::reserve(&state, &rider.id, &body.scooter_id).await?;
        Ok((
            StatusCode::CREATED,
            ApiJson(ReservationView::from_row(&row)),
        ))
    })
    .await
}

async fn own_reservation(
    state: &AppState,
    rider_id: &str,
    id: &str,
) -> Result<ReservationRow, Error> {
    match reservations::reservation(&state.db, id).await? {
        Some(r) if r.rider_id == rider_id => Ok(r),
        _ => Err(Error::not_found(
            "not_found",
            "We could not find this reservation.",
        )),
    }
}

/// One of the rider's reservations.
#[utoipa::path(
    get, path = "/v1/reservations/{reservation_id}", tag = "rides", security(("bearer" = [])),
    params(("reservation_id" = String, Path)),
    responses((status = 200, body = ReservationView), (status = 404, description = "`not_found`", body = ProblemDocument))
)]
pub async fn get_reservation(
    State(state): State<AppState>,
    rider: Rider,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<ReservationView>, Error> {
    let row = own_reservation(&state, &rider.id, &id).await?;
    Ok(ApiJson(ReservationView::from_row(&row)))
}

/// Cancels a reservation; the scooter is free again at once.
#[utoipa::path(
    delete, path = "/v1/reservations/{reservation_id}", tag = "rides", security(("bearer" = [])),
    params(("reservation_id" = String, Path)),
    responses(
        (status = 200, body = ReservationView),
        (status = 404, description = "`not_found`", body = ProblemDocument),
        (status = 409, description = "`reservation_not_active`", body = ProblemDocument),
    )
)]
pub async fn cancel_reservation(
    State(state): State<AppState>,
    rider: Rider,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<ReservationView>, Error> {
    let row = holds::cancel_reservation(&state, &rider.id, &id).await?;
    Ok(ApiJson(ReservationView::from_row(&row)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommandList {
    pub commands: Vec<Command>,
}

/// The commands waiting for this scooter, oldest first (for scooters that poll).
#[utoipa::path(
    get, path = "/v1/device/commands", tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = CommandList), (status = 401, description = "`unauthenticated`", body = ProblemDocument))
)]
pub async fn device_commands(
    State(state): State<AppState>,
    device: Device,
) -> Result<ApiJson<CommandList>, Error> {
    Ok(ApiJson(CommandList {
        commands: commands::pending(&state.db, &device.scooter_id).await?,
    }))
}

/// The scooter confirms it carried out a command.
#[utoipa::path(
    post, path = "/v1/device/commands/{command_id}/ack", tag = "devices", security(("bearer" = [])),
    params(("command_id" = String, Path)),
    responses(
        (status = 200, body = Command),
        (status = 404, description = "`not_found`", body = ProblemDocument),
        (status = 409, description = "`command_expired`: too late, stay locked", body = ProblemDocument),
    )
)]
pub async fn ack_command(
    State(state): State<AppState>,
    device: Device,
    ApiPath(command_id): ApiPath<String>,
) -> Result<ApiJson<Command>, Error> {
    let now_ms = state.clock.now().timestamp_millis();
    match commands::ack(&state.db, &device.scooter_id, &command_id, now_ms).await? {
        Ack::Acked(command) => Ok(ApiJson(command)),
        Ack::Expired => Err(Error::conflict(
            "command_expired",
            "This command expired before it was confirmed; its ride was cancelled.",
        )),
        Ack::Unknown => Err(Error::not_found(
            "not_found",
            "No such command for this scooter.",
        )),
    }
}

/// The scooter reports the rider locked it by hand: the ride ends as if the app had ended
/// it, where parking is allowed.
#[utoipa::path(
    post, path = "/v1/device/lock", tag = "devices", security(("bearer" = [])),
    responses(
        (status = 200, body = RideView),
        (status = 409, description = "`ride_not_active`: no ride in progress on this scooter", body = ProblemDocument),
        (status = 422, description = "`parking_not_allowed`: the ride goes on", body = ProblemDocument),
    )
)]
pub async fn device_lock(
    State(state): State<AppState>,
    device: Device,
) -> Result<ApiJson<RideView>, Error> {
    let ride = service::end_by_scooter(&state, &device.scooter_id).await?;
    Ok(ApiJson(RideView::from_row(&ride)))
}
