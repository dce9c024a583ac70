//! The fleet's tree: each scooter as a point on the unit sphere, `f32`, with its slot; the
//! node sizes; the slack within which a scooter stays at its tree point; and the two parts
//! searched together, the bulk-loaded scooters in buckets and the arrivals since.

use rstar::primitives::GeomWithData;
use rstar::{Envelope, RStarInsertionStrategy, RTree, RTreeParams, SelectionFunction, AABB};

use super::packed::Packed;
use crate::fleet::{ScooterState, EARTH_RADIUS_M};

pub(super) type Entry = GeomWithData<[f32; 3], u32>;

/// The R-trees' node sizes (of the buckets' boxes and of the arrivals): up to 16 children,
/// at least 6, 5 reinserted on overflow (the R*-tree's 40 % and 30 %). rstar's default (3
/// to 6) spends a parent node (48 bytes, and its vector) for every few elements; measured
/// at a million scooters in one tree, 16 took 4 MiB less and answered searches as fast
/// when fresh and faster once worn by moves.
pub(super) struct TreeParams;

impl RTreeParams for TreeParams {
    const MIN_SIZE: usize = 6;
    const MAX_SIZE: usize = 16;
    const REINSERTION_COUNT: usize = 5;
    type DefaultInsertionStrategy = RStarInsertionStrategy;
}

/// The fleet's R-tree.
pub(super) type Tree = RTree<Entry, TreeParams>;

/// How far a scooter may stand from its point in the tree before the tree follows it: more
/// than a parked scooter's GPS wanders, little beside a search's radius.
pub const SLACK_M: f64 = 5.0;

/// Whether a scooter in `state` has an entry in the tree: all but those on a trip, whose
/// moves searches never need (they list available scooters only) and which come back to
/// the tree where the trip ends.
pub(super) fn in_tree(state: ScooterState) -> bool {
    state != ScooterState::OnTrip
}

/// Finds `slot`'s entry, which lies within the slack of `near`'s centre, through the boxes
/// that meet `near`; with `to`, through those that hold `to` as well: if it is found then,
/// every box above it holds `to`.
#[derive(Clone, Copy)]
pub(super) struct Holding {
    pub(super) slot: u32,
    pub(super) near: AABB<[f32; 3]>,
    pub(super) to: Option<[f32; 3]>,
}

impl Holding {
    /// `slot`'s entry, the scooter standing at `(lat, lon)`.
    pub(super) fn new(slot: u32, lat: f64, lon: f64) -> Self {
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

impl Holding {
    /// Whether a box may hold the entry looked for.
    pub(super) fn may_be_in(&self, envelope: &AABB<[f32; 3]>) -> bool {
        envelope.intersects(&self.near) && self.to.is_none_or(|to| envelope.contains_point(&to))
    }
}

impl SelectionFunction<Entry> for Holding {
    fn should_unpack_parent(&self, envelope: &AABB<[f32; 3]>) -> bool {
        self.may_be_in(envelope)
    }

    fn should_unpack_leaf(&self, entry: &Entry) -> bool {
        entry.data == self.slot
    }
}

/// The squared distance between two tree points, as a chord on the unit sphere.
pub(super) fn chord_2_between(a: &[f32; 3], b: &[f32; 3]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum()
}

/// The point on the unit sphere of a WGS84 position.
pub(super) fn unit_vector(lat: f64, lon: f64) -> [f64; 3] {
    let (lat, lon) = (lat.to_radians(), lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

/// A position as the tree holds it: its unit vector rounded to `f32`.
pub(super) fn tree_point(lat: f64, lon: f64) -> [f32; 3] {
    unit_vector(lat, lon).map(|c| c as f32)
}

/// The chord, on the unit sphere, of a great-circle distance in metres.
pub(super) fn chord(distance_m: f64) -> f64 {
    2.0 * (distance_m / (2.0 * EARTH_RADIUS_M)).sin()
}

/// The squared chord, on the unit sphere, of a great-circle distance in metres.
#[cfg(test)]
pub(super) fn chord_2(distance_m: f64) -> f64 {
    chord(distance_m).powi(2)
}

/// How far past a chord the tree's walk must go not to miss a scooter at that chord: the
/// slack between a scooter and its tree point, and the rounding: each `f32` coordinate is
/// off by at most 2⁻²⁵, so a point by at most 5.2·10⁻⁸ and a chord between two by
/// 1.04·10⁻⁷ (0.66 m), plus the `f32` arithmetic's relative error; taken with a margin of
/// more than twice that.
pub(super) fn walk_past(found: f64) -> f64 {
    let reach = found + chord(SLACK_M) + 3e-7 + 1e-6 * found;
    reach * reach
}

/// The fleet's tree in two parts: the scooters where the last bulk load put them, packed in
/// buckets ([`Packed`]), and those inserted since (moved far, or back from a trip) in an
/// R-tree of their own. The bulk load leaves each bucket exactly full and an insertion would
/// have to grow it, so the loaded part only loses scooters and moves them within their
/// buckets' boxes; the arrivals stay few until the next rebuild folds them in (at a million
/// scooters that had all moved far, 232 MiB for the whole server with one R-tree taking
/// every insertion, 190–199 with this split and a rebuild at a tenth of the fleet in
/// insertions). A search walks both at once, nearest first.
#[derive(Default)]
pub(super) struct FleetTree {
    loaded: Packed,
    arrivals: Tree,
}

impl From<Packed> for FleetTree {
    /// A bulk-loaded tree, no arrivals yet.
    fn from(loaded: Packed) -> Self {
        FleetTree {
            loaded,
            arrivals: Tree::new_with_params(),
        }
    }
}

impl FleetTree {
    pub(super) fn bulk_load(entries: Vec<Entry>) -> Self {
        Packed::bulk_load(entries).into()
    }

    /// How many scooters the tree holds.
    pub(super) fn size(&self) -> usize {
        self.loaded.size() + self.arrivals.size()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.loaded.iter().chain(self.arrivals.iter())
    }

    /// The point of the scooter `holding` looks for, if the tree has it.
    pub(super) fn locate(&self, holding: Holding) -> Option<[f32; 3]> {
        self.loaded.locate(holding).or_else(|| {
            let mut found = self.arrivals.locate_with_selection_function(holding);
            found.next().map(|entry| *entry.geom())
        })
    }

    /// Moves the scooter `in_place` looks for to `to` if every box above it holds `to`;
    /// whether it did.
    pub(super) fn move_in_place(&mut self, in_place: Holding, to: [f32; 3]) -> bool {
        if self.loaded.move_in_place(in_place, to) {
            return true;
        }
        let mut found = self.arrivals.locate_with_selection_function_mut(in_place);
        let Some(entry) = found.next() else {
            return false;
        };
        *entry = Entry::new(to, in_place.slot);
        true
    }

    /// Takes out the scooter `holding` looks for; its point, if it was there.
    pub(super) fn remove(&mut self, holding: Holding) -> Option<[f32; 3]> {
        self.loaded.remove(holding).or_else(|| {
            self.arrivals
                .remove_with_selection_function(holding)
                .map(|entry| *entry.geom())
        })
    }

    /// Takes out `entry`, at exactly its point; whether it was there.
    pub(super) fn remove_exact(&mut self, entry: &Entry) -> bool {
        self.loaded.remove_exact(entry) || self.arrivals.remove(entry).is_some()
    }

    /// Puts `entry` with the arrivals.
    pub(super) fn insert(&mut self, entry: Entry) {
        self.arrivals.insert(entry);
    }

    /// Every entry within `within_2` (a squared chord) of `centre`, nearest first, with its
    /// squared chord.
    pub(super) fn nearest(
        &self,
        centre: &[f32; 3],
        within_2: f64,
    ) -> impl Iterator<Item = (&Entry, f32)> {
        let mut loaded = self.loaded.nearest(centre, within_2).peekable();
        let mut arrivals = self
            .arrivals
            .nearest_neighbor_iter_with_distance_2(centre)
            .take_while(move |&(_, distance_2)| f64::from(distance_2) <= within_2)
            .peekable();
        std::iter::from_fn(move || match (loaded.peek(), arrivals.peek()) {
            (Some((_, a)), Some((_, b))) if b < a => arrivals.next(),
            (Some(_), _) => loaded.next(),
            (None, _) => arrivals.next(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(slot: u32, lon: f64) -> (f64, f64) {
        (48.85 + f64::from(slot) * 1e-4, lon)
    }

    #[test]
    fn insertions_go_to_the_arrivals_and_a_walk_takes_both_parts_nearest_first() {
        let entry = |slot, (lat, lon)| Entry::new(tree_point(lat, lon), slot);
        let mut tree =
            FleetTree::bulk_load((0..100).map(|slot| entry(slot, at(slot, 2.35))).collect());
        // Every other scooter moves 10 km east: out of the loaded part, into the arrivals.
        for slot in (0..100).step_by(2) {
            let (lat, lon) = at(slot, 2.35);
            let removed = tree.remove(Holding::new(slot, lat, lon));
            assert_eq!(removed, Some(tree_point(lat, lon)));
            tree.insert(entry(slot, at(slot, 2.49)));
        }
        assert_eq!((tree.loaded.size(), tree.arrivals.size()), (50, 50));
        let (lat, lon) = at(10, 2.49);
        assert_eq!(
            tree.locate(Holding::new(10, lat, lon)),
            Some(tree_point(lat, lon))
        );

        // Halfway between the two columns, both parts come in turn.
        let walked: Vec<(u32, f32)> = tree
            .nearest(&tree_point(48.8525, 2.42), f64::INFINITY)
            .map(|(entry, distance_2)| (entry.data, distance_2))
            .collect();
        assert_eq!(walked.len(), 100);
        assert!(walked.windows(2).all(|w| w[0].1 <= w[1].1), "nearest first");
        let mut slots: Vec<u32> = walked.iter().map(|&(slot, _)| slot).collect();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), 100);
        let first_ten_moved = walked[..10]
            .iter()
            .filter(|(slot, _)| slot % 2 == 0)
            .count();
        assert!((1..10).contains(&first_ten_moved), "{walked:?}");
    }

    #[test]
    fn a_bounded_walk_gives_the_scooters_within_the_bound_and_no_farther() {
        let entry = |slot, (lat, lon)| Entry::new(tree_point(lat, lon), slot);
        let mut tree =
            FleetTree::bulk_load((0..100).map(|slot| entry(slot, at(slot, 2.35))).collect());
        // Every scooter moves 10 km east: the loaded part keeps only empty buckets.
        for slot in 0..100 {
            let (lat, lon) = at(slot, 2.35);
            assert!(tree.remove(Holding::new(slot, lat, lon)).is_some());
            tree.insert(entry(slot, at(slot, 2.49)));
        }
        assert_eq!((tree.loaded.size(), tree.arrivals.size()), (0, 100));
        let old_place = tree_point(48.85, 2.35);
        // 506 m: scooters lie 11.1 m apart, none within a metre of the bound.
        let bound = chord(506.0).powi(2);
        assert_eq!(tree.nearest(&old_place, bound).count(), 0);
        assert_eq!(tree.nearest(&old_place, f64::INFINITY).count(), 100);
        // Near the new places, exactly those within the bound, nearest first.
        let (lat, lon) = at(50, 2.49);
        let centre = tree_point(lat, lon);
        let near: Vec<f32> = tree.nearest(&centre, bound).map(|(_, d)| d).collect();
        let expected = (0..100)
            .filter(|&slot| {
                let (lat, lon) = at(slot, 2.49);
                chord_2_between(&tree_point(lat, lon), &centre) <= bound
            })
            .count();
        assert_eq!(near.len(), expected);
        assert!((80..100).contains(&expected), "{expected}");
        assert!(near.windows(2).all(|w| w[0] <= w[1]), "nearest first");
    }
}
