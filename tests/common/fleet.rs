//! Fleet helpers: registering scooters, sending telemetry, reading what was stored.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{Answer, TestServer};

/// The Hôtel de Ville, Paris: where test scooters start unless told otherwise.
pub const PARIS: (f64, f64) = (48.8566, 2.3522);

/// Registers a scooter as the operator; returns its device token.
pub async fn register(
    s: &TestServer,
    operator: &str,
    id: &str,
    lat: f64,
    lon: f64,
    range_km: f64,
) -> String {
    let answer = s
        .post(
            "/v1/ops/scooters",
            Some(operator),
            json!({"scooter_id": id, "lat": lat, "lon": lon, "range_km": range_km, "battery_pct": 80}),
        )
        .await;
    let body = answer.expect(201);
    assert_eq!(body["scooter_id"], id);
    body["device_token"]
        .as_str()
        .expect("device_token")
        .to_owned()
}

/// A telemetry point at `at`.
pub fn point(lat: f64, lon: f64, range_km: f64, at: DateTime<Utc>) -> Value {
    json!({
        "lat": lat, "lon": lon, "range_km": range_km, "battery_pct": 60,
        "speed_kmh": 12.5, "recorded_at": scootfleet::clock::rfc3339(at),
    })
}

pub async fn send(s: &TestServer, device: &str, points: Vec<Value>) -> Answer {
    s.post("/v1/telemetry", Some(device), json!({ "points": points }))
        .await
}

/// One scooter as `GET /v1/ops/fleet` lists it.
pub async fn fleet_entry(s: &TestServer, operator: &str, id: &str) -> Value {
    let page = s.get("/v1/ops/fleet?limit=5000", Some(operator)).await;
    page.expect(200)["scooters"]
        .as_array()
        .expect("scooters")
        .iter()
        .find(|entry| entry["scooter_id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} not in the fleet"))
}

/// The ids `GET /v1/scooters/nearby` answers for `query`, in order.
pub async fn nearby_ids(s: &TestServer, query: &str) -> Vec<String> {
    let answer = s.get(&format!("/v1/scooters/nearby?{query}"), None).await;
    answer.expect(200)["scooters"]
        .as_array()
        .expect("scooters")
        .iter()
        .map(|entry| entry["scooter_id"].as_str().expect("id").to_owned())
        .collect()
}

/// How many telemetry points the database holds for a scooter.
pub async fn points_stored(s: &TestServer, id: &str) -> i64 {
    let db = scootfleet::db::Db::connect(&s.database.url, 1)
        .await
        .expect("database");
    let count = scootfleet::fleet::store::count_points(&db, id)
        .await
        .expect("count");
    db.close().await;
    count
}

/// Waits (up to 10 s) until `check` holds; the workers run on their own schedule.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}
