//! The live index: the whole fleet in memory, with an R-tree for "nearest rentable scooters".
//!
//! Positions are kept in the tree as points on the unit sphere (x, y, z): the straight-line
//! (chord) distance between two such points grows with the great-circle distance, so the
//! tree's nearest-neighbour walk returns scooters in true distance order, with no
//! distortion near the poles or across the antimeridian.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use rstar::primitives::GeomWithData;
use rstar::RTree;

use super::{haversine_m, Reading, ScooterState, EARTH_RADIUS_M};

/// A scooter as the live view knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Scooter {
    pub scooter_id: Arc<str>,
    pub state: ScooterState,
    /// Grows with every state change, so changes applied out of order are noticed.
    pub state_version: i64,
    pub lat: f64,
    pub lon: f64,
    pub range_km: f64,
    pub battery_pct: f64,
    /// The `recorded_at` of the newest point (registration counts as one).
    pub last_seen_ms: i64,
    /// When the server last heard from it, by its own clock (not stored: after a restart
    /// it starts from `last_seen_ms`).
    pub heard_ms: i64,
}

/// What changed in the fleet, for whoever listens (dispatch, the console's live map).
#[derive(Clone, Debug, PartialEq)]
pub struct FleetChange {
    pub kind: ChangeKind,
    /// The scooter as it is after the change.
    pub scooter: Scooter,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Registered,
    Moved,
    State,
}

type Entry = GeomWithData<[f64; 3], u32>;

/// The fleet in memory. Not synchronised itself: [`super::Fleet`] holds it behind a lock.
#[derive(Default)]
pub struct LiveIndex {
    scooters: Vec<Scooter>,
    by_id: BTreeMap<Arc<str>, u32>,
    by_token: HashMap<[u8; 32], u32>,
    tree: RTree<Entry>,
}

/// The point on the unit sphere of a WGS84 position.
fn unit_vector(lat: f64, lon: f64) -> [f64; 3] {
    let (lat, lon) = (lat.to_radians(), lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

/// The squared chord, on the unit sphere, of a great-circle distance in metres.
fn chord_2(distance_m: f64) -> f64 {
    let chord = 2.0 * (distance_m / (2.0 * EARTH_RADIUS_M)).sin();
    chord * chord
}

/// A nearby search.
#[derive(Clone, Copy, Debug)]
pub struct NearbyQuery {
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
    pub limit: usize,
    /// The least range a listed scooter has: the rental floor or the rider's wish.
    pub min_range_km: f64,
}

impl LiveIndex {
    /// Builds the index in one pass (bulk loading makes a better tree than inserting).
    pub fn build(entries: Vec<(Scooter, [u8; 32])>) -> Self {
        let mut index = LiveIndex::default();
        let mut points = Vec::with_capacity(entries.len());
        for (scooter, token_hash) in entries {
            let slot = index.scooters.len() as u32;
            points.push(Entry::new(unit_vector(scooter.lat, scooter.lon), slot));
            index.by_id.insert(scooter.scooter_id.clone(), slot);
            index.by_token.insert(token_hash, slot);
            index.scooters.push(scooter);
        }
        index.tree = RTree::bulk_load(points);
        index
    }

    pub fn len(&self) -> usize {
        self.scooters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scooters.is_empty()
    }

    /// Adds a newly registered scooter; `false` if its id is already known.
    pub fn insert(&mut self, scooter: Scooter, token_hash: [u8; 32]) -> bool {
        if self.by_id.contains_key(&scooter.scooter_id) {
            return false;
        }
        let slot = self.scooters.len() as u32;
        self.tree
            .insert(Entry::new(unit_vector(scooter.lat, scooter.lon), slot));
        self.by_id.insert(scooter.scooter_id.clone(), slot);
        self.by_token.insert(token_hash, slot);
        self.scooters.push(scooter);
        true
    }

    pub fn get(&self, scooter_id: &str) -> Option<&Scooter> {
        let slot = *self.by_id.get(scooter_id)?;
        self.scooters.get(slot as usize)
    }

    /// The scooter whose device token hashes to `token_hash`.
    pub fn by_token(&self, token_hash: &[u8; 32]) -> Option<&Scooter> {
        let slot = *self.by_token.get(token_hash)?;
        self.scooters.get(slot as usize)
    }

    fn slot_mut(&mut self, scooter_id: &str) -> Option<(u32, &mut Scooter)> {
        let slot = *self.by_id.get(scooter_id)?;
        self.scooters.get_mut(slot as usize).map(|s| (slot, s))
    }

    /// Takes a stored reading into account, heard at `heard_ms`: the scooter moves only when
    /// the reading is newer than anything known. Returns the scooter when it moved.
    pub fn apply_reading(
        &mut self,
        scooter_id: &str,
        reading: &Reading,
        heard_ms: i64,
    ) -> Option<Scooter> {
        let (slot, scooter) = self.slot_mut(scooter_id)?;
        scooter.heard_ms = scooter.heard_ms.max(heard_ms);
        if reading.recorded_at_ms <= scooter.last_seen_ms {
            return None;
        }
        let old = unit_vector(scooter.lat, scooter.lon);
        scooter.lat = reading.lat;
        scooter.lon = reading.lon;
        scooter.range_km = reading.range_km;
        scooter.battery_pct = reading.battery_pct;
        scooter.last_seen_ms = reading.recorded_at_ms;
        let moved = scooter.clone();
        let new = unit_vector(moved.lat, moved.lon);
        if new != old {
            self.tree.remove(&Entry::new(old, slot));
            self.tree.insert(Entry::new(new, slot));
        }
        Some(moved)
    }

    /// Sets a state committed to the database as `version`, unless a later one is already
    /// here. Returns the scooter when its state changed.
    pub fn apply_state(
        &mut self,
        scooter_id: &str,
        state: ScooterState,
        version: i64,
    ) -> Option<Scooter> {
        let (_, scooter) = self.slot_mut(scooter_id)?;
        if version <= scooter.state_version {
            return None;
        }
        scooter.state = state;
        scooter.state_version = version;
        Some(scooter.clone())
    }

    /// Rentable scooters within the radius, nearest first, with their distance in metres.
    /// `in_area` says whether a position is inside the service area.
    pub fn nearby(
        &self,
        query: &NearbyQuery,
        in_area: &dyn Fn(f64, f64) -> bool,
    ) -> Vec<(&Scooter, f64)> {
        let max_2 = chord_2(query.radius_m.min(EARTH_RADIUS_M * std::f64::consts::PI));
        let mut found = Vec::with_capacity(query.limit.min(128));
        if query.limit == 0 {
            return found;
        }
        let centre = unit_vector(query.lat, query.lon);
        for (entry, distance_2) in self.tree.nearest_neighbor_iter_with_distance_2(&centre) {
            if distance_2 > max_2 {
                break;
            }
            let Some(scooter) = self.scooters.get(entry.data as usize) else {
                continue;
            };
            if scooter.state != ScooterState::Available
                || scooter.range_km < query.min_range_km
                || !in_area(scooter.lat, scooter.lon)
            {
                continue;
            }
            let distance = haversine_m(query.lat, query.lon, scooter.lat, scooter.lon);
            // The chord test above is exact up to rounding; the contract's bound is on metres.
            if distance > query.radius_m {
                continue;
            }
            found.push((scooter, distance));
            if found.len() == query.limit {
                break;
            }
        }
        found
    }

    /// Up to `limit` scooters in id order, after `after` when given; and whether more follow.
    pub fn page(&self, after: Option<&str>, limit: usize) -> (Vec<&Scooter>, bool) {
        let start = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let mut slots = self
            .by_id
            .range::<str, _>((start, Bound::Unbounded))
            .map(|(_, slot)| *slot);
        let page: Vec<&Scooter> = slots
            .by_ref()
            .take(limit)
            .filter_map(|slot| self.scooters.get(slot as usize))
            .collect();
        let more = slots.next().is_some();
        (page, more)
    }

    /// Available scooters not heard from since `cutoff_ms`.
    pub fn silent_since(&self, cutoff_ms: i64) -> Vec<Arc<str>> {
        self.ids_in_state(ScooterState::Available, |s| s.heard_ms < cutoff_ms)
    }

    /// How many scooters are in each state, and how many are below `threshold_km` of range.
    pub fn census(&self, threshold_km: f64) -> (BTreeMap<&'static str, usize>, usize) {
        let mut by_state = BTreeMap::new();
        let mut below = 0;
        for scooter in &self.scooters {
            *by_state.entry(scooter.state.as_str()).or_insert(0) += 1;
            if scooter.range_km < threshold_km && scooter.state != ScooterState::Removed {
                below += 1;
            }
        }
        (by_state, below)
    }

    /// The scooters in `state` that also pass `filter`.
    pub fn ids_in_state(
        &self,
        state: ScooterState,
        filter: impl Fn(&Scooter) -> bool,
    ) -> Vec<Arc<str>> {
        self.scooters
            .iter()
            .filter(|s| s.state == state && filter(s))
            .map(|s| s.scooter_id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scooter(id: &str, lat: f64, lon: f64, range_km: f64) -> Scooter {
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

    fn query(radius_m: f64, limit: usize) -> NearbyQuery {
        NearbyQuery {
            lat: 48.8566,
            lon: 2.3522,
            radius_m,
            limit,
            min_range_km: 5.0,
        }
    }

    fn ids(found: &[(&Scooter, f64)]) -> Vec<String> {
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
        let found = index.nearby(&query(500.0, 10), &|_, _| true);
        assert_eq!(ids(&found), ["near", "mid"]);
        assert!(found[0].1 < found[1].1 && found[1].1 <= 500.0);
        let found = index.nearby(&query(1000.0, 10), &|_, _| true);
        assert_eq!(ids(&found), ["near", "mid", "far"]);
        let found = index.nearby(&query(1000.0, 1), &|_, _| true);
        assert_eq!(ids(&found), ["near"]);
    }

    #[test]
    fn nearby_filters_range_state_and_area() {
        let mut index = index();
        let mut low = query(1000.0, 10);
        low.min_range_km = 3.0;
        assert_eq!(ids(&index.nearby(&low, &|_, _| true))[1], "flat");
        assert!(index.apply_state("near", ScooterState::OnTrip, 1).is_some());
        let found = index.nearby(&query(1000.0, 10), &|_, lon| lon < 2.36);
        assert_eq!(ids(&found), ["mid"]);
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
            ids(&index.nearby(&query(50.0, 10), &|_, _| true)),
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
            .silent_since(150)
            .iter()
            .map(|s| s.to_string())
            .collect();
        silent.sort();
        assert_eq!(silent, ["far", "flat", "near"]);
        assert!(index.silent_since(100).is_empty());
    }
}
