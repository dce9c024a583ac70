//! The operator console's own API calls, through HTTP on both databases: the tariff and
//! pack editor (`/v1/ops/tariff`) and the scooter click panel (`/v1/ops/scooters/{id}`).

mod common;

use common::TestServer;

rides_on_both_backends!(
    a_new_tariff_is_quoted_at_unlock_while_rides_in_progress_keep_theirs,
    wrong_fields_are_named_and_change_nothing,
    a_pack_taken_off_sale_leaves_the_minutes_riders_bought,
    the_click_panel_shows_the_ride_or_the_task,
    a_first_ride_keeps_the_trial_it_was_offered,
);

/// The tariff an operator sets is still in force after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_tariff() {
    for backend in common::backends() {
        let server = TestServer::start(backend).await;
        let op = server.operator_token().await;
        server
            .put(
                "/v1/ops/tariff",
                Some(&op),
                scenarios::tariff("0.35", "city_30", "7.50"),
            )
            .await
            .expect(200);
        let database = server.stop_keeping_database().await;
        let mut config = scootfleet::config::Config::for_database(&database.url);
        config.operator_email = Some(common::OPERATOR_EMAIL.into());
        config.operator_password = Some(scootfleet::config::Secret::new(common::OPERATOR_PASSWORD));
        let server = TestServer::start_on(backend, database, config).await;
        let op = server.operator_token().await;
        let tariff = server.get("/v1/ops/tariff", Some(&op)).await;
        let tariff = tariff.expect(200);
        assert_eq!(tariff["version"], 1);
        assert_eq!(tariff["rate_per_minute"], "0.35");
        let packs = server.get("/v1/packs", None).await;
        assert_eq!(packs.expect(200)["packs"][0]["pack_id"], "city_30");
        server.stop().await;
    }
}

/// Two servers on one database: a tariff set on one is quoted by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_sharing_a_database_follow_the_tariff() {
    for backend in common::backends() {
        let first = TestServer::start_with(backend, |c| c.zones_refresh_ms = 50).await;
        let database = common::TestDatabase::shared(&first.database.url);
        let mut config = scootfleet::config::Config::for_database(&database.url);
        config.zones_refresh_ms = 50;
        let second = TestServer::start_on(backend, database, config).await;
        let op = first.operator_token().await;
        first
            .put(
                "/v1/ops/tariff",
                Some(&op),
                scenarios::tariff("0.31", "p", "3.00"),
            )
            .await
            .expect(200);
        common::fleet::eventually("the second server quotes the new tariff", || async {
            let plans = second.get("/gbfs/v3/system_pricing_plans.json", None).await;
            plans.expect(200)["data"]["plans"][0]["per_min_pricing"][0]["rate"] == 0.31
        })
        .await;
        second.stop_keeping_database().await;
        first.stop().await;
    }
}

mod scenarios {
    use chrono::Duration;
    use serde_json::{json, Value};

    use super::common::dispatch::CENTER;
    use super::common::rides::{
        end, move_scooter, ride_on, rider, rider_without_trial, scooter, NOTRE_DAME,
    };
    use super::common::TestServer;

    /// A whole tariff form with one pack.
    pub fn tariff(rate: &str, pack_id: &str, pack_price: &str) -> Value {
        json!({
            "rate_per_minute": rate,
            "vat_rate": "0.20",
            "free_trial_minutes": 15,
            "unlock_minimum": "1.00",
            "packs": [{"pack_id": pack_id, "minutes": 30, "price": pack_price}],
        })
    }

    pub async fn a_new_tariff_is_quoted_at_unlock_while_rides_in_progress_keep_theirs(
        s: &TestServer,
    ) {
        let op = s.operator_token().await;
        let before = s.get("/v1/ops/tariff", Some(&op)).await;
        let before = before.expect(200);
        assert_eq!(before["version"], 0);
        assert_eq!(before["rate_per_minute"], "0.28");
        assert_eq!(before["vat_rate"], "0.20");
        assert_eq!(before["packs"].as_array().map(Vec::len), Some(3));

        let ana = rider_without_trial(s, &op, "ana@example.com", "SPARE-1", "20.00").await;
        let s1 = scooter(s, &op, "CS-1").await;
        let old_ride = ride_on(s, &ana.token, &s1).await;
        assert_eq!(
            s.get(&format!("/v1/rides/{old_ride}"), Some(&ana.token))
                .await
                .expect(200)["price_per_minute"],
            "0.28"
        );

        let mut form = tariff("0.40", "pack_60", "15.00");
        form["vat_rate"] = json!("0.10");
        let set = s.put("/v1/ops/tariff", Some(&op), form).await;
        let set = set.expect(200);
        assert_eq!(set["version"], 1);
        assert_eq!(set["rate_per_minute"], "0.40");
        assert_eq!(set["vat_rate"], "0.10");
        assert_eq!(set["currency"], "EUR");
        assert!(set["updated_at"].as_str().is_some());
        assert_eq!(s.get("/v1/ops/tariff", Some(&op)).await.expect(200), set);

        // A new unlock quotes the new rate.
        let ben = rider(s, "ben@example.com").await;
        let s2 = scooter(s, &op, "CS-2").await;
        let new_ride = ride_on(s, &ben.token, &s2).await;
        assert_eq!(
            s.get(&format!("/v1/rides/{new_ride}"), Some(&ben.token))
                .await
                .expect(200)["price_per_minute"],
            "0.40"
        );

        // The ride in progress is billed at the rate it was quoted at unlock.
        s.clock.advance(Duration::minutes(10));
        move_scooter(s, &s1, NOTRE_DAME).await;
        s.clock.advance(Duration::seconds(-1));
        let ended = end(s, &ana.token, &old_ride).await;
        let ended = ended.expect(200);
        assert_eq!(ended["price_per_minute"], "0.28");
        assert_eq!(ended["billed_minutes"], 10);
        assert_eq!(ended["amount"], "2.80");
        let receipt_id = ended["receipt_id"].as_str().unwrap();
        let receipt = s
            .get(&format!("/v1/me/receipts/{receipt_id}"), Some(&ana.token))
            .await;
        let receipt = receipt.expect(200);
        assert_eq!(receipt["price_per_minute"], "0.28");
        // And its VAT is the rate in force at unlock: 2.80 includes 0.47 at 20 %.
        assert_eq!(receipt["vat_rate"], "20%");
        assert_eq!(receipt["vat_amount"], "0.47");
        // A ride started under the new tariff is charged its VAT.
        s.clock.advance(Duration::seconds(1));
        move_scooter(s, &s2, NOTRE_DAME).await;
        let ended = end(s, &ben.token, &new_ride).await;
        let receipt_id = ended.expect(200)["receipt_id"].as_str().unwrap().to_owned();
        let receipt = s
            .get(&format!("/v1/me/receipts/{receipt_id}"), Some(&ben.token))
            .await;
        assert_eq!(receipt.expect(200)["vat_rate"], "10%");

        // The public catalogue and the GBFS pricing plan follow.
        let packs = s.get("/v1/packs", None).await;
        assert_eq!(
            packs.expect(200)["packs"],
            json!([{"pack_id": "pack_60", "minutes": 30, "price": "15.00", "currency": "EUR"}])
        );
        let plans = s.get("/gbfs/v3/system_pricing_plans.json", None).await;
        let plans = plans.expect(200);
        assert_eq!(plans["data"]["plans"][0]["per_min_pricing"][0]["rate"], 0.4);
        // The feed was last updated when the tariff was set, minutes ago.
        let seconds = |v: &Value| {
            chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time"))
                .expect("RFC 3339")
                .timestamp()
        };
        assert_eq!(seconds(&plans["last_updated"]), seconds(&set["updated_at"]));
    }

    pub async fn a_first_ride_keeps_the_trial_it_was_offered(s: &TestServer) {
        let op = s.operator_token().await;
        let ana = rider(s, "ana@example.com").await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ride = ride_on(s, &ana.token, &s1).await;
        // The trial is withdrawn while Ana's first ride is under way.
        let mut form = tariff("0.28", "pack_60", "15.00");
        form["free_trial_minutes"] = json!(0);
        s.put("/v1/ops/tariff", Some(&op), form).await.expect(200);
        s.clock.advance(Duration::minutes(10));
        move_scooter(s, &s1, NOTRE_DAME).await;
        s.clock.advance(Duration::seconds(-1));
        let ended = end(s, &ana.token, &ride).await;
        let ended = ended.expect(200);
        assert_eq!(ended["billed_minutes"], 10);
        assert_eq!(ended["paid"]["free_trial_minutes"], 10);
        assert_eq!(ended["paid"]["wallet_amount"], "0.00");
        // A newcomer from now on is offered none.
        let ben = rider(s, "ben@example.com").await;
        let wallet = s.get("/v1/me/wallet", Some(&ben.token)).await;
        assert_eq!(wallet.expect(200)["free_trial_available"], false);
    }

    pub async fn wrong_fields_are_named_and_change_nothing(s: &TestServer) {
        let op = s.operator_token().await;
        let form = json!({
            "rate_per_minute": "0",
            "vat_rate": "1.20",
            "free_trial_minutes": "fifteen",
            "unlock_minimum": "1.00",
            "packs": [
                {"pack_id": "pack_50", "minutes": 50, "price": "12.00"},
                {"pack_id": "pack_50", "minutes": 0, "price": "abc"}
            ],
        });
        let refused = s.put("/v1/ops/tariff", Some(&op), form.clone()).await;
        refused.expect_problem(422, "invalid_tariff");
        let mut fields: Vec<&str> = refused.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| {
                assert!(e["detail"].as_str().is_some_and(|d| !d.is_empty()));
                e["field"].as_str().expect("field")
            })
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "free_trial_minutes",
                "packs[1].minutes",
                "packs[1].pack_id",
                "packs[1].price",
                "rate_per_minute",
                "vat_rate"
            ]
        );
        let empty = s
            .put(
                "/v1/ops/tariff",
                Some(&op),
                json!({"rate_per_minute": "0.30"}),
            )
            .await;
        empty.expect_problem(422, "invalid_tariff");
        assert!(empty.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == "packs"));
        let unknown = s
            .put("/v1/ops/tariff", Some(&op), json!({"currency": "USD"}))
            .await;
        unknown.expect_problem(400, "invalid_request");

        let (_, rider) = s.signup("curious@example.com").await;
        s.put("/v1/ops/tariff", Some(&rider), tariff("0.01", "x", "1.00"))
            .await
            .expect_problem(403, "forbidden");
        s.get("/v1/ops/tariff", Some(&rider))
            .await
            .expect_problem(403, "forbidden");
        s.put("/v1/ops/tariff", None, tariff("0.01", "x", "1.00"))
            .await
            .expect_problem(401, "unauthenticated");

        let tariff = s.get("/v1/ops/tariff", Some(&op)).await;
        let tariff = tariff.expect(200);
        assert_eq!(tariff["version"], 0);
        assert_eq!(tariff["rate_per_minute"], "0.28");
    }

    pub async fn a_pack_taken_off_sale_leaves_the_minutes_riders_bought(s: &TestServer) {
        let op = s.operator_token().await;
        let ana = rider(s, "ana@example.com").await;
        s.top_up(&ana.token, "20.00").await;
        s.post(
            "/v1/me/packs",
            Some(&ana.token),
            json!({"pack_id": "pack_50"}),
        )
        .await
        .expect(201);
        s.put(
            "/v1/ops/tariff",
            Some(&op),
            tariff("0.28", "pack_100", "22.00"),
        )
        .await
        .expect(200);
        let packs = s.get("/v1/packs", None).await;
        let ids: Vec<&str> = packs.expect(200)["packs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["pack_id"].as_str())
            .collect();
        assert_eq!(ids, ["pack_100"]);
        assert_eq!(s.wallet(&ana.token).await["pack_minutes"], 50);
        s.post(
            "/v1/me/packs",
            Some(&ana.token),
            json!({"pack_id": "pack_50"}),
        )
        .await
        .expect_problem(404, "pack_not_found");
    }

    pub async fn the_click_panel_shows_the_ride_or_the_task(s: &TestServer) {
        let op = s.operator_token().await;
        s.get("/v1/ops/scooters/NOPE-1", Some(&op))
            .await
            .expect_problem(404, "scooter_not_found");
        let s1 = scooter(s, &op, "CS-1").await;
        let idle = s.get("/v1/ops/scooters/CS-1", Some(&op)).await;
        let idle = idle.expect(200);
        assert_eq!(idle["scooter_id"], "CS-1");
        assert_eq!(idle["state"], "available");
        assert_eq!(idle["range_km"], 40.0);
        assert!(idle["last_seen_at"].as_str().is_some());
        assert_eq!(idle["current_ride"], Value::Null);
        assert_eq!(idle["open_task"], Value::Null);

        let ana = rider(s, "ana.private@example.com").await;
        let ride_id = ride_on(s, &ana.token, &s1).await;
        s.clock.advance(Duration::seconds(150));
        let riding = s.get("/v1/ops/scooters/CS-1", Some(&op)).await;
        assert!(!riding.text.contains("ana.private"), "{}", riding.text);
        assert!(!riding.text.contains(&ana.id), "{}", riding.text);
        let riding = riding.expect(200);
        assert_eq!(riding["state"], "on_trip");
        assert_eq!(riding["current_ride"]["ride_id"], ride_id.as_str());
        assert_eq!(riding["current_ride"]["minutes_so_far"], 3);
        assert_eq!(riding["current_ride"]["price_per_minute"], "0.28");
        assert!(riding["current_ride"]["started_at"].as_str().is_some());

        let low = scooter(s, &op, "CS-LOW").await;
        s.report(&low.id, CENTER, 8.0).await;
        let panel = s.get("/v1/ops/scooters/CS-LOW", Some(&op)).await;
        let panel = panel.expect(200);
        assert_eq!(panel["current_ride"], Value::Null);
        assert_eq!(panel["open_task"]["scooter_id"], "CS-LOW");
        assert_eq!(panel["open_task"]["status"], "open");

        let (_, rider_token) = s.signup("nosy@example.com").await;
        s.get("/v1/ops/scooters/CS-1", Some(&rider_token))
            .await
            .expect_problem(403, "forbidden");
    }
}
