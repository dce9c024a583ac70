//! The live index: the whole fleet in memory, with an R-tree for "nearest rentable scooters".
//!
//! Positions are kept in the tree as points on the unit sphere (x, y, z): the straight-line
//! (chord) distance between two such points grows with the great-circle distance, so the
//! tree's nearest-neighbour walk returns scooters in distance order, with no distortion near
//! the poles or across the antimeridian. The tree's points are `f32` (half the memory of
//! `f64`), exact to about 0.7 m: a search walks a little past its last candidate and orders
//! what it found by the exact distance, so answers are as with exact points.
//!
//! Whether each scooter stands in the service area is decided when it moves (or when the
//! zones change), not at every search: a search then does no polygon test at all. A tree
//! worn by moves is rebuilt off the hot path ([`rebuild`]).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use rstar::primitives::GeomWithData;
use rstar::{Envelope, RTree, SelectionFunction, AABB};

use super::{haversine_m, Reading, ScooterState, EARTH_RADIUS_M};
use crate::zones::ZoneSet;

mod ids;
mod placing;
mod rebuild;
mod scooter;
mod tokens;

pub use rebuild::{RebuiltTree, TreeSnapshot, WornTree};
pub use scooter::{ChangeKind, FleetChange, Record, Scooter};

/// The service area as the live index sees it: a containment test, and a version naming
/// it, so that answers cached for one version are never trusted for another.
pub trait ServiceArea: Send + Sync {
    /// Two areas with the same version contain the same points.
    fn version(&self) -> i64;
    /// Whether `(lat, lon)` is inside (border included).
    fn contains(&self, lat: f64, lon: f64) -> bool;
}

impl ServiceArea for ZoneSet {
    fn version(&self) -> i64 {
        ZoneSet::version(self)
    }

    fn contains(&self, lat: f64, lon: f64) -> bool {
        self.in_service_area(lat, lon)
    }
}

/// The area of an index not yet told the zones: its cached answers match no real area's
/// version, so searches ask the area they are given.
struct NoAreaYet;

impl ServiceArea for NoAreaYet {
    fn version(&self) -> i64 {
        i64::MIN
    }

    fn contains(&self, _: f64, _: f64) -> bool {
        true
    }
}

type Entry = GeomWithData<[f32; 3], u32>;

/// How many slots of the fleet a sweep looks at at a time (see [`LiveIndex::ids_in_state`]).
pub const SWEPT_AT_ONCE: u32 = 4096;

/// Scooters copied out of the index ([`LiveIndex::select`]): their records, and their ids
/// end to end in one string.
#[derive(Debug, Default)]
pub struct Selection {
    records: Vec<Record>,
    ids: String,
    /// Where each id ends in `ids`.
    ends: Vec<usize>,
}

impl Selection {
    /// Each scooter's id and record, in the order selected.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Record)> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .zip(&self.records)
            .map(|((start, &end), record)| (&self.ids[start..end], record))
    }
}

/// The fleet in memory. Not synchronised itself: [`super::Fleet`] holds it behind a lock.
pub struct LiveIndex {
    records: Vec<Record>,
    /// Whether the scooter in the same slot stands in `area`, kept true on every move.
    inside: Vec<bool>,
    area: Arc<dyn ServiceArea>,
    /// Each slot's id, and slots by id.
    ids: ids::Ids,
    by_token: tokens::TokenTable,
    tree: RTree<Entry>,
    /// Moves (removal and insertion) the tree has taken since it was last bulk-loaded.
    moves_since_build: usize,
    /// While a new tree is built from a snapshot, the slots that moved since it was taken.
    moved_during_rebuild: Option<Vec<u32>>,
    /// While the fleet is placed in a new service area, the slots that moved since.
    moved_during_placing: Option<Vec<u32>>,
}

impl Default for LiveIndex {
    fn default() -> Self {
        LiveIndex {
            records: Vec::new(),
            inside: Vec::new(),
            area: Arc::new(NoAreaYet),
            ids: ids::Ids::default(),
            by_token: tokens::TokenTable::default(),
            tree: RTree::new(),
            moves_since_build: 0,
            moved_during_rebuild: None,
            moved_during_placing: None,
        }
    }
}

/// Finds `slot`'s entry at `from` through the boxes that hold both `from` and `to` only: if
/// it is found, every box above it holds `to`.
struct StaysInside {
    slot: u32,
    from: [f32; 3],
    to: [f32; 3],
}

impl SelectionFunction<Entry> for StaysInside {
    fn should_unpack_parent(&self, envelope: &AABB<[f32; 3]>) -> bool {
        envelope.contains_point(&self.from) && envelope.contains_point(&self.to)
    }

    fn should_unpack_leaf(&self, entry: &Entry) -> bool {
        entry.data == self.slot && *entry.geom() == self.from
    }
}

/// The point on the unit sphere of a WGS84 position.
fn unit_vector(lat: f64, lon: f64) -> [f64; 3] {
    let (lat, lon) = (lat.to_radians(), lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

/// A position as the tree holds it: its unit vector rounded to `f32`.
fn tree_point(lat: f64, lon: f64) -> [f32; 3] {
    unit_vector(lat, lon).map(|c| c as f32)
}

/// The chord, on the unit sphere, of a great-circle distance in metres.
fn chord(distance_m: f64) -> f64 {
    2.0 * (distance_m / (2.0 * EARTH_RADIUS_M)).sin()
}

/// The squared chord, on the unit sphere, of a great-circle distance in metres.
#[cfg(test)]
fn chord_2(distance_m: f64) -> f64 {
    chord(distance_m).powi(2)
}

/// How far past a chord the tree's walk must go not to miss a point at that chord: each
/// `f32` coordinate is off by at most 2⁻²⁵, so a point by at most 5.2·10⁻⁸ and a chord
/// between two by 1.04·10⁻⁷ (0.66 m), plus the `f32` arithmetic's relative error; taken
/// with a margin of more than twice that.
fn walk_past(chord: f64) -> f64 {
    let reach = chord + 3e-7 + 1e-6 * chord;
    reach * reach
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

/// A live index in the making, fed one stored scooter at a time as the rows stream in: the
/// token table and the tree's points are ready when the last row arrives, and
/// [`IndexBuilder::finish`] is left with the bulk load and the ids' order.
pub struct IndexBuilder {
    records: Vec<Record>,
    ids: ids::Ids,
    points: Vec<Entry>,
    by_token: tokens::TokenTable,
}

/// About how long a fleet code is, to reserve room for a fleet's ids at once (what is not
/// used is given back when the build finishes).
const ID_BYTES_EXPECTED: usize = 12;

impl IndexBuilder {
    /// A builder for about `capacity` scooters (more may come; each part then grows).
    pub fn with_capacity(capacity: usize) -> Self {
        IndexBuilder {
            records: Vec::with_capacity(capacity),
            ids: ids::Ids::with_capacity(capacity, ID_BYTES_EXPECTED),
            points: Vec::with_capacity(capacity),
            by_token: tokens::TokenTable::with_capacity(capacity),
        }
    }

    pub fn push(&mut self, scooter_id: &str, record: Record, token_hash: [u8; 32]) {
        let slot = self.ids.push_unordered(scooter_id);
        self.points
            .push(Entry::new(tree_point(record.lat, record.lon), slot));
        self.by_token.push(token_hash);
        self.records.push(record);
    }

    /// The index: the tree is bulk-loaded on a second thread while the ids are sorted.
    pub fn finish(self) -> LiveIndex {
        let IndexBuilder {
            records,
            mut ids,
            points,
            by_token,
        } = self;
        let tree = std::thread::scope(|scope| {
            let tree = scope.spawn(|| RTree::bulk_load(points));
            ids.sort();
            tree.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        LiveIndex {
            inside: vec![true; records.len()],
            records,
            ids,
            by_token,
            tree,
            ..LiveIndex::default()
        }
    }
}

impl LiveIndex {
    /// Builds the index in one pass (bulk loading makes a better tree than inserting).
    pub fn build(entries: Vec<(Scooter, [u8; 32])>) -> Self {
        let mut builder = IndexBuilder::with_capacity(entries.len());
        for (scooter, token_hash) in entries {
            builder.push(&scooter.scooter_id, scooter.record(), token_hash);
        }
        builder.finish()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Adds a newly registered scooter; `false` if its id is already known.
    pub fn insert(&mut self, scooter: Scooter, token_hash: [u8; 32]) -> bool {
        let Some(slot) = self.ids.insert(&scooter.scooter_id) else {
            return false;
        };
        self.tree
            .insert(Entry::new(tree_point(scooter.lat, scooter.lon), slot));
        if let Some(moved) = &mut self.moved_during_rebuild {
            moved.push(slot);
        }
        if let Some(moved) = &mut self.moved_during_placing {
            moved.push(slot);
        }
        self.by_token.push(token_hash);
        self.inside
            .push(self.area.contains(scooter.lat, scooter.lon));
        self.records.push(scooter.record());
        true
    }

    /// The scooter in `slot`, with its id.
    fn scooter(&self, slot: u32) -> Option<Scooter> {
        let record = self.records.get(slot as usize)?;
        Some(Scooter::new(self.ids.id(slot), record))
    }

    pub fn get(&self, scooter_id: &str) -> Option<Scooter> {
        self.scooter(self.ids.find(scooter_id)?)
    }

    /// The scooter named `scooter_id`, without a copy of its id.
    pub fn record(&self, scooter_id: &str) -> Option<&Record> {
        let slot = self.ids.find(scooter_id)?;
        self.records.get(slot as usize)
    }

    /// The scooter whose device token hashes to `token_hash`.
    pub fn by_token(&self, token_hash: &[u8; 32]) -> Option<Scooter> {
        self.scooter(self.by_token.get(token_hash)?)
    }

    fn slot_mut(&mut self, scooter_id: &str) -> Option<(u32, &mut Record)> {
        let slot = self.ids.find(scooter_id)?;
        self.records.get_mut(slot as usize).map(|r| (slot, r))
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
        let was = (scooter.lat, scooter.lon);
        scooter.lat = reading.lat;
        scooter.lon = reading.lon;
        scooter.range_km = reading.range_km;
        scooter.battery_pct = reading.battery_pct;
        scooter.last_seen_ms = reading.recorded_at_ms;
        let moved = *scooter;
        if (moved.lat, moved.lon) == was {
            return Some(Scooter::new(self.ids.id(slot), &moved));
        }
        if let Some(inside) = self.inside.get_mut(slot as usize) {
            *inside = self.area.contains(moved.lat, moved.lon);
        }
        if let Some(placing) = &mut self.moved_during_placing {
            placing.push(slot);
        }
        // A move smaller than the tree's rounding leaves the tree as it is; one that stays
        // inside its node's box (a parked scooter's GPS wandering) is made in place.
        let (old, new) = (tree_point(was.0, was.1), tree_point(moved.lat, moved.lon));
        if new != old {
            if !self.move_in_place(slot, old, new) {
                self.tree.remove(&Entry::new(old, slot));
                self.tree.insert(Entry::new(new, slot));
                self.moves_since_build += 1;
            }
            if let Some(moved) = &mut self.moved_during_rebuild {
                moved.push(slot);
            }
        }
        Some(Scooter::new(self.ids.id(slot), &moved))
    }

    /// Moves `slot`'s entry from `from` to `to` without taking it out of the tree, when every
    /// box on its way down from the root holds `to` as well: the boxes stay true bounds, the
    /// tree keeps its shape and allocates nothing. Says whether it did.
    fn move_in_place(&mut self, slot: u32, from: [f32; 3], to: [f32; 3]) -> bool {
        let found = self
            .tree
            .locate_with_selection_function_mut(StaysInside { slot, from, to })
            .next();
        match found {
            Some(entry) => {
                *entry = Entry::new(to, slot);
                true
            }
            None => false,
        }
    }

    /// Sets a state committed to the database as `version`, unless a later one is already
    /// here. Returns the scooter when its state changed.
    pub fn apply_state(
        &mut self,
        scooter_id: &str,
        state: ScooterState,
        version: i64,
    ) -> Option<Scooter> {
        let (slot, scooter) = self.slot_mut(scooter_id)?;
        let version = Record::version(version);
        if version <= scooter.state_version {
            return None;
        }
        // Off a trip, or past changes this server did not see (one may have been a trip):
        // the public id changes.
        let unseen = version - scooter.state_version > 1;
        if unseen || (scooter.state == ScooterState::OnTrip && state != ScooterState::OnTrip) {
            scooter.trips = scooter.trips.wrapping_add(1);
        }
        scooter.state = state;
        scooter.state_version = version;
        let changed = *scooter;
        Some(Scooter::new(self.ids.id(slot), &changed))
    }

    /// Marks each of `scooter_ids` as armed for dispatch, or not ([`Record::dispatch_armed`]).
    pub fn set_dispatch_armed<S: AsRef<str>>(&mut self, scooter_ids: &[S], armed: bool) {
        for scooter_id in scooter_ids {
            if let Some((_, record)) = self.slot_mut(scooter_id.as_ref()) {
                record.dispatch_armed = armed;
            }
        }
    }

    /// The version of the service area the index knows each scooter's place in.
    pub fn area_version(&self) -> i64 {
        self.area.version()
    }

    /// Rentable scooters within the radius, nearest first, with their distance in metres.
    /// Scooters outside `area` are left out: by the cached answer when the index knows
    /// this very area, by asking `area` otherwise (just after the zones changed).
    pub fn nearby(&self, query: &NearbyQuery, area: &dyn ServiceArea) -> Vec<(Scooter, f64)> {
        let cached = area.version() == self.area.version();
        let radius = query.radius_m.min(EARTH_RADIUS_M * std::f64::consts::PI);
        // The tree's distances are rounded: the walk goes past the radius by the rounding,
        // and once `limit` scooters are found, past the farthest of them by as much.
        let mut stop_2 = walk_past(chord(radius));
        // Slots first: only the answers' ids are copied out of the arena.
        let mut found: Vec<(u32, f64)> = Vec::with_capacity(query.limit.min(128));
        if query.limit == 0 {
            return Vec::new();
        }
        let centre = tree_point(query.lat, query.lon);
        for (entry, distance_2) in self.tree.nearest_neighbor_iter_with_distance_2(&centre) {
            if f64::from(distance_2) > stop_2 {
                break;
            }
            let slot = entry.data as usize;
            let Some(scooter) = self.records.get(slot) else {
                continue;
            };
            if scooter.state != ScooterState::Available || scooter.range_km < query.min_range_km {
                continue;
            }
            let inside = if cached {
                self.inside.get(slot).copied().unwrap_or(false)
            } else {
                area.contains(scooter.lat, scooter.lon)
            };
            if !inside {
                continue;
            }
            let distance = haversine_m(query.lat, query.lon, scooter.lat, scooter.lon);
            // The chord test above is exact up to rounding; the contract's bound is on metres.
            if distance > query.radius_m {
                continue;
            }
            // Nearest first by the exact distance; equals keep the order they came in.
            let at = found.partition_point(|&(_, d)| d <= distance);
            if at == query.limit {
                continue;
            }
            found.insert(at, (entry.data, distance));
            found.truncate(query.limit);
            if let (true, Some(&(_, farthest))) = (found.len() == query.limit, found.last()) {
                stop_2 = walk_past(chord(farthest));
            }
        }
        found
            .into_iter()
            .filter_map(|(slot, distance)| Some((self.scooter(slot)?, distance)))
            .collect()
    }

    /// Up to `limit` scooters in id order, after `after` when given; and whether more follow.
    pub fn page(&self, after: Option<&str>, limit: usize) -> (Vec<Scooter>, bool) {
        let mut slots = self.ids.after(after);
        let page: Vec<Scooter> = slots
            .by_ref()
            .take(limit)
            .filter_map(|slot| self.scooter(slot))
            .collect();
        let more = slots.next().is_some();
        (page, more)
    }

    /// Every scooter whose record passes `keep`, in id order, copied out without an
    /// allocation of its own: a feed of the whole fleet is three vectors.
    pub fn select(&self, keep: impl Fn(&Record) -> bool) -> Selection {
        let mut selection = Selection::default();
        for slot in self.ids.after(None) {
            let Some(record) = self.records.get(slot as usize) else {
                continue;
            };
            if keep(record) {
                selection.records.push(*record);
                selection.ids.push_str(self.ids.id(slot));
                selection.ends.push(selection.ids.len());
            }
        }
        selection
    }

    /// Available scooters in `slots` not heard from since `cutoff_ms`.
    pub fn silent_since(&self, cutoff_ms: i64, slots: Range<u32>) -> Vec<Arc<str>> {
        self.ids_in_state(ScooterState::Available, |s| s.heard_ms < cutoff_ms, slots)
    }

    /// How many scooters are in each state, and how many are below `threshold_km` of range.
    pub fn census(&self, threshold_km: f64) -> (BTreeMap<&'static str, usize>, usize) {
        let mut by_state = BTreeMap::new();
        let mut below = 0;
        for scooter in &self.records {
            *by_state.entry(scooter.state.as_str()).or_insert(0) += 1;
            if scooter.range_km < threshold_km && scooter.state != ScooterState::Removed {
                below += 1;
            }
        }
        (by_state, below)
    }

    /// The scooters in `state` that also pass `filter`, among the slots `slots`: a sweep
    /// over the fleet takes it a slice at a time ([`SWEPT_AT_ONCE`]), so that a million
    /// ids are never copied out at once (at closing time, every scooter changes state).
    pub fn ids_in_state(
        &self,
        state: ScooterState,
        filter: impl Fn(&Record) -> bool,
        slots: Range<u32>,
    ) -> Vec<Arc<str>> {
        let end = slots.end.min(self.records.len() as u32);
        let start = slots.start.min(end);
        (start..end)
            .zip(&self.records[start as usize..end as usize])
            .filter(|(_, s)| s.state == state && filter(s))
            .map(|(slot, _)| Arc::from(self.ids.id(slot)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
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

    /// Asserts that a search finds the distances a scan of every record finds, in order.
    fn finds_what_a_scan_finds(index: &LiveIndex, q: &NearbyQuery) {
        let mut expected: Vec<f64> = index
            .records
            .iter()
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
    fn small_moves_are_made_in_place_and_searches_still_find_every_scooter() {
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
        // A scooter usually stands on an edge of its node's box (the box is drawn around
        // the node's scooters), so a wander outwards leaves it: about four in ten stay.
        let wandered = index.moves_since_build;
        assert!(
            wandered < 7_000,
            "of 10,000 small moves, {wandered} not in place"
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
        for (slot, record) in index.records.iter().enumerate() {
            let point = tree_point(record.lat, record.lon);
            let entry = Entry::new(point, slot as u32);
            assert!(index.tree.contains(&entry), "slot {slot} where it is");
        }
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
}
