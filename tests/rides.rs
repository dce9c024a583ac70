//! Rides through HTTP on every backend: unlock refusals and races, billing per started
//! minute, receipts, idempotent replays, reservations, the scooter's side, opening hours
//! and the in-ride watch.

mod common;

rides_on_both_backends!(
    unlock_refusals_come_in_the_contract_order,
    unlock_answers_with_the_ride,
    many_riders_racing_for_one_scooter_get_one_ride,
    one_rider_racing_for_two_scooters_gets_one_ride,
    every_started_minute_is_billed,
    trial_then_pack_then_wallet_pay_for_rides,
    a_ride_beyond_the_balance_leaves_a_debt_that_blocks_unlocks,
    end_refusals,
    parking_is_checked_where_the_scooter_is,
    receipts_tell_how_a_ride_was_paid,
    a_scooter_is_found_where_its_ride_ended,
    idempotent_replays_unlock_and_end_once,
    ride_history_is_newest_first,
    leaving_the_service_area_warns_the_rider,
    slow_zones_limit_the_speed,
    reservations_hold_a_scooter_for_one_rider,
    reservations_expire_and_can_be_cancelled,
    unlock_commands_must_be_confirmed,
    scooters_end_rides_when_locked,
    closing_time_puts_idle_scooters_to_sleep,
    ends_racing_bill_once,
    riders_racing_to_reserve_get_one_hold,
    a_ride_ended_before_its_unlock_was_confirmed_stays_ended,
    commands_come_in_the_order_they_were_given,
    a_ride_ending_in_a_slow_zone_lifts_the_limit,
    riding_another_scooter_releases_the_reservation,
    riders_racing_through_two_servers_get_one_ride,
    uploaded_zones_decide_unlocks_and_parking,
);

/// A scooter that went silent is offline: not rentable until it is heard from again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_scooters_cannot_be_unlocked() {
    for backend in common::backends() {
        let s = common::TestServer::start_with(backend, |c| {
            c.silence_timeout_secs = 60;
            c.fleet_sweep_interval_ms = 50;
        })
        .await;
        scenarios::silent_scooters_cannot_be_unlocked(&s).await;
        s.stop().await;
    }
}

mod scenarios {
    use chrono::Duration;
    use futures_util::future::join_all;
    use rust_decimal::Decimal;
    use serde_json::json;

    use crate::common::fleet::{eventually, fleet_entry, nearby_ids, PARIS};
    use crate::common::rides::*;
    use crate::common::*;

    const NEAR_PARIS: &str = "lat=48.8566&lon=2.3522";

    fn dec(v: &serde_json::Value) -> Decimal {
        v.as_str()
            .expect("decimal string")
            .parse()
            .expect("decimal")
    }

    pub async fn unlock_refusals_come_in_the_contract_order(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let s2 = scooter(s, &op, "CS-2").await;
        let s3 = scooter(s, &op, "CS-3").await;
        let low = scooter_at(s, &op, "LOW-1", PARIS, 4.9).await;
        let outside = scooter_at(s, &op, "OUT-1", LA_DEFENSE, 40.0).await;
        let low_outside = scooter_at(s, &op, "OUT-2", LA_DEFENSE, 3.0).await;
        let ana = rider(s, "ana@example.com").await;
        let ben = rider(s, "ben@example.com").await;
        let cy = rider(s, "cy@example.com").await;

        // 1. An unknown scooter, whatever else holds.
        unlock(s, &ana.token, "NOPE-1")
            .await
            .expect_problem(404, "scooter_not_found");
        // 2. One ride at a time.
        ride_on(s, &ana.token, &s1).await;
        unlock(s, &ana.token, &s2.id)
            .await
            .expect_problem(409, "rider_has_active_ride");
        unlock(s, &ana.token, "NOPE-1")
            .await
            .expect_problem(404, "scooter_not_found");
        unlock(s, &ana.token, &low.id)
            .await
            .expect_problem(409, "rider_has_active_ride");
        // 4. On a trip, reserved by someone else, in maintenance.
        unlock(s, &ben.token, &s1.id)
            .await
            .expect_problem(409, "scooter_unavailable");
        s.post(
            "/v1/reservations",
            Some(&cy.token),
            json!({"scooter_id": s2.id}),
        )
        .await
        .expect(201);
        unlock(s, &ben.token, &s2.id)
            .await
            .expect_problem(409, "scooter_unavailable");
        s.post(
            &format!("/v1/ops/scooters/{}/events", s3.id),
            Some(&op),
            json!({"event": "maintenance"}),
        )
        .await
        .expect(200);
        unlock(s, &ben.token, &s3.id)
            .await
            .expect_problem(409, "scooter_unavailable");
        // 5. Below the rental floor, even outside the zone.
        unlock(s, &ben.token, &low.id)
            .await
            .expect_problem(409, "battery_too_low");
        unlock(s, &ben.token, &low_outside.id)
            .await
            .expect_problem(409, "battery_too_low");
        // 6. Outside the service area, even for a rider who cannot pay.
        unlock(s, &ben.token, &outside.id)
            .await
            .expect_problem(422, "scooter_outside_zone");
        let broke = rider_without_trial(s, &op, "broke@example.com", "SPARE-1", "0.00").await;
        unlock(s, &broke.token, &outside.id)
            .await
            .expect_problem(422, "scooter_outside_zone");
        // 7. No trial, no pack, no money.
        unlock(s, &broke.token, "SPARE-1")
            .await
            .expect_problem(402, "payment_required");
        let poor = rider_without_trial(s, &op, "poor@example.com", "SPARE-2", "0.50").await;
        unlock(s, &poor.token, "SPARE-2")
            .await
            .expect_problem(402, "payment_required");
        // 3. Closed at 23:30 in Paris: before availability, after the active ride.
        s.clock.set(at("2026-11-23T22:30:00Z"));
        unlock(s, &ben.token, "SPARE-1")
            .await
            .expect_problem(403, "outside_operating_hours");
        unlock(s, &ben.token, &s1.id)
            .await
            .expect_problem(403, "outside_operating_hours");
        unlock(s, &broke.token, &low.id)
            .await
            .expect_problem(403, "outside_operating_hours");
        unlock(s, &ana.token, "SPARE-1")
            .await
            .expect_problem(409, "rider_has_active_ride");
        unlock(s, &ana.token, "NOPE-2")
            .await
            .expect_problem(404, "scooter_not_found");
        // Unauthenticated and malformed requests.
        s.post("/v1/rides", None, json!({"scooter_id": s1.id}))
            .await
            .expect(401);
        s.post("/v1/rides", Some(&ben.token), json!({"scooter": "CS-1"}))
            .await
            .expect_problem(400, "invalid_request");
    }

    pub async fn unlock_answers_with_the_ride(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider(s, "ana@example.com").await;
        let answer = unlock(s, &ana.token, &s1.id).await;
        let ride = answer.expect(201);
        assert!(ride["ride_id"].as_str().is_some_and(|id| !id.is_empty()));
        assert_eq!(ride["scooter_id"], "CS-1");
        assert_eq!(ride["price_per_minute"], "0.28");
        assert_eq!(ride["currency"], "EUR");
        assert_eq!(ride["status"], "active");
        assert_eq!(ride["started_at"], "2026-11-23T10:00:00Z");
        assert_eq!(fleet_entry(s, &op, "CS-1").await["state"], "on_trip");
        assert!(!nearby_ids(s, NEAR_PARIS).await.contains(&"CS-1".to_owned()));
        let id = ride["ride_id"].as_str().unwrap();
        let view = ride_view(s, &ana.token, id).await;
        assert_eq!(view["status"], "active");
        assert!(view.get("billed_minutes").is_none());
    }

    async fn ride_view(s: &TestServer, token: &str, id: &str) -> serde_json::Value {
        ride(s, token, id).await
    }

    pub async fn many_riders_racing_for_one_scooter_get_one_ride(s: &TestServer) {
        let op = s.operator_token().await;
        scooter(s, &op, "CS-1").await;
        let mut riders = Vec::new();
        for i in 0..30 {
            riders.push(rider(s, &format!("racer{i}@example.com")).await);
        }
        let answers = join_all(riders.iter().map(|r| unlock(s, &r.token, "CS-1"))).await;
        let won = answers.iter().filter(|a| a.status.as_u16() == 201).count();
        assert_eq!(won, 1, "exactly one rider gets the scooter");
        for answer in answers.iter().filter(|a| a.status.as_u16() != 201) {
            answer.expect_problem(409, "scooter_unavailable");
        }
        let mut rides = 0;
        for r in &riders {
            let mine = s.get("/v1/me/rides", Some(&r.token)).await;
            rides += mine.expect(200)["rides"].as_array().unwrap().len();
        }
        assert_eq!(rides, 1);
        assert_eq!(fleet_entry(s, &op, "CS-1").await["state"], "on_trip");
    }

    pub async fn one_rider_racing_for_two_scooters_gets_one_ride(s: &TestServer) {
        let op = s.operator_token().await;
        for i in 0..6 {
            scooter(s, &op, &format!("CS-{i}")).await;
        }
        let ana = rider(s, "ana@example.com").await;
        let ids: Vec<String> = (0..6).map(|i| format!("CS-{i}")).collect();
        let answers = join_all(ids.iter().map(|id| unlock(s, &ana.token, id))).await;
        let won = answers.iter().filter(|a| a.status.as_u16() == 201).count();
        assert_eq!(won, 1, "one ride at a time");
        for answer in answers.iter().filter(|a| a.status.as_u16() != 201) {
            answer.expect_problem(409, "rider_has_active_ride");
        }
        let mine = s.get("/v1/me/rides", Some(&ana.token)).await;
        assert_eq!(mine.expect(200)["rides"].as_array().unwrap().len(), 1);
        let page = s.get("/v1/ops/fleet", Some(&op)).await;
        let riding = page.expect(200)["scooters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["state"] == "on_trip")
            .count();
        assert_eq!(riding, 1, "the losers' scooters stay available");
    }

    pub async fn every_started_minute_is_billed(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider_without_trial(s, &op, "ana@example.com", "SPARE-1", "20.00").await;
        let mut spent = Decimal::ZERO;
        for (seconds, minutes) in [(0, 1), (10, 1), (59, 1), (60, 1), (61, 2), (3600, 60)] {
            let id = ride_on(s, &ana.token, &s1).await;
            s.clock.advance(Duration::seconds(seconds));
            let answer = end(s, &ana.token, &id).await;
            let ended = answer.expect(200);
            assert_eq!(ended["status"], "ended");
            assert_eq!(ended["duration_s"], seconds, "{ended}");
            assert_eq!(ended["billed_minutes"], minutes, "{seconds} s");
            let amount = Decimal::new(28, 2) * Decimal::from(minutes);
            assert_eq!(dec(&ended["amount"]), amount);
            assert_eq!(
                ended["amount"]
                    .as_str()
                    .unwrap()
                    .split('.')
                    .nth(1)
                    .map(str::len),
                Some(2)
            );
            assert_eq!(ended["currency"], "EUR");
            assert_eq!(ended["paid"]["free_trial_minutes"], 0);
            assert_eq!(ended["paid"]["pack_minutes"], 0);
            assert_eq!(dec(&ended["paid"]["wallet_amount"]), amount);
            assert!(ended["receipt_id"].as_str().is_some());
            assert!(ended["ended_at"].as_str().is_some());
            spent += amount;
            s.clock.advance(Duration::seconds(5));
        }
        let wallet = s.wallet(&ana.token).await;
        assert_eq!(dec(&wallet["balance"]), Decimal::new(2000, 2) - spent);
    }

    pub async fn trial_then_pack_then_wallet_pay_for_rides(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;

        // A 20-minute first ride: 15 free minutes, 5 from the wallet.
        let ana = rider(s, "ana@example.com").await;
        s.top_up(&ana.token, "10.00").await;
        let id = ride_on(s, &ana.token, &s1).await;
        s.clock.advance(Duration::minutes(20));
        let answer = end(s, &ana.token, &id).await;
        let ended = answer.expect(200);
        assert_eq!(ended["billed_minutes"], 20);
        assert_eq!(ended["amount"], "5.60");
        assert_eq!(ended["paid"]["free_trial_minutes"], 15);
        assert_eq!(ended["paid"]["pack_minutes"], 0);
        assert_eq!(ended["paid"]["wallet_amount"], "1.40");
        let wallet = s.wallet(&ana.token).await;
        assert_eq!(wallet["balance"], "8.60");
        assert_eq!(wallet["free_trial_available"], false);

        // The trial is for the first ride only; then pack minutes, then the wallet.
        s.top_up(&ana.token, "10.00").await;
        s.post(
            "/v1/me/packs",
            Some(&ana.token),
            json!({"pack_id": "pack_50"}),
        )
        .await
        .expect(201);
        let id = ride_on(s, &ana.token, &s1).await;
        s.clock.advance(Duration::minutes(3));
        let answer = end(s, &ana.token, &id).await;
        let ended = answer.expect(200);
        assert_eq!(ended["amount"], "0.84");
        assert_eq!(ended["paid"]["free_trial_minutes"], 0);
        assert_eq!(ended["paid"]["pack_minutes"], 3);
        assert_eq!(ended["paid"]["wallet_amount"], "0.00");
        let wallet = s.wallet(&ana.token).await;
        assert_eq!(wallet["pack_minutes"], 47);
        assert_eq!(wallet["balance"], "6.60");

        let id = ride_on(s, &ana.token, &s1).await;
        s.clock.advance(Duration::seconds(48 * 60 - 30));
        let answer = end(s, &ana.token, &id).await;
        let ended = answer.expect(200);
        assert_eq!(ended["billed_minutes"], 48);
        assert_eq!(ended["paid"]["pack_minutes"], 47);
        assert_eq!(ended["paid"]["wallet_amount"], "0.28");
        let wallet = s.wallet(&ana.token).await;
        assert_eq!(wallet["pack_minutes"], 0);
        assert_eq!(wallet["balance"], "6.32");

        // A new rider with a pack: trial first, then the pack.
        let ben = rider(s, "ben@example.com").await;
        s.top_up(&ben.token, "12.00").await;
        s.post(
            "/v1/me/packs",
            Some(&ben.token),
            json!({"pack_id": "pack_50"}),
        )
        .await
        .expect(201);
        let id = ride_on(s, &ben.token, &s1).await;
        s.clock.advance(Duration::minutes(20));
        let answer = end(s, &ben.token, &id).await;
        let ended = answer.expect(200);
        assert_eq!(ended["paid"]["free_trial_minutes"], 15);
        assert_eq!(ended["paid"]["pack_minutes"], 5);
        assert_eq!(ended["paid"]["wallet_amount"], "0.00");
        assert_eq!(ended["amount"], "5.60");
        // With pack minutes and an empty wallet, the rider may ride.
        start_ride(s, &ben.token, &s1.id).await;
    }

    pub async fn a_ride_beyond_the_balance_leaves_a_debt_that_blocks_unlocks(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider_without_trial(s, &op, "ana@example.com", "SPARE-1", "2.00").await;
        let id = ride_on(s, &ana.token, &s1).await;
        s.clock.advance(Duration::minutes(10));
        let answer = end(s, &ana.token, &id).await;
        let ended = answer.expect(200);
        assert_eq!(ended["amount"], "2.80");
        assert_eq!(ended["paid"]["wallet_amount"], "2.80");
        assert_eq!(s.wallet(&ana.token).await["balance"], "-0.80");
        unlock(s, &ana.token, &s1.id)
            .await
            .expect_problem(402, "payment_required");
        s.top_up(&ana.token, "1.00").await;
        unlock(s, &ana.token, &s1.id)
            .await
            .expect_problem(402, "payment_required");
        s.top_up(&ana.token, "5.00").await;
        assert_eq!(s.wallet(&ana.token).await["balance"], "5.20");
        start_ride(s, &ana.token, &s1.id).await;
    }

    pub async fn end_refusals(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider(s, "ana@example.com").await;
        s.top_up(&ana.token, "20.00").await;
        let ben = rider(s, "ben@example.com").await;
        let id = ride_on(s, &ana.token, &s1).await;
        end(s, &ben.token, &id)
            .await
            .expect_problem(404, "not_found");
        s.get(&format!("/v1/rides/{id}"), Some(&ben.token))
            .await
            .expect_problem(404, "not_found");
        end(s, &ana.token, "ride_nope")
            .await
            .expect_problem(404, "not_found");
        s.clock.advance(Duration::seconds(30));
        end(s, &ana.token, &id).await.expect(200);
        end(s, &ana.token, &id)
            .await
            .expect_problem(409, "ride_not_active");
        // An empty body is an end request too; anything else is refused.
        let id = ride_on(s, &ana.token, &s1).await;
        s.post(
            &format!("/v1/rides/{id}/end"),
            Some(&ana.token),
            json!({"at": "now"}),
        )
        .await
        .expect_problem(400, "invalid_request");
        let empty = s
            .http
            .post(s.url(&format!("/v1/rides/{id}/end")))
            .bearer_auth(&ana.token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            TestServer::answer(empty).await.expect(200)["status"],
            "ended"
        );
        assert_eq!(fleet_entry(s, &op, "CS-1").await["state"], "available");
    }

    pub async fn parking_is_checked_where_the_scooter_is(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider(s, "ana@example.com").await;
        let id = ride_on(s, &ana.token, &s1).await;
        for place in [EIFFEL_ESPLANADE, ARC_DE_TRIOMPHE, LA_DEFENSE] {
            move_scooter(s, &s1, place).await;
            end(s, &ana.token, &id)
                .await
                .expect_problem(422, "parking_not_allowed");
            assert_eq!(ride(s, &ana.token, &id).await["status"], "active");
            assert_eq!(fleet_entry(s, &op, "CS-1").await["state"], "on_trip");
        }
        move_scooter(s, &s1, PARIS).await;
        let answer = end(s, &ana.token, &id).await;
        assert_eq!(answer.expect(200)["status"], "ended");
    }

    pub async fn a_scooter_is_found_where_its_ride_ended(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider(s, "ana@example.com").await;
        let id = ride_on(s, &ana.token, &s1).await;
        // The ride goes 1.3 km north-east, point after point.
        for step in 1..=4 {
            let along = f64::from(step) / 4.0;
            let place = (PARIS.0 + 0.0084 * along, PARIS.1 + 0.0128 * along);
            move_scooter(s, &s1, place).await;
        }
        end(s, &ana.token, &id).await.expect(200);
        let there = "lat=48.8650&lon=2.3650&radius_m=100";
        assert_eq!(nearby_ids(s, there).await, ["CS-1"]);
        assert!(nearby_ids(s, NEAR_PARIS).await.is_empty());
        // Parked, its GPS wanders 3.3 m north: searches measure it where it stands now.
        move_scooter(s, &s1, (48.86503, 2.3650)).await;
        let answer = s
            .get(
                "/v1/scooters/nearby?lat=48.8650&lon=2.3650&radius_m=3.2",
                None,
            )
            .await;
        assert_eq!(answer.expect(200)["scooters"], json!([]));
        let answer = s
            .get(
                "/v1/scooters/nearby?lat=48.8650&lon=2.3650&radius_m=3.5",
                None,
            )
            .await;
        let found = &answer.expect(200)["scooters"][0];
        assert_eq!(found["scooter_id"], "CS-1");
        let distance = found["distance_m"].as_f64().expect("distance_m");
        assert!((distance - 3.34).abs() < 0.05, "{distance}");
    }

    pub async fn receipts_tell_how_a_ride_was_paid(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider(s, "ana@example.com").await;
        let ben = rider(s, "ben@example.com").await;
        s.top_up(&ana.token, "10.00").await;
        let id = ride_on(s, &ana.token, &s1).await;
        s.clock.advance(Duration::minutes(20));
        move_scooter(s, &s1, NOTRE_DAME).await;
        s.clock.advance(Duration::seconds(-1));
        let answer = end(s, &ana.token, &id).await;
        let receipt_id = answer.expect(200)["receipt_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let answer = s
            .get(&format!("/v1/me/receipts/{receipt_id}"), Some(&ana.token))
            .await;
        let receipt = answer.expect(200);
        assert_eq!(receipt["receipt_id"], receipt_id);
        assert_eq!(receipt["ride_id"], id);
        assert_eq!(receipt["billed_minutes"], 20);
        assert_eq!(receipt["price_per_minute"], "0.28");
        assert_eq!(receipt["currency"], "EUR");
        assert_eq!(receipt["amount"], "5.60");
        assert_eq!(receipt["paid"]["free_trial_minutes"], 15);
        assert_eq!(receipt["paid"]["pack_minutes"], 0);
        assert_eq!(receipt["paid"]["wallet_amount"], "1.40");
        assert_eq!(receipt["vat_rate"], "20%");
        assert_eq!(receipt["vat_amount"], "0.93");
        assert_eq!(receipt["amount_excluding_vat"], "4.67");
        assert!(receipt["insurance"].as_str().is_some_and(|i| !i.is_empty()));
        assert_eq!(receipt["start"]["lat"], PARIS.0);
        assert_eq!(receipt["start"]["lon"], PARIS.1);
        assert_eq!(receipt["end"]["lat"], NOTRE_DAME.0);
        assert_eq!(receipt["end"]["lon"], NOTRE_DAME.1);
        assert_eq!(receipt["started_at"], "2026-11-23T10:00:00Z");
        assert_eq!(receipt["ended_at"], "2026-11-23T10:20:00Z");
        s.get(&format!("/v1/me/receipts/{receipt_id}"), Some(&ben.token))
            .await
            .expect_problem(404, "not_found");
        s.get("/v1/me/receipts/rcpt_nope", Some(&ana.token))
            .await
            .expect_problem(404, "not_found");
    }

    pub async fn idempotent_replays_unlock_and_end_once(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        scooter(s, &op, "CS-2").await;
        let ana = rider_without_trial(s, &op, "ana@example.com", "SPARE-1", "10.00").await;
        let body = json!({"scooter_id": "CS-1"});
        let first = s
            .post_with_key("/v1/rides", &ana.token, "unlock-1", body.clone())
            .await;
        let again = s
            .post_with_key("/v1/rides", &ana.token, "unlock-1", body.clone())
            .await;
        assert_eq!(first.expect(201), again.expect(201));
        s.post_with_key(
            "/v1/rides",
            &ana.token,
            "unlock-1",
            json!({"scooter_id": "CS-2"}),
        )
        .await
        .expect_problem(422, "idempotency_key_reused");
        let id = first.body["ride_id"].as_str().unwrap().to_owned();
        ack_unlock(s, &s1).await;
        let mine = s.get("/v1/me/rides", Some(&ana.token)).await;
        assert_eq!(mine.expect(200)["rides"].as_array().unwrap().len(), 2);

        s.clock.advance(Duration::seconds(90));
        let path = format!("/v1/rides/{id}/end");
        let ended = s.post_with_key(&path, &ana.token, "end-1", json!({})).await;
        let replay = s.post_with_key(&path, &ana.token, "end-1", json!({})).await;
        assert_eq!(ended.expect(200), replay.expect(200));
        assert_eq!(ended.body["amount"], "0.56");
        assert_eq!(s.wallet(&ana.token).await["balance"], "9.44");
        s.post_with_key(
            "/v1/rides",
            &ana.token,
            "end-1",
            json!({"scooter_id": "CS-2"}),
        )
        .await
        .expect_problem(422, "idempotency_key_reused");
        end(s, &ana.token, &id)
            .await
            .expect_problem(409, "ride_not_active");
        assert_eq!(s.wallet(&ana.token).await["balance"], "9.44");

        // Concurrent replays still make one ride.
        let body = json!({"scooter_id": "CS-2"});
        let answers = join_all(
            (0..5).map(|_| s.post_with_key("/v1/rides", &ana.token, "unlock-2", body.clone())),
        )
        .await;
        let ids: Vec<_> = answers
            .iter()
            .filter(|a| a.status.as_u16() == 201)
            .map(|a| a.body["ride_id"].clone())
            .collect();
        assert!(!ids.is_empty());
        assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
        let mine = s.get("/v1/me/rides", Some(&ana.token)).await;
        assert_eq!(mine.expect(200)["rides"].as_array().unwrap().len(), 3);
    }

    pub async fn ride_history_is_newest_first(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider(s, "ana@example.com").await;
        s.top_up(&ana.token, "20.00").await;
        let ben = rider(s, "ben@example.com").await;
        let mut ids = Vec::new();
        for _ in 0..2 {
            let id = ride_on(s, &ana.token, &s1).await;
            s.clock.advance(Duration::minutes(2));
            end(s, &ana.token, &id).await.expect(200);
            s.clock.advance(Duration::minutes(1));
            ids.push(id);
        }
        ids.push(ride_on(s, &ana.token, &s1).await);
        let answer = s.get("/v1/me/rides", Some(&ana.token)).await;
        let rides = answer.expect(200)["rides"].as_array().unwrap().clone();
        let listed: Vec<_> = rides
            .iter()
            .map(|r| r["ride_id"].as_str().unwrap())
            .collect();
        assert_eq!(listed, [&ids[2], &ids[1], &ids[0]]);
        assert_eq!(rides[0]["status"], "active");
        assert_eq!(rides[1]["status"], "ended");
        assert_eq!(rides[1]["billed_minutes"], 2);
        let one = ride(s, &ana.token, &ids[0]).await;
        assert_eq!(one["status"], "ended");
        assert_eq!(one["duration_s"], 120);
        assert_eq!(one["amount"], "0.56");
        assert_eq!(one["paid"]["free_trial_minutes"], 2);
        assert_eq!(one["receipt_id"], rides[2]["receipt_id"]);

        let page = s.get("/v1/me/rides?limit=2", Some(&ana.token)).await;
        let page = page.expect(200);
        assert_eq!(page["rides"].as_array().unwrap().len(), 2);
        let before = page["next_before"].as_str().expect("next_before");
        let older = s
            .get(
                &format!("/v1/me/rides?limit=2&before={before}"),
                Some(&ana.token),
            )
            .await;
        let older = older.expect(200)["rides"].as_array().unwrap().clone();
        assert_eq!(older.len(), 1);
        assert_eq!(older[0]["ride_id"], ids[0].as_str());
        let theirs = s.get("/v1/me/rides", Some(&ben.token)).await;
        assert!(theirs.expect(200)["rides"].as_array().unwrap().is_empty());
        s.get("/v1/me/rides?limit=0", Some(&ana.token))
            .await
            .expect_problem(400, "invalid_request");
    }

    pub async fn leaving_the_service_area_warns_the_rider(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider(s, "ana@example.com").await;
        let id = ride_on(s, &ana.token, &s1).await;
        assert!(ride(s, &ana.token, &id).await.get("warning").is_none());
        move_scooter(s, &s1, LA_DEFENSE).await;
        eventually("a warning on the ride", || async {
            let view = ride(s, &ana.token, &id).await;
            view["warning"].as_str().is_some_and(|w| !w.is_empty())
                && view["events"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|e| e["kind"] == "left_service_area"))
        })
        .await;
        end(s, &ana.token, &id)
            .await
            .expect_problem(422, "parking_not_allowed");
        move_scooter(s, &s1, PARIS).await;
        eventually("the warning lifted", || async {
            let view = ride(s, &ana.token, &id).await;
            view.get("warning").is_none()
                && view["events"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|e| e["kind"] == "entered_service_area"))
        })
        .await;
        end(s, &ana.token, &id).await.expect(200);
    }

    pub async fn slow_zones_limit_the_speed(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider(s, "ana@example.com").await;
        let id = ride_on(s, &ana.token, &s1).await;
        move_scooter(s, &s1, CHAMPS_ELYSEES).await;
        eventually("a speed_limit command", || async {
            command(s, &s1, "speed_limit").await.is_some()
        })
        .await;
        let limit = command(s, &s1, "speed_limit").await.unwrap();
        assert_eq!(limit["payload"]["max_speed_kmh"], 10.0);
        let limit_id = limit["command_id"].as_str().unwrap();
        s.post(
            &format!("/v1/device/commands/{limit_id}/ack"),
            Some(&s1.device),
            json!({}),
        )
        .await
        .expect(200);
        eventually("the ride shows the limit", || async {
            ride(s, &ana.token, &id).await["speed_limit_kmh"] == 10.0
        })
        .await;
        move_scooter(s, &s1, PARIS).await;
        eventually("the limit lifted", || async {
            command(s, &s1, "speed_limit")
                .await
                .is_some_and(|c| c["payload"]["max_speed_kmh"].is_null())
        })
        .await;
        end(s, &ana.token, &id).await.expect(200);
    }

    pub async fn reservations_hold_a_scooter_for_one_rider(s: &TestServer) {
        let op = s.operator_token().await;
        scooter(s, &op, "CS-1").await;
        scooter(s, &op, "CS-2").await;
        let ana = rider(s, "ana@example.com").await;
        s.top_up(&ana.token, "20.00").await;
        let ben = rider(s, "ben@example.com").await;
        let answer = s
            .post(
                "/v1/reservations",
                Some(&ana.token),
                json!({"scooter_id": "CS-1"}),
            )
            .await;
        let held = answer.expect(201).clone();
        assert_eq!(held["status"], "active");
        assert_eq!(held["scooter_id"], "CS-1");
        assert_eq!(held["expires_at"], "2026-11-23T10:10:00Z");
        let reservation = held["reservation_id"].as_str().unwrap();
        assert_eq!(nearby_ids(s, NEAR_PARIS).await, ["CS-2"]);
        assert_eq!(fleet_entry(s, &op, "CS-1").await["state"], "reserved");
        unlock(s, &ben.token, "CS-1")
            .await
            .expect_problem(409, "scooter_unavailable");
        s.post(
            "/v1/reservations",
            Some(&ben.token),
            json!({"scooter_id": "CS-1"}),
        )
        .await
        .expect_problem(409, "scooter_unavailable");
        s.post(
            "/v1/reservations",
            Some(&ana.token),
            json!({"scooter_id": "CS-2"}),
        )
        .await
        .expect_problem(409, "rider_has_reservation");
        s.get(&format!("/v1/reservations/{reservation}"), Some(&ben.token))
            .await
            .expect_problem(404, "not_found");
        let ride_id = start_ride(s, &ana.token, "CS-1").await;
        let answer = s
            .get(&format!("/v1/reservations/{reservation}"), Some(&ana.token))
            .await;
        assert_eq!(answer.expect(200)["status"], "converted");
        assert_eq!(fleet_entry(s, &op, "CS-1").await["state"], "on_trip");
        // The converted reservation is no longer in the way of another one.
        end(s, &ana.token, &ride_id).await.expect(200);
        s.post(
            "/v1/reservations",
            Some(&ana.token),
            json!({"scooter_id": "CS-2"}),
        )
        .await
        .expect(201);
    }

    pub async fn reservations_expire_and_can_be_cancelled(s: &TestServer) {
        let op = s.operator_token().await;
        scooter(s, &op, "CS-1").await;
        let ana = rider(s, "ana@example.com").await;
        let ben = rider(s, "ben@example.com").await;
        let reservation = reserve(s, &ana.token, "CS-1").await;
        s.clock.advance(Duration::minutes(9));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let path = format!("/v1/reservations/{reservation}");
        assert_eq!(
            s.get(&path, Some(&ana.token)).await.expect(200)["status"],
            "active"
        );
        s.clock.advance(Duration::seconds(61));
        eventually("the reservation expires", || async {
            s.get(&path, Some(&ana.token)).await.expect(200)["status"] == "expired"
        })
        .await;
        assert_eq!(fleet_entry(s, &op, "CS-1").await["state"], "available");
        assert_eq!(nearby_ids(s, NEAR_PARIS).await, ["CS-1"]);

        // Cancelled by the rider: free again at once, for anyone.
        let reservation = reserve(s, &ana.token, "CS-1").await;
        let path = format!("/v1/reservations/{reservation}");
        s.call(reqwest::Method::DELETE, &path, Some(&ben.token), None)
            .await
            .expect_problem(404, "not_found");
        let cancelled = s
            .call(reqwest::Method::DELETE, &path, Some(&ana.token), None)
            .await;
        assert_eq!(cancelled.expect(200)["status"], "cancelled");
        s.call(reqwest::Method::DELETE, &path, Some(&ana.token), None)
            .await
            .expect_problem(409, "reservation_not_active");
        assert_eq!(nearby_ids(s, NEAR_PARIS).await, ["CS-1"]);
        start_ride(s, &ben.token, "CS-1").await;
    }

    pub async fn unlock_commands_must_be_confirmed(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let s2 = scooter(s, &op, "CS-2").await;
        let ana = rider(s, "ana@example.com").await;
        let ben = rider(s, "ben@example.com").await;

        // Confirmed: the ride goes on past the timeout.
        let confirmed = start_ride(s, &ana.token, &s1.id).await;
        let pending = commands(s, &s1).await;
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(pending[0]["kind"], "unlock");
        assert_eq!(pending[0]["status"], "pending");
        ack_unlock(s, &s1).await;
        assert!(commands(s, &s1).await.is_empty());

        // Never confirmed: cancelled after 30 s, nothing billed.
        let unconfirmed = start_ride(s, &ben.token, &s2.id).await;
        let unlock_cmd = command(s, &s2, "unlock").await.unwrap();
        s.clock.advance(Duration::seconds(31));
        eventually("the unconfirmed ride is cancelled", || async {
            ride(s, &ben.token, &unconfirmed).await["status"] == "cancelled"
        })
        .await;
        let view = ride(s, &ben.token, &unconfirmed).await;
        assert!(view["cancel_reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()));
        assert!(view.get("amount").is_none() && view.get("receipt_id").is_none());
        assert_eq!(fleet_entry(s, &op, "CS-2").await["state"], "available");
        let wallet = s.wallet(&ben.token).await;
        assert_eq!(wallet["free_trial_available"], true);
        assert_eq!(wallet["balance"], "0.00");
        let late = unlock_cmd["command_id"].as_str().unwrap();
        s.post(
            &format!("/v1/device/commands/{late}/ack"),
            Some(&s2.device),
            json!({}),
        )
        .await
        .expect_problem(409, "command_expired");
        s.post(
            &format!("/v1/device/commands/{late}/ack"),
            Some(&s1.device),
            json!({}),
        )
        .await
        .expect_problem(404, "not_found");
        end(s, &ben.token, &unconfirmed)
            .await
            .expect_problem(409, "ride_not_active");

        assert_eq!(ride(s, &ana.token, &confirmed).await["status"], "active");
        let ended = end(s, &ana.token, &confirmed).await;
        assert_eq!(ended.expect(200)["billed_minutes"], 1);
        let lock = command(s, &s1, "lock").await.expect("a lock command");
        assert_eq!(lock["status"], "pending");
        // The rider can ride again, with the trial still there for Ben.
        start_ride(s, &ben.token, &s2.id).await;
    }

    pub async fn scooters_end_rides_when_locked(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider(s, "ana@example.com").await;
        s.post("/v1/device/lock", Some(&s1.device), json!({}))
            .await
            .expect_problem(409, "ride_not_active");
        let id = ride_on(s, &ana.token, &s1).await;
        move_scooter(s, &s1, EIFFEL_ESPLANADE).await;
        s.post("/v1/device/lock", Some(&s1.device), json!({}))
            .await
            .expect_problem(422, "parking_not_allowed");
        assert_eq!(ride(s, &ana.token, &id).await["status"], "active");
        move_scooter(s, &s1, PARIS).await;
        let answer = s.post("/v1/device/lock", Some(&s1.device), json!({})).await;
        let ended = answer.expect(200);
        assert_eq!(ended["ride_id"], id.as_str());
        assert_eq!(ended["status"], "ended");
        assert_eq!(ended["paid"]["free_trial_minutes"], 1);
        assert_eq!(ride(s, &ana.token, &id).await["status"], "ended");
        assert_eq!(fleet_entry(s, &op, "CS-1").await["state"], "available");
        s.post("/v1/device/lock", Some(&s1.device), json!({}))
            .await
            .expect_problem(409, "ride_not_active");
        s.post("/v1/device/lock", Some(&ana.token), json!({}))
            .await
            .expect(401);
    }

    pub async fn closing_time_puts_idle_scooters_to_sleep(s: &TestServer) {
        let op = s.operator_token().await;
        scooter(s, &op, "CS-1").await;
        let s2 = scooter(s, &op, "CS-2").await;
        let ana = rider(s, "ana@example.com").await;
        s.top_up(&ana.token, "20.00").await;
        s.clock.set(at("2026-11-23T21:50:00Z"));
        let id = ride_on(s, &ana.token, &s2).await;
        s.clock.set(at("2026-11-23T22:00:01Z"));
        eventually("CS-1 goes off-hours", || async {
            fleet_entry(s, &op, "CS-1").await["state"] == "non_operational"
        })
        .await;
        assert!(nearby_ids(s, NEAR_PARIS).await.is_empty());
        // The ride running at closing time goes on and ends normally.
        s.clock.set(at("2026-11-23T22:05:00Z"));
        assert_eq!(ride(s, &ana.token, &id).await["status"], "active");
        let answer = end(s, &ana.token, &id).await;
        let ended = answer.expect(200);
        assert_eq!(ended["billed_minutes"], 15);
        assert_eq!(ended["paid"]["free_trial_minutes"], 15);
        eventually("CS-2 goes off-hours after its ride", || async {
            fleet_entry(s, &op, "CS-2").await["state"] == "non_operational"
        })
        .await;
        unlock(s, &ana.token, "CS-1")
            .await
            .expect_problem(403, "outside_operating_hours");
        s.clock.set(at("2026-11-24T06:00:01Z"));
        eventually("the fleet wakes up at opening", || async {
            fleet_entry(s, &op, "CS-1").await["state"] == "available"
                && fleet_entry(s, &op, "CS-2").await["state"] == "available"
        })
        .await;
        let mut ids = nearby_ids(s, NEAR_PARIS).await;
        ids.sort();
        assert_eq!(ids, ["CS-1", "CS-2"]);
        start_ride(s, &ana.token, "CS-1").await;
    }

    pub async fn ends_racing_bill_once(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider_without_trial(s, &op, "ana@example.com", "SPARE-1", "10.00").await;
        let id = ride_on(s, &ana.token, &s1).await;
        s.clock.advance(Duration::minutes(5));
        let by_app = join_all((0..6).map(|_| end(s, &ana.token, &id)));
        let by_scooter =
            join_all((0..2).map(|_| s.post("/v1/device/lock", Some(&s1.device), json!({}))));
        let (by_app, by_scooter) = futures_util::future::join(by_app, by_scooter).await;
        let answers: Vec<_> = by_app.iter().chain(by_scooter.iter()).collect();
        let ended = answers.iter().filter(|a| a.status.as_u16() == 200).count();
        assert_eq!(ended, 1, "one end wins");
        for answer in answers.iter().filter(|a| a.status.as_u16() != 200) {
            answer.expect_problem(409, "ride_not_active");
        }
        assert_eq!(s.wallet(&ana.token).await["balance"], "8.60");
        assert_eq!(fleet_entry(s, &op, "CS-1").await["state"], "available");
        let locks = commands(s, &s1).await;
        assert_eq!(
            locks.iter().filter(|c| c["kind"] == "lock").count(),
            1,
            "{locks:?}"
        );
    }

    pub async fn riders_racing_to_reserve_get_one_hold(s: &TestServer) {
        let op = s.operator_token().await;
        scooter(s, &op, "CS-1").await;
        let mut riders = Vec::new();
        for i in 0..10 {
            riders.push(rider(s, &format!("racer{i}@example.com")).await);
        }
        let reserving = join_all(riders.iter().take(5).map(|r| {
            s.post(
                "/v1/reservations",
                Some(&r.token),
                json!({"scooter_id": "CS-1"}),
            )
        }));
        let unlocking = join_all(riders.iter().skip(5).map(|r| unlock(s, &r.token, "CS-1")));
        let (reserving, unlocking) = futures_util::future::join(reserving, unlocking).await;
        let won: Vec<_> = reserving
            .iter()
            .chain(unlocking.iter())
            .filter(|a| a.status.is_success())
            .collect();
        assert_eq!(won.len(), 1, "one rider holds the scooter");
        for answer in reserving.iter().chain(unlocking.iter()) {
            if !answer.status.is_success() {
                answer.expect_problem(409, "scooter_unavailable");
            }
        }
        let state = fleet_entry(s, &op, "CS-1").await["state"].clone();
        assert!(state == "reserved" || state == "on_trip", "{state}");
    }

    pub async fn a_ride_ended_before_its_unlock_was_confirmed_stays_ended(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider(s, "ana@example.com").await;
        let id = start_ride(s, &ana.token, &s1.id).await;
        let unlock_cmd = command(s, &s1, "unlock").await.unwrap();
        s.clock.advance(Duration::seconds(20));
        end(s, &ana.token, &id).await.expect(200);
        s.clock.advance(Duration::seconds(20));
        let late = unlock_cmd["command_id"].as_str().unwrap().to_owned();
        eventually("the unlock command expires", || async {
            command(s, &s1, "unlock").await.is_none()
        })
        .await;
        s.post(
            &format!("/v1/device/commands/{late}/ack"),
            Some(&s1.device),
            json!({}),
        )
        .await
        .expect_problem(409, "command_expired");
        let view = ride(s, &ana.token, &id).await;
        assert_eq!(view["status"], "ended");
        assert_eq!(view["billed_minutes"], 1);
        assert!(view.get("cancel_reason").is_none());
        assert_eq!(fleet_entry(s, &op, "CS-1").await["state"], "available");
    }

    pub async fn commands_come_in_the_order_they_were_given(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider(s, "ana@example.com").await;
        s.top_up(&ana.token, "20.00").await;
        // Short rides on a scooter that is offline: everything queues up, in order.
        for _ in 0..4 {
            let id = start_ride(s, &ana.token, &s1.id).await;
            end(s, &ana.token, &id).await.expect(200);
        }
        let kinds: Vec<_> = commands(s, &s1)
            .await
            .iter()
            .map(|c| c["kind"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            kinds,
            ["unlock", "lock", "unlock", "lock", "unlock", "lock", "unlock", "lock"]
        );
    }

    pub async fn a_ride_ending_in_a_slow_zone_lifts_the_limit(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider(s, "ana@example.com").await;
        let id = ride_on(s, &ana.token, &s1).await;
        move_scooter(s, &s1, CHAMPS_ELYSEES).await;
        eventually("the ride is limited", || async {
            ride(s, &ana.token, &id).await["speed_limit_kmh"] == 10.0
        })
        .await;
        let limit = command(s, &s1, "speed_limit").await.unwrap();
        let limit_id = limit["command_id"].as_str().unwrap();
        s.post(
            &format!("/v1/device/commands/{limit_id}/ack"),
            Some(&s1.device),
            json!({}),
        )
        .await
        .expect(200);
        end(s, &ana.token, &id).await.expect(200);
        let pending = commands(s, &s1).await;
        let kinds: Vec<_> = pending
            .iter()
            .map(|c| c["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["speed_limit", "lock"], "{pending:?}");
        assert!(pending[0]["payload"]["max_speed_kmh"].is_null());
    }

    pub async fn riding_another_scooter_releases_the_reservation(s: &TestServer) {
        let op = s.operator_token().await;
        scooter(s, &op, "CS-1").await;
        scooter(s, &op, "CS-2").await;
        let ana = rider(s, "ana@example.com").await;
        let ben = rider(s, "ben@example.com").await;
        let reservation = reserve(s, &ana.token, "CS-1").await;
        start_ride(s, &ana.token, "CS-2").await;
        let answer = s
            .get(&format!("/v1/reservations/{reservation}"), Some(&ana.token))
            .await;
        assert_eq!(answer.expect(200)["status"], "cancelled");
        assert_eq!(fleet_entry(s, &op, "CS-1").await["state"], "available");
        start_ride(s, &ben.token, "CS-1").await;
    }

    pub async fn riders_racing_through_two_servers_get_one_ride(s: &TestServer) {
        let op = s.operator_token().await;
        for i in 0..3 {
            scooter(s, &op, &format!("CS-{i}")).await;
        }
        let mut riders = Vec::new();
        for i in 0..20 {
            riders.push(rider(s, &format!("racer{i}@example.com")).await);
        }
        let other = another_server(s).await;
        for round in 0..3 {
            let id = format!("CS-{round}");
            let racing = riders.iter().enumerate().map(|(i, r)| {
                let server = if i % 2 == 0 { s } else { &other };
                unlock(server, &r.token, &id)
            });
            let answers = join_all(racing).await;
            let won = answers.iter().filter(|a| a.status.as_u16() == 201).count();
            assert_eq!(won, 1, "one ride for {id} across both servers");
            for answer in answers.iter().filter(|a| a.status.as_u16() != 201) {
                let code = answer.code().to_owned();
                assert!(
                    code == "scooter_unavailable" || code == "rider_has_active_ride",
                    "{}",
                    answer.text
                );
            }
            // Whichever server a latecomer asks, the database says the scooter is taken.
            let late = rider(s, &format!("late{round}@example.com")).await;
            for server in [s, &other] {
                unlock(server, &late.token, &id)
                    .await
                    .expect_problem(409, "scooter_unavailable");
            }
        }
        let mut rides = 0;
        for r in &riders {
            let mine = s.get("/v1/me/rides", Some(&r.token)).await;
            let mine = mine.expect(200)["rides"].as_array().unwrap().len();
            assert!(mine <= 1, "one ride at a time per rider");
            rides += mine;
        }
        assert_eq!(rides, 3);
        other.stop().await;
    }

    pub async fn uploaded_zones_decide_unlocks_and_parking(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider(s, "ana@example.com").await;
        // A square town whose northern border runs along latitude 48.88.
        let town = json!({
            "type": "FeatureCollection",
            "features": [
                {"type": "Feature", "properties": {"kind": "service_area", "name": "Town"},
                 "geometry": {"type": "Polygon", "coordinates": [
                    [[2.30, 48.84], [2.40, 48.84], [2.40, 48.88], [2.30, 48.88], [2.30, 48.84]]
                 ]}},
                {"type": "Feature", "properties": {"kind": "no_parking", "name": "Square"},
                 "geometry": {"type": "Polygon", "coordinates": [
                    [[2.31, 48.85], [2.32, 48.85], [2.32, 48.86], [2.31, 48.86], [2.31, 48.85]]
                 ]}}
            ]
        });
        s.put("/v1/ops/zones", Some(&op), town).await.expect(200);
        // The Eiffel Tower lies west of the town.
        scooter_at(s, &op, "OUT-1", EIFFEL_ESPLANADE, 40.0).await;
        unlock(s, &ana.token, "OUT-1")
            .await
            .expect_problem(422, "scooter_outside_zone");

        let id = ride_on(s, &ana.token, &s1).await;
        move_scooter(s, &s1, (48.855, 2.315)).await;
        end(s, &ana.token, &id)
            .await
            .expect_problem(422, "parking_not_allowed");
        // 40 m beyond the border is too far; 10 m is within the GPS tolerance (15 m).
        move_scooter(s, &s1, (48.88036, 2.35)).await;
        end(s, &ana.token, &id)
            .await
            .expect_problem(422, "parking_not_allowed");
        move_scooter(s, &s1, (48.88009, 2.35)).await;
        let answer = end(s, &ana.token, &id).await;
        assert_eq!(answer.expect(200)["status"], "ended");
    }

    pub async fn silent_scooters_cannot_be_unlocked(s: &TestServer) {
        let op = s.operator_token().await;
        let s1 = scooter(s, &op, "CS-1").await;
        let ana = rider(s, "ana@example.com").await;
        s.clock.advance(Duration::minutes(2));
        eventually("CS-1 goes silent", || async {
            fleet_entry(s, &op, "CS-1").await["state"] == "non_contactable"
        })
        .await;
        unlock(s, &ana.token, "CS-1")
            .await
            .expect_problem(409, "scooter_unavailable");
        s.get("/v1/device/commands", Some(&ana.token))
            .await
            .expect(401);
        move_scooter(s, &s1, PARIS).await;
        eventually("CS-1 is back", || async {
            fleet_entry(s, &op, "CS-1").await["state"] == "available"
        })
        .await;
        ride_on(s, &ana.token, &s1).await;
    }
}
