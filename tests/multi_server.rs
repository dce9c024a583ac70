//! Several servers on one database: each live view follows the others' state changes.

mod common;

use common::fleet::{eventually, fleet_entry, nearby_ids, register, PARIS};
use common::rides::another_server;
use common::{backends, TestServer};
use scootfleet::clock::Clock;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ride_started_on_one_server_shows_on_the_other() {
    for backend in backends() {
        let a = TestServer::start(backend).await;
        let operator = a.operator_token().await;
        register(&a, &operator, "MS-1", PARIS.0, PARIS.1, 30.0).await;
        let query = format!("lat={}&lon={}&radius_m=100", PARIS.0, PARIS.1);
        assert_eq!(nearby_ids(&a, &query).await, ["MS-1"]);

        let b = another_server(&a).await;
        let (_, rider) = b.signup("two-servers@example.com").await;
        let ride = b
            .post("/v1/rides", Some(&rider), json!({"scooter_id": "MS-1"}))
            .await;
        let ride_id = ride.expect(201)["ride_id"].as_str().unwrap().to_owned();

        eventually("server A sees the trip", || async {
            fleet_entry(&a, &operator, "MS-1").await["state"] == "on_trip"
        })
        .await;
        assert!(nearby_ids(&a, &query).await.is_empty());

        b.post(&format!("/v1/rides/{ride_id}/end"), Some(&rider), json!({}))
            .await
            .expect(200);
        eventually("server A sees the scooter free again", || async {
            nearby_ids(&a, &query).await == ["MS-1"]
        })
        .await;

        b.stop().await;
        a.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scooter_registered_on_one_server_is_taken_in_by_the_other() {
    for backend in backends() {
        let a = TestServer::start_with(backend, |c| c.fleet_sweep_interval_ms = 20).await;
        let operator = a.operator_token().await;
        register(&a, &operator, "MS-OLD", PARIS.0, PARIS.1, 30.0).await;
        let b = another_server(&a).await;
        let b_operator = b.operator_token().await;
        let device = register(&b, &b_operator, "MS-NEW", PARIS.0, PARIS.1 + 0.0005, 30.0).await;

        let query = format!("lat={}&lon={}&radius_m=200", PARIS.0, PARIS.1);
        eventually("server A takes in the scooter registered on B", || async {
            nearby_ids(&a, &query).await == ["MS-OLD", "MS-NEW"]
        })
        .await;
        // The device token B handed out is known to A too.
        let now = a.clock.now() + chrono::Duration::seconds(1);
        let moved = json!({
            "recorded_at": now.to_rfc3339(), "lat": PARIS.0, "lon": PARIS.1 + 0.0001,
            "range_km": 29.0, "battery_pct": 79
        });
        a.post("/v1/telemetry", Some(&device), json!({ "points": [moved] }))
            .await
            .expect(202);
        assert_eq!(fleet_entry(&a, &operator, "MS-NEW").await["range_km"], 29.0);

        b.stop().await;
        a.stop().await;
    }
}
