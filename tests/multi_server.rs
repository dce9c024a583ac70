//! Several servers on one database: each live view follows the others' state changes.

mod common;

use common::fleet::{eventually, fleet_entry, nearby_ids, register, PARIS};
use common::rides::another_server;
use common::{backends, TestServer};
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
