//! The operators' dashboard numbers, through HTTP on every backend.

mod common;

on_both_backends!(kpis_count_todays_rides_and_the_fleets_health);

mod scenarios {
    use serde_json::json;

    use crate::common::fleet::register;
    use crate::common::*;

    pub async fn kpis_count_todays_rides_and_the_fleets_health(s: &TestServer) {
        let operator = s.operator_token().await;
        register(s, &operator, "KPI-1", 48.8566, 2.3522, 30.0).await;
        register(s, &operator, "KPI-2", 48.8600, 2.3400, 8.0).await;
        let (_, rider) = s.signup("kpi@example.com").await;

        let before = s.get("/v1/ops/kpis", Some(&operator)).await;
        let before = before.expect(200);
        assert_eq!(before["rides"]["rides"], 0);
        assert_eq!(before["fleet"]["scooters"], 2);
        assert_eq!(before["fleet"]["below_swap_threshold"], 1);
        assert_eq!(before["fleet"]["below_swap_threshold_share"], 0.5);
        // Local midnight in Paris (UTC+1 in November).
        assert_eq!(before["rides"]["since"], "2026-11-22T23:00:00Z");

        let ride = s
            .post("/v1/rides", Some(&rider), json!({"scooter_id": "KPI-1"}))
            .await;
        let ride_id = ride.expect(201)["ride_id"].as_str().unwrap().to_owned();
        let during = s.get("/v1/ops/kpis", Some(&operator)).await;
        let during = during.expect(200);
        assert_eq!(during["rides"]["active_rides"], 1);
        assert_eq!(during["rides"]["utilisation"], 0.5);
        assert_eq!(during["fleet"]["by_state"]["on_trip"], 1);

        s.clock.advance(chrono::Duration::seconds(61));
        s.post(&format!("/v1/rides/{ride_id}/end"), Some(&rider), json!({}))
            .await
            .expect(200);
        let after = s.get("/v1/ops/kpis", Some(&operator)).await;
        let after = after.expect(200);
        assert_eq!(after["rides"]["rides"], 1);
        assert_eq!(after["rides"]["minutes"], 2);
        assert_eq!(after["rides"]["revenue"], "0.56");
        assert_eq!(after["rides"]["currency"], "EUR");
        assert_eq!(after["rides"]["active_rides"], 0);
        assert!(after["dispatch"]["open_tasks"].is_number());

        s.get("/v1/ops/kpis", Some(&rider))
            .await
            .expect_problem(403, "forbidden");
    }
}
