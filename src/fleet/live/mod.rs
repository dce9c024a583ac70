//! The live index: the whole fleet in memory, with an R-tree for "nearest rentable scooters".
//!
//! Positions are kept in the tree as points on the unit sphere (x, y, z): the straight-line
//! (chord) distance between two such points grows with the great-circle distance, so the
//! tree's nearest-neighbour walk returns scooters in distance order, with no distortion near
//! the poles or across the antimeridian. The tree's points are `f32` (half the memory of
//! `f64`), exact to about 0.7 m: a search walks a little past its last candidate and orders
//! what it found by the exact distance, so answers are as with exact points.
//!
//! The tree holds every scooter but those on a trip, each where it stood when it last moved
//! through the tree: a scooter whose point lies within [`SLACK_M`] of its tree point (a
//! parked scooter's GPS wandering) moves in its record only, and a scooter on a trip is
//! taken out when the trip starts and put back where it ends. Telemetry from parked
//! scooters and from rides then leaves the tree alone: it neither wears nor grows (a node
//! that takes an insertion doubles its room). Searches walk past their radius by the slack
//! and measure every candidate at its exact place.
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
    /// Insertions the tree has taken since it was last bulk-loaded: moves through the tree (a
    /// removal and an insertion each) and scooters back from a trip.
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

/// How far a scooter may stand from its point in the tree before the tree follows it: more
/// than a parked scooter's GPS wanders, little beside a search's radius.
pub const SLACK_M: f64 = 5.0;

/// Whether a scooter in `state` has an entry in the tree: all but those on a trip, whose
/// moves searches never need (they list available scooters only) and which come back to
/// the tree where the trip ends.
fn in_tree(state: ScooterState) -> bool {
    state != ScooterState::OnTrip
}

/// Finds `slot`'s entry, which lies within the slack of `near`'s centre, through the boxes
/// that meet `near`; with `to`, through those that hold `to` as well: if it is found then,
/// every box above it holds `to`.
#[derive(Clone, Copy)]
struct Holding {
    slot: u32,
    near: AABB<[f32; 3]>,
    to: Option<[f32; 3]>,
}

impl Holding {
    /// `slot`'s entry, the scooter standing at `(lat, lon)`.
    fn new(slot: u32, lat: f64, lon: f64) -> Self {
        // The slack as a chord, and the f32 rounding of both points, with a margin.
        let reach = chord(SLACK_M) + 3e-7;
        let centre = unit_vector(lat, lon);
        let lower = centre.map(|c| (c - reach) as f32);
        let upper = centre.map(|c| (c + reach) as f32);
        Holding {
            slot,
            near: AABB::from_corners(lower, upper),
            to: None,
        }
    }
}

impl SelectionFunction<Entry> for Holding {
    fn should_unpack_parent(&self, envelope: &AABB<[f32; 3]>) -> bool {
        envelope.intersects(&self.near) && self.to.is_none_or(|to| envelope.contains_point(&to))
    }

    fn should_unpack_leaf(&self, entry: &Entry) -> bool {
        entry.data == self.slot
    }
}

/// The squared distance between two tree points, as a chord on the unit sphere.
fn chord_2_between(a: &[f32; 3], b: &[f32; 3]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum()
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

/// How far past a chord the tree's walk must go not to miss a scooter at that chord: the
/// slack between a scooter and its tree point, and the rounding: each `f32` coordinate is
/// off by at most 2⁻²⁵, so a point by at most 5.2·10⁻⁸ and a chord between two by
/// 1.04·10⁻⁷ (0.66 m), plus the `f32` arithmetic's relative error; taken with a margin of
/// more than twice that.
fn walk_past(found: f64) -> f64 {
    let reach = found + chord(SLACK_M) + 3e-7 + 1e-6 * found;
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
        if in_tree(record.state) {
            self.points
                .push(Entry::new(tree_point(record.lat, record.lon), slot));
        }
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
        if in_tree(scooter.state) {
            self.tree
                .insert(Entry::new(tree_point(scooter.lat, scooter.lon), slot));
        }
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
        if in_tree(moved.state) {
            self.follow(slot, was, (moved.lat, moved.lon));
        }
        Some(Scooter::new(self.ids.id(slot), &moved))
    }

    /// Keeps the tree's point of `slot`, a scooter that moved from `was` to `now`, within the
    /// slack of where it stands: a move within the slack of its point leaves the tree as it
    /// is (a parked scooter's GPS wandering); one whose new point lies inside every box on
    /// its way down from the root is made in place (no removal, no insertion, no growth);
    /// any other takes it out and puts it back.
    fn follow(&mut self, slot: u32, was: (f64, f64), now: (f64, f64)) {
        if let Some(moved) = &mut self.moved_during_rebuild {
            moved.push(slot);
        }
        let to = tree_point(now.0, now.1);
        let holding = Holding::new(slot, was.0, was.1);
        let found = self
            .tree
            .locate_with_selection_function(holding)
            .next()
            .map(|entry| *entry.geom());
        debug_assert!(found.is_some(), "slot {slot} is in the tree");
        let Some(point) = found else {
            self.tree.insert(Entry::new(to, slot));
            return;
        };
        if chord_2_between(&point, &to) <= chord(SLACK_M).powi(2) {
            return;
        }
        let in_place = Holding {
            to: Some(to),
            ..Holding::new(slot, was.0, was.1)
        };
        if let Some(entry) = self
            .tree
            .locate_with_selection_function_mut(in_place)
            .next()
        {
            *entry = Entry::new(to, slot);
            return;
        }
        self.tree.remove_with_selection_function(holding);
        self.tree.insert(Entry::new(to, slot));
        self.moves_since_build += 1;
    }

    /// Takes `slot`, standing at `(lat, lon)`, out of the tree.
    fn take_out(&mut self, slot: u32, lat: f64, lon: f64) {
        self.tree
            .remove_with_selection_function(Holding::new(slot, lat, lon));
        if let Some(moved) = &mut self.moved_during_rebuild {
            moved.push(slot);
        }
    }

    /// Puts `slot`, standing at `(lat, lon)`, in the tree.
    fn put_in(&mut self, slot: u32, lat: f64, lon: f64) {
        self.tree.insert(Entry::new(tree_point(lat, lon), slot));
        self.moves_since_build += 1;
        if let Some(moved) = &mut self.moved_during_rebuild {
            moved.push(slot);
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
        let was_in_tree = in_tree(scooter.state);
        scooter.state = state;
        scooter.state_version = version;
        let changed = *scooter;
        match (was_in_tree, in_tree(state)) {
            (true, false) => self.take_out(slot, changed.lat, changed.lon),
            (false, true) => self.put_in(slot, changed.lat, changed.lon),
            _ => {}
        }
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
            assert!(index
                .tree
                .locate_with_selection_function(holding)
                .next()
                .is_some());
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
    fn tree_point_of(index: &LiveIndex, id: &str) -> Option<[f32; 3]> {
        let slot = index.ids.find(id)?;
        let record = index.records[slot as usize];
        let holding = Holding::new(slot, record.lat, record.lon);
        let found = index.tree.locate_with_selection_function(holding).next();
        found.map(|entry| *entry.geom())
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
}
