//! GBFS v3.0 documents, built from plain facts about the system.
//!
//! Every document is `{last_updated, ttl, version: "3.0", data}`. The builders are pure: the
//! HTTP layer gathers the facts (fleet, zones, hours, tariff) and serves what comes out.

use chrono::{DateTime, Utc};
use geo::{MultiPolygon, Orient};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{json, Value};

use crate::clock::rfc3339;

/// The GBFS version served.
pub const VERSION: &str = "3.0";
/// The one vehicle type of the fleet.
pub const VEHICLE_TYPE_ID: &str = "emoped";
/// The pay-as-you-go plan.
pub const PAYG_PLAN_ID: &str = "payg";

/// Feeds this server publishes, in the order `gbfs.json` lists them.
pub const FEEDS: &[&str] = &[
    "system_information",
    "vehicle_types",
    "vehicle_status",
    "geofencing_zones",
    "system_pricing_plans",
];

/// Seconds a consumer may cache each feed: live positions briefly, reference data longer.
pub fn ttl(feed: &str) -> u32 {
    match feed {
        "vehicle_status" => 30,
        "geofencing_zones" | "system_pricing_plans" | "vehicle_types" => 300,
        _ => 60,
    }
}

/// What the system says of itself.
#[derive(Debug, Clone)]
pub struct SystemFacts {
    pub system_id: String,
    pub name: String,
    pub language: String,
    pub feed_contact_email: String,
    pub timezone: String,
    /// OSM `opening_hours`, e.g. `Mo-Su 07:00-23:00`.
    pub opening_hours: String,
}

/// A scooter as the public may see it: only ever rentable or reserved ones, under an
/// identifier that changes after each rental.
#[derive(Debug, Clone)]
pub struct PublicVehicle {
    pub vehicle_id: super::PublicId,
    pub lat: f64,
    pub lon: f64,
    pub is_reserved: bool,
    pub current_range_meters: f64,
    pub battery_fraction: Option<f64>,
    pub last_reported: DateTime<Utc>,
}

/// The pay-as-you-go tariff.
#[derive(Debug, Clone)]
pub struct TariffFacts {
    pub rate_per_minute: Decimal,
    pub currency: String,
    pub language: String,
}

/// The zones, as polygons.
#[derive(Debug, Clone, Default)]
pub struct ZoneFacts {
    pub service_area: Vec<MultiPolygon<f64>>,
    pub no_parking: Vec<(String, MultiPolygon<f64>)>,
    pub slow: Vec<(String, MultiPolygon<f64>, u32)>,
}

fn document(feed: &str, last_updated: DateTime<Utc>, data: Value) -> Value {
    json!({
        "last_updated": rfc3339(last_updated.with_timezone(&Utc)),
        "ttl": ttl(feed),
        "version": VERSION,
        "data": data,
    })
}

fn text(text: &str, language: &str) -> Value {
    json!([{ "text": text, "language": language }])
}

/// `gbfs.json`: where each feed is, as absolute URLs under `base` (no trailing slash).
pub fn discovery(base: &str, now: DateTime<Utc>) -> Value {
    let feeds: Vec<Value> = FEEDS
        .iter()
        .map(|name| json!({ "name": name, "url": format!("{base}/gbfs/v3/{name}.json") }))
        .collect();
    document("gbfs", now, json!({ "feeds": feeds }))
}

pub fn system_information(facts: &SystemFacts, now: DateTime<Utc>) -> Value {
    document(
        "system_information",
        now,
        json!({
            "system_id": facts.system_id,
            "languages": [facts.language],
            "name": text(&facts.name, &facts.language),
            "opening_hours": facts.opening_hours,
            "feed_contact_email": facts.feed_contact_email,
            "timezone": facts.timezone,
        }),
    )
}

pub fn vehicle_types(max_range_meters: f64, language: &str, now: DateTime<Utc>) -> Value {
    document(
        "vehicle_types",
        now,
        json!({
            "vehicle_types": [{
                "vehicle_type_id": VEHICLE_TYPE_ID,
                "form_factor": "moped",
                "propulsion_type": "electric",
                "max_range_meters": max_range_meters,
                "rider_capacity": 1,
                "max_permitted_speed": 45,
                "wheel_count": 2,
                "return_constraint": "free_floating",
                "name": text("Electric moped", language),
                "default_pricing_plan_id": PAYG_PLAN_ID,
                "pricing_plan_ids": [PAYG_PLAN_ID],
            }]
        }),
    )
}

/// `vehicle_status` written out piece by piece, so that a large fleet's document is never
/// held whole: the head of [`VehicleStatus::frame`], then each vehicle with
/// [`VehicleStatus::vehicle`], then the frame's tail.
pub struct VehicleStatus;

/// One vehicle of `vehicle_status` as written out: typed, so no JSON tree is built for it.
#[derive(Serialize)]
struct VehicleJson<'a> {
    vehicle_id: &'a str,
    lat: f64,
    lon: f64,
    is_reserved: bool,
    is_disabled: bool,
    vehicle_type_id: &'static str,
    pricing_plan_id: &'static str,
    current_range_meters: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_fuel_percent: Option<f64>,
    last_reported: String,
}

impl VehicleStatus {
    /// The document around its list of vehicles: what comes before the first one and
    /// after the last, the same envelope as every other feed's.
    pub fn frame(now: DateTime<Utc>) -> (String, String) {
        const SLOT: &str = "vehicles go here";
        let doc = document("vehicle_status", now, json!({ "vehicles": SLOT })).to_string();
        let (head, tail) = doc
            .split_once(&format!("\"{SLOT}\""))
            .expect("the envelope holds the slot it was given");
        (format!("{head}["), format!("]{tail}"))
    }

    /// Appends `v` to `out`, after a comma unless it is the first.
    pub fn vehicle(out: &mut Vec<u8>, v: &PublicVehicle, first: bool) {
        if !first {
            out.push(b',');
        }
        let json = VehicleJson {
            vehicle_id: v.vehicle_id.as_str(),
            lat: v.lat,
            lon: v.lon,
            is_reserved: v.is_reserved,
            is_disabled: false,
            vehicle_type_id: VEHICLE_TYPE_ID,
            pricing_plan_id: PAYG_PLAN_ID,
            current_range_meters: v.current_range_meters.max(0.0),
            current_fuel_percent: v.battery_fraction.map(|f| f.clamp(0.0, 1.0)),
            last_reported: rfc3339(v.last_reported),
        };
        // Plain numbers and strings written into a `Vec`: nothing here can fail.
        let _ = serde_json::to_writer(&mut *out, &json);
    }

    /// The whole document at once.
    #[cfg(test)]
    pub fn document(vehicles: &[PublicVehicle], now: DateTime<Utc>) -> Vec<u8> {
        let (head, tail) = Self::frame(now);
        let mut out = head.into_bytes();
        for (i, v) in vehicles.iter().enumerate() {
            Self::vehicle(&mut out, v, i == 0);
        }
        out.extend_from_slice(tail.as_bytes());
        out
    }
}

/// Rings in GeoJSON's right-hand order: exterior counter-clockwise, holes clockwise.
fn multipolygon_json(shape: &MultiPolygon<f64>) -> Value {
    let oriented = shape.orient(geo::orient::Direction::Default);
    let coordinates: Vec<Vec<Vec<[f64; 2]>>> = oriented
        .0
        .iter()
        .map(|polygon| {
            std::iter::once(polygon.exterior())
                .chain(polygon.interiors())
                .map(|ring| ring.coords().map(|c| [c.x, c.y]).collect())
                .collect()
        })
        .collect();
    json!({ "type": "MultiPolygon", "coordinates": coordinates })
}

fn zone_feature(name: &str, language: &str, shape: &MultiPolygon<f64>, rule: Value) -> Value {
    json!({
        "type": "Feature",
        "geometry": multipolygon_json(shape),
        "properties": { "name": text(name, language), "rules": [rule] },
    })
}

/// `geofencing_zones.json`: outside the service area nothing starts or ends; inside it
/// both are allowed; no-parking zones forbid ending; slow zones cap the speed.
pub fn geofencing_zones(zones: &ZoneFacts, language: &str, now: DateTime<Utc>) -> Value {
    let mut features = Vec::new();
    // Earlier features take precedence over later ones where they overlap (GBFS rule),
    // so the most specific zones come first.
    // A scooter found in a no-parking zone may still be unlocked (the rides domain only asks
    // for the service area), so only the end is forbidden there.
    for (name, shape) in &zones.no_parking {
        features.push(zone_feature(
            name,
            language,
            shape,
            json!({ "vehicle_type_ids": [VEHICLE_TYPE_ID], "ride_start_allowed": true, "ride_end_allowed": false, "ride_through_allowed": true }),
        ));
    }
    for (name, shape, max_speed) in &zones.slow {
        features.push(zone_feature(
            name,
            language,
            shape,
            json!({ "vehicle_type_ids": [VEHICLE_TYPE_ID], "ride_start_allowed": true, "ride_end_allowed": true, "ride_through_allowed": true, "maximum_speed_kph": max_speed }),
        ));
    }
    for shape in &zones.service_area {
        features.push(zone_feature(
            "Service area",
            language,
            shape,
            json!({ "vehicle_type_ids": [VEHICLE_TYPE_ID], "ride_start_allowed": true, "ride_end_allowed": true, "ride_through_allowed": true }),
        ));
    }
    document(
        "geofencing_zones",
        now,
        json!({
            "geofencing_zones": { "type": "FeatureCollection", "features": features },
            "global_rules": [{
                "vehicle_type_ids": [VEHICLE_TYPE_ID],
                "ride_start_allowed": false,
                "ride_end_allowed": false,
                "ride_through_allowed": true,
            }],
        }),
    )
}

/// `system_pricing_plans.json`: per-minute pricing, VAT included (so not taxable on top).
pub fn system_pricing_plans(tariff: &TariffFacts, now: DateTime<Utc>) -> Value {
    let rate = tariff.rate_per_minute.round_dp(2).to_f64().unwrap_or(0.0);
    let description = format!(
        "{} {} per started minute, VAT and insurance included, no unlock fee, no minimum.",
        tariff.rate_per_minute.round_dp(2),
        tariff.currency
    );
    document(
        "system_pricing_plans",
        now,
        json!({
            "plans": [{
                "plan_id": PAYG_PLAN_ID,
                "name": text("Pay as you go", &tariff.language),
                "currency": tariff.currency,
                "price": 0,
                "is_taxable": false,
                "description": text(&description, &tariff.language),
                "per_min_pricing": [{ "start": 0, "rate": rate, "interval": 1 }],
            }]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;
    use std::path::PathBuf;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn schema_dir() -> Option<PathBuf> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/gbfs/v3.0");
        dir.is_dir().then_some(dir)
    }

    /// The schema violations of `doc`, or `None` when the schemas are absent.
    fn violations(feed: &str, doc: &Value) -> Option<Vec<String>> {
        let dir = schema_dir()?;
        let mut schema: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{feed}.json"))).unwrap(),
        )
        .unwrap();
        // The schemas' `$id`s carry fragments, which the validator refuses as base URIs;
        // they hold no `$ref`, so the id is not needed to validate.
        if let Some(object) = schema.as_object_mut() {
            object.remove("$id");
        }
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap();
        let errors = validator
            .iter_errors(doc)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        Some(errors)
    }

    /// Validates `doc` against the official schema of `feed`; says so when the schemas
    /// are absent rather than passing silently.
    fn assert_valid(feed: &str, doc: &Value) {
        match violations(feed, doc) {
            None => eprintln!("skipped: ../shared/gbfs/v3.0 is absent, {feed} not validated"),
            Some(errors) => assert!(errors.is_empty(), "{feed} invalid: {errors:#?}\n{doc:#}"),
        }
    }

    #[test]
    fn the_validator_catches_broken_documents() {
        let mut doc: Value = serde_json::from_slice(&VehicleStatus::document(&[], now())).unwrap();
        doc["data"]["vehicles"] = json!([{ "vehicle_id": "x", "lat": 48.8, "lon": 2.3 }]);
        doc["version"] = json!("2.3");
        if let Some(errors) = violations("vehicle_status", &doc) {
            assert!(errors.len() >= 2, "{errors:?}");
        }
    }

    fn square(lon: f64, lat: f64, d: f64) -> MultiPolygon<f64> {
        // Clockwise on purpose: the builder must fix the orientation.
        MultiPolygon(vec![polygon![
            (x: lon, y: lat),
            (x: lon, y: lat + d),
            (x: lon + d, y: lat + d),
            (x: lon + d, y: lat),
            (x: lon, y: lat),
        ]])
    }

    #[test]
    fn documents_validate_against_the_official_schemas() {
        let system = SystemFacts {
            system_id: "scootfleet-paris".into(),
            name: "scootfleet Paris".into(),
            language: "fr".into(),
            feed_contact_email: "gbfs@example.com".into(),
            timezone: "Europe/Paris".into(),
            opening_hours: "Mo-Su 07:00-23:00".into(),
        };
        assert_valid("gbfs", &discovery("http://127.0.0.1:8080", now()));
        assert_valid("system_information", &system_information(&system, now()));
        assert_valid("vehicle_types", &vehicle_types(60_000.0, "fr", now()));
        let vehicles = vec![PublicVehicle {
            vehicle_id: super::super::PublicId::new("v_abc"),
            lat: 48.85,
            lon: 2.35,
            is_reserved: false,
            current_range_meters: 42_000.0,
            battery_fraction: Some(0.7),
            last_reported: now(),
        }];
        let status = VehicleStatus::document(&vehicles, now());
        let status: Value = serde_json::from_slice(&status).expect("vehicle_status is JSON");
        assert_eq!(
            status["data"]["vehicles"][0]["current_fuel_percent"],
            json!(0.7)
        );
        assert_valid("vehicle_status", &status);
        let two = VehicleStatus::document(&[vehicles[0].clone(), vehicles[0].clone()], now());
        let two: Value = serde_json::from_slice(&two).expect("two vehicles are JSON");
        assert_eq!(two["data"]["vehicles"].as_array().map(Vec::len), Some(2));
        assert_valid("vehicle_status", &two);
        let zones = ZoneFacts {
            service_area: vec![square(2.2, 48.8, 0.2)],
            no_parking: vec![("Étoile".into(), square(2.29, 48.87, 0.01))],
            slow: vec![("Market".into(), square(2.35, 48.85, 0.01), 10)],
        };
        let geofencing = geofencing_zones(&zones, "fr", now());
        assert_valid("geofencing_zones", &geofencing);
        let tariff = TariffFacts {
            rate_per_minute: Decimal::new(28, 2),
            currency: "EUR".into(),
            language: "fr".into(),
        };
        let plans = system_pricing_plans(&tariff, now());
        assert_valid("system_pricing_plans", &plans);
        assert_eq!(
            plans["data"]["plans"][0]["per_min_pricing"][0]["rate"],
            0.28
        );
    }

    #[test]
    fn rings_follow_the_right_hand_rule() {
        let shape = multipolygon_json(&square(2.2, 48.8, 0.2));
        let ring = shape["coordinates"][0][0].as_array().unwrap();
        // Shoelace: positive area means counter-clockwise.
        let area: f64 = ring
            .windows(2)
            .map(|w| {
                let (a, b) = (&w[0], &w[1]);
                a[0].as_f64().unwrap() * b[1].as_f64().unwrap()
                    - b[0].as_f64().unwrap() * a[1].as_f64().unwrap()
            })
            .sum();
        assert!(area > 0.0, "exterior ring must be counter-clockwise");
    }
}
