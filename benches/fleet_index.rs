//! The live fleet index in-process: cold build, nearby queries, moves, memory.
//!
//! `cargo bench --bench fleet_index` (add `--profile dev` for a quick, unoptimised run).
//! Prints one line per measure; BENCHMARKS.md records the results.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scootfleet::fleet::live::{LiveIndex, NearbyQuery, Scooter};
use scootfleet::fleet::{Reading, ScooterState};

/// Paris inside the Boulevard Périphérique, roughly.
const LAT: (f64, f64) = (48.815, 48.902);
const LON: (f64, f64) = (2.255, 2.415);

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4)
        .unwrap_or(0)
}

fn fleet(n: usize, rng: &mut StdRng) -> Vec<(Scooter, [u8; 32])> {
    (0..n)
        .map(|i| {
            let mut token = [0u8; 32];
            rng.fill(&mut token);
            let scooter = Scooter {
                scooter_id: format!("CS-{i:07}").into(),
                state: ScooterState::Available,
                state_version: 0,
                lat: rng.gen_range(LAT.0..LAT.1),
                lon: rng.gen_range(LON.0..LON.1),
                range_km: rng.gen_range(0.0..45.0),
                battery_pct: 50.0,
                last_seen_ms: 0,
                heard_ms: 0,
            };
            (scooter, token)
        })
        .collect()
}

fn queries(index: &LiveIndex, rng: &mut StdRng, count: usize) -> (f64, f64, f64, f64) {
    let mut latencies = Vec::with_capacity(count);
    let mut found = 0usize;
    let started = Instant::now();
    for _ in 0..count {
        let query = NearbyQuery {
            lat: rng.gen_range(LAT.0..LAT.1),
            lon: rng.gen_range(LON.0..LON.1),
            radius_m: 500.0,
            limit: 10,
            min_range_km: 5.0,
        };
        let t = Instant::now();
        found += index.nearby(&query, &|_, _| true).len();
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let p50 = latencies[count / 2];
    let p99 = latencies[count * 99 / 100];
    (rate, p50, p99, found as f64 / count as f64)
}

fn main() {
    let mut rng = StdRng::seed_from_u64(42);
    for n in [100_000usize, 1_000_000] {
        let entries = fleet(n, &mut rng);
        let before = resident_kib();
        let started = Instant::now();
        let mut index = LiveIndex::build(entries);
        let build = started.elapsed();
        let bytes = (resident_kib().saturating_sub(before)) * 1024;
        println!(
            "n={n}: build {:.0} ms, index memory ≈ {} bytes/scooter (resident growth)",
            build.as_secs_f64() * 1e3,
            bytes / n as u64
        );
        let (rate, p50, p99, avg) = queries(&index, &mut rng, 100_000);
        println!(
            "n={n}: nearby 500 m / 10: {rate:.0} q/s on one core, p50 {p50:.1} µs, p99 {p99:.1} µs, {avg:.1} found"
        );
        // Every scooter moves a few metres, in random order, as telemetry would do.
        let started = Instant::now();
        for step in 0..n {
            let i = rng.gen_range(0..n);
            let id = format!("CS-{i:07}");
            let Some(current) = index.get(&id).cloned() else {
                continue;
            };
            let reading = Reading {
                lat: (current.lat + rng.gen_range(-0.0003..0.0003)).clamp(LAT.0, LAT.1),
                lon: (current.lon + rng.gen_range(-0.0004..0.0004)).clamp(LON.0, LON.1),
                range_km: current.range_km,
                battery_pct: current.battery_pct,
                speed_kmh: None,
                recorded_at_ms: step as i64 + 1,
            };
            index.apply_reading(&id, &reading, step as i64 + 1);
        }
        let moves = n as f64 / started.elapsed().as_secs_f64();
        let (rate, p50, p99, _) = queries(&index, &mut rng, 100_000);
        println!(
            "n={n}: {moves:.0} moves/s; after {n} moves: {rate:.0} q/s, p50 {p50:.1} µs, p99 {p99:.1} µs"
        );
    }
}
