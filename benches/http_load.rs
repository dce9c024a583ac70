//! Load through HTTP on a real server (SQLite, or PostgreSQL with SCOOTFLEET_TEST_POSTGRES):
//! telemetry one point per request and in batches (group commit, 202 after the commit),
//! then nearby search over a 100k fleet. Client and server share the machine.
//!
//! `cargo bench --bench http_load` (add `--profile dev` for a quick, unoptimised run).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use common::fleet::{point, register, PARIS};
use common::{backends, TestServer};
use rand::{Rng, SeedableRng};
use scootfleet::clock::Clock;
use serde_json::json;

const CONCURRENCY: usize = 64;

/// Runs `total` calls of `call(i)` with `CONCURRENCY` in flight; returns calls per second.
async fn drive<F, Fut>(total: usize, call: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (call, next) = (call.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    call(i).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    for backend in backends() {
        let server = Arc::new(TestServer::start(backend).await);
        let operator = server.operator_token().await;
        let mut tokens = Vec::new();
        for i in 0..200 {
            tokens.push(
                register(
                    &server,
                    &operator,
                    &format!("LD-{i}"),
                    PARIS.0,
                    PARIS.1,
                    30.0,
                )
                .await,
            );
        }
        let tokens = Arc::new(tokens);
        let base = server.clock.now();

        let (s, t) = (server.clone(), tokens.clone());
        let singles = 20_000;
        let rate = drive(singles, move |i| {
            let (s, t) = (s.clone(), t.clone());
            async move {
                let at = base - chrono::Duration::milliseconds(i as i64 + 1);
                let body = json!({"points": [point(48.86, 2.35, 20.0, at)]});
                s.post("/v1/telemetry", Some(&t[i % t.len()]), body)
                    .await
                    .expect(202);
            }
        })
        .await;
        println!("{backend:?}: telemetry, 1 point per request: {rate:.0} points/s");

        let (s, t) = (server.clone(), tokens.clone());
        let batches = 2_000;
        let rate = drive(batches, move |i| {
            let (s, t) = (s.clone(), t.clone());
            async move {
                let points: Vec<_> = (0..100)
                    .map(|k| {
                        let at = base
                            - chrono::Duration::seconds(100_000)
                            - chrono::Duration::milliseconds((i * 100 + k) as i64);
                        point(48.86, 2.35, 20.0, at)
                    })
                    .collect();
                s.post(
                    "/v1/telemetry",
                    Some(&t[i % t.len()]),
                    json!({ "points": points }),
                )
                .await
                .expect(202);
            }
        })
        .await;
        println!(
            "{backend:?}: telemetry, 100 points per request: {:.0} points/s",
            rate * 100.0
        );

        // A 100k fleet over Paris, imported straight into the database.
        let database = Arc::into_inner(server)
            .expect("one owner")
            .stop_keeping_database()
            .await;
        let db = scootfleet::db::Db::connect(&database.url, 2)
            .await
            .expect("db");
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let rows: Vec<_> = (0..100_000)
            .map(|i| scootfleet::fleet::import::Row {
                scooter_id: format!("P-{i}"),
                lat: rng.gen_range(48.815..48.902),
                lon: rng.gen_range(2.255..2.415),
                range_km: rng.gen_range(0.0..45.0),
                battery_pct: 50.0,
            })
            .collect();
        scootfleet::fleet::import::register_all(&db, &rows, base, &mut std::io::sink(), |_| {})
            .await
            .expect("import");
        db.close().await;
        let mut config = scootfleet::config::Config::for_database(&database.url);
        config.fleet_sweep_interval_ms = 3_600_000;
        let started = Instant::now();
        let server = Arc::new(TestServer::start_on(backend, database, config).await);
        println!(
            "{backend:?}: start-up with 100 200 scooters: {:.0} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        let s = server.clone();
        let rate = drive(20_000, move |i| {
            let s = s.clone();
            async move {
                let lat = 48.82 + (i % 80) as f64 * 0.001;
                let lon = 2.26 + (i % 150) as f64 * 0.001;
                let path = format!("/v1/scooters/nearby?lat={lat}&lon={lon}&radius_m=500&limit=10");
                s.get(&path, None).await.expect(200);
            }
        })
        .await;
        println!("{backend:?}: nearby over 100k scooters (500 m, 10): {rate:.0} req/s");
        Arc::into_inner(server).expect("one owner").stop().await;
    }
}
