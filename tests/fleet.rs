//! The fleet through HTTP on every backend: registration, telemetry, nearby search, the
//! operators' fleet list, silence, restarts.

mod common;

use chrono::Duration;
use common::fleet::*;
use common::{backends, default_now, TestServer, OPERATOR_EMAIL, OPERATOR_PASSWORD};
use scootfleet::clock::Clock;
use scootfleet::config::{Config, Secret};
use serde_json::json;

on_both_backends!(
    registration_issues_a_device_token,
    registration_refuses_bad_input,
    telemetry_moves_the_scooter,
    invalid_batches_apply_nothing,
    late_and_repeated_points_are_stored_once_and_never_move_back,
    only_device_tokens_send_telemetry,
    nearby_lists_rentable_scooters_nearest_first,
    nearby_checks_its_query,
    nearby_follows_the_service_area_as_zones_change_and_scooters_move,
    the_fleet_list_pages_through_every_scooter,
    concurrent_requests_are_all_committed,
    large_batches_from_many_devices_are_each_stored_once,
    operators_take_scooters_out_of_service_and_back,
    the_fleet_endpoints_are_documented,
    one_commit_keeps_each_scooters_newest_point,
    retention_deletes_a_large_backlog_in_slices,
    a_sweep_changes_many_and_checks_again_those_changed_elsewhere,
);

mod scenarios {
    use super::*;

    /// A sweep's batches (`Fleet::change_states`, 256 scooters to a transaction) change
    /// every scooter in the state they leave; one changed in the database behind the live
    /// view's back (by another server) is looked at again, not forced.
    pub async fn a_sweep_changes_many_and_checks_again_those_changed_elsewhere(s: &TestServer) {
        use scootfleet::fleet::{Event, Reason, ScooterState};
        let operator = s.operator_token().await;
        let ids: Vec<std::sync::Arc<str>> = (0..260).map(|i| format!("SW-{i:03}").into()).collect();
        for (i, id) in ids.iter().enumerate() {
            let lat = PARIS.0 + i as f64 * 1e-5;
            register(s, &operator, id, lat, PARIS.1, 30.0).await;
        }
        scootfleet::db_run!(&s.state.db, |pool| sqlx::query(
            "update scooters set state = 'on_trip', state_version = state_version + 1 \
             where scooter_id = 'SW-007'"
        )
        .execute(pool)
        .await
        .map(drop))
        .expect("a change made elsewhere");
        let fleet = &s.state.fleet;
        let changed = fleet
            .change_states(
                &s.state.db,
                &ids,
                ScooterState::Available,
                Event::Maintenance,
                s.clock.now(),
            )
            .await
            .expect("the sweep runs");
        assert_eq!(changed, 259);
        // (Maintenance rather than closing time, which the hours worker would undo.)
        let out_of_service = ScooterState::NonOperational(Reason::Maintenance);
        for id in &ids {
            let want = if &**id == "SW-007" {
                ScooterState::OnTrip
            } else {
                out_of_service
            };
            assert_eq!(fleet.get(id).map(|x| x.state), Some(want), "{id}");
            let entry = fleet_entry(s, &operator, id).await;
            assert_eq!(entry["state"], want.as_str(), "{id}");
        }
    }

    /// More points than one delete statement takes all go, those of more scooters than one
    /// statement looks up too, and newer ones stay.
    pub async fn retention_deletes_a_large_backlog_in_slices(s: &TestServer) {
        use scootfleet::clock::Clock;
        use scootfleet::fleet::commit::{self, Novelty, Points};
        use scootfleet::fleet::import::{register_all, Row};
        use scootfleet::fleet::store;
        use scootfleet::fleet::Reading;

        let operator = s.operator_token().await;
        register(s, &operator, "CS-0001", PARIS.0, PARIS.1, 30.0).await;
        let many: Vec<Row> = (0..1_200)
            .map(|i| Row {
                scooter_id: format!("RT-{i:04}"),
                lat: PARIS.0,
                lon: PARIS.1,
                range_km: 30.0,
                battery_pct: 80.0,
            })
            .collect();
        register_all(&s.state.db, &many, s.clock.now(), &mut Vec::new(), |_| {})
            .await
            .expect("import");
        let now = s.clock.now().timestamp_millis();
        let ten_days_ago = now - 10 * 86_400_000;
        let point = |recorded_at_ms| Reading {
            lat: PARIS.0,
            lon: PARIS.1,
            range_km: 29.0,
            battery_pct: 70.0,
            speed_kmh: None,
            recorded_at_ms,
        };
        let backlog: Vec<Reading> = (0..25_000).map(|i| point(ten_days_ago + i)).collect();
        // Each of the many: one point ten days old, one newer than its registration.
        let old_and_new = [point(ten_days_ago), point(now + 1_000)];
        let mut groups = vec![Points {
            scooter_id: "CS-0001",
            points: &backlog,
            received_at_ms: now,
        }];
        groups.extend(many.iter().map(|row| Points {
            scooter_id: &row.scooter_id,
            points: &old_and_new,
            received_at_ms: now,
        }));
        let newest = commit::newest_points(&groups);
        commit::commit_points(&s.state.db, &groups, &newest, None, Novelty::MaybeStored)
            .await
            .expect("commit");
        let deleted = store::delete_points_before(&s.state.db, now - 86_400_000).await;
        assert_eq!(deleted.ok(), Some(25_000 + 1_200));
        // The registration's point is today's.
        assert_eq!(
            store::count_points(&s.state.db, "CS-0001").await.ok(),
            Some(1)
        );
        for id in ["RT-0000", "RT-0499", "RT-0500", "RT-1199"] {
            // The registration's point and the newer one.
            assert_eq!(
                store::count_points(&s.state.db, id).await.ok(),
                Some(2),
                "{id}"
            );
        }
    }

    /// Two requests of one scooter in one group commit, the newer first: the scooter keeps
    /// the newer point, and both points are stored.
    pub async fn one_commit_keeps_each_scooters_newest_point(s: &TestServer) {
        use scootfleet::clock::Clock;
        use scootfleet::fleet::commit::{self, Novelty, Points};
        use scootfleet::fleet::store;
        use scootfleet::fleet::Reading;

        let operator = s.operator_token().await;
        register(s, &operator, "CS-0001", PARIS.0, PARIS.1, 30.0).await;
        let now = s.clock.now().timestamp_millis();
        let point = |lat: f64, recorded_at_ms: i64| Reading {
            lat,
            lon: PARIS.1,
            range_km: 29.0,
            battery_pct: 70.0,
            speed_kmh: None,
            recorded_at_ms,
        };
        let (newer, older) = ([point(48.87, now + 2_000)], [point(48.86, now + 1_000)]);
        let group = |points| Points {
            scooter_id: "CS-0001",
            points,
            received_at_ms: now,
        };
        let groups = [group(&newer), group(&older)];
        let newest = commit::newest_points(&groups);
        commit::commit_points(&s.state.db, &groups, &newest, None, Novelty::New)
            .await
            .expect("commit");
        struct Row {
            scooter_id: String,
            lat: f64,
            last_seen_ms: i64,
        }
        let mut rows = Vec::new();
        store::each_scooter(&s.state.db, |r| {
            rows.push(Row {
                scooter_id: r.scooter_id.to_owned(),
                lat: r.lat,
                last_seen_ms: r.last_seen_ms,
            });
            Ok::<_, sqlx::Error>(())
        })
        .await
        .expect("rows");
        let row = rows
            .iter()
            .find(|r| r.scooter_id == "CS-0001")
            .expect("row");
        assert_eq!((row.lat, row.last_seen_ms), (48.87, now + 2_000));
        // The registration's point and the two.
        assert_eq!(
            store::count_points(&s.state.db, "CS-0001").await.ok(),
            Some(3)
        );
    }

    pub async fn registration_issues_a_device_token(s: &TestServer) {
        let operator = s.operator_token().await;
        let token = register(s, &operator, "CS-0042", PARIS.0, PARIS.1, 30.0).await;
        assert!(token.len() >= 32, "{token}");
        let entry = fleet_entry(s, &operator, "CS-0042").await;
        assert_eq!(entry["state"], "available");
        assert_eq!(entry["lat"], PARIS.0);
        assert_eq!(entry["range_km"], 30.0);
        assert_eq!(entry["battery_pct"], 80.0);
        assert_eq!(entry["last_seen_at"], "2026-11-23T10:00:00Z");
        // Registration is the first stored point.
        assert_eq!(points_stored(s, "CS-0042").await, 1);

        let again = s
            .post(
                "/v1/ops/scooters",
                Some(&operator),
                json!({"scooter_id": "CS-0042", "lat": 48.0, "lon": 2.0, "range_km": 10, "battery_pct": 50}),
            )
            .await;
        again.expect_problem(409, "scooter_exists");
        // The first registration stands: same place, same token.
        assert_eq!(fleet_entry(s, &operator, "CS-0042").await["lat"], PARIS.0);
        send(s, &token, vec![point(48.857, 2.353, 29.0, default_now())])
            .await
            .expect(202);
    }

    pub async fn registration_refuses_bad_input(s: &TestServer) {
        let operator = s.operator_token().await;
        let good = json!({"scooter_id": "CS-1", "lat": 48.85, "lon": 2.35, "range_km": 20, "battery_pct": 50});
        let long_id = "x".repeat(65);
        let bad = [
            ("scooter_id", json!("")),
            ("scooter_id", json!("CS 1")),
            ("scooter_id", json!("CS/1")),
            ("scooter_id", json!(long_id)),
            ("scooter_id", json!(42)),
            ("lat", json!(90.5)),
            ("lat", json!("NaN")),
            ("lon", json!(-180.01)),
            ("range_km", json!(-1)),
            ("battery_pct", json!(100.5)),
            ("battery_pct", json!(-0.5)),
            ("color", json!("red")),
        ];
        for (field, value) in bad {
            let mut body = good.clone();
            body[field] = value;
            s.post("/v1/ops/scooters", Some(&operator), body)
                .await
                .expect_problem(400, "invalid_request");
        }
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove("range_km");
        s.post("/v1/ops/scooters", Some(&operator), missing)
            .await
            .expect_problem(400, "invalid_request");

        let (_, rider) = s.signup("rider@example.com").await;
        s.post("/v1/ops/scooters", Some(&rider), good.clone())
            .await
            .expect_problem(403, "forbidden");
        s.post("/v1/ops/scooters", None, good.clone())
            .await
            .expect_problem(401, "unauthenticated");
        // Nothing of the above registered anything.
        let page = s.get("/v1/ops/fleet", Some(&operator)).await;
        assert_eq!(page.expect(200)["scooters"], json!([]));
        s.post("/v1/ops/scooters", Some(&operator), good)
            .await
            .expect(201);
    }

    pub async fn telemetry_moves_the_scooter(s: &TestServer) {
        let operator = s.operator_token().await;
        let token = register(s, &operator, "CS-7", PARIS.0, PARIS.1, 30.0).await;
        s.clock.advance(Duration::seconds(30));
        let at = s.clock.now() - Duration::seconds(2);
        // Near the Eiffel Tower.
        let answer = send(
            s,
            &token,
            vec![
                point(48.8580, 2.2950, 25.0, at - Duration::seconds(5)),
                point(48.8584, 2.2945, 24.0, at),
            ],
        )
        .await;
        assert_eq!(answer.expect(202)["accepted"], 2);
        let entry = fleet_entry(s, &operator, "CS-7").await;
        assert_eq!(
            (entry["lat"].as_f64(), entry["lon"].as_f64()),
            (Some(48.8584), Some(2.2945))
        );
        assert_eq!(entry["range_km"], 24.0);
        assert_eq!(entry["last_seen_at"], "2026-11-23T10:00:28Z");
        assert_eq!(nearby_ids(s, "lat=48.8584&lon=2.2950").await, ["CS-7"]);
        assert!(nearby_ids(s, "lat=48.8566&lon=2.3522").await.is_empty());
        assert_eq!(points_stored(s, "CS-7").await, 3);
    }

    pub async fn invalid_batches_apply_nothing(s: &TestServer) {
        let operator = s.operator_token().await;
        let token = register(s, &operator, "CS-8", PARIS.0, PARIS.1, 30.0).await;
        let now = s.clock.now();
        let good = point(48.86, 2.34, 20.0, now);
        let invalid_points = [
            json!({"lat": 95.0}),
            json!({"lon": 181.0}),
            json!({"range_km": -2.0}),
            json!({"battery_pct": 101}),
            json!({"speed_kmh": -1}),
            json!({"recorded_at": scootfleet::clock::rfc3339(now + Duration::minutes(6))}),
        ];
        for patch in invalid_points {
            let mut bad = point(48.861, 2.341, 20.0, now - Duration::seconds(1));
            for (key, value) in patch.as_object().unwrap() {
                bad[key] = value.clone();
            }
            send(s, &token, vec![good.clone(), bad])
                .await
                .expect_problem(422, "invalid_telemetry");
        }
        let malformed_points = [
            json!({"lat": "NaN"}),
            json!({"lat": null}),
            json!({"recorded_at": "yesterday"}),
            json!({"altitude_m": 35}),
        ];
        for patch in malformed_points {
            let mut bad = point(48.861, 2.341, 20.0, now - Duration::seconds(1));
            for (key, value) in patch.as_object().unwrap() {
                bad[key] = value.clone();
            }
            send(s, &token, vec![good.clone(), bad])
                .await
                .expect_problem(400, "invalid_request");
        }
        send(s, &token, vec![])
            .await
            .expect_problem(400, "invalid_request");
        s.post(
            "/v1/telemetry",
            Some(&token),
            json!({"points": [good.clone()], "extra": 1}),
        )
        .await
        .expect_problem(400, "invalid_request");
        // None of it was applied: the scooter stands where it was registered.
        assert_eq!(points_stored(s, "CS-8").await, 1);
        assert_eq!(fleet_entry(s, &operator, "CS-8").await["lat"], PARIS.0);
        // Up to five minutes ahead is a clock a little fast, not an error.
        send(
            s,
            &token,
            vec![point(48.86, 2.34, 20.0, now + Duration::minutes(4))],
        )
        .await
        .expect(202);
        assert_eq!(fleet_entry(s, &operator, "CS-8").await["lat"], 48.86);
    }

    pub async fn late_and_repeated_points_are_stored_once_and_never_move_back(s: &TestServer) {
        let operator = s.operator_token().await;
        let token = register(s, &operator, "CS-9", PARIS.0, PARIS.1, 30.0).await;
        let registered = s.clock.now();
        s.clock.advance(Duration::minutes(2));
        let t2 = registered + Duration::seconds(90);
        send(s, &token, vec![point(48.87, 2.33, 28.0, t2)])
            .await
            .expect(202);
        // An older point is stored but leaves the scooter at its newest position.
        send(
            s,
            &token,
            vec![point(48.80, 2.30, 29.0, t2 - Duration::seconds(30))],
        )
        .await
        .expect(202);
        let entry = fleet_entry(s, &operator, "CS-9").await;
        assert_eq!(
            (entry["lat"].as_f64(), entry["range_km"].as_f64()),
            (Some(48.87), Some(28.0))
        );
        assert_eq!(points_stored(s, "CS-9").await, 3);
        // The same recorded_at again is a duplicate: not stored twice, not applied.
        send(s, &token, vec![point(48.90, 2.20, 10.0, t2)])
            .await
            .expect(202);
        // Twice in one batch, too.
        let t3 = t2 + Duration::seconds(10);
        send(
            s,
            &token,
            vec![
                point(48.871, 2.331, 27.0, t3),
                point(48.871, 2.331, 27.0, t3),
            ],
        )
        .await
        .expect(202);
        assert_eq!(points_stored(s, "CS-9").await, 4);
        assert_eq!(fleet_entry(s, &operator, "CS-9").await["lat"], 48.871);
        // Before the registration: history only.
        send(
            s,
            &token,
            vec![point(48.5, 2.0, 30.0, registered - Duration::hours(1))],
        )
        .await
        .expect(202);
        assert_eq!(points_stored(s, "CS-9").await, 5);
        assert_eq!(fleet_entry(s, &operator, "CS-9").await["lat"], 48.871);
    }

    pub async fn only_device_tokens_send_telemetry(s: &TestServer) {
        let operator = s.operator_token().await;
        let device = register(s, &operator, "CS-10", PARIS.0, PARIS.1, 30.0).await;
        let (_, rider) = s.signup("someone@example.com").await;
        let batch = vec![point(48.86, 2.34, 20.0, s.clock.now())];
        for token in [
            operator.as_str(),
            rider.as_str(),
            "not-a-token",
            &device[..device.len() - 1],
        ] {
            send(s, token, batch.clone())
                .await
                .expect_problem(401, "unauthenticated");
        }
        s.post("/v1/telemetry", None, json!({"points": batch.clone()}))
            .await
            .expect_problem(401, "unauthenticated");
        assert_eq!(points_stored(s, "CS-10").await, 1);
        send(s, &device, batch).await.expect(202);
    }

    pub async fn nearby_lists_rentable_scooters_nearest_first(s: &TestServer) {
        let operator = s.operator_token().await;
        // About 110 m, 220 m, 330 m and 1.1 km north of the centre; one with too little range.
        register(s, &operator, "B", 48.8586, 2.3522, 30.0).await;
        register(s, &operator, "A", 48.8576, 2.3522, 12.0).await;
        register(s, &operator, "C", 48.8596, 2.3522, 30.0).await;
        register(s, &operator, "FAR", 48.8666, 2.3522, 30.0).await;
        register(s, &operator, "LOW", 48.8567, 2.3522, 4.9).await;
        let answer = s
            .get("/v1/scooters/nearby?lat=48.8566&lon=2.3522", None)
            .await;
        let body = answer.expect(200);
        let scooters = body["scooters"].as_array().unwrap();
        let ids: Vec<&str> = scooters
            .iter()
            .map(|e| e["scooter_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["A", "B", "C"]);
        let first = &scooters[0];
        let distance = first["distance_m"].as_f64().unwrap();
        assert!((distance - 111.2).abs() < 1.0, "{distance}");
        assert_eq!(first["range_km"], 12.0);
        assert_eq!(first["battery_pct"], 80.0);
        assert_eq!(first["lat"], 48.8576);
        assert!(first.get("state").is_none());

        assert_eq!(
            nearby_ids(s, "lat=48.8566&lon=2.3522&limit=2").await,
            ["A", "B"]
        );
        assert_eq!(
            nearby_ids(s, "lat=48.8566&lon=2.3522&radius_m=150").await,
            ["A"]
        );
        assert_eq!(
            nearby_ids(s, "lat=48.8566&lon=2.3522&radius_m=2000").await,
            ["A", "B", "C", "FAR"]
        );
        assert_eq!(
            nearby_ids(s, "lat=48.8566&lon=2.3522&min_range_km=20").await,
            ["B", "C"]
        );
        // The contract's template leaves min_range_km empty.
        assert_eq!(
            nearby_ids(
                s,
                "lat=48.8566&lon=2.3522&radius_m=500&limit=20&min_range_km="
            )
            .await,
            ["A", "B", "C"]
        );
        // LOW stands 11 m away but its range is below the 5 km floor, whatever the rider asks.
        assert!(nearby_ids(s, "lat=48.8567&lon=2.3522&radius_m=5")
            .await
            .is_empty());
        assert!(
            nearby_ids(s, "lat=48.8567&lon=2.3522&radius_m=5&min_range_km=1")
                .await
                .is_empty()
        );
        assert_eq!(fleet_entry(s, &operator, "LOW").await["state"], "available");
    }

    pub async fn nearby_follows_the_service_area_as_zones_change_and_scooters_move(s: &TestServer) {
        let operator = s.operator_token().await;
        // Inside Paris; inside the hole of the area uploaded below.
        let token = register(s, &operator, "CS-H", 48.845, 2.345, 30.0).await;
        assert_eq!(nearby_ids(s, "lat=48.845&lon=2.345").await, ["CS-H"]);
        let holed = json!({
            "type": "FeatureCollection",
            "features": [
                {"type": "Feature", "properties": {"kind": "service_area", "name": "Holed"},
                 "geometry": {"type": "Polygon", "coordinates": [
                    [[2.30, 48.80], [2.40, 48.80], [2.40, 48.90], [2.30, 48.90], [2.30, 48.80]],
                    [[2.34, 48.84], [2.34, 48.85], [2.35, 48.85], [2.35, 48.84], [2.34, 48.84]]
                 ]}}
            ]
        });
        s.put("/v1/ops/zones", Some(&operator), holed)
            .await
            .expect(200);
        // At once (each candidate tested), and once the fleet is placed in the new area.
        assert!(nearby_ids(s, "lat=48.845&lon=2.345").await.is_empty());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(nearby_ids(s, "lat=48.845&lon=2.345").await.is_empty());
        // Out of the hole, it is offered again; back in, it is not.
        s.clock.advance(Duration::seconds(30));
        send(s, &token, vec![point(48.855, 2.345, 29.0, s.clock.now())])
            .await
            .expect(202);
        assert_eq!(nearby_ids(s, "lat=48.855&lon=2.345").await, ["CS-H"]);
        s.clock.advance(Duration::seconds(30));
        send(s, &token, vec![point(48.8451, 2.345, 28.0, s.clock.now())])
            .await
            .expect(202);
        assert!(nearby_ids(s, "lat=48.845&lon=2.345").await.is_empty());
    }

    pub async fn nearby_checks_its_query(s: &TestServer) {
        for query in [
            "",
            "lat=48.85",
            "lon=2.35",
            "lat=91&lon=2.35",
            "lat=48.85&lon=-180.5",
            "lat=abc&lon=2.35",
            "lat=NaN&lon=2.35",
            "lat=48.85&lon=inf",
            "lat=48.85&lon=2.35&radius_m=5001",
            "lat=48.85&lon=2.35&radius_m=0",
            "lat=48.85&lon=2.35&radius_m=-5",
            "lat=48.85&lon=2.35&limit=101",
            "lat=48.85&lon=2.35&limit=0",
            "lat=48.85&lon=2.35&limit=2.5",
            "lat=48.85&lon=2.35&min_range_km=-1",
            "lat=48.85&lon=2.35&colour=red",
        ] {
            let answer = s.get(&format!("/v1/scooters/nearby?{query}"), None).await;
            assert_eq!(answer.status.as_u16(), 400, "{query}: {}", answer.text);
            answer.expect_problem(400, "invalid_request");
        }
        s.get(
            "/v1/scooters/nearby?lat=48.85&lon=2.35&radius_m=5000&limit=100",
            None,
        )
        .await
        .expect(200);
    }

    pub async fn the_fleet_list_pages_through_every_scooter(s: &TestServer) {
        let operator = s.operator_token().await;
        for id in ["CS-3", "CS-1", "CS-5", "CS-2", "CS-4"] {
            register(s, &operator, id, PARIS.0, PARIS.1, 30.0).await;
        }
        let mut seen = Vec::new();
        let mut path = "/v1/ops/fleet?limit=2".to_owned();
        loop {
            let answer = s.get(&path, Some(&operator)).await;
            let body = answer.expect(200).clone();
            let page = body["scooters"].as_array().unwrap();
            assert!(page.len() <= 2);
            seen.extend(
                page.iter()
                    .map(|e| e["scooter_id"].as_str().unwrap().to_owned()),
            );
            match body["next"].as_str() {
                Some(next) => path = format!("/v1/ops/fleet?limit=2&after={next}"),
                None => break,
            }
        }
        assert_eq!(seen, ["CS-1", "CS-2", "CS-3", "CS-4", "CS-5"]);
        let all = s.get("/v1/ops/fleet", Some(&operator)).await;
        assert_eq!(all.expect(200)["scooters"].as_array().unwrap().len(), 5);
        assert!(all.body.get("next").is_none());
        let (_, rider) = s.signup("curious@example.com").await;
        s.get("/v1/ops/fleet", Some(&rider))
            .await
            .expect_problem(403, "forbidden");
        s.get("/v1/ops/fleet", None)
            .await
            .expect_problem(401, "unauthenticated");
        s.get("/v1/ops/fleet?limit=0", Some(&operator))
            .await
            .expect_problem(400, "invalid_request");
        s.get("/v1/ops/fleet?limit=many", Some(&operator))
            .await
            .expect_problem(400, "invalid_request");
    }

    pub async fn concurrent_requests_are_all_committed(s: &TestServer) {
        let operator = s.operator_token().await;
        let devices = register_devices(s, &operator, "CC", 10).await;
        let registered = s.clock.now();
        s.clock.advance(Duration::minutes(1));
        let sends = devices.iter().map(|(_, token)| async move {
            for k in 1..=5i64 {
                let at = registered + Duration::seconds(k);
                let batch = vec![point(48.86, 2.34 + k as f64 * 0.001, 20.0, at)];
                send(s, token, batch).await.expect(202);
            }
        });
        futures_join_all(sends).await;
        for (id, _) in &devices {
            assert_eq!(points_stored(s, id).await, 6, "{id}");
            // Each scooter shows its newest point, whichever writer took it.
            assert_eq!(fleet_entry(s, &operator, id).await["lon"], 2.345, "{id}");
        }
    }

    /// Batches of 1,000 points from eight devices at once, then the same batches again: the
    /// groups they make are large (on PostgreSQL committed in parts side by side), and every
    /// point is stored once, each scooter showing its newest.
    pub async fn large_batches_from_many_devices_are_each_stored_once(s: &TestServer) {
        let operator = s.operator_token().await;
        let devices = register_devices(s, &operator, "LB", 8).await;
        let registered = s.clock.now();
        s.clock.advance(Duration::minutes(30));
        // A first point each: dispatch learns every scooter (a group that calls on dispatch
        // stays one transaction).
        for (_, token) in &devices {
            let first = vec![point(48.86, 2.34, 30.0, registered + Duration::seconds(1))];
            send(s, token, first).await.expect(202);
        }
        let split_before = s.counter("scootfleet_telemetry_split_groups_total").await;
        let batch = |i: usize| -> Vec<serde_json::Value> {
            (2..1002i64)
                .map(|k| {
                    let lon = 2.30 + i as f64 * 0.01 + k as f64 * 0.00001;
                    point(48.86, lon, 30.0, registered + Duration::seconds(k))
                })
                .collect()
        };
        for _ in 0..2 {
            let sends = devices
                .iter()
                .enumerate()
                .map(|(i, (_, token))| async move {
                    send(s, token, batch(i)).await.expect(202);
                });
            futures_join_all(sends).await;
        }
        for (i, (id, _)) in devices.iter().enumerate() {
            assert_eq!(points_stored(s, id).await, 1002, "{id}");
            let lon = fleet_entry(s, &operator, id).await["lon"]
                .as_f64()
                .expect("lon");
            let newest = 2.30 + i as f64 * 0.01 + 1001.0 * 0.00001;
            assert!((lon - newest).abs() < 1e-9, "{id}: {lon} against {newest}");
        }
        if s.state.db.backend() == scootfleet::db::Backend::Postgres {
            assert!(
                s.counter("scootfleet_telemetry_split_groups_total").await > split_before,
                "no group of these batches was split"
            );
        }
    }

    /// `count` scooters `{prefix}-0`, `{prefix}-1` … registered in Paris, with their device
    /// tokens.
    async fn register_devices(
        s: &TestServer,
        operator: &str,
        prefix: &str,
        count: usize,
    ) -> Vec<(String, String)> {
        let mut devices = Vec::new();
        for i in 0..count {
            let id = format!("{prefix}-{i}");
            let token = register(s, operator, &id, PARIS.0, PARIS.1, 30.0).await;
            devices.push((id, token));
        }
        devices
    }

    pub async fn operators_take_scooters_out_of_service_and_back(s: &TestServer) {
        let operator = s.operator_token().await;
        register(s, &operator, "CS-M", PARIS.0, PARIS.1, 30.0).await;
        let event = |e: &str| json!({ "event": e });
        let path = "/v1/ops/scooters/CS-M/events";
        let answer = s.post(path, Some(&operator), event("maintenance")).await;
        let body = answer.expect(200);
        assert_eq!(
            (body["state"].as_str(), body["state_reason"].as_str()),
            (Some("non_operational"), Some("maintenance"))
        );
        // Not rentable, so not listed; the operators still see it.
        assert!(nearby_ids(s, "lat=48.8566&lon=2.3522").await.is_empty());
        let entry = fleet_entry(s, &operator, "CS-M").await;
        assert_eq!(
            (entry["state"].as_str(), entry["state_reason"].as_str()),
            (Some("non_operational"), Some("maintenance"))
        );
        s.post(path, Some(&operator), event("battery_charged"))
            .await
            .expect_problem(409, "transition_not_allowed");
        s.post(path, Some(&operator), event("maintenance_end"))
            .await
            .expect(200);
        assert_eq!(nearby_ids(s, "lat=48.8566&lon=2.3522").await, ["CS-M"]);
        s.post(path, Some(&operator), event("decommissioned"))
            .await
            .expect(200);
        assert_eq!(fleet_entry(s, &operator, "CS-M").await["state"], "removed");
        assert!(nearby_ids(s, "lat=48.8566&lon=2.3522").await.is_empty());

        s.post(
            "/v1/ops/scooters/CS-NONE/events",
            Some(&operator),
            event("maintenance"),
        )
        .await
        .expect_problem(404, "scooter_not_found");
        s.post(path, Some(&operator), event("trip_start"))
            .await
            .expect_problem(400, "invalid_request");
        let (_, rider) = s.signup("meddler@example.com").await;
        s.post(path, Some(&rider), event("agency_drop_off"))
            .await
            .expect_problem(403, "forbidden");
        s.post(path, Some(&operator), event("agency_drop_off"))
            .await
            .expect(200);
        assert_eq!(nearby_ids(s, "lat=48.8566&lon=2.3522").await, ["CS-M"]);
    }

    pub async fn the_fleet_endpoints_are_documented(s: &TestServer) {
        let doc = s.get("/openapi.json", None).await;
        let paths = doc.expect(200)["paths"].clone();
        for (path, method) in [
            ("/v1/ops/scooters", "post"),
            ("/v1/ops/scooters/{scooter_id}/events", "post"),
            ("/v1/ops/fleet", "get"),
            ("/v1/telemetry", "post"),
            ("/v1/scooters/nearby", "get"),
        ] {
            assert!(paths[path][method].is_object(), "{method} {path} missing");
        }
    }

    /// Drives all `futures` at once on this task, so their requests overlap.
    async fn futures_join_all<F: std::future::Future<Output = ()>>(
        futures: impl Iterator<Item = F>,
    ) {
        let mut pinned: Vec<_> = futures.map(Box::pin).collect();
        std::future::poll_fn(|cx| {
            pinned.retain_mut(|f| f.as_mut().poll(cx).is_pending());
            if pinned.is_empty() {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
    }
}

fn quick_config(database_url: &str) -> Config {
    let mut config = Config::for_database(database_url);
    config.db_max_connections = 8;
    config.operator_email = Some(OPERATOR_EMAIL.into());
    config.operator_password = Some(Secret::new(OPERATOR_PASSWORD));
    config.fleet_sweep_interval_ms = 50;
    config.silence_timeout_secs = 600;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_scooter_becomes_non_contactable_and_comes_back() {
    for backend in backends() {
        let s = TestServer::start_with(backend, |c| {
            c.fleet_sweep_interval_ms = 50;
            c.silence_timeout_secs = 600;
        })
        .await;
        let operator = s.operator_token().await;
        let quiet = register(&s, &operator, "QUIET", PARIS.0, PARIS.1, 30.0).await;
        let chatty = register(&s, &operator, "CHATTY", PARIS.0, 2.3523, 30.0).await;
        // Silent too, in one sweep: another available scooter, and one in maintenance,
        // which stays as it is (only an available scooter is marked).
        register(&s, &operator, "QUIET-2", 48.86, 2.35, 30.0).await;
        register(&s, &operator, "SERVICED", 48.86, 2.36, 30.0).await;
        s.post(
            "/v1/ops/scooters/SERVICED/events",
            Some(&operator),
            json!({ "event": "maintenance" }),
        )
        .await
        .expect(200);
        s.clock.advance(Duration::minutes(9));
        send(
            &s,
            &chatty,
            vec![point(PARIS.0, 2.3523, 29.0, s.clock.now())],
        )
        .await
        .expect(202);
        s.clock.advance(Duration::minutes(2));
        eventually("QUIET is non_contactable", || async {
            fleet_entry(&s, &operator, "QUIET").await["state"] == "non_contactable"
        })
        .await;
        assert_eq!(
            fleet_entry(&s, &operator, "CHATTY").await["state"],
            "available"
        );
        assert_eq!(
            fleet_entry(&s, &operator, "QUIET-2").await["state"],
            "non_contactable"
        );
        let serviced = fleet_entry(&s, &operator, "SERVICED").await;
        assert_eq!(
            (
                serviced["state"].as_str(),
                serviced["state_reason"].as_str()
            ),
            (Some("non_operational"), Some("maintenance"))
        );
        assert_eq!(nearby_ids(&s, "lat=48.8566&lon=2.3522").await, ["CHATTY"]);

        let commits = sqlite_log(&s).map(|log| log.commits());
        send(
            &s,
            &quiet,
            vec![point(PARIS.0, PARIS.1, 28.0, s.clock.now())],
        )
        .await
        .expect(202);
        if let (Some(log), Some(commits)) = (sqlite_log(&s), commits) {
            // The point's commit and the state change's after it: the 202 waited for a sync
            // covering both, not only the point's.
            assert!(
                log.synced() >= commits + 2,
                "synced {} of {} commits",
                log.synced(),
                commits + 2
            );
        }
        assert_eq!(
            fleet_entry(&s, &operator, "QUIET").await["state"],
            "available"
        );
        assert_eq!(
            nearby_ids(&s, "lat=48.8566&lon=2.3522").await,
            ["QUIET", "CHATTY"]
        );
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_rebuilds_the_live_index() {
    for backend in backends() {
        let first = TestServer::start(backend).await;
        let operator = first.operator_token().await;
        let token = register(&first, &operator, "CS-R", PARIS.0, PARIS.1, 30.0).await;
        register(&first, &operator, "CS-S", 48.8584, 2.2945, 30.0).await;
        first.clock.advance(Duration::seconds(20));
        send(
            &first,
            &token,
            vec![point(48.8600, 2.3400, 22.0, first.clock.now())],
        )
        .await
        .expect(202);
        let database = first.stop_keeping_database().await;

        let config = quick_config(&database.url);
        let second = TestServer::start_on(backend, database, config).await;
        // Rebuilt from the database: the last position, and the device token still works.
        assert_eq!(
            nearby_ids(&second, "lat=48.8600&lon=2.3400").await,
            ["CS-R"]
        );
        assert_eq!(
            nearby_ids(&second, "lat=48.8584&lon=2.2945").await,
            ["CS-S"]
        );
        let operator = second.operator_token().await;
        let entry = fleet_entry(&second, &operator, "CS-R").await;
        assert_eq!(
            (entry["range_km"].as_f64(), entry["state"].as_str()),
            (Some(22.0), Some("available"))
        );
        second.clock.advance(Duration::seconds(60));
        send(
            &second,
            &token,
            vec![point(48.8610, 2.3410, 21.0, second.clock.now())],
        )
        .await
        .expect(202);
        assert_eq!(
            nearby_ids(&second, "lat=48.8610&lon=2.3410&radius_m=50").await,
            ["CS-R"]
        );
        second
            .post(
                "/v1/ops/scooters",
                Some(&operator),
                json!({"scooter_id": "CS-R", "lat": 48.0, "lon": 2.0, "range_km": 10, "battery_pct": 50}),
            )
            .await
            .expect_problem(409, "scooter_exists");
        second.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_past_its_retention_is_deleted() {
    for backend in backends() {
        let s = TestServer::start_with(backend, |c| {
            c.telemetry_retention_days = 2;
            c.telemetry_retention_interval_secs = 1;
        })
        .await;
        let operator = s.operator_token().await;
        let token = register(&s, &operator, "OLD", PARIS.0, PARIS.1, 30.0).await;
        let now = s.clock.now();
        send(
            &s,
            &token,
            vec![
                point(48.85, 2.35, 30.0, now - Duration::days(3)),
                point(48.85, 2.35, 30.0, now - Duration::days(1)),
            ],
        )
        .await
        .expect(202);
        eventually("the three-day-old point is deleted", || async {
            points_stored(&s, "OLD").await == 2
        })
        .await;
        s.stop().await;
    }
}

/// The broker MQTT tests use: `SCOOTFLEET_TEST_MQTT`, or a local Mosquitto if one answers.
async fn test_broker() -> Option<String> {
    if let Ok(url) = std::env::var("SCOOTFLEET_TEST_MQTT") {
        return Some(url);
    }
    match tokio::net::TcpStream::connect("127.0.0.1:1883").await {
        Ok(_) => Some("mqtt://127.0.0.1:1883".into()),
        Err(_) => {
            eprintln!("no MQTT broker on 127.0.0.1:1883: MQTT test skipped");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_arrives_over_mqtt() {
    use rumqttc::{AsyncClient, MqttOptions, QoS};
    let Some(broker) = test_broker().await else {
        return;
    };
    for backend in backends() {
        let run = scootfleet::ids::new_secret(8);
        let server_url = format!("{broker}?client_id=sf-test-{run}");
        let s = TestServer::start_with(backend, |c| {
            c.mqtt_url = Some(Secret::new(server_url));
        })
        .await;
        let operator = s.operator_token().await;
        let id = format!("MQ-{run}");
        register(&s, &operator, &id, PARIS.0, PARIS.1, 30.0).await;

        let mut options = MqttOptions::parse_url(format!("{broker}?client_id=sf-device-{run}"))
            .expect("device options");
        options.set_keep_alive(std::time::Duration::from_secs(5));
        let (device, mut events) = AsyncClient::new(options, 64);
        let pump = tokio::spawn(async move { while events.poll().await.is_ok() {} });
        let topic = format!("scootfleet/scooters/{id}/telemetry");
        let publish = |points: Vec<serde_json::Value>| {
            let device = device.clone();
            let topic = topic.clone();
            async move {
                let payload = serde_json::to_vec(&json!({ "points": points })).unwrap();
                device
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .expect("publish");
            }
        };

        s.clock.advance(Duration::seconds(30));
        let t1 = s.clock.now();
        // The server subscribes in the background: publish until it has listened.
        eventually("the first MQTT point is applied", || async {
            publish(vec![point(48.8600, 2.3400, 25.0, t1)]).await;
            fleet_entry(&s, &operator, &id).await["lat"] == 48.86
        })
        .await;
        assert_eq!(
            nearby_ids(&s, "lat=48.8600&lon=2.3400&radius_m=50").await,
            vec![id.clone()]
        );

        // An invalid batch is refused whole; the next valid one goes through.
        let mut bad = point(48.8700, 2.3500, 25.0, t1 + Duration::seconds(2));
        bad["lat"] = json!(95.0);
        publish(vec![
            point(48.8650, 2.3450, 25.0, t1 + Duration::seconds(1)),
            bad,
        ])
        .await;
        publish(vec![point(
            48.8610,
            2.3410,
            24.0,
            t1 + Duration::seconds(3),
        )])
        .await;
        eventually("the second valid MQTT point is applied", || async {
            fleet_entry(&s, &operator, &id).await["lat"] == 48.861
        })
        .await;
        assert_eq!(points_stored(&s, &id).await, 3);
        // Unknown scooters are ignored.
        device
            .publish(
                format!("scootfleet/scooters/NOBODY-{run}/telemetry"),
                QoS::AtLeastOnce,
                false,
                b"{}".to_vec(),
            )
            .await
            .expect("publish");
        pump.abort();
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_fleet_imports() {
    for backend in backends() {
        let database = common::TestDatabase::create(backend).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let tokens = dir.path().join("tokens.csv");
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo-fleet.csv");
        let config = quick_config(&database.url);
        let summary = scootfleet::fleet::import::run(
            &config,
            fixture.as_ref(),
            Some(tokens.clone()),
            false,
            chrono::Utc::now(),
        )
        .await
        .expect("import");
        assert!(
            summary.contains("500 scooters registered, 0 already known"),
            "{summary}"
        );
        let again = scootfleet::fleet::import::run(
            &config,
            fixture.as_ref(),
            Some(dir.path().join("again.csv")),
            false,
            chrono::Utc::now(),
        )
        .await
        .expect("import again");
        assert!(
            again.contains("0 scooters registered, 500 already known"),
            "{again}"
        );
        assert!(
            scootfleet::fleet::import::run(
                &config,
                fixture.as_ref(),
                Some(tokens.clone()),
                false,
                chrono::Utc::now()
            )
            .await
            .is_err(),
            "an existing tokens file is never overwritten"
        );

        // The import used the real clock; no silence sweep before the test's clock follows.
        let mut config = quick_config(&database.url);
        config.fleet_sweep_interval_ms = 3_600_000;
        let s = TestServer::start_on(backend, database, config).await;
        s.clock.set(chrono::Utc::now());
        let operator = s.operator_token().await;
        // Real time may be outside the default hours, when nearby lists nothing.
        s.put(
            "/v1/ops/hours",
            Some(&operator),
            json!({"timezone": "Europe/Paris", "open": "00:00", "close": "24:00"}),
        )
        .await
        .expect(200);
        let page = s.get("/v1/ops/fleet?limit=5000", Some(&operator)).await;
        assert_eq!(page.expect(200)["scooters"].as_array().unwrap().len(), 500);
        // PAR-0002 stands at 48.823825, 2.356574 with 27.4 km.
        // The hours sweep may have put the fleet to sleep before the hours changed.
        eventually("PAR-0002 is offered", || async {
            nearby_ids(&s, "lat=48.823825&lon=2.356574&radius_m=10").await == ["PAR-0002"]
        })
        .await;
        let tokens = std::fs::read_to_string(&tokens).expect("tokens file");
        let line = tokens
            .lines()
            .find(|l| l.starts_with("PAR-0002,"))
            .expect("token of PAR-0002");
        let token = line.split_once(',').unwrap().1;
        s.clock.advance(Duration::seconds(5));
        send(&s, token, vec![point(48.8240, 2.3570, 27.0, s.clock.now())])
            .await
            .expect(202);
        assert_eq!(fleet_entry(&s, &operator, "PAR-0002").await["lat"], 48.824);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_takes_in_scooters_imported_meanwhile() {
    for backend in backends() {
        let s = TestServer::start_with(backend, |c| c.fleet_sweep_interval_ms = 20).await;
        let operator = s.operator_token().await;
        register(&s, &operator, "HTTP-1", PARIS.0, PARIS.1, 30.0).await;
        let db = scootfleet::db::Db::connect(&s.database.url, 1)
            .await
            .expect("database");
        let rows = scootfleet::fleet::import::parse(
            "scooter_id,lat,lon,range_km,battery_pct\nIMP-1,48.8570,2.3522,25,70\nHTTP-1,48.0,2.0,25,70\n",
        )
        .expect("rows");
        let mut tokens = Vec::new();
        let imported =
            scootfleet::fleet::import::register_all(&db, &rows, s.clock.now(), &mut tokens, |_| {})
                .await
                .expect("import");
        db.close().await;
        assert_eq!((imported.registered, imported.already_known), (1, 1));
        eventually("the imported scooter is listed", || async {
            nearby_ids(&s, "lat=48.8566&lon=2.3522").await == ["HTTP-1", "IMP-1"]
        })
        .await;
        let tokens = String::from_utf8(tokens).expect("utf-8");
        let token = tokens
            .lines()
            .nth(1)
            .and_then(|l| l.strip_prefix("IMP-1,"))
            .expect("token");
        s.clock.advance(Duration::seconds(1));
        send(&s, token, vec![point(48.8571, 2.3522, 24.0, s.clock.now())])
            .await
            .expect(202);
        s.stop().await;
    }
}

/// With several telemetry writers (PostgreSQL; SQLite keeps one whatever is configured),
/// every point is still stored once, each scooter's points in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_telemetry_writers_store_every_point_once() {
    for backend in backends() {
        let s = TestServer::start_with(backend, |c| c.telemetry_writers = Some(3)).await;
        scenarios::concurrent_requests_are_all_committed(&s).await;
        scenarios::late_and_repeated_points_are_stored_once_and_never_move_back(&s).await;
        s.stop().await;
    }
}

/// The log sync of a SQLite file database; `None` on PostgreSQL.
fn sqlite_log(s: &TestServer) -> Option<&scootfleet::db::LogSync> {
    match &s.state.db {
        scootfleet::db::Db::Sqlite { log, .. } => log.as_deref(),
        _ => None,
    }
}

/// On SQLite (by default) a write is answered only after a sync of the log that covers it;
/// a read is answered without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_answers_a_write_after_syncing_its_log() {
    let s = TestServer::start(scootfleet::db::Backend::Sqlite).await;
    let scootfleet::db::Db::Sqlite { log: Some(log), .. } = &s.state.db else {
        panic!("a SQLite file database syncs its log for its answers");
    };
    let operator = s.operator_token().await;
    let before = log.syncs();
    let commits = log.commits();
    let token = register(&s, &operator, "SY-1", PARIS.0, PARIS.1, 30.0).await;
    let registered = log.syncs();
    assert!(registered > before, "the registration waited for a sync");
    assert!(
        log.commits() > commits,
        "the write connection counts its commits"
    );
    let at = s.clock.now() + Duration::seconds(1);
    send(&s, &token, vec![point(PARIS.0, PARIS.1, 29.0, at)])
        .await
        .expect(202);
    let sent = log.syncs();
    assert!(sent > registered, "the telemetry waited for a sync");
    let query = format!("lat={}&lon={}&radius_m=100", PARIS.0, PARIS.1);
    assert_eq!(nearby_ids(&s, &query).await, ["SY-1"]);
    assert_eq!(log.syncs(), sent, "a read waits for no sync");
    s.stop().await;
}
