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

use super::{haversine_m, Reading, ScooterState, EARTH_RADIUS_M};
use crate::zones::ZoneSet;

mod ids;
mod packed;
mod placing;
mod rebuild;
mod scooter;
mod tokens;
mod tree;

pub use rebuild::{RebuiltTree, SnapshotRoom, TreeSnapshot, WornTree};
pub use scooter::{ChangeKind, FleetChange, Record, Scooter};
pub use tree::SLACK_M;
use tree::{chord, chord_2_between, in_tree, tree_point, walk_past, Entry, FleetTree, Holding};

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
    tree: FleetTree,
    /// Insertions the tree has taken since it was last bulk-loaded: moves through the tree (a
    /// removal and an insertion each) and scooters back from a trip.
    moves_since_build: usize,
    /// While a new tree is built from a snapshot, the slots that changed since it was taken,
    /// each with where the snapshot had it.
    changed_during_rebuild: Option<Vec<rebuild::Changed>>,
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
            tree: FleetTree::default(),
            moves_since_build: 0,
            changed_during_rebuild: None,
            moved_during_placing: None,
        }
    }
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
            let tree = scope.spawn(|| FleetTree::bulk_load(points));
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
        self.note_rebuild_change(slot, None);
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
        let to = tree_point(now.0, now.1);
        let holding = Holding::new(slot, was.0, was.1);
        let found = self.tree.locate(holding);
        debug_assert!(found.is_some(), "slot {slot} is in the tree");
        let Some(point) = found else {
            self.note_rebuild_change(slot, None);
            self.tree.insert(Entry::new(to, slot));
            return;
        };
        if chord_2_between(&point, &to) <= chord(SLACK_M).powi(2) {
            return;
        }
        self.note_rebuild_change(slot, Some(point));
        let in_place = Holding {
            to: Some(to),
            ..Holding::new(slot, was.0, was.1)
        };
        if self.tree.move_in_place(in_place, to) {
            return;
        }
        self.tree.remove(holding);
        self.tree.insert(Entry::new(to, slot));
        self.moves_since_build += 1;
    }

    /// Takes `slot`, standing at `(lat, lon)`, out of the tree.
    fn take_out(&mut self, slot: u32, lat: f64, lon: f64) {
        let point = self.tree.remove(Holding::new(slot, lat, lon));
        self.note_rebuild_change(slot, point);
    }

    /// Puts `slot`, standing at `(lat, lon)`, in the tree.
    fn put_in(&mut self, slot: u32, lat: f64, lon: f64) {
        self.tree.insert(Entry::new(tree_point(lat, lon), slot));
        self.moves_since_build += 1;
        self.note_rebuild_change(slot, None);
    }

    /// Notes, during a rebuild, that `slot`'s entry in the tree changes from `was` (its
    /// point; `None` out of the tree or new): at a slot's first change, that is where the
    /// snapshot had it. Costs nothing when no rebuild is under way.
    fn note_rebuild_change(&mut self, slot: u32, was: Option<[f32; 3]>) {
        if let Some(changed) = &mut self.changed_during_rebuild {
            changed.push(rebuild::Changed { slot, then: was });
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
        for (entry, distance_2) in self.tree.nearest(&centre, stop_2) {
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
mod tests;
