//! Measurements for dispatch's speed goals, not checks: run them optimised, one at a time,
//!
//!     cargo test --release --test dispatch_speed -- --ignored --nocapture --test-threads=1
//!
//! (with `SCOOTFLEET_TEST_POSTGRES` set, PostgreSQL too). Debug builds are several times
//! slower. Most reports go to the fleet's and dispatch's entry points on the server's state,
//! the calls the HTTP and MQTT telemetry handlers make, leaving out HTTP parsing;
//! `measure_latency_through_http` sends everything through `POST /v1/telemetry`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::dispatch::{north_of_center, CENTER};
use common::fleet::register;
use common::{backends, TestServer};
use scootfleet::app::AppState;
use scootfleet::clock::Clock;
use scootfleet::dispatch::{on_scooter_report, ReportOutcome, ScooterReport};
use scootfleet::fleet::accept::accept_points;
use scootfleet::fleet::Reading;

/// Crews around the centre, each with a full van, enough for every task made here.
async fn crews(s: &TestServer, count: usize) {
    let op = s.operator_token().await;
    for i in 0..count {
        let at = north_of_center(i as f64 * 0.5);
        s.crew_at(&op, &format!("Crew{i}"), at, 1_000).await;
    }
}

/// The `i`th scooter of a grid of 100 × 100 positions 100 m apart.
fn report(s: &TestServer, i: usize, range_km: f64) -> ScooterReport {
    ScooterReport {
        scooter_id: format!("CS-{i:05}"),
        lat: CENTER.0 + (i % 100) as f64 * 0.001,
        lon: CENTER.1 + ((i / 100) % 100) as f64 * 0.001,
        range_km,
        on_trip: false,
        at: s.clock.now(),
    }
}

async fn assigned_tasks(s: &TestServer) -> i64 {
    scootfleet::db_run!(&s.state.db, |pool| sqlx::query_scalar(
        "select count(*) from tasks where status = 'assigned'"
    )
    .fetch_one(pool)
    .await)
    .expect("count")
}

/// Sends `reports` with `in_flight` of them waiting at a time (all at once when it is their
/// number); returns the time until every task is stored and assigned.
async fn burst(s: &TestServer, reports: Vec<ScooterReport>, in_flight: usize) -> Duration {
    let before = assigned_tasks(s).await;
    let count = reports.len();
    let mut lanes: Vec<Vec<ScooterReport>> = (0..in_flight).map(|_| Vec::new()).collect();
    for (i, r) in reports.into_iter().enumerate() {
        lanes[i % in_flight].push(r);
    }
    let started = Instant::now();
    let handles: Vec<_> = lanes
        .into_iter()
        .map(|lane| {
            let state = s.state.clone();
            tokio::spawn(async move {
                for r in lane {
                    let outcome = on_scooter_report(&state, r).await.expect("report");
                    assert!(
                        matches!(
                            outcome,
                            ReportOutcome::TaskCreated {
                                crew_id: Some(_),
                                ..
                            }
                        ),
                        "{outcome:?}"
                    );
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("lane");
    }
    let took = started.elapsed();
    assert_eq!(assigned_tasks(s).await - before, count as i64);
    took
}

/// Registers `ids` as the operator, eight at a time, the `i`th at `place(i)`, at 40 km;
/// their device tokens, in order.
async fn register_all(
    s: &TestServer,
    op: &str,
    ids: &[String],
    place: impl Fn(usize) -> (f64, f64) + Copy,
) -> Vec<String> {
    let lane = ids.len().div_ceil(8).max(1);
    let registering = ids.chunks(lane).enumerate().map(|(c, chunk)| async move {
        let mut tokens = Vec::new();
        for (j, id) in chunk.iter().enumerate() {
            let (lat, lon) = place(c * lane + j);
            tokens.push(register(s, op, id, lat, lon, 40.0).await);
        }
        tokens
    });
    futures_util::future::join_all(registering)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Stops a telemetry load; the points/s it stored since `(stored_before, started)`.
async fn stop_load(
    load: tokio::task::JoinHandle<()>,
    stop: &AtomicBool,
    stored: &AtomicU64,
    (stored_before, started): (u64, Instant),
) -> f64 {
    let rate =
        (stored.load(Ordering::Relaxed) - stored_before) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    load.await.expect("load");
    rate
}

fn quantiles(mut latencies: Vec<Duration>) -> String {
    latencies.sort();
    let at = |q: f64| latencies[((q * latencies.len() as f64).ceil() as usize).max(1) - 1];
    format!(
        "p50 {:.2?}, p99 {:.2?}, max {:.2?} ({} samples)",
        at(0.5),
        at(0.99),
        at(1.0),
        latencies.len()
    )
}

/// 10,000 reports above the threshold, single low reports on an idle server, then bursts of
/// 10,000 scooters crossing the threshold: all at once, and with only 16 waiting at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn measure_low_range_to_assignment() {
    for backend in backends() {
        let s = TestServer::start(backend).await;
        crews(&s, 30).await;
        let started = Instant::now();
        for i in 0..10_000 {
            on_scooter_report(&s.state, report(&s, i, 40.0))
                .await
                .unwrap();
        }
        let first = started.elapsed();
        eprintln!("{backend:?}: 10,000 high reports, first time: {first:.2?}");
        let started = Instant::now();
        for i in 0..10_000 {
            on_scooter_report(&s.state, report(&s, i, 39.0))
                .await
                .unwrap();
        }
        eprintln!(
            "{backend:?}: 10,000 high reports: {first:.2?} first time, {:.2?} from memory",
            started.elapsed()
        );
        let mut latencies = Vec::new();
        for i in 0..1_000 {
            let started = Instant::now();
            let outcome = on_scooter_report(&s.state, report(&s, i, 8.0))
                .await
                .unwrap();
            latencies.push(started.elapsed());
            assert!(matches!(
                outcome,
                ReportOutcome::TaskCreated {
                    crew_id: Some(_),
                    ..
                }
            ));
        }
        eprintln!(
            "{backend:?}: lone low report to assigned, idle server: {}",
            quantiles(latencies)
        );
        let reports = (10_000..20_000).map(|i| report(&s, i, 8.0)).collect();
        let took = burst(&s, reports, 10_000).await;
        eprintln!("{backend:?}: burst of 10,000 at once, all assigned in {took:.2?}");
        let reports = (20_000..30_000).map(|i| report(&s, i, 8.0)).collect();
        let took = burst(&s, reports, 16).await;
        eprintln!("{backend:?}: burst of 10,000, 16 in flight, all assigned in {took:.2?}");
        s.stop().await;
    }
}

/// Telemetry load: one point per call, `per_tick` calls every 10 ms, spread over `scooters`
/// scooters well above the threshold, at most 1,000 calls waiting. Counts the points stored.
fn telemetry_load(
    state: AppState,
    scooters: Vec<Arc<str>>,
    per_tick: usize,
    first_ms: i64,
    stop: Arc<AtomicBool>,
    stored: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    const MAX_IN_FLIGHT: u64 = 1_000;
    let in_flight = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(10));
        let mut sequence = 0;
        while !stop.load(Ordering::Relaxed) {
            ticks.tick().await;
            for _ in 0..per_tick {
                sequence += 1;
                let scooter = scooters[sequence % scooters.len()].clone();
                let reading = Reading {
                    lat: CENTER.0 + (sequence % 50) as f64 * 0.0001,
                    lon: CENTER.1,
                    range_km: 40.0,
                    battery_pct: 80.0,
                    speed_kmh: Some(12.0),
                    recorded_at_ms: first_ms + sequence as i64,
                };
                // A server that falls behind is not buried: the load waits for it.
                if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                    continue;
                }
                in_flight.fetch_add(1, Ordering::Relaxed);
                let (state, stored, in_flight) = (state.clone(), stored.clone(), in_flight.clone());
                tokio::spawn(async move {
                    let now = state.clock.now();
                    if accept_points(&state, scooter, vec![reading], now)
                        .await
                        .is_ok()
                    {
                        stored.fetch_add(1, Ordering::Relaxed);
                    }
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
    })
}

/// Low-range points, one at a time every 5 ms, while telemetry of 10,000 points/s flows:
/// the time from handing the point to the fleet until it is stored and its task stored and
/// assigned (what the crew's `GET /v1/crew/tasks` reads), and the same for dispatch alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn measure_latency_under_telemetry_load() {
    const PROBES: usize = 1_000;
    for backend in backends() {
        let s = TestServer::start(backend).await;
        crews(&s, 30).await;
        let op = s.operator_token().await;
        let ids: Vec<String> = (0..200 + PROBES).map(|i| format!("SC-{i:05}")).collect();
        register_all(&s, &op, &ids, |_| CENTER).await;
        let ids: Vec<Arc<str>> = ids.into_iter().map(Arc::from).collect();
        let (load_ids, probe_ids) = ids.split_at(200);
        let first_ms = s.clock.now().timestamp_millis() + 1;
        let stop = Arc::new(AtomicBool::new(false));
        let stored = Arc::new(AtomicU64::new(0));
        let load = telemetry_load(
            s.state.clone(),
            load_ids.to_vec(),
            100,
            first_ms,
            stop.clone(),
            stored.clone(),
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        eprintln!(
            "{backend:?}: telemetry load started, {} points stored in its first second",
            stored.load(Ordering::Relaxed)
        );
        let started = Instant::now();
        let stored_before = stored.load(Ordering::Relaxed);
        let mut dispatch_only = Vec::new();
        for i in 0..PROBES {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let low = report(&s, 40_000 + i, 8.0);
            let began = Instant::now();
            let outcome = on_scooter_report(&s.state, low).await.expect("report");
            dispatch_only.push(began.elapsed());
            assert!(matches!(
                outcome,
                ReportOutcome::TaskCreated {
                    crew_id: Some(_),
                    ..
                }
            ));
        }
        eprintln!(
            "{backend:?}: under load, low report to assigned (dispatch alone): {}",
            quantiles(dispatch_only)
        );
        let assigned_before = assigned_tasks(&s).await;
        let mut end_to_end = Vec::new();
        for (i, scooter) in probe_ids.iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let reading = Reading {
                lat: CENTER.0 - 0.001 * (i % 100) as f64,
                lon: CENTER.1,
                range_km: 8.0,
                battery_pct: 20.0,
                speed_kmh: None,
                recorded_at_ms: first_ms + 10_000_000,
            };
            let began = Instant::now();
            let now = s.clock.now();
            accept_points(&s.state, scooter.clone(), vec![reading], now)
                .await
                .expect("low point");
            end_to_end.push(began.elapsed());
        }
        let rate = stop_load(load, &stop, &stored, (stored_before, started)).await;
        assert_eq!(
            assigned_tasks(&s).await - assigned_before,
            PROBES as i64,
            "every low point got its task, assigned"
        );
        eprintln!("{backend:?}: telemetry load while probing: {rate:.0} points/s");
        eprintln!(
            "{backend:?}: under load, low point to stored and assigned: {}",
            quantiles(end_to_end)
        );
        s.stop().await;
    }
}

/// A telemetry body of one point, written by hand: the load should cost the client little.
fn telemetry_body(lat: f64, lon: f64, range_km: f64, recorded_at_ms: i64) -> String {
    let at = chrono::DateTime::from_timestamp_millis(recorded_at_ms).expect("time");
    format!(
        r#"{{"points":[{{"lat":{lat},"lon":{lon},"range_km":{range_km},"battery_pct":60,"recorded_at":"{}"}}]}}"#,
        scootfleet::clock::rfc3339(at)
    )
}

/// `POST /v1/telemetry` with `body`; true on 202.
async fn post_telemetry(s: &TestServer, device: &str, body: String) -> bool {
    s.http
        .post(s.url("/v1/telemetry"))
        .bearer_auth(device)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED)
}

/// Low-range points through `POST /v1/telemetry`, one every 5 ms, while 200 other scooters
/// send 10,000 points/s through HTTP too, one point per request (100 requests every 10 ms,
/// at most 1,000 waiting): the time until the `202`, which comes once the point is stored
/// and its task stored and assigned, as `GET /v1/crew/tasks` then shows. Then a burst of
/// 10,000 scooters crossing the threshold at once, through HTTP as well. The client shares
/// the machine's cores with the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn measure_latency_through_http() {
    const PROBES: usize = 1_000;
    const LOAD_SCOOTERS: usize = 200;
    const MAX_IN_FLIGHT: u64 = 1_000;
    for backend in backends() {
        let s = Arc::new(TestServer::start(backend).await);
        crews(&s, 30).await;
        let op = s.operator_token().await;
        let ids: Vec<String> = (0..LOAD_SCOOTERS + PROBES)
            .map(|i| format!("SC-{i:05}"))
            .collect();
        let tokens: Vec<Arc<str>> = register_all(&s, &op, &ids, |_| CENTER)
            .await
            .into_iter()
            .map(Arc::from)
            .collect();
        let (load_devices, probe_devices) = tokens.split_at(LOAD_SCOOTERS);
        let first_ms = s.clock.now().timestamp_millis() + 1;
        let stop = Arc::new(AtomicBool::new(false));
        let stored = Arc::new(AtomicU64::new(0));
        let load = {
            let (s, devices) = (s.clone(), load_devices.to_vec());
            let (stop, stored) = (stop.clone(), stored.clone());
            let in_flight = Arc::new(AtomicU64::new(0));
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(Duration::from_millis(10));
                let mut sequence = 0;
                while !stop.load(Ordering::Relaxed) {
                    ticks.tick().await;
                    for _ in 0..100 {
                        sequence += 1;
                        if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                            continue;
                        }
                        let device = devices[sequence % devices.len()].clone();
                        // Each scooter's points 1 ms apart: all new, none far ahead.
                        let at = first_ms + (sequence / devices.len()) as i64;
                        let lat = CENTER.0 + (sequence % 50) as f64 * 0.0001;
                        let body = telemetry_body(lat, CENTER.1, 40.0, at);
                        in_flight.fetch_add(1, Ordering::Relaxed);
                        let (s, stored, in_flight) = (s.clone(), stored.clone(), in_flight.clone());
                        tokio::spawn(async move {
                            if post_telemetry(&s, &device, body).await {
                                stored.fetch_add(1, Ordering::Relaxed);
                            }
                            in_flight.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        eprintln!(
            "{backend:?}: HTTP telemetry load started, {} points stored in its first second",
            stored.load(Ordering::Relaxed)
        );
        let assigned_before = assigned_tasks(&s).await;
        let started = Instant::now();
        let stored_before = stored.load(Ordering::Relaxed);
        let mut latencies = Vec::new();
        for (i, device) in probe_devices.iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let lat = CENTER.0 - 0.001 * (i % 100) as f64;
            let body = telemetry_body(lat, CENTER.1, 8.0, first_ms + 1_000);
            let began = Instant::now();
            assert!(post_telemetry(&s, device, body).await, "low point accepted");
            latencies.push(began.elapsed());
        }
        let rate = stop_load(load, &stop, &stored, (stored_before, started)).await;
        assert_eq!(
            assigned_tasks(&s).await - assigned_before,
            PROBES as i64,
            "every low point got its task, assigned"
        );
        eprintln!("{backend:?}: HTTP telemetry load while probing: {rate:.0} points/s");
        eprintln!(
            "{backend:?}: under load, low point POSTed to its 202 (stored, task assigned): {}",
            quantiles(latencies)
        );
        eprintln!(
            "{backend:?}: HTTP burst of 10,000 low points at once, all assigned in {:.2?}",
            http_burst(&s, &op, first_ms + 2_000).await
        );
        // The load's last requests hold the server: they finish before it stops.
        let mut s = s;
        let s = loop {
            match Arc::try_unwrap(s) {
                Ok(s) => break s,
                Err(held) => s = held,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        s.stop().await;
    }
}

/// Registers 10,000 more scooters, then sends each one's low point through
/// `POST /v1/telemetry`, 512 requests at a time: the time until the last `202`, when every
/// task is stored and assigned (checked).
async fn http_burst(s: &TestServer, op: &str, recorded_at_ms: i64) -> Duration {
    const BURST: usize = 10_000;
    const IN_FLIGHT: usize = 512;
    let ids: Vec<String> = (0..BURST).map(|i| format!("BU-{i:05}")).collect();
    let devices = register_all(s, op, &ids, |i| {
        (CENTER.0 + (i % 100) as f64 * 0.001, CENTER.1)
    })
    .await;
    let before = assigned_tasks(s).await;
    let started = Instant::now();
    let lanes = (0..IN_FLIGHT).map(|lane| {
        let devices = &devices;
        async move {
            for (i, device) in devices.iter().enumerate().skip(lane).step_by(IN_FLIGHT) {
                let lat = CENTER.0 + (i % 100) as f64 * 0.001;
                let body = telemetry_body(lat, CENTER.1, 8.0, recorded_at_ms);
                assert!(post_telemetry(s, device, body).await, "low point accepted");
            }
        }
    });
    futures_util::future::join_all(lanes).await;
    let took = started.elapsed();
    assert_eq!(assigned_tasks(s).await - before, BURST as i64);
    took
}
