//! Several servers on one database: each live view follows the others' state changes.

mod common;

use common::fleet::{
    eventually, fleet_entry, nearby_ids, point, points_stored, register, send, PARIS,
};
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

/// A point stored through one server and sent again to another, whose live view has not
/// seen it: the other takes it for new, finds it stored, and stores the group again the
/// way that skips stored points. Stored once, answered 202 by both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_stored_through_one_server_and_sent_to_another_is_stored_once() {
    for backend in backends() {
        let a = TestServer::start(backend).await;
        let operator = a.operator_token().await;
        let device = register(&a, &operator, "MS-TWICE", PARIS.0, PARIS.1, 30.0).await;
        let b = another_server(&a).await;

        let at = |seconds| a.clock.now() + chrono::Duration::seconds(seconds);
        let moved = |seconds| vec![point(PARIS.0, PARIS.1 + 0.0001, 29.0, at(seconds))];
        // B's first point from the scooter (its first after B's start goes through dispatch,
        // in a transaction of its own), then one through A, sent again to B.
        send(&b, &device, moved(1)).await.expect(202);
        let found_before = b.counter(FOUND_STORED).await;
        for server in [&a, &b] {
            send(server, &device, moved(2)).await.expect(202);
        }
        // The registration's point and the two sent.
        assert_eq!(points_stored(&a, "MS-TWICE").await, 3);
        assert_eq!(
            fleet_entry(&b, &operator, "MS-TWICE").await["range_km"],
            29.0
        );
        if backend == scootfleet::db::Backend::Postgres {
            assert!(
                b.counter(FOUND_STORED).await > found_before,
                "B took the point for new"
            );
        }

        b.stop().await;
        a.stop().await;
    }
}

/// Telemetry groups taken for new and found stored.
const FOUND_STORED: &str = "scootfleet_telemetry_new_points_found_stored_total";
