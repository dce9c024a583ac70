//! The console's live stream (`GET /v1/ops/live`) on every backend: fleet changes arrive as
//! server-sent events, only operators may listen, and open streams do not hold up a
//! graceful shutdown.

mod common;

use std::time::Duration;

use common::fleet::{point, register, send, PARIS};
use common::{backends, TestServer};
use scootfleet::clock::Clock;
use serde_json::Value;

/// An open event stream and what has been read of it.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(s: &TestServer, token: &str) -> Stream {
        let response = s
            .http
            .get(s.url("/v1/ops/live"))
            .bearer_auth(token)
            .send()
            .await
            .expect("stream opened");
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Stream {
            response,
            buffer: String::new(),
        }
    }

    /// The data of the next event (comments skipped); `None` when the stream ends.
    async fn next_event(&mut self) -> Option<Value> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if !data.is_empty() {
                    return Some(serde_json::from_str(&data.join("\n")).expect("event is JSON"));
                }
            }
            let chunk = self.response.chunk().await.expect("stream chunk")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    /// The next event about `scooter_id` matching `check`, within 30 s.
    async fn wait_for(&mut self, scooter_id: &str, check: impl Fn(&Value) -> bool) -> Value {
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(event) = self.next_event().await {
                if event["type"] == "scooter"
                    && event["scooter"]["scooter_id"] == scooter_id
                    && check(&event["scooter"])
                {
                    return Some(event);
                }
            }
            None
        })
        .await;
        found
            .expect("no such event within 30 s")
            .expect("the stream ended first")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_changes_arrive_as_events() {
    for backend in backends() {
        eprintln!("on {backend:?}");
        let s = TestServer::start(backend).await;
        let operator = s.operator_token().await;
        let mut stream = Stream::open(&s, &operator).await;

        let (lat, lon) = PARIS;
        let device = register(&s, &operator, "CS-0001", lat, lon, 30.0).await;
        let registered = stream.wait_for("CS-0001", |_| true).await;
        assert_eq!(registered["scooter"]["state"], "available");

        let at = s.clock.now() + chrono::Duration::seconds(1);
        send(&s, &device, vec![point(lat + 0.001, lon, 25.0, at)])
            .await
            .expect(202);
        let moved = stream
            .wait_for("CS-0001", |sc| sc["lat"].as_f64() == Some(lat + 0.001))
            .await["scooter"]
            .clone();
        assert_eq!(moved["range_km"], 25.0);
        assert_eq!(moved["battery_pct"], 60.0);
        assert_eq!(moved["last_seen_at"], scootfleet::clock::rfc3339(at));

        let event = serde_json::json!({"event": "maintenance"});
        s.post("/v1/ops/scooters/CS-0001/events", Some(&operator), event)
            .await
            .expect(200);
        let changed = stream
            .wait_for("CS-0001", |sc| sc["state"] == "non_operational")
            .await;
        assert_eq!(changed["scooter"]["state_reason"], "maintenance");

        // A new zone set in force is announced, so consoles redraw the zones.
        let zones = serde_json::json!({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"kind": "service_area", "name": "Town"},
             "geometry": {"type": "Polygon", "coordinates": [
                [[2.30, 48.80], [2.40, 48.80], [2.40, 48.90], [2.30, 48.90], [2.30, 48.80]]]}}
        ]});
        let version = s
            .put("/v1/ops/zones", Some(&operator), zones)
            .await
            .expect(200)["version"]
            .clone();
        let announced = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(event) = stream.next_event().await {
                if event["type"] == "zones" {
                    return event;
                }
            }
            panic!("the stream ended first");
        })
        .await
        .expect("zones announced within 30 s");
        assert_eq!(announced["version"], version);

        // Stopping the server ends the stream rather than waiting for it.
        tokio::time::timeout(Duration::from_secs(30), s.stop())
            .await
            .expect("the server stopped with a stream open");
        let rest = tokio::time::timeout(Duration::from_secs(30), async {
            while stream.next_event().await.is_some() {}
        })
        .await;
        assert!(rest.is_ok(), "the stream ended with the server");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_operators_listen() {
    let s = TestServer::start(scootfleet::db::Backend::Sqlite).await;
    s.get("/v1/ops/live", None)
        .await
        .expect_problem(401, "unauthenticated");
    let (_, rider) = s.signup("rider@example.com").await;
    s.get("/v1/ops/live", Some(&rider))
        .await
        .expect_problem(403, "forbidden");
    s.stop().await;
}
