//! `/gbfs/v3/…`: the public GBFS v3.0 feeds, no token needed.
//!
//! Each answer carries `Cache-Control: public, max-age=<ttl>` matching the document's
//! `ttl`, `Last-Modified` matching its `last_updated`, and
//! `Access-Control-Allow-Origin: *` so web trip planners can read the feeds from a browser.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::{stream, StreamExt};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{facts, gbfs};
use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(discovery))
        .routes(routes!(system_information))
        .routes(routes!(vehicle_types))
        .routes(routes!(vehicle_status))
        .routes(routes!(geofencing_zones))
        .routes(routes!(system_pricing_plans))
}

/// The date format of HTTP headers (RFC 9110 IMF-fixdate).
fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The caching headers a GBFS document's `ttl` and `last_updated` call for.
fn feed_headers(feed: &str, last_updated: DateTime<Utc>) -> [(header::HeaderName, String); 3] {
    [
        (
            header::CACHE_CONTROL,
            format!("public, max-age={}", gbfs::ttl(feed)),
        ),
        (header::LAST_MODIFIED, http_date(last_updated)),
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*".to_owned()),
    ]
}

/// A GBFS document with its caching headers.
fn feed(feed: &str, last_updated: DateTime<Utc>, doc: Value) -> Response {
    (feed_headers(feed, last_updated), axum::Json(doc)).into_response()
}

/// Vehicles written out per piece of the `vehicle_status` body.
const VEHICLES_PER_PIECE: usize = 1024;

/// Where the feeds are published: `SCOOTFLEET_PUBLIC_URL`, or the bind address.
pub fn public_base(state: &AppState) -> String {
    match &state.config.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("http://{}", state.config.bind),
    }
}

/// GBFS discovery: the feeds this system publishes, as absolute URLs.
#[utoipa::path(get, path = "/gbfs/v3/gbfs.json", tag = "gbfs", responses(
    (status = 200, description = "GBFS v3.0 gbfs.json", content_type = "application/json"),
))]
pub async fn discovery(State(state): State<AppState>) -> Response {
    let now = state.clock.now();
    feed("gbfs", now, gbfs::discovery(&public_base(&state), now))
}

/// The system: name, contact, time zone, opening hours in OSM syntax.
#[utoipa::path(get, path = "/gbfs/v3/system_information.json", tag = "gbfs", responses(
    (status = 200, description = "GBFS v3.0 system_information.json", content_type = "application/json"),
))]
pub async fn system_information(State(state): State<AppState>) -> Response {
    let now = state.clock.now();
    let doc = gbfs::system_information(&facts::system(&state), now);
    feed("system_information", now, doc)
}

/// The one vehicle type: an electric moped.
#[utoipa::path(get, path = "/gbfs/v3/vehicle_types.json", tag = "gbfs", responses(
    (status = 200, description = "GBFS v3.0 vehicle_types.json", content_type = "application/json"),
))]
pub async fn vehicle_types(State(state): State<AppState>) -> Response {
    let now = state.clock.now();
    let max_range_m = state.config.vehicle_max_range_km * 1000.0;
    let doc = gbfs::vehicle_types(max_range_m, &state.config.gbfs_language, now);
    feed("vehicle_types", now, doc)
}

/// Rentable and reserved scooters under public ids rotated after each rental; never
/// scooters on a trip.
#[utoipa::path(get, path = "/gbfs/v3/vehicle_status.json", tag = "gbfs", responses(
    (status = 200, description = "GBFS v3.0 vehicle_status.json", content_type = "application/json"),
))]
pub async fn vehicle_status(State(state): State<AppState>) -> Response {
    let now = state.clock.now();
    let vehicles = state.public_vehicles.get(&state, now).await;
    let body = vehicle_status_body(vehicles, now, VEHICLES_PER_PIECE);
    (
        feed_headers("vehicle_status", now),
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response()
}

/// `vehicle_status` written out `per_piece` vehicles at a time as the client reads: a
/// large fleet's document (about 260 B a vehicle) is never held whole.
fn vehicle_status_body(
    vehicles: Arc<Vec<gbfs::PublicVehicle>>,
    now: DateTime<Utc>,
    per_piece: usize,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    let (head, tail) = gbfs::VehicleStatus::frame(now);
    let pieces = stream::unfold(0, move |next| {
        let vehicles = vehicles.clone();
        async move {
            if next >= vehicles.len() {
                return None;
            }
            let end = (next + per_piece).min(vehicles.len());
            let mut piece = Vec::with_capacity((end - next) * 280);
            for (i, vehicle) in vehicles[next..end].iter().enumerate() {
                gbfs::VehicleStatus::vehicle(&mut piece, vehicle, next + i == 0);
            }
            Some((Bytes::from(piece), end))
        }
    });
    stream::once(std::future::ready(Bytes::from(head)))
        .chain(pieces)
        .chain(stream::once(std::future::ready(Bytes::from(tail))))
        .map(Ok)
}

/// Where rides may start and end, and where speed is capped.
#[utoipa::path(get, path = "/gbfs/v3/geofencing_zones.json", tag = "gbfs", responses(
    (status = 200, description = "GBFS v3.0 geofencing_zones.json", content_type = "application/json"),
))]
pub async fn geofencing_zones(State(state): State<AppState>) -> Response {
    let set = state.zones.current();
    let updated = set.created_at().min(state.clock.now());
    let doc = gbfs::geofencing_zones(&facts::zones(&set), &state.config.gbfs_language, updated);
    feed("geofencing_zones", updated, doc)
}

/// Pay as you go, per minute.
#[utoipa::path(get, path = "/gbfs/v3/system_pricing_plans.json", tag = "gbfs", responses(
    (status = 200, description = "GBFS v3.0 system_pricing_plans.json", content_type = "application/json"),
))]
pub async fn system_pricing_plans(State(state): State<AppState>) -> Response {
    // Updated when an operator last set the tariff; the configuration's is as old as now.
    let updated = state.tariff.current().updated_at;
    let last_updated = updated.unwrap_or_else(|| state.clock.now());
    let doc = gbfs::system_pricing_plans(&facts::tariff(&state), last_updated);
    feed("system_pricing_plans", last_updated, doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_vehicle_feed_in_pieces_is_the_whole_document() {
        let now = Utc::now();
        let vehicle = |id: &str| gbfs::PublicVehicle {
            vehicle_id: super::super::PublicId::new(id),
            lat: 48.85,
            lon: 2.35,
            is_reserved: false,
            current_range_meters: 20_000.0,
            battery_fraction: Some(0.5),
            last_reported: now,
        };
        for n in [0, 1, 2, 3, 5] {
            let vehicles: Vec<_> = (0..n).map(|i| vehicle(&format!("v_{i}"))).collect();
            let whole = gbfs::VehicleStatus::document(&vehicles, now);
            let pieces: Vec<Bytes> = vehicle_status_body(Arc::new(vehicles), now, 2)
                .map(|piece| piece.unwrap())
                .collect()
                .await;
            assert_eq!(pieces.concat(), whole, "{n} vehicles");
            let doc: Value = serde_json::from_slice(&whole).unwrap();
            assert_eq!(doc["data"]["vehicles"].as_array().map(Vec::len), Some(n));
        }
    }

    #[test]
    fn http_dates_are_imf_fixdate() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T10:00:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(http_date(at), "Mon, 23 Nov 2026 10:00:05 GMT");
    }
}
