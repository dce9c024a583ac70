//! The live fleet index in-process: cold build, nearby queries, moves, rebuilds, memory.
//!
//! `cargo bench --bench fleet_index` (add `--profile dev` for a quick, unoptimised run).
//! Prints one line per measure; BENCHMARKS.md records the results.

use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scootfleet::fleet::live::{LiveIndex, NearbyQuery, Scooter, ServiceArea, SnapshotRoom};
use scootfleet::fleet::{Reading, ScooterState};
use scootfleet::zones::{default_feature_collection, parse_zones, ZoneSet};

/// Paris inside the Boulevard Périphérique, roughly.
const LAT: (f64, f64) = (48.815, 48.902);
const LON: (f64, f64) = (2.255, 2.415);

fn resident_kib() -> u64 {
    scootfleet::heap::resident_bytes().unwrap_or(0) / 1024
}

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e3
}

/// The built-in service area (Paris and Neuilly), as the server has it before any upload.
fn paris() -> ZoneSet {
    let collection = default_feature_collection().expect("built-in zones");
    let zones = parse_zones(&collection).expect("built-in zones parse");
    ZoneSet::new(1, chrono::Utc::now(), None, collection, zones)
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

fn queries(
    index: &LiveIndex,
    area: &dyn ServiceArea,
    rng: &mut StdRng,
    count: usize,
) -> (f64, f64, f64, f64) {
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
        found += index.nearby(&query, area).len();
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let p50 = latencies[count / 2];
    let p99 = latencies[count * 99 / 100];
    (rate, p50, p99, found as f64 / count as f64)
}

fn report(n: usize, what: &str, (rate, p50, p99, avg): (f64, f64, f64, f64)) {
    println!(
        "n={n}: nearby 500 m / 10, {what}: {rate:.0} q/s on one core, p50 {p50:.1} µs, p99 {p99:.1} µs, {avg:.1} found"
    );
}

/// Every scooter moves a few metres, in random order, as telemetry would do; moves/s.
fn move_all(index: &mut LiveIndex, n: usize, rng: &mut StdRng, clock: &mut i64) -> f64 {
    let ids: Vec<String> = (0..n).map(|i| format!("CS-{i:07}")).collect();
    let started = Instant::now();
    for _ in 0..n {
        let id = &ids[rng.gen_range(0..n)];
        let Some(current) = index.get(id) else {
            continue;
        };
        *clock += 1;
        let reading = Reading {
            lat: (current.lat + rng.gen_range(-0.0003..0.0003)).clamp(LAT.0, LAT.1),
            lon: (current.lon + rng.gen_range(-0.0004..0.0004)).clamp(LON.0, LON.1),
            range_km: current.range_km,
            battery_pct: current.battery_pct,
            speed_kmh: None,
            recorded_at_ms: *clock,
        };
        index.apply_reading(id, &reading, *clock);
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// As the telemetry benchmarks move them (`benches/telemetry_load.rs` without a `FLEET`):
/// `count` scooters, each to one of the 1,500 places of a 3 × 3.5 km grid in the west of
/// the city, most of them far from where they were.
fn relocate(index: &mut LiveIndex, count: usize, clock: &mut i64) {
    for i in 0..count {
        *clock += 1;
        let reading = Reading {
            lat: 48.84 + (i % 300) as f64 * 0.0001,
            lon: 2.30 + (i % 500) as f64 * 0.0001,
            range_km: 30.0,
            battery_pct: 60.0,
            speed_kmh: None,
            recorded_at_ms: *clock,
        };
        index.apply_reading(&format!("CS-{i:07}"), &reading, *clock);
    }
}

/// `index` told which of its scooters are inside `area`, as the server does at start-up.
fn place_in(index: &mut LiveIndex, area: &Arc<dyn ServiceArea>) {
    let count = index.start_placing();
    let mut positions = Vec::with_capacity(65_536);
    let mut inside = Vec::with_capacity(count);
    while inside.len() < count {
        index.positions_from(inside.len(), &mut positions);
        inside.extend(positions.iter().map(|&(lat, lon)| area.contains(lat, lon)));
    }
    index.adopt_area(area.clone(), inside);
}

fn main() {
    // As the server: large blocks mapped apart, so that freeing them gives them back.
    scootfleet::heap::keep_large_blocks_mapped();
    let mut rng = StdRng::seed_from_u64(42);
    let area: Arc<dyn ServiceArea> = Arc::new(paris());
    let mut clock = 0;
    for n in [100_000usize, 1_000_000] {
        // Resident memory before the input exists, and with the index built from it and the
        // input freed, once the free pages are given back (as the server does every 10 s):
        // the index's own memory, with whatever the allocator could not give back.
        scootfleet::heap::give_back_free_pages();
        let before = resident_kib();
        let entries = fleet(n, &mut rng);
        let started = Instant::now();
        let mut index = LiveIndex::build(entries);
        let build = ms(started);
        scootfleet::heap::give_back_free_pages();
        let bytes = (resident_kib().saturating_sub(before)) * 1024;
        println!(
            "n={n}: build {build:.0} ms, index memory ≈ {} bytes/scooter (resident growth \
             from before the input was made, free pages given back)",
            bytes / n as u64
        );
        // As before the index knows the zones: a polygon test per candidate.
        report(
            n,
            "zones tested per candidate",
            queries(&index, &*area, &mut rng, 50_000),
        );
        let started = Instant::now();
        place_in(&mut index, &area);
        println!("n={n}: placed in the service area in {:.0} ms", ms(started));
        report(
            n,
            "zones known per scooter",
            queries(&index, &*area, &mut rng, 100_000),
        );
        let moves = move_all(&mut index, n, &mut rng, &mut clock);
        println!(
            "n={n}: {moves:.0} moves/s (one per scooter), worn: {}",
            index.is_worn()
        );
        report(
            n,
            "after those moves",
            queries(&index, &*area, &mut rng, 100_000),
        );
        let moves = move_all(&mut index, n, &mut rng, &mut clock);
        println!("n={n}: {moves:.0} moves/s (a second per scooter)");
        report(
            n,
            "after two moves per scooter",
            queries(&index, &*area, &mut rng, 100_000),
        );
        let room = SnapshotRoom::new(index.tree_size());
        let started = Instant::now();
        let snapshot = index.start_rebuild(room).expect("no rebuild under way");
        let copied = ms(started);
        let started = Instant::now();
        let rebuilt = snapshot.build();
        let outside = ms(started);
        let started = Instant::now();
        let worn = index.finish_rebuild(rebuilt);
        let replaced = ms(started);
        drop(worn);
        println!(
            "n={n}: tree rebuilt: {outside:.0} ms outside the lock, {:.1} ms under it \
             ({copied:.1} copying the entries, {replaced:.1} putting the new tree in place)",
            copied + replaced
        );
        report(
            n,
            "after the rebuild",
            queries(&index, &*area, &mut rng, 100_000),
        );
    }
    // The telemetry benchmarks' fleet: 10,000 scooters, every one moved into the grid
    // before the tree is rebuilt (at 10,000 insertions; a move that stays inside its
    // bucket's box is made in place), so that most of the loaded part's buckets are empty
    // and the searches outside the grid find nothing near.
    let n = 10_000;
    let mut index = LiveIndex::build(fleet(n, &mut rng));
    place_in(&mut index, &area);
    report(n, "as loaded", queries(&index, &*area, &mut rng, 100_000));
    relocate(&mut index, n, &mut clock);
    println!(
        "n={n}: every scooter moved into a 3 × 3.5 km grid, worn: {}",
        index.is_worn()
    );
    report(
        n,
        "every scooter moved far since the bulk load",
        queries(&index, &*area, &mut rng, 100_000),
    );
}
