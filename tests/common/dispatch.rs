//! Helpers for dispatch scenarios: crews, low-range reports and waiting for the worker.
//!
//! Low-range reports go straight to `dispatch::on_scooter_report` on the server's state, the
//! call the fleet's telemetry makes for every accepted point.

use std::future::Future;
use std::time::{Duration, Instant};

use scootfleet::clock::Clock;
use scootfleet::dispatch::{on_scooter_report, ReportOutcome, ScooterReport};
use serde_json::{json, Value};

use super::TestServer;

/// The Hôtel de Ville, Paris.
pub const CENTER: (f64, f64) = (48.8566, 2.3522);

/// `CENTER` moved north by about `km` kilometres.
pub fn north_of_center(km: f64) -> (f64, f64) {
    (CENTER.0 + km / 111.2, CENTER.1)
}

/// A signed-in crew member.
pub struct Crew {
    pub id: String,
    pub token: String,
}

impl TestServer {
    /// Creates a crew account and signs it in.
    pub async fn crew(&self, operator: &str, name: &str) -> Crew {
        let email = format!("{}@crews.test", name.to_lowercase());
        let created = self
            .post(
                "/v1/ops/crews",
                Some(operator),
                json!({"name": name, "email": email, "password": "van battery swap 42"}),
            )
            .await;
        let id = created.expect(201)["crew_id"]
            .as_str()
            .expect("crew_id")
            .to_owned();
        let login = self.login(&email, "van battery swap 42").await;
        let login = login.expect(200);
        assert_eq!(login["role"], "crew");
        let token = login["access_token"].as_str().expect("token").to_owned();
        Crew { id, token }
    }

    /// A crew that is available at `at` with `batteries` in its van.
    pub async fn crew_at(
        &self,
        operator: &str,
        name: &str,
        at: (f64, f64),
        batteries: i64,
    ) -> Crew {
        let crew = self.crew(operator, name).await;
        self.put(
            &format!("/v1/ops/crews/{}/van", crew.id),
            Some(operator),
            json!({"batteries_aboard": batteries}),
        )
        .await
        .expect(200);
        self.locate(&crew, at).await;
        self.set_available(&crew, true).await;
        crew
    }

    pub async fn locate(&self, crew: &Crew, at: (f64, f64)) {
        self.post(
            "/v1/crew/location",
            Some(&crew.token),
            json!({"lat": at.0, "lon": at.1}),
        )
        .await
        .expect(204);
    }

    pub async fn set_available(&self, crew: &Crew, available: bool) {
        self.put(
            "/v1/crew/status",
            Some(&crew.token),
            json!({"available": available}),
        )
        .await
        .expect(204);
    }

    /// The scooter reports `range_km` at `at`, parked.
    pub async fn report(&self, scooter_id: &str, at: (f64, f64), range_km: f64) -> ReportOutcome {
        self.report_with(scooter_id, at, range_km, false).await
    }

    pub async fn report_with(
        &self,
        scooter_id: &str,
        at: (f64, f64),
        range_km: f64,
        on_trip: bool,
    ) -> ReportOutcome {
        on_scooter_report(
            &self.state,
            ScooterReport {
                scooter_id: scooter_id.to_owned(),
                lat: at.0,
                lon: at.1,
                range_km,
                on_trip,
                at: self.clock.now(),
            },
        )
        .await
        .expect("report handled")
    }

    /// The crew's task list.
    pub async fn crew_tasks(&self, crew: &Crew) -> Vec<Value> {
        let answer = self.get("/v1/crew/tasks", Some(&crew.token)).await;
        answer.expect(200)["tasks"]
            .as_array()
            .expect("tasks")
            .clone()
    }

    /// The scooter ids in the crew's task list, in the order given.
    pub async fn crew_scooters(&self, crew: &Crew) -> Vec<String> {
        self.crew_tasks(crew)
            .await
            .iter()
            .map(|t| t["scooter_id"].as_str().expect("scooter_id").to_owned())
            .collect()
    }

    /// Every task, for operators, optionally of one status.
    pub async fn ops_tasks(&self, operator: &str, status: Option<&str>) -> Vec<Value> {
        let path = match status {
            Some(status) => format!("/v1/ops/tasks?status={status}"),
            None => "/v1/ops/tasks".to_owned(),
        };
        let answer = self.get(&path, Some(operator)).await;
        answer.expect(200)["tasks"]
            .as_array()
            .expect("tasks")
            .clone()
    }

    /// The one task of a scooter.
    pub async fn task_of(&self, operator: &str, scooter_id: &str) -> Value {
        let tasks: Vec<Value> = self
            .ops_tasks(operator, None)
            .await
            .into_iter()
            .filter(|t| t["scooter_id"] == scooter_id)
            .collect();
        assert_eq!(tasks.len(), 1, "tasks of {scooter_id}: {tasks:?}");
        tasks.into_iter().next().expect("task")
    }

    pub async fn task_action(&self, crew: &Crew, task_id: &str, action: &str) -> super::Answer {
        let body = if action == "complete" {
            json!({"range_km": 45.0})
        } else {
            json!({})
        };
        self.post(
            &format!("/v1/crew/tasks/{task_id}/{action}"),
            Some(&crew.token),
            body,
        )
        .await
    }
}

/// Polls `check` until it holds, for at most ten seconds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
