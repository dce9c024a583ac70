//! Zones and operating hours, through HTTP on every backend.

mod common;

on_both_backends!(
    paris_and_neuilly_apply_until_zones_are_uploaded,
    positions_are_checked_against_the_zones_in_force,
    an_upload_becomes_the_new_version,
    invalid_zone_sets_are_refused_with_a_reason,
    zones_are_for_operators,
    hours_are_set_and_read,
    invalid_hours_are_refused,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_and_hours_survive_a_restart() {
    for backend in common::backends() {
        let server = common::TestServer::start(backend).await;
        scenarios::set_zones_and_hours_before_restart(&server).await;
        let database = server.stop_keeping_database().await;
        let mut config = scootfleet::config::Config::for_database(&database.url);
        config.operator_email = Some(common::OPERATOR_EMAIL.into());
        config.operator_password = Some(scootfleet::config::Secret::new(common::OPERATOR_PASSWORD));
        let server = common::TestServer::start_on(backend, database, config).await;
        scenarios::zones_and_hours_are_back_after_restart(&server).await;
        server.stop().await;
    }
}

/// Two servers on one database: what one accepts, the other puts in force by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_sharing_a_database_follow_each_other() {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    for backend in common::backends() {
        let first = common::TestServer::start_with(backend, |c| c.zones_refresh_ms = 50).await;
        let mut config = scootfleet::config::Config::for_database(&first.database.url);
        config.zones_refresh_ms = 50;
        let clock = Arc::new(scootfleet::clock::ManualClock::new(common::default_now()));
        let state = scootfleet::app::build_state(config, clock)
            .await
            .expect("second server");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let second = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(scootfleet::app::serve(listener, state, async {
            let _ = stopped.await;
        }));

        let token = first.operator_token().await;
        scenarios::set_zones_and_hours_before_restart(&first).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let zones: serde_json::Value = first
                .http
                .get(format!("{second}/v1/zones"))
                .send()
                .await
                .expect("sent")
                .json()
                .await
                .expect("json");
            let hours: serde_json::Value = first
                .http
                .get(format!("{second}/v1/ops/hours"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("sent")
                .json()
                .await
                .expect("json");
            if zones["version"] == 2 && hours["timezone"] == "Europe/Berlin" {
                assert_eq!(zones["name"], "Small town");
                assert_eq!(hours["open"], "06:30");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the second server never caught up: {zones} {hours}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }

        let _ = stop.send(());
        task.await
            .expect("second server task")
            .expect("second server stopped cleanly");
        first.stop().await;
    }
}

mod scenarios {
    use serde_json::{json, Value};

    use crate::common::*;

    /// A small town: one square service area with a hole, a no-parking zone and a slow zone.
    fn small_town() -> Value {
        json!({
            "type": "FeatureCollection",
            "name": "Small town",
            "features": [
                {"type": "Feature", "id": "town", "properties": {"kind": "service_area", "name": "Town"},
                 "geometry": {"type": "Polygon", "coordinates": [
                    [[2.30, 48.80], [2.40, 48.80], [2.40, 48.90], [2.30, 48.90], [2.30, 48.80]],
                    [[2.34, 48.84], [2.34, 48.85], [2.35, 48.85], [2.35, 48.84], [2.34, 48.84]]
                 ]}},
                {"type": "Feature", "properties": {"kind": "no_parking", "name": "Square"},
                 "geometry": {"type": "Polygon", "coordinates": [
                    [[2.31, 48.81], [2.32, 48.81], [2.32, 48.82], [2.31, 48.82], [2.31, 48.81]]
                 ]}},
                {"type": "Feature", "properties": {"kind": "slow", "max_speed_kmh": 12},
                 "geometry": {"type": "MultiPolygon", "coordinates": [
                    [[[2.36, 48.86], [2.37, 48.86], [2.37, 48.87], [2.36, 48.87], [2.36, 48.86]]]
                 ]}}
            ]
        })
    }

    pub async fn paris_and_neuilly_apply_until_zones_are_uploaded(s: &TestServer) {
        let token = s.operator_token().await;
        let answer = s.get("/v1/ops/zones", Some(&token)).await;
        let zones = answer.expect(200);
        assert_eq!(zones["type"], "FeatureCollection");
        assert_eq!(zones["version"], 1);
        let features = zones["features"].as_array().expect("features");
        let kinds: Vec<&str> = features
            .iter()
            .map(|f| f["properties"]["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.iter().filter(|k| **k == "service_area").count(), 1);
        assert!(kinds.iter().filter(|k| **k == "no_parking").count() >= 3);
        assert!(kinds.contains(&"slow"));

        let public = s.get("/v1/zones", None).await;
        assert_eq!(public.expect(200), zones);

        let versions = s.get("/v1/ops/zones/versions", Some(&token)).await;
        let versions = versions.expect(200)["versions"].as_array().unwrap().clone();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0]["version"], 1);
        assert_eq!(versions[0]["current"], true);
        assert_eq!(versions[0]["created_by"], Value::Null);
    }

    pub async fn positions_are_checked_against_the_zones_in_force(s: &TestServer) {
        let at = |lat: f64, lon: f64| format!("/v1/zones/at?lat={lat}&lon={lon}");
        // The defaults: Notre-Dame, the Arc de Triomphe, the Champs-Élysées, La Défense.
        let notre_dame = s.get(&at(48.8530, 2.3499), None).await;
        let notre_dame = notre_dame.expect(200);
        assert_eq!(notre_dame["in_service_area"], true);
        assert_eq!(notre_dame["parking_allowed"], true);
        assert_eq!(notre_dame["speed_limit_kmh"], Value::Null);
        assert_eq!(notre_dame["version"], 1);
        let arc = s.get(&at(48.8738, 2.2950), None).await;
        let arc = arc.expect(200);
        assert_eq!(arc["in_service_area"], true);
        assert_eq!(arc["parking_allowed"], false);
        assert!(arc["no_parking_zone"]
            .as_str()
            .unwrap()
            .contains("Charles-de-Gaulle"));
        let champs = s.get(&at(48.8698, 2.3077), None).await;
        assert_eq!(champs.expect(200)["speed_limit_kmh"], 10.0);
        let defense = s.get(&at(48.8920, 2.2380), None).await;
        let defense = defense.expect(200);
        assert_eq!(defense["in_service_area"], false);
        assert_eq!(defense["parking_allowed"], false);

        // The small town: its hole, and 10 m outside its border (the 15 m tolerance).
        let token = s.operator_token().await;
        s.put("/v1/ops/zones", Some(&token), small_town())
            .await
            .expect(200);
        let hole = s.get(&at(48.845, 2.345), None).await;
        let hole = hole.expect(200);
        assert_eq!(hole["in_service_area"], false);
        assert_eq!(hole["version"], 2);
        let just_out = s.get(&at(48.80 - 10.0 / 111_320.0, 2.35), None).await;
        let just_out = just_out.expect(200);
        assert_eq!(just_out["in_service_area"], false);
        assert_eq!(just_out["parking_allowed"], true);
        let slow = s.get(&at(48.865, 2.365), None).await;
        assert_eq!(slow.expect(200)["speed_limit_kmh"], 12.0);

        for query in [
            "lat=91&lon=2",
            "lat=48.8&lon=NaN",
            "lat=48.8",
            "lat=a&lon=2",
            "lat=48.8&lon=2&x=1",
        ] {
            s.get(&format!("/v1/zones/at?{query}"), None)
                .await
                .expect_problem(400, "invalid_request");
        }
    }

    pub async fn an_upload_becomes_the_new_version(s: &TestServer) {
        let token = s.operator_token().await;
        let answer = s.put("/v1/ops/zones", Some(&token), small_town()).await;
        let body = answer.expect(200);
        assert_eq!(body["version"], 2);
        assert_eq!(body["feature_count"], 3);
        assert_eq!(body["current"], true);
        assert_eq!(body["created_at"], "2026-11-23T10:00:00Z");

        let zones = s.get("/v1/ops/zones", Some(&token)).await;
        let zones = zones.expect(200);
        assert_eq!(zones["version"], 2);
        assert_eq!(zones["name"], "Small town", "foreign members are kept");
        assert_eq!(zones["features"], small_town()["features"]);
        assert_eq!(s.get("/v1/zones", None).await.expect(200)["version"], 2);

        let versions = s.get("/v1/ops/zones/versions", Some(&token)).await;
        let versions = versions.expect(200)["versions"].as_array().unwrap().clone();
        let numbers: Vec<i64> = versions
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect();
        assert_eq!(numbers, [2, 1], "newest first, the defaults kept");
        assert_eq!(versions[0]["current"], true);
        assert_eq!(versions[1]["current"], false);
        assert!(versions[0]["created_by"]
            .as_str()
            .is_some_and(|id| !id.is_empty()));

        let first = s.get("/v1/ops/zones/versions/1", Some(&token)).await;
        let first = first.expect(200);
        assert_eq!(first["version"], 1);
        assert_eq!(first["name"], "Paris and Neuilly-sur-Seine");
        let second = s.get("/v1/ops/zones/versions/2", Some(&token)).await;
        assert_eq!(second.expect(200)["features"], small_town()["features"]);
        s.get("/v1/ops/zones/versions/3", Some(&token))
            .await
            .expect_problem(404, "not_found");
        s.get("/v1/ops/zones/versions/latest", Some(&token))
            .await
            .expect_problem(400, "invalid_request");

        // A refused upload changes nothing.
        let mut broken = small_town();
        broken["features"][1]["properties"]["kind"] = json!("parking");
        s.put("/v1/ops/zones", Some(&token), broken)
            .await
            .expect_problem(422, "invalid_geojson");
        assert_eq!(s.get("/v1/zones", None).await.expect(200)["version"], 2);
        let versions = s.get("/v1/ops/zones/versions", Some(&token)).await;
        assert_eq!(
            versions.expect(200)["versions"].as_array().unwrap().len(),
            2
        );
    }

    /// A way to break a valid zone set.
    type Spoil = fn(&mut Value);

    pub async fn invalid_zone_sets_are_refused_with_a_reason(s: &TestServer) {
        let token = s.operator_token().await;
        let cases: Vec<(&str, Spoil)> = vec![
            ("not closed", |z| {
                z["features"][1]["geometry"]["coordinates"][0][4] = json!([2.31, 48.815])
            }),
            ("has 3 positions", |z| {
                z["features"][1]["geometry"]["coordinates"][0] =
                    json!([[2.31, 48.81], [2.32, 48.81], [2.31, 48.81]])
            }),
            ("out-of-range", |z| {
                z["features"][1]["geometry"]["coordinates"][0][1] = json!([2.32, 91.0])
            }),
            ("unknown kind", |z| {
                z["features"][1]["properties"]["kind"] = json!("parking")
            }),
            ("properties.kind is missing", |z| {
                z["features"][1]["properties"] = json!({"name": "Square"})
            }),
            ("max_speed_kmh", |z| {
                z["features"][2]["properties"]
                    .as_object_mut()
                    .unwrap()
                    .remove("max_speed_kmh");
            }),
            (
                "LineString",
                |z| {
                    z["features"][1]["geometry"] =
                        json!({"type": "LineString", "coordinates": [[2.31, 48.81], [2.32, 48.81]]})
                },
            ),
            ("hole 1 is not closed", |z| {
                z["features"][0]["geometry"]["coordinates"][1][4] = json!([2.341, 48.84])
            }),
            ("no feature of kind service_area", |z| {
                z["features"].as_array_mut().unwrap().remove(0);
            }),
            ("self-intersection", |z| {
                z["features"][1]["geometry"]["coordinates"][0] = json!([
                    [2.31, 48.81],
                    [2.32, 48.82],
                    [2.32, 48.81],
                    [2.31, 48.82],
                    [2.31, 48.81]
                ])
            }),
            ("FeatureCollection", |z| z["type"] = json!("Feature")),
        ];
        for (reason, spoil) in cases {
            let mut zones = small_town();
            spoil(&mut zones);
            let answer = s.put("/v1/ops/zones", Some(&token), zones).await;
            answer.expect_problem(422, "invalid_geojson");
            let detail = answer.body["detail"].as_str().unwrap();
            assert!(detail.contains(reason), "{reason}: {detail}");
        }
        // Not JSON at all is a malformed request, not a bad map.
        let answer = s
            .http
            .put(s.url("/v1/ops/zones"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body("{\"type\": \"FeatureCollection\", ")
            .send()
            .await
            .expect("sent");
        TestServer::answer(answer)
            .await
            .expect_problem(400, "invalid_request");
        // GeoJSON's own media type is welcome.
        let answer = s
            .http
            .put(s.url("/v1/ops/zones"))
            .bearer_auth(&token)
            .header("content-type", "application/geo+json")
            .body(small_town().to_string())
            .send()
            .await
            .expect("sent");
        TestServer::answer(answer).await.expect(200);
        let versions = s.get("/v1/ops/zones/versions", Some(&token)).await;
        assert_eq!(
            versions.expect(200)["versions"].as_array().unwrap().len(),
            2
        );
    }

    pub async fn zones_are_for_operators(s: &TestServer) {
        let (_, rider) = s.signup("rider@example.com").await;
        s.put("/v1/ops/zones", Some(&rider), small_town())
            .await
            .expect_problem(403, "forbidden");
        s.get("/v1/ops/zones", Some(&rider))
            .await
            .expect_problem(403, "forbidden");
        s.get("/v1/ops/zones/versions", Some(&rider))
            .await
            .expect_problem(403, "forbidden");
        s.get("/v1/ops/zones/versions/1", Some(&rider))
            .await
            .expect_problem(403, "forbidden");
        s.put(
            "/v1/ops/hours",
            Some(&rider),
            json!({"timezone": "Europe/Paris", "open": "06:00", "close": "22:00"}),
        )
        .await
        .expect_problem(403, "forbidden");
        s.get("/v1/ops/hours", Some(&rider))
            .await
            .expect_problem(403, "forbidden");
        s.put("/v1/ops/zones", None, small_town())
            .await
            .expect_problem(401, "unauthenticated");
        s.get("/v1/ops/hours", None)
            .await
            .expect_problem(401, "unauthenticated");
        // Nothing changed.
        assert_eq!(s.get("/v1/zones", None).await.expect(200)["version"], 1);
        assert_eq!(s.get("/v1/hours", None).await.expect(200)["open"], "07:00");
    }

    pub async fn hours_are_set_and_read(s: &TestServer) {
        let token = s.operator_token().await;
        // Monday 23 November 2026, 11:00 in Paris.
        let hours = s.get("/v1/ops/hours", Some(&token)).await;
        let hours = hours.expect(200);
        assert_eq!(hours["timezone"], "Europe/Paris");
        assert_eq!(hours["open"], "07:00");
        assert_eq!(hours["close"], "23:00");
        assert_eq!(hours["opening_hours"], "Mo-Su 07:00-23:00");
        assert_eq!(hours["open_now"], true);
        assert_eq!(hours["next_change_at"], "2026-11-23T22:00:00Z");

        let answer = s
            .put(
                "/v1/ops/hours",
                Some(&token),
                json!({"timezone": "Europe/Paris", "open": "22:00", "close": "02:00"}),
            )
            .await;
        let body = answer.expect(200);
        assert_eq!(body["open"], "22:00");
        assert_eq!(body["close"], "02:00");
        assert_eq!(body["open_now"], false);
        assert_eq!(body["next_change_at"], "2026-11-23T21:00:00Z");
        assert_eq!(
            s.get("/v1/ops/hours", Some(&token)).await.expect(200)["open"],
            "22:00"
        );

        s.clock.set(at("2026-11-23T23:30:00Z"));
        let public = s.get("/v1/hours", None).await;
        let public = public.expect(200);
        assert_eq!(public["open_now"], true, "00:30 in Paris");
        assert_eq!(public["next_change_at"], "2026-11-24T01:00:00Z");

        let answer = s
            .put(
                "/v1/ops/hours",
                Some(&token),
                json!({"timezone": "America/New_York", "open": "00:00", "close": "24:00"}),
            )
            .await;
        let body = answer.expect(200);
        assert_eq!(body["opening_hours"], "24/7");
        assert_eq!(body["open_now"], true);
        assert_eq!(body["next_change_at"], Value::Null);
    }

    pub async fn invalid_hours_are_refused(s: &TestServer) {
        let token = s.operator_token().await;
        for body in [
            json!({"timezone": "Europe/Paris", "open": "07:00", "close": "07:00"}),
            json!({"timezone": "Mars/Olympus_Mons", "open": "07:00", "close": "23:00"}),
            json!({"timezone": "Europe/Paris", "open": "7h", "close": "23:00"}),
            json!({"timezone": "Europe/Paris", "open": "07:00", "close": "24:30"}),
            json!({"timezone": "Europe/Paris", "open": "24:00", "close": "07:00"}),
        ] {
            s.put("/v1/ops/hours", Some(&token), body.clone())
                .await
                .expect_problem(422, "invalid_hours");
        }
        for body in [
            json!({"timezone": "Europe/Paris", "open": "07:00", "close": "23:00", "days": "Mo-Fr"}),
            json!({"timezone": "Europe/Paris", "open": "07:00"}),
            json!({"timezone": "Europe/Paris", "open": 7, "close": 23}),
        ] {
            s.put("/v1/ops/hours", Some(&token), body)
                .await
                .expect_problem(400, "invalid_request");
        }
        let hours = s.get("/v1/ops/hours", Some(&token)).await;
        assert_eq!(
            hours.expect(200)["opening_hours"],
            "Mo-Su 07:00-23:00",
            "unchanged"
        );
    }

    pub async fn set_zones_and_hours_before_restart(s: &TestServer) {
        let token = s.operator_token().await;
        s.put("/v1/ops/zones", Some(&token), small_town())
            .await
            .expect(200);
        s.put(
            "/v1/ops/hours",
            Some(&token),
            json!({"timezone": "Europe/Berlin", "open": "06:30", "close": "21:15"}),
        )
        .await
        .expect(200);
    }

    pub async fn zones_and_hours_are_back_after_restart(s: &TestServer) {
        let token = s.operator_token().await;
        let zones = s.get("/v1/ops/zones", Some(&token)).await;
        let zones = zones.expect(200);
        assert_eq!(zones["version"], 2);
        assert_eq!(zones["features"], small_town()["features"]);
        let versions = s.get("/v1/ops/zones/versions", Some(&token)).await;
        assert_eq!(
            versions.expect(200)["versions"].as_array().unwrap().len(),
            2,
            "defaults not stored twice"
        );
        let hours = s.get("/v1/ops/hours", Some(&token)).await;
        let hours = hours.expect(200);
        assert_eq!(hours["timezone"], "Europe/Berlin");
        assert_eq!(hours["open"], "06:30");
        assert_eq!(hours["close"], "21:15");
    }
}
