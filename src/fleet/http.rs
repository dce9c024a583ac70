//! Fleet endpoints for scooters (telemetry) and riders (nearby search); the operators' ones
//! are in [`super::ops`].

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::accept::Followed;
use super::live::NearbyQuery;
use super::{
    position_problem, reading_problem, Device, Reading, MAX_NEARBY_LIMIT, MAX_NEARBY_RADIUS_M,
    MAX_POINTS_PER_BATCH,
};
use crate::app::{AppState, OnDisk};
use crate::error::{ApiJson, ApiQuery, Error, ProblemDocument};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(telemetry))
        .routes(routes!(nearby))
        .merge(super::ops::router())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryRequest {
    pub points: Vec<TelemetryPoint>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryPoint {
    pub lat: f64,
    pub lon: f64,
    pub range_km: f64,
    pub battery_pct: f64,
    #[serde(default)]
    pub speed_kmh: Option<f64>,
    /// RFC 3339; at most 5 minutes ahead of the server's clock.
    pub recorded_at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TelemetryAccepted {
    /// How many points the batch carried (duplicates of stored points included).
    pub accepted: usize,
}

/// Receives a batch of a scooter's readings; answers once they are durably stored.
#[utoipa::path(
    post, path = "/v1/telemetry", tag = "fleet", security(("device_token" = [])),
    request_body = TelemetryRequest,
    responses(
        (status = 202, body = TelemetryAccepted),
        (status = 400, description = "`invalid_request`: malformed batch; nothing applied", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`: not a device token", body = ProblemDocument),
        (status = 422, description = "`invalid_telemetry`: a point out of range or in the future; nothing applied", body = ProblemDocument),
    )
)]
#[tracing::instrument(skip_all, fields(scooter_id = %device.scooter_id))]
pub async fn telemetry(
    State(state): State<AppState>,
    device: Device,
    ApiJson(body): ApiJson<TelemetryRequest>,
) -> Result<impl IntoResponse, Error> {
    let now = state.clock.now();
    let points = readings(body, now)?;
    let accepted = points.len();
    let followed =
        super::accept::accept_points(&state, device.scooter_id.clone(), points, now).await?;
    // Only the points were written, and they are on disk: no second wait for the log.
    Ok((
        StatusCode::ACCEPTED,
        (followed == Followed::Nothing).then_some(Extension(OnDisk)),
        ApiJson(TelemetryAccepted { accepted }),
    ))
}

/// The batch's readings, or the first problem found: nothing is applied unless all are valid.
pub(super) fn readings(
    body: TelemetryRequest,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Reading>, Error> {
    if body.points.is_empty() {
        return Err(Error::invalid("points must hold at least one point."));
    }
    if body.points.len() > MAX_POINTS_PER_BATCH {
        return Err(Error::invalid(format!(
            "A batch holds at most {MAX_POINTS_PER_BATCH} points."
        )));
    }
    let mut readings = Vec::with_capacity(body.points.len());
    for (i, point) in body.points.into_iter().enumerate() {
        let recorded_at = DateTime::parse_from_rfc3339(&point.recorded_at).map_err(|_| {
            Error::invalid(format!(
                "points[{i}].recorded_at must be an RFC 3339 time such as 2026-11-23T06:59:59Z."
            ))
        })?;
        let reading = Reading {
            lat: point.lat,
            lon: point.lon,
            range_km: point.range_km,
            battery_pct: point.battery_pct,
            speed_kmh: point.speed_kmh,
            recorded_at_ms: recorded_at.timestamp_millis(),
        };
        if let Some(problem) = reading_problem(&reading, now) {
            return Err(Error::unprocessable(
                "invalid_telemetry",
                format!("points[{i}]: {problem}"),
            ));
        }
        readings.push(reading);
    }
    Ok(readings)
}

/// Query of a nearby search. Empty values count as absent.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NearbyParams {
    pub lat: Option<String>,
    pub lon: Option<String>,
    /// Metres, at most 5000 (default 500).
    pub radius_m: Option<String>,
    /// At most 100 (default 20).
    pub limit: Option<String>,
    /// Kilometres of range the rider needs, on top of the rental floor.
    pub min_range_km: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NearbyScooter {
    pub scooter_id: String,
    pub lat: f64,
    pub lon: f64,
    pub range_km: f64,
    pub battery_pct: f64,
    /// Great-circle distance from the searched point, in metres.
    pub distance_m: f64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NearbyResponse {
    pub scooters: Vec<NearbyScooter>,
}

fn number(name: &str, value: &Option<String>) -> Result<Option<f64>, Error> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Some)
            .ok_or_else(|| Error::invalid(format!("{name} must be a number, not `{text}`."))),
    }
}

impl NearbyParams {
    fn query(&self, rental_floor_km: f64) -> Result<NearbyQuery, Error> {
        let (Some(lat), Some(lon)) = (number("lat", &self.lat)?, number("lon", &self.lon)?) else {
            return Err(Error::invalid("lat and lon are required."));
        };
        if let Some(problem) = position_problem(lat, lon) {
            return Err(Error::invalid(problem));
        }
        let radius_m = number("radius_m", &self.radius_m)?.unwrap_or(500.0);
        if !(radius_m > 0.0 && radius_m <= MAX_NEARBY_RADIUS_M) {
            return Err(Error::invalid(format!(
                "radius_m must be more than 0 and at most {MAX_NEARBY_RADIUS_M} metres."
            )));
        }
        let limit = number("limit", &self.limit)?.unwrap_or(20.0);
        if !(limit >= 1.0 && limit <= MAX_NEARBY_LIMIT as f64 && limit.fract() == 0.0) {
            return Err(Error::invalid(format!(
                "limit must be a whole number from 1 to {MAX_NEARBY_LIMIT}."
            )));
        }
        let min_range_km = number("min_range_km", &self.min_range_km)?.unwrap_or(0.0);
        if min_range_km < 0.0 {
            return Err(Error::invalid("min_range_km cannot be negative."));
        }
        Ok(NearbyQuery {
            lat,
            lon,
            radius_m,
            limit: limit as usize,
            min_range_km: min_range_km.max(rental_floor_km),
        })
    }
}

/// Scooters a rider could unlock now, nearest first.
#[utoipa::path(
    get, path = "/v1/scooters/nearby", tag = "fleet",
    params(NearbyParams),
    responses(
        (status = 200, body = NearbyResponse),
        (status = 400, description = "`invalid_request`: bad coordinates, radius or limit", body = ProblemDocument),
    )
)]
pub async fn nearby(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<NearbyParams>,
) -> Result<Response, Error> {
    let query = params.query(state.fleet.rental_floor_km)?;
    let mut body = Vec::with_capacity(16 + 160 * query.limit);
    body.extend_from_slice(b"{\"scooters\":[");
    // Closed means nothing to unlock, even before the sweep marks scooters off-hours.
    if state.hours.is_open(state.clock.now()) {
        let zones = state.zones.current();
        let live = state.fleet.read();
        // Written straight from the index into the body: no copy of the scooters.
        for (i, (s, distance_m)) in live.nearby(&query, &*zones).into_iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            let entry = NearbyEntry {
                scooter_id: &s.scooter_id,
                lat: s.lat,
                lon: s.lon,
                range_km: s.range_km,
                battery_pct: s.battery_pct,
                distance_m: (distance_m * 10.0).round() / 10.0,
            };
            serde_json::to_writer(&mut body, &entry).map_err(|err| Error::Internal(err.into()))?;
        }
    }
    body.extend_from_slice(b"]}");
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// [`NearbyScooter`] borrowed from the live index, to be written as it is.
#[derive(Serialize)]
struct NearbyEntry<'a> {
    scooter_id: &'a str,
    lat: f64,
    lon: f64,
    range_km: f64,
    battery_pct: f64,
    distance_m: f64,
}
