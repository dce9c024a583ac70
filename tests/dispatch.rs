//! Battery-swap dispatch through HTTP on every backend: tasks from low-range reports, the
//! nearest crew, decline and timeout, the lifecycle, operators' tools and the numbers.
//!
//! Low-range reports are made by calling the fleet's entry point on the server's state.

mod common;

use common::{backends, TestServer};

on_both_backends!(
    one_task_per_scooter_under_concurrent_reports,
    hysteresis_holds_back_new_tasks_until_rearmed,
    the_nearest_crew_with_batteries_gets_the_task,
    declining_passes_the_task_on,
    an_unaccepted_task_times_out_to_the_next_crew,
    only_the_assigned_crew_acts_on_a_task,
    completing_uses_a_battery_and_rearms_the_scooter,
    operators_list_reassign_and_cancel,
    kpis_report_the_steps,
    crew_inputs_are_checked,
    tasks_come_in_tour_order,
    going_unavailable_hands_back_unaccepted_tasks,
    a_burst_fills_the_nearest_vans_and_leaves_the_rest_open,
    a_low_point_through_telemetry_is_assigned_before_its_answer,
    concurrent_low_points_on_two_servers_make_one_task_per_scooter,
    a_task_its_crew_can_no_longer_take_goes_to_the_next_crew,
    a_point_back_above_the_margin_rearms_the_scooter,
);

/// With the worker's sweep out of the way, what a crew receives on becoming available is
/// exactly the offer made to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crew_becoming_available_receives_the_most_urgent_tasks_near_it() {
    for backend in backends() {
        eprintln!(
            "a_crew_becoming_available_receives_the_most_urgent_tasks_near_it on {backend:?}"
        );
        let server = TestServer::start_with(backend, |config| {
            config.dispatch.sweep_interval_ms = 3_600_000;
        })
        .await;
        scenarios::a_crew_becoming_available_receives_the_most_urgent_tasks_near_it(&server).await;
        server.stop().await;
    }
}

mod scenarios {
    use scootfleet::clock::Clock;
    use scootfleet::dispatch::{on_scooter_report, ReportOutcome, ScooterReport};
    use serde_json::json;

    use crate::common::dispatch::*;
    use crate::common::*;

    pub async fn one_task_per_scooter_under_concurrent_reports(s: &TestServer) {
        let op = s.operator_token().await;
        // A second server on the same database, with its own memory.
        let other = scootfleet::app::build_state(
            scootfleet::config::Config::for_database(&s.database.url),
            s.clock.clone(),
        )
        .await
        .expect("second server");
        let states = [s.state.clone(), other];
        let mut reports = Vec::new();
        for scooter in 0..5 {
            for attempt in 0..12 {
                let state = states[attempt % 2].clone();
                let report = ScooterReport {
                    scooter_id: format!("CS-{scooter:04}"),
                    lat: CENTER.0,
                    lon: CENTER.1,
                    range_km: 9.5 - attempt as f64 * 0.01,
                    on_trip: false,
                    at: s.clock.now(),
                };
                reports.push(tokio::spawn(async move {
                    on_scooter_report(&state, report).await
                }));
            }
        }
        let mut created = 0;
        for report in reports {
            match report.await.expect("joined").expect("report handled") {
                ReportOutcome::TaskCreated { .. } => created += 1,
                ReportOutcome::AlreadyHandled | ReportOutcome::Nothing => {}
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        assert_eq!(created, 5, "one task per scooter");
        let tasks = s.ops_tasks(&op, Some("open")).await;
        assert_eq!(tasks.len(), 5, "{tasks:?}");
        let mut scooters: Vec<_> = tasks.iter().map(|t| t["scooter_id"].clone()).collect();
        scooters.dedup();
        assert_eq!(scooters.len(), 5);
        let task = &tasks[0];
        assert_eq!(task["kind"], "battery_swap");
        assert_eq!(task["status"], "open");
        assert!(task["crew_id"].is_null(), "no crew yet: {task}");
        assert!(task["created_at"].as_str().unwrap().ends_with('Z'));
        states[1].db.close().await;
    }

    pub async fn hysteresis_holds_back_new_tasks_until_rearmed(s: &TestServer) {
        let op = s.operator_token().await;
        // Registered: that it is armed is remembered in its record in the live index.
        crate::common::fleet::register(s, &op, "CS-0001", CENTER.0, CENTER.1, 30.0).await;
        // Well above the threshold: nothing to do, from memory after the first time.
        assert_eq!(
            s.report("CS-0001", CENTER, 40.0).await,
            ReportOutcome::Rearmed
        );
        assert_eq!(
            s.report("CS-0001", CENTER, 39.0).await,
            ReportOutcome::Nothing
        );
        // On a trip: the task waits for the trip's end.
        assert_eq!(
            s.report_with("CS-0001", CENTER, 9.0, true).await,
            ReportOutcome::Nothing
        );
        assert!(s.ops_tasks(&op, None).await.is_empty());
        assert!(matches!(
            s.report("CS-0001", CENTER, 9.0).await,
            ReportOutcome::TaskCreated { crew_id: None, .. }
        ));
        assert_eq!(
            s.report("CS-0001", CENTER, 8.9).await,
            ReportOutcome::Nothing
        );
        let task = s.task_of(&op, "CS-0001").await;
        let task_id = task["task_id"].as_str().unwrap();
        s.post(
            &format!("/v1/ops/tasks/{task_id}/cancel"),
            Some(&op),
            json!({}),
        )
        .await
        .expect(200);

        // Disarmed: no new task while the range stays within threshold + margin, even for a
        // server that does not remember the scooter.
        s.state.dispatch.forget(&s.state.fleet, "CS-0001");
        assert_eq!(
            s.report("CS-0001", CENTER, 8.8).await,
            ReportOutcome::AlreadyHandled
        );
        assert_eq!(
            s.report("CS-0001", CENTER, 11.9).await,
            ReportOutcome::Nothing
        );
        assert_eq!(
            s.report("CS-0001", CENTER, 9.9).await,
            ReportOutcome::Nothing
        );
        assert_eq!(s.ops_tasks(&op, Some("open")).await.len(), 0);

        // Above threshold + margin: armed again, and the next drop gets a task.
        assert_eq!(
            s.report("CS-0001", CENTER, 12.0).await,
            ReportOutcome::Rearmed
        );
        assert!(matches!(
            s.report("CS-0001", CENTER, 9.5).await,
            ReportOutcome::TaskCreated { .. }
        ));
        assert_eq!(s.ops_tasks(&op, Some("open")).await.len(), 1);
        assert_eq!(s.ops_tasks(&op, None).await.len(), 2);

        // A task follows its scooter when it moves or loses range.
        let moved = north_of_center(1.0);
        assert_eq!(
            s.report("CS-0001", moved, 7.0).await,
            ReportOutcome::TaskUpdated
        );
        let open = s.ops_tasks(&op, Some("open")).await;
        assert_eq!(open[0]["range_km"], 7.0);
        assert!((open[0]["lat"].as_f64().unwrap() - moved.0).abs() < 1e-6);
    }

    pub async fn the_nearest_crew_with_batteries_gets_the_task(s: &TestServer) {
        let op = s.operator_token().await;
        // Before any crew: the task stays open, then goes to the first crew that can take it.
        s.report("CS-0100", north_of_center(20.0), 8.0).await;
        let far = s.crew_at(&op, "Far", north_of_center(3.0), 5).await;
        let near = s.crew_at(&op, "Near", north_of_center(1.0), 5).await;
        let empty = s.crew_at(&op, "Empty", north_of_center(0.1), 0).await;
        let away = s.crew_at(&op, "Away", north_of_center(0.2), 5).await;
        s.set_available(&away, false).await;

        let outcome = s.report("CS-0001", CENTER, 9.0).await;
        let ReportOutcome::TaskCreated { task_id, crew_id } = outcome else {
            panic!("no task: {outcome:?}");
        };
        assert_eq!(crew_id.as_deref(), Some(near.id.as_str()));
        let tasks = s.crew_tasks(&near).await;
        assert_eq!(tasks.len(), 1);
        let task = &tasks[0];
        assert_eq!(task["task_id"], task_id.as_str());
        assert_eq!(task["kind"], "battery_swap");
        assert_eq!(task["scooter_id"], "CS-0001");
        assert_eq!(task["status"], "assigned");
        assert_eq!(task["range_km"], 9.0);
        assert!((task["lat"].as_f64().unwrap() - CENTER.0).abs() < 1e-9);
        assert!((task["lon"].as_f64().unwrap() - CENTER.1).abs() < 1e-9);
        assert!(task["created_at"].is_string());
        assert_eq!(task["tour_position"], 1);
        assert!(s.crew_scooters(&empty).await.is_empty());
        assert!(s.crew_scooters(&away).await.is_empty());

        // The early task, farther than a newly available crew looks, goes to the nearest crew
        // at the worker's next sweep.
        eventually("the early task is assigned", || async {
            s.task_of(&op, "CS-0100").await["status"] == "assigned"
        })
        .await;
        let early = s.task_of(&op, "CS-0100").await;
        assert!(early["crew_id"] == far.id.as_str() || early["crew_id"] == near.id.as_str());
    }

    pub async fn declining_passes_the_task_on(s: &TestServer) {
        let op = s.operator_token().await;
        let a = s.crew_at(&op, "Alpha", north_of_center(0.5), 5).await;
        let b = s.crew_at(&op, "Bravo", north_of_center(2.0), 5).await;
        s.report("CS-0001", CENTER, 9.0).await;
        let task_id = s.task_of(&op, "CS-0001").await["task_id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(s.crew_scooters(&a).await, ["CS-0001"]);

        let declined = s.task_action(&a, &task_id, "decline").await;
        let declined = declined.expect(200);
        assert_eq!(declined["status"], "open");
        assert!(declined["crew_id"].is_null());
        assert!(s.crew_scooters(&a).await.is_empty());
        assert_eq!(s.crew_scooters(&b).await, ["CS-0001"]);

        // Nobody left who has not declined it: it waits, open.
        s.task_action(&b, &task_id, "decline").await.expect(200);
        let task = s.task_of(&op, "CS-0001").await;
        assert_eq!(task["status"], "open");
        assert!(task["crew_id"].is_null());
        // A crew's location report does not bring back a task it declined.
        s.locate(&a, CENTER).await;
        assert!(s.crew_scooters(&a).await.is_empty());
        s.task_action(&a, &task_id, "decline")
            .await
            .expect_problem(404, "not_found");
    }

    pub async fn an_unaccepted_task_times_out_to_the_next_crew(s: &TestServer) {
        let op = s.operator_token().await;
        let a = s.crew_at(&op, "Alpha", north_of_center(0.5), 5).await;
        let b = s.crew_at(&op, "Bravo", north_of_center(2.0), 5).await;
        s.report("CS-0001", CENTER, 9.0).await;
        assert_eq!(s.crew_scooters(&a).await, ["CS-0001"]);
        // Not yet: still within the 120 s.
        s.clock.advance(chrono::Duration::seconds(100));
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        assert_eq!(s.crew_scooters(&a).await, ["CS-0001"]);

        s.clock.advance(chrono::Duration::seconds(21));
        eventually("the task passes to the next crew", || async {
            s.crew_scooters(&b).await == ["CS-0001"]
        })
        .await;
        assert!(s.crew_scooters(&a).await.is_empty());
        let task = s.task_of(&op, "CS-0001").await;
        assert_eq!(task["crew_id"], b.id.as_str());
        // An accepted task does not time out.
        let task_id = task["task_id"].as_str().unwrap();
        s.task_action(&b, task_id, "accept").await.expect(200);
        s.clock.advance(chrono::Duration::seconds(600));
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        assert_eq!(s.task_of(&op, "CS-0001").await["status"], "accepted");
    }

    pub async fn only_the_assigned_crew_acts_on_a_task(s: &TestServer) {
        let op = s.operator_token().await;
        let a = s.crew_at(&op, "Alpha", north_of_center(0.5), 5).await;
        let b = s.crew_at(&op, "Bravo", north_of_center(2.0), 5).await;
        s.report("CS-0001", CENTER, 9.0).await;
        let task_id = s.task_of(&op, "CS-0001").await["task_id"]
            .as_str()
            .unwrap()
            .to_owned();
        for action in ["accept", "decline", "complete"] {
            s.task_action(&b, &task_id, action)
                .await
                .expect_problem(404, "not_found");
            s.task_action(&a, "task_unknown", action)
                .await
                .expect_problem(404, "not_found");
        }
        assert!(s.crew_scooters(&b).await.is_empty());
        let (_, rider) = s.signup("rider@example.com").await;
        s.post(
            &format!("/v1/crew/tasks/{task_id}/accept"),
            Some(&rider),
            json!({}),
        )
        .await
        .expect_problem(403, "forbidden");
        s.post(&format!("/v1/crew/tasks/{task_id}/accept"), None, json!({}))
            .await
            .expect_problem(401, "unauthenticated");
        s.get("/v1/crew/tasks", Some(&op))
            .await
            .expect_problem(403, "forbidden");

        let accepted = s.task_action(&a, &task_id, "accept").await;
        let accepted = accepted.expect(200);
        assert_eq!(accepted["status"], "accepted");
        assert_eq!(accepted["task_id"], task_id.as_str());
        s.task_action(&a, &task_id, "accept").await.expect(200);
        assert_eq!(s.crew_tasks(&a).await[0]["status"], "accepted");
    }

    pub async fn completing_uses_a_battery_and_rearms_the_scooter(s: &TestServer) {
        let op = s.operator_token().await;
        let a = s.crew_at(&op, "Alpha", north_of_center(0.5), 1).await;
        let b = s.crew_at(&op, "Bravo", north_of_center(3.0), 5).await;
        s.report("CS-0001", CENTER, 4.0).await;
        let task_id = s.task_of(&op, "CS-0001").await["task_id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(s.crew_scooters(&a).await, ["CS-0001"]);
        // One battery, promised: the next task goes to the other crew.
        s.report("CS-0002", CENTER, 6.0).await;
        assert_eq!(s.crew_scooters(&b).await, ["CS-0002"]);

        s.task_action(&a, &task_id, "accept").await.expect(200);
        for bad in [
            json!({"range_km": -1.0}),
            json!({"range_km": "full"}),
            json!({}),
        ] {
            s.post(
                &format!("/v1/crew/tasks/{task_id}/complete"),
                Some(&a.token),
                bad,
            )
            .await
            .expect_problem(400, "invalid_request");
        }
        s.clock.advance(chrono::Duration::minutes(20));
        let done = s
            .post(
                &format!("/v1/crew/tasks/{task_id}/complete"),
                Some(&a.token),
                json!({"range_km": 48.5}),
            )
            .await;
        let done = done.expect(200);
        assert_eq!(done["status"], "done");
        assert_eq!(done["swapped_range_km"], 48.5);
        assert!(done["completed_at"].is_string());
        assert!(s.crew_tasks(&a).await.is_empty());
        s.task_action(&a, &task_id, "complete")
            .await
            .expect_problem(409, "invalid_task_state");
        s.task_action(&a, &task_id, "accept")
            .await
            .expect_problem(409, "invalid_task_state");

        // The van is empty now: a new task near it goes to the other crew.
        s.report("CS-0003", north_of_center(0.5), 8.0).await;
        assert_eq!(s.crew_scooters(&b).await.len(), 2);
        assert!(s.crew_scooters(&a).await.is_empty());

        // The swapped scooter may get a task again when it runs low.
        assert!(matches!(
            s.report("CS-0001", CENTER, 9.0).await,
            ReportOutcome::TaskCreated { .. }
        ));
    }

    pub async fn a_crew_becoming_available_receives_the_most_urgent_tasks_near_it(s: &TestServer) {
        let op = s.operator_token().await;
        s.report("CS-HIGH", north_of_center(0.5), 9.0).await;
        s.report("CS-FLOOR", north_of_center(1.0), 4.0).await;
        s.report("CS-MID", north_of_center(1.5), 7.0).await;
        s.report("CS-FAR", north_of_center(40.0), 2.0).await;
        assert_eq!(s.ops_tasks(&op, Some("open")).await.len(), 4);

        let a = s.crew(&op, "Alpha").await;
        s.put(
            &format!("/v1/ops/crews/{}/van", a.id),
            Some(&op),
            json!({"batteries_aboard": 2}),
        )
        .await
        .expect(200);
        s.locate(&a, CENTER).await;
        assert!(s.crew_tasks(&a).await.is_empty(), "not available yet");
        s.set_available(&a, true).await;
        let mut got = s.crew_scooters(&a).await;
        got.sort();
        assert_eq!(got, ["CS-FLOOR", "CS-MID"]);

        // Another crew, available before it says where it is, receives work on its location.
        let b = s.crew(&op, "Bravo").await;
        s.set_available(&b, true).await;
        assert!(s.crew_tasks(&b).await.is_empty());
        s.locate(&b, north_of_center(0.4)).await;
        assert_eq!(s.crew_scooters(&b).await, ["CS-HIGH"]);
        assert_eq!(s.task_of(&op, "CS-FAR").await["status"], "open");
    }

    pub async fn operators_list_reassign_and_cancel(s: &TestServer) {
        let op = s.operator_token().await;
        let a = s.crew_at(&op, "Alpha", north_of_center(0.5), 5).await;
        let b = s.crew_at(&op, "Bravo", north_of_center(9.0), 5).await;
        s.report("CS-0001", CENTER, 9.0).await;
        s.report("CS-0002", CENTER, 8.0).await;
        let assigned = s.ops_tasks(&op, Some("assigned")).await;
        assert_eq!(assigned.len(), 2);
        assert!(assigned.iter().all(|t| t["crew_id"] == a.id.as_str()));
        assert!(s.ops_tasks(&op, Some("open")).await.is_empty());
        s.get("/v1/ops/tasks?status=lost", Some(&op))
            .await
            .expect_problem(400, "invalid_request");
        s.get("/v1/ops/tasks", Some(&a.token))
            .await
            .expect_problem(403, "forbidden");

        let task_id = s.task_of(&op, "CS-0001").await["task_id"]
            .as_str()
            .unwrap()
            .to_owned();
        s.task_action(&a, &task_id, "accept").await.expect(200);
        let moved = s
            .post(
                &format!("/v1/ops/tasks/{task_id}/assign"),
                Some(&op),
                json!({"crew_id": b.id}),
            )
            .await;
        let moved = moved.expect(200);
        assert_eq!(moved["crew_id"], b.id.as_str());
        assert_eq!(moved["status"], "assigned");
        assert_eq!(s.crew_scooters(&a).await, ["CS-0002"]);
        assert_eq!(s.crew_scooters(&b).await, ["CS-0001"]);
        s.post(
            &format!("/v1/ops/tasks/{task_id}/assign"),
            Some(&op),
            json!({"crew_id": "crew_nobody"}),
        )
        .await
        .expect_problem(404, "crew_not_found");
        s.post(
            "/v1/ops/tasks/task_unknown/assign",
            Some(&op),
            json!({"crew_id": b.id}),
        )
        .await
        .expect_problem(404, "not_found");

        let cancelled = s
            .post(
                &format!("/v1/ops/tasks/{task_id}/cancel"),
                Some(&op),
                json!({}),
            )
            .await;
        assert_eq!(cancelled.expect(200)["status"], "cancelled");
        assert!(s.crew_tasks(&b).await.is_empty());
        s.post(
            &format!("/v1/ops/tasks/{task_id}/cancel"),
            Some(&op),
            json!({}),
        )
        .await
        .expect_problem(409, "invalid_task_state");
        s.post(
            &format!("/v1/ops/tasks/{task_id}/assign"),
            Some(&op),
            json!({"crew_id": b.id}),
        )
        .await
        .expect_problem(409, "invalid_task_state");
        assert_eq!(s.ops_tasks(&op, Some("cancelled")).await.len(), 1);
        assert_eq!(s.ops_tasks(&op, None).await.len(), 2);
    }

    pub async fn kpis_report_the_steps(s: &TestServer) {
        let op = s.operator_token().await;
        s.report("CS-WAIT", CENTER, 9.0).await;
        s.clock.advance(chrono::Duration::seconds(30));
        let a = s.crew_at(&op, "Alpha", north_of_center(0.5), 5).await;
        let task_id = s.task_of(&op, "CS-WAIT").await["task_id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(s.crew_scooters(&a).await, ["CS-WAIT"]);
        s.clock.advance(chrono::Duration::seconds(60));
        s.task_action(&a, &task_id, "accept").await.expect(200);
        s.clock.advance(chrono::Duration::seconds(600));
        s.task_action(&a, &task_id, "complete").await.expect(200);
        s.set_available(&a, false).await;
        s.report("CS-OPEN", CENTER, 9.0).await;

        let kpis = s.get("/v1/ops/kpis", Some(&op)).await;
        let kpis = &kpis.expect(200)["dispatch"];
        assert_eq!(kpis["window_s"], 86_400);
        assert_eq!(kpis["open_tasks"], 1);
        assert_eq!(kpis["assigned_tasks"], 0);
        assert_eq!(kpis["time_to_assign_s"]["count"], 1);
        assert_eq!(kpis["time_to_assign_s"]["p50"], 30.0);
        assert_eq!(kpis["time_to_accept_s"]["p90"], 90.0);
        assert_eq!(kpis["time_to_complete_s"]["p50"], 690.0);
        s.get("/v1/ops/kpis", Some(&a.token))
            .await
            .expect_problem(403, "forbidden");

        // A day later, those steps are out of the window.
        s.clock.advance(chrono::Duration::hours(25));
        let op = s.operator_token().await;
        let kpis = s.get("/v1/ops/kpis", Some(&op)).await;
        assert_eq!(
            kpis.expect(200)["dispatch"]["time_to_complete_s"]["count"],
            0
        );

        let metrics = s.get("/metrics", None).await;
        assert!(
            metrics.text.contains("dispatch_time_to_assign_seconds"),
            "{}",
            metrics.text
        );
        assert!(metrics.text.contains("dispatch_time_to_complete_seconds"));
        eventually("the open-tasks gauge", || async {
            s.get("/metrics", None)
                .await
                .text
                .contains("dispatch_tasks{status=\"open\"}")
        })
        .await;
    }

    pub async fn crew_inputs_are_checked(s: &TestServer) {
        let op = s.operator_token().await;
        let crew = s.crew(&op, "Alpha").await;
        for bad in [
            json!({"lat": 91.0, "lon": 2.35}),
            json!({"lat": 48.85, "lon": 181.0}),
            json!({"lat": 48.85}),
            json!({"lat": "48.85", "lon": 2.35}),
            json!({"lat": 48.85, "lon": 2.35, "speed": 3}),
        ] {
            s.post("/v1/crew/location", Some(&crew.token), bad)
                .await
                .expect_problem(400, "invalid_request");
        }
        for bad in [
            json!({"available": "yes"}),
            json!({}),
            json!({"available": true, "x": 1}),
        ] {
            s.put("/v1/crew/status", Some(&crew.token), bad)
                .await
                .expect_problem(400, "invalid_request");
        }
        let (_, rider) = s.signup("rider@example.com").await;
        s.post(
            "/v1/crew/location",
            Some(&rider),
            json!({"lat": 48.85, "lon": 2.35}),
        )
        .await
        .expect_problem(403, "forbidden");
        let van = format!("/v1/ops/crews/{}/van", crew.id);
        for bad in [
            json!({"batteries_aboard": -1}),
            json!({"batteries_aboard": 2.5}),
            json!({}),
        ] {
            s.put(&van, Some(&op), bad)
                .await
                .expect_problem(400, "invalid_request");
        }
        s.put(
            "/v1/ops/crews/crew_nobody/van",
            Some(&op),
            json!({"batteries_aboard": 3}),
        )
        .await
        .expect_problem(404, "crew_not_found");
        s.put(&van, Some(&crew.token), json!({"batteries_aboard": 3}))
            .await
            .expect_problem(403, "forbidden");
        let set = s.put(&van, Some(&op), json!({"batteries_aboard": 3})).await;
        let set = set.expect(200);
        assert_eq!(set["batteries_aboard"], 3);
        assert_eq!(set["crew_id"], crew.id.as_str());
    }

    pub async fn tasks_come_in_tour_order(s: &TestServer) {
        let op = s.operator_token().await;
        // Created far-first; the tour visits them nearest-first along the street.
        s.report("CS-3KM", north_of_center(3.0), 9.0).await;
        s.report("CS-1KM", north_of_center(1.0), 9.0).await;
        s.report("CS-2KM", north_of_center(2.0), 9.0).await;
        let a = s.crew_at(&op, "Alpha", CENTER, 5).await;
        let tasks = s.crew_tasks(&a).await;
        let order: Vec<_> = tasks
            .iter()
            .map(|t| t["scooter_id"].as_str().unwrap())
            .collect();
        assert_eq!(order, ["CS-1KM", "CS-2KM", "CS-3KM"]);
        let places: Vec<_> = tasks
            .iter()
            .map(|t| t["tour_position"].as_u64().unwrap())
            .collect();
        assert_eq!(places, [1, 2, 3]);
        // From the other end of the street, the other way round.
        s.locate(&a, north_of_center(4.0)).await;
        assert_eq!(s.crew_scooters(&a).await, ["CS-3KM", "CS-2KM", "CS-1KM"]);
    }

    pub async fn going_unavailable_hands_back_unaccepted_tasks(s: &TestServer) {
        let op = s.operator_token().await;
        let a = s.crew_at(&op, "Alpha", north_of_center(0.5), 5).await;
        s.report("CS-0001", CENTER, 9.0).await;
        s.report("CS-0002", CENTER, 8.0).await;
        let first = s.task_of(&op, "CS-0001").await["task_id"]
            .as_str()
            .unwrap()
            .to_owned();
        s.task_action(&a, &first, "accept").await.expect(200);
        let b = s.crew_at(&op, "Bravo", north_of_center(5.0), 5).await;
        s.set_available(&a, false).await;
        assert_eq!(
            s.crew_scooters(&a).await,
            ["CS-0001"],
            "accepted work stays"
        );
        assert_eq!(s.crew_scooters(&b).await, ["CS-0002"]);
    }

    pub async fn a_burst_fills_the_nearest_vans_and_leaves_the_rest_open(s: &TestServer) {
        let op = s.operator_token().await;
        let near = s.crew_at(&op, "Near", north_of_center(0.5), 3).await;
        let far = s.crew_at(&op, "Far", north_of_center(5.0), 2).await;
        // Eight scooters cross the threshold at once, two of them reporting twice.
        let reports: Vec<_> = (0..8)
            .chain([0, 1])
            .map(|i| {
                let state = s.state.clone();
                let report = ScooterReport {
                    scooter_id: format!("CS-{i:04}"),
                    lat: CENTER.0 - i as f64 * 0.001,
                    lon: CENTER.1,
                    range_km: 9.0 - i as f64 * 0.1,
                    on_trip: false,
                    at: s.clock.now(),
                };
                tokio::spawn(async move { on_scooter_report(&state, report).await })
            })
            .collect();
        let mut created = 0;
        for report in reports {
            match report.await.expect("joined").expect("report handled") {
                ReportOutcome::TaskCreated { .. } => created += 1,
                ReportOutcome::AlreadyHandled | ReportOutcome::Nothing => {}
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        assert_eq!(created, 8, "one task per scooter");
        assert_eq!(
            s.crew_tasks(&near).await.len(),
            3,
            "as many as its batteries"
        );
        assert_eq!(s.crew_tasks(&far).await.len(), 2);
        assert_eq!(s.ops_tasks(&op, Some("open")).await.len(), 3);
        assert_eq!(s.ops_tasks(&op, None).await.len(), 8);
    }

    /// Sends one point of `range_km` at `at` through `POST /v1/telemetry`, recorded `secs`
    /// after the server's start time.
    async fn low_point(
        s: &TestServer,
        device: &str,
        at: (f64, f64),
        range_km: f64,
        secs: i64,
    ) -> Answer {
        let recorded = default_now() + chrono::Duration::seconds(secs);
        crate::common::fleet::send(
            s,
            device,
            vec![crate::common::fleet::point(at.0, at.1, range_km, recorded)],
        )
        .await
    }

    pub async fn a_low_point_through_telemetry_is_assigned_before_its_answer(s: &TestServer) {
        let op = s.operator_token().await;
        let near = s.crew_at(&op, "Near", north_of_center(1.0), 5).await;
        let far = s.crew_at(&op, "Far", north_of_center(3.0), 5).await;
        let device =
            crate::common::fleet::register(s, &op, "CS-T1", CENTER.0, CENTER.1, 30.0).await;
        s.clock.advance(chrono::Duration::seconds(60));

        low_point(s, &device, CENTER, 9.0, 10).await.expect(202);
        // No waiting: the task was stored and assigned with the point.
        let tasks = s.crew_tasks(&near).await;
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        assert_eq!(tasks[0]["scooter_id"], "CS-T1");
        assert_eq!(tasks[0]["status"], "assigned");
        assert_eq!(tasks[0]["range_km"], 9.0);
        assert!(s.crew_tasks(&far).await.is_empty());

        // More low points, and an older one from elsewhere: still the one task, where the
        // newest point put it.
        low_point(s, &device, CENTER, 8.9, 20).await.expect(202);
        low_point(s, &device, north_of_center(5.0), 4.0, 15)
            .await
            .expect(202);
        let all = s.ops_tasks(&op, None).await;
        assert_eq!(all.len(), 1, "{all:?}");
        assert!((all[0]["lat"].as_f64().unwrap() - CENTER.0).abs() < 1e-6);

        // Above threshold + margin it is re-armed; low again, it gets a second task once
        // the first is done.
        let task_id = all[0]["task_id"].as_str().unwrap().to_owned();
        s.task_action(&near, &task_id, "accept").await.expect(200);
        s.post(
            &format!("/v1/crew/tasks/{task_id}/complete"),
            Some(&near.token),
            json!({"range_km": 60.0}),
        )
        .await
        .expect(200);
        low_point(s, &device, CENTER, 9.5, 70).await.expect(202);
        let all = s.ops_tasks(&op, None).await;
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(s.crew_tasks(&near).await.len(), 1);
    }

    pub async fn concurrent_low_points_on_two_servers_make_one_task_per_scooter(s: &TestServer) {
        let op = s.operator_token().await;
        s.crew_at(&op, "Near", north_of_center(1.0), 50).await;
        let other = crate::common::rides::another_server(s).await;
        let mut devices = Vec::new();
        for i in 0..3 {
            let id = format!("CS-C{i}");
            devices
                .push(crate::common::fleet::register(s, &op, &id, CENTER.0, CENTER.1, 30.0).await);
        }
        // The other server takes in the scooters registered here before their points.
        let scooters = other.state.fleet.clone();
        let db = other.state.db.clone();
        scooters.adopt_new(&db).await.expect("adopt");
        let sends = devices.iter().flat_map(|device| {
            (0..8).map(|attempt| {
                let server = if attempt % 2 == 0 { s } else { &other };
                low_point(
                    server,
                    device,
                    CENTER,
                    9.5 - attempt as f64 * 0.1,
                    10 + attempt,
                )
            })
        });
        for answer in futures_util::future::join_all(sends).await {
            answer.expect(202);
        }
        let tasks = s.ops_tasks(&op, None).await;
        let mut scooters: Vec<String> = tasks
            .iter()
            .map(|t| t["scooter_id"].as_str().unwrap().to_owned())
            .collect();
        scooters.sort();
        assert_eq!(scooters, ["CS-C0", "CS-C1", "CS-C2"], "{tasks:?}");
        other.stop_keeping_database().await;
    }

    pub async fn a_task_its_crew_can_no_longer_take_goes_to_the_next_crew(s: &TestServer) {
        let op = s.operator_token().await;
        let near = s.crew_at(&op, "Near", north_of_center(1.0), 5).await;
        let far = s.crew_at(&op, "Far", north_of_center(3.0), 5).await;
        let device =
            crate::common::fleet::register(s, &op, "CS-P1", CENTER.0, CENTER.1, 30.0).await;
        // The nearest crew goes off duty through another server: this one's index still
        // has it available, so the database refuses it the battery and the task goes on.
        let other = crate::common::rides::another_server(s).await;
        other.set_available(&near, false).await;
        low_point(s, &device, CENTER, 9.0, 10).await.expect(202);
        let tasks = s.crew_tasks(&far).await;
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        assert_eq!(tasks[0]["scooter_id"], "CS-P1");
        assert_eq!(tasks[0]["status"], "assigned");
        assert!(s.crew_tasks(&near).await.is_empty());
        other.stop_keeping_database().await;
    }

    pub async fn a_point_back_above_the_margin_rearms_the_scooter(s: &TestServer) {
        let op = s.operator_token().await;
        s.crew_at(&op, "Near", north_of_center(1.0), 5).await;
        let device =
            crate::common::fleet::register(s, &op, "CS-R1", CENTER.0, CENTER.1, 30.0).await;
        s.clock.advance(chrono::Duration::seconds(60));
        low_point(s, &device, CENTER, 9.0, 10).await.expect(202);
        let task_id = s.task_of(&op, "CS-R1").await["task_id"]
            .as_str()
            .unwrap()
            .to_owned();
        s.post(
            &format!("/v1/ops/tasks/{task_id}/cancel"),
            Some(&op),
            json!({}),
        )
        .await
        .expect(200);

        // Still disarmed: low again, and within the margin, no new task.
        low_point(s, &device, CENTER, 8.5, 20).await.expect(202);
        low_point(s, &device, CENTER, 11.9, 25).await.expect(202);
        low_point(s, &device, CENTER, 8.0, 30).await.expect(202);
        assert_eq!(s.ops_tasks(&op, None).await.len(), 1);

        // Above threshold + margin (12 km) it is re-armed with the point; the next low point
        // gets a task at once.
        low_point(s, &device, CENTER, 12.5, 40).await.expect(202);
        low_point(s, &device, CENTER, 9.0, 50).await.expect(202);
        let tasks = s.ops_tasks(&op, None).await;
        assert_eq!(tasks.len(), 2, "{tasks:?}");
        assert_eq!(s.ops_tasks(&op, Some("assigned")).await.len(), 1);
    }
}
