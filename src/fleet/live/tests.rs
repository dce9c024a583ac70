//! The live index's unit tests.

use super::tree::{chord_2, unit_vector};
use super::*;

pub(super) fn scooter(id: &str, lat: f64, lon: f64, range_km: f64) -> Scooter {
    Scooter {
        scooter_id: id.into(),
        state: ScooterState::Available,
        state_version: 0,
        lat,
        lon,
        range_km,
        battery_pct: 50.0,
        last_seen_ms: 100,
        heard_ms: 100,
    }
}

/// A service area for tests: `test` decides, `version` names it.
pub(super) struct Area {
    pub(super) version: i64,
    pub(super) test: fn(f64, f64) -> bool,
}

impl ServiceArea for Area {
    fn version(&self) -> i64 {
        self.version
    }

    fn contains(&self, lat: f64, lon: f64) -> bool {
        (self.test)(lat, lon)
    }
}

pub(super) const EVERYWHERE: Area = Area {
    version: 1,
    test: |_, _| true,
};

pub(super) fn query(radius_m: f64, limit: usize) -> NearbyQuery {
    NearbyQuery {
        lat: 48.8566,
        lon: 2.3522,
        radius_m,
        limit,
        min_range_km: 5.0,
    }
}

pub(super) fn ids(found: &[(Scooter, f64)]) -> Vec<String> {
    found
        .iter()
        .map(|(s, _)| s.scooter_id.to_string())
        .collect()
}

fn index() -> LiveIndex {
    LiveIndex::build(vec![
        (scooter("far", 48.8566, 2.3622, 30.0), [1; 32]), // ~730 m east
        (scooter("near", 48.8567, 2.3522, 30.0), [2; 32]), // ~11 m north
        (scooter("mid", 48.8566, 2.3560, 30.0), [3; 32]), // ~280 m east
        (scooter("flat", 48.8566, 2.3530, 4.0), [4; 32]), // close but low range
    ])
}

#[test]
fn nearby_is_nearest_first_within_the_radius() {
    let index = index();
    let found = index.nearby(&query(500.0, 10), &EVERYWHERE);
    assert_eq!(ids(&found), ["near", "mid"]);
    assert!(found[0].1 < found[1].1 && found[1].1 <= 500.0);
    let found = index.nearby(&query(1000.0, 10), &EVERYWHERE);
    assert_eq!(ids(&found), ["near", "mid", "far"]);
    let found = index.nearby(&query(1000.0, 1), &EVERYWHERE);
    assert_eq!(ids(&found), ["near"]);
}

#[test]
fn nearby_filters_range_state_and_area() {
    let mut index = index();
    let mut low = query(1000.0, 10);
    low.min_range_km = 3.0;
    assert_eq!(ids(&index.nearby(&low, &EVERYWHERE))[1], "flat");
    assert!(index.apply_state("near", ScooterState::OnTrip, 1).is_some());
    let west = Area {
        version: 2,
        test: |_, lon| lon < 2.36,
    };
    let found = index.nearby(&query(1000.0, 10), &west);
    assert_eq!(ids(&found), ["mid"]);
}

pub(super) fn reading(lon: f64, at_ms: i64) -> Reading {
    Reading {
        lat: 48.8566,
        lon,
        range_km: 20.0,
        battery_pct: 40.0,
        speed_kmh: None,
        recorded_at_ms: at_ms,
    }
}

#[test]
fn the_service_area_is_known_per_scooter_and_follows_moves() {
    let mut index = index();
    let west: Arc<dyn ServiceArea> = Arc::new(Area {
        version: 7,
        test: |_, lon| lon < 2.36,
    });
    let count = index.start_placing();
    let mut positions = Vec::with_capacity(3);
    let mut inside = Vec::new();
    while inside.len() < count {
        index.positions_from(inside.len(), &mut positions);
        inside.extend(positions.iter().map(|&(lat, lon)| west.contains(lat, lon)));
        // "far" comes inside once its place was tested: adopting the area tests it again.
        if inside.len() == 3 {
            assert!(index
                .apply_reading("far", &reading(2.3525, 200), 200)
                .is_some());
        }
    }
    assert_eq!(inside.len(), 4, "in two parts");
    index.adopt_area(west, inside);
    assert_eq!(index.area_version(), 7);
    // Same version: the cached answers are used and the area is not asked.
    let same_version = Area {
        version: 7,
        test: |_, _| false,
    };
    let all = query(1000.0, 10);
    assert_eq!(
        ids(&index.nearby(&all, &same_version)),
        ["near", "far", "mid"]
    );
    // Another version (the zones just changed): the area given is asked.
    let newer = Area {
        version: 8,
        test: |_, _| false,
    };
    assert!(index.nearby(&all, &newer).is_empty());
    // A move out of the area is known at once.
    assert!(index
        .apply_reading("mid", &reading(2.3700, 300), 300)
        .is_some());
    let mut wide = query(2000.0, 10);
    wide.min_range_km = 10.0;
    assert_eq!(ids(&index.nearby(&wide, &same_version)), ["near", "far"]);
    // A newly registered scooter is placed too.
    assert!(index.insert(scooter("new", 48.85675, 2.3522, 30.0), [5; 32]));
    assert!(index.insert(scooter("east", 48.8566, 2.3610, 30.0), [6; 32]));
    assert_eq!(
        ids(&index.nearby(&wide, &same_version)),
        ["near", "new", "far"]
    );
}

#[test]
fn readings_move_scooters_forward_only() {
    let mut index = index();
    let newer = Reading {
        lat: 48.8566,
        lon: 2.3523,
        range_km: 20.0,
        battery_pct: 40.0,
        speed_kmh: None,
        recorded_at_ms: 200,
    };
    assert!(index.apply_reading("far", &newer, 300).is_some());
    assert_eq!(
        ids(&index.nearby(&query(50.0, 10), &EVERYWHERE)),
        ["far", "near"]
    );
    let older = Reading {
        lon: 2.40,
        recorded_at_ms: 150,
        ..newer
    };
    assert!(index.apply_reading("far", &older, 400).is_none());
    let far = index.get("far").unwrap();
    assert_eq!(
        (far.lon, far.last_seen_ms, far.heard_ms),
        (2.3523, 200, 400)
    );
    assert_eq!(index.tree.size(), 4);
}

#[test]
fn state_changes_apply_in_version_order() {
    let mut index = index();
    assert!(index.apply_state("mid", ScooterState::OnTrip, 2).is_some());
    assert!(index
        .apply_state("mid", ScooterState::Reserved, 1)
        .is_none());
    assert_eq!(index.get("mid").unwrap().state, ScooterState::OnTrip);
}

#[test]
fn a_trip_ended_or_changes_unseen_count_as_a_trip() {
    let mut index = index();
    let trips = |index: &LiveIndex| index.record("mid").unwrap().trips;
    let version = i64::from(index.record("mid").unwrap().state_version);
    index.apply_state("mid", ScooterState::Reserved, version + 1);
    index.apply_state("mid", ScooterState::OnTrip, version + 2);
    assert_eq!(trips(&index), 0, "reserving and riding end no trip");
    index.apply_state("mid", ScooterState::Available, version + 3);
    assert_eq!(trips(&index), 1, "off the trip");
    // Versions 4 and 5 never reached this index (another server's changes): a trip may
    // have been among them.
    index.apply_state("mid", ScooterState::Reserved, version + 6);
    assert_eq!(trips(&index), 2);
    let selected = index.select(|r| r.state == ScooterState::Reserved);
    let found: Vec<(&str, u16)> = selected.iter().map(|(id, r)| (id, r.trips)).collect();
    assert_eq!(found, [("mid", 2)]);
    let all = index.select(|_| true);
    let ids: Vec<&str> = all.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), index.len());
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[test]
fn pages_walk_the_fleet_in_id_order() {
    let index = index();
    let (page, more) = index.page(None, 3);
    let names: Vec<&str> = page.iter().map(|s| &*s.scooter_id).collect();
    assert_eq!((names, more), (vec!["far", "flat", "mid"], true));
    let (page, more) = index.page(Some("mid"), 3);
    assert_eq!((page.len(), &*page[0].scooter_id, more), (1, "near", false));
    assert_eq!(index.by_token(&[3; 32]).unwrap().scooter_id.as_ref(), "mid");
}

#[test]
fn nearby_orders_by_the_exact_distance_below_the_trees_rounding() {
    use rand::{Rng, SeedableRng};
    // 3,000 scooters within about 25 m of the centre: many stand closer to one another
    // than the tree's f32 points can tell apart.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let centre = query(0.0, 0);
    let entries = (0..3_000u32)
        .map(|i| {
            let lat = centre.lat + rng.gen_range(-0.0002..0.0002);
            let lon = centre.lon + rng.gen_range(-0.0003..0.0003);
            let mut token = [0; 32];
            token[..4].copy_from_slice(&i.to_le_bytes());
            (scooter(&format!("S-{i}"), lat, lon, 30.0), token)
        })
        .collect();
    let index = LiveIndex::build(entries);
    for (radius_m, limit) in [(30.0, 10), (10.0, 100), (3.0, 5), (20.0, 1)] {
        finds_what_a_scan_finds(&index, &query(radius_m, limit));
    }
}

/// Asserts that a search finds the distances a scan of every available scooter finds,
/// in order.
fn finds_what_a_scan_finds(index: &LiveIndex, q: &NearbyQuery) {
    let mut expected: Vec<f64> = index
        .records
        .iter()
        .filter(|s| s.state == ScooterState::Available)
        .map(|s| haversine_m(q.lat, q.lon, s.lat, s.lon))
        .filter(|d| *d <= q.radius_m)
        .collect();
    expected.sort_by(f64::total_cmp);
    expected.truncate(q.limit);
    let found: Vec<f64> = index
        .nearby(q, &EVERYWHERE)
        .iter()
        .map(|&(_, d)| d)
        .collect();
    assert_eq!(found, expected, "{q:?}");
}

#[test]
fn wandering_scooters_rarely_move_through_the_tree_and_searches_find_every_one() {
    use rand::{Rng, SeedableRng};
    // 2,500 scooters about 20 m apart, then four rounds of GPS wandering (up to about
    // 2 m) and a round where one in ten rides 300 m to 1 km away.
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let centre = query(0.0, 0);
    let entries = (0..2_500u32)
        .map(|i| {
            let lat = centre.lat + f64::from(i / 50) * 0.00018;
            let lon = centre.lon + f64::from(i % 50) * 0.00027;
            let mut token = [0; 32];
            token[..4].copy_from_slice(&i.to_le_bytes());
            (scooter(&format!("S-{i}"), lat, lon, 30.0), token)
        })
        .collect();
    let mut index = LiveIndex::build(entries);
    let mut at_ms = 1_000;
    let mut move_to = |index: &mut LiveIndex, i: u32, lat: f64, lon: f64| {
        at_ms += 1;
        let reading = Reading {
            lat,
            lon,
            range_km: 30.0,
            battery_pct: 50.0,
            speed_kmh: None,
            recorded_at_ms: at_ms,
        };
        assert!(index
            .apply_reading(&format!("S-{i}"), &reading, at_ms)
            .is_some());
    };
    for _ in 0..4 {
        for i in 0..2_500u32 {
            let record = index.records[i as usize];
            let lat = record.lat + rng.gen_range(-0.00002..0.00002);
            let lon = record.lon + rng.gen_range(-0.00003..0.00003);
            move_to(&mut index, i, lat, lon);
        }
    }
    // Most wanders stay within the slack of the scooter's tree point; of those that
    // leave it, some are made in place. (348 went through the tree when written.)
    let wandered = index.moves_since_build;
    assert!(
        wandered < 1_000,
        "of 10,000 small moves, {wandered} through the tree"
    );
    for i in (0..2_500u32).step_by(10) {
        let lat = centre.lat + rng.gen_range(-0.01..0.01);
        let lon = centre.lon + rng.gen_range(-0.01..0.01);
        move_to(&mut index, i, lat, lon);
    }
    assert!(
        index.moves_since_build > wandered,
        "rides move through the tree"
    );
    assert_eq!(index.tree.size(), 2_500);
    // Some ride on, some end their rides there: searches still see every scooter
    // available, once.
    for i in (0..2_500u32).step_by(7) {
        let id = format!("S-{i}");
        index.apply_state(&id, ScooterState::OnTrip, 1);
        let record = index.records[i as usize];
        move_to(&mut index, i, record.lat + 0.001, record.lon - 0.002);
        if i % 2 == 0 {
            index.apply_state(&id, ScooterState::Available, 2);
        }
    }
    tree_holds_the_fleet(&index);
    for (lat_step, lon_step, radius_m, limit) in [
        (0, 0, 100.0, 10),
        (10, 20, 60.0, 50),
        (25, 25, 1500.0, 3000),
        (49, 49, 30.0, 5),
    ] {
        let q = NearbyQuery {
            lat: centre.lat + f64::from(lat_step) * 0.00018,
            lon: centre.lon + f64::from(lon_step) * 0.00027,
            ..query(radius_m, limit)
        };
        finds_what_a_scan_finds(&index, &q);
    }
}

/// Asserts that the tree holds every scooter not on a trip once, within the slack of
/// where it stands and found there, and no other.
pub(super) fn tree_holds_the_fleet(index: &LiveIndex) {
    let mut points = vec![Vec::new(); index.len()];
    for entry in index.tree.iter() {
        points[entry.data as usize].push(*entry.geom());
    }
    for (slot, record) in index.records.iter().enumerate() {
        let id = index.ids.id(slot as u32);
        if !in_tree(record.state) {
            assert!(
                points[slot].is_empty(),
                "{id}, on a trip, is not in the tree"
            );
            continue;
        }
        assert_eq!(points[slot].len(), 1, "{id} is in the tree once");
        let exact = tree_point(record.lat, record.lon);
        let off = chord_2_between(&points[slot][0], &exact).sqrt() * EARTH_RADIUS_M;
        assert!(off <= SLACK_M + 0.01, "{id} is {off} m from its tree point");
        let holding = Holding::new(slot as u32, record.lat, record.lon);
        assert!(index.tree.locate(holding).is_some());
    }
}

/// Moves `id` to `(lat, lon)` with a reading at `at_ms`.
fn go(index: &mut LiveIndex, id: &str, lat: f64, lon: f64, at_ms: i64) {
    let reading = Reading {
        lat,
        ..reading(lon, at_ms)
    };
    assert!(index.apply_reading(id, &reading, at_ms).is_some());
}

/// Where the tree has `id`.
pub(super) fn tree_point_of(index: &LiveIndex, id: &str) -> Option<[f32; 3]> {
    let slot = index.ids.find(id)?;
    let record = index.records[slot as usize];
    let holding = Holding::new(slot, record.lat, record.lon);
    index.tree.locate(holding)
}

#[test]
fn a_parked_scooters_wandering_leaves_the_tree_alone_within_the_slack() {
    let mut index = index();
    // "near" stands 11.1 m north of the centre; 3.3 m further, its tree point stays.
    let kept = tree_point_of(&index, "near");
    go(&mut index, "near", 48.85673, 2.3522, 200);
    assert_eq!(tree_point_of(&index, "near"), kept);
    // Searches measure it where it stands: 14.5 m, past 14 m, within 14.6 m.
    let found = index.nearby(&query(14.0, 10), &EVERYWHERE);
    assert!(found.is_empty(), "{found:?}");
    let found = index.nearby(&query(14.6, 10), &EVERYWHERE);
    assert_eq!(ids(&found), ["near"]);
    assert!((found[0].1 - 14.5).abs() < 0.1, "{}", found[0].1);
    // 8.9 m from the centre, where its tree point is 11.1 m away: found within 9 m.
    go(&mut index, "near", 48.85668, 2.3522, 300);
    assert_eq!(tree_point_of(&index, "near"), kept);
    assert_eq!(ids(&index.nearby(&query(9.0, 10), &EVERYWHERE)), ["near"]);
    // Wandering on, 2.2 m at a time to the north: the tree follows once past the slack.
    let mut at = 300;
    for step in 1..=6 {
        at += 100;
        go(
            &mut index,
            "near",
            48.85668 + f64::from(step) * 0.00002,
            2.3522,
            at,
        );
        tree_holds_the_fleet(&index);
    }
    assert_ne!(tree_point_of(&index, "near"), kept);
    assert_eq!(index.tree.size(), 4);
}

#[test]
fn scooters_on_a_trip_leave_the_tree_and_come_back_where_it_ends() {
    let mut index = index();
    assert!(index.apply_state("mid", ScooterState::OnTrip, 1).is_some());
    assert_eq!(index.tree.size(), 3);
    // The ride's points leave the tree alone.
    for (i, lon) in [2.3600, 2.3700, 2.3800].into_iter().enumerate() {
        go(&mut index, "mid", 48.8566, lon, 200 + i as i64);
    }
    assert_eq!((index.tree.size(), index.moves_since_build), (3, 0));
    tree_holds_the_fleet(&index);
    // Back from the trip 1.9 km east of the centre, where the searches find it.
    assert!(index
        .apply_state("mid", ScooterState::Available, 2)
        .is_some());
    assert_eq!(index.tree.size(), 4);
    tree_holds_the_fleet(&index);
    let there = NearbyQuery {
        lon: 2.3800,
        ..query(50.0, 10)
    };
    assert_eq!(ids(&index.nearby(&there, &EVERYWHERE)), ["mid"]);
    assert_eq!(ids(&index.nearby(&query(500.0, 10), &EVERYWHERE)), ["near"]);
    // Reserved, or out of order, a scooter stays where it is in the tree.
    index.apply_state("mid", ScooterState::Reserved, 3);
    index.apply_state("near", ScooterState::NonContactable, 1);
    assert_eq!(index.tree.size(), 4);
    assert!(index.nearby(&query(5000.0, 10), &EVERYWHERE).len() == 1);
    tree_holds_the_fleet(&index);
}

#[test]
fn a_record_is_56_bytes_and_keeps_versions_in_order() {
    assert_eq!(std::mem::size_of::<Record>(), 56);
    assert_eq!(Record::version(7), 7);
    assert_eq!(Record::version(-1), 0);
    assert_eq!(Record::version(i64::MAX), u32::MAX);
    let mut index = index();
    assert!(index
        .apply_state("mid", ScooterState::OnTrip, 5_000_000_000)
        .is_some());
    assert_eq!(index.get("mid").unwrap().state_version, i64::from(u32::MAX));
}

#[test]
fn chords_order_like_great_circles() {
    let a = unit_vector(48.8566, 2.3522);
    let b = unit_vector(48.8584, 2.2945);
    let chord: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let expected = chord_2(haversine_m(48.8566, 2.3522, 48.8584, 2.2945));
    assert!((chord - expected).abs() < 1e-15, "{chord} {expected}");
}

#[test]
fn silence_concerns_available_scooters_only() {
    let mut index = index();
    index.apply_state("mid", ScooterState::OnTrip, 1);
    let mut silent: Vec<String> = index
        .silent_since(150, 0..u32::MAX)
        .iter()
        .map(|s| s.to_string())
        .collect();
    silent.sort();
    assert_eq!(silent, ["far", "flat", "near"]);
    assert!(index.silent_since(100, 0..u32::MAX).is_empty());
    // A slot at a time, the slices together give the same scooters, each once.
    let mut sliced: Vec<String> = (0..index.len() as u32 + 2)
        .flat_map(|slot| index.silent_since(150, slot..slot + 1))
        .map(|s| s.to_string())
        .collect();
    sliced.sort();
    assert_eq!(sliced, silent);
}
