//! Rides through HTTP on a real server (SQLite, or PostgreSQL too with
//! SCOOTFLEET_TEST_POSTGRES): one ride at a time (what a call costs unqueued), unlock + end
//! as fast as they go (peak rides/s), then at a fixed offered rate (500 rides/s) with
//! per-call latency, then 1,000 riders racing for one scooter. Client and server share the
//! machine.
//!
//! `cargo bench --bench rides_load` (add `--profile dev` for a quick, unoptimised run;
//! `RIDES_BENCH_DB_CONNECTIONS` sets the pool size, 16 by default; `RIDES_BENCH_ONLY=sqlite`
//! or `postgres` runs one backend).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fleet::register;
use common::{backends, TestServer};
use serde_json::json;

/// Rider–scooter pairs riding at once in the peak phase.
const PAIRS: usize = 64;
/// Rides per pair in the peak phase.
const RIDES_PER_PAIR: usize = 40;
/// Rides in the one-at-a-time phase.
const SEQUENTIAL_RIDES: usize = 300;
/// Offered rate and length of the paced phase.
const OFFERED_PER_S: u64 = 500;
const PACED_RIDES: usize = 5_000;
/// Riders racing for one scooter.
const RACERS: usize = 1_000;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

async fn rider(s: &TestServer, i: usize) -> String {
    let (_, token) = s.signup(&format!("bench{i}@example.com")).await;
    s.post(
        "/v1/me/wallet/top-ups",
        Some(&token),
        json!({"amount": "500.00", "payment_token": "tok_test_ok"}),
    )
    .await
    .expect(201);
    token
}

/// One ride: unlock then end; returns the two calls' latencies.
async fn ride(s: &TestServer, rider: &str, scooter: &str) -> [Duration; 2] {
    let started = Instant::now();
    let unlock = s
        .post("/v1/rides", Some(rider), json!({"scooter_id": scooter}))
        .await;
    let unlock_took = started.elapsed();
    let ride_id = unlock.expect(201)["ride_id"]
        .as_str()
        .expect("ride_id")
        .to_owned();
    let started = Instant::now();
    s.post(&format!("/v1/rides/{ride_id}/end"), Some(rider), json!({}))
        .await
        .expect(200);
    [unlock_took, started.elapsed()]
}

#[tokio::main]
async fn main() {
    // `RIDES_BENCH_ONLY=sqlite` or `=postgres` runs one backend.
    let only = std::env::var("RIDES_BENCH_ONLY").ok();
    let chosen = backends().into_iter().filter(|backend| {
        only.as_deref()
            .is_none_or(|name| format!("{backend:?}").eq_ignore_ascii_case(name))
    });
    for backend in chosen {
        let server = Arc::new(
            TestServer::start_with(backend, |c| {
                c.db_max_connections = std::env::var("RIDES_BENCH_DB_CONNECTIONS")
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(16);
                c.login_max_failures_per_address = 1_000_000;
            })
            .await,
        );
        let operator = server.operator_token().await;
        let mut pairs = Vec::new();
        for i in 0..PAIRS {
            let lat = 48.85 + (i % 8) as f64 * 0.002;
            let lon = 2.33 + (i / 8) as f64 * 0.002;
            register(&server, &operator, &format!("RB-{i}"), lat, lon, 40.0).await;
            pairs.push((rider(&server, i).await, format!("RB-{i}")));
        }
        let pairs = Arc::new(pairs);

        // One at a time: what a call costs when nothing waits in front of it.
        let (mut unlocks, mut ends) = (Vec::new(), Vec::new());
        for _ in 0..SEQUENTIAL_RIDES {
            let [unlock, end] = ride(&server, &pairs[0].0, &pairs[0].1).await;
            unlocks.push(unlock);
            ends.push(end);
        }
        unlocks.sort();
        ends.sort();
        println!(
            "{backend:?}: one ride at a time: unlock p50 {:.2} ms, p99 {:.2} ms; end p50 {:.2} ms, p99 {:.2} ms",
            percentile(&unlocks, 0.50),
            percentile(&unlocks, 0.99),
            percentile(&ends, 0.50),
            percentile(&ends, 0.99)
        );

        // Peak: every pair rides again as soon as its last ride ended.
        let started = Instant::now();
        let mut tasks = Vec::new();
        for k in 0..PAIRS {
            let (s, pairs) = (server.clone(), pairs.clone());
            tasks.push(tokio::spawn(async move {
                let (rider, scooter) = &pairs[k];
                let mut took = Vec::new();
                for _ in 0..RIDES_PER_PAIR {
                    took.extend(ride(&s, rider, scooter).await);
                }
                took
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.expect("rider"));
        }
        let rides = PAIRS * RIDES_PER_PAIR;
        let rate = rides as f64 / started.elapsed().as_secs_f64();
        latencies.sort();
        println!(
            "{backend:?}: peak {rate:.0} rides/s ({rides} rides, {PAIRS} riders at once); per call p50 {:.1} ms, p99 {:.1} ms",
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99)
        );

        // Paced: a ride starts every 1/OFFERED_PER_S s on the next free pair.
        let free = Arc::new(tokio::sync::Mutex::new((0..PAIRS).collect::<Vec<_>>()));
        let skipped = Arc::new(AtomicUsize::new(0));
        let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / OFFERED_PER_S));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..PACED_RIDES {
            ticker.tick().await;
            let Some(k) = free.lock().await.pop() else {
                skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let (s, pairs, free) = (server.clone(), pairs.clone(), free.clone());
            tasks.push(tokio::spawn(async move {
                let (rider, scooter) = &pairs[k];
                let took = ride(&s, rider, scooter).await;
                free.lock().await.push(k);
                took
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.expect("rider"));
        }
        let done = latencies.len() / 2;
        latencies.sort();
        println!(
            "{backend:?}: offered {OFFERED_PER_S} rides/s for {:.1} s: {done} rides done, {} not started (no free rider); per call p50 {:.1} ms, p99 {:.1} ms",
            started.elapsed().as_secs_f64(),
            skipped.load(Ordering::Relaxed),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99)
        );

        // The race: many riders, one scooter, exactly one ride.
        register(&server, &operator, "RACE-1", 48.86, 2.35, 40.0).await;
        let mut racers = Vec::new();
        for i in 0..RACERS {
            let (_, token) = server.signup(&format!("racer{i}@example.com")).await;
            racers.push(token);
        }
        let gate = Arc::new(tokio::sync::Barrier::new(RACERS));
        let mut tasks = Vec::new();
        for token in racers {
            let (s, gate) = (server.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                gate.wait().await;
                s.post("/v1/rides", Some(&token), json!({"scooter_id": "RACE-1"}))
                    .await
                    .status
                    .as_u16()
            }));
        }
        let mut statuses = std::collections::BTreeMap::new();
        for task in tasks {
            *statuses.entry(task.await.expect("racer")).or_insert(0) += 1;
        }
        println!("{backend:?}: {RACERS} riders racing for one scooter: answers {statuses:?}");
        assert_eq!(statuses.get(&201), Some(&1), "exactly one ride");

        Arc::into_inner(server).expect("one owner").stop().await;
    }
}
