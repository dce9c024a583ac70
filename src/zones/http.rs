//! `/v1/ops/zones`, `/v1/ops/hours` for operators, `/v1/zones` and `/v1/hours` for apps.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::set::is_valid_position;
use super::{parse_zones, store, OperatingHours, ParkingRefusal, ZoneSet};
use crate::app::AppState;
use crate::auth::Operator;
use crate::clock::{from_millis, rfc3339};
use crate::error::{ApiJson, ApiPath, ApiQuery, Error, ProblemDocument};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_zones, get_zones))
        .routes(routes!(zone_versions))
        .routes(routes!(zone_version))
        .routes(routes!(public_zones))
        .routes(routes!(zones_at))
        .routes(routes!(put_hours, get_hours))
        .routes(routes!(public_hours))
}

/// A zone set version, as listed and as answered to an upload.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZoneSetVersionView {
    pub version: i64,
    pub created_at: String,
    /// The operator who uploaded it; absent for the built-in defaults.
    pub created_by: Option<String>,
    pub feature_count: i64,
    /// Whether this version is in force.
    pub current: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZoneSetVersions {
    /// Newest first.
    pub versions: Vec<ZoneSetVersionView>,
}

/// The set in force as a GeoJSON FeatureCollection, with its `version` and `created_at`
/// added as foreign members.
fn feature_collection(set: &ZoneSet) -> Value {
    let mut collection = set.feature_collection().clone();
    if let Some(object) = collection.as_object_mut() {
        object.insert("version".into(), set.version().into());
        object.insert("created_at".into(), rfc3339(set.created_at()).into());
    }
    collection
}

/// Replaces the zones with a new version: service areas, no-parking and slow zones.
///
/// Every feature is a Polygon or MultiPolygon (holes allowed) whose `properties.kind` is
/// `service_area`, `no_parking` or `slow` (with `max_speed_kmh`); GeoJSON's own extra
/// members are allowed. The previous versions are kept.
#[utoipa::path(
    put, path = "/v1/ops/zones", tag = "zones", security(("bearer" = [])),
    request_body(content = Value, description = "A GeoJSON FeatureCollection"),
    responses(
        (status = 200, body = ZoneSetVersionView),
        (status = 400, description = "`invalid_request`: not JSON", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
        (status = 422, description = "`invalid_geojson`, with the feature and the reason in `detail`", body = ProblemDocument),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn put_zones(
    State(state): State<AppState>,
    operator: Operator,
    ApiJson(collection): ApiJson<Value>,
) -> Result<ApiJson<ZoneSetVersionView>, Error> {
    let zones = parse_zones(&collection).map_err(|invalid| {
        Error::unprocessable(
            "invalid_geojson",
            format!("The zones were not changed: {invalid}"),
        )
    })?;
    let now = state.clock.now();
    let text = serde_json::to_string(&collection).map_err(anyhow::Error::from)?;
    let feature_count = zones.len();
    let version =
        store::insert_zone_set(&state.db, &text, feature_count, Some(&operator.id), now).await?;
    state.zones.replace(ZoneSet::new(
        version,
        now,
        Some(operator.id.clone()),
        collection,
        zones,
    ));
    tracing::info!(version, feature_count, "new zone set in force");
    Ok(ApiJson(ZoneSetVersionView {
        version,
        created_at: rfc3339(now),
        created_by: Some(operator.id),
        feature_count: i64::try_from(feature_count).unwrap_or(i64::MAX),
        current: state.zones.current().version() == version,
    }))
}

/// The zones in force, as a GeoJSON FeatureCollection with its `version`.
#[utoipa::path(
    get, path = "/v1/ops/zones", tag = "zones", security(("bearer" = [])),
    responses(
        (status = 200, body = Value, description = "A GeoJSON FeatureCollection with `version` and `created_at`"),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
    )
)]
pub async fn get_zones(State(state): State<AppState>, _operator: Operator) -> ApiJson<Value> {
    ApiJson(feature_collection(&state.zones.current()))
}

/// Every version of the zones ever in force, newest first.
#[utoipa::path(
    get, path = "/v1/ops/zones/versions", tag = "zones", security(("bearer" = [])),
    responses(
        (status = 200, body = ZoneSetVersions),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
    )
)]
pub async fn zone_versions(
    State(state): State<AppState>,
    _operator: Operator,
) -> Result<ApiJson<ZoneSetVersions>, Error> {
    let current = state.zones.current().version();
    let versions = store::zone_set_versions(&state.db)
        .await?
        .into_iter()
        .map(|stored| ZoneSetVersionView {
            version: stored.version,
            created_at: rfc3339(from_millis(stored.created_at_ms)),
            created_by: stored.created_by,
            feature_count: stored.feature_count,
            current: stored.version == current,
        })
        .collect();
    Ok(ApiJson(ZoneSetVersions { versions }))
}

/// One version of the zones, current or past, as a GeoJSON FeatureCollection with its
/// `version`: to review a change, or to bring an older map back by uploading it again.
#[utoipa::path(
    get, path = "/v1/ops/zones/versions/{version}", tag = "zones", security(("bearer" = [])),
    params(("version" = i64, Path, description = "A version from `/v1/ops/zones/versions`")),
    responses(
        (status = 200, body = Value, description = "A GeoJSON FeatureCollection with `version` and `created_at`"),
        (status = 400, description = "`invalid_request`: not a version number", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
        (status = 404, description = "`not_found`", body = ProblemDocument),
    )
)]
pub async fn zone_version(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(version): ApiPath<i64>,
) -> Result<ApiJson<Value>, Error> {
    let Some(stored) = store::zone_set_version(&state.db, version).await? else {
        return Err(Error::not_found(
            "not_found",
            format!("There is no zone set version {version}."),
        ));
    };
    let mut collection: Value = serde_json::from_str(&stored.geojson)
        .map_err(|err| anyhow::anyhow!("zone set version {version} is not JSON: {err}"))?;
    if let Some(object) = collection.as_object_mut() {
        object.insert("version".into(), stored.version.into());
        object.insert(
            "created_at".into(),
            rfc3339(from_millis(stored.created_at_ms)).into(),
        );
    }
    Ok(ApiJson(collection))
}

/// Where riding is offered, where parking is forbidden and where scooters slow down: the
/// zones in force as a GeoJSON FeatureCollection, for the apps' maps. Public.
#[utoipa::path(
    get, path = "/v1/zones", tag = "zones",
    responses((status = 200, body = Value, description = "A GeoJSON FeatureCollection with `version` and `created_at`"))
)]
pub async fn public_zones(State(state): State<AppState>) -> ApiJson<Value> {
    ApiJson(feature_collection(&state.zones.current()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PositionQuery {
    /// WGS84 latitude.
    pub lat: f64,
    /// WGS84 longitude.
    pub lon: f64,
}

/// What the zones in force say about one position.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZonesAtPosition {
    pub lat: f64,
    pub lon: f64,
    /// Inside a service area (its border included, its holes excluded).
    pub in_service_area: bool,
    /// Whether a ride may end here, with the GPS tolerance at the service-area border.
    pub parking_allowed: bool,
    /// The no-parking zone here, by name, if any.
    pub no_parking_zone: Option<String>,
    /// The lowest speed limit of the slow zones here, if any.
    pub speed_limit_kmh: Option<f64>,
    /// The zone set version these answers come from.
    pub version: i64,
}

/// What the zones say about a position: riding, parking, speed. Public, for the apps'
/// "can I park here?".
#[utoipa::path(
    get, path = "/v1/zones/at", tag = "zones",
    params(PositionQuery),
    responses(
        (status = 200, body = ZonesAtPosition),
        (status = 400, description = "`invalid_request`: missing or out-of-range coordinates", body = ProblemDocument),
    )
)]
pub async fn zones_at(
    State(state): State<AppState>,
    ApiQuery(PositionQuery { lat, lon }): ApiQuery<PositionQuery>,
) -> Result<ApiJson<ZonesAtPosition>, Error> {
    if !is_valid_position(lat, lon) {
        return Err(Error::invalid(
            "lat must be within -90..90 and lon within -180..180.",
        ));
    }
    let set = state.zones.current();
    let verdict = set.parking_verdict(lat, lon, state.zones.parking_border_tolerance_m());
    Ok(ApiJson(ZonesAtPosition {
        lat,
        lon,
        in_service_area: set.in_service_area(lat, lon),
        parking_allowed: verdict.is_ok(),
        no_parking_zone: match verdict {
            Err(ParkingRefusal::NoParkingZone { name }) => name,
            _ => None,
        },
        speed_limit_kmh: set.speed_limit_kmh(lat, lon),
        version: set.version(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoursRequest {
    /// An IANA time zone, e.g. `Europe/Paris`.
    pub timezone: String,
    /// `HH:MM`, local time.
    pub open: String,
    /// `HH:MM`, local time; before `open` crosses midnight; `24:00` is the end of the day.
    pub close: String,
}

/// The operating hours and what they mean now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HoursView {
    pub timezone: String,
    pub open: String,
    pub close: String,
    /// The same hours in OpenStreetMap `opening_hours` syntax (`Mo-Su 07:00-23:00`).
    pub opening_hours: String,
    /// Whether rides may start now.
    pub open_now: bool,
    /// When the service next opens or closes; absent when it is open all day.
    pub next_change_at: Option<String>,
}

fn hours_view(hours: &OperatingHours, now: chrono::DateTime<chrono::Utc>) -> HoursView {
    HoursView {
        timezone: hours.timezone.name().to_owned(),
        open: hours.open.to_string(),
        close: hours.close.to_string(),
        opening_hours: hours.opening_hours_osm(),
        open_now: hours.is_open(now),
        next_change_at: hours.next_change(now).map(rfc3339),
    }
}

/// Sets the daily window, in an IANA time zone, during which rides may start.
///
/// Open means local time in `[open, close)`; `close` before `open` crosses midnight;
/// `00:00`–`24:00` is all day. Rides running at closing time go on.
#[utoipa::path(
    put, path = "/v1/ops/hours", tag = "zones", security(("bearer" = [])),
    request_body = HoursRequest,
    responses(
        (status = 200, body = HoursView),
        (status = 400, description = "`invalid_request`", body = ProblemDocument),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
        (status = 422, description = "`invalid_hours`: unknown time zone, bad time, or `open` equal to `close`", body = ProblemDocument),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn put_hours(
    State(state): State<AppState>,
    operator: Operator,
    ApiJson(body): ApiJson<HoursRequest>,
) -> Result<ApiJson<HoursView>, Error> {
    let hours =
        OperatingHours::parse(&body.timezone, &body.open, &body.close).map_err(|invalid| {
            Error::unprocessable(
                "invalid_hours",
                format!("The hours were not changed: {invalid}"),
            )
        })?;
    let now = state.clock.now();
    let version = store::insert_hours(&state.db, &hours, &operator.id, now).await?;
    state.hours.replace(version, hours.clone());
    tracing::info!(hours = %hours.opening_hours_osm(), timezone = hours.timezone.name(), "new operating hours");
    Ok(ApiJson(hours_view(&hours, now)))
}

/// The operating hours in force.
#[utoipa::path(
    get, path = "/v1/ops/hours", tag = "zones", security(("bearer" = [])),
    responses(
        (status = 200, body = HoursView),
        (status = 401, description = "`unauthenticated`", body = ProblemDocument),
        (status = 403, description = "`forbidden`", body = ProblemDocument),
    )
)]
pub async fn get_hours(State(state): State<AppState>, _operator: Operator) -> ApiJson<HoursView> {
    ApiJson(hours_view(&state.hours.current(), state.clock.now()))
}

/// The operating hours, for the apps: whether rides may start now and when that changes.
/// Public.
#[utoipa::path(
    get, path = "/v1/hours", tag = "zones",
    responses((status = 200, body = HoursView))
)]
pub async fn public_hours(State(state): State<AppState>) -> ApiJson<HoursView> {
    ApiJson(hours_view(&state.hours.current(), state.clock.now()))
}
